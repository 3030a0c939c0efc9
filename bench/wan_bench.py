"""What the delay proxy costs: ``python -m chatflow.wan`` under the experiment's regime.

``python -m bench.wan_bench`` starts the TCP floor's echo server (``bench.tcp_floor
--serve``, fixed 160-byte messages) and the proxy in front of it, each as its own
process, and paces 64 connections at 2,000 msg/s in all through the proxy from one
selector thread here: every connection sends on its own schedule, whatever the replies,
so the offered rate does not depend on the round trip. Over the measured window (after
a warmup) it reads the proxy process's CPU from /proc, and every round trip's time.

Figures: the proxy's CPU per message (a message is a round trip: its bytes cross the
proxy twice), the rate achieved, the round trip beyond the setting (p50, p99) beside the
same load's round trip straight to the echo server (what the echo and this client add on
their own), and the proxy's peak RSS. docs/wan.md reads them. Results go to
bench/results/wan_bench_<timestamp>.json.
"""

from __future__ import annotations

import argparse
import datetime
import os
import selectors
import socket
import sys
import time
from collections import deque
from pathlib import Path

from bench import defaults
from bench.results import RESULTS_DIR, environment, format_spread, summarise, write_results
from bench.server_bench import REPLY_TIMEOUT, BenchError, repeat, server_running
from bench.soak import latency_summary
from chatflow.arguments import seconds, whole_number
from chatflow.client.config import LoadTestConfig
from chatflow.server.process import ServerProcess, ServerProcessError
from tests.support.messages import MESSAGE_SIZE, sized_chat_message
from tests.support.network import LOCALHOST, RECV_SIZE, free_port

#: The seed's laptop → EC2 round trip.
RTT_MS = 34.0
#: The offered load, all connections together.
RATE = 2_000
WARMUP_SECONDS = 2.0
MEASURE_SECONDS = 10.0


class Pacer:
    """One connection: sends at its times, matches each reply to its send (the echo keeps order)."""

    __slots__ = ("sock", "message", "interval", "next_send", "sent_at", "pending")

    def __init__(self, sock: socket.socket, message: bytes, interval: float, first: float) -> None:
        self.sock = sock
        self.message = message
        self.interval = interval
        self.next_send = first
        self.sent_at: deque[float] = deque()
        self.pending = bytearray()


def drive(port: int, connections: int, rate: float, warmup: float, measure: float,
          on_window: tuple) -> tuple[list[float], int]:
    """Offer ``rate`` msg/s over ``connections`` to 127.0.0.1:``port`` for ``warmup`` then
    ``measure`` seconds; returns the round trips (s) of the messages sent in the window and
    how many were sent then. ``on_window`` is called as the window opens and closes."""
    interval = connections / rate
    selector = selectors.DefaultSelector()
    pacers = []
    start = time.monotonic() + 0.1
    for index in range(connections):
        sock = socket.create_connection((LOCALHOST, port), timeout=REPLY_TIMEOUT)
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        sock.setblocking(False)
        pacer = Pacer(sock, sized_chat_message(index + 1), interval, start + index * interval / connections)
        pacers.append(pacer)
        selector.register(sock, selectors.EVENT_READ, pacer)
    opens, closes = start + warmup, start + warmup + measure
    window_open = window_closed = False
    round_trips: list[float] = []
    sent_in_window = 0
    try:
        while True:
            now = time.monotonic()
            if not window_open and now >= opens:
                window_open = True
                on_window[0]()
            if not window_closed and now >= closes:
                window_closed = True
                on_window[1]()
            if window_closed and all(not p.sent_at for p in pacers):
                break
            if now > closes + REPLY_TIMEOUT:
                raise BenchError(f"replies missing {REPLY_TIMEOUT:g} s after the window closed")
            if not window_closed:
                for pacer in pacers:
                    if pacer.next_send <= now:
                        pacer.sock.send(pacer.message)  # 160 bytes: the socket's buffer always has room
                        pacer.sent_at.append(now)
                        pacer.next_send += pacer.interval
                        if opens <= now < closes:
                            sent_in_window += 1
            if window_closed:
                wake = now + 0.1
            else:
                wake = min(min(p.next_send for p in pacers), closes, *([] if window_open else [opens]))
            for key, _ in selector.select(max(0.0, wake - time.monotonic())):
                pacer = key.data
                data = pacer.sock.recv(RECV_SIZE)
                if not data:
                    raise BenchError("the proxy closed a connection")
                pacer.pending += data
                arrived = time.monotonic()
                while len(pacer.pending) >= MESSAGE_SIZE:
                    if pacer.pending[:MESSAGE_SIZE] != pacer.message:
                        raise BenchError(f"the echo differs from the message: {bytes(pacer.pending[:80])!r}")
                    del pacer.pending[:MESSAGE_SIZE]
                    sent = pacer.sent_at.popleft()
                    if opens <= sent < closes:
                        round_trips.append(arrived - sent)
    finally:
        for pacer in pacers:
            pacer.sock.close()
        selector.close()
    return round_trips, sent_in_window


def run_once(connections: int, rate: float, rtt_ms: float, warmup: float, measure: float) -> dict:
    """One echo server; the paced load straight to it, then through a fresh proxy: the
    figures of each measured window (the direct one says what the echo and this client
    add, so that what the proxy adds is the rest)."""
    load_before = os.getloadavg()[0]
    echo_port = free_port()
    with server_running([sys.executable, "-m", "bench.tcp_floor", "--serve", str(echo_port)], echo_port):
        direct, direct_sent = drive(echo_port, connections, rate, warmup, measure, (lambda: None, lambda: None))
        command = [sys.executable, "-m", "chatflow.wan", "--upstream", f"{LOCALHOST}:{echo_port}",
                   "--rtt-ms", f"{rtt_ms:g}"]
        try:
            with ServerProcess(command) as proxy:
                port = proxy.wait_listening("tcp").port
                cpu, wall = [], []

                def mark() -> None:
                    cpu.append(sum(proxy.cpu_seconds()))
                    wall.append(time.monotonic())

                round_trips, sent = drive(port, connections, rate, warmup, measure, (mark, mark))
                peak_rss = proxy.peak_rss_bytes()
        except ServerProcessError as exc:
            raise BenchError(str(exc)) from None
    if len(round_trips) != sent or len(direct) != direct_sent:
        raise BenchError(f"{len(round_trips)} replies to {sent} messages, {len(direct)} to {direct_sent} direct")
    proxied, straight = latency_summary(round_trips), latency_summary(direct)
    proxy_cpu = cpu[1] - cpu[0]
    return {
        "connections": connections,
        "offered_messages_per_second": rate,
        "rtt_ms": rtt_ms,
        "messages": sent,
        "messages_per_second": sent / (wall[1] - wall[0]),
        "proxy_cpu_us_per_message": proxy_cpu / sent * 1e6,
        "proxy_cpu_share_of_a_core": proxy_cpu / (wall[1] - wall[0]),
        **{f"rtt_added_{name}": value - rtt_ms for name, value in proxied.items()},
        **{f"rtt_direct_{name}": value for name, value in straight.items()},
        "proxy_peak_rss_mib": peak_rss / 2**20,
        "load_average_before": load_before,
        "load_average_after": os.getloadavg()[0],
    }


FIGURES = [("msg/s", "messages_per_second", 0), ("proxy CPU µs/msg", "proxy_cpu_us_per_message", 1),
           ("proxy CPU, share of a core", "proxy_cpu_share_of_a_core", 3),
           ("RTT beyond the setting, p50 ms", "rtt_added_p50_ms", 2),
           ("RTT beyond the setting, p99 ms", "rtt_added_p99_ms", 2),
           ("RTT without the proxy, p50 ms", "rtt_direct_p50_ms", 2),
           ("RTT without the proxy, p99 ms", "rtt_direct_p99_ms", 2),
           ("proxy peak RSS MiB", "proxy_peak_rss_mib", 1)]


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python -m bench.wan_bench",
        description="The delay proxy's cost: paced 160-byte round trips through python -m chatflow.wan to an echo server.",
    )
    parser.add_argument("--connections", type=whole_number(1), default=LoadTestConfig.threads,
                        help="connections, as the client's main phase (default %(default)s)")
    parser.add_argument("--rate", type=whole_number(1), default=RATE, help="msg/s offered in all (default %(default)s)")
    parser.add_argument("--rtt-ms", type=float, default=RTT_MS, help="the proxy's round trip (default %(default)g)")
    parser.add_argument("--warmup", type=seconds(), default=WARMUP_SECONDS, help="seconds (default %(default)g)")
    parser.add_argument("--seconds", type=seconds(), default=MEASURE_SECONDS,
                        help="seconds measured per run (default %(default)g)")
    parser.add_argument("--runs", type=whole_number(1), default=defaults.RUNS, help="runs (default %(default)s)")
    parser.add_argument("--output-dir", type=Path, default=RESULTS_DIR, help="where the JSON goes (default bench/results)")
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    started = datetime.datetime.now(datetime.timezone.utc)
    try:
        runs = repeat(f"wan_bench: {args.connections} connections at {args.rate:,} msg/s, {args.rtt_ms:g} ms",
                      args.runs, lambda: run_once(args.connections, args.rate, args.rtt_ms, args.warmup, args.seconds),
                      lambda f: f"{f['messages_per_second']:,.0f} msg/s, proxy {f['proxy_cpu_us_per_message']:.1f} µs/msg, "
                                f"RTT +{f['rtt_added_p50_ms']:.2f} ms p50, +{f['rtt_added_p99_ms']:.2f} ms p99")
    except BenchError as exc:
        print(f"wan_bench: error: {exc}", file=sys.stderr)
        return 1
    summary = summarise(runs)
    print(f"Delay proxy, {args.connections} connections, {args.rate:,} msg/s offered, RTT {args.rtt_ms:g} ms: "
          f"median of {args.runs} run(s) (min–max)")
    for label, key, digits in FIGURES:
        print(f"  {label:<32}{format_spread(summary[key], digits)}")
    report = {
        "benchmark": "wan_bench",
        "started_at": started.isoformat(),
        "options": {"connections": args.connections, "rate": args.rate, "rtt_ms": args.rtt_ms, "warmup": args.warmup,
                    "seconds": args.seconds, "runs": args.runs, "message_bytes": MESSAGE_SIZE},
        "environment": environment(),
        "results": {"runs": runs, "summary": summary},
    }
    print(f"results: {write_results(report, args.output_dir, 'wan_bench')}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
