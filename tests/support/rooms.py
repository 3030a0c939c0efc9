"""Broadcast rooms seen from their members: reading room frames, a sender's reply among
them, and server processes on a bus (docs/broadcast.md)."""

from __future__ import annotations

import json
from contextlib import AbstractContextManager
from typing import Any

import websocket

from tests.support.messages import chat_message_json
from tests.support.processes import ListeningServer, server_process
from tests.support.redis_server import RedisServer

#: More room frames than any test sends before the reply it waits for.
MAX_FRAMES = 1000
#: How long ``nothing_more`` listens.
QUIET = 0.3


def frames(member: websocket.WebSocket, count: int) -> list[dict[str, Any]]:
    """The next ``count`` frames a member receives, parsed."""
    return [json.loads(member.recv()) for _ in range(count)]


def send_for_reply(sender: websocket.WebSocket, text: str, room_frames: list[dict[str, Any]]) -> dict[str, Any]:
    """Send a chat message of ``text`` and read up to its reply; the room frames that come
    before it (other senders' messages) go to ``room_frames``."""
    sender.send(chat_message_json(message=text))
    for _ in range(MAX_FRAMES):
        frame = json.loads(sender.recv())
        if "status" in frame:
            return frame
        room_frames.append(frame)
    raise AssertionError(f"no reply among {MAX_FRAMES:,} frames")


def nothing_more(ws: websocket.WebSocket) -> bool:
    """Nothing arrives for ``QUIET`` seconds."""
    ws.settimeout(QUIET)
    try:
        ws.recv()
    except websocket.WebSocketTimeoutException:
        return True
    return False


def bus_server(redis: RedisServer, name: str, *args: str) -> AbstractContextManager[ListeningServer]:
    """``run_server.py --mode broadcast --bus`` on ``redis``, as instance ``name``."""
    return server_process("--mode", "broadcast", "--bus", redis.url, "--instance-id", name, *args)
