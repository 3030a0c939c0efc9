"""The measurement pages: their header line, their tables, and how they are written.

Every page under docs/measurements/ is written whole by one benchmark command through
these helpers, so that each says which command wrote it and no page is edited by hand
(docs/performance.md says how to read them). The console tables use ``text_table``.
"""

from __future__ import annotations

import datetime
import json
from collections.abc import Iterable, Sequence
from pathlib import Path

from bench.results import REPO_ROOT

MEASUREMENTS = REPO_ROOT / "docs" / "measurements"


def header(title: str, command: str, about: str) -> list[str]:
    """The page's title, the line that names the command that wrote it, and where its why is."""
    return [f"# {title}", "", f"> Written by `{command}`: regenerate, do not edit. {about}", ""]


def table(head: Sequence[str], rows: Iterable[Sequence[str]], align: str = "") -> list[str]:
    """A Markdown table; ``align`` has one letter per column, ``l`` or ``r`` (default ``l``)."""
    marks = ["---:" if align[i:i + 1] == "r" else "---" for i in range(len(head))]
    lines = [row_line(head), row_line(marks)]
    lines += [row_line(row) for row in rows]
    return lines


def row_line(cells: Sequence[str]) -> str:
    return "| " + " | ".join(escape(cell) for cell in cells) + " |"


def escape(text: str) -> str:
    """A cell's text, safe inside a table row."""
    return str(text).replace("|", "\\|").replace("\n", " ")


def number(value: float | None, digits: int = 0, unit: str = "") -> str:
    """``12,345.6`` (and the unit); ``-`` for a figure that was not measured."""
    return "-" if value is None else f"{value:,.{digits}f}{unit}"


def text_table(rows: Sequence[Sequence[str]]) -> list[str]:
    """Rows aligned for a terminal: the first column to the left, the others to the right;
    a row of one cell is a heading line, printed as it is."""
    columns = max(len(row) for row in rows)
    widths = [max((len(row[i]) for row in rows if len(row) == columns), default=0) for i in range(columns)]
    lines = []
    for row in rows:
        if len(row) < columns:
            lines.append(" ".join(row))
            continue
        cells = [row[0].ljust(widths[0])] + [cell.rjust(width) for cell, width in zip(row[1:], widths[1:])]
        lines.append("  ".join(cells).rstrip())
    return lines


def measured_on(started_at: str, environment: dict) -> str:
    """When and with what the figures were measured, in one sentence."""
    day = datetime.datetime.fromisoformat(started_at).date().isoformat()
    packages = ", ".join(f"{name} {version}" for name, version in environment["packages"].items() if version)
    python = environment["python"].split()[0]
    return (f"Measured on {day} on {environment['cpu_count']} CPUs, {environment['implementation']} {python}; "
            f"{packages}.")


def write_page(path: Path, lines: Sequence[str]) -> Path:
    """The page, written whole (its folder made if need be)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("\n".join(lines).rstrip("\n") + "\n")
    return path


def publish(lines: Sequence[str], path: Path, report: dict, default_page: Path, saved: Path) -> None:
    """A benchmark's page at ``path``; when that is its ``default_page``, the ``report`` it
    is rendered from beside it (``saved``), so that ``--from-results`` can write it again."""
    if path == default_page:
        saved.write_text(json.dumps(report, indent=1) + "\n")
    print(f"wrote {shown(write_page(path, lines))}")


def shown(path: Path) -> str:
    """A path as the console shows it: relative to the repository when it is inside it."""
    path = path.resolve()
    return str(path.relative_to(REPO_ROOT)) if path.is_relative_to(REPO_ROOT) else str(path)
