"""The broadcast scenario's listening members: M per room, all on one thread.

Hundreds of members that only listen need no thread each: one thread multiplexes every
member's socket with ``selectors``, and each member's WebSocket is the ``websockets``
library's sans-I/O ``ClientProtocol`` (handshake, frames, pings answered, the closing
handshake), fed the socket's bytes and asked what to send. The members are dealt over
the servers given (member k of room r on server (r·M + k) mod n), so that a room spans
instances. A member that the server closes (1008: it fell behind) or whose connection
drops reconnects after the retry policy's backoff, at most its attempts in a row, and
then is lost; what it missed meanwhile counts as missing (``chatflow.client.fanout``).
"""

from __future__ import annotations

import errno
import logging
import selectors
import socket
import threading
import time
from collections.abc import Callable, Sequence
from time import perf_counter_ns

from websockets.client import ClientProtocol
from websockets.frames import Opcode
from websockets.http11 import Response
from websockets.protocol import State
from websockets.uri import parse_uri

from chatflow.client.config import FANOUT_DRAIN_LIMIT, LoadTestConfig
from chatflow.client.fanout import FanoutCounts, FanoutTracker

log = logging.getLogger("chatflow.client.members")

READ_SIZE = 256 * 1024
#: The longest the thread sleeps between looks at its timers.
TICK = 0.05
#: The close code of a connection that ended without a close frame (RFC 6455 §7.1.5).
NO_CLOSE_FRAME = 1006
#: How often the drain looks at the deliveries' progress.
DRAIN_POLL = 0.05

_TEXT, _CONT = Opcode.TEXT, Opcode.CONT
_OPEN, _CLOSED = State.OPEN, State.CLOSED
_READ, _WRITE = selectors.EVENT_READ, selectors.EVENT_WRITE


def member_server(servers: Sequence[str], room: int, index: int, members: int) -> str:
    """Where member ``index`` of ``room`` listens: consecutive members on consecutive servers."""
    return servers[(room * members + index) % len(servers)]


class Member:
    """One listening member: its room, its server, its socket and protocol while connected."""

    __slots__ = ("room", "index", "url", "uri", "sock", "protocol", "connecting_since", "opened", "ever_opened",
                 "attempts", "retry_at", "lost", "out", "eof", "closing_since", "parts", "requested")

    def __init__(self, room: int, index: int, server: str) -> None:
        self.room = room
        self.index = index
        self.url = f"{server}/chat/{room}"
        self.uri = parse_uri(self.url)
        self.sock: socket.socket | None = None
        self.protocol: ClientProtocol | None = None
        self.connecting_since = 0.0
        self.opened = self.ever_opened = self.lost = False
        #: Failed connection attempts in a row; when the next is due.
        self.attempts = 0
        self.retry_at: float | None = 0.0
        self.out = bytearray()
        self.eof = False
        self.closing_since: float | None = None
        #: A fragmented message's frames so far.
        self.parts: list[bytes] | None = None
        #: Whether the opening handshake's request is made (the TCP connection is up).
        self.requested = False


class RoomMembers(threading.Thread):
    """Every listening member of ``rooms``, on this one thread, reporting to ``tracker``."""

    def __init__(self, config: LoadTestConfig, rooms: Sequence[int], tracker: FanoutTracker) -> None:
        super().__init__(name="RoomMembers", daemon=True)
        self.timeout = config.timeout
        self.retry = config.retry
        self.tracker = tracker
        self.members = [Member(room, k, member_server(config.servers, room, k, config.room_members))
                        for room in rooms for k in range(config.room_members)]
        self._selector = selectors.DefaultSelector()
        self._stopping = threading.Event()
        #: Set once every member has joined its room or given up.
        self._settled = threading.Event()

    def open(self, timeout: float) -> int:
        """Start, and wait until every member has joined (or given up), ``timeout`` at most:
        the senders must not start before the rooms are full. Returns the members joined."""
        self.start()
        self._settled.wait(timeout)
        return sum(member.ever_opened for member in self.members)

    def close(self, timeout: float = 5.0) -> None:
        """Every member closed (a close frame each, then the socket); the thread joined."""
        self._stopping.set()
        if self.is_alive():
            self.join(timeout)

    def run(self) -> None:
        try:
            while not self._stopping.is_set():
                now = time.monotonic()
                self._timers(now)
                for key, events in self._selector.select(self._next_wake(now)):
                    member = key.data
                    if events & _WRITE:
                        self._on_writable(member)
                    if events & _READ and member.sock is not None:
                        self._on_readable(member)
        finally:
            self._shut_down()

    # -- connecting

    def _connect(self, member: Member, now: float) -> None:
        member.retry_at = None
        uri = member.uri
        try:
            sock = socket.socket(socket.AF_INET6 if ":" in uri.host else socket.AF_INET, socket.SOCK_STREAM)
        except OSError as exc:
            self._attempt_failed(member, now, str(exc))
            return
        sock.setblocking(False)
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        code = sock.connect_ex((uri.host, uri.port))
        if code not in (0, errno.EINPROGRESS):
            sock.close()
            self._attempt_failed(member, now, errno.errorcode.get(code, str(code)))
            return
        member.sock, member.protocol = sock, ClientProtocol(uri)
        member.out.clear()
        member.eof, member.closing_since, member.parts, member.opened, member.requested = False, None, None, False, False
        member.connecting_since = now
        self._selector.register(sock, _WRITE, member)

    def _on_writable(self, member: Member) -> None:
        sock, protocol = member.sock, member.protocol
        if not member.requested:
            # The TCP connection is made (or refused): then the opening handshake.
            error = sock.getsockopt(socket.SOL_SOCKET, socket.SO_ERROR)
            if error:
                self._drop(member, time.monotonic(), errno.errorcode.get(error, str(error)))
                return
            member.requested = True
            protocol.send_request(protocol.connect())
        self._flush(member)

    def _on_readable(self, member: Member) -> None:
        protocol = member.protocol
        try:
            data = member.sock.recv(READ_SIZE)
        except (BlockingIOError, InterruptedError):
            return
        except OSError:
            data = b""
        received_ns = perf_counter_ns()
        if data:
            protocol.receive_data(data)
        else:
            protocol.receive_eof()
        texts = []
        for event in protocol.events_received():
            if isinstance(event, Response):
                if protocol.handshake_exc is not None:
                    self._drop(member, time.monotonic(), f"handshake refused: {protocol.handshake_exc}")
                    return
                self._joined(member)
            elif event.opcode is _TEXT:
                if event.fin:
                    texts.append(event.data)
                else:
                    member.parts = [event.data]
            elif event.opcode is _CONT and member.parts is not None:
                member.parts.append(event.data)
                if event.fin:
                    texts.append(b"".join(member.parts))
                    member.parts = None
        if texts:
            self.tracker.receive(member.room, member.index, texts, received_ns)
        self._flush(member)
        if member.sock is not None and (not data or protocol.state is _CLOSED):
            self._drop(member, time.monotonic(), "closed")

    def _joined(self, member: Member) -> None:
        self.tracker.member_connected(reconnect=member.ever_opened)
        member.opened = member.ever_opened = True
        member.attempts = 0
        self._check_settled()

    # -- writing

    def _flush(self, member: Member) -> None:
        """What the protocol wants sent, sent as far as the socket takes it; the rest
        waits for the socket to be writable."""
        sock = member.sock
        if sock is None:
            return
        for data in member.protocol.data_to_send():
            if data:
                member.out += data
            else:
                member.eof = True
        if member.out:
            try:
                sent = sock.send(member.out)
            except (BlockingIOError, InterruptedError):
                sent = 0
            except OSError:
                self._drop(member, time.monotonic(), "write failed")
                return
            del member.out[:sent]
        if member.eof and not member.out:
            member.eof = False
            try:
                sock.shutdown(socket.SHUT_WR)
            except OSError:
                pass
        if member.closing_since is None and member.opened and member.protocol.state is not _OPEN:
            member.closing_since = time.monotonic()
        wanted = _READ | (_WRITE if member.out else 0)
        if self._selector.get_key(sock).events != wanted:
            self._selector.modify(sock, wanted, member)

    # -- ending

    def _drop(self, member: Member, now: float, why: str) -> None:
        """The connection is over: closed, and a reconnection planned (or the member lost)."""
        sock, protocol = member.sock, member.protocol
        if sock is None:
            return
        self._selector.unregister(sock)
        sock.close()
        member.sock = None
        if member.opened:
            member.opened = False
            close = protocol.close_rcvd
            self.tracker.member_closed(close.code if close is not None else NO_CLOSE_FRAME)
            log.debug("member %d of room %d: connection ended (%s)", member.index, member.room, why)
            member.attempts = 0
            self._plan_retry(member, now)
        else:
            self._attempt_failed(member, now, why)

    def _attempt_failed(self, member: Member, now: float, why: str) -> None:
        log.debug("member %d of room %d: connection attempt failed (%s)", member.index, member.room, why)
        member.attempts += 1
        if member.attempts >= self.retry.max_attempts:
            member.lost, member.retry_at = True, None
            self.tracker.member_lost()
            log.warning("member %d of room %d gave up after %d attempts: %s", member.index, member.room,
                        member.attempts, why)
            self._check_settled()
            return
        self._plan_retry(member, now)

    def _plan_retry(self, member: Member, now: float) -> None:
        member.retry_at = now + self.retry.delay(member.attempts + 1) if not self._stopping.is_set() else None

    def _check_settled(self) -> None:
        if all(m.ever_opened or m.lost for m in self.members):
            self._settled.set()

    def _timers(self, now: float) -> None:
        """Connections due, handshakes and closing handshakes that took too long."""
        for member in self.members:
            if member.sock is None:
                if member.retry_at is not None and now >= member.retry_at:
                    self._connect(member, now)
            elif not member.opened and now - member.connecting_since > self.timeout:
                self._drop(member, now, f"no handshake within {self.timeout:g} s")
            elif member.closing_since is not None and now - member.closing_since > self.timeout:
                self._drop(member, now, "closing handshake timed out")

    def _next_wake(self, now: float) -> float:
        due = [m.retry_at for m in self.members if m.sock is None and m.retry_at is not None]
        return max(0.0, min([TICK, *(at - now for at in due)]))

    def _shut_down(self) -> None:
        """A close frame to every open member, sent as far as the socket takes it at once."""
        for member in self.members:
            member.retry_at = None
            if member.sock is None:
                continue
            if member.opened and member.protocol.state is _OPEN:
                member.protocol.send_close(1000)
                for data in member.protocol.data_to_send():
                    member.out += data
                try:
                    member.sock.send(member.out)
                except OSError:
                    pass
            member.opened = False  # a close of its own is not the server's
            self._selector.unregister(member.sock)
            member.sock.close()
            member.sock = None
        self._selector.close()


class BroadcastRooms:
    """The broadcast scenario's side of one process: the members of ``rooms`` and the
    tracker they and the senders report to. Opened before the first phase, drained after
    the last, then finished into the counts."""

    def __init__(self, config: LoadTestConfig, rooms: Sequence[int], emit: Callable[[tuple], None] | None) -> None:
        self.config = config
        self.tracker = FanoutTracker(config.room_members, emit, rooms)
        self.members = RoomMembers(config, rooms, self.tracker)

    def open(self) -> int:
        """Every member connected and joined, or given up after its attempts: the
        members joined."""
        retry = self.config.retry
        limit = retry.max_attempts * self.config.timeout + sum(retry.delay(a) for a in range(2, retry.max_attempts + 1))
        return self.members.open(limit + 1.0)

    def drain(self, stop: threading.Event) -> None:
        """Wait for the deliveries still due, until none is, none came for the drain
        timeout, ``stop`` is set or ``FANOUT_DRAIN_LIMIT`` has passed."""
        tracker, quiet = self.tracker, self.config.fanout_drain
        started = last_change = time.monotonic()
        seen = tracker.received
        while tracker.awaiting > 0 and not stop.wait(DRAIN_POLL):
            now = time.monotonic()
            if tracker.received != seen:
                seen, last_change = tracker.received, now
            elif now - last_change >= quiet:
                return
            if now - started >= FANOUT_DRAIN_LIMIT:
                return

    def finish(self) -> FanoutCounts:
        """The members closed, and every message's fan-out settled."""
        self.members.close()
        return self.tracker.finish()
