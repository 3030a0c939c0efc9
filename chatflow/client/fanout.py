"""The broadcast scenario's accounting: each message sent, paired with its deliveries to
the room's listening members (docs/client.md#the-broadcast-scenario).

A delivery is paired with its message by the key (the sender's room, userId,
clientTimestamp, message), as a multiset: identical keys are possible, and a member's
first delivery of a key goes to the first message of that key it has not received yet.
The senders register a message right before its first send (``FanoutTracker.sent``) and
its final outcome after (``outcome``); the member thread hands over what each member
received (``receive``). One ``FanoutTracker`` per process holds the pending messages, and
forgets each one once its outcome is known and every member has it, so that memory stays
bounded by the messages in flight (and those that never reach every member).

The rules, pure and tested on their own: ``pair`` (which message a delivery is of),
``out_of_order`` (the per-member order check); the fan-out latencies go in
``chatflow.client.histogram``'s buckets.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field, fields
from time import perf_counter_ns

from chatflow.client.histogram import add_latency, empty_counts
from chatflow.client.message_generator import OutgoingMessage
from chatflow.wire import DeliveryKey, room_delivery, sent_key

#: Messages that reached every member are remembered this long (in messages) after, so
#: that a late second delivery of one still counts as duplicated, not as unexpected.
RETIRED_WINDOW = 50_000


@dataclass
class RoomCounts:
    """One room's deliveries."""

    expected: int = 0
    matched: int = 0
    duplicated: int = 0
    out_of_order: int = 0

    @property
    def missing(self) -> int:
        return max(0, self.expected - self.matched)


@dataclass
class FanoutCounts:
    """What a run's members received, as plain data: merged over worker processes."""

    #: Listening members per room.
    members: int = 0
    #: members × the messages whose final outcome was success.
    expected: int = 0
    #: Every frame the members received; the sum of the next four.
    received: int = 0
    #: Paired with a successful message, once per member.
    matched: int = 0
    #: A second (third, …) delivery of a message to the same member.
    duplicated: int = 0
    #: Paired with no message sent (another client's, another room's, not a room frame).
    unexpected: int = 0
    #: Paired with a message whose final outcome was a failure (a timeout the server took).
    of_failed: int = 0
    #: A delivery whose sequence was not above the one its member received before.
    out_of_order: int = 0
    #: Deliveries with a null sequence (the bus down): received, outside the order check.
    unordered: int = 0
    member_connections: int = 0
    member_reconnects: int = 0
    #: Closes by the server, by close code (1008: evicted for not reading).
    member_closes: dict[int, int] = field(default_factory=dict)
    #: Members that gave up after their reconnection attempts.
    members_lost: int = 0
    rooms: dict[int, RoomCounts] = field(default_factory=dict)
    #: Send → each member's delivery, and send → the last member's, in µs.
    each_counts: list[int] = field(default_factory=empty_counts)
    each_max_us: int = 0
    last_counts: list[int] = field(default_factory=empty_counts)
    last_max_us: int = 0

    @property
    def missing(self) -> int:
        return max(0, self.expected - self.matched)

    @property
    def ok(self) -> bool:
        """No delivery missing, duplicated or out of order (unexpected ones may be another
        client's, so they are reported, not failed)."""
        return not (self.missing or self.duplicated or self.out_of_order)

    def room(self, room: int) -> RoomCounts:
        counts = self.rooms.get(room)
        if counts is None:
            counts = self.rooms[room] = RoomCounts()
        return counts

    def merge(self, other: FanoutCounts) -> None:
        for f in fields(self):
            mine, theirs = getattr(self, f.name), getattr(other, f.name)
            if f.name == "members":
                self.members = max(mine, theirs)
            elif f.name.endswith("_max_us"):
                setattr(self, f.name, max(mine, theirs))
            elif f.name.endswith("_counts"):
                setattr(self, f.name, [a + b for a, b in zip(mine, theirs)])
            elif f.name == "member_closes":
                for code, count in theirs.items():
                    mine[code] = mine.get(code, 0) + count
            elif f.name == "rooms":
                for room, counts in theirs.items():
                    ours = self.room(room)
                    for name in ("expected", "matched", "duplicated", "out_of_order"):
                        setattr(ours, name, getattr(ours, name) + getattr(counts, name))
            else:
                setattr(self, f.name, mine + theirs)


class Entry:
    """A message sent, and the members that have received it (a bit each)."""

    __slots__ = ("key", "send_ns", "got", "count", "last_ns", "success", "row")

    def __init__(self, key: DeliveryKey, send_ns: int = 0) -> None:
        self.key = key
        self.send_ns = send_ns
        self.got = 0
        self.count = 0
        self.last_ns: int | None = None
        #: The final outcome: None until known.
        self.success: bool | None = None
        #: Its final metrics row (the fan-out columns left out), once known.
        self.row: tuple | None = None


# -- the rules ------------------------------------------------------------------------


def pair(entries: Iterable[Entry], bit: int) -> Entry | None:
    """The message of a key that a delivery to the member ``bit`` is of: the first one it
    has not received; None when it has them all (the delivery is a duplicate)."""
    return next((entry for entry in entries if not entry.got & bit), None)


def out_of_order(previous: int | None, sequence: int | None) -> bool:
    """Whether a delivery breaks its member's order: its sequence not above the previous
    delivery's. Null sequences (the bus down) are outside the order, never out of it."""
    return previous is not None and sequence is not None and sequence <= previous


def fanout_columns(entry: Entry, members: int) -> tuple[int, str]:
    """A message's ``deliveries`` and ``fanoutLastMs`` (blank unless every member got it)."""
    last = "" if entry.count < members or entry.last_ns is None else "%.3f" % ((entry.last_ns - entry.send_ns) / 1e6)
    return entry.count, last


# -- the tracker ----------------------------------------------------------------------


class FanoutTracker:
    """The pending messages of one process and what its members received.

    ``emit`` gets each message's final row with its fan-out columns (a tuple in
    ``metrics.BROADCAST_COLUMNS`` order) once its fan-out is settled: every member has it,
    or the run is over (``finish``). ``rooms`` are those its members listen in. Every
    method may be called from any thread.
    """

    def __init__(self, members: int, emit: Callable[[tuple], None] | None = None, rooms: Iterable[int] = ()) -> None:
        self.members = members
        self._full = (1 << members) - 1
        self._emit = emit
        self._lock = threading.Lock()
        self._pending: dict[DeliveryKey, list[Entry]] = {}
        self._retired: dict[DeliveryKey, None] = {}
        self._last_sequence: dict[tuple[int, int], int] = {}
        #: The counts so far: written under the lock, whole once ``finish`` has returned.
        self.counts = FanoutCounts(members=members)
        for room in rooms:  # the rooms listened to, listed even when nobody sends there
            self.counts.room(room)
        #: Frames received so far, and successful messages not yet at every member: read
        #: without the lock, for the drain and the phases' delivery rate.
        self.received = 0
        self.awaiting = 0

    # -- the senders' side

    def sent(self, room: int, item: OutgoingMessage) -> Entry:
        """Register ``item``, about to be sent in ``room``; its send time is taken last."""
        entry = Entry(sent_key(item.payload, room))
        with self._lock:
            self._pending.setdefault(entry.key, []).append(entry)
            entry.send_ns = perf_counter_ns()
        return entry

    def outcome(self, entry: Entry, row: tuple, success: bool) -> None:
        """A message's final outcome and its final row (without the fan-out columns)."""
        with self._lock:
            entry.row, entry.success = row, success
            if not success:
                return  # kept to the end: a delivery of it still counts, as of a failed message
            self.counts.expected += self.members
            self.counts.room(entry.key[0]).expected += self.members
            if entry.got == self._full:
                self._retire(entry)
            else:
                self.awaiting += 1

    # -- the members' side

    def receive(self, room: int, member: int, frames: list[bytes], received_ns: int) -> None:
        """What member ``member`` (0..members-1) of ``room`` received in one read."""
        parsed = []
        for frame in frames:
            try:
                parsed.append(room_delivery(frame))
            except ValueError:
                parsed.append(None)
        bit, counts, full = 1 << member, self.counts, self._full
        with self._lock:
            self.received += len(parsed)
            counts.received += len(parsed)
            for delivery in parsed:
                if delivery is None:
                    counts.unexpected += 1
                    continue
                key, sequence = delivery
                if sequence is None:
                    counts.unordered += 1
                else:
                    previous = self._last_sequence.get((room, member))
                    if out_of_order(previous, sequence):
                        counts.out_of_order += 1
                        counts.room(room).out_of_order += 1
                    self._last_sequence[room, member] = sequence
                if key[0] != room:  # another room's message: not this member's to receive
                    counts.unexpected += 1
                    continue
                entries = self._pending.get(key)
                entry = pair(entries, bit) if entries else None
                if entry is None:
                    if entries or key in self._retired:
                        counts.duplicated += 1
                        counts.room(room).duplicated += 1
                    else:
                        counts.unexpected += 1
                    continue
                entry.got |= bit
                entry.count += 1
                latency_us = (received_ns - entry.send_ns) // 1000
                add_latency(counts.each_counts, latency_us)
                counts.each_max_us = max(counts.each_max_us, latency_us)
                if entry.got == full:
                    entry.last_ns = received_ns
                    add_latency(counts.last_counts, latency_us)
                    counts.last_max_us = max(counts.last_max_us, latency_us)
                    if entry.success:
                        self.awaiting -= 1
                        self._retire(entry)

    def member_connected(self, reconnect: bool) -> None:
        with self._lock:
            self.counts.member_connections += 1
            self.counts.member_reconnects += reconnect

    def member_closed(self, code: int) -> None:
        """The server closed a member (``code``: the close frame's, 1006 without one)."""
        with self._lock:
            closes = self.counts.member_closes
            closes[code] = closes.get(code, 0) + 1

    def member_lost(self) -> None:
        with self._lock:
            self.counts.members_lost += 1

    # -- the end

    def finish(self) -> FanoutCounts:
        """Settle every message still pending (its missing deliveries stay missing), emit
        their rows, and return the counts. Called once the senders and members are done."""
        with self._lock:
            for entries in self._pending.values():
                for entry in entries:
                    self._settle(entry)
            self._pending.clear()
            self._retired.clear()
            return self.counts

    def _retire(self, entry: Entry) -> None:
        """A successful message every member has: settled, its key remembered a while."""
        entries = self._pending[entry.key]
        entries.remove(entry)
        if not entries:
            del self._pending[entry.key]
        retired = self._retired
        retired[entry.key] = None
        if len(retired) > RETIRED_WINDOW:
            del retired[next(iter(retired))]
        self._settle(entry)

    def _settle(self, entry: Entry) -> None:
        counts = self.counts
        if entry.success:
            counts.matched += entry.count
            counts.room(entry.key[0]).matched += entry.count
        else:
            counts.of_failed += entry.count
        if entry.row is not None and self._emit is not None:
            self._emit((*entry.row, *fanout_columns(entry, self.members)))
