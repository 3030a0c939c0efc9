"""Every default of the server and the client, in one place.

The numbers reproduce the Java original's run. Most are command-line options of
``run_server.py`` and ``run_client.py``; the rest (timeouts of the closing handshakes,
buffer sizes) are settings a user has no reason to change.
"""

from __future__ import annotations

from dataclasses import dataclass

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
