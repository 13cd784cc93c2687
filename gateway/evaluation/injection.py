"""Scoring the ``injection`` detector on labelled prompts: both sides, always together.

``evaluate`` reports the share of injections caught and the share of benign prompts flagged.
Readers cover the S-Labs CSV splits (``text``, ``label`` with 1 = injection) and XSTest
(``prompt``, ``label`` "safe"/"unsafe"; none of its prompts is an injection, so every flag on
a safe prompt is a false positive). Run ``python -m gateway.evaluation.injection`` with
``s-labs FILE`` or ``xstest FILE`` for the figures.
"""

from __future__ import annotations

import csv
import sys
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from types import MappingProxyType

from gateway.checks.base import Check
from gateway.checks.injection import InjectionCheck


@dataclass(frozen=True, slots=True)
class Prompt:
    text: str
    injection: bool


@dataclass(frozen=True, slots=True)
class Rates:
    injections: int
    caught: int
    benign: int
    flagged: int

    @property
    def caught_share(self) -> float:
        return self.caught / self.injections if self.injections else 0.0

    @property
    def flagged_share(self) -> float:
        return self.flagged / self.benign if self.benign else 0.0

    def __str__(self) -> str:
        return (
            f"injections caught {self.caught}/{self.injections} ({self.caught_share:.1%}); "
            f"benign flagged {self.flagged}/{self.benign} ({self.flagged_share:.1%})"
        )


def evaluate(prompts: Iterable[Prompt], check: Check | None = None) -> Rates:
    """Caught injections and flagged benign prompts, with the detector's default threshold."""
    detector = check if check is not None else InjectionCheck(None)
    counts = {True: [0, 0], False: [0, 0]}
    for prompt in prompts:
        counts[prompt.injection][0] += 1
        if detector.find(prompt.text):
            counts[prompt.injection][1] += 1
    return Rates(
        injections=counts[True][0],
        caught=counts[True][1],
        benign=counts[False][0],
        flagged=counts[False][1],
    )


def read_s_labs(path: Path) -> list[Prompt]:
    with path.open(encoding="utf-8", newline="") as handle:
        return [Prompt(row["text"], row["label"].strip() == "1") for row in csv.DictReader(handle)]


def read_xstest(path: Path, *, safe_only: bool = True) -> list[Prompt]:
    """XSTest prompts as benign ones (its unsafe contrasts are harmful requests, not injections)."""
    with path.open(encoding="utf-8", newline="") as handle:
        rows = list(csv.DictReader(handle))
    return [Prompt(row["prompt"], False) for row in rows if row["label"] == "safe" or not safe_only]


_READERS = MappingProxyType({"s-labs": read_s_labs, "xstest": read_xstest})


def main(argv: list[str]) -> None:
    for kind, name in zip(argv[::2], argv[1::2], strict=True):
        print(f"{kind} {name}: {evaluate(_READERS[kind](Path(name)))}")


if __name__ == "__main__":
    main(sys.argv[1:])
