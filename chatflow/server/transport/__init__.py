"""ChatFlow's WebSocket transport: a selector thread around the `websockets` protocol.

The protocol itself (RFC 6455 parsing, masking, close codes, limits) is the library's
sans-I/O ``ServerProtocol``; this package moves bytes between sockets and that protocol
and hands whole messages to a ``Handler``, where the application (chat, or echo) lives.

- ``loop``: ``WebSocketServer``, the listener and the selector thread's three passes;
- ``connection``: ``Connection``, one client's socket, protocol state and timers;
- ``assembler``: fragments → messages, with the UTF-8 check;
- ``handshake``: the opening handshake's answer (the 503 and 426 policies);
- ``output``: the unsent bytes and their high-water mark;
- ``stats``: what the selector thread counts, for the server's metrics;
- ``handler``: the interface the application implements.
"""

from chatflow.server.transport.connection import Connection
from chatflow.server.transport.handler import Handler
from chatflow.server.transport.loop import WebSocketServer
from chatflow.server.transport.stats import TransportStats

__all__ = ["Connection", "Handler", "TransportStats", "WebSocketServer"]
