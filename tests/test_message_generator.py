"""The generator thread's messages (SPEC §2.1): the mix, the wire bytes, a bounded queue."""

from __future__ import annotations

import json
import math
import queue
import re
import threading
from collections import Counter
from dataclasses import dataclass

import pytest
from websockets.frames import Frame, Opcode
from websockets.streams import StreamReader

from chatflow.client.message_generator import CHAT_LINES, MessageGenerator, OutgoingMessage
from chatflow.server.message_handler import handle_text
from chatflow.models import MessageType
from chatflow.timestamps import now_ms, parse_instant
from tests.support.memory import traced_memory
from tests.support.waiting import wait_until

SAMPLE = 20_000
SEED = 20_260_213
ROOMS = 20
WIRE_KEYS = ["userId", "username", "message", "timestamp", "messageType"]
#: The whole payload, byte for byte: the five fields in the Java client's order, compact.
PAYLOAD = re.compile(
    rb'\{"userId":(\d+),"username":"(user\d+)","message":"([^"\\]*)",'
    rb'"timestamp":"(\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z)","messageType":"(TEXT|JOIN|LEAVE)"\}'
)


def generate(total: int, seed: int | None, rooms: int = ROOMS) -> list[OutgoingMessage]:
    """Run a generator thread to its end, consuming as a sender would."""
    out: queue.SimpleQueue[OutgoingMessage] = queue.SimpleQueue()
    generator = MessageGenerator(total, out, threading.Event(), rooms=rooms, seed=seed)
    generator.start()
    items = [out.get(timeout=10) for _ in range(total)]
    generator.join(10)
    assert not generator.is_alive()
    assert generator.generated == total
    assert out.empty()
    return items


@dataclass
class Sample:
    """A seeded run of the generator, its payloads decoded, and when it was made."""

    items: list[OutgoingMessage]
    fields: list[dict]
    made_from_ms: int
    made_until_ms: int


@pytest.fixture(scope="module")
def sample() -> Sample:
    before = now_ms()
    items = generate(SAMPLE, SEED)
    after = now_ms()
    return Sample(items, [json.loads(item.payload) for item in items], before, after)


def within_five_sigma(count: int, total: int, p: float) -> bool:
    """A binomial count is within 5 standard deviations of its mean: sound for any seed."""
    return abs(count - total * p) <= 5 * math.sqrt(total * p * (1 - p))


def test_message_types_are_90_5_5(sample: Sample) -> None:
    types = Counter(item.message_type for item in sample.items)
    assert set(types) == set(MessageType)
    assert within_five_sigma(types[MessageType.TEXT], SAMPLE, 0.90), types
    assert within_five_sigma(types[MessageType.JOIN], SAMPLE, 0.05), types
    assert within_five_sigma(types[MessageType.LEAVE], SAMPLE, 0.05), types
    assert all(f["messageType"] == item.message_type.value for item, f in zip(sample.items, sample.fields))


def test_users_are_1_to_100000_and_named_after_their_id(sample: Sample) -> None:
    ids = []
    for fields in sample.fields:
        assert type(fields["userId"]) is int
        assert fields["username"] == f"user{fields['userId']}"
        ids.append(fields["userId"])
    assert 1 <= min(ids) < 100 and 99_900 < max(ids) <= 100_000
    # Uniform: each tenth of the range holds about a tenth of the sample.
    deciles = Counter((user_id - 1) // 10_000 for user_id in ids)
    assert all(within_five_sigma(deciles[d], SAMPLE, 0.1) for d in range(10)), deciles


def test_texts_come_from_the_pool_and_join_leave_name_the_user(sample: Sample) -> None:
    assert len(CHAT_LINES) == 50 and len(set(CHAT_LINES)) == 50
    seen_lines = set()
    for item, fields in zip(sample.items, sample.fields):
        text, username = fields["message"], fields["username"]
        if item.message_type is MessageType.TEXT:
            assert text in CHAT_LINES
            seen_lines.add(text)
        elif item.message_type is MessageType.JOIN:
            assert text == f"{username} joined the chat"
        else:
            assert text == f"{username} left the chat"
    assert seen_lines == set(CHAT_LINES)


def test_rooms_are_uniform_over_1_to_20(sample: Sample) -> None:
    rooms = Counter(item.room_id for item in sample.items)
    assert set(rooms) == set(range(1, ROOMS + 1))
    assert all(within_five_sigma(rooms[r], SAMPLE, 1 / ROOMS) for r in rooms), rooms


def test_rooms_follow_the_configured_count() -> None:
    assert {item.room_id for item in generate(2_000, SEED, rooms=3)} == {1, 2, 3}


def test_payload_is_exactly_the_five_fields_in_order_with_the_wire_timestamp(sample: Sample) -> None:
    for item, fields in zip(sample.items, sample.fields):
        match = PAYLOAD.fullmatch(item.payload)
        assert match, item.payload
        assert list(fields) == WIRE_KEYS
        # The time the message was made, to the millisecond.
        assert sample.made_from_ms <= parse_instant(match[4].decode()) <= sample.made_until_ms


def test_every_payload_passes_the_servers_validation(sample: Sample) -> None:
    for item, sent in zip(sample.items, sample.fields):
        reply = json.loads(handle_text(item.payload))
        assert reply["status"] == "success", (item.payload, reply)
        assert (reply["userId"], reply["username"], reply["message"], reply["clientTimestamp"], reply["messageType"]) \
            == (sent["userId"], sent["username"], sent["message"], sent["timestamp"], sent["messageType"])


def without_time(items: list[OutgoingMessage]) -> list[tuple]:
    """What a seed decides: everything but the timestamp."""
    return [(item.room_id, item.message_type, re.sub(rb'"timestamp":"[^"]*"', b"", item.payload)) for item in items]


def test_same_seed_gives_the_same_messages_and_another_seed_others() -> None:
    first = without_time(generate(3_000, 7))
    assert without_time(generate(3_000, 7)) == first
    assert without_time(generate(3_000, 8)) != first


def test_queue_stays_bounded_when_nobody_takes_and_stop_ends_the_generator() -> None:
    bound = 100
    out: queue.SimpleQueue[OutgoingMessage] = queue.SimpleQueue()
    stop = threading.Event()
    generator = MessageGenerator(SAMPLE, out, stop, rooms=ROOMS, seed=SEED, capacity=bound)
    generator.start()
    try:
        wait_until(lambda: generator.generated == bound, message="the generator filled the queue")
        # Blocked on the full queue, not finished: it holds no message beyond the bound.
        assert generator.is_alive()
        assert out.qsize() == bound
    finally:
        stop.set()
        generator.join(5)
    assert not generator.is_alive()
    assert generator.generated == bound == out.qsize()



def test_a_full_queue_holds_the_messages_bytes_not_spare_buffer_capacity() -> None:
    """A queued message must cost its own size: orjson's output buffers are 4 KiB each,
    and 10,000 of them held made 40 of the client's 75 MiB."""
    with traced_memory() as traced:
        before = traced()[0]
        items = generate(2_000, SEED)
        held = traced()[0] - before
    wire_bytes = sum(len(item.payload) + len(item.frame) for item in items)
    assert held < 3 * wire_bytes, f"{held / len(items):.0f} B held per message"


def test_stop_ends_the_generator_while_someone_still_takes() -> None:
    bound = 100
    out: queue.SimpleQueue[OutgoingMessage] = queue.SimpleQueue()
    stop = threading.Event()
    generator = MessageGenerator(SAMPLE, out, stop, rooms=ROOMS, seed=SEED, capacity=bound)
    generator.start()
    try:
        for _ in range(500):
            out.get(timeout=5)
        stop.set()
        # Keep taking, as senders that fail fast would: the queue must run dry.
        drained = 0
        for _ in range(SAMPLE):
            try:
                out.get(timeout=0.5)
            except queue.Empty:
                break
            drained += 1
    finally:
        stop.set()
        generator.join(5)
    assert not generator.is_alive()
    # What was queued at the stop, and at most the one being put.
    assert drained <= bound + 1
    assert generator.generated == 500 + drained


def test_each_message_carries_its_payload_as_one_masked_text_frame() -> None:
    masks = set()
    for item in generate(200, seed=3):
        reader = StreamReader()
        reader.feed_data(item.frame)
        parser = Frame.parse(reader.read_exact, mask=True)
        try:
            next(parser)
        except StopIteration as done:
            frame = done.value
        else:
            raise AssertionError("the frame is incomplete")
        assert (frame.opcode, frame.fin, frame.data) == (Opcode.TEXT, True, item.payload)
        assert not reader.buffer, "bytes after the frame"
        masks.add(item.frame[2:6] if len(item.payload) < 126 else item.frame[4:8])
    # A fresh masking key for every frame, as RFC 6455 §5.3 requires.
    assert len(masks) == 200
