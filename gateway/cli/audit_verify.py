"""``gateway audit verify``: recompute the chains and report the first broken place."""

from __future__ import annotations

import typer


def register(app: typer.Typer) -> None:
    """Add this module's commands to ``gateway audit``."""
