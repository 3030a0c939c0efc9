"""The echo servers ChatFlow's transport is compared with in docs/conformance.md.

Two other ways to serve WebSocket in Python, each reduced to an echo so that
Autobahn|Testsuite can judge it: a plain `websockets` sync server, with the library's
defaults (the reference run of the conformance tool), and the `websocket-server`
0.6.4 package, the other server library a Python port could have picked.

    python -m compliance.echo_servers websockets [--port 0]
    python -m compliance.echo_servers websocket-server [--port 0]

Each logs ``listening on ws://HOST:PORT`` on stderr once it accepts connections, the
same words as ``run_server.py``, so one reader finds the port of all three.
"""

from __future__ import annotations

import argparse
import sys

from chatflow.server import listening


def announce(host: str, port: int) -> None:
    print(listening.line("echo server", "ws", host, port), file=sys.stderr, flush=True)


def serve_websockets(host: str, port: int) -> None:
    """The sync server of `websockets` with every default (max_size 1 MiB)."""
    from websockets.sync.server import serve

    def echo(ws) -> None:
        for message in ws:
            ws.send(message)

    with serve(echo, host, port) as server:
        announce(host, server.socket.getsockname()[1])
        server.serve_forever()


def serve_websocket_server(host: str, port: int) -> None:
    """`websocket-server` 0.6.4: it hands the application text only, and sends text only."""
    from websocket_server import WebsocketServer

    server = WebsocketServer(host=host, port=port)
    server.set_fn_message_received(lambda client, srv, message: srv.send_message(client, message))
    announce(host, server.port)
    server.run_forever()


SERVERS = {"websockets": serve_websockets, "websocket-server": serve_websocket_server}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m compliance.echo_servers", description=__doc__.splitlines()[0])
    parser.add_argument("server", choices=sorted(SERVERS))
    parser.add_argument("--host", default="127.0.0.1", help="address to listen on (default %(default)s)")
    parser.add_argument("--port", type=int, default=0, help="port, 0 for any free one (default %(default)s)")
    args = parser.parse_args(argv)
    try:
        SERVERS[args.server](args.host, args.port)
    except KeyboardInterrupt:
        pass
    return 0


if __name__ == "__main__":
    sys.exit(main())
