"""``DelayProxy``: a TCP proxy that delays each direction by half a round trip.

One selector thread moves every connection's bytes, as ChatFlow's server does: a thread
pair per connection would not scale to the load test's 64 connections and more. Each
direction's bytes wait in a ``HeldStream`` until ``Delay`` says they are due; a direction
that holds ``max_buffer`` bytes stops reading its source until its destination takes
some (back-pressure). An end of stream and a reset are passed on in order, after the
bytes read before them (docs/wan.md).
"""

from __future__ import annotations

import errno
import heapq
import itertools
import logging
import math
import selectors
import socket
import struct
import threading
import time
from dataclasses import dataclass

from chatflow.wan.delay import Delay, direction_seed
from chatflow.wan.stream import End, HeldStream

log = logging.getLogger("chatflow.wan")

#: What one direction may hold before its source is no longer read.
DEFAULT_MAX_BUFFER = 1 << 20
#: What one ``recv`` asks for at most.
RECV_SIZE = 64 * 1024
#: Clients accepted in one wake-up at most, so that a storm of them does not starve the
#: connections already open.
ACCEPT_BATCH = 256
#: How long ``stop`` waits for the selector thread.
STOP_TIMEOUT = 5.0
#: Out of file descriptors with no connection of its own to close and free some: how
#: long until the proxy tries again.
DESCRIPTOR_RETRY = 1.0
#: The selector's longest sleep: a far release is reached in several waits, since a
#: wait's timeout has a bound of its own.
MAX_WAIT = 60.0

_READ, _WRITE = selectors.EVENT_READ, selectors.EVENT_WRITE
_RESET_LINGER = struct.pack("ii", 1, 0)
#: What ``accept`` and ``socket`` fail with when the process or the system has no more to give.
_OUT_OF_RESOURCES = frozenset({errno.EMFILE, errno.ENFILE, errno.ENOBUFS, errno.ENOMEM})


def dial_order(addresses: list[tuple], listen_family: int) -> list[tuple[int, tuple]]:
    """The upstream's addresses (``getaddrinfo`` entries) as ``(family, address)`` to try in
    turn: those of the listener's family first, each once, so that ``localhost`` reaches a
    server on 127.0.0.1 even where ``::1`` resolves first."""
    unique = list(dict.fromkeys((family, address) for family, _, _, _, address in addresses))
    return sorted(unique, key=lambda entry: entry[0] != listen_family)


@dataclass(frozen=True)
class ProxyStats:
    """The proxy's counters at one moment (``DelayProxy.stats``)."""

    connections_accepted: int
    connections_open: int
    #: Accepted connections whose upstream could not be reached (each was reset).
    upstream_failures: int
    #: Times the process ran out of file descriptors: accepting paused, and a client
    #: accepted without a socket for its upstream waited, until a connection closed.
    descriptor_shortages: int
    bytes_to_upstream: int
    bytes_to_client: int
    #: Bytes read and not yet written, over every direction now.
    held_bytes: int
    #: The most that one direction has held at once: at most ``max_buffer``.
    max_held_bytes: int
    #: ``recv`` calls that returned bytes, over every direction: each is one chunk with
    #: its own release time.
    chunks_read: int


class Direction:
    """One way through a link: the bytes held between its source and its destination."""

    __slots__ = ("stream", "to_upstream", "blocked", "armed", "shut")

    def __init__(self, stream: HeldStream, to_upstream: bool) -> None:
        self.stream = stream
        self.to_upstream = to_upstream
        #: The destination took less than was due: wait until it is writable.
        self.blocked = False
        #: A release of its head is on the proxy's timer.
        self.armed = False
        #: Its end of stream was passed on (``shutdown(SHUT_WR)`` on the destination).
        self.shut = False


class Link:
    """One proxied connection: the client's socket, the upstream's, both directions."""

    __slots__ = ("client", "upstream", "up", "down", "connecting", "attempts", "failed", "closed", "masks")

    def __init__(self, client: socket.socket, up: Direction, down: Direction) -> None:
        self.client = client
        #: The socket to upstream, once one is being connected.
        self.upstream: socket.socket | None = None
        self.up = up
        self.down = down
        #: The connect to upstream has not completed yet.
        self.connecting = True
        #: Upstream addresses tried so far (``dial_order``).
        self.attempts = 0
        #: The side (True: the client) found reset; nothing more is read from either side.
        self.failed: bool | None = None
        self.closed = False
        #: What each side (True: the client) is registered for in the selector.
        self.masks = {True: 0, False: 0}

    def sock(self, client_side: bool) -> socket.socket | None:
        return self.client if client_side else self.upstream

    def reading(self, client_side: bool) -> Direction:
        """The direction whose source is that side."""
        return self.up if client_side else self.down

    def writing(self, client_side: bool) -> Direction:
        """The direction whose destination is that side."""
        return self.down if client_side else self.up


class DelayProxy:
    """Listens on ``listen`` and relays every connection to ``upstream``, each direction's
    bytes held for ``rtt_ms / 2`` plus a jitter uniform in ``0..jitter_ms`` (seeded).

    ``start()`` binds in the caller's thread (a port in use is an ``OSError`` there) and
    starts the selector thread; ``stop()`` closes every connection and joins it. Nothing is
    held before ``start()``.
    """

    def __init__(self, *, listen: tuple[str, int], upstream: tuple[str, int], rtt_ms: float,
                 jitter_ms: float = 0.0, seed: int | None = None, max_buffer: int = DEFAULT_MAX_BUFFER) -> None:
        Delay(rtt_ms, jitter_ms)  # refuses a bad figure here, not in the selector thread
        if max_buffer < 1:
            raise ValueError(f"max_buffer must be at least 1 byte, not {max_buffer}")
        self.listen = listen
        self.upstream = upstream
        self.rtt_ms = rtt_ms
        self.jitter_ms = jitter_ms
        self.seed = seed
        self.max_buffer = max_buffer
        self._selector: selectors.BaseSelector | None = None
        self._listener: socket.socket | None = None
        self._port: int | None = None
        self._upstream_addresses: list[tuple[int, tuple]] = []
        self._wakeup_r: socket.socket | None = None
        self._wakeup_w: socket.socket | None = None
        self._stopping = threading.Event()
        self._thread: threading.Thread | None = None
        self._failure: str | None = None
        #: Out of file descriptors: the listener is not watched, and these links (in the
        #: order accepted) wait for a socket to their upstream.
        self._short = False
        self._undialled: dict[Link, None] = {}
        #: When to try again while short with no link of its own to free descriptors.
        self._retry_at = math.inf
        self._links: set[Link] = set()
        #: (release time, tie-break, link, direction): each direction's next release, once.
        self._timers: list[tuple[float, int, Link, Direction]] = []
        self._ties = itertools.count()
        self._cpu = 0.0
        self._accepted = 0
        self._upstream_failures = 0
        self._shortages = 0
        self._chunks_read = 0
        self._to_upstream = 0
        self._to_client = 0
        self._held = 0
        self._max_held = 0

    # -- the caller's side ------------------------------------------------------------

    def start(self) -> DelayProxy:
        assert self._thread is None and self._selector is None, "start() once"
        family = socket.AF_INET6 if ":" in self.listen[0] else socket.AF_INET
        try:
            self._upstream_addresses = dial_order(socket.getaddrinfo(*self.upstream, type=socket.SOCK_STREAM), family)
            self._listener = socket.create_server(self.listen, backlog=1024, family=family)
            self._selector = selectors.DefaultSelector()
            self._wakeup_r, self._wakeup_w = socket.socketpair()
        except OSError:
            self._release()
            raise
        self._port = self._listener.getsockname()[1]
        self._listener.setblocking(False)
        self._wakeup_r.setblocking(False)
        self._selector.register(self._listener, _READ, None)
        self._selector.register(self._wakeup_r, _READ, None)
        self._thread = threading.Thread(target=self._serve, name="DelayProxy", daemon=True)
        self._thread.start()
        return self

    @property
    def port(self) -> int:
        """The port it listens on (the kernel's pick when ``listen`` asked for port 0)."""
        assert self._port is not None, "start() first"
        return self._port

    @property
    def alive(self) -> bool:
        """Whether the selector thread is serving: False before ``start()``, after ``stop()``,
        and once the thread has failed (``failure`` says why; every connection was closed)."""
        return self._thread is not None and self._thread.is_alive()

    @property
    def failure(self) -> str | None:
        """Why the selector thread ended by itself, or None."""
        return self._failure

    def stop(self) -> None:
        """Close every connection and the listener; wait (bounded) for the thread."""
        if self._thread is None:
            self._release()
            return
        self._stopping.set()
        try:
            self._wakeup_w.send(b"x")
        except OSError:
            pass
        self._thread.join(STOP_TIMEOUT)
        if self._thread.is_alive():
            raise RuntimeError(f"the proxy's thread did not stop within {STOP_TIMEOUT:g} s")
        self._thread = None
        self._release()

    def _release(self) -> None:
        """Close what ``start()`` opened (again, if the thread did: closing is idempotent)."""
        for resource in (self._wakeup_r, self._wakeup_w, self._selector, self._listener):
            if resource is not None:
                resource.close()

    def __enter__(self) -> DelayProxy:
        return self.start()

    def __exit__(self, *exc_info: object) -> None:
        self.stop()

    def cpu_seconds(self) -> float:
        """CPU time of the selector thread so far (``time.thread_time``, taken by that thread
        before each wait, so idle time costs nothing to count)."""
        return self._cpu

    def stats(self) -> ProxyStats:
        return ProxyStats(
            connections_accepted=self._accepted, connections_open=len(self._links),
            upstream_failures=self._upstream_failures, descriptor_shortages=self._shortages,
            bytes_to_upstream=self._to_upstream, bytes_to_client=self._to_client, held_bytes=self._held,
            max_held_bytes=self._max_held, chunks_read=self._chunks_read,
        )

    # -- the selector thread ----------------------------------------------------------

    def _serve(self) -> None:
        try:
            while not self._stopping.is_set():
                self._cpu = time.thread_time()
                ready = self._selector.select(self._timeout())
                now = time.monotonic()
                for key, mask in ready:
                    if key.data is None:
                        if key.fileobj is self._listener:
                            self._accept(now)
                        else:
                            self._drain_wakeup()
                        continue
                    link, client_side = key.data
                    if mask & _WRITE and not link.closed:
                        self._writable(link, client_side, now)
                    if mask & _READ and not link.closed:
                        self._readable(link, client_side, now)
                now = time.monotonic()
                self._release_due(now)
                if now >= self._retry_at:
                    self._descriptors_freed(now)
        except Exception as exc:
            self._failure = f"{type(exc).__name__}: {exc}"
            log.exception("the proxy's thread failed; closing every connection")
        finally:
            self._short, self._undialled = False, {}  # closing links below must dial none
            for link in list(self._links):
                self._close(link, reset=False)
            self._selector.close()
            self._listener.close()
            self._cpu = time.thread_time()

    def _timeout(self) -> float | None:
        due = min(self._timers[0][0] if self._timers else math.inf, self._retry_at)
        if due == math.inf:
            return None
        return min(MAX_WAIT, max(0.0, due - time.monotonic()))

    def _drain_wakeup(self) -> None:
        try:
            self._wakeup_r.recv(64)
        except OSError:
            pass

    def _accept(self, now: float) -> None:
        for _ in range(ACCEPT_BATCH):
            if self._short:
                return
            try:
                client, _ = self._listener.accept()
            except (BlockingIOError, InterruptedError):  # nothing left to accept
                return
            except OSError as exc:
                if exc.errno in _OUT_OF_RESOURCES:  # the client waits in the backlog
                    self._run_short(now)
                    return
                continue  # a client gone before accept()
            self._accepted += 1
            self._open(client, self._accepted, now)

    def _run_short(self, now: float) -> None:
        """Out of file descriptors: stop watching the listener (it stays readable, so
        watching it would spin) until a link closes and frees some; with no link of its
        own, try again after ``DESCRIPTOR_RETRY``."""
        if not self._short:
            self._short = True
            self._shortages += 1
            self._selector.unregister(self._listener)
            (log.warning if self._shortages == 1 else log.debug)(
                "out of file descriptors: new clients wait until a connection closes")
        dialled = len(self._links) - len(self._undialled)
        self._retry_at = now + DESCRIPTOR_RETRY if not dialled else math.inf

    def _descriptors_freed(self, now: float) -> None:
        """Dial the links that wait for a socket, in order; once none waits, accept again."""
        self._retry_at = math.inf
        while self._undialled:
            link = next(iter(self._undialled))
            del self._undialled[link]
            self._dial(link, now)
            if link in self._undialled:  # short still
                return
        if self._short:
            self._short = False
            self._selector.register(self._listener, _READ, None)

    def _open(self, client: socket.socket, number: int, now: float) -> None:
        streams = [HeldStream(Delay(self.rtt_ms, self.jitter_ms, direction_seed(self.seed, number, to_upstream)),
                              self.max_buffer) for to_upstream in (True, False)]
        link = Link(client, Direction(streams[0], True), Direction(streams[1], False))
        self._links.add(link)
        try:
            client.setblocking(False)
            client.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        except OSError as exc:  # the client is gone already
            self._upstream_failed(link, exc.errno or 0)
            return
        self._dial(link, now)

    def _dial(self, link: Link, now: float) -> None:
        """Connect to the next upstream address not yet tried; reset the client when none
        is left. Without a file descriptor for the socket, the link waits for one."""
        code = errno.ECONNREFUSED
        while link.attempts < len(self._upstream_addresses):
            family, address = self._upstream_addresses[link.attempts]
            link.attempts += 1
            try:
                upstream = socket.socket(family, socket.SOCK_STREAM)
            except OSError as exc:
                if exc.errno not in _OUT_OF_RESOURCES:
                    code = exc.errno or 0
                    break
                link.attempts -= 1  # this address again, once a descriptor is free
                self._undialled[link] = None
                self._interest(link, True)  # the client's bytes wait for it, bounded
                self._run_short(now)
                return
            try:
                upstream.setblocking(False)
                upstream.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
                code = upstream.connect_ex(address)
            except OSError as exc:  # an address this host cannot use
                code = exc.errno or 0
            if code in (0, errno.EINPROGRESS):
                link.upstream = upstream
                self._interest(link, True)
                self._interest(link, False)
                return
            upstream.close()
        self._upstream_failed(link, code)

    def _redial(self, link: Link, code: int, now: float) -> None:
        """The connect to one upstream address failed: drop that socket, try the next address."""
        log.debug("upstream %s: %s", self.upstream, errno.errorcode.get(code, code))
        if link.masks[False]:
            self._selector.unregister(link.upstream)
            link.masks[False] = 0
        link.upstream.close()
        link.upstream = None
        self._dial(link, now)

    def _upstream_failed(self, link: Link, code: int) -> None:
        """Upstream refused (or could not be reached): reset the client, as a server would."""
        self._upstream_failures += 1
        log.debug("upstream %s: %s", self.upstream, errno.errorcode.get(code, code))
        self._close(link, reset=True)

    def _interest(self, link: Link, client_side: bool) -> None:
        """Register the side for what it waits on now: reading while its direction has room
        and nothing has failed, writing while bytes due to it did not fit."""
        mask = 0
        if client_side or not link.connecting:
            reading = link.reading(client_side).stream
            if link.failed is None and reading.room > 0:
                mask |= _READ
            if link.writing(client_side).blocked and link.failed is not client_side:
                mask |= _WRITE
        else:
            mask = _WRITE  # the connect completes when it is writable
        old = link.masks[client_side]
        sock = link.sock(client_side)
        if mask == old or sock is None:  # no upstream socket yet: nothing to watch
            return
        if not old:
            self._selector.register(sock, mask, (link, client_side))
        elif not mask:
            self._selector.unregister(sock)
        else:
            self._selector.modify(sock, mask, (link, client_side))
        link.masks[client_side] = mask

    def _readable(self, link: Link, client_side: bool, now: float) -> None:
        direction = link.reading(client_side)
        stream = direction.stream
        room = stream.room
        if not room or link.failed is not None:
            self._interest(link, client_side)
            return
        try:
            data = link.sock(client_side).recv(min(RECV_SIZE, room))
        except (BlockingIOError, InterruptedError):
            return
        except OSError:
            self._side_failed(link, client_side, now)
            return
        if data:
            stream.push(data, now)
            self._chunks_read += 1
            self._held += len(data)
            self._max_held = max(self._max_held, stream.held)
        else:
            stream.end(End.EOF, now)
        self._arm(direction, link)
        if not data or not stream.room:
            self._interest(link, client_side)

    def _writable(self, link: Link, client_side: bool, now: float) -> None:
        if not client_side and link.connecting:
            code = link.upstream.getsockopt(socket.SOL_SOCKET, socket.SO_ERROR)
            if code:
                self._redial(link, code, now)
                return
            link.connecting = False
            self._interest(link, False)
            self._flush(link, link.up, now)
            return
        direction = link.writing(client_side)
        direction.blocked = False
        self._flush(link, direction, now)

    def _side_failed(self, link: Link, client_side: bool, now: float) -> None:
        """That side was reset (or its socket failed): what it sent before goes on, then the
        reset; nothing more is read from either side, nothing more written to it."""
        if link.failed is not None:
            return
        link.failed = client_side
        towards = link.writing(client_side)
        self._held -= towards.stream.held
        towards.stream.clear()
        towards.blocked = False
        source = link.reading(client_side)
        if source.stream.ended is not End.RESET:
            source.stream.end(End.RESET, now)
        self._interest(link, True)
        self._interest(link, False)
        self._arm(source, link)

    def _arm(self, direction: Direction, link: Link) -> None:
        """Put the direction's next release on the timer, unless it is there or waits to write."""
        if direction.armed or direction.blocked:
            return
        release = direction.stream.next_release()
        if release is not None:
            direction.armed = True
            heapq.heappush(self._timers, (release, next(self._ties), link, direction))

    def _release_due(self, now: float) -> None:
        timers = self._timers
        while timers and timers[0][0] <= now:
            _, _, link, direction = heapq.heappop(timers)
            direction.armed = False
            if not link.closed:
                self._flush(link, direction, now)

    def _flush(self, link: Link, direction: Direction, now: float) -> None:
        """Write what is due of one direction, pass on its end when that is due, then
        re-arm its timer and let its source be read again if it has room."""
        if direction.to_upstream and link.connecting:
            return
        stream = direction.stream
        dest_client = not direction.to_upstream
        dest = link.sock(dest_client)
        while (head := stream.due(now)) is not None:
            if head is End.RESET:
                self._close(link, reset=True)
                return
            if head is End.EOF:
                stream.passed_on()
                direction.shut = True
                try:
                    dest.shutdown(socket.SHUT_WR)
                except OSError:
                    pass
                if link.reading(dest_client).shut:
                    self._close(link, reset=False)
                    return
                continue
            try:
                sent = dest.send(head)
            except (BlockingIOError, InterruptedError):
                sent = 0
            except OSError:
                self._side_failed(link, dest_client, now)
                return
            if sent:
                stream.written(sent)
                self._held -= sent
                if direction.to_upstream:
                    self._to_upstream += sent
                else:
                    self._to_client += sent
            if sent < len(head):
                direction.blocked = True
                break
        self._interest(link, dest_client)
        self._interest(link, not dest_client)
        self._arm(direction, link)

    def _close(self, link: Link, *, reset: bool) -> None:
        """Close both sockets; with ``reset``, through SO_LINGER 0, so that each peer still
        there gets a reset instead of an end of stream."""
        if link.closed:
            return
        link.closed = True
        self._links.discard(link)
        self._undialled.pop(link, None)
        for client_side in (True, False):
            self._held -= link.writing(client_side).stream.held
            sock = link.sock(client_side)
            if sock is None:
                continue
            if link.masks[client_side]:
                self._selector.unregister(sock)
                link.masks[client_side] = 0
            if reset:
                try:
                    sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, _RESET_LINGER)
                except OSError:
                    pass
            sock.close()
        if self._short:
            self._descriptors_freed(time.monotonic())
