"""``run_server.py`` / ``chatflow-server``: both listeners in one process, until a signal
(with ``--workers N``, N processes supervised by this one: ``chatflow.server.workers``)."""

from __future__ import annotations

import argparse
import os
import socket
import dataclasses
import logging
import signal
import sys
import threading
from collections.abc import Callable
from dataclasses import dataclass

from prometheus_client.registry import CollectorRegistry

from chatflow import logs
from chatflow.arguments import port, redis_url, seconds, whole_number
from chatflow.server import listening, metrics
from chatflow.server.broadcast import BroadcastChat
from chatflow.server.bus import RedisBus
from chatflow.server.chat_websocket_server import ChatWebSocketServer
from chatflow.server.config import DEFAULTS, ECHO_LIMITS, MODES, WORKER_EXITS, ServerConfig, ServerLimits
from chatflow.server.echo_handler import EchoHandler
from chatflow.server.health_check_server import DEGRADED, UNHEALTHY, HealthCheckServer
from chatflow.server.summary import SummaryLog
from chatflow.server.transport import Handler, WebSocketServer

log = logging.getLogger("chatflow.server")
#: Start and stop lines: shown at every --log-level, since with --port 0 they are the
#: only way to learn the ports (chatflow.server.listening reads them).
lifecycle_log = logging.getLogger("chatflow.server.lifecycle")

PROG = "chatflow-server"
LOG_LEVELS = ["DEBUG", "INFO", "WARNING", "ERROR"]


def build_parser() -> argparse.ArgumentParser:
    d, limits = DEFAULTS, DEFAULTS.limits
    parser = argparse.ArgumentParser(
        prog=PROG,
        description="ChatFlow server: WebSocket chat on /chat/{roomId} and an HTTP health endpoint.",
    )
    parser.add_argument("--host", default=d.host, help="address to listen on (default %(default)s)")
    parser.add_argument("--port", type=port, default=d.port,
                        help="WebSocket port, 0 for any free port (default %(default)s)")
    parser.add_argument("--health-port", type=port, default=d.health_port,
                        help="HTTP health port, 0 for any free port (default %(default)s)")
    parser.add_argument("--max-rooms", type=whole_number(1), default=d.max_rooms,
                        help="rooms are 1..N (default %(default)s)")
    parser.add_argument("--log-level", default=d.log_level, type=str.upper, choices=LOG_LEVELS,
                        help="DEBUG adds a line per connection event, never one per message (default %(default)s)")
    parser.add_argument("--log-format", default=d.log_format, choices=logs.FORMATS,
                        help="json: every log line one JSON object, for a log shipper (default %(default)s)")
    parser.add_argument("--log-interval", type=seconds(allow_minimum=True), default=d.log_interval,
                        metavar="SECONDS", help="a summary line at INFO this often (connections, msg/s, errors); "
                                                "0: none (default %(default)g)")
    parser.add_argument("--mode", choices=MODES, default=d.mode,
                        help="echo: each message answered to its sender (the Java original's); broadcast: "
                             "also delivered to the room's other members (default %(default)s)")
    parser.add_argument("--instance-id", default=d.instance_id, metavar="NAME",
                        help="this instance's name in broadcast frames (default: host name and process id)")
    parser.add_argument("--member-backlog", type=whole_number(1), default=d.member_backlog, metavar="BYTES",
                        help="broadcast: close a member with 1008 once this many bytes wait unread "
                             "(default %(default)s)")
    parser.add_argument("--bus", type=redis_url, default=d.bus, metavar="redis://HOST:PORT/DB",
                        help="broadcast: share the rooms with every instance on this Redis (docs/broadcast.md)")
    parser.add_argument("--workers", type=whole_number(1), default=d.workers, metavar="N",
                        help="server processes sharing the WebSocket port (SO_REUSEPORT), each with its own "
                             "selector thread, one health endpoint for all (default %(default)s: this process)")
    parser.add_argument("--worker-exit", choices=WORKER_EXITS, default=d.worker_exit,
                        help="with --workers: when a worker exits unasked, stay (serve on with the others, "
                             "/health 503) or stop (stop them all, exit status 1: for a service manager that "
                             "restarts on failure) (default %(default)s)")
    parser.add_argument("--no-metrics", dest="metrics", action="store_false", default=d.metrics,
                        help="count nothing and serve no /metrics on the health port (docs/metrics.md)")
    parser.add_argument("--echo", action="store_true",
                        help="echo every message back unchanged instead of chat, on every path, "
                             "with limits that admit 16 MiB messages: the endpoint a WebSocket "
                             "conformance suite (Autobahn|Testsuite) tests the transport with")
    group = parser.add_argument_group("limits (defaults: chat / --echo)")
    group.add_argument("--max-message-size", type=whole_number(1), metavar="BYTES",
                       help=f"larger messages close the connection with 1009 "
                            f"(default {limits.max_message_size} / {ECHO_LIMITS.max_message_size})")
    group.add_argument("--max-connections", type=whole_number(1), metavar="N",
                       help=f"further handshakes get HTTP 503 (default {limits.max_connections})")
    group.add_argument("--handshake-timeout", type=seconds(), metavar="SECONDS",
                       help=f"(default {limits.handshake_timeout:g})")
    group.add_argument("--ping-interval", type=seconds(), metavar="SECONDS",
                       help=f"ping a connection silent this long (default {limits.ping_interval:g})")
    group.add_argument("--ping-timeout", type=seconds(), metavar="SECONDS",
                       help=f"close it if the pong takes longer (default {limits.ping_timeout:g})")
    group.add_argument("--write-timeout", type=seconds(), metavar="SECONDS",
                       help=f"close a client that reads none of its replies this long "
                            f"(default {limits.write_timeout:g})")
    return parser


def limits_from(args: argparse.Namespace) -> ServerLimits:
    """The chat or echo limits, with what the command line sets in their place."""
    limits = ECHO_LIMITS if args.echo else DEFAULTS.limits
    overrides = {
        field.name: getattr(args, field.name)
        for field in dataclasses.fields(ServerLimits)
        if getattr(args, field.name, None) is not None
    }
    return dataclasses.replace(limits, **overrides)


def config_from(args: argparse.Namespace) -> ServerConfig:
    return dataclasses.replace(
        DEFAULTS, host=args.host, port=args.port, health_port=args.health_port, max_rooms=args.max_rooms,
        echo=args.echo, log_level=args.log_level, log_format=args.log_format, log_interval=args.log_interval,
        limits=limits_from(args), mode=args.mode,
        instance_id=args.instance_id, member_backlog=args.member_backlog, workers=args.workers,
        worker_exit=args.worker_exit, bus=args.bus,
        metrics=args.metrics,
    )


def refusal(args: argparse.Namespace) -> str | None:
    """Why these options cannot run together, or None."""
    broadcast = args.mode == "broadcast" and not args.echo
    if args.bus is not None and not broadcast:
        return "--bus needs --mode broadcast: in echo mode no message leaves its sender's connection"
    if args.workers > 1 and broadcast and args.bus is None:
        return (f"--workers {args.workers} with --mode broadcast needs --bus: members in different workers "
                "would not see each other's messages")
    return None


def configure_logging(config: ServerConfig, worker: int | None = None) -> None:
    """Log lines to stderr in ``config``'s level and format; a worker's (``worker``, its
    index) say which: ``[w1] `` before each logger's name, or ``"worker": 1`` in JSON."""
    tag, context = ("", None) if worker is None else (f"[w{worker}] ", {"worker": worker})
    logs.configure(config.log_level, config.log_format, tag=tag, context=context)
    # The protocol library logs each connection's opening and closing at INFO, and each
    # frame at DEBUG: per-message noise; the transport's own connection lines say the same.
    logging.getLogger("chatflow.server.protocol").setLevel(logging.WARNING)
    lifecycle_log.setLevel(logging.INFO)


def instance_name(config: ServerConfig) -> str:
    """This instance's name in broadcast frames: ``--instance-id``, or host name and process id."""
    return config.instance_id or f"{socket.gethostname()}-{os.getpid()}"


def chat_handler(config: ServerConfig) -> ChatWebSocketServer:
    """The chat application of ``config.mode``, counting unless ``--no-metrics``."""
    stats = metrics.ChatStats() if config.metrics else None
    if config.mode == "broadcast":
        return BroadcastChat(max_rooms=config.max_rooms, instance_id=instance_name(config),
                             member_backlog=config.member_backlog, stats=stats)
    return ChatWebSocketServer(max_rooms=config.max_rooms, stats=stats)


def handler_of(config: ServerConfig) -> tuple[ChatWebSocketServer | None, Handler]:
    """The chat application (None with ``--echo``) and the handler the transport serves."""
    chat = None if config.echo else chat_handler(config)
    return chat, EchoHandler() if chat is None else chat


def bus_of(config: ServerConfig, chat: ChatWebSocketServer | None, websocket: WebSocketServer) -> RedisBus | None:
    """The Redis bus of ``config.bus`` for a broadcast ``chat``, delivering on ``websocket``'s
    selector thread (started by the caller once the server listens); None without one."""
    if config.bus is None or not isinstance(chat, BroadcastChat):
        return None
    bus = RedisBus(config.bus, rooms=config.max_rooms, settings=config.bus_settings,
                   deliver=lambda crossings: websocket.call_soon(lambda: chat.on_bus(crossings)),
                   failed=lambda: websocket.call_soon(chat.on_bus_failed))
    chat.attach(bus)
    return bus


def details_of(websocket: WebSocketServer, chat: ChatWebSocketServer | None) -> dict[str, object]:
    """``/health?verbose``: open connections, and for chat the connections per room (and
    the broadcast mode's counts, and its bus's)."""
    figures: dict[str, object] = {"connections": websocket.open_connections}
    if chat is not None:
        figures["rooms"] = chat.rooms.occupancy()
        broadcast = chat.broadcast_counts()
        if broadcast is not None:
            figures["broadcast"] = broadcast
    if isinstance(chat, BroadcastChat) and chat.bus is not None:
        figures["bus"] = chat.bus.status()
    return figures


def problem_of(websocket: WebSocketServer, bus: RedisBus | None) -> dict[str, object] | None:
    """The WebSocket listener or its selector thread gone: unhealthy, it serves no one.
    Redis out of reach: degraded, not down (docs/broadcast.md#when-redis-is-down)."""
    failure = websocket.failure
    if failure is not None:
        return {"status": UNHEALTHY, "reason": failure}
    reason = None if bus is None else bus.problem()
    return None if reason is None else {"status": DEGRADED, "reason": reason}


@dataclass(frozen=True)
class Server:
    """One server process's parts, built from its configuration: what ``main`` runs, and
    each worker of ``--workers``. The caller starts them (``websocket``, then ``bus``)."""

    chat: ChatWebSocketServer | None
    websocket: WebSocketServer
    bus: RedisBus | None
    #: The ``/metrics`` families; None with ``--no-metrics``.
    registry: CollectorRegistry | None

    def details(self) -> dict[str, object]:
        return details_of(self.websocket, self.chat)

    def problem(self) -> dict[str, object] | None:
        return problem_of(self.websocket, self.bus)

    def health(self, config: ServerConfig) -> HealthCheckServer:
        """The health endpoint of ``config`` over these parts: ``/health`` and ``/metrics``."""
        return HealthCheckServer(host=config.host, port=config.health_port, idle_timeout=config.health_idle_timeout,
                                 details=self.details, problem=self.problem, metrics=scraper(self.registry))


def assemble(config: ServerConfig, reuse_port: bool = False) -> Server:
    """The chat (or echo) handler, its WebSocketServer (counting unless ``--no-metrics``),
    the bus of ``--bus`` and the metrics registry over them."""
    chat, handler = handler_of(config)
    websocket = WebSocketServer(handler, host=config.host, port=config.port, limits=config.limits,
                                shutdown_grace=config.shutdown_grace, reuse_port=reuse_port,
                                stats=metrics.transport_stats() if config.metrics else None)
    bus = bus_of(config, chat, websocket)
    registry = metrics.registry_of(websocket, chat, bus) if config.metrics else None
    return Server(chat, websocket, bus, registry)


def scraper(registry: CollectorRegistry | None) -> Callable[[str | None], tuple[bytes, str]] | None:
    """The health endpoint's ``/metrics`` over ``registry`` (None: no ``/metrics``)."""
    if registry is None:
        return None
    return lambda accept: metrics.exposition(registry, accept)


def endpoint(config: ServerConfig) -> str:
    """What the WebSocket listener serves, as its listening line says."""
    return "echo on every path" if config.echo else f"chat on /chat/{{roomId}} ({config.mode} mode)"


def cannot_listen(name: str, host: str, port: int, exc: OSError) -> None:
    """The one line a listener that cannot bind ends the server with."""
    # strerror, not os.strerror(errno): a name lookup failure (gaierror) has
    # a negative errno that os.strerror calls "Unknown error".
    print(f"{PROG}: error: cannot listen for {name} on {host}:{port}: {exc.strerror or exc}", file=sys.stderr)


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    if (reason := refusal(args)) is not None:
        parser.error(reason)
    config = config_from(args)
    configure_logging(config)
    if config.workers > 1:
        # Imported here: the workers' module builds each worker's server from this one's functions.
        from chatflow.server.workers import supervise
        return supervise(config)
    server = assemble(config)
    websocket, bus, health = server.websocket, server.bus, server.health(config)
    summary = SummaryLog(websocket, server.chat, config.log_interval)

    stop = threading.Event()
    for signum in (signal.SIGINT, signal.SIGTERM):
        signal.signal(signum, lambda *_: stop.set())

    for name, listener, bound in (("WebSocket", websocket, config.port), ("health", health, config.health_port)):
        try:
            listener.start()
        except OSError as exc:
            cannot_listen(name, config.host, bound, exc)
            websocket.stop()
            return 1
    if bus is not None:
        bus.start()

    summary.start()
    lifecycle_log.info(listening.line(f"WebSocket {endpoint(config)}", "ws", *websocket.address))
    lifecycle_log.info(listening.line("health endpoint", "http", *health.address, path="/health"))

    while not stop.wait(3600):
        pass
    summary.stop()
    lifecycle_log.info("shutting down: closing connections with 1001")
    # The chat endpoint first: the health server's shutdown can take half a second,
    # during which chat would still accept connections.
    websocket.stop()
    if bus is not None:
        bus.stop()
    health.stop()
    lifecycle_log.info("stopped")
    return 0


if __name__ == "__main__":
    sys.exit(main())
