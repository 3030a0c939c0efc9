"""What the application implements: the transport calls it from its selector thread."""

from __future__ import annotations

from typing import TYPE_CHECKING, Protocol

if TYPE_CHECKING:
    from chatflow.server.transport.connection import Connection


class Handler(Protocol):
    """The same four callbacks as Java-WebSocket's ``onOpen``/``onMessage``/``onClose``.

    A callback must not block: every other connection's messages wait for it. It may
    call the connection's ``send_text``, ``send_binary`` and ``close``.
    """

    def on_open(self, conn: Connection) -> None: ...

    def on_text(self, conn: Connection, text: str) -> None: ...

    def on_binary(self, conn: Connection, data: bytes) -> None: ...

    def on_close(self, conn: Connection) -> None: ...
