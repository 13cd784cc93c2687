"""``gateway audit``: the tamper-evident record (docs/audit.md).

Each group of commands lives in a module of its own and registers itself here.
"""

from __future__ import annotations

import typer

from gateway.cli import audit_notes, audit_verify

app = typer.Typer(help="The tamper-evident record: verify it, its keys and checkpoints.",
                  no_args_is_help=True)
audit_verify.register(app)
audit_notes.register(app)
