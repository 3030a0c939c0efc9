"""The configuration of a load test, and the one place of the client's defaults.

The defaults are the Java original's run: 32 warmup threads × 1,000 messages, then 64
threads for the rest of 500,000. The command lines show and use these fields' defaults
(``add_size_options`` below, ``chatflow.client.main``); the classes below the run take
their settings from a config.
"""

from __future__ import annotations

import argparse
from dataclasses import dataclass
from pathlib import Path

from chatflow.client.rate_profile import RateProfile

from chatflow.arguments import whole_number
from chatflow.client.cpu import usable_cores

#: ``--processes`` when not given is the usable cores, at most this many: the figures
#: that chose it are in docs/client.md#several-processes.
MAX_DEFAULT_PROCESSES = 4

#: ``--scenario``: ``echo`` is the Java original's run; ``broadcast`` measures a room's
#: fan-out (docs/client.md#the-broadcast-scenario) against ``run_server.py --mode broadcast``.
SCENARIOS = ("echo", "broadcast")
#: How long the broadcast scenario's drain may last in all, whatever its progress.
FANOUT_DRAIN_LIMIT = 30.0
#: ``--room-members`` at most: each member is a socket of the client's.
MAX_ROOM_MEMBERS = 1_000
#: Open loop (``--rate``, docs/client.md#open-loop---rate): a message sent later than its
#: intended time by more than this many ms counts as behind schedule.
BEHIND_TOLERANCE_MS = 1.0
#: The run held its rate when it achieved at least this fraction of the rate asked.
RATE_HELD_FRACTION = 0.98
#: Seconds between two live progress lines when stderr is not a terminal
#: (``--progress-interval``, docs/client.md#live-progress).
PROGRESS_INTERVAL = 5.0


@dataclass(frozen=True)
class RetryPolicy:
    """How many attempts a message gets, and the backoff between them."""

    max_attempts: int
    backoff: float

    def delay(self, attempt: int) -> float:
        """Wait before ``attempt`` (2, 3, …): backoff, then twice as long each time."""
        return self.backoff * 2 ** (attempt - 2)


@dataclass(frozen=True)
class LoadTestConfig:
    """One run: where, how many messages, in which phases, with what patience."""

    base_url: str
    messages: int = 500_000
    #: No warmup phase when either warmup figure is 0 (``plan_phases``).
    warmup_threads: int = 32
    warmup_messages: int = 1_000
    threads: int = 64
    #: Seconds to wait for each reply.
    timeout: float = 1.0
    retry: RetryPolicy = RetryPolicy(max_attempts=5, backoff=0.1)
    #: Each sender picks a room in 1..rooms (SPEC §2.1).
    rooms: int = 20
    seed: int | None = None
    #: Round trips the probe measures for Little's Law, after its warm-up ones.
    probe_messages: int = 200
    #: Where the metrics, the report and the charts are written.
    output_dir: Path = Path("results")
    #: More servers (instances of one service) besides ``base_url``: the connections are
    #: dealt over all of them in turn (``--server`` given more than once).
    more_servers: tuple[str, ...] = ()
    scenario: str = "echo"
    #: The broadcast scenario's listening members in each room 1..rooms.
    room_members: int = 10
    #: After the senders, the broadcast scenario waits for outstanding deliveries until
    #: this many seconds pass without one (at most ``FANOUT_DRAIN_LIMIT`` in all).
    fanout_drain: float = 2.0
    #: Open loop: messages per second over the run, spread over the senders; None for the
    #: closed loop (each sender sends its next message as soon as the last one's reply came).
    rate: float | None = None
    #: The open loop's stages when it ramps (``--rate 500:5000:60s``); ``rate`` is then
    #: their mean over the run. None for a constant rate.
    rate_profile: RateProfile | None = None

    @property
    def open_loop(self) -> bool:
        return self.rate is not None

    def schedule_profile(self) -> RateProfile:
        """The open loop's rate over time (its stages, or ``rate`` throughout)."""
        return self.rate_profile if self.rate_profile is not None else RateProfile.constant(self.rate)

    @property
    def broadcast(self) -> bool:
        return self.scenario == "broadcast"

    @property
    def servers(self) -> tuple[str, ...]:
        return (self.base_url, *self.more_servers)

    def room_url(self, room: int, server: str | None = None) -> str:
        """The room's URL on ``server`` (default: the first)."""
        return f"{server or self.base_url}/chat/{room}"


def add_size_options(parser: argparse.ArgumentParser, title: str | None = None) -> None:
    """A run's size, ``--messages`` to ``--threads``, with LoadTestConfig's defaults (in a
    group of ``title``): for every command line that runs the load test (``chatflow-client``,
    ``chatflow-compare``)."""
    d = LoadTestConfig
    group = parser.add_argument_group(title) if title else parser
    group.add_argument("--messages", type=whole_number(1), default=d.messages, help="total messages (default %(default)s)")
    group.add_argument("--warmup-threads", type=whole_number(0), default=d.warmup_threads,
                       help="warmup threads, 0 for no warmup (default %(default)s)")
    group.add_argument("--warmup-messages", type=whole_number(0), default=d.warmup_messages,
                       help="messages per warmup thread (default %(default)s)")
    group.add_argument("--threads", type=whole_number(1), default=d.threads,
                       help="main phase threads (default %(default)s)")


def default_processes() -> int:
    """The client's processes when ``--processes`` is not given."""
    return max(1, min(usable_cores() or 1, MAX_DEFAULT_PROCESSES))
