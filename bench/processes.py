"""How many processes the client should spread its senders over: ``--processes N`` swept,
against ChatFlow's server and the Java original's, in interleaved rounds, one sitting.

Each run is measured as ``chatflow-compare`` measures one (the same runner: the server in
its folder, the client under ``wait4`` with its process tree's memory added up, the
figures from its CSV), so the figures sit beside docs/comparison.md's. Prints a table and
saves JSON under bench/results/; the chosen default and why: docs/client.md#several-processes.

    python -m bench.processes [--java DIR] [--processes 1,2,3,4] [--rounds 2] [--messages 500000]
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
from pathlib import Path

from bench.comparison import JAVA_DEFAULT
from bench.results import RESULTS_DIR, environment, write_results
from chatflow.client.config import LoadTestConfig
from chatflow.compare.commands import PYTHON_CLIENT, CommandTemplate, java_templates, python_client_template
from chatflow.compare.runner import Experiment, PairingRunner, Sides

COMMAND = "python -m bench.processes"
#: The figures of a run shown and summarised, from the runner's entry.
SHOWN = (("msg_s", "msg/s", 0), ("p50_ms", "p50 ms", 2), ("p99_ms", "p99 ms", 1),
         ("client_cpu_us_per_msg", "client µs/msg", 1), ("server_cpu_us_per_msg", "server µs/msg", 1),
         ("client_peak_rss_mib", "client MiB", 0))


def order(values: list[int], round_number: int) -> list[int]:
    """Forward in odd rounds, backward in even ones: no variant always runs first."""
    return values if round_number % 2 else values[::-1]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog=COMMAND, description=__doc__.splitlines()[0])
    parser.add_argument("--java", type=Path, default=JAVA_DEFAULT, metavar="DIR",
                        help="the built Java original (default $JAVA_ORIGINAL or build.sh's folder)")
    parser.add_argument("--processes", default="1,2,3,4", help="the values of --processes (default %(default)s)")
    parser.add_argument("--rounds", type=int, default=2)
    parser.add_argument("--messages", type=int, default=LoadTestConfig.messages)
    args = parser.parse_args(argv)
    counts = [int(n) for n in args.processes.split(",")]
    java_server, _ = java_templates(args.java)
    d = LoadTestConfig
    experiment = Experiment(args.messages, d.warmup_threads, d.warmup_messages, d.threads)
    runs: list[dict] = []
    with tempfile.TemporaryDirectory(prefix="chatflow-processes-") as scratch:
        index = 0
        for round_number in range(1, args.rounds + 1):
            for n in order(counts, round_number):
                client = CommandTemplate(f"{PYTHON_CLIENT} --processes {n}")
                sides = Sides("Java", java_server, client, python_client_template())
                # "o" + server: the other client (here ChatFlow's with --processes n) against
                # ChatFlow's server ("p") and the Java original's ("o").
                for server in ("p", "o"):
                    index += 1
                    entry = PairingRunner(experiment, sides, Path(scratch) / f"n{n}").run("o" + server, round_number,
                                                                                         index)
                    run = {"processes": n, "server": "Python" if server == "p" else "Java",
                           "round": round_number, "ok": entry["ok"], "error": entry["error"],
                           **figures_of(entry["figures"] or {})}
                    runs.append(run)
                    print(_row(run), flush=True)
    summary = summarise(runs, counts)
    print(format_table(summary))
    path = write_results({"command": COMMAND, "messages": args.messages, "rounds": args.rounds, "runs": runs,
                          "summary": summary, "environment": environment()}, RESULTS_DIR, "processes")
    print(f"\nSaved {path}")
    return 0 if all(run["ok"] for run in runs) else 1


def figures_of(figures: dict) -> dict:
    """The SHOWN figures of a runner's ``figures``, latency percentiles flattened."""
    latency = figures.get("latency_ms") or {}
    flat = {**figures, "p50_ms": latency.get("p50"), "p99_ms": latency.get("p99")}
    return {key: flat.get(key) for key, _, _ in SHOWN}


def summarise(runs: list[dict], counts: list[int]) -> list[dict]:
    """Per server and process count: the median and min–max of each figure."""
    rows = []
    for server in ("Python", "Java"):
        for n in counts:
            mine = [r for r in runs if r["server"] == server and r["processes"] == n and r["ok"]]
            row: dict = {"server": server, "processes": n, "runs": len(mine)}
            for key, _, _ in SHOWN:
                values = [r[key] for r in mine if r[key] is not None]
                row[key] = ({"median": statistics.median(values), "min": min(values), "max": max(values)}
                            if values else None)
            rows.append(row)
    return rows


def format_table(summary: list[dict]) -> str:
    head = f"{'server':<8}{'procs':>6}" + "".join(f"{label:>24}" for _, label, _ in SHOWN)
    lines = ["", head]
    for row in summary:
        cells = []
        for key, _, digits in SHOWN:
            s = row[key]
            cells.append("-" if s is None else f"{s['median']:,.{digits}f} ({s['min']:,.{digits}f}–{s['max']:,.{digits}f})")
        lines.append(f"{row['server']:<8}{row['processes']:>6}" + "".join(f"{c:>24}" for c in cells))
    return "\n".join(lines)


def _row(run: dict) -> str:
    figures = "  ".join(f"{label} {run[key]:,.{digits}f}" for key, label, digits in SHOWN if run[key] is not None)
    status = "ok" if run["ok"] else f"FAILED: {run['error']}"
    return f"r{run['round']} --processes {run['processes']} → {run['server']}: {figures}  [{status}]"


if __name__ == "__main__":
    sys.exit(main())
