"""End to end: ChatFlow's client against ChatFlow's server, the experiment as a user runs it.

``python -m bench.end_to_end`` starts ``run_server.py`` as its own process on 127.0.0.1,
then runs ``run_client.py --server 127.0.0.1:PORT --quiet --seed N`` against it in
another process, with the default shape of the experiment: 32 warmup threads of 1,000
messages each, then 64 threads for the rest of 500,000. ``--messages`` scales the run;
the warmup keeps its share (32 threads × messages/500 each), so a small run still has
both phases.

Why the benchmark starts the server and not ``run_client.py --local``: the local server
is stopped inside the client process, before anyone outside can read its peak memory.
Run by the benchmark, the server's CPU time is read from /proc before the client starts
and after it exits (so it also counts the client's 210 probe round trips, below 0.1 % of a
500,000-message run), and its VmHWM and VmRSS after the run.

The client's figures come from its own JSON report (throughput of each phase, its CPU
per message over the phases, its peak RSS when the run ended, latency percentiles);
GNU time (``/usr/bin/time -v``), when installed, adds those of the whole client process:
its CPU per message and its maximum RSS including start-up and the pandas analysis at
the end. Each figure is the median of ``--runs`` runs, with the min–max. A run with a
failed message, a client exit status other than 0, or a timeout stops the benchmark.
Results go to bench/results/end_to_end_<timestamp>.json.
"""

from __future__ import annotations

import argparse
import datetime
import json
import os
import re
import shutil
import signal
import subprocess
import sys
import tempfile
from pathlib import Path

from bench import defaults
from bench.results import REPO_ROOT, RESULTS_DIR, environment, format_spread, summarise, write_results
from bench.server_bench import BenchError, repeat, server_command, server_running
from chatflow.arguments import whole_number
from chatflow.client.config import LoadTestConfig
from chatflow.server.process import ServerProcess, format_tail

GNU_TIME = "/usr/bin/time"
OUTPUT_TAIL_LINES = 25
MIB = 2**20

_TIME_FIGURES = {
    "user_seconds": re.compile(r"User time \(seconds\): ([\d.]+)"),
    "system_seconds": re.compile(r"System time \(seconds\): ([\d.]+)"),
    "max_rss_kib": re.compile(r"Maximum resident set size \(kbytes\): (\d+)"),
}


# -- one run ------------------------------------------------------------------------------------


def warmup_per_thread(messages: int) -> int:
    """The default warmup's share of the run (1,000 of 500,000), at least one message."""
    return max(1, round(LoadTestConfig.warmup_messages * messages / LoadTestConfig.messages))


def client_command(server: str, messages: int, seed: int, output_dir: str) -> list[str]:
    return [sys.executable, "run_client.py", "--server", server, "--quiet",
            "--output-dir", output_dir, "--seed", str(seed), "--messages", str(messages),
            "--warmup-threads", str(LoadTestConfig.warmup_threads),
            "--warmup-messages", str(warmup_per_thread(messages)), "--threads", str(LoadTestConfig.threads)]


def parse_gnu_time(text: str) -> dict[str, float]:
    """The figures of ``time -v`` that the report uses; a missing one is an error, not a zero."""
    figures = {}
    for name, pattern in _TIME_FIGURES.items():
        match = pattern.search(text)
        if match is None:
            raise BenchError(f"no '{pattern.pattern}' in the output of {GNU_TIME} -v")
        figures[name] = float(match.group(1))
    return figures


def run_client(command: list[str], timeout: float, cwd: Path = REPO_ROOT) -> tuple[int, str]:
    """The client's exit status and its output; on a timeout its whole process group is killed."""
    process = subprocess.Popen(command, cwd=cwd, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                               stderr=subprocess.STDOUT, text=True, errors="replace", start_new_session=True)
    try:
        output, _ = process.communicate(timeout=timeout)
    except subprocess.TimeoutExpired:
        os.killpg(process.pid, signal.SIGKILL)
        output, _ = process.communicate()
        raise BenchError(f"the client did not finish within {timeout:g} s{tail(output)}") from None
    return process.returncode, output


def tail(output: str) -> str:
    return format_tail(output.splitlines()[-OUTPUT_TAIL_LINES:])


def run_once(messages: int, seed: int, timeout: float) -> dict:
    """One server process, one client process: every figure of the run."""
    load_before = os.getloadavg()[0]
    with server_running(*server_command(None, echo=False)) as (server, server_port):
        with tempfile.TemporaryDirectory(prefix="chatflow-end-to-end-") as scratch:
            scratch_dir = Path(scratch)
            command = client_command(f"127.0.0.1:{server_port}", messages, seed, scratch)
            time_file = scratch_dir / "time.txt"
            if shutil.which(GNU_TIME):
                command = [GNU_TIME, "-v", "-o", str(time_file), *command]
            cpu_before = server.cpu_seconds()
            status, output = run_client(command, timeout)
            if server.returncode is not None:
                raise BenchError(f"the server exited during the run, status {server.returncode}"
                                 f"{server.stderr_tail()}{tail(output)}")
            cpu_after = server.cpu_seconds()
            memory = {"VmHWM": server.peak_rss_bytes(), "VmRSS": server.rss_bytes()}
            if status != 0:
                raise BenchError(f"the client exited with status {status}{tail(output)}{server.stderr_tail()}")
            reports = list(scratch_dir.glob("*_report.json"))
            if len(reports) != 1:
                raise BenchError(f"expected one *_report.json from the client, found {len(reports)}{tail(output)}")
            report = json.loads(reports[0].read_text())
            whole_process = parse_gnu_time(time_file.read_text()) if time_file.exists() else None
        return figures_of(report, messages, cpu_before, cpu_after, memory, whole_process, server) | {
            "load_average_before": load_before,
            "load_average_after": os.getloadavg()[0],
        }


def figures_of(report: dict, messages: int, cpu_before: tuple[float, float], cpu_after: tuple[float, float],
               memory: dict[str, int], whole_process: dict[str, float] | None, server: ServerProcess) -> dict:
    summary = report["run"]["summary"]
    latency = report["analysis"]["latency_ms"]
    if summary["successful"] != messages or summary["failed"]:
        raise BenchError(f"{summary['successful']:,} of {messages:,} messages succeeded, "
                         f"{summary['failed']:,} failed{server.stderr_tail()}")
    server_user, server_system = (after - before for before, after in zip(cpu_before, cpu_after))
    figures = {
        "messages": messages,
        "warmup_messages": summary.get("warmup_messages", 0),
        "main_messages": summary.get("main_messages", 0),
        "overall_msg_s": summary["overall_throughput_msg_s"],
        "warmup_msg_s": summary.get("warmup_throughput_msg_s"),
        "main_msg_s": summary.get("main_throughput_msg_s"),
        "phases_seconds": summary["phases_time_s"],
        "latency_mean_ms": latency["mean"],
        "latency_p50_ms": latency["median"],
        "latency_p95_ms": latency["p95"],
        "latency_p99_ms": latency["p99"],
        "latency_max_ms": latency["max"],
        "client_cpu_us_per_message": summary["client_cpu_us_per_message"],
        "client_peak_rss_mib": summary["client_peak_rss_mib"],
        "client_process_cpu_us_per_message": None,
        "client_process_system_cpu_us_per_message": None,
        "client_process_max_rss_mib": None,
        "server_cpu_us_per_message": (server_user + server_system) / messages * 1e6,
        "server_user_cpu_us_per_message": server_user / messages * 1e6,
        "server_system_cpu_us_per_message": server_system / messages * 1e6,
        "server_peak_rss_mib": memory["VmHWM"] / MIB,
        "server_rss_after_mib": memory["VmRSS"] / MIB,
    }
    if whole_process is not None:
        figures["client_process_cpu_us_per_message"] = (
            (whole_process["user_seconds"] + whole_process["system_seconds"]) / messages * 1e6)
        figures["client_process_system_cpu_us_per_message"] = whole_process["system_seconds"] / messages * 1e6
        figures["client_process_max_rss_mib"] = whole_process["max_rss_kib"] * 1024 / MIB
    return figures


def measure(messages: int, runs: int, seed: int, timeout: float) -> dict:
    """``runs`` runs, each on a fresh server process: every run's figures and their spread."""
    results = repeat(f"end_to_end: {messages:,} messages", runs, lambda: run_once(messages, seed, timeout),
                     lambda figures: f"{figures['overall_msg_s']:,.0f} msg/s, "
                                     f"server {figures['server_cpu_us_per_message']:.1f} µs/msg, "
                                     f"client {figures['client_cpu_us_per_message']:.1f} µs/msg")
    return {
        "messages": messages,
        "seed": seed,
        "client_command": ["python", *client_command("127.0.0.1:PORT", messages, seed, "SCRATCH")[1:]],
        "gnu_time": shutil.which(GNU_TIME) is not None,
        "runs": results,
        "summary": summarise(results),
    }


# -- command line ---------------------------------------------------------------------------------

#: (label, figure, digits) of the printed table.
FIGURES = [
    ("throughput, warmup + main (msg/s)", "overall_msg_s", 0),
    ("warmup phase (msg/s)", "warmup_msg_s", 0),
    ("main phase (msg/s)", "main_msg_s", 0),
    ("latency mean (ms)", "latency_mean_ms", 2),
    ("latency p50 (ms)", "latency_p50_ms", 2),
    ("latency p95 (ms)", "latency_p95_ms", 2),
    ("latency p99 (ms)", "latency_p99_ms", 2),
    ("latency max (ms)", "latency_max_ms", 1),
    ("server CPU (µs/msg)", "server_cpu_us_per_message", 1),
    ("client CPU, load test (µs/msg)", "client_cpu_us_per_message", 1),
    ("client CPU, whole process (µs/msg)", "client_process_cpu_us_per_message", 1),
    ("  of which system time (µs/msg)", "client_process_system_cpu_us_per_message", 1),
    ("client peak RSS, load test (MiB)", "client_peak_rss_mib", 1),
    ("client max RSS, whole process (MiB)", "client_process_max_rss_mib", 1),
    ("server peak RSS (MiB)", "server_peak_rss_mib", 1),
    ("server RSS after the run (MiB)", "server_rss_after_mib", 1),
]


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python -m bench.end_to_end",
        description="ChatFlow's client against ChatFlow's server, separate processes on 127.0.0.1, "
                    "the default experiment's shape.",
    )
    parser.add_argument("--messages", type=whole_number(1), default=LoadTestConfig.messages,
                        help="messages per run; the warmup keeps its share of 32 × 1,000 in 500,000 "
                             "(default %(default)s)")
    parser.add_argument("--runs", type=whole_number(1), default=defaults.RUNS, help="runs (default %(default)s)")
    parser.add_argument("--seed", type=int, default=defaults.SEED,
                        help="the client's --seed, the same in every run (default %(default)s)")
    parser.add_argument("--timeout", type=float, default=defaults.END_TO_END_TIMEOUT,
                        help="seconds one run may take (default %(default)s)")
    parser.add_argument("--output-dir", type=Path, default=RESULTS_DIR, help="where the JSON goes (default bench/results)")
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    started = datetime.datetime.now(datetime.timezone.utc)
    try:
        end_to_end = measure(args.messages, args.runs, args.seed, args.timeout)
    except BenchError as exc:
        print(f"end_to_end: error: {exc}", file=sys.stderr)
        return 1
    print(f"End to end, {args.messages:,} messages: median of {args.runs} run(s) (min–max)")
    width = max(len(label) for label, _, _ in FIGURES) + 2
    for label, key, digits in FIGURES:
        print(f"  {label:<{width}}{format_spread(end_to_end['summary'][key], digits)}")
    report = {
        "benchmark": "end_to_end",
        "started_at": started.isoformat(),
        "options": {"messages": args.messages, "runs": args.runs, "seed": args.seed, "timeout": args.timeout},
        "environment": environment(),
        "results": end_to_end,
    }
    print(f"results: {write_results(report, args.output_dir, 'end_to_end')}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
