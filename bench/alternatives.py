"""Two other threading models for the chat server, for ``bench.server_bench`` to compare.

ChatFlow runs every connection from one selector thread
(``chatflow.server.websocket_server``). These two servers give the same replies
(``chatflow.message_handler``) on ``/chat/{roomId}`` with the threading models that are
the obvious alternatives, so the benchmark can show what each one costs per message:

- ``sync``: the ``websockets`` library's own threaded server
  (``websockets.sync.server.serve``): a thread per connection plus a reader thread
  per connection.
- ``thread-per-connection``: one thread per accepted socket driving the library's
  sans-I/O ``ServerProtocol`` itself, the way the selector thread does, with blocking
  reads instead of a selector.

Not product code: no health endpoint, no connection limit, no keepalive pings.
``python -m bench.alternatives MODEL --port N`` (``--port 0``: any free port); the
``listening on ws://HOST:PORT`` line on stderr gives the port.
"""

from __future__ import annotations

import argparse
import logging
import signal
import socket
import struct
import sys
import threading
from collections.abc import Callable

from websockets.exceptions import ConnectionClosed
from websockets.frames import CloseCode, Opcode
from websockets.http11 import Request
from websockets.protocol import SEND_EOF, State
from websockets.server import ServerProtocol
from websockets.sync.server import ServerConnection, serve

from chatflow.server.config import ServerConfig
from chatflow.server.message_handler import handle_binary, handle_text
from chatflow.server.chat_websocket_server import room_of

log = logging.getLogger("bench.alternatives")

DEFAULTS = ServerConfig()
LIMITS = DEFAULTS.limits
RECV_SIZE = 64 * 1024
#: A blocked read this long ends the connection: the benchmark's clients never idle.
IDLE_TIMEOUT = 60.0
#: How often the accept loop looks at the stop flag.
ACCEPT_POLL = 0.5


def run_sync(host: str, port: int, stop: threading.Event) -> None:
    """``websockets.sync.server``: the library's threaded server, as its docs show it."""

    def chat(websocket: ServerConnection) -> None:
        room = room_of(websocket.request.path, DEFAULTS.max_rooms)
        if isinstance(room, str):
            websocket.close(CloseCode.UNSUPPORTED_DATA, room)
            return
        try:
            for message in websocket:
                if isinstance(message, str):
                    websocket.send(handle_text(message), text=True)
                else:
                    websocket.send(handle_binary(), text=True)
        except ConnectionClosed:
            pass

    # compression=None: ChatFlow offers no permessage-deflate either.
    with serve(
        chat, host, port,
        compression=None,
        max_size=LIMITS.max_message_size,
        ping_interval=LIMITS.ping_interval,
        ping_timeout=LIMITS.ping_timeout,
        close_timeout=LIMITS.close_timeout,
    ) as server:
        announce("sync", server.socket.getsockname())
        threading.Thread(target=lambda: (stop.wait(), server.shutdown()), daemon=True).start()
        server.serve_forever()


def run_thread_per_connection(host: str, port: int, stop: threading.Event) -> None:
    """A thread per accepted socket, blocking reads into the sans-I/O protocol."""
    with socket.create_server((host, port), backlog=1024) as listener:
        listener.settimeout(ACCEPT_POLL)
        announce("thread-per-connection", listener.getsockname())
        while not stop.is_set():
            try:
                sock, _ = listener.accept()
            except TimeoutError:
                continue
            threading.Thread(target=serve_connection, args=(sock,), daemon=True).start()


def serve_connection(sock: socket.socket) -> None:
    """One connection, start to end, in its own thread."""
    protocol = ServerProtocol(max_size=LIMITS.max_message_size, logger=log)
    fragments: list[bytes] = []
    fragments_opcode: Opcode | None = None
    sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    # A kernel timeout, not sock.settimeout(): that would poll() before every recv
    # and send, a cost the selector server does not pay.
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVTIMEO, struct.pack("ll", int(IDLE_TIMEOUT), 0))
    try:
        while protocol.state is not State.CLOSED:
            try:
                data = sock.recv(RECV_SIZE)
            except OSError:
                data = b""
            if data:
                protocol.receive_data(data)
            else:
                protocol.receive_eof()
            for event in protocol.events_received():
                if isinstance(event, Request):
                    answer_handshake(protocol, event)
                elif event.opcode in (Opcode.TEXT, Opcode.BINARY, Opcode.CONT):
                    if event.opcode is not Opcode.CONT:
                        fragments_opcode = event.opcode
                    fragments.append(event.data)
                    if event.fin:
                        reply_to(protocol, fragments_opcode, b"".join(fragments))
                        fragments.clear()
            for chunk in protocol.data_to_send():
                if chunk == SEND_EOF:
                    sock.shutdown(socket.SHUT_WR)
                else:
                    sock.sendall(chunk)
            if not data:
                break
    except OSError:
        pass
    finally:
        sock.close()


def answer_handshake(protocol: ServerProtocol, request: Request) -> None:
    response = protocol.accept(request)
    protocol.send_response(response)
    if response.status_code == 101:
        room = room_of(request.path, DEFAULTS.max_rooms)
        if isinstance(room, str):
            protocol.send_close(CloseCode.UNSUPPORTED_DATA, room)


def reply_to(protocol: ServerProtocol, opcode: Opcode | None, data: bytes) -> None:
    if protocol.state is not State.OPEN:
        return
    if opcode is Opcode.TEXT:
        try:
            reply = handle_text(data.decode())
        except UnicodeDecodeError as exc:
            protocol.fail(CloseCode.INVALID_DATA, f"{exc.reason} at position {exc.start}")
            return
    else:
        reply = handle_binary()
    protocol.send_text(reply)


def announce(model: str, address: tuple) -> None:
    """The line a benchmark reads the port from, in the form ChatFlow's server logs it."""
    host, port = address[:2]
    print(f"bench.alternatives: {model} listening on ws://{host}:{port}", file=sys.stderr, flush=True)


MODELS: dict[str, Callable[[str, int, threading.Event], None]] = {
    "sync": run_sync,
    "thread-per-connection": run_thread_per_connection,
}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.alternatives", description=__doc__.split("\n\n")[0])
    parser.add_argument("model", choices=sorted(MODELS))
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=0, help="0: any free port (default)")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.WARNING, format="%(asctime)s %(levelname)-7s %(name)s: %(message)s")
    stop = threading.Event()
    for signum in (signal.SIGINT, signal.SIGTERM):
        signal.signal(signum, lambda *_: stop.set())
    MODELS[args.model](args.host, args.port, stop)
    return 0


if __name__ == "__main__":
    sys.exit(main())
