"""Logs: one JSON object per line (or plain text), carrying the context of the call that wrote
it: request id, decision id, model and version where they exist, and the trace and span ids
when the call is traced.

The context is a contextvar: `bind(...)` adds fields for the rest of the current task, and each
gRPC call runs in a task of its own, so what one call binds never shows in another's records.
Hot-path records stay at DEBUG (off unless ROWCAST_LOG_LEVEL=DEBUG).
"""

from __future__ import annotations

import json
import logging
import sys
from collections.abc import Mapping
from contextvars import ContextVar
from datetime import UTC, datetime
from types import MappingProxyType
from typing import TextIO

from opentelemetry import trace

from rowcast.config import LogFormat, LogSettings

_CONTEXT: ContextVar[Mapping[str, object]] = ContextVar(
    "rowcast_log_context", default=MappingProxyType({})
)

#: Attributes every LogRecord has; anything else on a record came from `extra=` and is written.
_STANDARD = frozenset(
    vars(logging.LogRecord("", 0, "", 0, "", None, None)).keys() | {"message", "asctime"}
)


def bind(**fields: object) -> None:
    """Add fields to the log context of the current task (None values are left out)."""
    if None in fields.values():
        fields = {k: v for k, v in fields.items() if v is not None}
    current = _CONTEXT.get()
    # A call's task starts with an empty context: its first bind copies nothing.
    _CONTEXT.set({**current, **fields} if current else fields)


def bound() -> Mapping[str, object]:
    """The fields bound in the current task."""
    return _CONTEXT.get()


def _context_of(record: logging.LogRecord) -> dict[str, object]:
    fields = dict(_CONTEXT.get())
    span = trace.get_current_span().get_span_context()
    if span.is_valid:
        fields["trace_id"] = f"{span.trace_id:032x}"
        fields["span_id"] = f"{span.span_id:016x}"
    for key, value in vars(record).items():
        if key not in _STANDARD and not key.startswith("_"):
            fields[key] = value
    return fields


class JsonFormatter(logging.Formatter):
    """One JSON object per record: timestamp (UTC, ISO 8601), level, logger, message, then the
    context fields, and the exception's traceback when there is one."""

    def format(self, record: logging.LogRecord) -> str:
        line: dict[str, object] = {
            "timestamp": datetime.fromtimestamp(record.created, UTC)
            .isoformat(timespec="milliseconds")
            .replace("+00:00", "Z"),
            "level": record.levelname,
            "logger": record.name,
            "message": record.getMessage(),
        }
        line.update(_context_of(record))
        if record.exc_info:
            line["exception"] = self.formatException(record.exc_info)
        if record.stack_info:
            line["stack"] = self.formatStack(record.stack_info)
        return json.dumps(line, ensure_ascii=False, default=str)


class TextFormatter(logging.Formatter):
    """`time level logger: message [key=value ...]`, for people reading a terminal."""

    def __init__(self) -> None:
        super().__init__("%(asctime)s %(levelname)s %(name)s: %(message)s")

    def formatMessage(self, record: logging.LogRecord) -> str:
        text = super().formatMessage(record)
        fields = _context_of(record)
        if not fields:
            return text
        return text + " [" + " ".join(f"{k}={v}" for k, v in fields.items()) + "]"


def configure(settings: LogSettings, default: LogFormat, stream: TextIO | None = None) -> None:
    """Send every record at or above the configured level to stream (stderr), in the
    configured format (`default` when ROWCAST_LOG_FORMAT is unset); replaces earlier handlers."""
    handler = logging.StreamHandler(sys.stderr if stream is None else stream)
    chosen = settings.format or default
    handler.setFormatter(JsonFormatter() if chosen == "json" else TextFormatter())
    logging.basicConfig(level=settings.level, handlers=[handler], force=True)
