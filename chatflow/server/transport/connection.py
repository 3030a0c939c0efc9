"""One client connection: its socket, its `websockets` protocol state, its timers.

The connection moves bytes between its socket and its sans-I/O ``ServerProtocol``, and
hands whole messages to the handler. It knows nothing of the selector loop that drives
it: the loop calls ``receive``, ``handle``, ``flush``, ``on_writable`` and
``check_timers``, and the connection calls back only the two functions it was given,
``watch`` (the events to wait for on its socket changed) and ``forget`` (it is closed).
"""

from __future__ import annotations

import errno
import logging
import selectors
import socket
from collections.abc import Callable
from time import monotonic, perf_counter_ns

from websockets.frames import CloseCode, Frame, Opcode
from websockets.http11 import Request
from websockets.protocol import SEND_EOF, State
from websockets.server import ServerProtocol

from chatflow.logs import FIELDS
from chatflow.server.config import ServerLimits
from chatflow.server.transport.assembler import MessageAssembler
from chatflow.server.transport.handler import Handler
from chatflow.server.transport.handshake import handshake_response, refusal
from chatflow.server.transport.output import OutputBuffer
from chatflow.server.transport.stats import TransportStats, ending

log = logging.getLogger("chatflow.server")
#: One line per connection event at DEBUG: opened, closed, refused (docs/logging.md).
events_log = logging.getLogger("chatflow.server.connections")
_DEBUG = logging.DEBUG
protocol_log = logging.getLogger("chatflow.server.protocol")

_TEXT, _BINARY, _CONT = Opcode.TEXT, Opcode.BINARY, Opcode.CONT
_OPEN, _CONNECTING = State.OPEN, State.CONNECTING
_READ, _WRITE = selectors.EVENT_READ, selectors.EVENT_WRITE
#: Write errors that only say the client is gone.
_CLIENT_GONE = frozenset({errno.EPIPE, errno.ECONNRESET, errno.ENOTCONN})


class Admission:
    """Open connections counted against the limit, shared by one server's connections."""

    __slots__ = ("limit", "_open")

    def __init__(self, limit: int) -> None:
        self.limit = limit
        self._open = 0

    @property
    def open(self) -> int:
        """Connections admitted and not yet left."""
        return self._open

    @property
    def full(self) -> bool:
        return self._open >= self.limit

    def admit(self) -> None:
        """A handshake was accepted."""
        self._open += 1

    def leave(self) -> None:
        """An admitted connection closed."""
        self._open -= 1


class Connection:
    """One client, owned by the selector thread.

    Handlers may call ``send_text``, ``send_binary`` and ``close``, from their callbacks
    only; what they send is written once the wake-up's messages are all handled.
    """

    __slots__ = (
        "sock", "fd", "remote_address", "protocol", "path", "context", "opened", "released",
        "output", "assembler", "_handler", "_limits", "_admission", "_watch", "_forget",
        "_interest", "_accepted_at", "_last_received", "_ping_sent_at", "_closing_since", "_touch", "touched",
        "_stats", "received", "_refusal_said",
    )

    def __init__(
        self,
        sock: socket.socket,
        address: tuple,
        *,
        handler: Handler,
        limits: ServerLimits,
        admission: Admission,
        now: float,
        watch: Callable[[Connection, int], None],
        forget: Callable[[Connection], None],
        touch: Callable[[Connection], None] | None = None,
        stats: TransportStats | None = None,
    ) -> None:
        self.sock = sock
        self.fd = sock.fileno()
        self.remote_address = address
        self.protocol = ServerProtocol(max_size=limits.max_message_size, logger=protocol_log)
        #: The request path of the opening handshake, once it is accepted.
        self.path = ""
        #: Free for the handler to keep per-connection state in (the chat room).
        self.context: object = None
        self.opened = False
        self.released = False
        self.output = OutputBuffer(limits.send_buffer_high_water, now)
        self.assembler = MessageAssembler()
        self._handler = handler
        self._limits = limits
        self._admission = admission
        self._watch = watch
        self._forget = forget
        #: Called the first time in a wake-up that another connection's callback sends here
        #: (``deliver_text``), so that the loop flushes this connection too.
        self._touch = touch
        self.touched = False
        self._interest = _READ
        self._accepted_at = now
        self._last_received = now
        self._ping_sent_at: float | None = None
        self._closing_since: float | None = None
        #: The server's counts (None: ``--no-metrics``, nothing is counted).
        self._stats = stats
        #: Whole messages received, for the connection's closing line.
        self.received = 0
        #: A connection that never opened has had its one refusal line (``_refused``).
        self._refusal_said = False

    @property
    def interest(self) -> int:
        """The selector events this connection waits for (no EVENT_READ: it stopped reading)."""
        return self._interest

    # -- for handlers ------------------------------------------------------------------

    def send_text(self, data: str | bytes) -> None:
        """Queue a text frame; it is written once this wake-up's messages are handled."""
        if self.protocol.state is _OPEN:
            self.protocol.send_text(data.encode() if isinstance(data, str) else data)
            if self._stats is not None:
                self._stats.replies += 1

    def send_binary(self, data: bytes) -> None:
        if self.protocol.state is _OPEN:
            self.protocol.send_binary(data)
            if self._stats is not None:
                self._stats.replies += 1

    def close(self, code: int = CloseCode.NORMAL_CLOSURE, reason: str = "") -> None:
        """Start the closing handshake; the socket closes when the client answers."""
        if self.protocol.state is _OPEN:
            self.protocol.send_close(code, reason)

    def deliver_text(self, data: bytes) -> None:
        """``send_text`` from another connection's callback (a room's fan-out): written in
        this wake-up too, though this connection had nothing to read."""
        if self.protocol.state is _OPEN:
            self.protocol.send_text(data)
            self._mark()

    def evict(self, code: int, reason: str) -> None:
        """``close`` from another connection's callback."""
        if self.protocol.state is _OPEN:
            self.protocol.send_close(code, reason)
            self._mark()

    @property
    def backlog(self) -> int:
        """Bytes queued for this client that the socket has not taken yet."""
        return self.output.size

    def _mark(self) -> None:
        if not self.touched and self._touch is not None:
            self.touched = True
            self._touch(self)

    # -- for the selector loop ---------------------------------------------------------

    def receive(self, buffer: memoryview, now: float) -> list | None:
        """Read what the socket has into the shared buffer and feed it to the protocol.

        Returns what the protocol made of it (frames, the handshake request) for
        ``handle``, or None when there was nothing to read or the client is gone.
        """
        try:
            size = self.sock.recv_into(buffer)
        except (BlockingIOError, InterruptedError):
            return None
        except OSError:
            size = 0
        protocol = self.protocol
        if size:
            if self._stats is not None:
                self._stats.bytes_in += size
            self._last_received = now
            self._ping_sent_at = None
            protocol.receive_data(buffer[:size])
            return protocol.events_received()
        protocol.receive_eof()
        self.flush(now)
        self.release()
        return None

    def handle(self, events: list) -> None:
        """Answer the handshake and give each whole message to the handler."""
        for event in events:
            if event.__class__ is Frame:
                opcode = event.opcode
                # Data frames behind a refused handshake reach no handler.
                if (opcode is _TEXT or opcode is _BINARY or opcode is _CONT) and self.opened:
                    self._receive_data_frame(event)
            else:
                self._handshake(event)

    def flush(self, now: float) -> None:
        """Move what the protocol wants sent to the socket; the rest waits for EPOLLOUT."""
        self.touched = False
        if self.released:
            return
        writes = self.protocol.data_to_send()
        output = self.output
        if len(writes) == 1 and not output.size and writes[0]:
            # The common case, one reply and nothing waiting: no buffering at all.
            data = writes[0]
            try:
                sent = self.sock.send(data)
            except (BlockingIOError, InterruptedError):
                sent = 0
            except OSError as exc:
                self._write_failed(exc)
                return
            if self._stats is not None:
                self._stats.bytes_out += sent
            if sent < len(data):
                output.append(memoryview(data)[sent:], now)
            elif self._interest == _READ and self.protocol.state is _OPEN:
                return
        elif writes:
            for data in writes:
                if data == SEND_EOF:
                    output.append_eof()
                else:
                    output.append(data)
            self._write_out(now)
        if self.opened and self._closing_since is None and self.protocol.state is not _OPEN:
            self._closing_since = now
        self._sync_interest()

    def on_writable(self, now: float) -> None:
        self._write_out(now)
        self._sync_interest()

    def check_timers(self, now: float) -> None:
        """Handshake, keepalive, closing and write timeouts; called every tick."""
        limits = self._limits
        state = self.protocol.state
        if state is _CONNECTING:
            if now - self._accepted_at > limits.handshake_timeout:
                self._refused("no opening handshake within %g s" % limits.handshake_timeout)
                self.release()
            return
        if self.output.size and now - self.output.last_write > limits.write_timeout:
            log.info("closing %s: it has not read its replies for %.0f s", self.remote_address, limits.write_timeout)
            self.release()
            return
        if state is _OPEN:
            if self._ping_sent_at is None:
                if now - self._last_received >= limits.ping_interval:
                    self.protocol.send_ping(b"keepalive")
                    self._ping_sent_at = now
                    self.flush(now)
            elif now - self._ping_sent_at > limits.ping_timeout:
                log.info("closing %s: no answer to keepalive ping", self.remote_address)
                self.protocol.fail(CloseCode.INTERNAL_ERROR, "keepalive ping timeout")
                self.flush(now)
                self.release()
        elif self._closing_since is not None and now - self._closing_since > limits.close_timeout:
            self.release()

    def go_away(self, now: float) -> None:
        """Shutdown: close an open connection with 1001, drop one in any other state."""
        if self.protocol.state is _OPEN:
            self.close(CloseCode.GOING_AWAY, "server shutting down")
            self.flush(now)
        else:
            self.release()

    def release(self) -> None:
        """Close the socket and tell the loop and the handler; safe to call more than once."""
        if self.released:
            return
        self.released = True
        self._forget(self)
        self.sock.close()
        if self.opened:
            self._admission.leave()
            code, reason = ending(self.protocol)
            if self._stats is not None:
                self._stats.close(code)
            self._call(self._handler.on_close)
            if events_log.isEnabledFor(_DEBUG):
                self._log_closed(code, reason)
        elif not self._refusal_said:
            self._refused("gone before its opening handshake")

    def _log_closed(self, code: int, reason: str) -> None:
        lived = monotonic() - self._accepted_at
        events_log.debug("closed %s on %s: %d%s after %.3f s, %d message%s", peer(self.remote_address), self.path,
                         code, f" ({reason})" if reason else "", lived, self.received,
                         "" if self.received == 1 else "s",
                         extra={FIELDS: {"event": "closed", "peer": peer(self.remote_address), "path": self.path,
                                         "code": code, "reason": reason, "lived_s": round(lived, 3),
                                         "messages": self.received}})

    def _refused(self, why: str, status: int | None = None) -> None:
        """The line of a connection that never opened (``status``: the HTTP answer it got)."""
        self._refusal_said = True
        if events_log.isEnabledFor(_DEBUG):
            answer = "" if status is None else f"{status} "
            events_log.debug("refused %s: %s%s", peer(self.remote_address), answer, why,
                             extra={FIELDS: {"event": "refused", "peer": peer(self.remote_address),
                                             "status": status, "why": why}})

    # -- inside ------------------------------------------------------------------------

    def _handshake(self, request: Request) -> None:
        protocol = self.protocol
        response = handshake_response(protocol, request, at_capacity=self._admission.full)
        protocol.send_response(response)
        if response.status_code != 101:
            self._refused(refusal(response.status_code, protocol.handshake_exc), response.status_code)
            if self._stats is not None:
                self._stats.refuse(response.status_code)
            return
        self.path = request.path
        self.opened = True
        self._admission.admit()
        if self._stats is not None:
            self._stats.opened += 1
        self._call(self._handler.on_open)
        if events_log.isEnabledFor(_DEBUG):
            # After on_open: the chat has put the connection in its room (``context``) by then.
            room = "" if self.context is None else f" (room {self.context})"
            events_log.debug("opened %s on %s%s", peer(self.remote_address), self.path, room,
                             extra={FIELDS: {"event": "opened", "peer": peer(self.remote_address),
                                             "path": self.path, "room": self.context}})

    def _receive_data_frame(self, frame: Frame) -> None:
        try:
            message = self.assembler.add(frame)
        except UnicodeDecodeError as exc:
            self.protocol.fail(CloseCode.INVALID_DATA, f"{exc.reason} at position {exc.start}")
            return
        if message is None:
            return
        self.received += 1
        callback = self._handler.on_text if message.__class__ is str else self._handler.on_binary
        stats = self._stats
        if stats is None:
            self._call(callback, message)
            return
        stats.messages += 1
        stats.until_timed -= 1
        if stats.until_timed:
            self._call(callback, message)
        else:
            started = perf_counter_ns()
            self._call(callback, message)
            stats.timed(perf_counter_ns() - started)

    def _call(self, callback: Callable, *args: object) -> None:
        """Run a handler callback; a failing handler costs its own connection only."""
        try:
            callback(self, *args)
        except Exception:
            log.exception("handler failed on a message from %s", self.remote_address)
            if self.protocol.state is _OPEN:
                self.protocol.fail(CloseCode.INTERNAL_ERROR, "internal error")

    def _write_out(self, now: float) -> None:
        try:
            sent = self.output.write_to(self.sock, now)
        except OSError as exc:
            self._write_failed(exc)
            return
        if self._stats is not None:
            self._stats.bytes_out += sent

    def _write_failed(self, exc: OSError) -> None:
        """The client is gone (reset, broken pipe): drop what was to be sent, and it."""
        if exc.errno not in _CLIENT_GONE:
            log.debug("write to %s failed: %s", self.remote_address, exc)
        self.output.clear()
        self.release()

    def _sync_interest(self) -> None:
        """Wait for writability while bytes are pending; stop reading from a client
        that does not read its replies (bounded memory: the kernel holds the rest)."""
        if self.released:
            return
        output = self.output
        wanted = 0 if output.full else _READ
        if not output.empty:
            wanted |= _WRITE
        if wanted != self._interest:
            self._interest = wanted
            self._watch(self, wanted)


def peer(address: tuple) -> str:
    """A remote address as ``host:port`` (``[host]:port`` for IPv6)."""
    host, port = address[0], address[1]
    return f"[{host}]:{port}" if ":" in host else f"{host}:{port}"
