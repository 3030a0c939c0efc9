"""Broadcast rooms measured: one instance against two on Redis, and a soak with Redis restarts.

``python -m bench.broadcast`` runs ChatFlow's client in its broadcast scenario (20 rooms ×
10 listening members by default, docs/client.md#the-broadcast-scenario) in this process,
against fresh server processes in ``--mode broadcast``, in interleaved rounds:

- **one instance**, no bus;
- **two instances + Redis**: both with ``--bus`` on a redis-server of the bench's own, the
  client's connections and members dealt over both (``--server`` twice);
- **two instances behind nginx** (left out with ``--no-nginx``): the same, through
  ``deploy/nginx/chatflow.conf`` (its ports replaced), one address for the client.

Each setup is run twice a round: at **full load** (the client's default threads, closed
loop: what the setup delivers at most, with the client on the same two cores), and at a
**light load** (``LIGHT_THREADS`` senders, ``LIGHT_MESSAGES`` messages), under what the
client's member thread reads, so that the fan-out latency is the servers' and Redis's,
not the time frames wait in buffers for a saturated reader. Figures per run: msg/s,
deliveries/s, fan-out latency (send → each member, and → the last member) p50/p99/max,
missing / duplicated / out of order, and the servers' CPU per message. The two-instance
figures are read as ratios of the one-instance ones.

``python -m bench.broadcast --soak SECONDS`` runs the two-instance setup at the light load
for that long (600: the default soak), restarting Redis ``--restarts`` times at even intervals, and
samples each server's RSS every ``RSS_EVERY`` seconds: every message counted, members
reconnected or stayed, RSS flat.

Results go to bench/results/broadcast_<timestamp>.json (soak: broadcast_soak_…); the
default runs write docs/measurements/broadcast.md and broadcast-soak.md.
"""

from __future__ import annotations

import argparse
import contextlib
import datetime
import json
import sys
import tempfile
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, replace
from pathlib import Path

from bench import defaults, doc
from bench.results import RESULTS_DIR, add_page_options, environment, format_spread, summarise, write_results
from chatflow.arguments import whole_number
from chatflow.client.config import LoadTestConfig
from chatflow.client.histogram import latency_figures
from chatflow.client.results import RunResult
from chatflow.client.run import LoadTest
from chatflow.server.process import ServerProcess, local_server_command
from tests.support.health import get_health
from tests.support.nginx import nginx_in_front
from tests.support.redis_server import RedisServer, missing

COMMAND = "python -m bench.broadcast"
PAGE = doc.MEASUREMENTS / "broadcast.md"
SOAK_PAGE = doc.MEASUREMENTS / "broadcast-soak.md"
DEFAULT_MESSAGES = 100_000
DEFAULT_ROUNDS = 3
DEFAULT_SOAK = 600.0
DEFAULT_RESTARTS = 2
#: The soak's messages/s are unknown beforehand: it sends this many at most, and stops at its time.
SOAK_MESSAGES = 50_000_000
#: Seconds between two RSS samples of the soak's servers.
RSS_EVERY = 10.0
#: How long Redis stays down at each of the soak's restarts.
REDIS_DOWN = 3.0
ONE, TWO, NGINX = "one instance", "two instances + Redis", "two instances + Redis, behind nginx"
#: The light load: senders (one phase, no warmup) and messages.
LIGHT_THREADS = 4
LIGHT_MESSAGES = 20_000
FULL, LIGHT = "full load", "light load"


@dataclass
class Setup:
    """Servers running for one measurement: the client's URLs, and what to read of them."""

    urls: list[str]
    servers: list[ServerProcess]
    redis: RedisServer | None


def broadcast_server(*extra: str) -> ServerProcess:
    process = ServerProcess(local_server_command("--mode", "broadcast", *extra))
    process.wait_listening("ws")
    return process


def url_of(process: ServerProcess) -> str:
    found = process.wait_listening("ws")
    return f"ws://{found.host}:{found.port}"


@contextlib.contextmanager
def running(name: str, scratch: Path) -> Iterator[Setup]:
    """The servers of setup ``name``, stopped on the way out."""
    with contextlib.ExitStack() as stack:
        if name == ONE:
            server = stack.enter_context(broadcast_server())
            yield Setup([url_of(server)], [server], None)
            return
        redis = RedisServer()
        redis.start()
        stack.callback(redis.stop)
        servers = [stack.enter_context(broadcast_server("--bus", redis.url, "--instance-id", instance))
                   for instance in ("a", "b")]
        urls = [url_of(server) for server in servers]
        if name == NGINX:
            ports = [int(url.rsplit(":", 1)[1]) for url in urls]
            port = stack.enter_context(nginx_in_front(ports, scratch / "nginx"))
            urls = [f"ws://127.0.0.1:{port}"]
        yield Setup(urls, servers, redis)


def client_config(urls: list[str], messages: int, output: Path, load: str = FULL) -> LoadTestConfig:
    config = LoadTestConfig(base_url=urls[0], more_servers=tuple(urls[1:]), messages=messages, scenario="broadcast",
                            seed=defaults.SEED, output_dir=output)
    if load == LIGHT:
        config = replace(config, messages=LIGHT_MESSAGES, threads=LIGHT_THREADS, warmup_threads=0)
    return config


def figures_of(result: RunResult, servers: list[ServerProcess], cpu_before: float) -> dict:
    """One run's figures, flat, for ``summarise``."""
    fanout = result.fanout
    phases = result.phases
    duration = sum(phase.duration_s for phase in phases)
    success = sum(phase.stats.success for phase in phases)
    each = latency_figures(fanout.each_counts, fanout.each_max_us)
    last = latency_figures(fanout.last_counts, fanout.last_max_us)
    server_cpu = sum(sum(server.cpu_seconds()) for server in servers) - cpu_before
    return {
        "msg_per_s": success / duration if duration else 0.0,
        "deliveries_per_s": sum(phase.stats.deliveries for phase in phases) / duration if duration else 0.0,
        "each_p50_ms": each["p50_ms"], "each_p99_ms": each["p99_ms"], "each_max_ms": each["max_ms"],
        "last_p50_ms": last["p50_ms"], "last_p99_ms": last["p99_ms"], "last_max_ms": last["max_ms"],
        "expected": fanout.expected, "matched": fanout.matched, "missing": fanout.missing,
        "duplicated": fanout.duplicated, "out_of_order": fanout.out_of_order, "unordered": fanout.unordered,
        "failed_messages": result.totals.failure, "member_reconnects": fanout.member_reconnects,
        "server_cpu_us_per_msg": server_cpu / success * 1e6 if success else None,
    }


def measure(name: str, messages: int, scratch: Path, load: str) -> dict:
    with running(name, scratch) as setup:
        cpu_before = sum(sum(server.cpu_seconds()) for server in setup.servers)
        config = client_config(setup.urls, messages, scratch / "client", load)
        result = LoadTest(config).run()
        return figures_of(result, setup.servers, cpu_before)


# -- the soak ---------------------------------------------------------------------------


def soak(seconds: float, restarts: int, scratch: Path) -> dict:
    """The two-instance setup for ``seconds``, Redis restarted ``restarts`` times."""
    samples: list[dict] = []
    events: list[dict] = []
    with running(TWO, scratch) as setup:
        # At the light load: the soak is of Redis going away and coming back, not of members
        # too slow for a saturated client (those the servers evict, as they should).
        config = replace(client_config(setup.urls, SOAK_MESSAGES, scratch / "client", LIGHT), messages=SOAK_MESSAGES)
        test = LoadTest(config)
        started = time.monotonic()
        done = threading.Event()

        def operate() -> None:
            restart_at = [started + seconds * (i + 1) / (restarts + 1) for i in range(restarts)]
            next_sample = started
            while not done.wait(0.2):
                now = time.monotonic()
                if now >= next_sample:
                    samples.append({"t_s": round(now - started, 1),
                                    "rss_mib": [round(s.rss_bytes() / 2**20, 1) for s in setup.servers]})
                    next_sample += RSS_EVERY
                if restart_at and now >= restart_at[0]:
                    restart_at.pop(0)
                    setup.redis.stop()
                    events.append({"t_s": round(now - started, 1), "event": "Redis killed"})
                    if done.wait(REDIS_DOWN):
                        setup.redis.start()
                        break
                    setup.redis.start()
                    events.append({"t_s": round(time.monotonic() - started, 1), "event": "Redis started"})
                if now - started >= seconds:
                    test.stop.set()

        operator = threading.Thread(target=operate, name="soak-operator", daemon=True)
        cpu_before = sum(sum(server.cpu_seconds()) for server in setup.servers)
        operator.start()
        try:
            result = test.run()
        finally:
            done.set()
            operator.join(REDIS_DOWN + 5)
        figures = figures_of(result, setup.servers, cpu_before)
        figures["generated"] = result.generated
        figures["unsent"] = result.unsent
        figures["success"] = result.totals.success
        figures["seconds"] = round(time.monotonic() - started, 1)
        health = [bus_figures(server) for server in setup.servers]
    return {"figures": figures, "rss": samples, "events": events, "servers": health}


def bus_figures(server: ServerProcess) -> dict:
    """What an instance says of its bus at the end (its ``/health?verbose``)."""
    _, body = get_health(server.wait_listening("http").port, "/health?verbose")
    return {"status": body["status"], **{key: body["bus"][key] for key in ("published", "received", "notCrossed",
                                                                          "missed", "reordered")},
            "evicted": body["broadcast"]["evicted"]}


# -- pages ------------------------------------------------------------------------------

ROWS = (
    ("msg/s", "msg_per_s", 0), ("deliveries/s", "deliveries_per_s", 0),
    ("fan-out each member p50 (ms)", "each_p50_ms", 1), ("fan-out each member p99 (ms)", "each_p99_ms", 1),
    ("fan-out each member max (ms)", "each_max_ms", 0),
    ("fan-out last member p50 (ms)", "last_p50_ms", 1), ("fan-out last member p99 (ms)", "last_p99_ms", 1),
    ("servers' CPU per message (µs)", "server_cpu_us_per_msg", 0),
    ("deliveries missing", "missing", 0), ("deliveries duplicated", "duplicated", 0),
    ("deliveries out of order", "out_of_order", 0),
)


def rows(runs: dict[str, list[dict]]) -> list[list[str]]:
    spreads = {name: summarise(measured) for name, measured in runs.items()}
    return [[label, *(format_spread(spreads[name][key], digits) for name in runs)] for label, key, digits in ROWS]


def ratio_lines(report: dict) -> list[str]:
    lines = []
    for load, runs in report["runs"].items():
        one, two = (summarise(runs[name]) for name in (ONE, TWO))
        ratio = two["deliveries_per_s"]["median"] / one["deliveries_per_s"]["median"]
        p99 = (two["each_p99_ms"]["median"] or 0) - (one["each_p99_ms"]["median"] or 0)
        lines.append(f"At {load}, two instances + Redis deliver {ratio:.2f}× the deliveries/s of one instance; "
                     f"fan-out p99 {p99:+.1f} ms (medians).")
    return lines


def page(report: dict) -> list[str]:
    lines = doc.header("Broadcast rooms: one instance, two on Redis", COMMAND,
                       "How it is built and why: docs/broadcast.md, docs/scale-out.md.")
    lines += [doc.measured_on(report["started_at"], report["environment"]) +
              " 20 rooms × 10 listening members, the client (senders and members in one process) on the same"
              f" machine; {report['rounds']} interleaved rounds, medians (min–max).", ""]
    for load, runs in report["runs"].items():
        size = (f"{report['messages']:,} messages, the client's default threads" if load == FULL
                else f"{LIGHT_MESSAGES:,} messages, {LIGHT_THREADS} senders")
        lines += [f"## At {load} ({size})", ""]
        lines += doc.table(["", *runs], rows(runs), "l" + "r" * len(runs)) + [""]
    lines += ratio_lines(report)
    return lines


def reconciliation(figures: dict, servers: list[dict]) -> str:
    """Whether the missing deliveries are exactly those the instances counted as not
    crossing: each such message misses the members on the other instance (half of a room's,
    as the client deals them over two servers)."""
    per_message = LoadTestConfig.room_members // len(servers)
    not_crossed = sum(s["notCrossed"] for s in servers)
    missed = sum(s["missed"] for s in servers)
    accounted = (not_crossed + missed) * per_message
    verdict = "every missing delivery is accounted for" if accounted == figures["missing"] else "they differ"
    return (f"Reconciled: {not_crossed:,} messages not crossed and {missed:,} never read (lost with Redis) × "
            f"{per_message} members on the other instance = {accounted:,} deliveries; missing: "
            f"{figures['missing']:,}: {verdict}.")


def soak_page(report: dict) -> list[str]:
    figures, rss = report["soak"]["figures"], report["soak"]["rss"]
    lines = doc.header("Broadcast soak: two instances on Redis, Redis restarted", f"{COMMAND} --soak",
                       "What it checks: docs/broadcast.md#when-redis-is-down.")
    lines += [doc.measured_on(report["started_at"], report["environment"]) +
              f" {figures['seconds']:,.0f} s, Redis killed and started again {report['restarts']} times"
              f" ({REDIS_DOWN:g} s down each time).", ""]
    lines += doc.table(["", ""], [
        ["messages generated", f"{figures['generated']:,}"],
        ["succeeded / failed (of which cancelled unsent when the soak stopped)",
         f"{figures['success']:,} / {figures['failed_messages']:,} ({figures['unsent']:,})"],
        ["msg/s, deliveries/s", f"{figures['msg_per_s']:,.0f}, {figures['deliveries_per_s']:,.0f}"],
        ["deliveries expected / matched / missing", f"{figures['expected']:,} / {figures['matched']:,} / {figures['missing']:,}"],
        ["deliveries duplicated / out of order / outside the order (bus down)",
         f"{figures['duplicated']:,} / {figures['out_of_order']:,} / {figures['unordered']:,}"],
        ["member reconnects", f"{figures['member_reconnects']:,}"],
        ["fan-out each member p50 / p99 (ms)", f"{figures['each_p50_ms']} / {figures['each_p99_ms']}"],
    ], "lr")
    lines += ["", "Each instance at the end (`/health?verbose`):", ""]
    lines += doc.table(["instance", "status", "published", "received", "not crossed", "missed", "reordered", "evicted"],
                       [[name, s["status"], f"{s['published']:,}", f"{s['received']:,}", f"{s['notCrossed']:,}",
                         f"{s['missed']:,}", f"{s['reordered']:,}", f"{s['evicted']:,}"]
                        for name, s in zip("ab", report["soak"]["servers"])], "llrrrrrr")
    lines += ["", reconciliation(figures, report["soak"]["servers"])]
    lines += ["", "Events:", ""] + [f"- {e['t_s']:.0f} s: {e['event']}" for e in report["soak"]["events"]]
    lines += ["", "Servers' RSS (MiB), every "
              f"{RSS_EVERY:g} s:", ""]
    lines += doc.table(["t (s)", "instance a", "instance b"],
                       [[f"{s['t_s']:.0f}", *(f"{v:.1f}" for v in s["rss_mib"])] for s in rss], "rrr")
    return lines


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog=COMMAND, description=__doc__.split("\n\n")[0])
    add_page_options(parser, messages=DEFAULT_MESSAGES, rounds=DEFAULT_ROUNDS)
    parser.add_argument("--no-nginx", action="store_true", help="leave out the two instances behind nginx")
    parser.add_argument("--soak", type=float, metavar="SECONDS", help=f"the soak instead (default run: {DEFAULT_SOAK:g})")
    parser.add_argument("--restarts", type=whole_number(0), default=DEFAULT_RESTARTS)
    args = parser.parse_args(argv)
    if args.from_results is not None:
        report = json.loads(args.from_results.read_text())
    else:
        if missing():
            parser.error(missing())
        report = {"started_at": datetime.datetime.now().isoformat(timespec="seconds"), "environment": environment(),
                  "messages": args.messages, "rounds": args.rounds}
        with tempfile.TemporaryDirectory(prefix="chatflow-broadcast-") as scratch:
            if args.soak is not None:
                report["restarts"] = args.restarts
                report["soak"] = soak(args.soak, args.restarts, Path(scratch))
                name = "broadcast_soak"
            else:
                setups = [ONE, TWO] + ([] if args.no_nginx else [NGINX])
                report["runs"] = {load: {setup: [] for setup in setups} for load in (FULL, LIGHT)}
                for round_number in range(args.rounds):
                    for setup in setups if round_number % 2 == 0 else reversed(setups):
                        for load in (FULL, LIGHT):
                            figures = measure(setup, args.messages, Path(scratch), load)
                            report["runs"][load][setup].append(figures)
                            print(f"round {round_number + 1} {setup}, {load}: {figures['msg_per_s']:,.0f} msg/s, "
                                  f"{figures['deliveries_per_s']:,.0f} deliveries/s, "
                                  f"fan-out p99 {figures['each_p99_ms']} ms, missing {figures['missing']:,}", flush=True)
                name = "broadcast"
        print(f"results: {doc.shown(write_results(report, RESULTS_DIR, name))}")
    if "soak" in report:
        lines = soak_page(report)
        default_run = args.from_results is not None or (args.soak == DEFAULT_SOAK and args.restarts == DEFAULT_RESTARTS)
        target = args.doc or (SOAK_PAGE if default_run else None)
    else:
        for load, runs in report["runs"].items():
            print("\n".join(doc.text_table([[load, *runs], *rows(runs)])))
        print("\n".join(ratio_lines(report)))
        lines = page(report)
        default_run = args.from_results is not None or (
            args.messages == DEFAULT_MESSAGES and args.rounds == DEFAULT_ROUNDS and not args.no_nginx)
        target = args.doc or (PAGE if default_run else None)
    if target is not None:
        print(f"page: {doc.shown(doc.write_page(target, lines))}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
