"""ChatFlow's server in the test's own process: the transport on a free port, serving
the chat application (or any handler) for a ``with`` block; or the whole server as
``run_server.py`` builds it (``assembled``)."""

from __future__ import annotations

import dataclasses
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass

from chatflow.server.chat_websocket_server import ChatWebSocketServer
from chatflow.server.config import DEFAULTS, ServerLimits
from chatflow.server.health_check_server import HealthCheckServer
from chatflow.server.main import Server, assemble
from chatflow.server.transport import Connection, Handler, WebSocketServer
from tests.support.network import LOCALHOST


@dataclass
class RunningServer:
    """A WebSocketServer serving on 127.0.0.1, with what tests inspect of it."""

    server: WebSocketServer
    handler: Handler
    url: str

    @property
    def port(self) -> int:
        return self.server.address[1]


def chat_handler() -> ChatWebSocketServer:
    """The chat application with the server's default rooms."""
    return ChatWebSocketServer(max_rooms=DEFAULTS.max_rooms)


@contextmanager
def serving(handler: Handler, limits: ServerLimits = DEFAULTS.limits) -> Iterator[RunningServer]:
    """Run ``handler`` behind a WebSocketServer on a free port for the ``with`` body."""
    server = WebSocketServer(handler, host=LOCALHOST, port=0, limits=limits,
                             shutdown_grace=DEFAULTS.shutdown_grace)
    server.start()
    try:
        yield RunningServer(server, handler, f"ws://{LOCALHOST}:{server.address[1]}")
    finally:
        server.stop(grace=1.0)


class RecordingChatHandler:
    """The chat application, recording the path of every connection and every text, so
    that a test can check what a client put on the wire from the server's side.

    Its callbacks run on the server's selector thread only; read the records once the
    client is done.
    """

    def __init__(self) -> None:
        self.chat = chat_handler()
        self.paths: list[str] = []
        self.texts: list[str] = []

    def on_open(self, conn: Connection) -> None:
        self.paths.append(conn.path)
        self.chat.on_open(conn)

    def on_text(self, conn: Connection, text: str) -> None:
        self.texts.append(text)
        self.chat.on_text(conn, text)

    def on_binary(self, conn: Connection, data: bytes) -> None:
        self.chat.on_binary(conn, data)

    def on_close(self, conn: Connection) -> None:
        self.chat.on_close(conn)


@dataclass
class AssembledServer:
    """A whole server as ``run_server.py`` builds it (``chatflow.server.main.assemble``), in
    the test's process: WebSocket and health endpoint on free ports."""

    parts: Server
    health: HealthCheckServer

    @property
    def url(self) -> str:
        return f"ws://{LOCALHOST}:{self.parts.websocket.address[1]}"

    @property
    def port(self) -> int:
        return self.parts.websocket.address[1]

    @property
    def health_port(self) -> int:
        return self.health.address[1]


@contextmanager
def assembled(**config: object) -> Iterator[AssembledServer]:
    """The server of ``DEFAULTS`` with ``config`` in their place, on 127.0.0.1 and free
    ports, for the ``with`` body."""
    settings = dataclasses.replace(DEFAULTS, host=LOCALHOST, port=0, health_port=0, **config)
    parts = assemble(settings)
    health = parts.health(settings)
    parts.websocket.start()
    try:
        health.start()
        yield AssembledServer(parts, health)
    finally:
        parts.websocket.stop(grace=1.0)
        health.stop()
