"""The comparison's report, made from ``comparison.json`` alone: the console table, the finding,
``comparison.md`` and ``comparison.html`` with their charts.

The content is built once, as plain sections of paragraphs, tables and charts
(:func:`document`); Markdown, HTML (:mod:`chatflow.compare.html`) and the console each render
it, so the three never disagree. The schema is docs/comparison.md's.
"""

from __future__ import annotations

import math
import statistics
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Union

from chatflow.compare.aggregate import RATIOS

#: The figure's text where it was not measured or its run failed.
NA = "n/a"
#: The pairings' order in every table and chart: the baseline (other → other) first, then
#: each side swapped for Python's, then Python → Python.
CODE_ORDER = ("oo", "op", "po", "pp")
#: Each ratio's numerator over its denominator, should a JSON leave a ratio out.
RATIO_CODES = {side: (numerator, denominator) for side, (numerator, denominator, _) in RATIOS.items()}
#: A side whose msg/s ratio's median is within this of 1 is "about the same".
TOLERANCE = 0.05
#: The ratios' figures, in order, each with its column title.
RATIO_FIGURES = {"msg_s": "msg/s", "server_cpu_us_per_msg": "server CPU µs/msg",
                 "client_cpu_us_per_msg": "client CPU µs/msg"}
#: The chart files, named in the output directory, each with its title.
CHARTS = {
    "throughput": ("comparison_throughput.png", "Throughput over time"),
    "latency": ("comparison_latency_cdf.png", "Latency CDF"),
    "bars": ("comparison_bars.png", "msg/s and CPU per message"),
}
WHOLE_MS_MARK = "†"


# -- the content, as data ---------------------------------------------------------------


@dataclass(frozen=True)
class Table:
    header: tuple[str, ...]
    rows: tuple[tuple[str, ...], ...]
    #: The rows' indices that stand for a failure, for the renderers to mark.
    failed: frozenset[int] = frozenset()
    #: How many leading columns are names (left-aligned), not figures.
    names: int = 1


@dataclass(frozen=True)
class Code:
    """Literal lines (the commands), shown as they are."""
    lines: tuple[str, ...]


@dataclass(frozen=True)
class Items:
    """A list of one-line entries (the failures)."""
    lines: tuple[str, ...]


@dataclass(frozen=True)
class Chart:
    name: str
    title: str
    caption: str


Block = Union[str, Table, Code, Items, Chart]


@dataclass(frozen=True)
class Section:
    title: str
    blocks: tuple[Block, ...]
    #: Long detail (every run): folded in HTML, a plain section elsewhere.
    folded: bool = False


@dataclass(frozen=True)
class Document:
    title: str
    summary: str
    finding: str
    sections: tuple[Section, ...] = field(default_factory=tuple)


# -- formatting --------------------------------------------------------------------------


def number(value: float | None, digits: int | None = None) -> str:
    """A figure with as many decimals as its size needs (13,850; 36.9; 2.41), or n/a."""
    if value is None or (isinstance(value, float) and not math.isfinite(value)):
        return NA
    if digits is None:
        digits = 0 if abs(value) >= 100 else 1 if abs(value) >= 10 else 2
    return f"{value:,.{digits}f}"


def ratio_text(figure: Mapping[str, float | None] | None) -> str:
    """``0.82× (0.74–0.94)``: the median of the per-round ratios and their range."""
    if not figure or figure.get("median") is None:
        return NA
    text = f"{figure['median']:.2f}×"
    low, high = figure.get("min"), figure.get("max")
    if low is not None and high is not None and (f"{low:.2f}" != text[:-1] or f"{high:.2f}" != text[:-1]):
        text += f" ({low:.2f}–{high:.2f})"
    return text


def spread(pairing: Mapping[str, Any] | None, key: str, digits: int | None = None, ranged: bool = True) -> str:
    """A pairing's median over its rounds, with min–max where they differ."""
    median, low, high = (((pairing or {}).get(part) or {}).get(key) for part in ("median", "min", "max"))
    text = number(median, digits)
    if ranged and median is not None and low is not None and high is not None:
        low_text, high_text = number(low, digits), number(high, digits)
        if low_text != high_text:
            text += f" ({low_text}–{high_text})"
    return text


# -- reading the JSON ----------------------------------------------------------------------


def codes_of(data: Mapping[str, Any]) -> list[str]:
    """The pairings of this comparison, in the tables' order."""
    present = data.get("codes") or {}
    return [c for c in CODE_ORDER if c in present] + [c for c in present if c not in CODE_ORDER]


def label(data: Mapping[str, Any], code: str) -> str:
    """``Python → Java``: the JSON's label, else made from the names for a code not run."""
    given = ((data.get("codes") or {}).get(code) or {}).get("label")
    if given:
        return given
    names = data.get("names") or {}
    sides = {"p": names.get("python", "Python"), "o": names.get("other", "other")}
    return " → ".join(sides.get(side, side) for side in code) if len(code) == 2 else code


def runs_of(data: Mapping[str, Any], code: str) -> list[Mapping[str, Any]]:
    return [run for run in data.get("runs") or [] if run.get("code") == code]


def ok_runs(data: Mapping[str, Any], code: str) -> list[Mapping[str, Any]]:
    return [run for run in runs_of(data, code) if run.get("ok") and run.get("figures")]


def whole_ms(data: Mapping[str, Any], code: str) -> bool:
    """Whether a pairing's client wrote whole milliseconds (the Java client does)."""
    return any(((run.get("figures") or {}).get("latency_resolution_ms") or 0) >= 1 for run in ok_runs(data, code))


def representative(data: Mapping[str, Any], code: str) -> Mapping[str, Any] | None:
    """The pairing's ok run nearest its median msg/s (the lower of two on a tie): the one the
    charts draw bold."""
    runs = [r for r in ok_runs(data, code) if r["figures"].get("msg_s") is not None]
    if not runs:
        return None
    middle = statistics.median_low(r["figures"]["msg_s"] for r in runs)
    return next(r for r in runs if r["figures"]["msg_s"] == middle)


def not_compared(data: Mapping[str, Any], codes: Sequence[str]) -> str:
    """Why a ratio is missing: which of its pairings was not run or has no ok run."""
    only = (data.get("settings") or {}).get("only")
    reasons = []
    for code in dict.fromkeys(codes):
        if code not in (data.get("codes") or {}) or (only is not None and code not in only):
            reasons.append(f"{label(data, code)} was not run")
        elif not ok_runs(data, code):
            reasons.append(f"{label(data, code)} failed")
    return " and ".join(reasons) or "no round with both pairings ok"


# -- the finding ---------------------------------------------------------------------------


SAME, DIFFERS, UNCLEAR = "about the same", "differs", "unclear"


def differs(ratio: float) -> bool:
    """Outside ±TOLERANCE of 1 (to the figure shown: 1.05 is within 5 %)."""
    return round(abs(ratio - 1.0), 6) > TOLERANCE


def verdict(figure: Mapping[str, float | None]) -> str:
    """A side's msg/s ratio judged: about the same (median within ±TOLERANCE), differs (beyond
    it, and every round on the same side of 1), else unclear (the rounds disagree)."""
    median, low, high = figure["median"], figure.get("min"), figure.get("max")
    if not differs(median):
        return SAME
    if low is not None and high is not None and low <= 1.0 <= high:
        return UNCLEAR
    return DIFFERS


def finding(ratios: Mapping[str, Any], names: Mapping[str, str], missing: Mapping[str, str] | None = None) -> str:
    """One line saying which side differs and by how much, from the server and client ratios.

    Each side is judged by :func:`verdict`; of the sides that differ, the one furthest from 1
    leads. ``missing`` says, per side, why its ratio is absent.
    """
    python, other = names.get("python", "Python"), names.get("other", "other")
    clauses, verdicts, distance = {}, {}, {}
    for side in ("client", "server"):
        entry = ratios.get(side) or {}
        figure = entry.get("msg_s") or {}
        if figure.get("median") is None:
            reason = (missing or {}).get(side) or "a pairing missing"
            clauses[side] = f"the {side}s were not compared ({reason})"
            continue
        verdicts[side] = verdict(figure)
        distance[side] = abs(math.log(figure["median"])) if figure["median"] > 0 else math.inf
        cpu = entry.get(f"{side}_cpu_us_per_msg")
        at_cpu = f", at {ratio_text(cpu)} its CPU per message" if ratio_text(cpu) != NA else ""
        clauses[side] = (f"the {python} {side} makes {ratio_text(figure)} the {other} {side}'s msg/s "
                         f"under the same {'client' if side == 'server' else 'server'}{at_cpu}")
    if not verdicts:
        return f"No side can be judged: {clauses['client']}; {clauses['server']}."
    ranked = sorted(verdicts, key=distance.__getitem__, reverse=True)
    different = [side for side in ranked if verdicts[side] == DIFFERS]
    unjudged = [side for side in ("client", "server") if side not in verdicts]

    def said(side: str) -> str:
        if verdicts[side] == UNCLEAR:
            return f"the {side}s' rounds disagree: {clauses[side]}"
        return f"the {side}s are about the same: {clauses[side]}"

    if len(different) == 2:
        lead, parts = f"Both sides differ, the {different[0]}s most", [clauses[side] for side in different]
    elif different:
        lead = f"The {different[0]}s are the difference"
        parts = [clauses[different[0]]] + [said(side) for side in ranked if side != different[0]]
    elif all(v == SAME for v in verdicts.values()):
        lead = (f"Neither side differs by more than {TOLERANCE:.0%}" if len(verdicts) == 2
                else f"The {ranked[0]}s are about the same")
        parts = [clauses[side] for side in ranked]
    else:
        lead, parts = "No side clearly differs", [said(side) for side in ranked]
    parts += [clauses[side] for side in unjudged]
    return f"{lead}: " + "; ".join(parts) + "."


def finding_of(data: Mapping[str, Any]) -> str:
    """The finding of a comparison.json."""
    ratios = data.get("ratios") or {}
    missing = {side: not_compared(data, _ratio_codes(ratios, side)) for side in RATIO_CODES}
    return finding(ratios, data.get("names") or {}, missing)


def _ratio_codes(ratios: Mapping[str, Any], side: str) -> tuple[str, str]:
    entry = ratios.get(side) or {}
    default = RATIO_CODES[side]
    return entry.get("numerator") or default[0], entry.get("denominator") or default[1]


# -- the tables ----------------------------------------------------------------------------


PAIRING_HEADER = ("client → server", "runs ok", "msg/s", "p50 ms", "p99 ms", "server CPU µs/msg",
                  "client CPU µs/msg", "client peak RSS MiB", "success / messages")


def pairing_table(data: Mapping[str, Any], ranged: bool = True) -> Table:
    """Per pairing, medians over its ok rounds (min–max beside each where ``ranged``, else
    beside msg/s only); latencies marked where the client writes whole ms."""
    rows, failed = [], set()
    for code in codes_of(data):
        pairing = (data.get("pairings") or {}).get(code)
        runs = ok_runs(data, code)
        if not runs:
            failed.add(len(rows))
            rows.append((label(data, code), f"0/{len(runs_of(data, code))}", "failed", *[""] * 6))
            continue
        whole = whole_ms(data, code)
        mark = WHOLE_MS_MARK if whole else ""
        success = sum(r["figures"].get("success") or 0 for r in runs)
        messages = sum(r["figures"].get("messages") or 0 for r in runs)
        rows.append((label(data, code), f"{len(runs)}/{len(runs_of(data, code))}",
                     spread(pairing, "msg_s", 0),
                     spread(pairing, "p50_ms", _ms_digits(pairing, "p50_ms", whole), ranged) + mark,
                     spread(pairing, "p99_ms", _ms_digits(pairing, "p99_ms", whole), ranged) + mark,
                     spread(pairing, "server_cpu_us_per_msg", 1, ranged),
                     spread(pairing, "client_cpu_us_per_msg", 1, ranged),
                     spread(pairing, "client_peak_rss_mib", 0, ranged),
                     f"{success:,} / {messages:,}"))
    return Table(PAIRING_HEADER, tuple(rows), frozenset(failed))


def ms_digits(values: Sequence[float | None], whole: bool) -> int | None:
    """Whole-ms latencies without decimals (a median of two rounds may be half a ms); others
    as :func:`number` chooses."""
    if not whole:
        return None
    return 0 if all(v is None or float(v).is_integer() for v in values) else 1


def _ms_digits(pairing: Mapping[str, Any] | None, key: str, whole: bool) -> int | None:
    return ms_digits([((pairing or {}).get(part) or {}).get(key) for part in ("median", "min", "max")], whole)


def whole_ms_note(data: Mapping[str, Any]) -> str | None:
    clients = sorted({(data["codes"][c] or {}).get("client", c) for c in codes_of(data) if whole_ms(data, c)})
    if not clients:
        return None
    who = " and ".join(f"the {name} client" for name in clients)
    return (f"{WHOLE_MS_MARK} {who[0].upper()}{who[1:]} writes latencies in whole milliseconds: "
            "its percentiles are whole ms, not comparable below 1 ms.")


RATIO_SIDES = {"server": "server", "client": "client", "pair": "pair (both sides)"}


def ratio_table(data: Mapping[str, Any]) -> Table:
    """The three ratios, each the median of per-round ratios with their min–max."""
    ratios = data.get("ratios") or {}
    rows = []
    for side, title in RATIO_SIDES.items():
        entry = ratios.get(side) or {}
        numerator, denominator = _ratio_codes(ratios, side)
        rows.append((title, f"{label(data, numerator)} ÷ {label(data, denominator)}",
                     *(ratio_text(entry.get(key)) if key in entry else "" for key in RATIO_FIGURES)))
    return Table(("ratio", "numerator ÷ denominator", *RATIO_FIGURES.values()), tuple(rows), names=2)


RUN_HEADER = ("#", "pairing", "round", "ok", "msg/s", "p50 ms", "p95 ms", "p99 ms", "max ms",
              "server µs/msg", "client µs/msg", "RSS MiB", "success / messages", "span s", "client wall s",
              "CSV / error")


def run_table(data: Mapping[str, Any]) -> Table:
    """Every run in the order it ran."""
    rows, failed = [], set()
    for run in sorted(data.get("runs") or [], key=lambda r: r.get("index", 0)):
        if not run.get("ok"):
            failed.add(len(rows))
        f = run.get("figures") or {}
        latency = f.get("latency_ms") or {}
        whole = (f.get("latency_resolution_ms") or 0) >= 1
        messages = f.get("messages")
        rows.append((
            str(run.get("index", "")), label(data, run.get("code", "")), str(run.get("round", "")),
            "yes" if run.get("ok") else "FAILED",
            number(f.get("msg_s"), 0),
            *(number(latency.get(k), ms_digits([latency.get(k)], whole)) for k in ("p50", "p95", "p99", "max")),
            number(f.get("server_cpu_us_per_msg"), 1), number(f.get("client_cpu_us_per_msg"), 1),
            number(f.get("client_peak_rss_mib"), 0),
            NA if messages is None else f"{f.get('success') or 0:,} / {messages:,}",
            number(f.get("span_s")), number(f.get("client_wall_s")),
            (run.get("csv") or "") if run.get("ok") else (run.get("error") or "failed")))
    return Table(RUN_HEADER, tuple(rows), frozenset(failed), names=2)


def failures(data: Mapping[str, Any]) -> list[str]:
    """One line per failed run: pairing, round, position and its one-line error."""
    return [f"{label(data, run.get('code', ''))}, round {run.get('round')} (run {run.get('index')}): "
            f"{run.get('error') or 'failed'}"
            for run in sorted(data.get("runs") or [], key=lambda r: r.get("index", 0)) if not run.get("ok")]


def _value(value: Any) -> str:
    if value is None:
        return "none"
    if isinstance(value, bool):
        return "yes" if value else "no"
    if isinstance(value, int):
        return f"{value:,}"
    if isinstance(value, float):
        return f"{value:g}"
    if isinstance(value, (list, tuple)):
        return ", ".join(map(_value, value))
    return str(value)


def _pairs(mapping: Mapping[str, Any] | None) -> Table:
    """A mapping as a two-column table (the settings, the machine, the versions)."""
    return Table(("", ""), tuple((str(k).replace("_", " "), _value(v)) for k, v in (mapping or {}).items()), names=2)


def regime(settings: Mapping[str, Any]) -> str:
    rtt = settings.get("rtt_ms") or 0
    if not rtt:
        return "on loopback"
    jitter = settings.get("jitter_ms") or 0
    return f"through chatflow.wan at {rtt:g} ms round trip" + (f" ± {jitter:g} ms jitter" if jitter else "")


def summary(data: Mapping[str, Any]) -> str:
    """The experiment in one sentence: messages, phases, rounds, network, when."""
    s = data.get("settings") or {}
    return (f"{s.get('messages', 0):,} messages a run ({s.get('warmup_threads', '?')} × "
            f"{s.get('warmup_messages', 0):,} warmup, {s.get('threads', '?')} main threads), "
            f"{s.get('rounds', '?')} round{'' if s.get('rounds') == 1 else 's'} interleaved (ABBA), {regime(s)}; "
            f"{len(data.get('runs') or [])} runs, created {data.get('created', NA)}.")


def document(data: Mapping[str, Any]) -> Document:
    """The report's content, for every renderer."""
    names = data.get("names") or {}
    other = names.get("other", "other")
    pairings: list[Block] = [pairing_table(data)]
    note = whole_ms_note(data)
    pairings += [note] if note else []
    pairings.append("Medians over the rounds with min–max; msg/s = successful rows ÷ span of send timestamps, "
                    "the same yardstick for every client.")
    sections = [
        Section("Pairings", tuple(pairings)),
        Section("Ratios", (ratio_table(data), f"Each ratio per round (that round's numerator run ÷ its "
                           f"denominator run), then the median and min–max over the rounds where both ran. "
                           f"Server: {other}'s client held fixed; client: {other}'s server held fixed.")),
    ]
    failed = failures(data)
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
        Section("Settings", (_pairs(data.get("settings")), "Run order: " + " ".join(data.get("order") or []))),
        Section("Machine", (_pairs(data.get("machine")),)),
        Section("Versions", (_pairs(data.get("versions")),)),
        Section("Commands", (Code(tuple(f"{k}: {v}" for k, v in (data.get("commands") or {}).items())),)),
        Section("Every run", (run_table(data),), folded=True),
    ]
    title = f"ChatFlow comparison: {names.get('python', 'Python')} and {other}, {regime(data.get('settings') or {})}"
    return Document(title, summary(data), finding_of(data), tuple(sections))


# -- Markdown ------------------------------------------------------------------------------


def _md_cell(text: str) -> str:
    return text.replace("|", "\\|").replace("\n", " ")


def markdown_table(table: Table) -> list[str]:
    header = [_md_cell(h) or " " for h in table.header]
    return (["| " + " | ".join(header) + " |", "|" + "|".join("---" for _ in header) + "|"]
            + ["| " + " | ".join(_md_cell(c) for c in row) + " |" for row in table.rows] + [""])


def markdown(doc: Document, charts: Mapping[str, str]) -> str:
    """``comparison.md``: the charts as image links relative to it."""
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


# -- console -------------------------------------------------------------------------------


def aligned(table: Table) -> list[str]:
    """The first column left-aligned, the figures right-aligned."""
    widths = [max(len(row[i]) for row in (table.header, *table.rows)) for i in range(len(table.header))]

    def line(cells: Sequence[str]) -> str:
        return "  ".join(c.ljust(w) if i < table.names else c.rjust(w) for i, (c, w) in enumerate(zip(cells, widths))).rstrip()

    return [line(table.header), "-" * (sum(widths) + 2 * (len(widths) - 1)), *map(line, table.rows)]


def console(data: Mapping[str, Any]) -> str:
    """The table printed at the end of a comparison: pairings (min–max on msg/s), the three
    ratios, failures, and the finding last."""
    doc = document(data)
    lines = [doc.title, doc.summary, "", *aligned(pairing_table(data, ranged=False))]
    note = whole_ms_note(data)
    lines += [note] if note else []
    lines += ["", *aligned(ratio_table(data))]
    failed = failures(data)
    if failed:
        lines += ["", "Failed runs:", *(f"  {line}" for line in failed)]
    lines += ["", doc.finding]
    return "\n".join(lines)


# -- the files -----------------------------------------------------------------------------


def write_reports(data: Mapping[str, Any], directory: Path) -> list[Path]:
    """Write the charts, ``comparison.md`` and ``comparison.html`` into ``directory``; return
    their paths (the Markdown, the HTML, then the charts)."""
    from chatflow.compare import charts, html  # matplotlib only when files are written

    directory = Path(directory)
    directory.mkdir(parents=True, exist_ok=True)
    drawn = charts.write_charts(data, directory, {name: file for name, (file, _) in CHARTS.items()})
    doc = document(data)
    md_path = directory / "comparison.md"
    md_path.write_text(markdown(doc, {name: path.name for name, path in drawn.items()}), encoding="utf-8")
    html_path = directory / "comparison.html"
    html_path.write_text(html.render(doc, drawn), encoding="utf-8")
    return [md_path, html_path, *drawn.values()]
