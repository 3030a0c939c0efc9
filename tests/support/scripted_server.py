"""A chat server that misbehaves on cue, for testing the client against it.

``ScriptedServer`` answers like the chat server except where its script says otherwise:
late, never, with an error, or by dropping the connection. It runs on websockets'
threaded server (one thread per connection), where a handler may sleep; ChatFlow's own
transport runs every connection on one selector thread, where a handler must not.
It records what it did with each message, so tests can check the client's accounting
against the server's own view.
"""

from __future__ import annotations

import enum
import itertools
import socket
import threading
from collections.abc import Callable
from dataclasses import dataclass

from websockets.exceptions import ConnectionClosed
from websockets.frames import CloseCode
from websockets.sync.server import Server, ServerConnection, serve

from chatflow.server.message_handler import error_reply, handle_text
from tests.support.network import LOCALHOST


class Action(enum.Enum):
    """What the scripted server does with one message."""

    REPLY = "reply"  # the chat server's own reply, at once
    ERROR = "error"  # an error reply, at once
    DELAY = "delay"  # nothing within the client's timeout, then an error reply "late reply"
    SILENT = "silent"  # no reply, ever
    DROP = "drop"  # no reply; the TCP connection is shut down without a close frame
    CLOSE = "close"  # no reply; the WebSocket is closed with 1001 (going away)


#: (connection number, message number on that connection) → what to do; both count from 1,
#: connections in the order the server accepted them.
Script = Callable[[int, int], Action]

#: Actions after which the client must give the connection up: it cannot know whether a
#: reply is still on its way.
UNANSWERED = {Action.DELAY, Action.SILENT}

LATE_REPLY = "late reply"


@dataclass(frozen=True)
class Received:
    """One message as the scripted server saw it."""

    connection: int
    number: int
    text: str
    action: Action
    #: An earlier message on this connection went unanswered, yet the client sent more:
    #: whatever it reads next may be the old message's late reply.
    after_unanswered: bool


class ScriptedServer:
    """A chat server on 127.0.0.1 whose every answer is decided by ``script``.

    Use as a context manager. A delayed reply is sent ``delay`` seconds late, and it is
    an error reply, so a client that credited it to a later message would count a
    failure the test can see, on top of the ``after_unanswered`` record.
    """

    def __init__(self, script: Script, delay: float = 1.0) -> None:
        self.script = script
        self.delay = delay
        self._received: list[Received] = []
        self._lock = threading.Lock()
        self._numbers = itertools.count(1)
        self._stopping = threading.Event()
        self._server: Server | None = None
        self._thread: threading.Thread | None = None

    def __enter__(self) -> ScriptedServer:
        self._server = serve(self._handle, LOCALHOST, 0, compression=None, close_timeout=1)
        self._thread = threading.Thread(target=self._server.serve_forever, name="ScriptedServer", daemon=True)
        self._thread.start()
        return self

    def __exit__(self, *exc_info: object) -> None:
        self._stopping.set()
        assert self._server is not None and self._thread is not None
        self._server.shutdown()
        self._thread.join(5)

    @property
    def url(self) -> str:
        assert self._server is not None, "use as a context manager"
        return f"ws://{LOCALHOST}:{self._server.socket.getsockname()[1]}"

    @property
    def received(self) -> list[Received]:
        with self._lock:
            return list(self._received)

    def with_action(self, action: Action) -> list[Received]:
        return [r for r in self.received if r.action is action]

    def _handle(self, ws: ServerConnection) -> None:
        with self._lock:
            connection = next(self._numbers)
        unanswered = False
        try:
            for number, text in enumerate(ws, start=1):
                action = self.script(connection, number)
                with self._lock:
                    self._received.append(Received(connection, number, text, action, unanswered))
                unanswered = unanswered or action in UNANSWERED
                if action is Action.REPLY:
                    ws.send(handle_text(text), text=True)
                elif action is Action.ERROR:
                    ws.send(error_reply([f"message {number} on connection {connection} refused"]), text=True)
                elif action is Action.DELAY:
                    if not self._stopping.wait(self.delay):
                        ws.send(error_reply([LATE_REPLY]), text=True)
                elif action is Action.DROP:
                    ws.socket.shutdown(socket.SHUT_RDWR)
                    return
                elif action is Action.CLOSE:
                    ws.close(CloseCode.GOING_AWAY, "going away")
                    return
        except ConnectionClosed:
            pass
