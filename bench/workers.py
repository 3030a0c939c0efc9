"""What ``run_server.py --workers N`` buys: ChatFlow's client against ChatFlow's server with
``--workers 1`` and ``--workers 2``, in interleaved rounds, one sitting.

Each run is measured as ``chatflow-compare`` measures one (the same runner: the server in
its folder, the client under ``wait4``, the figures from the client's CSV; the server's CPU
is its whole process tree's, every worker and the supervisor, during the client's run), so
the figures sit beside docs/comparison.md's. Prints a table and saves JSON under
bench/results/; a run of the default size also writes docs/measurements/workers.md and its
JSON (``--doc PAGE`` writes any run's page there). Why workers are built as they are:
docs/workers.md.

    python -m bench.workers [--workers 1,2] [--rounds 3] [--messages 500000] [--doc PAGE]
    python -m bench.workers --messages 20000 --rounds 1      # a smoke run: no page
    python -m bench.workers --from-results FILE.json         # the page again, from a saved sitting
"""

from __future__ import annotations

import argparse
import datetime
import json
import sys
import tempfile
from pathlib import Path

from bench import doc, results
from bench.processes import SHOWN, failures, interleaved, run_entry, run_line, save_sitting
from chatflow.client.config import LoadTestConfig
from chatflow.compare.commands import python_client_template
from chatflow.compare.pairings import PYTHON, PYTHON_NAME
from chatflow.compare.runner import Experiment, PairingRunner, Sides

COMMAND = "python -m bench.workers"
PAGE = doc.MEASUREMENTS / "workers.md"
SAVED = doc.MEASUREMENTS / "workers.json"
ROUNDS = 3
#: ChatFlow's client against ChatFlow's server (a code of chatflow.compare.pairings).
PYTHON_PAIRING = PYTHON + PYTHON


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog=COMMAND, description=__doc__.splitlines()[0])
    parser.add_argument("--workers", default="1,2", help="the values of the server's --workers (default %(default)s)")
    parser.add_argument("--rounds", type=int, default=ROUNDS)
    parser.add_argument("--messages", type=int, default=LoadTestConfig.messages)
    parser.add_argument("--doc", type=Path, default=None,
                        help="write the page here (default docs/measurements/workers.md, for the default run only)")
    parser.add_argument("--from-results", type=Path, metavar="FILE.json", help="write the page from a saved sitting")
    args = parser.parse_args(argv)
    if args.from_results:
        publish(json.loads(args.from_results.read_text()), args.doc or PAGE)
        return 0
    try:
        counts = [int(n) for n in args.workers.split(",")]
    except ValueError:
        parser.error(f"--workers: not a list of whole numbers: {args.workers!r}")
    if not counts or min(counts) < 1 or args.rounds < 1 or args.messages < 1:
        parser.error("--workers values, --rounds and --messages must each be at least 1")
    d = LoadTestConfig
    experiment = Experiment(args.messages, d.warmup_threads, d.warmup_messages, d.threads)
    client = python_client_template()
    runs: list[dict] = []
    started = datetime.datetime.now().isoformat(timespec="seconds")
    with tempfile.TemporaryDirectory(prefix="chatflow-workers-") as scratch:
        for index, (round_number, n) in enumerate(interleaved(counts, args.rounds), start=1):
            # Only ChatFlow's sides run: the other side's two commands are never used.
            sides = Sides(PYTHON_NAME, client, client, client, python_server_args=("--workers", str(n)))
            entry = PairingRunner(experiment, sides, Path(scratch) / f"w{n}").run(PYTHON_PAIRING, round_number, index)
            run = run_entry(entry, workers=n)
            runs.append(run)
            print(_row(run), flush=True)
    summary = summarise(runs, counts)
    print(format_table(summary))
    report = save_sitting(COMMAND, started, args, runs, summary, "workers")
    if args.doc is not None or (args.messages == LoadTestConfig.messages and args.rounds == ROUNDS):
        publish(report, args.doc or PAGE)
    return 0 if all(run["ok"] for run in runs) else 1


def summarise(runs: list[dict], counts: list[int]) -> list[dict]:
    """Per value of --workers: the median and min–max of each figure."""
    rows = []
    for n in counts:
        mine = [run for run in runs if run["workers"] == n and run["ok"]]
        spread = results.summarise(mine) if mine else {}
        rows.append({"workers": n, "runs": len(mine), **{key: spread.get(key) for key, _, _ in SHOWN}})
    return rows


def cells(row: dict) -> list[str]:
    return [str(row["workers"]), *(results.format_spread(row[key], digits) for key, _, digits in SHOWN)]


def format_table(summary: list[dict]) -> str:
    rows = [["workers", *(label for _, label, _ in SHOWN)], *(cells(row) for row in summary)]
    return "\n".join(["", *doc.text_table(rows)])


def publish(report: dict, page_path: Path) -> None:
    doc.publish(page(report), page_path, report, PAGE, SAVED)


def page(report: dict) -> list[str]:
    lines = doc.header("The server's worker processes: --workers 1 against 2", COMMAND,
                       "How workers are built and why: [workers.md](../workers.md).")
    rounds = report["rounds"]
    lines += [f"{report['messages']:,} messages a run (the client's phases: 32 threads × 1,000 messages of warmup, "
              f"then 64 threads for the rest), {rounds} round{'s' if rounds != 1 else ''}, the values of "
              "`--workers` forward then backward; "
              "ChatFlow's client (its default `--processes`) against ChatFlow's server, each run measured as "
              "`chatflow-compare` measures one (msg/s and latency from the client's CSV, client CPU from wait4, "
              "server CPU from /proc of the server's whole process tree, every worker and the supervisor, "
              "during the client's run). Client and server share the machine's CPUs. Medians, min–max in "
              "brackets. " + doc.measured_on(report["created"], report["environment"]), ""]
    lines += doc.table(["--workers", *(label for _, label, _ in SHOWN)], [cells(row) for row in report["summary"]],
                       "r" * (len(SHOWN) + 1))
    return lines + failures(report["runs"], _row)


def _row(run: dict) -> str:
    return run_line(run, f"--workers {run['workers']}")


if __name__ == "__main__":
    sys.exit(main())
