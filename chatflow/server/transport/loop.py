"""The selector loop: one thread that listens, accepts and drives every connection.

This is the part the Java original takes from Java-WebSocket's ``WebSocketServer``.
One thread and not one per connection: every connection's work holds the GIL anyway,
so more threads would add switches, not parallelism (docs/server-design.md).
"""

from __future__ import annotations

import collections
import errno
import logging
import selectors
import socket
import threading
import time

from collections.abc import Callable

from chatflow.server.config import ServerLimits
from chatflow.server.transport.connection import Admission, Connection
from chatflow.server.transport.handler import Handler
from chatflow.server.transport.stats import TransportStats

log = logging.getLogger("chatflow.server")

RECV_SIZE = 64 * 1024
#: How often the timers (handshake, keepalive, closing, write) are checked.
TICK = 0.25
#: Messages read in one wake-up before they are handled and answered: the batch that
#: keeps the handler's caches warm, and the bound on what a wake-up holds (a 64 KiB
#: read of tiny frames is thousands of them).
BATCH_EVENTS = 1024
#: How many clients one wake-up accepts at most, so that a connection storm does not
#: starve the connections already open.
ACCEPT_BATCH = 256

#: accept() failures that say the process (or the system) is out of descriptors or
#: memory, not that one client went wrong.
_OUT_OF_RESOURCES = frozenset({errno.EMFILE, errno.ENFILE, errno.ENOBUFS, errno.ENOMEM})
_READ, _WRITE = selectors.EVENT_READ, selectors.EVENT_WRITE


class WebSocketServer:
    """Listens, accepts, and runs every connection from one selector thread.

    ``start()`` binds in the caller's thread, so a port in use is an ``OSError`` there;
    ``stop()`` closes every connection with 1001 (going away) and waits for the thread.
    With ``reuse_port`` the listener sets SO_REUSEPORT, so that the worker processes of
    ``--workers`` each listen on the same port and the kernel spreads clients over them.
    With ``stats`` the selector thread counts into it (docs/metrics.md); without, nothing
    is counted. ``failure`` says whether it serves, for ``/health``.
    """

    def __init__(self, handler: Handler, *, host: str, port: int, limits: ServerLimits,
                 shutdown_grace: float, reuse_port: bool = False, stats: TransportStats | None = None) -> None:
        self.handler = handler
        self.stats = stats
        self.host = host
        self.port = port
        self.reuse_port = reuse_port
        self.limits = limits
        self.shutdown_grace = shutdown_grace
        self._admission = Admission(limits.max_connections)
        self._connections: dict[int, Connection] = {}
        #: Connections sent to from another's callback in this wake-up (a room's fan-out).
        self._touched: list[Connection] = []
        self._selector = selectors.DefaultSelector()
        self._listener: socket.socket | None = None
        self._thread: threading.Thread | None = None
        self._wakeup_r, self._wakeup_w = socket.socketpair()
        #: Work handed in from other threads (``call_soon``), run by the selector thread.
        self._calls: collections.deque[Callable[[], None]] = collections.deque()
        self._stop_requested = threading.Event()
        self._grace = shutdown_grace
        self._buffer = memoryview(bytearray(RECV_SIZE))
        #: Out of descriptors: the listener is left out of the selector until the next tick.
        self._accept_paused = False
        #: Since the first failed accept() of a shortage: it is logged once, not per retry.
        self._accept_failing = False
        #: The selector thread's clock, read once per wake-up, not once per message.
        self._now = time.monotonic()
        #: Why the selector thread died, once it has.
        self._failure: str | None = None
        #: What ``inject_failure`` asks the selector thread to raise.
        self._injected: Exception | None = None

    @property
    def address(self) -> tuple[str, int]:
        """The address actually bound (port 0 becomes a real port)."""
        assert self._listener is not None, "start() first"
        return self._listener.getsockname()[:2]

    @property
    def connection_count(self) -> int:
        """Sockets held, whatever their state (for monitoring, tests and the soak)."""
        return len(self._connections)

    @property
    def open_connections(self) -> int:
        """Connections whose opening handshake was accepted and that are not closed yet."""
        return self._admission.open

    @property
    def failure(self) -> str | None:
        """Why this server does not serve WebSocket clients now (its listener closed, its
        selector thread stopped or dead), or None while it does; safe from any thread."""
        thread, listener = self._thread, self._listener
        if self._failure is not None:
            return self._failure
        if thread is None or listener is None:
            return "WebSocket listener not running"
        if not thread.is_alive():
            return "WebSocket selector thread has stopped"
        if listener.fileno() < 0:
            return "WebSocket listener closed"
        return None

    def inject_failure(self, exc: Exception) -> None:
        """Make the selector thread raise ``exc`` at its next wake-up, as a bug in the loop
        would: the drill that shows what a dead loop looks like from outside (``failure``,
        ``/health``), without a bug to wait for. Safe from any thread."""
        self._injected = exc
        self.call_soon(lambda: None)

    def connections(self) -> list[Connection]:
        """A snapshot of every connection held; safe to take from another thread."""
        return list(self._connections.values())

    def call_soon(self, call: Callable[[], None]) -> None:
        """Run ``call`` on the selector thread at its next wake-up; safe from any thread.

        How work from elsewhere (a bus's subscriber thread) reaches the connections,
        which only the selector thread touches. What ``call`` sends to connections
        (``Connection.deliver_text``) goes out in the same wake-up."""
        self._calls.append(call)
        try:
            self._wakeup_w.send(b"c")
        except BlockingIOError:  # the selector has bytes to wake it already
            pass
        except OSError:  # stopped: the socket pair is closed, nothing runs any more
            pass

    def start(self) -> None:
        self._listener = socket.create_server((self.host, self.port), backlog=1024, reuse_port=self.reuse_port)
        self._listener.setblocking(False)
        self._wakeup_r.setblocking(False)
        self._wakeup_w.setblocking(False)
        self._selector.register(self._listener, _READ, None)
        self._selector.register(self._wakeup_r, _READ, None)
        self._thread = threading.Thread(target=self._run, name="WebSocketSelector", daemon=True)
        self._thread.start()

    def stop(self, grace: float | None = None) -> None:
        """Close every connection with 1001, wait up to ``grace`` (default: the server's) for the handshakes."""
        if self._thread is None:
            return
        self._grace = self.shutdown_grace if grace is None else grace
        self._stop_requested.set()
        try:
            self._wakeup_w.send(b"x")
        except BlockingIOError:  # already woken
            pass
        self._thread.join(self._grace + 5)
        self._thread = None
        self._wakeup_r.close()
        self._wakeup_w.close()

    # -- the selector thread ---------------------------------------------------------

    def _run(self) -> None:
        next_tick = time.monotonic() + TICK
        try:
            while not self._stop_requested.is_set():
                if self._injected is not None:
                    raise self._injected
                self._poll()
                now = self._now
                if now >= next_tick:
                    next_tick = now + TICK
                    if self._accept_paused:
                        self._accept_paused = False
                        self._selector.register(self._listener, _READ, None)
                    for conn in list(self._connections.values()):
                        conn.check_timers(now)
            self._shut_down()
        except Exception as exc:
            self._failure = f"WebSocket selector thread failed: {type(exc).__name__}: {exc}"
            log.exception("selector thread failed; closing every connection and the listener")
            # Closed, new clients are refused (or, with --workers, go to the other workers)
            # instead of waiting in a backlog that nothing accepts from.
            self._listener.close()
            for conn in list(self._connections.values()):
                conn.release()
        finally:
            self._selector.close()

    def _poll(self) -> None:
        """One wake-up, in three passes over the ready sockets: read and parse them all,
        then run the handler on every message, then send every reply.

        In passes, the handler runs on up to ``BATCH_EVENTS`` messages in a row, with its
        code and data still in the CPU caches that the kernel's work between two system
        calls would empty (docs/server-design.md, "Why three passes")."""
        buffer = self._buffer
        stats = self.stats
        handled = 0 if stats is None else stats.messages
        ready = self._selector.select(TICK)
        now = self._now = time.monotonic()
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
            if mask & _READ and not conn.released:
                events = conn.receive(buffer, now)
                if events is not None:
                    received.append((conn, events))
                    batched += len(events)
                    if batched >= BATCH_EVENTS:
                        _answer(received, now, self._touched)
                        received, batched = [], 0
            if mask & _WRITE and not conn.released:
                conn.on_writable(now)
        _answer(received, now, self._touched)
        if stats is not None:
            stats.woke(stats.messages - handled)

    def _accept(self) -> None:
        for _ in range(ACCEPT_BATCH):
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
            conn = Connection(sock, address, handler=self.handler, limits=self.limits, admission=self._admission,
                              now=self._now, watch=self._watch, forget=self._forget, touch=self._touched.append,
                              stats=self.stats)
            self._connections[conn.fd] = conn
            self._selector.register(sock, _READ, conn)

    def _watch(self, conn: Connection, events: int) -> None:
        self._selector.modify(conn.sock, events, conn)

    def _forget(self, conn: Connection) -> None:
        del self._connections[conn.fd]
        self._selector.unregister(conn.sock)

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
        calls = self._calls
        # Only what is queued now: a call queued while these run wakes the selector again.
        for _ in range(len(calls)):
            call = calls.popleft()
            try:
                call()
            except Exception:
                log.exception("a call handed to the selector thread failed")

    def _shut_down(self) -> None:
        """Stop accepting, say 1001 to everyone, and wait (bounded) for the answers."""
        if not self._accept_paused:
            self._selector.unregister(self._listener)
        self._listener.close()
        for conn in list(self._connections.values()):
            conn.go_away(self._now)
        deadline = time.monotonic() + self._grace
        while self._connections and time.monotonic() < deadline:
            self._poll()
        for conn in list(self._connections.values()):
            conn.release()


def _answer(received: list[tuple[Connection, list]], now: float, touched: list[Connection]) -> None:
    """Passes two and three: every message to the handler, then every reply out, and what
    the handler sent to other connections (``touched``, emptied)."""
    for conn, events in received:
        if events and not conn.released:
            conn.handle(events)
    for conn, _ in received:
        conn.flush(now)
    for conn in touched:
        if conn.touched:
            conn.flush(now)
    touched.clear()
