"""The chat server through real connections on 127.0.0.1 (SPEC §1.2–1.5).

websocket-client plays the well-behaved client; raw sockets play the ones a library
would not let us be: half frames, resets, clients that never answer a ping.
"""

from __future__ import annotations

import json
import socket
import struct
import threading
from concurrent.futures import ThreadPoolExecutor

import pytest
import websocket
from websocket import ABNF

from chatflow.server.config import KiB, ServerLimits
from chatflow.server.chat_websocket_server import ChatWebSocketServer
from chatflow.timestamps import format_instant, now_ms
from tests.support.clients import close, connect, connected, receive_close, round_trip
from tests.support.frames import parse_frame, raw_handshake
from tests.support.messages import ERROR_KEYS, SUCCESS_KEYS, WIRE_INSTANT, chat_message_json
from tests.support.network import LOCALHOST, read_to_end
from tests.support.servers import RunningServer, chat_handler, serving
from tests.support.waiting import DEFAULT_TIMEOUT, wait_until

INVALID_ENDPOINT = "Invalid endpoint. Use /chat/{roomId} where roomId is 1-20"
INVALID_ROOM = "Invalid room number. Room must be between 1 and 20"


def assert_still_serving(ws: websocket.WebSocket, user_id: int = 4242) -> None:
    """One more valid message on the same connection gets its own success reply."""
    reply = round_trip(ws, chat_message_json(userId=user_id))
    assert (reply["status"], reply["userId"]) == ("success", user_id)


# -- replies ------------------------------------------------------------------------


def test_valid_message_gets_its_success_reply_with_exact_keys_and_compact_json(chat_url: str) -> None:
    sent = chat_message_json()
    with connected(f"{chat_url}/chat/5") as ws:
        before = now_ms()
        ws.send(sent)
        raw = ws.recv()
        after = now_ms()

    reply = json.loads(raw)
    assert list(reply) == SUCCESS_KEYS
    server_timestamp = reply["serverTimestamp"]
    assert WIRE_INSTANT.fullmatch(server_timestamp)
    # The instant format has millisecond resolution, so the window is in whole ms.
    assert format_instant(before) <= server_timestamp <= format_instant(after)
    assert raw == (
        '{"userId":12345,"username":"user12345","message":"Hello everyone!",'
        '"clientTimestamp":"2026-02-13T10:30:00.000Z",'
        f'"serverTimestamp":"{server_timestamp}","messageType":"TEXT","status":"success"}}'
    )


@pytest.mark.parametrize(
    ("timestamp", "client_timestamp"),
    [
        ("2026-02-13T12:30:00.123456789+02:00", "2026-02-13T10:30:00.123Z"),
        ("2026-02-13T10:30:00Z", "2026-02-13T10:30:00.000Z"),
        (1795518076.943278969, "2026-11-24T11:01:16.943Z"),
    ],
)
def test_client_timestamp_is_normalised_to_the_wire_form(chat_url: str, timestamp, client_timestamp: str) -> None:
    with connected(f"{chat_url}/chat/1") as ws:
        reply = round_trip(ws, chat_message_json(timestamp=timestamp, messageType="JOIN", userId="77"))
    assert reply["clientTimestamp"] == client_timestamp
    assert (reply["userId"], reply["messageType"]) == (77, "JOIN")


def test_every_failing_rule_is_reported_at_once_in_table_order(chat_url: str) -> None:
    bad = {"userId": 0, "username": "a!", "message": " ", "timestamp": "yesterday", "messageType": "SHOUT"}
    with connected(f"{chat_url}/chat/2") as ws:
        reply = round_trip(ws, json.dumps(bad))
        missing = round_trip(ws, "{}")
        assert_still_serving(ws)

    assert list(reply) == ERROR_KEYS
    assert reply["status"] == "error"
    assert WIRE_INSTANT.fullmatch(reply["timestamp"])
    assert reply["errors"] == [
        "userId must be between 1 and 100000",
        "username must be 3-20 characters",
        "username must be alphanumeric",
        "message is required",
        "timestamp must be a valid ISO-8601 timestamp",
        "messageType must be one of TEXT, JOIN, LEAVE",
    ]
    assert missing["errors"] == [
        "userId is required",
        "username is required",
        "message is required",
        "timestamp is required",
        "messageType is required",
    ]


@pytest.mark.parametrize("text", ["not json", '{"userId":1', "", "[1,2]", "42", "null", '"a string"', "true"])
def test_text_that_is_not_a_json_object_gets_a_format_error_and_the_connection_stays(
    chat_url: str, text: str
) -> None:
    with connected(f"{chat_url}/chat/3") as ws:
        reply = round_trip(ws, text)
        assert_still_serving(ws)
    assert list(reply) == ERROR_KEYS
    assert reply["status"] == "error"
    [error] = reply["errors"]
    assert error.startswith("Invalid message format: ")
    assert len(error) > len("Invalid message format: ")


def test_binary_frame_gets_an_error_reply_and_the_connection_stays(chat_url: str) -> None:
    with connected(f"{chat_url}/chat/4") as ws:
        ws.send_binary(chat_message_json().encode())
        reply = json.loads(ws.recv())
        assert_still_serving(ws)
    assert reply["status"] == "error"
    assert reply["errors"] == ["binary frames are not supported"]


def test_bad_messages_do_not_disturb_another_connection(chat_url: str) -> None:
    with connected(f"{chat_url}/chat/6") as bad, connected(f"{chat_url}/chat/6") as good:
        for text in ("nope", "[]", '{"userId":true,"username":5}'):
            bad.send(text)
            assert_still_serving(good)
            assert json.loads(bad.recv())["status"] == "error"
        assert_still_serving(bad)


# -- sizes, fragments, UTF-8 ------------------------------------------------------------


def padded_message(size: int) -> str:
    """A valid chat message of exactly ``size`` bytes (unknown fields are ignored)."""
    head = chat_message_json()[:-1] + ',"padding":"'
    text = head + "x" * (size - len(head) - 2) + '"}'
    assert len(text.encode()) == size
    return text


def test_message_of_exactly_the_size_limit_is_answered(chat_url: str) -> None:
    with connected(f"{chat_url}/chat/8") as ws:
        reply = round_trip(ws, padded_message(64 * KiB))
    assert reply["status"] == "success"


def test_message_over_the_size_limit_closes_with_1009(chat_server: RunningServer) -> None:
    with connected(f"{chat_server.url}/chat/8") as ws:
        ws.send(padded_message(64 * KiB + 1))
        code, _ = receive_close(ws)
    assert code == 1009
    wait_until(lambda: chat_server.server.connection_count == 0)


def test_fragmented_text_is_reassembled_into_one_message(chat_url: str) -> None:
    # The split falls inside the two bytes of "é": each fragment alone is not UTF-8.
    encoded = chat_message_json(message="crème brûlée").encode()
    cut = encoded.index("è".encode()) + 1
    fragments = [encoded[:10], encoded[10:cut], encoded[cut:]]
    with connected(f"{chat_url}/chat/9") as ws:
        ws.send_frame(ABNF.create_frame(fragments[0], ABNF.OPCODE_TEXT, fin=0))
        ws.send_frame(ABNF.create_frame(fragments[1], ABNF.OPCODE_CONT, fin=0))
        ws.send_frame(ABNF.create_frame(fragments[2], ABNF.OPCODE_CONT, fin=1))
        reply = json.loads(ws.recv())
        # Exactly one reply for the three frames: the next reply is the next message's.
        assert_still_serving(ws, user_id=99)
    assert (reply["status"], reply["message"]) == ("success", "crème brûlée")


def test_fragmented_message_is_validated_as_one_message(chat_url: str) -> None:
    encoded = json.dumps({"userId": 0, "username": "user1"}).encode()
    with connected(f"{chat_url}/chat/9") as ws:
        ws.send_frame(ABNF.create_frame(encoded[:7], ABNF.OPCODE_TEXT, fin=0))
        ws.send_frame(ABNF.create_frame(encoded[7:], ABNF.OPCODE_CONT, fin=1))
        reply = json.loads(ws.recv())
    assert reply["errors"] == [
        "userId must be between 1 and 100000",
        "message is required",
        "timestamp is required",
        "messageType is required",
    ]


def test_invalid_utf8_in_a_text_frame_closes_with_1007(chat_url: str) -> None:
    with connected(f"{chat_url}/chat/10") as ws:
        ws.send(b'{"message":"\xff\xfe"}', opcode=ABNF.OPCODE_TEXT)
        code, _ = receive_close(ws)
    assert code == 1007


def test_invalid_utf8_in_a_fragment_closes_with_1007(chat_url: str) -> None:
    with connected(f"{chat_url}/chat/10") as ws:
        ws.send_frame(ABNF.create_frame(b'{"message":"', ABNF.OPCODE_TEXT, fin=0))
        ws.send_frame(ABNF.create_frame(b"\xc3\x28", ABNF.OPCODE_CONT, fin=0))
        code, _ = receive_close(ws)
    assert code == 1007


# -- paths and rooms --------------------------------------------------------------------


@pytest.mark.parametrize(
    ("path", "reason"),
    [
        ("/", INVALID_ENDPOINT),
        ("/foo", INVALID_ENDPOINT),
        ("/chat", INVALID_ENDPOINT),
        ("/chat/", INVALID_ENDPOINT),
        ("/chat/5/", INVALID_ENDPOINT),
        ("/chat/5?x=1", INVALID_ENDPOINT),
        ("/chat/-1", INVALID_ENDPOINT),
        ("/chat/abc", INVALID_ENDPOINT),
        ("/chat/0", INVALID_ROOM),
        ("/chat/21", INVALID_ROOM),
        ("/chat/99999999999", INVALID_ROOM),
    ],
)
def test_invalid_path_or_room_is_accepted_then_closed_with_1003(
    chat_server: RunningServer, path: str, reason: str
) -> None:
    with connected(chat_server.url + path) as ws:
        assert receive_close(ws) == (1003, reason)
    assert chat_server.handler.rooms.occupancy() == {}


@pytest.mark.parametrize(("path", "room"), [("/chat/05", 5), ("/chat/1", 1), ("/chat/20", 20)])
def test_valid_rooms_are_joined(chat_server: RunningServer, path: str, room: int) -> None:
    with connected(chat_server.url + path) as ws:
        assert_still_serving(ws)
        assert chat_server.handler.rooms.occupancy() == {room: 1}


def test_max_rooms_changes_the_bound_and_the_reasons() -> None:
    with serving(ChatWebSocketServer(max_rooms=3)) as running:
        with connected(f"{running.url}/chat/3") as ws:
            assert_still_serving(ws)
        with connected(f"{running.url}/chat/4") as ws:
            assert receive_close(ws) == (1003, "Invalid room number. Room must be between 1 and 3")
        with connected(f"{running.url}/room/1") as ws:
            assert receive_close(ws) == (1003, "Invalid endpoint. Use /chat/{roomId} where roomId is 1-3")


def test_room_registry_tracks_connections_until_they_close(chat_server: RunningServer) -> None:
    rooms = chat_server.handler.rooms
    clients = [connect(f"{chat_server.url}/chat/{room}") for room in (3, 7, 3)]
    try:
        wait_until(lambda: rooms.occupancy() == {3: 2, 7: 1}, describe=rooms.occupancy)
        close(clients.pop())
        wait_until(lambda: rooms.occupancy() == {3: 1, 7: 1}, describe=rooms.occupancy)
    finally:
        for ws in clients:
            close(ws)
    wait_until(lambda: rooms.occupancy() == {}, describe=rooms.occupancy)


# -- concurrency and misbehaving clients --------------------------------------------------------


def test_concurrent_connections_each_get_exactly_their_own_replies_in_order(chat_server: RunningServer) -> None:
    threads, messages_each = 64, 50
    all_connected = threading.Barrier(threads, timeout=30)

    def converse(thread: int) -> list[tuple[int, str]]:
        with connected(f"{chat_server.url}/chat/{thread % 20 + 1}", timeout=30) as ws:
            all_connected.wait()
            replies = []
            for n in range(messages_each):
                ws.send(chat_message_json(userId=thread * 1000 + n + 1, username=f"thread{thread}",
                                          message=f"message {n} of thread {thread}"))
                reply = json.loads(ws.recv())
                assert reply["status"] == "success", reply
                assert reply["username"] == f"thread{thread}"
                replies.append((reply["userId"], reply["message"]))
            return replies

    with ThreadPoolExecutor(threads) as pool:
        results = [future.result(timeout=60) for future in [pool.submit(converse, t) for t in range(threads)]]

    for thread, replies in enumerate(results):
        assert replies == [(thread * 1000 + n + 1, f"message {n} of thread {thread}") for n in range(messages_each)]
    wait_until(lambda: chat_server.server.connection_count == 0)


@pytest.mark.parametrize("reset", [False, True], ids=["closes-mid-frame", "resets-mid-frame"])
def test_client_vanishing_mid_message_is_released_and_others_are_served(
    chat_server: RunningServer, reset: bool
) -> None:
    server = chat_server.server
    with connected(f"{chat_server.url}/chat/11") as bystander:
        wait_until(lambda: server.connection_count == 1)
        sock = raw_handshake(chat_server.port, "/chat/11")
        wait_until(lambda: chat_server.handler.rooms.occupancy() == {11: 2})
        frame = ABNF.create_frame(chat_message_json(), ABNF.OPCODE_TEXT).format()
        sock.sendall(frame[: len(frame) // 2])
        if reset:
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
        sock.close()

        # The socket is forgotten a moment before the handler hears of it: wait for both.
        wait_until(lambda: server.connection_count == 1 and chat_server.handler.rooms.occupancy() == {11: 1},
                   describe=lambda: f"{server.connection_count} connections, {chat_server.handler.rooms.occupancy()}")
        assert_still_serving(bystander)


def test_client_that_never_completes_its_handshake_is_released_at_the_handshake_timeout() -> None:
    with serving(chat_handler(), ServerLimits(handshake_timeout=0.5)) as running:
        with socket.create_connection((LOCALHOST, running.port), timeout=DEFAULT_TIMEOUT) as mute:
            mute.sendall(b"GET /chat/1 HTTP/1.1\r\n")
            wait_until(lambda: running.server.connection_count == 1)
            wait_until(lambda: running.server.connection_count == 0, timeout=3)
            assert mute.recv(1024) == b""


def test_plain_http_request_is_refused_and_released(chat_server: RunningServer) -> None:
    with socket.create_connection((LOCALHOST, chat_server.port), timeout=DEFAULT_TIMEOUT) as plain:
        plain.sendall(f"GET /chat/1 HTTP/1.1\r\nHost: {LOCALHOST}\r\n\r\n".encode())
        response = bytearray()
        while chunk := plain.recv(4096):
            response += chunk
            assert len(response) < 8192
    assert response.startswith(b"HTTP/1.1 426 ")
    wait_until(lambda: chat_server.server.connection_count == 0)
    assert chat_server.handler.rooms.occupancy() == {}


def test_client_ping_gets_a_pong_with_the_same_payload(chat_url: str) -> None:
    with connected(f"{chat_url}/chat/12") as ws:
        ws.ping(b"are you there")
        assert ws.recv_data(control_frame=True) == (ABNF.OPCODE_PONG, b"are you there")
        assert_still_serving(ws)


def read_server_frames(sock: socket.socket, limit: int = 10) -> list[tuple[int, bytes]]:
    """The server's frames until it ends the stream: here a ping or a few, then a close."""
    data = read_to_end(sock)
    assert len(data) < 4096, "more than a ping and a close"
    frames, offset = [], 0
    while (frame := parse_frame(data, offset)) is not None:
        opcode, payload, offset = frame
        frames.append((opcode, payload))
        assert len(frames) <= limit, f"more than {limit} frames"
    assert offset == len(data), f"a frame cut short: {data[offset:offset + 64]!r}"
    return frames


def test_keepalive_closes_a_client_that_never_answers_pings_and_keeps_one_that_does() -> None:
    limits = ServerLimits(ping_interval=0.5, ping_timeout=0.5)
    with serving(chat_handler(), limits) as running:
        server = running.server
        with connected(f"{running.url}/chat/13") as answering:
            silent = raw_handshake(running.port, "/chat/13")
            wait_until(lambda: server.connection_count == 2)

            # websocket-client answers each ping as it reads it.
            for _ in range(3):
                opcode, _ = answering.recv_data(control_frame=True)
                assert opcode == ABNF.OPCODE_PING

            wait_until(lambda: server.connection_count == 1 and running.handler.rooms.occupancy() == {13: 1},
                       describe=lambda: f"{server.connection_count} connections, {running.handler.rooms.occupancy()}")
            with silent:
                frames = read_server_frames(silent)
            assert frames[0][0] == ABNF.OPCODE_PING
            assert frames[-1][0] == ABNF.OPCODE_CLOSE
            assert int.from_bytes(frames[-1][1][:2], "big") == 1011
            assert_still_serving(answering)


def test_handshake_beyond_max_connections_gets_503_until_one_closes() -> None:
    with serving(chat_handler(), ServerLimits(max_connections=2)) as running:
        first, second = connect(f"{running.url}/chat/1"), connect(f"{running.url}/chat/2")
        try:
            with pytest.raises(websocket.WebSocketBadStatusException) as refused:
                connect(f"{running.url}/chat/3")
            assert refused.value.status_code == 503
            assert_still_serving(second)
            close(first)
            wait_until(lambda: running.server.open_connections == 1)
            with connected(f"{running.url}/chat/3") as third:
                assert_still_serving(third)
        finally:
            close(first)
            close(second)
