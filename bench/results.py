"""Where the benchmarks keep their figures: one new JSON file per run."""

from __future__ import annotations

import datetime
import json
from pathlib import Path

RESULTS_DIR = Path(__file__).resolve().parent / "results"


def write_results(report: dict, directory: Path, name: str) -> Path:
    """``<name>_<time>.json`` in ``directory``, never overwriting one (names carry microseconds)."""
    directory.mkdir(parents=True, exist_ok=True)
    stamp = datetime.datetime.now().strftime("%Y%m%d-%H%M%S-%f")
    path = directory / f"{name}_{stamp}.json"
    with open(path, "x") as out:
        json.dump(report, out, indent=2)
        out.write("\n")
    return path
