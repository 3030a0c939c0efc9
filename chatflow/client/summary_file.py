"""summary.json: a run's figures for CI jobs and graders, who read it instead of the console.

Written beside the metrics CSV for every run (``chatflow.metrics.summary_path``), also one
that could not connect or was interrupted; its keys are listed in
docs/client.md#summaryjson. The figures are ``chatflow.client.figures``' structure, the
one the console summary is written from; around them the command, the configuration,
the versions, the thresholds' verdicts and the exit status. ``chatflow.analysis`` reads it
back (``chatflow.analysis.summary_file``).
"""

from __future__ import annotations

import dataclasses
import json
import math
import platform
import shlex
from collections.abc import Sequence
from importlib import metadata
from pathlib import Path
from typing import Any

from chatflow.client.config import LoadTestConfig
from chatflow.client.figures import Figures
from chatflow.client.summary import Outcome
from chatflow.client.thresholds import Verdict, verdict_figures
from chatflow.metrics import SUMMARY_SCHEMA

#: The distributions whose versions a summary records (with Python's and the platform).
DISTRIBUTIONS = ("chatflow", "websockets", "websocket-client", "orjson")


def versions() -> dict[str, str | None]:
    """The versions the run ran with; None for a distribution not installed."""
    found: dict[str, str | None] = {}
    for name in DISTRIBUTIONS:
        try:
            found[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            found[name] = None
    return {**found, "python": platform.python_version(), "platform": platform.platform()}


def configuration(config: LoadTestConfig) -> dict[str, Any]:
    """Every field of the run's configuration, as JSON has them (a path as its text)."""
    return {key: str(value) if isinstance(value, Path) else value for key, value in dataclasses.asdict(config).items()}


def summary_document(figures: Figures, *, argv: Sequence[str], config: LoadTestConfig, verdicts: Sequence[Verdict],
                     outcome: Outcome, metrics_csv: Path, metrics_rows: int, metrics_error: str | None) -> dict:
    """summary.json's content, its keys in a stable order."""
    return {
        "schema": SUMMARY_SCHEMA,
        "command": {"argv": list(argv), "line": shlex.join(argv)},
        "configuration": configuration(config),
        "versions": versions(),
        "metrics_csv": {"path": str(metrics_csv), "rows": metrics_rows, "error": metrics_error},
        **figures,
        "thresholds": [verdict_figures(v) for v in verdicts],
        "exit": {"status": outcome.status, "name": outcome.name, "reason": outcome.reason},
    }


def write_summary(path: Path, document: dict) -> Path:
    """The document as strict JSON (an infinite figure as null), UTF-8, one key a line."""
    path.write_text(json.dumps(_finite(document), indent=2, ensure_ascii=False, allow_nan=False) + "\n",
                    encoding="utf-8")
    return path


def _finite(value: Any) -> Any:
    if isinstance(value, float):
        return value if math.isfinite(value) else None
    if isinstance(value, dict):
        return {key: _finite(item) for key, item in value.items()}
    if isinstance(value, (list, tuple)):
        return [_finite(item) for item in value]
    return value
