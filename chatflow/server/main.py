"""``run_server.py`` / ``chatflow-server``: both listeners in one process, until a signal."""

from __future__ import annotations

import argparse
import dataclasses
import logging
import signal
import sys
import threading

from chatflow.arguments import port, seconds, whole_number
from chatflow.config import (
    DEFAULT_CHAT_PORT,
    DEFAULT_HEALTH_PORT,
    DEFAULT_HOST,
    DEFAULT_MAX_ROOMS,
    ECHO_LIMITS,
    ServerLimits,
)
from chatflow.server.chat_websocket_server import ChatWebSocketServer
from chatflow.server.echo_handler import EchoHandler
from chatflow.server.health_check_server import HealthCheckServer
from chatflow.server.websocket_server import WebSocketServer

log = logging.getLogger("chatflow.server")
#: Start and stop lines: shown at every --log-level, since with --port 0 they are the
#: only way to learn the ports.
lifecycle_log = logging.getLogger("chatflow.server.lifecycle")

PROG = "chatflow-server"


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog=PROG,
        description="ChatFlow server: WebSocket chat on /chat/{roomId} and an HTTP health endpoint.",
    )
    parser.add_argument("--host", default=DEFAULT_HOST, help="address to listen on (default %(default)s)")
    parser.add_argument("--port", type=port, default=DEFAULT_CHAT_PORT,
                        help="WebSocket port, 0 for any free port (default %(default)s)")
    parser.add_argument("--health-port", type=port, default=DEFAULT_HEALTH_PORT,
                        help="HTTP health port, 0 for any free port (default %(default)s)")
    parser.add_argument("--max-rooms", type=whole_number(1), default=DEFAULT_MAX_ROOMS,
                        help="rooms are 1..N (default %(default)s)")
    parser.add_argument("--log-level", default="INFO", type=str.upper,
                        choices=["DEBUG", "INFO", "WARNING", "ERROR"],
                        help="DEBUG logs every message (default %(default)s)")
    parser.add_argument("--echo", action="store_true",
                        help="echo every message back unchanged instead of chat, on every path, "
                             "with limits that admit 16 MiB messages: the endpoint a WebSocket "
                             "conformance suite (Autobahn|Testsuite) tests the transport with")
    limits = parser.add_argument_group("limits (defaults: chat / --echo)")
    limits.add_argument("--max-message-size", type=whole_number(1), metavar="BYTES",
                        help=f"larger messages close the connection with 1009 "
                             f"(default {ServerLimits().max_message_size} / {ECHO_LIMITS.max_message_size})")
    limits.add_argument("--max-connections", type=whole_number(1), metavar="N",
                        help=f"further handshakes get HTTP 503 (default {ServerLimits().max_connections})")
    limits.add_argument("--handshake-timeout", type=seconds(), metavar="SECONDS",
                        help=f"(default {ServerLimits().handshake_timeout:g})")
    limits.add_argument("--ping-interval", type=seconds(), metavar="SECONDS",
                        help=f"ping a connection silent this long (default {ServerLimits().ping_interval:g})")
    limits.add_argument("--ping-timeout", type=seconds(), metavar="SECONDS",
                        help=f"close it if the pong takes longer (default {ServerLimits().ping_timeout:g})")
    limits.add_argument("--write-timeout", type=seconds(), metavar="SECONDS",
                        help=f"close a client that reads none of its replies this long "
                             f"(default {ServerLimits().write_timeout:g})")
    return parser


def limits_from(args: argparse.Namespace) -> ServerLimits:
    limits = ECHO_LIMITS if args.echo else ServerLimits()
    overrides = {
        field.name: getattr(args, field.name)
        for field in dataclasses.fields(ServerLimits)
        if getattr(args, field.name, None) is not None
    }
    return dataclasses.replace(limits, **overrides)


def configure_logging(level: str) -> None:
    logging.basicConfig(
        level=level,
        format="%(asctime)s %(levelname)-7s %(name)s: %(message)s",
        stream=sys.stderr,
    )
    # The protocol library logs every connection's opening and closing at INFO.
    logging.getLogger("chatflow.server.protocol").setLevel(logging.DEBUG if level == "DEBUG" else logging.WARNING)
    lifecycle_log.setLevel(logging.INFO)


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    configure_logging(args.log_level)
    handler = EchoHandler() if args.echo else ChatWebSocketServer(max_rooms=args.max_rooms)
    websocket = WebSocketServer(handler, args.host, args.port, limits_from(args))
    health = HealthCheckServer(args.host, args.health_port)

    stop = threading.Event()
    for signum in (signal.SIGINT, signal.SIGTERM):
        signal.signal(signum, lambda *_: stop.set())

    for name, server, bound in (("WebSocket", websocket, args.port), ("health", health, args.health_port)):
        try:
            server.start()
        except OSError as exc:
            # strerror, not os.strerror(errno): a name lookup failure (gaierror) has
            # a negative errno that os.strerror calls "Unknown error".
            print(f"{PROG}: error: cannot listen for {name} on {args.host}:{bound}: {exc.strerror or exc}",
                  file=sys.stderr)
            websocket.stop()
            return 1

    host, port = websocket.address
    mode = "echo on every path" if args.echo else "chat on /chat/{roomId}"
    lifecycle_log.info("WebSocket %s listening on ws://%s:%d", mode, host, port)
    host, port = health.address
    lifecycle_log.info("health endpoint listening on http://%s:%d/health", host, port)

    while not stop.wait(3600):
        pass
    lifecycle_log.info("shutting down: closing connections with 1001")
    # The chat endpoint first: the health server's shutdown can take half a second,
    # during which chat would still accept connections.
    websocket.stop()
    health.stop()
    lifecycle_log.info("stopped")
    return 0


if __name__ == "__main__":
    sys.exit(main())
