"""A scriptable mock OpenAI-compatible upstream (demo backend, test and bench upstream)."""

from __future__ import annotations

import logging
from pathlib import Path

import uvicorn

from gateway.mock.app import MockUpstream
from gateway.mock.asgi import MockConnectionDrop
from gateway.mock.script import Fault, Rule, Script, load_script

__all__ = ["Fault", "MockUpstream", "Rule", "Script", "load_script", "serve_mock"]


class _HideScriptedDrops(logging.Filter):
    """Scripted drops are the point of the fault, not a bug worth a traceback."""

    def filter(self, record: logging.LogRecord) -> bool:
        exc = record.exc_info[1] if record.exc_info else None
        return not isinstance(exc, MockConnectionDrop)


def serve_mock(host: str, port: int, script_path: Path | None, token_delay: float | None) -> None:
    """Run the mock upstream under uvicorn until interrupted."""
    script = load_script(script_path)
    app = MockUpstream(script, token_delay=token_delay)
    config = uvicorn.Config(
        app,
        host=host,
        port=port,
        loop="uvloop",
        http="httptools",
        log_level="warning",
        access_log=False,
        # typed int, used as a delay (call_later): a fraction of a second works
        timeout_keep_alive=script.keep_alive_seconds,  # type: ignore[arg-type]
    )
    # Added after Config, because building the config (re)configures uvicorn's loggers.
    logging.getLogger("uvicorn.error").addFilter(_HideScriptedDrops())
    uvicorn.Server(config).run()
