"""Logging: one JSON (or text) line per record, the request id on every record made while a
request is served, and card data masked before any handler sees it.

Where card data is masked, and why there:

- the message (with its `%` arguments) and any exception traceback or stack: when the record is
  made (a LogRecord factory), so that every handler gets masked text: ours, uvicorn's, pytest's,
  a file. The traceback is rendered there once into `exc_text` and `exc_info` dropped, so no
  formatter can render the unmasked one again;
- `extra=` fields: by our formatters, when the line is rendered (the logging module sets them
  after the factory ran). Every value but the fields this module writes itself (timestamp,
  level, request id...) goes through `mask_card_data`; a field named like a card security code
  (`csc`, `cvv`...) is replaced whole; nested dicts and lists are walked.
"""

from __future__ import annotations

import logging
import sys
import time
from collections.abc import Mapping
from contextvars import ContextVar
from datetime import UTC, datetime
from typing import Any, Literal, TextIO

from pythonjsonlogger.core import RESERVED_ATTRS
from pythonjsonlogger.json import JsonFormatter as _BaseJsonFormatter

from connector.security import mask_card_data

LogFormat = Literal["json", "text"]

# The id of the request being served (connector.observability.middleware sets it).
REQUEST_ID: ContextVar[str | None] = ContextVar("request_id", default=None)

# Written by this module (or already masked when the record was made): never masked again, so
# that a request id that happens to hold a run of 13 digits stays greppable.
_OWN_FIELDS = frozenset(
    {"timestamp", "level", "logger", "pid", "message", "request_id", "exception", "stack"}
    | {"method", "route", "status", "duration_ms"}  # the access log's (middleware.py)
)
_SECURITY_CODE_KEYS = frozenset({"csc", "cvv", "cvv2", "cvc", "securitycode"})
_TEXT_FORMAT = "%(asctime)s %(levelname)s %(name)s [%(request_id)s] %(message)s"

_installed = False


# ----------------------------------------------------------------------------- records


def _render_exception(record: logging.LogRecord) -> None:
    if record.exc_info:
        record.exc_text = mask_card_data(logging.Formatter().formatException(record.exc_info))
        record.exc_info = None
    elif record.exc_text:
        record.exc_text = mask_card_data(record.exc_text)
    if record.stack_info:
        record.stack_info = mask_card_data(record.stack_info)


def _install_record_factory() -> None:
    """Mask at record creation and stamp the request id, so that every handler gets both; a
    filter on one handler or logger would miss the others."""
    global _installed
    if _installed:
        return
    previous = logging.getLogRecordFactory()

    def factory(*args: Any, **kwargs: Any) -> logging.LogRecord:
        record = previous(*args, **kwargs)
        try:
            message = record.getMessage()
        except Exception:  # bad arguments: left for the handler to report, as logging does
            return record
        masked = mask_card_data(message)
        if masked != message:
            record.msg, record.args = masked, None
        if record.exc_info or record.exc_text or record.stack_info:
            _render_exception(record)
        request_id = REQUEST_ID.get()
        if request_id is not None:
            record.request_id = request_id
        return record

    logging.setLogRecordFactory(factory)
    _installed = True


def mask_value(key: str, value: Any) -> Any:
    """An `extra=` value as it may be logged: card numbers masked in strings and in numbers of
    card length, security codes hidden by their key, containers walked."""
    if key.lower() in _SECURITY_CODE_KEYS:
        return "***"
    if isinstance(value, str):
        return mask_card_data(value)
    if isinstance(value, bool | float) or value is None:
        return value
    if isinstance(value, int):
        return mask_card_data(str(value)) if 13 <= len(str(abs(value))) <= 19 else value
    if isinstance(value, Mapping):
        return {str(k): mask_value(str(k), v) for k, v in value.items()}
    if isinstance(value, list | tuple | set | frozenset):
        return [mask_value(key, item) for item in value]
    return mask_card_data(str(value))


# ----------------------------------------------------------------------------- formatters


class JsonFormatter(_BaseJsonFormatter):
    """`{"timestamp", "level", "logger", "pid", "message", "request_id", ...extra,
    "exception"}`, one line per record; the timestamp is ISO 8601 UTC with milliseconds."""

    def __init__(self) -> None:
        super().__init__(
            ["levelname", "name", "process", "message"],
            rename_fields={
                "levelname": "level",
                "name": "logger",
                "process": "pid",
                "exc_info": "exception",
                "stack_info": "stack",
            },
            # uvicorn's copy of its message with terminal colours.
            reserved_attrs=[*RESERVED_ATTRS, "color_message"],
        )

    def add_fields(
        self, log_data: dict[str, Any], record: logging.LogRecord, message_dict: dict[str, Any]
    ) -> None:
        created = datetime.fromtimestamp(record.created, UTC)
        log_data["timestamp"] = created.isoformat(timespec="milliseconds").replace("+00:00", "Z")
        super().add_fields(log_data, record, message_dict)

    def process_log_record(self, log_data: dict[str, Any]) -> dict[str, Any]:
        return {
            key: value if key in _OWN_FIELDS else mask_value(key, value)
            for key, value in log_data.items()
        }

    def formatException(self, ei: Any) -> str:
        return mask_card_data(logging.Formatter.formatException(self, ei))

    def formatStack(self, stack_info: str) -> str:
        return mask_card_data(stack_info)


class TextFormatter(logging.Formatter):
    """`2026-05-01T12:00:00.123Z INFO connector.app [request id] message`, for a terminal."""

    converter = time.gmtime  # type: ignore[assignment]  # UTC; a builtin, never bound
    default_time_format = "%Y-%m-%dT%H:%M:%S"
    default_msec_format = "%s.%03dZ"

    def __init__(self) -> None:
        super().__init__(_TEXT_FORMAT, defaults={"request_id": "-"})

    def formatException(self, ei: Any) -> str:
        return mask_card_data(super().formatException(ei))


class _StderrHandler(logging.StreamHandler):  # type: ignore[type-arg]
    """Writes to whatever `sys.stderr` is when a record is emitted (as logging's last resort
    does), not to the stream it was at configuration time."""

    def __init__(self) -> None:
        super().__init__(sys.stderr)

    @property
    def stream(self) -> TextIO:
        return sys.stderr

    @stream.setter
    def stream(self, value: TextIO) -> None:
        pass


def build_handler(log_format: LogFormat, stream: TextIO | None = None) -> logging.Handler:
    handler: logging.Handler = _StderrHandler() if stream is None else logging.StreamHandler(stream)
    handler.setFormatter(JsonFormatter() if log_format == "json" else TextFormatter())
    handler.set_name("connector")
    return handler


def configure_logging(
    level: str = "INFO", log_format: LogFormat = "json", stream: TextIO | None = None
) -> None:
    """The process's logging: one handler on the root logger, in `log_format`, to `stream`
    (default: standard error), replacing the one an earlier call installed.

    Without `stream`, a root logger that already has someone else's handlers (pytest's, an
    application embedding the connector) keeps them and gets none of ours, as
    `logging.basicConfig` does. Masking and request ids apply to every handler either way.
    uvicorn's loggers propagate to the root logger (one format for every line); its access log
    is off, because the middleware writes one access line per request, with the request id."""
    _install_record_factory()
    root = logging.getLogger()
    for handler in list(root.handlers):
        if handler.get_name() == "connector":
            root.removeHandler(handler)
            handler.close()
    if stream is not None or not root.handlers:
        root.addHandler(build_handler(log_format, stream))
    root.setLevel(level.upper())
    for name in ("uvicorn", "uvicorn.error"):
        uvicorn_logger = logging.getLogger(name)
        uvicorn_logger.handlers, uvicorn_logger.propagate = [], True
        # The root's level governs (a uvicorn.Config elsewhere in the process may have set
        # its own, or a dictConfig disabled the logger).
        uvicorn_logger.setLevel(logging.NOTSET)
        uvicorn_logger.disabled = False
    access = logging.getLogger("uvicorn.access")
    access.handlers, access.propagate = [], False
    # httpx logs every request's full URL at INFO; callback URLs carry VTEX's signature token.
    logging.getLogger("httpx").setLevel(logging.WARNING)
    # Alembic names its plugins and the dialect it found at every readiness probe's revision
    # check; these processes never migrate (`connector migrate` does not come here).
    logging.getLogger("alembic").setLevel(logging.WARNING)
