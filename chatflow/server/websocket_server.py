"""A thread-based WebSocket server: one selector thread around the `websockets` protocol.

This is the part the Java original takes from Java-WebSocket's ``WebSocketServer``:
listening, the opening handshake, framing, keepalive and the closing handshake. The
protocol itself (RFC 6455 parsing, masking, close codes, limits) is the `websockets`
library's sans-I/O ``ServerProtocol``; this module only moves bytes between sockets
and that protocol, and hands whole messages to a *handler*, which is where the
application (chat, or echo) lives.

Why one selector thread and not a thread per connection: every connection's work
holds the GIL anyway, so more threads add no parallelism, only switches. One thread
that reads every ready socket in turn spends its CPU on messages instead (measured in
docs/server-design.md).
"""

from __future__ import annotations

import codecs
import collections
import errno
import logging
import selectors
import socket
import threading
import time
from typing import Protocol as Interface

from websockets.exceptions import InvalidHeader
from websockets.frames import CloseCode, Frame, Opcode
from websockets.protocol import SEND_EOF, State
from websockets.server import ServerProtocol

from chatflow.config import SHUTDOWN_GRACE, ServerLimits

log = logging.getLogger("chatflow.server")
protocol_log = logging.getLogger("chatflow.server.protocol")

RECV_SIZE = 64 * 1024
TICK = 0.25
#: Messages read in one wake-up before they are handled and answered: the batch that
#: keeps the handler's caches warm, and the bound on what a wake-up holds (a 64 KiB
#: read of tiny frames is thousands of them).
BATCH_EVENTS = 1024

_TEXT, _BINARY, _CONT = Opcode.TEXT, Opcode.BINARY, Opcode.CONT
_OPEN, _CONNECTING = State.OPEN, State.CONNECTING
#: accept() failures that say the process (or the system) is out of descriptors or
#: memory, not that one client went wrong.
_OUT_OF_RESOURCES = frozenset({errno.EMFILE, errno.ENFILE, errno.ENOBUFS, errno.ENOMEM})


class Handler(Interface):
    """What the application implements; the server calls it from its selector thread.

    The same four callbacks as Java-WebSocket's ``onOpen``/``onMessage``/``onClose``.
    A callback must not block: every other connection's messages wait for it.
    """

    def on_open(self, conn: Connection) -> None: ...

    def on_text(self, conn: Connection, text: str) -> None: ...

    def on_binary(self, conn: Connection, data: bytes) -> None: ...

    def on_close(self, conn: Connection) -> None: ...


def _unsupported_version(exc: Exception | None) -> bool:
    return isinstance(exc, InvalidHeader) and exc.name == "Sec-WebSocket-Version"


class Connection:
    """One client: its socket, its protocol state, its unsent bytes.

    Owned by the selector thread; handlers may call ``send_*`` and ``close`` only from
    their callbacks.
    """

    __slots__ = (
        "server", "sock", "fd", "remote_address", "protocol", "path", "context",
        "opened", "accepted_at", "last_received", "ping_sent_at", "closing_since",
        "_out", "_out_size", "_last_write", "_eof_pending", "_eof_sent",
        "_fragments", "_decoder", "_interest", "released",
    )

    def __init__(self, server: WebSocketServer, sock: socket.socket, address: tuple) -> None:
        self.server = server
        self.sock = sock
        self.fd = sock.fileno()
        self.remote_address = address
        self.protocol = ServerProtocol(max_size=server.limits.max_message_size, logger=protocol_log)
        self.path = ""
        #: Free for the handler to keep per-connection state in (the chat room).
        self.context: object = None
        self.opened = False
        now = server.now
        self.accepted_at = now
        self.last_received = now
        self.ping_sent_at: float | None = None
        self.closing_since: float | None = None
        self._out: collections.deque[memoryview] = collections.deque()
        self._out_size = 0
        self._last_write = now
        self._eof_pending = False
        self._eof_sent = False
        self._fragments: list = []
        self._decoder: codecs.IncrementalDecoder | None = None
        self._interest = selectors.EVENT_READ
        self.released = False

    # -- for handlers -------------------------------------------------------------

    def send_text(self, data: str | bytes) -> None:
        """Queue a text frame; it is written once this wake-up's messages are handled."""
        if self.protocol.state is _OPEN:
            self.protocol.send_text(data.encode() if isinstance(data, str) else data)

    def send_binary(self, data: bytes) -> None:
        if self.protocol.state is _OPEN:
            self.protocol.send_binary(data)

    def close(self, code: int = CloseCode.NORMAL_CLOSURE, reason: str = "") -> None:
        """Start the closing handshake; the socket closes when the client answers."""
        if self.protocol.state is _OPEN:
            self.protocol.send_close(code, reason)

    # -- for the selector thread -------------------------------------------------------

    def on_readable(self, buffer: memoryview) -> list | None:
        """Read what the socket has into the shared buffer and feed it to the protocol.

        Returns what the protocol made of it (frames, the handshake request), to be
        dispatched by the caller, or None when there was nothing to read or the client
        is gone; the replies are not sent here either (see ``WebSocketServer._poll``).
        """
        try:
            size = self.sock.recv_into(buffer)
        except (BlockingIOError, InterruptedError):
            return None
        except OSError:
            size = 0
        protocol = self.protocol
        if size:
            self.last_received = self.server.now
            self.ping_sent_at = None
            protocol.receive_data(buffer[:size])
            return protocol.events_received()
        protocol.receive_eof()
        self._flush()
        self.server._release(self)
        return None

    def on_writable(self) -> None:
        self._write_out()
        self._sync_interest()

    def _dispatch(self, events: list) -> None:
        for event in events:
            if event.__class__ is Frame:
                opcode = event.opcode
                if (opcode is _TEXT or opcode is _BINARY or opcode is _CONT) and self.opened:
                    self._receive_data_frame(event)
            else:
                self._handshake(event)

    def _handshake(self, request) -> None:
        protocol = self.protocol
        server = self.server
        if server.open_connections >= server.limits.max_connections:
            response = protocol.reject(503, "Server at its connection limit, try again later.\n")
        else:
            response = protocol.accept(request)
            if response.status_code == 400 and _unsupported_version(protocol.handshake_exc):
                # RFC 6455 §4.4: say which version this server speaks, so that a client
                # offering another one can retry with 13; the library answers a bare 400.
                response = protocol.reject(426, f"Failed to open a WebSocket connection: {protocol.handshake_exc}.\n")
                response.headers["Sec-WebSocket-Version"] = "13"
        protocol.send_response(response)
        if response.status_code != 101:
            log.debug("handshake from %s refused: %d", self.remote_address, response.status_code)
            return
        self.path = request.path
        self.opened = True
        server.open_connections += 1
        server._call(server.handler.on_open, self)

    def _receive_data_frame(self, frame: Frame) -> None:
        opcode = frame.opcode
        try:
            if frame.fin and opcode is not _CONT:
                if opcode is _TEXT:
                    self.server._call(self.server.handler.on_text, self, frame.data.decode())
                else:
                    self.server._call(self.server.handler.on_binary, self, frame.data)
                return
            if opcode is _TEXT:
                self._decoder = codecs.getincrementaldecoder("utf-8")()
            if self._decoder is not None:
                # Decoding each fragment as it comes fails invalid UTF-8 at once,
                # not only when the last fragment arrives.
                part = self._decoder.decode(frame.data, frame.fin)
            else:
                part = frame.data
            # Empty fragments add nothing to the size limit's count: kept, a stream of
            # them would grow this list without bound.
            if part:
                self._fragments.append(part)
            if frame.fin:
                parts, self._fragments = self._fragments, []
                decoder, self._decoder = self._decoder, None
                if decoder is not None:
                    self.server._call(self.server.handler.on_text, self, "".join(parts))
                else:
                    self.server._call(self.server.handler.on_binary, self, b"".join(parts))
        except UnicodeDecodeError as exc:
            self._fragments, self._decoder = [], None
            self.protocol.fail(CloseCode.INVALID_DATA, f"{exc.reason} at position {exc.start}")

    def _flush(self) -> None:
        """Move what the protocol wants sent to the socket; the rest waits for EPOLLOUT."""
        if self.released:
            return
        writes = self.protocol.data_to_send()
        if len(writes) == 1 and not self._out and writes[0]:
            # The common case, one reply and nothing waiting: no buffering at all.
            data = writes[0]
            try:
                sent = self.sock.send(data)
            except (BlockingIOError, InterruptedError):
                sent = 0
            except OSError as exc:
                self._write_failed(exc)
                return
            if sent < len(data):
                self._out.append(memoryview(data)[sent:])
                self._out_size += len(data) - sent
                self._last_write = self.server.now
            elif self._interest == selectors.EVENT_READ and self.protocol.state is _OPEN:
                return
        elif writes:
            for data in writes:
                if data == SEND_EOF:
                    self._eof_pending = True
                else:
                    self._out.append(memoryview(data))
                    self._out_size += len(data)
            self._write_out()
        if self.opened and self.closing_since is None and self.protocol.state is not _OPEN:
            self.closing_since = self.server.now
        self._sync_interest()

    def _write_out(self) -> None:
        out = self._out
        try:
            while out:
                chunk = out[0]
                sent = self.sock.send(chunk)
                self._out_size -= sent
                self._last_write = self.server.now
                if sent < len(chunk):
                    out[0] = chunk[sent:]
                    break
                out.popleft()
            if not out and self._eof_pending and not self._eof_sent:
                self._eof_pending = False
                self._eof_sent = True
                self.sock.shutdown(socket.SHUT_WR)
        except (BlockingIOError, InterruptedError):
            pass
        except OSError as exc:
            self._write_failed(exc)

    def _write_failed(self, exc: OSError) -> None:
        """The client is gone (reset, broken pipe): drop what was to be sent, and it."""
        if exc.errno not in (errno.EPIPE, errno.ECONNRESET, errno.ENOTCONN):
            log.debug("write to %s failed: %s", self.remote_address, exc)
        self._out.clear()
        self._out_size = 0
        self._eof_pending = False
        self.server._release(self)

    def _sync_interest(self) -> None:
        """Wait for writability while bytes are pending; stop reading from a client
        that does not read its replies (bounded memory: the kernel holds the rest)."""
        if self.released:
            return
        wanted = 0
        if self._out_size < self.server.limits.send_buffer_high_water:
            wanted = selectors.EVENT_READ
        if self._out_size or self._eof_pending:
            wanted |= selectors.EVENT_WRITE
        if wanted != self._interest:
            self._interest = wanted
            self.server._selector.modify(self.sock, wanted, self)

    def check_timers(self, now: float) -> None:
        """Handshake, keepalive, closing and write timeouts; called every tick."""
        limits = self.server.limits
        state = self.protocol.state
        if state is _CONNECTING:
            if now - self.accepted_at > limits.handshake_timeout:
                log.debug("handshake timeout for %s", self.remote_address)
                self.server._release(self)
            return
        if self._out_size and now - self._last_write > limits.write_timeout:
            log.info("closing %s: it has not read its replies for %.0f s", self.remote_address, limits.write_timeout)
            self.server._release(self)
            return
        if state is _OPEN:
            if self.ping_sent_at is None:
                if now - self.last_received >= limits.ping_interval:
                    self.protocol.send_ping(b"keepalive")
                    self.ping_sent_at = now
                    self._flush()
            elif now - self.ping_sent_at > limits.ping_timeout:
                log.info("closing %s: no answer to keepalive ping", self.remote_address)
                self.protocol.fail(CloseCode.INTERNAL_ERROR, "keepalive ping timeout")
                self._flush()
                self.server._release(self)
        elif self.closing_since is not None and now - self.closing_since > limits.close_timeout:
            self.server._release(self)


class WebSocketServer:
    """Listens, accepts, and runs every connection from one selector thread.

    ``start()`` binds in the caller's thread, so a port in use is an ``OSError`` there;
    ``stop()`` closes every connection with 1001 (going away) and waits for the thread.
    """

    def __init__(
        self,
        handler: Handler,
        host: str = "127.0.0.1",
        port: int = 0,
        limits: ServerLimits = ServerLimits(),
    ) -> None:
        self.handler = handler
        self.host = host
        self.port = port
        self.limits = limits
        self.open_connections = 0
        self._connections: dict[int, Connection] = {}
        self._selector = selectors.DefaultSelector()
        self._listener: socket.socket | None = None
        self._thread: threading.Thread | None = None
        self._wakeup_r, self._wakeup_w = socket.socketpair()
        self._stop_requested = threading.Event()
        self._grace = SHUTDOWN_GRACE
        self._buffer = memoryview(bytearray(RECV_SIZE))
        #: Out of descriptors: the listener is left out of the selector until the next tick.
        self._accept_paused = False
        #: Since the first failed accept() of a shortage: it is logged once, not per retry.
        self._accept_failing = False
        #: The selector thread's clock, read once per wake-up, not once per message.
        self.now = time.monotonic()

    @property
    def address(self) -> tuple[str, int]:
        """The address actually bound (port 0 becomes a real port)."""
        assert self._listener is not None, "start() first"
        return self._listener.getsockname()[:2]

    @property
    def connection_count(self) -> int:
        """Sockets held, whatever their state (for tests and the soak script)."""
        return len(self._connections)

    def start(self) -> None:
        self._listener = socket.create_server((self.host, self.port), backlog=1024)
        self._listener.setblocking(False)
        self._wakeup_r.setblocking(False)
        self._selector.register(self._listener, selectors.EVENT_READ, None)
        self._selector.register(self._wakeup_r, selectors.EVENT_READ, None)
        self._thread = threading.Thread(target=self._run, name="WebSocketSelector", daemon=True)
        self._thread.start()

    def stop(self, grace: float = SHUTDOWN_GRACE) -> None:
        """Close every connection with 1001, wait up to ``grace`` for the handshakes."""
        if self._thread is None:
            return
        self._grace = grace
        self._stop_requested.set()
        self._wakeup_w.send(b"x")
        self._thread.join(grace + 5)
        self._thread = None
        self._wakeup_r.close()
        self._wakeup_w.close()

    # -- the selector thread ---------------------------------------------------------

    def _run(self) -> None:
        next_tick = time.monotonic() + TICK
        try:
            while not self._stop_requested.is_set():
                self._poll()
                now = self.now
                if now >= next_tick:
                    next_tick = now + TICK
                    if self._accept_paused:
                        self._accept_paused = False
                        self._selector.register(self._listener, selectors.EVENT_READ, None)
                    for conn in list(self._connections.values()):
                        conn.check_timers(now)
            self._shut_down()
        except Exception:
            log.exception("selector thread failed; closing every connection")
            for conn in list(self._connections.values()):
                self._release(conn)
        finally:
            self._selector.close()

    def _poll(self) -> None:
        """One wake-up, in three passes over the ready sockets: read and parse them all,
        then run the handler on every message, then send every reply.

        Done per socket instead (read, handle, send, next socket), each message's
        Python runs between two system calls and at several times its cost in a loop,
        which fits CPU caches emptied by the kernel's work in between; in passes the
        handler runs on up to ``BATCH_EVENTS`` messages in a row (measured in
        docs/performance.md)."""
        buffer = self._buffer
        ready = self._selector.select(TICK)
        self.now = time.monotonic()
        received: list[tuple[Connection, list]] = []
        batched = 0
        for key, mask in ready:
            conn = key.data
            if conn is None:
                if key.fileobj is self._listener:
                    self._accept()
                else:
                    self._drain_wakeup()
                continue
            if mask & selectors.EVENT_READ and not conn.released:
                events = conn.on_readable(buffer)
                if events is not None:
                    received.append((conn, events))
                    batched += len(events)
                    if batched >= BATCH_EVENTS:
                        self._answer(received)
                        received, batched = [], 0
            if mask & selectors.EVENT_WRITE and not conn.released:
                conn.on_writable()
        self._answer(received)

    @staticmethod
    def _answer(received: list[tuple[Connection, list]]) -> None:
        """Passes two and three: every message to the handler, then every reply out."""
        for conn, events in received:
            if events and not conn.released:
                conn._dispatch(events)
        for conn, _ in received:
            conn._flush()

    def _accept(self) -> None:
        for _ in range(256):
            try:
                sock, address = self._listener.accept()
            except (BlockingIOError, InterruptedError):
                if self._accept_failing:
                    self._accept_failing = False
                    log.warning("accepting connections again: every waiting client was accepted")
                return
            except OSError as exc:
                if exc.errno in _OUT_OF_RESOURCES:
                    self._pause_accepting(exc)
                else:
                    # The client reset before accept(): the listener stays up.
                    log.warning("accept failed: %s", exc)
                return
            sock.setblocking(False)
            sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            conn = Connection(self, sock, address)
            self._connections[conn.fd] = conn
            self._selector.register(sock, selectors.EVENT_READ, conn)
            log.debug("accepted %s", address)

    def _pause_accepting(self, exc: OSError) -> None:
        """Out of descriptors: retry at the next tick, not at once.

        The waiting clients keep the listener readable, so retrying at once spins
        this thread (and floods the log) until a descriptor frees up; the clients
        wait in the backlog meanwhile, and the connections already open are served.
        """
        self._selector.unregister(self._listener)
        self._accept_paused = True
        if not self._accept_failing:
            self._accept_failing = True
            log.warning("accept failed: %s; retrying every %g s until descriptors free up", exc, TICK)

    def _drain_wakeup(self) -> None:
        try:
            while self._wakeup_r.recv(4096):
                pass
        except (BlockingIOError, InterruptedError):
            pass

    def _shut_down(self) -> None:
        """Stop accepting, say 1001 to everyone, and wait (bounded) for the answers."""
        if not self._accept_paused:
            self._selector.unregister(self._listener)
        self._listener.close()
        for conn in list(self._connections.values()):
            if conn.protocol.state is _OPEN:
                conn.close(CloseCode.GOING_AWAY, "server shutting down")
                conn._flush()
            else:
                self._release(conn)
        deadline = time.monotonic() + self._grace
        while self._connections and time.monotonic() < deadline:
            self._poll()
        for conn in list(self._connections.values()):
            self._release(conn)

    def _call(self, callback, conn: Connection, *args) -> None:
        """Run a handler callback; a failing handler costs its own connection only."""
        try:
            callback(conn, *args)
        except Exception:
            log.exception("handler failed on a message from %s", conn.remote_address)
            if conn.protocol.state is _OPEN:
                conn.protocol.fail(CloseCode.INTERNAL_ERROR, "internal error")

    def _release(self, conn: Connection) -> None:
        """Close the socket and forget the connection; safe to call more than once."""
        if conn.released:
            return
        conn.released = True
        del self._connections[conn.fd]
        self._selector.unregister(conn.sock)
        conn.sock.close()
        if conn.opened:
            self.open_connections -= 1
            self._call(self.handler.on_close, conn)
        log.debug("closed %s", conn.remote_address)
