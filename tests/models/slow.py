"""A model that takes its time (it sleeps, releasing the GIL as numpy does): for budgets and
for the event loop's responsiveness while a model runs."""

from __future__ import annotations

import os
import time
from collections.abc import Sequence

from gateway.detectors.model import ModelInfo

#: seconds per batch; the end-to-end tests set it in the gateway's environment
DELAY_ENV = "SITUATE_TEST_SLOW_MODEL_SECONDS"


class SlowModel:
    info = ModelInfo("slow", "s-1", ("attack",), {"attack": 0.5})

    def __init__(self, delay: float | None = None) -> None:
        self.delay = delay if delay is not None else float(os.environ.get(DELAY_ENV, "1.0"))

    def score(self, texts: Sequence[str]) -> list[dict[str, float]]:
        time.sleep(self.delay)
        return [{"attack": 0.9 if "attack" in text.lower() else 0.1} for text in texts]
