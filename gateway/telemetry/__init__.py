"""Telemetry: traces (``spans``), metrics (``metrics``) and structured logs (``logs``)."""
