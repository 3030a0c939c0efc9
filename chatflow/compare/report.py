"""The comparison's report, made from ``comparison.json`` alone: the console table, and
``comparison.md`` and ``comparison.html`` with their charts.

The content is built here once from :mod:`~chatflow.compare.document`'s tables and
:mod:`~chatflow.compare.finding`'s finding; :mod:`~chatflow.compare.markdown`,
:mod:`~chatflow.compare.html` and the console render it. The schema is docs/comparison.md's.
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any

from chatflow.compare import document
from chatflow.compare.document import CHARTS, Block, Chart, Code, Document, Items, Section
from chatflow.compare.finding import finding_of
from chatflow.compare.markdown import markdown, plain


def document_of(data: Mapping[str, Any]) -> Document:
    """The report's content, for every renderer."""
    other = (data.get("names") or {}).get("other", "other")
    pairings: list[Block] = [document.pairing_table(data)]
    note = document.whole_ms_note(data)
    pairings += [note] if note else []
    pairings.append("Medians over the rounds with min–max; msg/s = successful rows ÷ span of send timestamps, "
                    "the same yardstick for every client.")
    sections = [
        Section("Pairings", tuple(pairings)),
        Section("Ratios", (document.ratio_table(data), f"Each ratio per round (that round's numerator run ÷ its "
                           f"denominator run), then the median and min–max over the rounds where both ran. "
                           f"Server: {other}'s client held fixed; client: {other}'s server held fixed.")),
    ]
    failed = document.failures(data)
    if failed:
        sections.append(Section("Failures", (Items(tuple(failed)),)))
    sections.append(Section("Charts", (
        Chart("throughput", CHARTS["throughput"][1],
              "Successful messages per second, bucket by bucket: each pairing's median-msg/s round bold, "
              "its other rounds faint; each run's last, partial bucket left out."),
        Chart("latency", CHARTS["latency"][1],
              "Latency CDF of each pairing's median-msg/s round, log x (0 ms points are off the axis)."),
        Chart("bars", CHARTS["bars"][1], "Medians with min–max error bars over the rounds."),
    )))
    sections += [
        Section("Settings", (document.pairs(data.get("settings")), "Run order: " + " ".join(data.get("order") or []))),
        Section("Machine", (document.pairs(data.get("machine")),)),
        Section("Versions", (document.pairs(data.get("versions")),)),
        Section("Commands", (Code(tuple(f"{k}: {v}" for k, v in (data.get("commands") or {}).items())),)),
        Section("Every run", (document.run_table(data),), folded=True),
    ]
    return Document(document.title(data), document.summary(data), finding_of(data), tuple(sections))


def console(data: Mapping[str, Any]) -> str:
    """The table printed at the end of a comparison: pairings (min–max on msg/s), the three
    ratios, failures, and the finding last."""
    note = document.whole_ms_note(data)
    sections = [Section("", (document.pairing_table(data, ranged=False), *([note] if note else []))),
                Section("", (document.ratio_table(data),))]
    failed = document.failures(data)
    if failed:
        sections.append(Section("Failed runs", (Items(tuple(failed)),)))
    return plain(Document(document.title(data), document.summary(data), finding_of(data), tuple(sections)))


def write_reports(data: Mapping[str, Any], directory: Path) -> list[Path]:
    """Write the charts, ``comparison.md`` and ``comparison.html`` into ``directory``; return
    their paths (the Markdown, the HTML, then the charts)."""
    from chatflow.compare import charts, html  # matplotlib only when files are written

    directory = Path(directory)
    directory.mkdir(parents=True, exist_ok=True)
    drawn = charts.write_charts(data, directory, {name: file for name, (file, _) in CHARTS.items()})
    doc = document_of(data)
    md_path = directory / "comparison.md"
    md_path.write_text(markdown(doc, {name: path.name for name, path in drawn.items()}), encoding="utf-8")
    html_path = directory / "comparison.html"
    html_path.write_text(html.render(doc, drawn), encoding="utf-8")
    return [md_path, html_path, *drawn.values()]
