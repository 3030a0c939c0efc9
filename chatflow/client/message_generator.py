"""The producer: one thread that makes every message of a run and queues it.

Messages are serialised and framed here (JSON, then a masked WebSocket frame built by
websocket-client, ``framing``), off the senders' hot path, and the generator keeps at
most ``QUEUE_SIZE`` of them queued, so a 500,000-message run never holds more.

The queue is a ``queue.SimpleQueue`` that the generator bounds itself: a
``queue.Queue(maxsize)`` takes a Python lock on every put and get, and 64 senders
contending for it starve the generator of the GIL (docs/client.md).
"""

from __future__ import annotations

import queue
import random
import threading
from collections.abc import Callable
from dataclasses import dataclass

from chatflow import wire
from chatflow.client.framing import MaskKeys, text_frame
from chatflow.models import ChatMessage, MessageType
from chatflow.timestamps import now_ms

QUEUE_SIZE = 10_000
#: The share of the queue made in one go once it has room for it (2,500 of 10,000).
REFILL_FRACTION = 0.25
REFILL_WAIT = 0.005

CHAT_LINES: tuple[str, ...] = (
    "Hello everyone!", "How's it going?", "Good morning!", "Good night, all.",
    "Anyone here?", "What are you working on?", "That sounds great!", "I agree.",
    "Not sure about that.", "Can you explain?", "Thanks for sharing!", "Nice work!",
    "Let's meet at noon.", "Running a bit late.", "On my way.", "Back in five minutes.",
    "Did you see the news?", "Happy Friday!", "Coffee break?", "Lunch anyone?",
    "The build is green.", "Tests are passing.", "Deploying now.", "Rolling back.",
    "Who broke the build?", "Pushing a fix.", "Please review my PR.", "LGTM!",
    "Ship it!", "Let's discuss tomorrow.", "Great question.", "I'll look into it.",
    "Can someone help me?", "Found the bug.", "It works on my machine.", "Restarting the server.",
    "Latency looks good.", "Throughput is up.", "Check the dashboard.", "Nice chart!",
    "See you later.", "Welcome aboard!", "Congrats on the launch!", "Any updates?",
    "Sounds like a plan.", "I'm stepping out.", "brb", "lol", "Totally.", "Goodbye!",
)


@dataclass(slots=True)
class OutgoingMessage:
    """What the queue carries: the wire bytes, framed, plus what the metrics need."""

    payload: bytes
    message_type: MessageType
    room_id: int
    #: ``payload`` as a whole masked WebSocket text frame (``text_frame``).
    frame: bytes
    #: ``message_type.value``, for the metrics row: an enum's ``value`` is a Python-level
    #: property, read once here rather than on each attempt.
    type_name: str = ""

    @classmethod
    def of(cls, message: ChatMessage, room_id: int, mask_keys: MaskKeys) -> OutgoingMessage:
        # orjson hands back its whole output buffer, 4 KiB whatever the length; a queued
        # message keeps an exact-size copy instead (docs/performance.md).
        payload = bytes(memoryview(wire.encode_chat_message(message)))
        return cls(payload, message.message_type, room_id, text_frame(payload, mask_keys),
                   message.message_type.value)


def random_message(rng: random.Random, rooms: int, clock: Callable[[], int] = now_ms) -> tuple[ChatMessage, int]:
    """One message of SPEC §2.1's mix and its room: types 90/5/5, user and room uniform.

    Uniform integers are drawn as ``int(random() * n)``: ``randint`` is much slower, and
    this runs once per message of the run.
    """
    draw = rng.random
    user_id = 1 + int(draw() * 100_000)
    username = f"user{user_id}"
    kind = draw()
    if kind < 0.90:
        message_type, text = MessageType.TEXT, CHAT_LINES[int(draw() * len(CHAT_LINES))]
    elif kind < 0.95:
        message_type, text = MessageType.JOIN, f"{username} joined the chat"
    else:
        message_type, text = MessageType.LEAVE, f"{username} left the chat"
    room = 1 + int(draw() * rooms)
    return ChatMessage(user_id, username, text, clock(), message_type), room


class MessageGenerator(threading.Thread):
    """Produces ``total`` messages into ``out``, at most ``capacity`` queued at a time;
    stops early when ``stop`` is set."""

    def __init__(
        self,
        total: int,
        out: queue.SimpleQueue[OutgoingMessage],
        stop: threading.Event,
        *,
        rooms: int,
        seed: int | str | None,
        capacity: int | None = None,
    ) -> None:
        super().__init__(name="MessageGenerator", daemon=True)
        self.total = total
        self.out = out
        # Read at construction, not at definition: a benchmark varies them (bench/client_wait.py).
        self.capacity = QUEUE_SIZE if capacity is None else capacity
        #: Messages made in one go once the queue has room for them.
        self.refill = max(1, int(self.capacity * REFILL_FRACTION))
        self.stop = stop
        self.rooms = rooms
        self.rng = random.Random(seed)
        #: Messages made and queued so far; only this thread writes it.
        self.generated = 0
        #: Set once the queue is first full (or every message is made).
        self.primed = threading.Event()

    def run(self) -> None:
        try:
            self._produce()
        finally:
            self.primed.set()

    def _produce(self) -> None:
        rng, rooms, out, stop = self.rng, self.rooms, self.out, self.stop
        mask_keys = MaskKeys()
        capacity = self.capacity
        refill_below = capacity - self.refill
        for _ in range(self.total):
            # Checked every time, not only when the queue is full: senders that fail
            # fast keep making room, and a stopped run must stop producing.
            if stop.is_set():
                return
            if out.qsize() >= capacity:
                self.primed.set()
                # Wait until ``refill`` messages are gone, then make them in one go:
                # waking for every free slot would cost a GIL handoff per message.
                while out.qsize() > refill_below:
                    if stop.wait(REFILL_WAIT):
                        return
            message, room = random_message(rng, rooms)
            out.put(OutgoingMessage.of(message, room, mask_keys))
            self.generated += 1
