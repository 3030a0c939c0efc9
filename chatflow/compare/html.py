"""``comparison.html``: the report's :class:`~chatflow.compare.document.Document` as one
self-contained page.

Inline CSS, the charts as ``data:`` URIs, no script and no external reference, so the file
opens offline, moves as one file and prints as it shows.
"""

from __future__ import annotations

import base64
from collections.abc import Mapping, Sequence
from html import escape
from pathlib import Path

from chatflow.compare.document import Block, Cell, Chart, Code, Document, Items, Table, Text

STYLE = """
:root { color-scheme: light; }
body { font: 15px/1.45 system-ui, -apple-system, "Segoe UI", "DejaVu Sans", sans-serif; color: #1d232a;
       max-width: 1320px; margin: 2rem auto; padding: 0 1.25rem; }
h1 { font-size: 1.55rem; margin-bottom: .3rem; }
h2 { font-size: 1.2rem; margin-top: 2rem; border-bottom: 1px solid #d5dbe1; padding-bottom: .2rem; }
.summary { color: #4a5561; margin-top: 0; }
.finding { background: #eef5ff; border-left: 4px solid #2f6fc0; padding: .7rem 1rem; font-size: 1.05rem; }
table { border-collapse: collapse; margin: .6rem 0; font-variant-numeric: tabular-nums; }
th, td { border: 1px solid #d5dbe1; padding: .28rem .55rem; text-align: right; vertical-align: top; }
td { white-space: nowrap; }
th { background: #f3f5f7; font-weight: 600; }
th.name, td.name { text-align: left; }
td .range { display: block; color: #5b6773; font-size: .82em; }
tr.failed td { color: #a31515; }
pre { background: #f6f8fa; padding: .6rem .8rem; overflow-x: auto; white-space: pre-wrap; word-break: break-all; }
figure { margin: 1rem 0; }
figure img { max-width: 100%; height: auto; border: 1px solid #e3e7eb; }
figcaption { color: #4a5561; font-size: .92rem; }
ul.failures li { color: #a31515; }
details summary { cursor: pointer; font-weight: 600; margin: .4rem 0; }
details th:last-child { text-align: left; }
.wide { overflow-x: auto; }
details table { font-size: .8rem; }
details td:last-child { white-space: normal; word-break: break-all; min-width: 11rem; text-align: left; }
@media print {
  body { margin: 0; max-width: none; font-size: 10pt; }
  h2, figure, tr { break-inside: avoid; }
  .wide { overflow: visible; }
}
"""


def data_uri(path: Path) -> str:
    """A PNG as a ``data:`` URI, so the page needs no file beside it."""
    return "data:image/png;base64," + base64.b64encode(Path(path).read_bytes()).decode("ascii")


def cell_html(cell: Text) -> str:
    """A figure's median and mark, its min–max set on its own line; text as it is."""
    if not isinstance(cell, Cell) or not cell.range:
        return escape(str(cell))
    return f'{escape(cell.value)}{escape(cell.mark)}<span class="range">{escape(cell.range)}</span>'


def table_html(table: Table) -> str:
    def cells(row: Sequence[Text], tag: str) -> str:
        return "".join(f'<{tag} class="name">{escape(str(c))}</{tag}>' if i < table.names else
                       f"<{tag}>{cell_html(c)}</{tag}>" for i, c in enumerate(row))

    rows = "".join(f'<tr class="failed">{cells(row, "td")}</tr>' if i in table.failed else
                   f"<tr>{cells(row, 'td')}</tr>" for i, row in enumerate(table.rows))
    header = f"<thead><tr>{cells(table.header, 'th')}</tr></thead>" if any(table.header) else ""
    return f'<div class="wide"><table>{header}<tbody>{rows}</tbody></table></div>'


def _block(block: Block, charts: Mapping[str, Path]) -> str:
    if isinstance(block, Table):
        return table_html(block)
    if isinstance(block, Code):
        return f"<pre>{escape(chr(10).join(block.lines))}</pre>"
    if isinstance(block, Items):
        return '<ul class="failures">' + "".join(f"<li>{escape(line)}</li>" for line in block.lines) + "</ul>"
    if isinstance(block, Chart):
        if block.name not in charts:
            return ""
        return (f'<figure><img src="{data_uri(charts[block.name])}" alt="{escape(block.title)}">'
                f"<figcaption>{escape(block.caption)}</figcaption></figure>")
    return f"<p>{escape(block)}</p>"


def render(doc: Document, charts: Mapping[str, Path]) -> str:
    """The whole page; ``charts`` maps a chart's name to its PNG, embedded."""
    parts = []
    for section in doc.sections:
        body = "".join(_block(block, charts) for block in section.blocks)
        if section.folded:
            rows = sum(len(b.rows) for b in section.blocks if isinstance(b, Table))
            parts.append(f"<h2>{escape(section.title)}</h2><details><summary>{rows} rows: open to show</summary>"
                         f"{body}</details>")
        else:
            parts.append(f"<h2>{escape(section.title)}</h2>{body}")
    return ("<!DOCTYPE html>\n"
            '<html lang="en"><head><meta charset="utf-8">'
            '<meta name="viewport" content="width=device-width, initial-scale=1">'
            f"<title>{escape(doc.title)}</title><style>{STYLE}</style></head><body>"
            f"<h1>{escape(doc.title)}</h1><p class=\"summary\">{escape(doc.summary)}</p>"
            f'<p class="finding"><strong>Finding.</strong> {escape(doc.finding)}</p>'
            + "".join(parts) + "</body></html>\n")
