"""How many processes the client should spread its senders over: ``--processes N`` swept,
against ChatFlow's server and the Java original's, in interleaved rounds, one sitting.

Each run is measured as ``chatflow-compare`` measures one (the same runner: the server in
its folder, the client under ``wait4`` with its process tree's memory added up, the
figures from its CSV), so the figures sit beside docs/comparison.md's. Prints a table and
saves JSON under bench/results/; a run of the default size also writes
docs/measurements/processes.md and its JSON. The chosen default and why:
docs/client.md#several-processes.

    python -m bench.processes [--java DIR] [--processes 1,2,3,4] [--rounds 2] [--messages 500000]
    python -m bench.processes --from-results FILE.json   # the page again, from a saved sweep
"""

from __future__ import annotations

import argparse
import datetime
import json
import sys
import tempfile
from collections.abc import Callable, Iterator
from pathlib import Path

from bench import doc
from bench.comparison import JAVA_DEFAULT
from bench import results
from bench.results import RESULTS_DIR, environment, write_results
from chatflow.client.config import LoadTestConfig
from chatflow.compare.commands import PYTHON_CLIENT, CommandTemplate, java_templates, python_client_template
from chatflow.compare.runner import Experiment, PairingRunner, Sides

COMMAND = "python -m bench.processes"
PAGE = doc.MEASUREMENTS / "processes.md"
SAVED = doc.MEASUREMENTS / "processes.json"
#: The figures of a run shown and summarised, from the runner's entry.
SHOWN = (("msg_s", "msg/s", 0), ("p50_ms", "p50 ms", 2), ("p99_ms", "p99 ms", 1),
         ("client_cpu_us_per_msg", "client µs/msg", 1), ("server_cpu_us_per_msg", "server µs/msg", 1),
         ("client_peak_rss_mib", "client MiB", 0))


def order(values: list[int], round_number: int) -> list[int]:
    """Forward in odd rounds, backward in even ones: no variant always runs first."""
    return values if round_number % 2 else values[::-1]


def interleaved(values: list[int], rounds: int) -> Iterator[tuple[int, int]]:
    """Each round's number and each value in it, in ``order``."""
    for round_number in range(1, rounds + 1):
        for value in order(values, round_number):
            yield round_number, value


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog=COMMAND, description=__doc__.splitlines()[0])
    parser.add_argument("--java", type=Path, default=JAVA_DEFAULT, metavar="DIR",
                        help="the built Java original (default $JAVA_ORIGINAL or build.sh's folder)")
    parser.add_argument("--processes", default="1,2,3,4", help="the values of --processes (default %(default)s)")
    parser.add_argument("--rounds", type=int, default=2)
    parser.add_argument("--messages", type=int, default=LoadTestConfig.messages)
    parser.add_argument("--from-results", type=Path, metavar="FILE.json", help="write the page from a saved sweep")
    args = parser.parse_args(argv)
    if args.from_results:
        report = json.loads(args.from_results.read_text())
        publish(report)
        return 0
    counts = [int(n) for n in args.processes.split(",")]
    java_server, _ = java_templates(args.java)
    d = LoadTestConfig
    experiment = Experiment(args.messages, d.warmup_threads, d.warmup_messages, d.threads)
    runs: list[dict] = []
    started = datetime.datetime.now().isoformat(timespec="seconds")
    with tempfile.TemporaryDirectory(prefix="chatflow-processes-") as scratch:
        index = 0
        for round_number, n in interleaved(counts, args.rounds):
            client = CommandTemplate(f"{PYTHON_CLIENT} --processes {n}")
            sides = Sides("Java", java_server, client, python_client_template())
            # "o" + server: the other client (here ChatFlow's with --processes n) against
            # ChatFlow's server ("p") and the Java original's ("o").
            for server in ("p", "o"):
                index += 1
                entry = PairingRunner(experiment, sides, Path(scratch) / f"n{n}").run("o" + server, round_number, index)
                run = run_entry(entry, processes=n, server="Python" if server == "p" else "Java")
                runs.append(run)
                print(_row(run), flush=True)
    summary = summarise(runs, counts)
    print(format_table(summary))
    report = save_sitting(COMMAND, started, args, runs, summary, "processes")
    if args.messages == LoadTestConfig.messages:
        publish(report)
    return 0 if all(run["ok"] for run in runs) else 1


def run_entry(entry: dict, **labels: object) -> dict:
    """A run of the sitting: what it ran (``labels``), its round, ok or why not, its SHOWN figures."""
    return {**labels, "round": entry["round"], "ok": entry["ok"], "error": entry["error"],
            **figures_of(entry["figures"] or {})}


def save_sitting(command: str, started: str, args: argparse.Namespace, runs: list[dict], summary: list[dict],
                 name: str) -> dict:
    """The sitting's report (its runs, their summary, the machine), saved under bench/results/."""
    report = {"command": command, "created": started, "messages": args.messages, "rounds": args.rounds,
              "runs": runs, "summary": summary, "environment": environment()}
    path = write_results(report, RESULTS_DIR, name)
    print(f"\nSaved {path}")
    return report


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
            spread = results.summarise(mine) if mine else {}
            rows.append({"server": server, "processes": n, "runs": len(mine),
                         **{key: spread.get(key) for key, _, _ in SHOWN}})
    return rows


def format_table(summary: list[dict]) -> str:
    rows = [["server", "procs", *(label for _, label, _ in SHOWN)]]
    rows += [[row["server"], str(row["processes"]), *(results.format_spread(row[key], digits)
                                                      for key, _, digits in SHOWN)]
             for row in summary]
    return "\n".join(["", *doc.text_table(rows)])


def publish(report: dict) -> None:
    """docs/measurements/processes.md and the JSON it is rendered from."""
    SAVED.write_text(json.dumps(report, indent=1) + "\n")
    print(f"wrote {doc.shown(doc.write_page(PAGE, page(report)))}")


def page(report: dict) -> list[str]:
    lines = doc.header("The client's processes: --processes swept", COMMAND,
                       "Why the default is what it is: [client.md](../client.md#several-processes).")
    lines += [f"{report['messages']:,} messages a run (the default experiment: 32 × 1,000 warmup, then 64 "
              f"threads), {report['rounds']} rounds, the values of `--processes` forward then backward, each "
              "against ChatFlow's server and the Java original's; each run measured as `chatflow-compare` "
              "measures one (msg/s and latency from the client's CSV, client CPU from wait4, client memory "
              "the peak sum over its process tree, server CPU from /proc). Medians, min–max in brackets. "
              + doc.measured_on(report.get("created") or datetime.datetime.now().isoformat(), report["environment"]),
              ""]
    rows = []
    for row in report["summary"]:
        cells = [row["server"], str(row["processes"]),
                 *(results.format_spread(row[key], digits) for key, _, digits in SHOWN)]
        rows.append(cells)
    lines += doc.table(["server", "--processes", *(label for _, label, _ in SHOWN)], rows, "lr" + "r" * len(SHOWN))
    return lines + failures(report["runs"], _row)


def _row(run: dict) -> str:
    return run_line(run, f"--processes {run['processes']} → {run['server']}")


def run_line(run: dict, what: str) -> str:
    """A run in one line, as the console and a page's failures show it: its round, ``what``
    ran, its figures, ok or why not."""
    figures = "  ".join(f"{label} {run[key]:,.{digits}f}" for key, label, digits in SHOWN if run[key] is not None)
    status = "ok" if run["ok"] else f"FAILED: {run['error']}"
    return f"r{run['round']} {what}: {figures}  [{status}]"


def failures(runs: list[dict], line: Callable[[dict], str]) -> list[str]:
    """A page's list of the runs that failed, each as ``line`` shows it; nothing when none did."""
    failed = [run for run in runs if not run["ok"]]
    return ["", "Failed runs:", "", *(f"- {line(run)}" for run in failed)] if failed else []


if __name__ == "__main__":
    sys.exit(main())
