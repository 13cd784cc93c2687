"""Structured logs: one JSON object per line (``logging.format: json``, the default), or text.

Each line holds ``time`` (UTC, ISO 8601), ``level``, ``logger``, ``message`` and the record's
extras (``log.info("...", extra={...})``), and ``exception`` when there is one. The access line
(``gateway.telemetry.access``) is one such line per HTTP request, on the ``gateway.access``
logger. A bearer token or a gateway key that would reach a line anyway (in an exception's
text, say) is masked by the formatter; prompt and answer text are never logged by the gateway
(the recorder's last resort, records only the log holds, is the one exception: they are
marked ``SITUATE-UNRECORDED`` and read back by ``gateway exchanges import-spill --from-log``).
"""

from __future__ import annotations

import json
import logging
import re
import sys
from datetime import UTC, datetime
from typing import Any, TextIO

from gateway.config.observe import LoggingConfig

#: what every LogRecord has: anything else on a record is an extra, and goes on the line
_STANDARD = frozenset(
    vars(logging.LogRecord("", 0, "", 0, "", None, None)).keys() | {"message", "asctime"}
)
#: a bearer token, a gateway key (``sk-gw-…``) or another ``sk-`` key: masked on any line
_SECRETS = re.compile(r"(?i)(bearer\s+)[^\s\"',]+|\bsk-[A-Za-z0-9_-]{8,}")
TEXT_FORMAT = "%(asctime)s %(levelname)s %(name)s %(message)s"


def mask(text: str) -> str:
    """The text with any bearer token or API key in it replaced by a mark."""
    return _SECRETS.sub(lambda m: (m.group(1) or "") + "[masked]", text)


class JsonFormatter(logging.Formatter):
    """One JSON object per record, on one line."""

    def format(self, record: logging.LogRecord) -> str:
        line: dict[str, Any] = {
            "time": datetime.fromtimestamp(record.created, UTC).isoformat(
                timespec="milliseconds"
            ),
            "level": record.levelname.lower(),
            "logger": record.name,
            "message": mask(record.getMessage()),
        }
        for key, value in vars(record).items():
            if key not in _STANDARD and not key.startswith("_"):
                line[key] = value
        if record.exc_info:
            line["exception"] = mask(self.formatException(record.exc_info))
        elif record.exc_text:
            line["exception"] = mask(record.exc_text)
        return json.dumps(line, default=str, ensure_ascii=False)


class MaskingFormatter(logging.Formatter):
    """The text format, with the same masking."""

    def format(self, record: logging.LogRecord) -> str:
        return mask(super().format(record))


def configure(config: LoggingConfig, stream: TextIO | None = None) -> None:
    """The process's logging, as ``config.logging`` says: one handler on stderr, for the
    gateway's loggers and uvicorn's alike (uvicorn's own access log is left off by ``gateway
    serve`` when the gateway writes its own)."""
    handler = logging.StreamHandler(stream or sys.stderr)
    json_lines = config.format == "json"
    handler.setFormatter(JsonFormatter() if json_lines else MaskingFormatter(TEXT_FORMAT))
    root = logging.getLogger()
    for old in list(root.handlers):
        root.removeHandler(old)
    root.addHandler(handler)
    root.setLevel(config.level.upper())
    for name in ("uvicorn", "uvicorn.error", "uvicorn.access"):
        server = logging.getLogger(name)
        server.handlers.clear()
        server.propagate = True
    logging.getLogger("httpx").setLevel(logging.WARNING)  # one line per upstream call is noise
    logging.getLogger("gateway.access").disabled = not config.access
