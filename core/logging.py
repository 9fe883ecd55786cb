"""Log lines that carry the current request id; never request bodies.

`configure_logging(settings)` once per process: JSON lines, or text lines on a terminal
(`MEDSERVE_LOG_JSON` decides when set). Processes started by `medserve serve` share its stderr,
so they all choose the same format. The request id lives in a context variable set by the
gateway's middleware, so every line logged while serving a request carries it.
"""

from __future__ import annotations

import logging
import sys
import time
from contextvars import ContextVar
from typing import Any

import orjson

from core.settings import CommonSettings

request_id_var: ContextVar[str | None] = ContextVar("medserve_request_id", default=None)

# Attributes every LogRecord has; anything else passed through `extra=` is logged as a field
# (uvicorn's `color_message` is its message again, with terminal colour codes).
_RESERVED = set(logging.LogRecord("", 0, "", 0, "", None, None).__dict__) | {
    "message", "asctime", "color_message",
}  # fmt: skip


class JsonFormatter(logging.Formatter):
    """One JSON object per line: time, level, logger, message, request_id and extras.

    Exceptions are logged by type only: a traceback may quote request data.
    """

    def format(self, record: logging.LogRecord) -> str:
        doc: dict[str, Any] = {
            "ts": round(record.created, 6),
            "level": record.levelname,
            "logger": record.name,
            "msg": record.getMessage(),
        }
        request_id = getattr(record, "request_id", None) or request_id_var.get()
        if request_id:
            doc["request_id"] = request_id
        for key, value in record.__dict__.items():
            if key not in _RESERVED and key not in doc and not key.startswith("_"):
                doc[key] = value
        if record.exc_info and record.exc_info[0] is not None:
            doc["error_type"] = record.exc_info[0].__name__
        return orjson.dumps(doc, default=str).decode()


class TextFormatter(logging.Formatter):
    """Human-readable lines for a terminal, still with the request id."""

    def format(self, record: logging.LogRecord) -> str:
        request_id = getattr(record, "request_id", None) or request_id_var.get()
        stamp = time.strftime("%H:%M:%S", time.localtime(record.created))
        rid = f" [{request_id}]" if request_id else ""
        line = f"{stamp} {record.levelname:<7} {record.name}{rid}: {record.getMessage()}"
        extras = [
            f"{key}={value}"
            for key, value in record.__dict__.items()
            if key not in _RESERVED and key != "request_id" and not key.startswith("_")
        ]
        if extras:
            line += " " + " ".join(extras)
        if record.exc_info and record.exc_info[0] is not None:
            line += f" ({record.exc_info[0].__name__})"
        return line


def wants_json(settings: CommonSettings) -> bool:
    """MEDSERVE_LOG_JSON when set; else text for a person at a terminal, JSON for collectors."""
    if settings.log_json is not None:
        return settings.log_json
    return not sys.stderr.isatty()


def configure_logging(settings: CommonSettings) -> None:
    """Route the root logger (and uvicorn's) to stderr in the chosen format."""
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(JsonFormatter() if wants_json(settings) else TextFormatter())
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(settings.log_level.upper())
    for name in ("uvicorn", "uvicorn.error"):
        logger = logging.getLogger(name)
        logger.handlers[:] = []
        logger.propagate = True
    # The gateway writes its own access line (with request id and status); uvicorn's is a duplicate.
    logging.getLogger("uvicorn.access").disabled = True
    # httpx logs every request it sends at INFO: the callers log what matters.
    for name in ("httpx", "httpcore"):
        logging.getLogger(name).setLevel(logging.WARNING)
