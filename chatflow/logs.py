"""Log lines to stderr as text, or as one JSON object per line for log shippers
(``--log-format json``): the one place a command sets logging up (docs/logging.md).

An event with structured fields gives them as ``extra={FIELDS: {...}}``: the text line
is the message alone, the JSON line has the fields as keys of their own beside it.
"""

from __future__ import annotations

import logging
import sys
import threading
from collections.abc import Mapping
from datetime import datetime, timezone

import orjson

TEXT, JSON = "text", "json"
FORMATS = (TEXT, JSON)
#: The record attribute an event's structured fields are given in (``extra={FIELDS: …}``).
FIELDS = "fields"
#: Every JSON line's own keys; an event's fields never replace them.
KEYS = ("time", "level", "logger", "message")


def iso_time(created: float) -> str:
    """A record's time as ISO 8601 in UTC, to the millisecond: ``2025-01-31T09:15:02.123Z``."""
    return datetime.fromtimestamp(created, timezone.utc).isoformat(timespec="milliseconds").replace("+00:00", "Z")


class JsonFormatter(logging.Formatter):
    """A record as one line of JSON: ``KEYS``, then ``context`` (the same for every line
    of the process: a worker's index), then the event's fields, then its traceback."""

    def __init__(self, context: Mapping[str, object] | None = None) -> None:
        super().__init__()
        self._context = dict(context or {})

    def format(self, record: logging.LogRecord) -> str:
        entry: dict[str, object] = {"time": iso_time(record.created), "level": record.levelname,
                                    "logger": record.name, "message": record.getMessage(), **self._context}
        fields = getattr(record, FIELDS, None)
        if isinstance(fields, Mapping):
            entry.update((key, value) for key, value in fields.items() if key not in KEYS)
        if record.exc_info:
            entry["exception"] = self.formatException(record.exc_info)
        if record.stack_info:
            entry["stack"] = self.formatStack(record.stack_info)
        return orjson.dumps(entry, default=str, option=orjson.OPT_NON_STR_KEYS).decode()


def configure(level: str, log_format: str = TEXT, *, tag: str = "",
              context: Mapping[str, object] | None = None) -> None:
    """Every logger's lines (the libraries' too) to stderr at ``level`` and above: as
    text, ``tag`` before each logger's name; or as JSON, ``context``'s keys on each line."""
    handler = logging.StreamHandler(sys.stderr)
    if log_format == JSON:
        handler.setFormatter(JsonFormatter(context))
        # What would otherwise reach stderr past the handler, as lines that are not JSON.
        logging.captureWarnings(True)
        threading.excepthook = _log_uncaught
    else:
        handler.setFormatter(logging.Formatter(f"%(asctime)s %(levelname)-7s {tag}%(name)s: %(message)s"))
    logging.basicConfig(level=level, handlers=[handler])


def _log_uncaught(args: threading.ExceptHookArgs) -> None:
    """A thread's uncaught exception as a log record (one JSON line), not a bare traceback."""
    if args.exc_type is SystemExit:
        return
    name = args.thread.name if args.thread is not None else "?"
    logging.getLogger("chatflow").error("uncaught exception in thread %s", name,
                                        exc_info=(args.exc_type, args.exc_value, args.exc_traceback))
