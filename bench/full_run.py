"""Regenerate docs/measurements/full-run/: the report of one full default run, as a reader sees it.

Runs ``run_client.py --local`` with the defaults (500,000 messages, 32 × 1,000 warmup,
64 main threads) and a fixed seed, keeps its console output and its summary.json, and
writes the report (Markdown, JSON, HTML) and charts under stable names, with a README that says which command wrote them. The
metrics CSV itself (about 20 MB) is not kept.

    python -m bench.full_run [--messages N] [--output-dir docs/measurements/full-run]
"""

from __future__ import annotations

import argparse
import dataclasses
import datetime
import json
import subprocess
import sys
import tempfile
from pathlib import Path

from bench import defaults, doc
from bench.results import REPO_ROOT, environment
from chatflow.analysis.cli import write_outputs
from chatflow.analysis.performance_analyzer import PerformanceAnalyzer
from chatflow.client.config import LoadTestConfig

STEM = "full-run"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.full_run", description=__doc__.splitlines()[0])
    parser.add_argument("--messages", type=int, default=LoadTestConfig.messages)
    parser.add_argument("--seed", type=int, default=defaults.SEED)
    parser.add_argument("--output-dir", type=Path, default=doc.MEASUREMENTS / STEM)
    args = parser.parse_args(argv)

    started_at = datetime.datetime.now(datetime.timezone.utc).isoformat()
    with tempfile.TemporaryDirectory() as scratch:
        command = [sys.executable, "run_client.py", "--local", "--quiet", "--seed", str(args.seed),
                   "--messages", str(args.messages), "--output-dir", scratch]
        run = subprocess.run(command, cwd=REPO_ROOT, capture_output=True, text=True)
        print(run.stdout, end="")
        if run.returncode != 0:
            print(run.stderr, file=sys.stderr, end="")
            print(f"the run failed (exit status {run.returncode}); {args.output_dir} left as it was", file=sys.stderr)
            return 1
        scratch_dir = Path(scratch)
        csv = next(scratch_dir.glob("metrics_*.csv"))
        figures = json.loads(next(scratch_dir.glob("metrics_*_report.json")).read_text())
        args.output_dir.mkdir(parents=True, exist_ok=True)
        for old in args.output_dir.glob(f"{STEM}*"):
            old.unlink()
        # The file's name, not its scratch path, is what the report should show.
        analysis = dataclasses.replace(PerformanceAnalyzer().analyze(csv), source=csv.name)
        written = list(write_outputs(analysis, args.output_dir, STEM, run=figures.get("run")))
        summary = args.output_dir / f"{STEM}.summary.json"
        summary.write_text(_without_paths(next(scratch_dir.glob("metrics_*.summary.json")).read_text(), scratch))
        written.append(summary)
        console = args.output_dir / f"{STEM}_console.txt"
        client_command = (f"python run_client.py --local --quiet --seed {args.seed}"
                          f"{'' if args.messages == LoadTestConfig.messages else f' --messages {args.messages}'}")
        console.write_text(f"$ {client_command}\n" + _without_paths(run.stdout, scratch))
        index = doc.write_page(args.output_dir / "README.md", index_page(client_command, started_at, written))
    for path in [*written, console, index]:
        print(f"wrote {doc.shown(path)}")
    return 0


def index_page(client_command: str, started_at: str, written: list[Path]) -> list[str]:
    """The folder's README: which command wrote the files, what run they are of, and each file."""
    return [
        *doc.header("A full default run", "python -m bench.full_run",
                    "What each figure means: [analysis.md](../../analysis.md); what a run does: "
                    "[client.md](../../client.md)."),
        f"`{client_command}`: the client against a local server that it starts on the same machine. "
        + doc.measured_on(started_at, environment()),
        "",
        f"- [{STEM}_console.txt]({STEM}_console.txt): what it printed",
        *(f"- [{path.name}]({path.name})" for path in written),
    ]


def _without_paths(text: str, scratch: str) -> str:
    """The console output with the scratch directory's path taken out."""
    return text.replace(scratch + "/", "").replace(scratch, ".")


if __name__ == "__main__":
    sys.exit(main())
