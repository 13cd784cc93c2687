"""``gateway detectors``: train the shipped models and calibrate them from reviewers' judgments."""

from __future__ import annotations

import typer

from gateway.cli import detectors_calibrate, detectors_train

app = typer.Typer(help="Learned detectors: train, calibrate.", no_args_is_help=True)
detectors_train.register(app)
detectors_calibrate.register(app)
