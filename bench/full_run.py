"""Regenerate docs/full-run/: the report of one full default run, as a reader sees it.

Runs ``run_client.py --local`` with the defaults (500,000 messages, 32 × 1,000 warmup,
64 main threads) and a fixed seed, keeps its console output, and writes the report and
charts under stable names. The metrics CSV itself (about 20 MB) is not kept.

    python -m bench.full_run [--messages N] [--output-dir docs/full-run]
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import subprocess
import sys
import tempfile
from pathlib import Path

from chatflow.analysis.cli import write_outputs
from chatflow.analysis.performance_analyzer import PerformanceAnalyzer
from chatflow.client.config import LoadTestConfig

REPO = Path(__file__).resolve().parents[1]
STEM = "full-run"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.full_run", description=__doc__.splitlines()[0])
    parser.add_argument("--messages", type=int, default=LoadTestConfig.messages)
    parser.add_argument("--seed", type=int, default=42)
    parser.add_argument("--output-dir", type=Path, default=REPO / "docs" / STEM)
    args = parser.parse_args(argv)

    with tempfile.TemporaryDirectory() as scratch:
        command = [sys.executable, "run_client.py", "--local", "--quiet", "--seed", str(args.seed),
                   "--messages", str(args.messages), "--output-dir", scratch]
        run = subprocess.run(command, cwd=REPO, capture_output=True, text=True)
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
        written = write_outputs(analysis, args.output_dir, STEM, run=figures.get("run"))
        console = args.output_dir / f"{STEM}_console.txt"
        console.write_text(f"$ python run_client.py --local --quiet --seed {args.seed}"
                           f"{'' if args.messages == LoadTestConfig.messages else f' --messages {args.messages}'}\n"
                           + _without_paths(run.stdout, scratch))
    for path in [*written, console]:
        print(f"wrote {path.relative_to(REPO) if path.is_relative_to(REPO) else path}")
    return 0


def _without_paths(text: str, scratch: str) -> str:
    """The console output with the scratch directory's path taken out."""
    return text.replace(scratch + "/", "").replace(scratch, ".")


if __name__ == "__main__":
    sys.exit(main())
