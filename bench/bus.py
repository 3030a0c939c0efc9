"""The bus alone: what a message's trip through Redis costs (``--bus``, docs/broadcast.md#the-bus).

``python -m bench.bus`` starts a redis-server of its own on a free loopback port, then, in
interleaved rounds, a fresh process per measurement that runs one ``RedisBus`` (its
publisher and subscriber threads, as a server has them) and drives it from its main thread:

- **throughput**: ``--messages`` messages over 20 rooms, as fast as the bus takes them
  (at most ``IN_FLIGHT`` published and not yet read back): msg/s, the process's CPU per
  message (both bus threads; the main thread only queues), redis-server's CPU per message;
- **the hop**: 2,000 msg/s for 3 s, each message's time from ``publish`` to its arrival
  back from Redis (p50, p99): what the bus adds to a room frame's delivery, without the
  WebSocket sides.

Each is measured with redis-py's reply parser in C (``hiredis``, installed with ChatFlow)
and with its pure-Python one (the process is started with ``hiredis`` hidden), which is
why ``hiredis`` is a dependency (docs/dependencies.md). Results go to
bench/results/bus_<timestamp>.json; the default run writes docs/measurements/bus.md.
"""

from __future__ import annotations

import argparse
import datetime
import json
import statistics
import subprocess
import sys
import threading
import time
from pathlib import Path

import psutil

from bench import doc
from bench.results import RESULTS_DIR, add_page_options, environment, format_spread, summarise, write_results
from tests.support.redis_server import RedisServer, missing

ROOMS = 20
IN_FLIGHT = 5_000
HOP_RATE = 2_000
HOP_SECONDS = 3.0
PARSERS = ("hiredis", "python")
DEFAULT_MESSAGES = 100_000
DEFAULT_ROUNDS = 3
#: A measurement that takes longer than this has failed.
MEASURE_TIMEOUT = 300.0
#: A chat reply's fields, as a room frame's body carries them.
BODY = (b'"userId":7,"username":"user7","message":"Latency looks good.","clientTimestamp":"2026-12-03T10:00:00.000Z",'
        b'"serverTimestamp":"2026-12-03T10:00:00.001Z","messageType":"TEXT","instanceId":"bench-1"}')
PAGE = doc.MEASUREMENTS / "bus.md"


def measure(url: str, redis_pid: int, messages: int) -> dict:
    """One process's figures (run in a child: see ``main``'s ``--measure``)."""
    from chatflow.server.bus import RedisBus
    from chatflow.server.config import BusSettings

    received = [0]
    hops: list[int] = []
    arrived = threading.Condition()
    timing = [False]

    def deliver(crossings) -> None:
        now = time.perf_counter_ns()
        if timing[0]:
            hops.extend(now - int(c.body[:c.body.index(b",")]) for c in crossings)
        with arrived:
            received[0] += len(crossings)
            arrived.notify_all()

    bus = RedisBus(url, rooms=ROOMS, settings=BusSettings(), deliver=deliver, failed=lambda: None)
    bus.start()
    deadline = time.monotonic() + 10
    while bus.problem() is not None:
        if time.monotonic() > deadline:
            raise SystemExit(f"the bus did not connect: {bus.problem()}")
        time.sleep(0.01)
    redis = psutil.Process(redis_pid)

    def wait_received(count: int, timeout: float = 60.0) -> None:
        with arrived:
            if not arrived.wait_for(lambda: received[0] >= count, timeout):
                raise SystemExit(f"only {received[0]:,} of {count:,} messages came back")

    redis_cpu, cpu, started = sum(redis.cpu_times()[:2]), time.process_time(), time.perf_counter()
    for n in range(messages):
        if n - received[0] >= IN_FLIGHT:
            wait_received(n - IN_FLIGHT // 2)
        bus.publish(1 + n % ROOMS, BODY, 1)
    wait_received(messages)
    elapsed = time.perf_counter() - started
    figures = {
        "msg_per_s": messages / elapsed,
        "bus_cpu_us": (time.process_time() - cpu) / messages * 1e6,
        "redis_cpu_us": (sum(redis.cpu_times()[:2]) - redis_cpu) / messages * 1e6,
    }
    timing[0] = True
    base = received[0]
    count = int(HOP_RATE * HOP_SECONDS)
    start = time.perf_counter()
    for n in range(count):
        pause = start + n / HOP_RATE - time.perf_counter()
        if pause > 0:
            time.sleep(pause)
        bus.publish(1 + n % ROOMS, b"%d,%s" % (time.perf_counter_ns(), BODY), 1)
    wait_received(base + count)
    bus.stop()
    hops.sort()
    figures["hop_p50_ms"] = hops[len(hops) // 2] / 1e6
    figures["hop_p99_ms"] = hops[int(len(hops) * 0.99)] / 1e6
    figures["hop_max_ms"] = hops[-1] / 1e6
    figures["hop_mean_ms"] = statistics.fmean(hops) / 1e6
    return figures


def measure_in_child(parser: str, url: str, redis_pid: int, messages: int) -> dict:
    """``measure`` in a fresh process; with ``python``, redis-py cannot import hiredis there."""
    hide = "import sys; sys.modules['hiredis'] = None; " if parser == "python" else ""
    code = (f"{hide}import json, redis.utils; from bench.bus import measure; "
            f"figures = measure({url!r}, {redis_pid}, {messages}); "
            f"figures['hiredis'] = redis.utils.HIREDIS_AVAILABLE; print(json.dumps(figures))")
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=MEASURE_TIMEOUT,
                            cwd=Path(__file__).resolve().parents[1])
    if result.returncode != 0:
        raise SystemExit(f"the {parser} measurement failed:\n{result.stderr.strip()}")
    figures = json.loads(result.stdout.strip().splitlines()[-1])
    if figures.pop("hiredis") != (parser == "hiredis"):
        raise SystemExit(f"the {parser} measurement ran with the other parser")
    return figures


ROWS = (
    ("messages/s through Redis", "msg_per_s", 0),
    ("bus threads' CPU per message (µs)", "bus_cpu_us", 1),
    ("redis-server's CPU per message (µs)", "redis_cpu_us", 1),
    ("hop p50 (ms), at 2,000 msg/s", "hop_p50_ms", 2),
    ("hop p99 (ms), at 2,000 msg/s", "hop_p99_ms", 2),
    ("hop max (ms), at 2,000 msg/s", "hop_max_ms", 2),
)


def rows(report: dict) -> list[list[str]]:
    spreads = {parser: summarise(report["runs"][parser]) for parser in PARSERS}
    return [[label, *(format_spread(spreads[parser][key], digits) for parser in PARSERS)]
            for label, key, digits in ROWS]


def page(report: dict) -> list[str]:
    lines = doc.header("The bus alone: a message's trip through Redis", "python -m bench.bus",
                       "What it measures and why: docs/broadcast.md#the-bus.")
    lines += [doc.measured_on(report["started_at"], report["environment"]) + f" redis-server {report['redis']}; "
              f"{report['messages']:,} messages per throughput run, {report['rounds']} interleaved rounds, "
              "medians (min–max).", ""]
    lines += doc.table(["", "with hiredis", "pure-Python parser"], rows(report), "lrr")
    return lines


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.bus", description=__doc__.split("\n\n")[0])
    add_page_options(parser, messages=DEFAULT_MESSAGES, rounds=DEFAULT_ROUNDS)
    args = parser.parse_args(argv)
    if args.from_results is not None:
        report = json.loads(args.from_results.read_text())
    else:
        if missing():
            parser.error(missing())
        redis = RedisServer()
        redis.start()
        try:
            version = subprocess.run(["redis-server", "--version"], capture_output=True, text=True).stdout.split()[2]
            report = {"started_at": datetime.datetime.now().isoformat(timespec="seconds"),
                      "environment": environment(), "redis": version.removeprefix("v="), "messages": args.messages,
                      "rounds": args.rounds, "runs": {name: [] for name in PARSERS}}
            for round_number in range(args.rounds):
                for name in PARSERS if round_number % 2 == 0 else reversed(PARSERS):
                    figures = measure_in_child(name, redis.url, redis.pid, args.messages)
                    report["runs"][name].append(figures)
                    print(f"round {round_number + 1} {name}: {figures['msg_per_s']:,.0f} msg/s, "
                          f"hop p99 {figures['hop_p99_ms']:.2f} ms", flush=True)
        finally:
            redis.stop()
        print(f"results: {doc.shown(write_results(report, RESULTS_DIR, 'bus'))}")
    print("\n".join(doc.text_table([["", *PARSERS], *rows(report)])))
    default_run = args.messages == DEFAULT_MESSAGES and args.rounds == DEFAULT_ROUNDS
    target = args.doc or (PAGE if default_run or args.from_results else None)
    if target is not None:
        print(f"page: {doc.shown(doc.write_page(target, page(report)))}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
