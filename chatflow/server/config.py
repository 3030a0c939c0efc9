"""Every default of the server, in one place: what ``run_server.py`` starts with.

The numbers reproduce the Java original's server (SPEC §1). The command line reads its
defaults from these dataclasses, and the classes below it take each value as a required
argument, so that a default is written here and nowhere else.
"""

from __future__ import annotations

from dataclasses import dataclass, field

KiB = 1024
MiB = 1024 * KiB


@dataclass(frozen=True)
class ServerLimits:
    """Limits of the WebSocket transport.

    The chat endpoint's 64 KiB message limit comes from SPEC §1.3; a chat message is
    about 160 bytes, so anything near the limit is abuse, not chat.
    """

    max_message_size: int = 64 * KiB
    max_connections: int = 10_000
    handshake_timeout: float = 10.0
    ping_interval: float = 20.0
    ping_timeout: float = 20.0
    close_timeout: float = 5.0
    write_timeout: float = 30.0
    send_buffer_high_water: int = 256 * KiB


#: The echo mount runs Autobahn|Testsuite's limit cases (9.*): messages up to 16 MiB,
#: also in fragments as small as 64 bytes. Its limit leaves room above that.
ECHO_LIMITS = ServerLimits(max_message_size=32 * MiB, send_buffer_high_water=32 * MiB)


@dataclass(frozen=True)
class BusSettings:
    """The Redis bus between instances (``--bus``, docs/broadcast.md#the-bus)."""

    #: Entries the rooms' stream keeps (``MAXLEN ~``): how far a subscriber may fall
    #: behind, or be away, and still catch up. About 250 bytes each in Redis.
    stream_length: int = 100_000
    #: Messages handed to Redis in one pipeline, and read in one XREAD, at most.
    batch: int = 512
    #: How long one XREAD waits for entries (ms) before it asks again.
    block_ms: int = 1000
    #: Reconnecting: the first wait, doubled each failure up to the last.
    backoff: float = 0.1
    max_backoff: float = 5.0
    #: A Redis command that takes longer than this (s) counts as Redis being down.
    socket_timeout: float = 2.0
    #: The keys' common prefix, so that several deployments can share one Redis.
    prefix: str = "chatflow"


@dataclass(frozen=True)
class ServerConfig:
    """One server process: its listeners, its rooms, its limits (SPEC §1.1-1.2)."""

    host: str = "0.0.0.0"
    port: int = 8081
    health_port: int = 8080
    max_rooms: int = 20
    #: Echo every message back on every path instead of chat (the conformance mount).
    echo: bool = False
    #: "echo": each message answered to its sender only (the Java original's, SPEC §1);
    #: "broadcast": also delivered to the room's other members (docs/broadcast.md).
    mode: str = "echo"
    #: The instance's name in broadcast frames; None: host name and process id.
    instance_id: str | None = None
    #: Unsent bytes past which a broadcast member that does not read is closed (1008).
    member_backlog: int = 1 * MiB
    #: ``redis://HOST:PORT/DB``: rooms shared with every instance on that Redis
    #: (broadcast mode); None: rooms are this process's own.
    bus: str | None = None
    bus_settings: BusSettings = field(default_factory=BusSettings)
    log_level: str = "INFO"
    #: "text": lines for a terminal or journalctl; "json": one object per line for a log
    #: shipper (docs/logging.md).
    log_format: str = "text"
    #: Seconds between the INFO summary lines (connections, msg/s, errors); 0: none.
    log_interval: float = 10.0
    #: Count what the server does and serve it on the health port's ``/metrics``
    #: (docs/metrics.md); False (``--no-metrics``): count nothing, no ``/metrics``.
    metrics: bool = True
    limits: ServerLimits = field(default_factory=ServerLimits)
    #: How long shutdown waits for clients to complete the closing handshake.
    shutdown_grace: float = 2.0
    #: The health endpoint closes a connection idle (or mid-request) this long.
    health_idle_timeout: float = 10.0
    #: Server processes sharing the WebSocket port, one health endpoint for all of them
    #: (docs/workers.md); 1: this process alone serves both.
    workers: int = 1
    #: How long a worker may take to listen, and to answer the health endpoint's question.
    worker_start_timeout: float = 20.0
    worker_answer_timeout: float = 1.0
    #: How long, beyond ``shutdown_grace``, stopping waits for the workers before it kills them.
    worker_stop_margin: float = 3.0
    #: What the supervisor does when a worker exits unasked: "stay" (serve on with the
    #: others, /health 503) or "stop" (stop them all and exit with status 1, so that a
    #: service manager restarts the whole: the systemd unit's choice, docs/workers.md).
    worker_exit: str = "stay"


MODES = ("echo", "broadcast")
#: ``--worker-exit``: what the supervisor does when a worker exits unasked.
WORKER_EXITS = ("stay", "stop")

#: ``run_server.py`` with no options; everyone who needs a server default reads it here.
DEFAULTS = ServerConfig()
