"""The report's :class:`~chatflow.compare.document.Document` as text: ``comparison.md``
(Markdown, the charts as links beside it) and the console's plain aligned tables."""

from __future__ import annotations

from collections.abc import Mapping, Sequence

from chatflow.compare.document import Chart, Code, Document, Items, Table, Text


def _md_cell(text: Text) -> str:
    return str(text).replace("|", "\\|").replace("\n", " ")


def markdown_table(table: Table) -> list[str]:
    header = [_md_cell(h) or " " for h in table.header]
    return (["| " + " | ".join(header) + " |", "|" + "|".join("---" for _ in header) + "|"]
            + ["| " + " | ".join(_md_cell(c) for c in row) + " |" for row in table.rows] + [""])


def markdown(doc: Document, charts: Mapping[str, str]) -> str:
    """``comparison.md``: ``charts`` maps a chart's name to its file, linked relative to it."""
    lines = [f"# {doc.title}", "", doc.summary, "", f"**Finding.** {doc.finding}", ""]
    for section in doc.sections:
        lines += [f"## {section.title}", ""]
        for block in section.blocks:
            if isinstance(block, Table):
                lines += markdown_table(block)
            elif isinstance(block, Code):
                lines += ["```", *block.lines, "```", ""]
            elif isinstance(block, Chart):
                if block.name in charts:
                    lines += [f"![{block.title}]({charts[block.name]})", "", f"*{block.caption}*", ""]
            elif isinstance(block, Items):
                lines += [f"- {line}" for line in block.lines] + [""]
            else:
                lines += [block, ""]
        if lines[-1]:
            lines.append("")
    return "\n".join(lines).rstrip("\n") + "\n"


def aligned(table: Table) -> list[str]:
    """The name columns left-aligned, the figures right-aligned."""
    texts = [tuple(map(str, row)) for row in (table.header, *table.rows)]
    widths = [max(len(row[i]) for row in texts) for i in range(len(table.header))]

    def line(cells: Sequence[str]) -> str:
        return "  ".join(c.ljust(w) if i < table.names else c.rjust(w)
                         for i, (c, w) in enumerate(zip(cells, widths))).rstrip()

    return [line(texts[0]), "-" * (sum(widths) + 2 * (len(widths) - 1)), *map(line, texts[1:])]


def plain(doc: Document) -> str:
    """The document for a terminal: title and summary, each section after a blank line (its
    title, where it has one, as ``Title:``), the finding last; charts left out."""
    lines = [doc.title, doc.summary]
    for section in doc.sections:
        lines += [""] + ([f"{section.title}:"] if section.title else [])
        for block in section.blocks:
            if isinstance(block, Table):
                lines += aligned(block)
            elif isinstance(block, (Code, Items)):
                lines += [f"  {line}" for line in block.lines]
            elif not isinstance(block, Chart):
                lines.append(block)
    lines += ["", doc.finding]
    return "\n".join(lines)
