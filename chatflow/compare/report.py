"""The comparison's report, made from comparison.json alone (a stand-in: a Markdown table
and a few console lines)."""

from __future__ import annotations

from pathlib import Path
from typing import Any


def _rows(data: dict[str, Any]) -> list[str]:
    rows = []
    for code, summary in data["pairings"].items():
        median = summary["median"]
        cells = [median.get(key) for key in ("msg_s", "p99_ms", "server_cpu_us_per_msg", "client_cpu_us_per_msg")]
        rows.append(f"| {data['codes'][code]['label']} | "
                    + " | ".join("–" if value is None else f"{value:,.1f}" for value in cells) + " |")
    return rows


def write_reports(data: dict[str, Any], directory: Path) -> list[Path]:
    """comparison.md in ``directory``; the paths written."""
    path = Path(directory) / "comparison.md"
    header = ["| client → server | msg/s | p99 ms | server µs/msg | client µs/msg |", "|---|---|---|---|---|"]
    path.write_text("# Comparison\n\n" + "\n".join(header + _rows(data)) + "\n")
    return [path]


def console(data: dict[str, Any]) -> str:
    """The medians, then the three ratios of msg/s."""
    lines = _rows(data)
    for name, ratio in data["ratios"].items():
        median = ratio["msg_s"]["median"]
        lines.append(f"{name}: msg/s {ratio['numerator']}/{ratio['denominator']} = "
                     + ("–" if median is None else f"{median:.2f}×"))
    return "\n".join(lines)
