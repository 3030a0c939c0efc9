"""The periodic summary line at INFO (``--log-interval``): what the server did in the last
interval, in one line, so that a server under load says what it is doing without a line
per message (docs/logging.md).

It reads the counts ``/metrics`` reads (``TransportStats``, ``ChatStats``) from a thread
of its own: plain ints that the selector thread bumps, read and never written, so the
selector thread's work is unchanged. Each line is the difference of two readings. It is
logged when the server is idle too: a server that has stopped logging is dead, one that
logs 0 msg/s is alive and idle.
"""

from __future__ import annotations

import logging
import threading
import time
from typing import TYPE_CHECKING, NamedTuple

from chatflow.logs import FIELDS

if TYPE_CHECKING:
    from chatflow.server.chat_websocket_server import ChatWebSocketServer
    from chatflow.server.transport import WebSocketServer

log = logging.getLogger("chatflow.server.summary")

#: The error kinds of a line, in its order: the JSON key and the words of the text line.
ERROR_KINDS = (("invalid", "invalid"), ("bad_json", "bad JSON"), ("binary", "binary"),
               ("refused_handshakes", "refused handshakes"))


class Reading(NamedTuple):
    """The counts at one moment; None for what is not counted (``--no-metrics``; the
    chat's outcomes with ``--echo``)."""

    at: float
    connections: int
    failure: str | None
    opened: int | None
    closed: int | None
    messages: int | None
    invalid: int | None
    bad_json: int | None
    binary: int | None
    refused_handshakes: int | None


def read(websocket: WebSocketServer, chat: ChatWebSocketServer | None) -> Reading:
    """The counts of ``websocket`` and ``chat`` now (safe from any thread: ints read, dicts copied)."""
    stats = websocket.stats
    transport = (None,) * 4 if stats is None else (
        stats.opened, sum(stats.closed.copy().values()), stats.messages, sum(stats.refused.copy().values()))
    opened, closed, messages, refused = transport
    outcomes = chat.stats if chat is not None else None
    invalid, bad_json, binary = (None,) * 3 if outcomes is None else (
        outcomes.invalid, outcomes.bad_json, outcomes.binary)
    return Reading(time.monotonic(), websocket.open_connections, websocket.failure, opened, closed, messages,
                   invalid, bad_json, binary, refused)


def _since(after: int | None, before: int | None) -> int | None:
    return None if after is None or before is None else after - before


def rate_text(rate: float) -> str:
    """Messages per second as a reader takes them in: ``24,310``, ``6.5``, ``0``."""
    return f"{rate:,.0f}" if rate >= 100 else f"{rate:.3g}"


def summary(before: Reading, after: Reading) -> tuple[str, dict[str, object]]:
    """The line for the interval between two readings, and its fields for JSON."""
    elapsed = max(after.at - before.at, 1e-9)
    fields: dict[str, object] = {"interval_s": round(elapsed, 3), "connections": after.connections}
    parts = [f"{after.connections:,} connections"]
    opened, closed = _since(after.opened, before.opened), _since(after.closed, before.closed)
    if opened is not None and closed is not None:
        parts[0] += f" (+{opened:,} -{closed:,})"
        fields.update(opened=opened, closed=closed)
    messages = _since(after.messages, before.messages)
    if messages is not None:
        rate = messages / elapsed
        parts.append(f"{rate_text(rate)} msg/s")
        fields.update(messages=messages, msg_s=round(rate, 1))
    errors = {key: _since(getattr(after, key), getattr(before, key)) for key, _ in ERROR_KINDS}
    counted = {key: count for key, count in errors.items() if count is not None}
    if counted:
        total = sum(counted.values())
        kinds = ", ".join(f"{counted[key]:,} {words}" for key, words in ERROR_KINDS if key in counted)
        parts.append(f"{total:,} errors ({kinds})")
        fields.update(errors=total, **counted)
    else:
        parts.append("nothing else counted (--no-metrics)")
    text = f"{', '.join(parts)} in the last {elapsed:.3g} s"
    if after.failure is not None:
        text = f"NOT SERVING ({after.failure}); {text}"
        fields["failure"] = after.failure
    return text, fields


class SummaryLog:
    """The thread that logs ``summary`` every ``interval`` seconds until ``stop``; it does
    not start with an interval of 0, nor when INFO lines are not shown (``--log-level WARNING``)."""

    def __init__(self, websocket: WebSocketServer, chat: ChatWebSocketServer | None, interval: float) -> None:
        self.websocket = websocket
        self.chat = chat
        self.interval = interval
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def start(self) -> None:
        """The first reading is taken here, in the caller's thread: start before the server
        says it listens, and the first line counts every connection from the first."""
        if self.interval <= 0 or not log.isEnabledFor(logging.INFO):
            return
        first = read(self.websocket, self.chat)
        self._thread = threading.Thread(target=self._run, args=(first,), name="SummaryLog", daemon=True)
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(5.0)
            self._thread = None

    def _run(self, before: Reading) -> None:
        while not self._stop.wait(self.interval):
            after = read(self.websocket, self.chat)
            text, fields = summary(before, after)
            log.log(logging.INFO if after.failure is None else logging.WARNING, text, extra={FIELDS: fields})
            before = after
