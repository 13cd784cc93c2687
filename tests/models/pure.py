"""A pure-Python model that holds the GIL while it scores (``releases_gil = False``): the pool
runs it in worker processes. Its score for ``pid`` is the process it ran in."""

from __future__ import annotations

import os
from collections.abc import Sequence

from gateway.detectors.model import ModelInfo


class PurePythonModel:
    info = ModelInfo("pure", "p-1", ("attack", "pid"), {"attack": 0.5})
    releases_gil = False

    def score(self, texts: Sequence[str]) -> list[dict[str, float]]:
        total = sum(i * i for i in range(200_000))  # CPU work under the GIL
        return [
            {"attack": 0.9 if "attack" in t else 0.1, "pid": float(os.getpid()), "work": total}
            for t in texts
        ]


class CrashingModel:
    """Takes its worker process down on a text with "crash" in it (as a native library's
    segfault would); the pool must replace the broken processes."""

    info = ModelInfo("crashing", "c-1", ("attack",), {"attack": 0.5})
    releases_gil = False

    def score(self, texts: Sequence[str]) -> list[dict[str, float]]:
        if any("crash" in t for t in texts):
            os._exit(3)
        return [{"attack": 0.1} for _ in texts]
