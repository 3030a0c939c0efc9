"""``/health`` tells the truth: ``healthy`` only while the WebSocket listener and its
selector thread serve, else 503 with the reason (docs/server-design.md#the-health-endpoint).
A whole server in the test's process, its loop made to fail by its public drill."""

from __future__ import annotations

import logging
import socket

import pytest
import websocket

from tests.support.clients import connected, round_trip
from tests.support.health import get_health
from tests.support.messages import chat_message_json
from tests.support.metrics import scrape
from tests.support.network import LOCALHOST
from tests.support.servers import assembled
from tests.support.waiting import wait_until

FAILED = {"status": "unhealthy", "reason": "WebSocket selector thread failed: RuntimeError: drill"}


def test_a_dead_selector_thread_turns_health_503_with_the_reason(caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.CRITICAL, logger="chatflow.server")  # the traceback logged is the drill's
    with assembled() as server:
        port = server.port
        assert get_health(server.health_port) == (200, {"status": "healthy"})
        assert scrape(server.health_port).total("chatflow_websocket_up") == 1
        with connected(f"{server.url}/chat/1") as ws:
            assert round_trip(ws, chat_message_json())["status"] == "success"
            server.parts.websocket.inject_failure(RuntimeError("drill"))
            assert wait_until(lambda: (answer := get_health(server.health_port))[0] == 503 and answer,
                              message="/health answers 503") == (503, FAILED)
            with pytest.raises((websocket.WebSocketConnectionClosedException, ConnectionError)):
                round_trip(ws, chat_message_json())  # its connection was released with the loop
        status, body = get_health(server.health_port, "/health?verbose")
        assert status == 503 and body["reason"] == FAILED["reason"] and body["connections"] == 0
        assert scrape(server.health_port).total("chatflow_websocket_up") == 0
        with pytest.raises(ConnectionRefusedError):  # its listener closed: refused, not left in a backlog
            socket.create_connection((LOCALHOST, port), timeout=1).close()


def test_a_stopped_websocket_listener_turns_health_503() -> None:
    with assembled() as server:
        server.parts.websocket.stop(grace=0.5)
        assert get_health(server.health_port) == (503, {"status": "unhealthy",
                                                        "reason": "WebSocket listener not running"})
