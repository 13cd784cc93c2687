"""The public datasets the tests read (never copied into the repository).

They live in a ``shared/data`` folder beside the checkout, or where ``SITUATE_SHARED_DATA``
says. Without them the tests that need them are skipped with the reason, unless
``SITUATE_REQUIRE_SHARED_DATA=1`` (as CI sets) turns the absence into a failure.
"""

from __future__ import annotations

import os
from pathlib import Path

import pytest

_CANDIDATES = (
    os.environ.get("SITUATE_SHARED_DATA"),
    str(Path(__file__).resolve().parents[2] / "shared" / "data"),
    "/work/shared/data",
)


def shared_file(relative: str) -> Path:
    for folder in filter(None, _CANDIDATES):
        path = Path(folder) / relative
        if path.is_file():
            return path
    message = f"shared dataset {relative} not found (set SITUATE_SHARED_DATA)"
    if os.environ.get("SITUATE_REQUIRE_SHARED_DATA") == "1":
        pytest.fail(message)
    pytest.skip(message)
