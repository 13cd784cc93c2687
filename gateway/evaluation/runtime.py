"""The detector runtime an evaluation compiles policies with: the same models, no time budget.

On the request path a classifier rule waits at most its ``budget_ms`` for a score and then
follows its ``on_error``; that is a property of the machine's load, which ``bench/detectors.py``
measures. An efficacy figure is about the model, so an evaluation waits for every score.
"""

from __future__ import annotations

from gateway.checks.classifier import DetectorRuntime
from gateway.detectors.catalog import load_model
from gateway.detectors.model import TextModel
from gateway.detectors.pool import DetectorPool, PoolSettings, Scores, default_workers

#: long enough for any model on a busy machine; a model that takes longer has a bug
EVALUATION_WAIT_S = 120.0


class UnhurriedPool(DetectorPool):
    """A detector pool that waits for every score, whatever budget the rule gives."""

    def score(
        self, model: TextModel, text: str, budget_s: float, spec: str | None = None
    ) -> Scores:
        return super().score(model, text, max(budget_s, EVALUATION_WAIT_S), spec)


def evaluation_runtime() -> DetectorRuntime:
    return DetectorRuntime(UnhurriedPool(PoolSettings(default_workers())), load_model)
