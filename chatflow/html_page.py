"""Self-contained HTML pages: the one skeleton, base style, tables and embedded charts of every
page the project writes (the comparison's ``comparison.html``, the analysis's ``<stem>_report.html``).

Inline CSS, the charts as ``data:`` URIs, no script and no external reference, so a page opens
offline, moves as one file and prints as it shows. Every text is escaped here, where it is
placed, so a caller never has to remember to.
"""

from __future__ import annotations

import base64
from collections.abc import Callable, Collection, Sequence
from html import escape
from pathlib import Path
from typing import Any

BASE_STYLE = """
:root { color-scheme: light; }
body { font: 15px/1.45 system-ui, -apple-system, "Segoe UI", "DejaVu Sans", sans-serif; color: #1d232a;
       max-width: 1320px; margin: 2rem auto; padding: 0 1.25rem; }
h1 { font-size: 1.55rem; margin-bottom: .3rem; }
h2 { font-size: 1.2rem; margin-top: 2rem; border-bottom: 1px solid #d5dbe1; padding-bottom: .2rem; }
h3 { font-size: 1.02rem; margin-top: 1.2rem; }
.summary { color: #4a5561; margin-top: 0; }
table { border-collapse: collapse; margin: .6rem 0; font-variant-numeric: tabular-nums; }
th, td { border: 1px solid #d5dbe1; padding: .28rem .55rem; text-align: right; vertical-align: top; }
td { white-space: nowrap; }
th { background: #f3f5f7; font-weight: 600; }
th.name, td.name { text-align: left; }
tr.failed td { color: #a31515; }
pre { background: #f6f8fa; padding: .6rem .8rem; overflow-x: auto; white-space: pre-wrap; word-break: break-all; }
figure { margin: 1rem 0; }
figure img { max-width: 100%; height: auto; border: 1px solid #e3e7eb; }
figcaption { color: #4a5561; font-size: .92rem; }
.wide { overflow-x: auto; }
@media print {
  body { margin: 0; max-width: none; font-size: 10pt; }
  h2, figure, tr { break-inside: avoid; }
  .wide { overflow: visible; }
}
"""


def text_html(value: Any) -> str:
    """Any value as escaped text."""
    return escape(str(value))


def data_uri(path: Path) -> str:
    """A PNG as a ``data:`` URI, so the page needs no file beside it."""
    return "data:image/png;base64," + base64.b64encode(Path(path).read_bytes()).decode("ascii")


def figure_html(path: Path, alt: str, caption: str) -> str:
    """A chart embedded whole, with its caption."""
    return (f'<figure><img src="{data_uri(path)}" alt="{escape(alt)}">'
            f"<figcaption>{escape(caption)}</figcaption></figure>")


def table_html(header: Sequence[Any], rows: Sequence[Sequence[Any]], names: int = 1,
               failed: Collection[int] = (), cell: Callable[[Any], str] = text_html,
               table_id: str | None = None) -> str:
    """A table: the first ``names`` columns left-aligned names, the rest figures rendered by
    ``cell``; the rows whose indices are in ``failed`` marked; no header row when every header
    cell is empty."""
    def cells(row: Sequence[Any], tag: str) -> str:
        return "".join(f'<{tag} class="name">{text_html(c)}</{tag}>' if i < names else
                       f"<{tag}>{cell(c)}</{tag}>" for i, c in enumerate(row))

    body = "".join(f'<tr class="failed">{cells(row, "td")}</tr>' if i in failed else
                   f"<tr>{cells(row, 'td')}</tr>" for i, row in enumerate(rows))
    head = f"<thead><tr>{cells(header, 'th')}</tr></thead>" if any(header) else ""
    ident = f' id="{escape(table_id)}"' if table_id else ""
    return f'<div class="wide"><table{ident}>{head}<tbody>{body}</tbody></table></div>'


def page(title: str, body: str, style: str = BASE_STYLE) -> str:
    """The whole document: ``title`` as its title and first heading, then ``body`` (HTML)."""
    return ("<!DOCTYPE html>\n"
            '<html lang="en"><head><meta charset="utf-8">'
            '<meta name="viewport" content="width=device-width, initial-scale=1">'
            f"<title>{escape(title)}</title><style>{style}</style></head><body>"
            f"<h1>{escape(title)}</h1>{body}</body></html>\n")
