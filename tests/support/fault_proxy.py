"""A seeded TCP proxy that puts faults between the client and the server.

Every chunk the proxy reads, from either side, is at random (one ``random.Random(seed)``)
forwarded at once, held back for a while (the later chunks of that direction queue
behind it, so the byte stream stays in order), or the end of the connection: closed
(FIN both ways) or reset (RST to the client, through SO_LINGER 0). A connection's first
chunks are its opening handshake, so the same draw also fails whole connections before
they open.

One selector thread does all the I/O: a connection is closed or reset by the thread that
reads it, never under another thread blocked on it. Every chunk is logged with when it
was read and when it was forwarded, and ``Link.messages`` rebuilds each direction's
WebSocket frames from the log, so a test can hold what the client credited against what
the proxy actually gave it.
"""

from __future__ import annotations

import enum
import random
import selectors
import socket
import struct
import threading
import time
from collections import Counter, deque
from dataclasses import dataclass, field

from tests.support.frames import OPCODE_TEXT, parse_frame
from tests.support.network import LOCALHOST, RECV_SIZE

#: The selector's longest sleep: how soon a stop request is seen.
POLL = 0.05
#: A send to a peer that does not read for this long ends the connection.
SEND_TIMEOUT = 2.0


class Fault(enum.Enum):
    PASS = "pass"
    DELAY = "delay"
    DROP = "drop"
    RESET = "reset"
    #: A reply held to the end of a stall (``Stalls``).
    STALL = "stall"


@dataclass(frozen=True)
class Stalls:
    """The server's replies stalled for ``length`` s every ``every`` s: from ``every`` s
    after the proxy starts, for ``length`` s, what the server sends is held until the
    stall's end (the client's bytes pass); then again ``every`` s after that start."""

    every: float
    length: float

    def hold(self, since_start: float) -> float:
        """How long a reply read ``since_start`` s after the proxy started is held."""
        if since_start < self.every:
            return 0.0
        into = since_start % self.every
        return self.length - into if into < self.length else 0.0


@dataclass(frozen=True)
class FaultRates:
    """Chances per chunk read; a delay is uniform in 0..``max_delay`` seconds."""

    delay: float = 0.0
    drop: float = 0.0
    reset: float = 0.0
    max_delay: float = 1.0

    def draw(self, rng: random.Random) -> tuple[Fault, float]:
        roll = rng.random()
        if roll < self.delay:
            return Fault.DELAY, rng.uniform(0.0, self.max_delay)
        roll -= self.delay
        if roll < self.drop:
            return Fault.DROP, 0.0
        if roll - self.drop < self.reset:
            return Fault.RESET, 0.0
        return Fault.PASS, 0.0


@dataclass
class Chunk:
    """What one ``recv`` returned, and what the proxy did with it (``perf_counter`` times)."""

    to_server: bool
    data: bytes
    read_at: float
    fault: Fault
    #: When it was due to be forwarded: ``read_at`` plus its own delay, or later when it
    #: queued behind a delayed chunk.
    release_at: float
    #: When the proxy began to hand it to the other side: taken before the send, since
    #: the peer may read it before the proxy's thread runs again. None if it never was.
    sent_at: float | None = None


@dataclass(frozen=True)
class Message:
    """One WebSocket frame of one direction, timed by the chunk that completed it."""

    opcode: int
    payload: bytes
    #: When the proxy had read all of it.
    read_at: float
    #: When the proxy began to forward its last byte (the peer cannot have had it all
    #: earlier); None if that byte was never forwarded.
    sent_at: float | None
    #: How long the proxy meant to hold its last byte back (0 when nothing was delayed).
    held: float


@dataclass(eq=False)
class Link:
    """One proxied connection: the client's socket, the server's, and the log."""

    number: int
    client: socket.socket
    server: socket.socket
    chunks: list[Chunk] = field(default_factory=list)
    #: How it ended: "drop", "reset", "closed" (both sides done), "error: …", "proxy stopped".
    ended: str | None = None
    #: By direction (True: to the server): chunks read and not yet forwarded, in order.
    pending: dict[bool, deque[Chunk]] = field(default_factory=lambda: {True: deque(), False: deque()}, repr=False)
    #: By direction: the source has ended its stream.
    at_eof: dict[bool, bool] = field(default_factory=lambda: {True: False, False: False}, repr=False)
    #: By direction: that end of stream was passed on (shutdown SHUT_WR).
    shut: dict[bool, bool] = field(default_factory=lambda: {True: False, False: False}, repr=False)

    def messages(self, to_server: bool) -> list[Message]:
        """The frames of one direction, after the HTTP head, as far as they were read whole."""
        chunks = [c for c in self.chunks if c.to_server is to_server]
        stream = b"".join(c.data for c in chunks)
        ends, total = [], 0
        for chunk in chunks:
            total += len(chunk.data)
            ends.append(total)
        head_end = stream.find(b"\r\n\r\n")
        if head_end < 0:
            return []
        messages = []
        offset = head_end + 4
        chunk_index = 0
        while True:
            frame = parse_frame(stream, offset)
            if frame is None:
                return messages
            opcode, payload, offset = frame
            while ends[chunk_index] < offset:
                chunk_index += 1
            last = chunks[chunk_index]
            messages.append(Message(opcode, payload, last.read_at, last.sent_at, last.release_at - last.read_at))

    def texts(self, to_server: bool) -> list[Message]:
        return [m for m in self.messages(to_server) if m.opcode == OPCODE_TEXT]


class FaultProxy:
    """Listens on 127.0.0.1 (a free port) and relays to ``upstream`` with ``rates`` of faults.

    Use as a context manager; read ``links`` and ``faults`` after it has exited (the
    proxy's thread writes them while it runs).
    """

    def __init__(self, upstream_port: int, rates: FaultRates, seed: int, stalls: Stalls | None = None) -> None:
        self.upstream = (LOCALHOST, upstream_port)
        self.rates = rates
        self.stalls = stalls
        self._started = time.perf_counter()
        self.links: list[Link] = []
        #: Faults drawn, by kind (PASS included).
        self.faults: Counter[Fault] = Counter()
        self._rng = random.Random(seed)
        self._selector = selectors.DefaultSelector()
        self._listener = socket.create_server((LOCALHOST, 0))
        self._open: set[Link] = set()
        self._waiting: set[Link] = set()
        self._stopping = threading.Event()
        self._thread = threading.Thread(target=self._serve, name="FaultProxy", daemon=True)

    @property
    def url(self) -> str:
        return f"ws://{LOCALHOST}:{self._listener.getsockname()[1]}"

    def __enter__(self) -> FaultProxy:
        self._listener.setblocking(False)
        self._started = time.perf_counter()
        self._selector.register(self._listener, selectors.EVENT_READ, None)
        self._thread.start()
        return self

    def __exit__(self, *exc_info: object) -> None:
        self._stopping.set()
        self._thread.join(10)
        assert not self._thread.is_alive(), "the proxy's thread did not stop"

    # -- the selector thread ---------------------------------------------------------

    def _serve(self) -> None:
        try:
            while not self._stopping.is_set():
                for key, _ in self._selector.select(self._sleep()):
                    if key.data is None:
                        self._accept()
                    else:
                        self._read(*key.data)
                self._forward_due(time.perf_counter())
        finally:
            for link in list(self._open):
                self._end(link, "proxy stopped")
            self._selector.close()
            self._listener.close()

    def _sleep(self) -> float:
        due = [link.pending[d][0].release_at for link in self._waiting for d in (True, False) if link.pending[d]]
        return min([POLL, *(max(0.0, t - time.perf_counter()) for t in due)])

    def _accept(self) -> None:
        try:
            client, _ = self._listener.accept()
        except (BlockingIOError, InterruptedError):
            return
        try:
            server = socket.create_connection(self.upstream, timeout=SEND_TIMEOUT)
        except OSError:
            client.close()
            return
        for sock in (client, server):
            sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            sock.settimeout(SEND_TIMEOUT)
        link = Link(len(self.links) + 1, client, server)
        self.links.append(link)
        self._open.add(link)
        self._selector.register(client, selectors.EVENT_READ, (link, True))
        self._selector.register(server, selectors.EVENT_READ, (link, False))

    def _read(self, link: Link, to_server: bool) -> None:
        source = link.client if to_server else link.server
        try:
            data = source.recv(RECV_SIZE)
        except OSError as exc:
            self._end(link, f"error: {exc}")
            return
        if not data:
            link.at_eof[to_server] = True
            self._selector.unregister(source)
            self._shut_if_done(link, to_server)
            return
        fault, delay = self.rates.draw(self._rng)
        now = time.perf_counter()
        if self.stalls is not None and not to_server:
            held = self.stalls.hold(now - self._started)
            if held > delay:
                fault, delay = Fault.STALL, held
        self.faults[fault] += 1
        pending = link.pending[to_server]
        release_at = max(now + delay, pending[-1].release_at if pending else now)
        chunk = Chunk(to_server, data, now, fault, release_at)
        link.chunks.append(chunk)
        pending.append(chunk)
        self._waiting.add(link)

    def _forward_due(self, now: float) -> None:
        for link in list(self._waiting):
            for to_server in (True, False):
                pending = link.pending[to_server]
                while pending and pending[0].release_at <= now and link.ended is None:
                    chunk = pending.popleft()
                    if chunk.fault in (Fault.DROP, Fault.RESET):
                        self._end(link, chunk.fault.value)
                        break
                    sending_at = time.perf_counter()
                    try:
                        (link.server if to_server else link.client).sendall(chunk.data)
                    except OSError as exc:
                        self._end(link, f"error: {exc}")
                        break
                    chunk.sent_at = sending_at
                if link.ended is None and not pending:
                    self._shut_if_done(link, to_server)
            if link.ended is not None or not any(link.pending.values()):
                self._waiting.discard(link)

    def _shut_if_done(self, link: Link, to_server: bool) -> None:
        """Pass an end of stream on once everything read before it is forwarded."""
        if link.ended is not None or not link.at_eof[to_server] or link.pending[to_server] or link.shut[to_server]:
            return
        link.shut[to_server] = True
        try:
            (link.server if to_server else link.client).shutdown(socket.SHUT_WR)
        except OSError:
            pass
        if link.shut[not to_server]:
            self._end(link, "closed")

    def _end(self, link: Link, how: str) -> None:
        if link.ended is not None:
            return
        link.ended = how
        self._open.discard(link)
        self._waiting.discard(link)
        for sock in (link.client, link.server):
            try:
                self._selector.unregister(sock)
            except KeyError:
                pass
        if how == Fault.RESET.value:
            link.client.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
        link.client.close()
        link.server.close()
