"""A run's summary.json read back (the client writes it: docs/client.md#summaryjson).

``load_summary`` checks that a file is one, of a schema this reads, and says plainly what
is wrong when it is not; ``summary_beside`` finds a metrics CSV's own. The analysis puts
its thresholds in the reports (``thresholds_of``) and, when no earlier report holds the
client's phase times, takes the warmup/main boundary from it (``boundary_of``).
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from chatflow.analysis.performance_analyzer import AnalysisError
from chatflow.analysis.report import Threshold, phase_boundary_s
from chatflow.metrics import SUMMARY_SCHEMA, summary_path

#: The keys every summary.json of this schema has.
REQUIRED = ("schema", "command", "configuration", "versions", "totals", "phases", "thresholds", "exit")


def load_summary(path: Path) -> dict[str, Any]:
    """The summary.json at ``path``; AnalysisError with one line when it cannot be read, is
    not JSON, is not a ChatFlow summary, or has a schema newer than this one reads."""
    try:
        text = Path(path).read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise AnalysisError(f"cannot read {path}: {getattr(exc, 'strerror', None) or exc}") from None
    try:
        document = json.loads(text)
    except ValueError as exc:
        raise AnalysisError(f"{path} is not JSON ({exc})") from None
    if not isinstance(document, dict) or not isinstance(document.get("schema"), int):
        raise AnalysisError(f"{path} is not a ChatFlow summary.json (no integer 'schema' key)")
    if document["schema"] > SUMMARY_SCHEMA:
        raise AnalysisError(f"{path} has schema {document['schema']}; this version reads up to {SUMMARY_SCHEMA}")
    missing = [key for key in REQUIRED if key not in document]
    if missing:
        raise AnalysisError(f"{path} is not a ChatFlow summary.json (no {', '.join(repr(k) for k in missing)})")
    return document


def summary_beside(csv: Path) -> dict[str, Any] | None:
    """The summary.json the client wrote beside ``csv``; None when there is none."""
    path = summary_path(Path(csv))
    return load_summary(path) if path.exists() else None


def thresholds_of(records: Sequence[Mapping[str, Any]]) -> list[Threshold]:
    """summary.json's ``thresholds`` as the reports show them: expression, passed, measured."""
    return [(r["expression"], bool(r["passed"]), r["measured_text"]) for r in records]


def boundary_of(summary: Mapping[str, Any]) -> float | None:
    """Where the main phase starts, in s from the first send: the warmup's duration, as
    ``phase_boundary_s`` reads it from the report's figures."""
    durations = {f"{p['name']}_duration_s": p["duration_s"] for p in summary["phases"]}
    return phase_boundary_s({"summary": durations})
