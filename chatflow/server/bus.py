"""Rooms across processes and instances: a bus on Redis streams (``--bus redis://…``).

Every instance hands each valid message of a room to Redis, where one Lua script numbers
it (the room's sequence, ``INCR``) and appends it to the room's stream (``XADD``), both in
one atomic step; every instance reads every room's stream (``XREAD``) and delivers what it
reads to its own members, its own messages included. So each member, on any instance,
gets the room's messages in one order, the order Redis took them. Why streams and not
pub/sub, and what happens when Redis is slow or gone: docs/broadcast.md#the-bus.

Two threads, so that the selector thread never waits on Redis: the publisher sends what
``publish`` queued, in pipelines; the subscriber reads and hands batches to ``deliver``
(which runs them on the selector thread). While Redis cannot be reached, ``publish``
answers False and the caller delivers the message to its own members only; both threads
reconnect with backoff and log the outage once, and when it ended.
"""

from __future__ import annotations

import collections
import logging
import secrets
import threading
import time
from collections.abc import Callable
from typing import NamedTuple

import redis

from chatflow.server.config import BusSettings

log = logging.getLogger("chatflow.server.bus")

#: Number each message of a batch (never below what this instance has seen of its room:
#: after Redis restarts empty, the room's numbers go on instead of starting again at 1),
#: then append it to the rooms' stream; all in one atomic step. KEYS: the stream, then
#: each message's room counter. ARGV: the stream's length, then four per message: its
#: room, the frame's body, the origin, the floor. Returns the sequences, in order.
_PUBLISH = """
local sequences = {}
for i = 2, #KEYS do
  local at = (i - 2) * 4 + 2
  local seq = redis.call('INCR', KEYS[i])
  local floor = tonumber(ARGV[at + 3])
  if seq <= floor then
    seq = floor + 1
    redis.call('SET', KEYS[i], seq)
  end
  redis.call('XADD', KEYS[1], 'MAXLEN', '~', ARGV[1], '*', 'r', ARGV[at], 'q', seq, 'b', ARGV[at + 1],
             'o', ARGV[at + 2])
  sequences[#sequences + 1] = seq
end
return sequences
"""

#: The errors that mean Redis cannot be used now (down, restarting, unreachable, slow).
_UNAVAILABLE = (redis.ConnectionError, redis.TimeoutError, redis.BusyLoadingError, OSError)


class Crossing(NamedTuple):
    """One message read from the bus: its room, its place there, the room frame's body
    (``chatflow.wire.room_message_body``), and the connection that sent it if that
    connection is this instance's (else None)."""

    room: int
    sequence: int
    body: bytes
    sender: int | None


class Outgoing(NamedTuple):
    """One message waiting for the publisher."""

    room: int
    body: bytes
    #: The sending connection's number (``BroadcastChat``), so that it can be left out.
    sender: int


def describe(exc: BaseException) -> str:
    """An error of Redis's in one line."""
    return str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__


class _State:
    """Up or down, since when and why: one per thread, logged once per change."""

    def __init__(self, name: str, url: str) -> None:
        self.name = name
        self.url = url
        self.up = False
        self.reason = "not connected yet"
        self.since = time.time()
        self._logged_down = False

    def went_up(self, lost: int) -> None:
        if self.up:
            return
        if self._logged_down:
            log.warning("bus %s: %s reachable again after %.1f s%s", self.name, self.url, time.time() - self.since,
                        f"; {lost:,} messages could not cross meanwhile" if lost else "")
        else:
            log.info("bus %s: connected to %s", self.name, self.url)
        self.up, self.reason, self.since, self._logged_down = True, "", time.time(), False

    def went_down(self, exc: BaseException) -> None:
        reason = describe(exc)
        if self.up or not self._logged_down:
            log.warning("bus %s: %s unreachable (%s); this instance's members keep chatting among "
                        "themselves, reconnecting with backoff", self.name, self.url, reason)
            self._logged_down = True
        if self.up:
            self.since = time.time()
        self.up, self.reason = False, reason


class RedisBus:
    """The rooms of ``rooms`` (1..N) shared over the Redis at ``url``.

    ``deliver`` gets each batch of messages read from the bus, on the subscriber thread
    (it hands them on; ``chatflow.server.main`` passes them to the selector thread).
    When Redis goes away with messages queued, ``failed`` is called: the caller then takes
    them (``take_failed``) and delivers them to its own members, as it does a message
    ``publish`` refuses, and before it: so that its members get them in the order sent.
    """

    def __init__(self, url: str, *, rooms: int, settings: BusSettings,
                 deliver: Callable[[list[Crossing]], None], failed: Callable[[], None]) -> None:
        self.url = url
        self.rooms = rooms
        self.settings = settings
        self._deliver = deliver
        self._failed_hook = failed
        #: Held while a message is queued, and while Redis is given up on, so that no
        #: message is queued after the queue was handed back.
        self._lock = threading.Lock()
        self._failed: list[Outgoing] = []
        #: Tells this process's messages from other instances' on the bus, whatever
        #: the instances are called.
        self.origin = secrets.token_hex(8)
        self._origin_prefix = self.origin.encode() + b"/"
        prefix = settings.prefix
        self._counters = [f"{prefix}:room:{room}:sequence" for room in range(rooms + 1)]
        #: One stream for every room: each instance reads them all anyway, and one XREAD
        #: of one stream costs less than of twenty.
        self._stream = f"{prefix}:rooms"
        self._queue: collections.deque[Outgoing] = collections.deque()
        self._wake = threading.Event()
        self._stop = threading.Event()
        #: The highest sequence this instance has seen of each room (both threads write it).
        self._floors = [0] * (rooms + 1)
        self._floors_lock = threading.Lock()
        self.publisher = _State("publisher", url)
        self.subscriber = _State("subscriber", url)
        # Counters, each written by one thread only.
        self.published = 0
        self.received = 0
        #: Messages refused by ``publish`` while Redis was down (selector thread), and
        #: messages queued or in flight when it went (publisher thread).
        self.refused = 0
        self.failed_in_flight = 0
        #: Sequence numbers this instance never read: trimmed from a stream before it
        #: got to them, or lost with a Redis that restarted.
        self.missed = 0
        #: Messages read with a sequence not above the last one read of their room.
        self.reordered = 0
        self._threads = [threading.Thread(target=self._publish_loop, name="BusPublisher", daemon=True),
                         threading.Thread(target=self._subscribe_loop, name="BusSubscriber", daemon=True)]

    def _client(self, blocking: bool = False) -> redis.Redis:
        """A connection of one thread's; ``blocking`` for XREAD, which waits ``block_ms`` more."""
        timeout = self.settings.socket_timeout
        return redis.Redis.from_url(self.url, socket_timeout=timeout + (self.settings.block_ms / 1000 if blocking else 0),
                                    socket_connect_timeout=timeout, health_check_interval=0)

    # -- for the chat handler (selector thread) ----------------------------------------

    @property
    def up(self) -> bool:
        """Messages handed to ``publish`` now reach the other instances."""
        return self.publisher.up

    def publish(self, room: int, body: bytes, sender: int) -> bool:
        """Queue a message for every instance; False (and counted) while Redis is down:
        the caller delivers it to its own members instead."""
        with self._lock:
            if not self.publisher.up:
                self.refused += 1
                return False
            self._queue.append(Outgoing(room, body, sender))
        self._wake.set()
        return True

    def take_failed(self) -> list[Outgoing]:
        """The messages that were queued when Redis went away, oldest first, once."""
        with self._lock:
            failed, self._failed = self._failed, []
        return failed

    @property
    def not_crossed(self) -> int:
        """This instance's messages that no other instance got (Redis was down)."""
        return self.refused + self.failed_in_flight

    def status(self) -> dict[str, object]:
        """What ``/health?verbose`` shows of the bus."""
        return {
            "url": self.url,
            "publisher": "up" if self.publisher.up else f"down: {self.publisher.reason}",
            "subscriber": "up" if self.subscriber.up else f"down: {self.subscriber.reason}",
            "published": self.published, "received": self.received, "notCrossed": self.not_crossed,
            "missed": self.missed, "reordered": self.reordered,
        }

    def problem(self) -> str | None:
        """Why the bus does not carry the rooms right now, or None while it does."""
        for state in (self.publisher, self.subscriber):
            if not state.up:
                since = time.strftime("%Y-%m-%dT%H:%M:%S", time.localtime(state.since))
                return f"bus {state.name}: {self.url} unreachable since {since}: {state.reason}"
        return None

    # -- lifecycle ----------------------------------------------------------------------

    def start(self) -> None:
        for thread in self._threads:
            thread.start()

    def stop(self, timeout: float = 2.0) -> None:
        self._stop.set()
        self._wake.set()
        for thread in self._threads:
            if thread.ident is not None:
                thread.join(timeout)

    def _backoff(self, failures: int) -> None:
        settings = self.settings
        self._stop.wait(min(settings.max_backoff, settings.backoff * 2 ** min(failures - 1, 30)))

    def _raise_floors(self, rooms_seen: list[tuple[int, int]]) -> None:
        with self._floors_lock:
            floors = self._floors
            for room, sequence in rooms_seen:
                if sequence > floors[room]:
                    floors[room] = sequence

    # -- the publisher thread -----------------------------------------------------------

    def _publish_loop(self) -> None:
        client, script, failures = None, "", 0
        while not self._stop.is_set():
            if client is None:
                try:
                    client = self._client()
                    # Loaded on each connection: a Redis that restarted has forgotten it.
                    script = client.script_load(_PUBLISH)
                except _UNAVAILABLE as exc:
                    client = None
                    self.publisher.went_down(exc)
                    failures += 1
                    self._backoff(failures)
                    continue
                self.publisher.went_up(self.not_crossed)
                failures = 0
            batch = self._take()
            if not batch:
                continue
            try:
                self._send(client, script, batch)
            except _UNAVAILABLE as exc:
                # Some of the batch may have crossed: Redis does not say which. Counted
                # as not crossed and delivered here: docs/broadcast.md#when-redis-is-down.
                self._give_up(batch, exc)
                client.close()
                client = None

    def _take(self) -> list[Outgoing]:
        queue, limit = self._queue, self.settings.batch
        if not queue:
            self._wake.wait(0.5)
            self._wake.clear()
        batch = []
        while queue and len(batch) < limit:
            batch.append(queue.popleft())
        return batch

    def _send(self, client: redis.Redis, script: str, batch: list[Outgoing]) -> None:
        counters, floors, origin = self._counters, self._floors, self._origin_prefix
        keys = [self._stream]
        arguments: list[object] = [self.settings.stream_length]
        for room, body, sender in batch:
            keys.append(counters[room])
            arguments += (room, body, origin + b"%d" % sender, floors[room])
        # One EVALSHA for the batch, as a plain command: redis-py's Script object checks
        # that the script is loaded before each use, a round trip more.
        sequences = client.execute_command("EVALSHA", script, len(keys), *keys, *arguments)
        self.published += len(batch)
        self._raise_floors([(item.room, sequence) for item, sequence in zip(batch, sequences)])

    def _give_up(self, batch: list[Outgoing], exc: BaseException) -> None:
        """Redis went away with ``batch`` in hand: it and what is still queued go back to
        the caller; ``publish`` refuses from now on."""
        queue = self._queue
        with self._lock:
            self.publisher.went_down(exc)
            while queue:
                batch.append(queue.popleft())
            self._failed.extend(batch)
            self.failed_in_flight += len(batch)
        self._failed_hook()

    # -- the subscriber thread ----------------------------------------------------------

    def _subscribe_loop(self) -> None:
        client, failures = None, 0
        position: bytes | str | None = None
        last = [0] * (self.rooms + 1)
        while not self._stop.is_set():
            try:
                if client is None:
                    client = self._client(blocking=True)
                    if position is None:
                        position = self._tail(client)
                    else:
                        client.ping()
                    self.subscriber.went_up(0)
                    failures = 0
                answer = client.xread({self._stream: position}, count=self.settings.batch,
                                      block=self.settings.block_ms)
            except _UNAVAILABLE as exc:
                if client is not None:
                    client.close()
                    client = None
                self.subscriber.went_down(exc)
                failures += 1
                self._backoff(failures)
                continue
            if answer:
                position = self._hand_on(answer[0][1], last)

    def _tail(self, client: redis.Redis) -> bytes | str:
        """Where to start reading: after the stream's newest entry, or from the start of a
        stream that does not exist yet (so that its first entry is not missed)."""
        newest = client.xrevrange(self._stream, count=1)
        return newest[0][0] if newest else "0-0"

    def _hand_on(self, entries: list, last: list[int]) -> bytes:
        """Entries read, to ``deliver``; the id to read on from."""
        origin = self._origin_prefix
        cut = len(origin)
        crossings = []
        for _, fields in entries:
            room = int(fields[b"r"])
            sequence = int(fields[b"q"])
            previous = last[room]
            if previous and sequence != previous + 1:
                if sequence > previous:
                    self.missed += sequence - previous - 1
                else:
                    self.reordered += 1
            last[room] = sequence
            source = fields[b"o"]
            sender = int(source[cut:]) if source.startswith(origin) else None
            crossings.append(Crossing(room, sequence, fields[b"b"], sender))
        self.received += len(crossings)
        self._raise_floors([(room, last[room]) for room in {c.room for c in crossings}])
        self._deliver(crossings)
        return entries[-1][0]
