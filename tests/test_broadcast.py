"""``--mode broadcast``: a room's messages to its other members (docs/broadcast.md).

Real clients on real sockets against the broadcast handler behind the real transport.
"""

from __future__ import annotations

import json
import socket

import pytest
import websocket

from chatflow import wire
from chatflow.models import ChatResponse, MessageType, RoomMessage
from chatflow.server.broadcast import BroadcastChat
from chatflow.server.message_handler import handle_text
from chatflow.server.main import build_parser, config_from
from tests.support.clients import close, connected, receive_close, round_trip
from tests.support.messages import SUCCESS_KEYS, chat_message_json
from tests.support.servers import serving
from tests.support.waiting import wait_until

ROOM_KEYS = ["type", "roomId", "messageId", "sequence", "userId", "username", "message", "clientTimestamp",
             "serverTimestamp", "messageType", "instanceId"]
MEMBER_BACKLOG = 64 * 1024


def slow_member(url: str, port: int) -> websocket.WebSocket:
    """A member whose receive buffer is small from the start (set before it connects), so
    that what it does not read piles up in the server, not in the kernel."""
    sock = socket.socket()
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
    sock.connect(("127.0.0.1", port))
    return websocket.create_connection(url, socket=sock, timeout=10)


def broadcast(backlog: int = MEMBER_BACKLOG) -> BroadcastChat:
    return BroadcastChat(max_rooms=20, instance_id="test-1", member_backlog=backlog)


def test_the_room_frame_is_pinned_to_the_byte() -> None:
    response = ChatResponse(7, "user7", "Hi all", 1_771_000_000_000, 1_771_000_000_123, MessageType.JOIN)
    frame = wire.encode_room_message(RoomMessage(3, 42, response, "host-99"))
    assert frame == (b'{"type":"roomMessage","roomId":3,"messageId":"3-42","sequence":42,"userId":7,'
                     b'"username":"user7","message":"Hi all","clientTimestamp":"2026-02-13T16:26:40.000Z",'
                     b'"serverTimestamp":"2026-02-13T16:26:40.123Z","messageType":"JOIN","instanceId":"host-99"}')


def test_echo_is_the_default_mode_and_broadcast_is_asked_for() -> None:
    assert config_from(build_parser().parse_args([])).mode == "echo"
    config = config_from(build_parser().parse_args(["--mode", "broadcast", "--instance-id", "a", "--member-backlog",
                                                    "4096"]))
    assert (config.mode, config.instance_id, config.member_backlog) == ("broadcast", "a", 4096)


def test_members_get_each_message_once_in_order_and_the_sender_its_reply() -> None:
    with serving(broadcast()) as running:
        room = f"{running.url}/chat/5"
        with connected(room) as sender, connected(room) as first, connected(room) as second, \
                connected(f"{running.url}/chat/6") as elsewhere:
            wait_until(lambda: running.handler.rooms.occupancy() == {5: 3, 6: 1}, message="all joined")
            for n in range(1, 21):
                reply = round_trip(sender, chat_message_json(message=f"message {n}"))
                assert list(reply) == SUCCESS_KEYS and reply["status"] == "success"
            for member in (first, second):
                frames = [json.loads(member.recv()) for _ in range(20)]
                assert [f["sequence"] for f in frames] == list(range(1, 21))
                assert [f["message"] for f in frames] == [f"message {n}" for n in range(1, 21)]
                assert all(list(f) == ROOM_KEYS for f in frames)
                assert {(f["roomId"], f["instanceId"], f["type"]) for f in frames} == {(5, "test-1", "roomMessage")}
                assert frames[0]["messageId"] == "5-1"
            # The other room, and the sender itself, got nothing more.
            elsewhere.settimeout(0.3)
            with pytest.raises(Exception):
                elsewhere.recv()
            sender.settimeout(0.3)
            with pytest.raises(Exception):
                sender.recv()
    assert running.handler.delivered == 40


def test_the_sender_s_reply_is_the_echo_mode_s_and_an_invalid_message_goes_nowhere() -> None:
    with serving(broadcast()) as running:
        room = f"{running.url}/chat/2"
        with connected(room) as sender, connected(room) as member:
            wait_until(lambda: running.handler.rooms.occupancy() == {2: 2}, message="both joined")
            text = chat_message_json(username="ab")  # too short: an error
            reply = round_trip(sender, text)
            assert reply["status"] == "error"
            assert {k: v for k, v in reply.items() if k != "timestamp"} == {
                k: v for k, v in json.loads(handle_text(text)).items() if k != "timestamp"}
            valid = round_trip(sender, chat_message_json())
            assert [k for k in valid] == SUCCESS_KEYS
            # The member's first frame is the valid message's: the invalid one was not sent.
            assert json.loads(member.recv())["sequence"] == 1


def test_a_member_that_does_not_read_is_closed_and_the_others_get_everything() -> None:
    limit = 20_000  # messages: far more than the kernel's buffers and the backlog hold
    with serving(broadcast(backlog=16 * 1024)) as running:
        room = f"{running.url}/chat/9"
        with connected(room) as sender, connected(room) as reader:
            stuck = slow_member(room, running.port)
            try:
                wait_until(lambda: running.handler.rooms.occupancy() == {9: 3}, message="all three joined")
                sent = 0
                while not running.handler.evicted and sent < limit:
                    sender.send(chat_message_json(message="x" * 400))
                    assert json.loads(sender.recv())["status"] == "success"
                    sent += 1
                    assert json.loads(reader.recv())["sequence"] == sent
                assert running.handler.evicted == 1, f"not closed after {sent:,} messages"
                assert running.handler.rooms.occupancy() == {9: 2}
                # The room goes on for the members that read.
                for _ in range(100):
                    round_trip(sender, chat_message_json())
                    sent += 1
                    assert json.loads(reader.recv())["sequence"] == sent
            finally:
                close(stuck)


def test_an_evicted_member_is_told_why_when_it_reads_again() -> None:
    """A slow member that reads at last finds the room's frames, then the 1008 close."""
    with serving(broadcast(backlog=2 * 1024)) as running:
        room = f"{running.url}/chat/4"
        with connected(room) as sender:
            slow = slow_member(room, running.port)
            try:
                wait_until(lambda: running.handler.rooms.occupancy() == {4: 2}, message="both joined")
                for _ in range(20_000):
                    round_trip(sender, chat_message_json(message="x" * 400))
                    if running.handler.evicted:
                        break
                assert running.handler.evicted == 1
                code, reason = receive_close(slow, max_frames=10_000)
                assert code == 1008 and reason.startswith("too slow: more than 2,048 bytes")
            finally:
                close(slow)
