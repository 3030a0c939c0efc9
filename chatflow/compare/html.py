"""``comparison.html``: the report's :class:`~chatflow.compare.document.Document` as one
self-contained page, on the project's page skeleton (:mod:`chatflow.html_page`).

Inline CSS, the charts as ``data:`` URIs, no script and no external reference, so the file
opens offline, moves as one file and prints as it shows.
"""

from __future__ import annotations

from collections.abc import Mapping
from html import escape
from pathlib import Path

from chatflow.compare.document import Block, Cell, Chart, Code, Document, Items, Table, Text
from chatflow.html_page import BASE_STYLE, figure_html, page, table_html

STYLE = BASE_STYLE + """
.finding { background: #eef5ff; border-left: 4px solid #2f6fc0; padding: .7rem 1rem; font-size: 1.05rem; }
td .range { display: block; color: #5b6773; font-size: .82em; }
ul.failures li { color: #a31515; }
details summary { cursor: pointer; font-weight: 600; margin: .4rem 0; }
details th:last-child { text-align: left; }
details table { font-size: .8rem; }
details td:last-child { white-space: normal; word-break: break-all; min-width: 11rem; text-align: left; }
"""


def cell_html(cell: Text) -> str:
    """A figure's median and mark, its min–max set on its own line; text as it is."""
    if not isinstance(cell, Cell) or not cell.range:
        return escape(str(cell))
    return f'{escape(cell.value)}{escape(cell.mark)}<span class="range">{escape(cell.range)}</span>'


def _block(block: Block, charts: Mapping[str, Path]) -> str:
    if isinstance(block, Table):
        return table_html(block.header, block.rows, names=block.names, failed=block.failed, cell=cell_html)
    if isinstance(block, Code):
        return f"<pre>{escape(chr(10).join(block.lines))}</pre>"
    if isinstance(block, Items):
        return '<ul class="failures">' + "".join(f"<li>{escape(line)}</li>" for line in block.lines) + "</ul>"
    if isinstance(block, Chart):
        if block.name not in charts:
            return ""
        return figure_html(charts[block.name], block.title, block.caption)
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
    return page(doc.title, f"<p class=\"summary\">{escape(doc.summary)}</p>"
                           f'<p class="finding"><strong>Finding.</strong> {escape(doc.finding)}</p>'
                + "".join(parts), STYLE)
