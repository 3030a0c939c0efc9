"""The answer to an opening handshake: the library's, with ChatFlow's two policies on top.

- At the connection limit, HTTP 503: a client told to come back later, not a socket
  that hangs.
- A client offering another WebSocket version gets 426 naming version 13 (RFC 6455
  §4.4), so that it can retry with 13; the library answers a bare 400.
"""

from __future__ import annotations

from websockets.exceptions import InvalidHeader
from websockets.http11 import Request, Response
from websockets.server import ServerProtocol

SUPPORTED_VERSION = "13"


def handshake_response(protocol: ServerProtocol, request: Request, *, at_capacity: bool) -> Response:
    """The response to send for ``request``; status 101 opens the connection."""
    if at_capacity:
        return protocol.reject(503, "Server at its connection limit, try again later.\n")
    response = protocol.accept(request)
    if response.status_code == 400 and _unsupported_version(protocol.handshake_exc):
        response = protocol.reject(426, f"Failed to open a WebSocket connection: {protocol.handshake_exc}.\n")
        response.headers["Sec-WebSocket-Version"] = SUPPORTED_VERSION
    return response


def refusal(status: int, exc: Exception | None) -> str:
    """Why ``handshake_response`` answered ``status`` (not 101), for the log: the connection
    limit, or what the library found wrong with the request (``ServerProtocol.handshake_exc``)."""
    if status == 503:
        return "at the connection limit"
    return str(exc) if exc is not None else f"HTTP {status}"


def _unsupported_version(exc: Exception | None) -> bool:
    return isinstance(exc, InvalidHeader) and exc.name == "Sec-WebSocket-Version"
