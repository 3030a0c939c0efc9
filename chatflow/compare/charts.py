"""The comparison's charts, from ``comparison.json`` alone: throughput over time and latency CDFs
of the pairings on one plot each, and msg/s and CPU per message as grouped bars with min–max.

Drawn as the analysis's charts are (chatflow.analysis.throughput_visualizer: Agg, the object
API, its sizes and number format); a pairing keeps one colour in every chart.
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any

from matplotlib.figure import Figure
from matplotlib.patches import Patch
from matplotlib.ticker import LogLocator, StrMethodFormatter

from chatflow.analysis.throughput_visualizer import DPI, FIGURE_INCHES, HEADROOM, THOUSANDS
from chatflow.compare.document import codes_of, label, ok_runs, representative

#: One colour per pairing, the same in every chart.
COLOURS = {"oo": "tab:red", "op": "tab:orange", "po": "tab:purple", "pp": "tab:blue"}
#: The bar chart's two panels side by side need more width than one plot.
BARS_INCHES = (FIGURE_INCHES[0] * 1.2, FIGURE_INCHES[1])
#: Curves of so few buckets get a marker at each, so that a short run still shows.
FEW_POINTS = 5
#: The client's CPU bar beside the server's: the pairing's colour, paler and hatched.
CLIENT_BAR = {"alpha": 0.45, "hatch": "//", "edgecolor": "white"}


def _colour(code: str) -> str:
    return COLOURS.get(code, "tab:gray")


def _save(figure: Figure, path: Path) -> Path:
    figure.tight_layout()
    figure.savefig(path, dpi=DPI, format="png")
    return path


def _no_data(axes, text: str) -> None:
    axes.text(0.5, 0.5, text, ha="center", va="center", transform=axes.transAxes, fontsize=12)


def _not_run(axes, data: Mapping[str, Any], code: str) -> None:
    """A legend entry for a pairing with no ok run, so that its absence is said, not silent."""
    axes.plot([], [], " ", label=f"{label(data, code)}: no ok run")


def rates(run: Mapping[str, Any]) -> tuple[list[float], list[float]]:
    """A run's timeline as (bucket midpoint s, msg/s), its last bucket left out: it is cut
    short where the run ended, and would show a drop that is not one."""
    timeline = run.get("timeline") or {}
    width, counts = timeline.get("bucket_s") or 1.0, timeline.get("success") or []
    counts = counts[:-1]
    return [(i + 0.5) * width for i in range(len(counts))], [count / width for count in counts]


def throughput_chart(data: Mapping[str, Any], path: Path) -> Path:
    """Every ok round faint, each pairing's median-msg/s round bold."""
    figure = Figure(figsize=FIGURE_INCHES)
    axes = figure.add_subplot()
    top = 0.0
    for code in codes_of(data):
        bold = representative(data, code)
        if bold is None:
            _not_run(axes, data, code)
        for run in ok_runs(data, code):
            xs, ys = rates(run)
            if not xs:
                continue
            top = max(top, *ys)
            marker = "o" if len(xs) <= FEW_POINTS else None
            if run is bold:
                median = run["figures"].get("msg_s")
                axes.plot(xs, ys, color=_colour(code), linewidth=2.2, marker=marker,
                          label=f"{label(data, code)} (round {run.get('round')}, {median:,.0f} msg/s)")
            else:
                axes.plot(xs, ys, color=_colour(code), linewidth=1, alpha=0.3, marker=marker)
    if top:
        axes.set_ylim(0, top * HEADROOM)
        axes.set_xlim(left=0)
        axes.yaxis.set_major_formatter(THOUSANDS)
        axes.legend(loc="upper center", bbox_to_anchor=(0.5, -0.12), ncols=2)  # below the axes: no curve hidden
    elif any(ok_runs(data, code) for code in codes_of(data)):
        _no_data(axes, "every run ended within its first timeline bucket: no curve to draw")
    else:
        _no_data(axes, "no successful messages in any run")
    axes.set_xlabel("time since the run's first send (s)")
    axes.set_ylabel("successful messages/s")
    axes.set_title("Throughput over time: median-msg/s round bold, other rounds faint")
    axes.grid(alpha=0.3)
    return _save(figure, path)


def latency_chart(data: Mapping[str, Any], path: Path) -> Path:
    """Each pairing's median-msg/s round's CDF on a log axis; whole-ms clients step."""
    figure = Figure(figsize=FIGURE_INCHES)
    axes = figure.add_subplot()
    drawn = False
    for code in codes_of(data):
        run = representative(data, code)
        if run is None:
            _not_run(axes, data, code)
        cdf = (run or {}).get("cdf") or {}
        points = [(x, 100 * q) for q, x in zip(cdf.get("quantiles") or [], cdf.get("latency_ms") or [])
                  if x is not None and x > 0]
        if not points:
            continue
        whole = ((run.get("figures") or {}).get("latency_resolution_ms") or 0) >= 1
        axes.plot([x for x, _ in points], [y for _, y in points], color=_colour(code), linewidth=1.8,
                  drawstyle="steps-post" if whole else "default",
                  label=f"{label(data, code)}" + (" (whole ms)" if whole else ""))
        drawn = True
    if drawn:
        axes.set_xscale("log")
        axes.xaxis.set_major_locator(LogLocator(subs=(1.0, 2.0, 5.0)))
        axes.xaxis.set_major_formatter(StrMethodFormatter("{x:g}"))
        axes.set_ylim(0, 100)
        axes.legend(loc="lower right")
    else:
        _no_data(axes, "no latency distribution in any run")
    axes.set_xlabel("latency (ms, log scale)")
    axes.set_ylabel("successful messages at or below (%)")
    axes.set_title("Latency CDF of each pairing's median-msg/s round")
    axes.grid(alpha=0.3, which="both")
    return _save(figure, path)


def _bar(axes, x: float, width: float, pairing: Mapping[str, Any] | None, key: str, **style) -> bool:
    median, low, high = (((pairing or {}).get(part) or {}).get(key) for part in ("median", "min", "max"))
    if median is None:
        return False
    errors = [[median - low], [high - median]] if low is not None and high is not None else None
    axes.bar([x], [median], width, yerr=errors, capsize=4, **style)
    return True


def bars_chart(data: Mapping[str, Any], path: Path) -> Path:
    """Left: msg/s per pairing; right: server and client CPU µs/msg per pairing, side by side."""
    figure = Figure(figsize=BARS_INCHES)
    rate_axes, cpu_axes = figure.subplots(1, 2)
    codes = codes_of(data)
    pairings = data.get("pairings") or {}
    labels = [label(data, code) for code in codes]
    for i, code in enumerate(codes):
        if not _bar(rate_axes, i, 0.6, pairings.get(code), "msg_s", color=_colour(code)):
            rate_axes.text(i, 0, "failed", ha="center", va="bottom", color="tab:red")
        served = _bar(cpu_axes, i - 0.2, 0.4, pairings.get(code), "server_cpu_us_per_msg", color=_colour(code))
        _bar(cpu_axes, i + 0.2, 0.4, pairings.get(code), "client_cpu_us_per_msg", color=_colour(code),
             **CLIENT_BAR)
        if not served:
            cpu_axes.text(i, 0, "failed", ha="center", va="bottom", color="tab:red")
    for axes, title, unit in ((rate_axes, "msg/s (median, min–max)", "successful messages/s"),
                              (cpu_axes, "CPU per message (median, min–max)", "CPU µs per message")):
        axes.set_xticks(range(len(codes)), labels, rotation=12)
        axes.set_ylim(bottom=0, top=axes.get_ylim()[1] * HEADROOM)
        axes.yaxis.set_major_formatter(THOUSANDS)
        axes.set_ylabel(unit)
        axes.set_title(title)
        axes.grid(alpha=0.3, axis="y")
    cpu_axes.legend(handles=[Patch(color="tab:gray", label="server"),
                             Patch(facecolor="tab:gray", label="client", **CLIENT_BAR)], loc="upper right", ncols=2)
    return _save(figure, path)


DRAW = {"throughput": throughput_chart, "latency": latency_chart, "bars": bars_chart}


def write_charts(data: Mapping[str, Any], directory: Path, files: Mapping[str, str]) -> dict[str, Path]:
    """Each chart of ``files`` (name → file name) drawn into ``directory``; their paths."""
    return {name: DRAW[name](data, Path(directory) / file) for name, file in files.items()}
