"""Echo: every message back unchanged, as the same type.

The handler Autobahn|Testsuite needs to judge ChatFlow's WebSocket transport
(``run_server.py --echo``): the same server, with the chat application swapped out.
"""

from __future__ import annotations

from chatflow.server.transport import Connection


class EchoHandler:
    def on_open(self, conn: Connection) -> None:
        pass

    def on_text(self, conn: Connection, text: str) -> None:
        conn.send_text(text)

    def on_binary(self, conn: Connection, data: bytes) -> None:
        conn.send_binary(data)

    def on_close(self, conn: Connection) -> None:
        pass
