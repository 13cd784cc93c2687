"""Counts out of a whole, with the 95% Wilson score interval that says how sure they are.

Wilson's interval stays inside [0, 1] and is honest for small samples and for shares near 0
or 1 (a detector that stops none of 40 benign prompts has not shown a 0% rate, only one
below about 9%), which is where detector figures live.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

#: the normal quantile of a two-sided 95% interval
Z95 = 1.959963984540054


def wilson(count: int, whole: int, z: float = Z95) -> tuple[float, float]:
    """The Wilson score interval of ``count`` successes in ``whole`` trials; (0, 1) for none."""
    if whole <= 0:
        return (0.0, 1.0)
    p = count / whole
    denominator = 1 + z * z / whole
    centre = (p + z * z / (2 * whole)) / denominator
    half = z * math.sqrt(p * (1 - p) / whole + z * z / (4 * whole * whole)) / denominator
    return (max(0.0, centre - half), min(1.0, centre + half))


@dataclass(frozen=True, slots=True)
class Share:
    """``count`` of ``whole``: a share with its interval, or nothing to say when whole is 0."""

    count: int
    whole: int

    @property
    def value(self) -> float | None:
        return self.count / self.whole if self.whole else None

    @property
    def interval(self) -> tuple[float, float] | None:
        return wilson(self.count, self.whole) if self.whole else None

    def as_dict(self) -> dict[str, Any]:
        value, interval = self.value, self.interval
        return {
            "count": self.count,
            "of": self.whole,
            "share": None if value is None else round(value, 6),
            "ci95": None if interval is None else [round(interval[0], 6), round(interval[1], 6)],
        }

    def __str__(self) -> str:
        return format_share(self.as_dict())


def format_share(share: dict[str, Any]) -> str:
    """``12/40 (30.0%, 95% CI 18.1-45.4%)``, or ``—`` when there is nothing on that side."""
    if not share["of"]:
        return "—"
    low, high = share["ci95"]
    return (
        f"{share['count']}/{share['of']} ({100 * share['share']:.1f}%,"
        f" CI {100 * low:.1f}-{100 * high:.1f}%)"
    )
