"""``python -m bench``: every performance figure of ChatFlow in one sitting, in one table.

Runs, in order: the server benchmark at 1, 16, 64 and 256 connections (bench.server_bench),
the TCP floor at 64 threads (bench.tcp_floor) and the end-to-end experiment
(bench.end_to_end). It prints one table with ChatFlow's figures, their ratio to the TCP
floor, and the Java original's figures of SPEC §4 side by side, and writes everything
to bench/results/bench_<timestamp>.json.

    python -m bench                  # 500,000 messages end to end, 3 runs of everything (10-20 min)
    python -m bench --quick          # a smoke run of small counts, 1 run of each (under a minute)
"""

from __future__ import annotations

import argparse
import datetime
import sys
from pathlib import Path

from bench import end_to_end, server_bench, tcp_floor
from bench.results import environment, format_spread
from bench.results import RESULTS_DIR, write_results
from bench.server_bench import BenchError
from chatflow.arguments import whole_number
from chatflow.client.config import LoadTestConfig

SERVER_BENCH_CONNECTIONS = [1, 16, 64, 256]
FLOOR_THREADS = LoadTestConfig.threads

#: (messages, server_bench messages, server_bench warmup, runs) of --quick and of the full run.
QUICK = (30_000, 10_000, 2_000, 1)
FULL = (LoadTestConfig.messages, 200_000, 10_000, 3)

#: SPEC §4: the Java client against the Java server on this kind of machine, 500,000
#: messages, two runs. (figure, low, high, unit, as SPEC §4 writes it)
JAVA_REFERENCE = {
    "overall_msg_s": (18_350, 18_596, "msg/s", "18,350–18,596"),
    "main_msg_s": (20_708, 21_728, "msg/s", "20,708–21,728"),
    "latency_mean_ms": (2.3, 2.3, "ms", "2.3"),
    "latency_p50_ms": (2, 2, "ms", "2"),
    "latency_p95_ms": (5, 6, "ms", "5–6"),
    "latency_p99_ms": (12, 13, "ms", "12–13"),
    "latency_max_ms": (332, 365, "ms", "332–365"),
    "server_cpu_us_per_message": (39, 40, "µs", "39–40"),
    "client_cpu_us_per_message": (65, 67, "µs", "65–67"),
    "client_peak_rss_mib": (940, 940, "MB", "≈ 940 MB"),
    "server_rss_after_mib": (330, 330, "MB", "≈ 330 MB"),
}

#: End-to-end rows: (label, figure, digits, the TCP floor's figure it is a multiple of).
END_TO_END_ROWS = [
    ("throughput, warmup + main (msg/s)", "overall_msg_s", 0, "messages_per_second"),
    ("main phase, 64 threads (msg/s)", "main_msg_s", 0, "messages_per_second"),
    ("warmup phase, 32 threads (msg/s)", "warmup_msg_s", 0, None),
    ("latency mean (ms)", "latency_mean_ms", 2, None),
    ("latency p50 (ms)", "latency_p50_ms", 2, None),
    ("latency p95 (ms)", "latency_p95_ms", 2, None),
    ("latency p99 (ms)", "latency_p99_ms", 2, None),
    ("latency max (ms)", "latency_max_ms", 1, None),
    ("server CPU (µs/msg)", "server_cpu_us_per_message", 1, "server_cpu_us_per_message"),
    ("client CPU, load test (µs/msg)", "client_cpu_us_per_message", 1, "client_cpu_us_per_message"),
    ("client CPU, whole process (µs/msg)", "client_process_cpu_us_per_message", 1, None),
    ("  of which system time (µs/msg)", "client_process_system_cpu_us_per_message", 1, None),
    ("client peak RSS, load test (MiB)", "client_peak_rss_mib", 1, None),
    ("client max RSS, whole process (MiB)", "client_process_max_rss_mib", 1, None),
    ("server peak RSS (MiB)", "server_peak_rss_mib", 1, None),
    ("server RSS after the run (MiB)", "server_rss_after_mib", 1, None),
]

#: server_bench rows per connection count: (label, figure, digits, the floor's figure).
SERVER_BENCH_ROWS = [
    ("msg/s", "messages_per_second", 0, "messages_per_second"),
    ("server CPU (µs/msg)", "server_cpu_us_per_message", 1, "server_cpu_us_per_message"),
]


def run_server_bench(messages: int, warmup: int, runs: int, timeout: float) -> list[dict]:
    """server_bench's runs for each connection count, in its own result shape."""
    args = server_bench.build_parser().parse_args([
        "--connections", ",".join(map(str, SERVER_BENCH_CONNECTIONS)), "--messages", str(messages),
        "--warmup", str(warmup), "--runs", str(runs), "--timeout", str(timeout),
    ])
    under_test = server_bench.servers_from(args)[0]
    results = []
    for connections in args.connections:
        runs_of_count = []
        for run in range(1, runs + 1):
            figures = server_bench.run_once(args, under_test, connections)
            runs_of_count.append(figures)
            print(f"server_bench: {connections} connection(s), run {run}/{runs}: "
                  f"{figures['messages_per_second']:,.0f} msg/s, "
                  f"server {figures['server_cpu_us_per_message']:.1f} µs/msg, "
                  f"load average {figures['load_average_after']:.1f}", file=sys.stderr, flush=True)
        results.append({"server": under_test.label, "connections": connections, "messages": messages,
                        "warmup": warmup, "runs": runs_of_count, "summary": server_bench.summarise(runs_of_count)})
    return results


def ratio(value: dict | None, floor: dict | None) -> float | None:
    """ChatFlow's median as a multiple of the floor's median."""
    if value is None or floor is None or not floor["median"]:
        return None
    return value["median"] / floor["median"]


def floor_ratios(server_results: list[dict], floor: dict, e2e: dict) -> dict[str, float | None]:
    ratios = {}
    for _, figure, _, floor_figure in END_TO_END_ROWS:
        if floor_figure is not None:
            ratios[f"end_to_end.{figure}"] = ratio(e2e["summary"][figure], floor["summary"][floor_figure])
    for result in server_results:
        if result["connections"] == floor["threads"]:
            for _, figure, _, floor_figure in SERVER_BENCH_ROWS:
                ratios[f"server_bench.{result['connections']}.{figure}"] = ratio(
                    result["summary"][figure], floor["summary"][floor_figure])
    return ratios


def table(server_results: list[dict], floor: dict, e2e: dict, runs: int) -> str:
    header = ("figure", "ChatFlow", f"TCP floor ({floor['threads']} thr.)", "×floor", "Java (SPEC §4)")
    rows: list[tuple[str, ...]] = [header]

    def row(label: str, spread: dict | None, digits: int, floor_spread: dict | None, java: str) -> None:
        multiple = ratio(spread, floor_spread)
        rows.append((f"  {label}", format_spread(spread, digits), format_spread(floor_spread, digits),
                     "-" if multiple is None else f"{multiple:.2f}×", java))

    rows.append((f"end to end: run_client.py → run_server.py, {e2e['messages']:,} messages",))
    for label, figure, digits, floor_figure in END_TO_END_ROWS:
        floor_spread = floor["summary"][floor_figure] if floor_figure else None
        java = JAVA_REFERENCE[figure][3] if figure in JAVA_REFERENCE else "-"
        row(label, e2e["summary"][figure], digits, floor_spread, java)
    rows.append((f"server_bench: raw-socket load client, {server_results[0]['messages']:,} messages",))
    for result in server_results:
        for label, figure, digits, floor_figure in SERVER_BENCH_ROWS:
            at_floor = result["connections"] == floor["threads"]
            connections = f"{result['connections']} connection{'s' if result['connections'] > 1 else ''}"
            row(f"{connections}, {label}", result["summary"][figure], digits,
                floor["summary"][floor_figure] if at_floor else None, "-")
    widths = [max(len(r[column]) for r in rows if len(r) > 1) for column in range(len(header))]
    lines = [f"median of {runs} run{'s' if runs > 1 else ''} (min–max); ×floor = ChatFlow's median / the TCP floor's"]
    for r in rows:
        if len(r) == 1:
            lines.append(r[0])
        else:
            lines.append("  ".join([r[0].ljust(widths[0])] + [v.rjust(w) for v, w in zip(r[1:], widths[1:])]))
    return "\n".join(lines)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python -m bench",
        description="server_bench at 1, 16, 64 and 256 connections, the TCP floor, and the end-to-end experiment: "
                    "one table beside the Java original's figures, one JSON.",
    )
    parser.add_argument("--quick", action="store_true",
                        help=f"a smoke run: {QUICK[0]:,} messages end to end and on the floor, {QUICK[1]:,} per "
                             f"server_bench run, {QUICK[3]} run of each unless --runs says otherwise")
    parser.add_argument("--runs", type=whole_number(1),
                        help=f"runs of every benchmark (default {FULL[3]}, with --quick {QUICK[3]})")
    parser.add_argument("--messages", type=whole_number(1),
                        help=f"messages of each end-to-end run and each TCP floor run "
                             f"(default {FULL[0]:,}, with --quick {QUICK[0]:,})")
    parser.add_argument("--server-messages", type=whole_number(1),
                        help=f"measured messages of each server_bench run (default {FULL[1]:,}, with --quick {QUICK[1]:,})")
    parser.add_argument("--seed", type=int, default=42, help="the end-to-end client's --seed (default %(default)s)")
    parser.add_argument("--timeout", type=float, default=1800.0, help="seconds one run may take (default %(default)s)")
    parser.add_argument("--output-dir", type=Path, default=RESULTS_DIR, help="where the JSON goes (default bench/results)")
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    default_messages, default_server_messages, server_warmup, default_runs = QUICK if args.quick else FULL
    messages = args.messages or default_messages
    server_messages = args.server_messages or default_server_messages
    runs = args.runs or default_runs
    floor_warmup = max(FLOOR_THREADS, messages // 50)
    started = datetime.datetime.now(datetime.timezone.utc)
    try:
        server_results = run_server_bench(server_messages, server_warmup, runs, args.timeout)
        floor = tcp_floor.measure(FLOOR_THREADS, messages, floor_warmup, runs, args.timeout)
        e2e = end_to_end.measure(messages, runs, args.seed, args.timeout)
    except BenchError as exc:
        print(f"bench: error: {exc}", file=sys.stderr)
        return 1
    print(table(server_results, floor, e2e, runs))
    report = {
        "benchmark": "bench",
        "started_at": started.isoformat(),
        "finished_at": datetime.datetime.now(datetime.timezone.utc).isoformat(),
        "options": {"quick": args.quick, "runs": runs, "messages": messages, "server_messages": server_messages,
                    "server_warmup": server_warmup, "floor_warmup": floor_warmup, "seed": args.seed,
                    "timeout": args.timeout, "server_bench_connections": SERVER_BENCH_CONNECTIONS,
                    "floor_threads": FLOOR_THREADS},
        "environment": environment(),
        "server_bench": server_results,
        "tcp_floor": floor,
        "end_to_end": e2e,
        "floor_ratios": floor_ratios(server_results, floor, e2e),
        "java_reference": {
            figure: {"low": low, "high": high, "unit": unit, "as_in_spec": text}
            for figure, (low, high, unit, text) in JAVA_REFERENCE.items()
        },
    }
    print(f"results: {write_results(report, args.output_dir, 'bench')}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
