"""``gateway audit key | checkpoint | verify-receipt``: signed checkpoints and receipts."""

from __future__ import annotations

import typer


def register(app: typer.Typer) -> None:
    """Add this module's commands to ``gateway audit``."""
