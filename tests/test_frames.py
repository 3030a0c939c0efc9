"""The raw frame codec that the tests, the benchmarks and the fault proxy share
(``tests.support.frames``), against ChatFlow's own transport: what it builds, the
server reads; what the server sends, it reads back."""

from __future__ import annotations

import os

import pytest

from tests.support.frames import (
    OPCODE_CLOSE,
    OPCODE_PING,
    OPCODE_PONG,
    OPCODE_TEXT,
    FrameError,
    FrameReader,
    accept_value,
    client_frame,
    parse_frame,
    raw_handshake,
)
from tests.support.messages import SUCCESS_TAIL, sized_chat_message
from tests.support.servers import RunningServer


@pytest.mark.parametrize("length", [0, 1, 125, 126, 65_535, 65_536])
def test_a_client_frame_parses_back_to_its_opcode_and_payload(length: int) -> None:
    payload = os.urandom(length)
    frame = client_frame(OPCODE_TEXT, payload)
    assert frame[1] & 0x80, "client frames are masked"
    assert parse_frame(frame) == (OPCODE_TEXT, payload, len(frame))
    # One byte short is not a frame yet; at an offset, the frame after another is.
    assert parse_frame(frame[:-1] if length else frame[:1]) is None
    two = client_frame(OPCODE_PING, b"first") + frame
    assert parse_frame(two, len(two) - len(frame)) == (OPCODE_TEXT, payload, len(two))


def test_frames_set_wrong_on_purpose_carry_what_they_were_told() -> None:
    unmasked = client_frame(OPCODE_TEXT, b"abc", masked=False)
    assert unmasked == b"\x81\x03abc"
    assert client_frame(OPCODE_TEXT, b"abc", rsv=0b100, masked=False)[0] == 0x80 | 0x40 | OPCODE_TEXT
    assert client_frame(OPCODE_TEXT, announced_length=1 << 62, masked=False) == b"\x81\x7f" + (1 << 62).to_bytes(8, "big")


def test_fragments_and_oversized_frames_are_refused() -> None:
    with pytest.raises(FrameError, match="fragmented"):
        parse_frame(client_frame(OPCODE_TEXT, b"part", fin=False))
    with pytest.raises(FrameError, match="a frame of"):
        parse_frame(client_frame(OPCODE_TEXT, announced_length=1 << 30))


def test_the_accept_value_of_rfc_6455s_example_key() -> None:
    assert accept_value("dGhlIHNhbXBsZSBub25jZQ==") == "s3pPLMBiTxaQ9kYGzzhZRbK+xOo="  # RFC 6455 §1.3


def test_reader_gets_the_servers_replies_and_pongs_and_its_close(chat_server: RunningServer) -> None:
    message = sized_chat_message(7)
    assert len(message) == 160
    with raw_handshake(chat_server.port, "/chat/3") as sock:
        reader = FrameReader(sock)
        sock.sendall(client_frame(OPCODE_PING, b"p") + client_frame(OPCODE_TEXT, message))
        assert reader.next() == (OPCODE_PONG, b"p")
        reply = reader.next_text()
        assert reply.startswith(b'{"userId":7,') and reply.endswith(SUCCESS_TAIL)
        sock.sendall(client_frame(OPCODE_CLOSE, (1000).to_bytes(2, "big")))
        assert reader.close_code() == 1000
        assert reader.ends()
