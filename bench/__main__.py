"""``python -m bench``: every performance figure of ChatFlow in one sitting, in one table.

Runs, in order: the server benchmark at 1, 16, 64 and 256 connections (bench.server_bench),
the TCP floor at 64 threads (bench.tcp_floor) and the end-to-end experiment
(bench.end_to_end). It prints one table with ChatFlow's figures, their ratio to the TCP
floor, and the Java original's figures side by side, writes everything to
bench/results/bench_<timestamp>.json, and from that JSON the page of the latest figures,
docs/measurements/bench.md (the default sitting; any other only with ``--doc PATH``).

    python -m bench                  # 500,000 messages end to end, 3 runs of everything (several minutes)
    python -m bench --quick          # a smoke run of small counts, 1 run of each (under a minute)
    python -m bench --from-results bench/results/bench_….json   # rewrite the page only
"""

from __future__ import annotations

import argparse
import datetime
import json
import sys
from pathlib import Path

from bench import defaults, doc, end_to_end, server_bench, tcp_floor
from bench.doc import text_table
from bench.results import RESULTS_DIR, environment, format_spread, write_results
from bench.server_bench import BenchError
from chatflow.arguments import whole_number
from chatflow.client.config import LoadTestConfig

SERVER_BENCH_CONNECTIONS = [1, 16, 64, 256]
FLOOR_THREADS = LoadTestConfig.threads

#: (messages, server_bench messages, server_bench warmup, runs) of --quick and of the full run.
QUICK = (30_000, 10_000, 2_000, 1)
FULL = (LoadTestConfig.messages, defaults.MESSAGES, defaults.WARMUP, defaults.RUNS)

#: The Java client against the Java server on this kind of machine, 500,000 messages, two
#: runs, as SPEC §4 gave them when #5 set its targets (SPEC §4 now measures the pairings of
#: both sides in one sitting). (figure, low, high, unit, as written)
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

#: The targets set in #5, beside ChatFlow's figures on the page: (comparison, value, as written).
MB_PER_MIB = 2**20 / 1e6
TARGETS = {
    "overall_msg_s": (">=", 18_500, "≥ 18,500"),
    "server_cpu_us_per_message": ("<=", 40, "≤ 40"),
    "client_cpu_us_per_message": ("<=", 66, "≤ 66"),
    "client_peak_rss_mib": ("<=", 150 / MB_PER_MIB, "≤ 150 MB"),
    "client_process_max_rss_mib": ("<=", 150 / MB_PER_MIB, "≤ 150 MB"),
}
DOC = doc.MEASUREMENTS / "bench.md"

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
    """server_bench's runs at each connection count of the sitting."""
    args = server_bench.build_parser().parse_args([
        "--connections", ",".join(map(str, SERVER_BENCH_CONNECTIONS)), "--messages", str(messages),
        "--warmup", str(warmup), "--runs", str(runs), "--timeout", str(timeout),
    ])
    return server_bench.measure(args, server_bench.server_from(args))


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
        rows.append((f"  {label}", format_spread(spread, digits), format_spread(floor_spread, digits),
                     multiple_text(ratio(spread, floor_spread)), java))

    rows.append((f"end to end: run_client.py → run_server.py, {e2e['messages']:,} messages",))
    for label, figure, digits, floor_figure in END_TO_END_ROWS:
        floor_spread = floor["summary"][floor_figure] if floor_figure else None
        row(label, e2e["summary"][figure], digits, floor_spread, java_text(figure))
    rows.append((f"server_bench: raw-socket load client, {server_results[0]['messages']:,} messages",))
    for result in server_results:
        for label, figure, digits, floor_figure in SERVER_BENCH_ROWS:
            connections = f"{result['connections']} connection{'s' if result['connections'] > 1 else ''}"
            row(f"{connections}, {label}", result["summary"][figure], digits,
                floor_at(result, floor, floor_figure), "-")
    lines = [f"median of {runs} run{'s' if runs > 1 else ''} (min–max); ×floor = ChatFlow's median / the TCP floor's"]
    return "\n".join(lines + text_table(rows))


def multiple_text(multiple: float | None) -> str:
    return "-" if multiple is None else f"{multiple:.2f}×"


def java_text(figure: str) -> str:
    return JAVA_REFERENCE[figure][3] if figure in JAVA_REFERENCE else "-"


def floor_at(result: dict, floor: dict, floor_figure: str) -> dict | None:
    """The floor's figure beside a server_bench row, where both ran the same number of connections."""
    return floor["summary"][floor_figure] if result["connections"] == floor["threads"] else None


def target_cells(figure: str, spread: dict | None) -> tuple[str, str]:
    """The target of #5 for a figure, and whether the median meets it (by how much it misses)."""
    if figure not in TARGETS:
        return "", ""
    comparison, target, text = TARGETS[figure]
    if spread is None:
        return text, "-"
    median = spread["median"]
    met = median >= target if comparison == ">=" else median <= target
    return text, "met" if met else f"missed, {median / target:.2f}×"


def load_averages(report: dict) -> str:
    """The 1-minute load average before the sitting and after each of its runs."""
    runs = [run for result in report["server_bench"] for run in result["runs"]]
    runs += report["tcp_floor"]["runs"] + report["end_to_end"]["runs"]
    after = [run["load_average_after"] for run in runs]
    return (f"Load average (1 minute) {runs[0]['load_average_before']:.1f} before the first run, "
            f"{min(after):.1f}–{max(after):.1f} after each run: the benchmark's own threads raise it, "
            "and other work on the host adds to it.")


def bounds(report: dict) -> list[tuple[str, str]]:
    """docs/performance.md's bound arithmetic on the sitting's end-to-end medians."""
    def median(summary: dict, figure: str) -> float | None:
        spread = summary.get(figure)
        return spread["median"] if spread else None

    e2e, floor = report["end_to_end"]["summary"], report["tcp_floor"]["summary"]
    server, client = median(e2e, "server_cpu_us_per_message"), median(e2e, "client_cpu_us_per_message")
    rate, main_rate = median(e2e, "overall_msg_s"), median(e2e, "main_msg_s")
    mean_ms = median(e2e, "latency_mean_ms")
    floor_cpu = (median(floor, "server_cpu_us_per_message") or 0) + (median(floor, "client_cpu_us_per_message") or 0)
    if not (server and client and rate and main_rate and mean_ms):
        return []
    cores, threads, total = report["environment"]["cpu_count"], LoadTestConfig.threads, server + client
    cpu_bound = cores * 1e6 / total
    return [
        ("both processes: cores × 10⁶ µs ÷ (server + client µs per message)",
         f"{cores} × 10⁶ ÷ ({server:.1f} + {client:.1f}) = {cpu_bound:,.0f} msg/s"),
        ("reached, warmup + main", f"{rate:,.0f} msg/s: {rate / cpu_bound:.0%} of that bound"),
        ("the server alone, one selector thread: 10⁶ ÷ server µs per message", f"{1e6 / server:,.0f} msg/s"),
        ("the TCP floor's share of the CPU per message (server + client)",
         f"{floor_cpu:.1f} of {total:.1f} µs ({floor_cpu / total:.0%})"),
        (f"Little's Law, main phase: W = {threads} threads ÷ λ",
         f"{threads} ÷ {main_rate:,.0f} msg/s = {threads * 1000 / main_rate:.2f} ms; the run's mean latency "
         f"{mean_ms:.2f} ms"),
    ]


def page(report: dict) -> list[str]:
    """docs/measurements/bench.md, from the sitting's JSON."""
    options, e2e, floor = report["options"], report["end_to_end"], report["tcp_floor"]
    runs = options["runs"]
    e2e_rows = []
    for label, figure, digits, floor_figure in END_TO_END_ROWS:
        spread = e2e["summary"][figure]
        floor_spread = floor["summary"][floor_figure] if floor_figure else None
        cell = format_spread(spread, digits)
        if figure == "server_cpu_us_per_message" and spread is not None:
            cell += (f" = {e2e['summary']['server_user_cpu_us_per_message']['median']:.1f} user"
                     f" + {e2e['summary']['server_system_cpu_us_per_message']['median']:.1f} system")
        e2e_rows.append((label.strip(), cell, format_spread(floor_spread, digits),
                         multiple_text(ratio(spread, floor_spread)), java_text(figure),
                         *target_cells(figure, spread)))
    server_rows = []
    for result in report["server_bench"]:
        summary = result["summary"]
        server_rows.append((
            str(result["connections"]),
            format_spread(summary["messages_per_second"], 0),
            format_spread(summary["server_cpu_us_per_message"], 1),
            f"{summary['server_user_cpu_us_per_message']['median']:.1f} + "
            f"{summary['server_system_cpu_us_per_message']['median']:.1f}",
            multiple_text(ratio(summary["server_cpu_us_per_message"],
                                floor_at(result, floor, "server_cpu_us_per_message"))),
            format_spread(summary["client_cpu_us_per_message"], 1),
            format_spread(summary["server_peak_rss_bytes"], 1, scale=1 / 2**20),
        ))
    quick = " (`--quick`: a check that everything runs, not a measurement)" if options["quick"] else ""
    return [
        *doc.header("Benchmarks: the latest figures", "python -m bench",
                    "What bounds each figure, and why: [performance.md](../performance.md); how each is "
                    "measured: [bench/README.md](../../bench/README.md)."),
        f"{doc.measured_on(report['started_at'], report['environment'])} "
        f"{runs} run{'s' if runs > 1 else ''} of each benchmark{quick}, each on a fresh server process: "
        "the median, and the min–max in brackets. " + load_averages(report),
        "",
        "## End to end",
        "",
        f"`run_client.py --server …` against `run_server.py`, two processes on 127.0.0.1, {e2e['messages']:,} "
        f"messages; the TCP floor (`python -m bench.tcp_floor`) carries the same traffic with "
        f"{floor['threads']} threads and no WebSocket or JSON, {floor['messages']:,} messages per run. ×floor is "
        "ChatFlow's median over the floor's.",
        "",
        *doc.table(("figure", "ChatFlow", "TCP floor", "×floor", "Java reference", "target of #5", ""),
                   e2e_rows, "lrrrrrl"),
        "",
        "Java reference: the Java original's figures when #5 set its targets (`JAVA_REFERENCE`), from "
        "another sitting, so not for comparison; the two measured in one sitting, pairing by pairing, are "
        "in [comparison.md](../comparison.md) (`python -m bench.comparison`).",
        "",
        "## What bounds the figures",
        "",
        "The arithmetic of [performance.md](../performance.md#what-bounds-the-throughput), on the medians above.",
        "",
        *doc.table(("bound", "this sitting"), bounds(report), "ll"),
        "",
        "## Server benchmark",
        "",
        f"`python -m bench.server_bench`: the server alone under a raw-socket load client, "
        f"{report['server_bench'][0]['messages']:,} measured messages per run after "
        f"{report['server_bench'][0]['warmup']:,} of warmup.",
        "",
        *doc.table(("connections", "msg/s", "server CPU (µs/msg)", "user + system", "×floor",
                    "load client CPU (µs/msg)", "server peak RSS (MiB)"), server_rows, "rrrrrrr"),
    ]


def default_sitting(report: dict) -> bool:
    """Whether the sitting is the one the page is for: the full run's counts."""
    options = report["options"]
    return (not options["quick"] and (options["messages"], options["server_messages"], options["server_warmup"],
                                      options["runs"]) == FULL)


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
    parser.add_argument("--seed", type=int, default=defaults.SEED,
                        help="the end-to-end client's --seed (default %(default)s)")
    parser.add_argument("--timeout", type=float, default=defaults.END_TO_END_TIMEOUT,
                        help="seconds one run may take (default %(default)s)")
    parser.add_argument("--output-dir", type=Path, default=RESULTS_DIR, help="where the JSON goes (default bench/results)")
    parser.add_argument("--doc", type=Path, metavar="PATH",
                        help=f"the page to write (default: {doc.shown(DOC)} for the default sitting, "
                             "none otherwise)")
    parser.add_argument("--from-results", type=Path, metavar="JSON",
                        help="run nothing: write the page from a past sitting's JSON")
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    if args.from_results:
        report = json.loads(args.from_results.read_text())
    else:
        report = measure(args)
        if report is None:
            return 1
        print(table(report["server_bench"], report["tcp_floor"], report["end_to_end"], report["options"]["runs"]))
        print(f"results: {write_results(report, args.output_dir, 'bench')}")
    page_path = args.doc or (DOC if default_sitting(report) else None)
    if page_path is not None:
        print(f"wrote {doc.shown(doc.write_page(page_path, page(report)))}")
    return 0


def measure(args: argparse.Namespace) -> dict | None:
    """The sitting: every benchmark's runs, as the JSON keeps them; None when a run failed."""
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
        return None
    return {
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


if __name__ == "__main__":
    sys.exit(main())
