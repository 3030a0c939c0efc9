"""Every default of the server and the client, in one place.

The numbers reproduce the Java original's run. Most are command-line options of
``run_server.py`` and ``run_client.py``; the rest (timeouts of the closing handshakes,
buffer sizes) are settings a user has no reason to change.
"""

from __future__ import annotations

from dataclasses import dataclass

KiB = 1024
MiB = 1024 * KiB

DEFAULT_HOST = "0.0.0.0"
DEFAULT_CHAT_PORT = 8081
DEFAULT_HEALTH_PORT = 8080
DEFAULT_MAX_ROOMS = 20


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

#: How long shutdown waits for clients to complete the closing handshake.
SHUTDOWN_GRACE = 2.0

#: The health endpoint closes a connection idle (or mid-request) this long.
HEALTH_IDLE_TIMEOUT = 10.0


@dataclass(frozen=True)
class ClientDefaults:
    """The Java original's run: 32 × 1,000 warmup, then 64 threads for the rest of 500,000."""

    messages: int = 500_000
    warmup_threads: int = 32
    warmup_messages: int = 1_000
    threads: int = 64
    timeout: float = 1.0
    max_attempts: int = 5
    backoff: float = 0.1
    rooms: int = 20
    probe_messages: int = 200
    output_dir: str = "results"
