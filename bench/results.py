"""Where the benchmarks keep their figures: one new JSON file per run."""

from __future__ import annotations

import argparse
import datetime
import json
import os
import platform
import statistics
import subprocess
import sys
from pathlib import Path

from chatflow.compare.machine import package_version
from tests.support.processes import REPO_ROOT  # the checkout: the benchmarks read it from here

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


def add_client_bench_options(parser: argparse.ArgumentParser, timeout: float) -> None:
    """What the benchmarks of the client's own cost share: other checkouts' clients to run
    beside this one's, the time a run may take, where the JSON goes."""
    parser.add_argument("--client-tree", type=Path, action="append", default=[], metavar="DIR",
                        help="also run the client of this checkout, unchanged, interleaved "
                             "(named after its folder)")
    parser.add_argument("--timeout", type=float, default=timeout, help="seconds one run may take (default %(default)s)")
    parser.add_argument("--output-dir", type=Path, default=RESULTS_DIR, help="where the JSON goes (default bench/results)")


def add_page_options(parser: argparse.ArgumentParser, *, messages: int, rounds: int) -> None:
    """What a benchmark that writes a measurement page takes: its size, its rounds, where
    the page goes (its default run writes its own page), and a saved run to rewrite it from."""
    from chatflow.arguments import whole_number

    parser.add_argument("--messages", type=whole_number(1000), default=messages, help="(default %(default)s)")
    parser.add_argument("--rounds", type=whole_number(1), default=rounds, help="(default %(default)s)")
    parser.add_argument("--doc", type=Path, help="write the page here")
    parser.add_argument("--from-results", type=Path, metavar="JSON", help="rewrite the page from a run's JSON")


def environment() -> dict:
    """What the figures were measured on and with."""
    return {
        "python": sys.version, "implementation": platform.python_implementation(),
        "platform": platform.platform(), "cpu_count": os.cpu_count(),
        "packages": package_versions(), "git_commit": git_commit(),
    }


def package_versions() -> dict[str, str | None]:
    return {name: package_version(name) for name in ("chatflow", "websockets", "websocket-client", "orjson")}


def git_commit() -> str | None:
    try:
        result = subprocess.run(["git", "rev-parse", "HEAD"], cwd=REPO_ROOT, capture_output=True, text=True, timeout=10)
    except (OSError, subprocess.TimeoutExpired):
        return None
    return result.stdout.strip() or None


def summarise(runs: list[dict]) -> dict:
    """Median, min and max of every numeric figure the runs have (a figure missing from all is None)."""
    names = [name for name, value in runs[0].items() if value is None or type(value) in (int, float)]
    spread = {}
    for name in names:
        values = [run[name] for run in runs if run.get(name) is not None]
        spread[name] = ({"median": statistics.median(values), "min": min(values), "max": max(values)}
                        if values else None)
    return spread


def format_spread(spread: dict | None, digits: int, scale: float = 1.0) -> str:
    """``median (min–max)``; the median alone when the runs agree or there was one."""
    if spread is None:
        return "-"
    median, low, high = (spread[key] * scale for key in ("median", "min", "max"))
    text = f"{median:,.{digits}f}"
    if f"{low:,.{digits}f}" != f"{high:,.{digits}f}":
        text += f" ({low:,.{digits}f}–{high:,.{digits}f})"
    return text
