"""PNG charts of an analysis: throughput over time, latency distribution, rooms, comparison.

Drawn from the figures of :class:`AnalysisResult` alone (no second pass over the CSV),
with matplotlib's object API on the Agg backend: no display, no pyplot global state, so
charts can be drawn from any thread or a headless machine.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import matplotlib

matplotlib.use("Agg")

from matplotlib.figure import Figure  # noqa: E402  (the backend must be chosen first)
from matplotlib.ticker import FuncFormatter, StrMethodFormatter  # noqa: E402

from chatflow.analysis.performance_analyzer import AnalysisResult  # noqa: E402

#: Room above the highest point for the legend.
HEADROOM = 1.15
#: 20,000 for rates and counts, 0.5 for the rare run slower than a message a second.
THOUSANDS = FuncFormatter(lambda value, _: f"{value:,.0f}" if abs(value) >= 100 else f"{value:g}")
#: 1000 × 500 px: wide enough for a 10-minute run's buckets, small enough for a README.
FIGURE_INCHES = (10.0, 5.0)
DPI = 100


def _label(analysis: AnalysisResult) -> str:
    return Path(analysis.source).name


def _midpoints(analysis: AnalysisResult) -> tuple[list[float], list[float]]:
    """Each bucket's rate at the middle of its real interval (the last one may be short)."""
    points = [((b.start_s + b.end_s) / 2, b.throughput_per_s) for b in analysis.buckets
              if b.throughput_per_s is not None]
    return [x for x, _ in points], [y for _, y in points]


def _no_data(axes, text: str) -> None:
    axes.text(0.5, 0.5, text, ha="center", va="center", transform=axes.transAxes, fontsize=12)


class ThroughputVisualizer:
    """Every chart of the analysis, not only throughput: throughput over time, the latency
    distribution, messages per room, and several runs compared (the Java original's name).

    Each method writes one PNG and returns its path.
    """

    def __init__(self, dpi: int = DPI) -> None:
        self.dpi = dpi

    def _save(self, figure: Figure, path: Path) -> Path:
        figure.tight_layout()
        figure.savefig(path, dpi=self.dpi, format="png")
        return path

    def throughput_chart(self, analysis: AnalysisResult, path: str | Path, boundary_s: float | None = None) -> Path:
        """``boundary_s``: where the main phase starts (s from the first send), marked when known."""
        figure = Figure(figsize=FIGURE_INCHES)
        axes = figure.add_subplot()
        x, y = _midpoints(analysis)
        if x and analysis.successes:
            axes.plot(x, y, marker="o", label=f"per {analysis.bucket_seconds:g} s bucket")
            if analysis.throughput_per_s is not None:
                axes.axhline(analysis.throughput_per_s, color="tab:red", linestyle="--",
                             label=f"average {analysis.throughput_per_s:,.0f} msg/s")
            axes.set_ylim(0, max(y) * HEADROOM)
            axes.set_xlim(0, analysis.buckets[-1].end_s)
            axes.yaxis.set_major_formatter(THOUSANDS)
            if boundary_s is not None and 0 < boundary_s < analysis.buckets[-1].end_s:
                axes.axvline(boundary_s, color="tab:purple", linestyle=":", linewidth=2,
                             label=f"warmup → main at {boundary_s:,.3f} s (client's phase time)")
                axes.text(boundary_s, max(y) * HEADROOM * 0.97, " main phase →", color="tab:purple",
                          va="top", ha="left")
                axes.text(boundary_s, max(y) * HEADROOM * 0.97, "← warmup ", color="tab:purple",
                          va="top", ha="right")
            axes.legend(loc="lower right")
        else:
            _no_data(axes, "no successful messages")
        axes.set_xlabel("time since first message sent (s)")
        axes.set_ylabel("throughput (successful messages/s)")
        axes.set_title(f"Throughput over time — {_label(analysis)}")
        axes.grid(alpha=0.3)
        return self._save(figure, Path(path))

    def latency_chart(self, analysis: AnalysisResult, path: str | Path) -> Path:
        """A histogram on a log axis: sub-millisecond replies and 1 s timeouts both stay visible."""
        figure = Figure(figsize=FIGURE_INCHES)
        axes = figure.add_subplot()
        histogram, stats = analysis.latency_histogram, analysis.latency_ms
        if histogram.counts:
            axes.stairs(histogram.counts, histogram.edges_ms, fill=True, alpha=0.7, label="successful messages")
            axes.set_xscale("log")
            axes.xaxis.set_major_formatter(StrMethodFormatter("{x:g}"))
            occupied = [i for i, n in enumerate(histogram.counts) if n]
            axes.set_xlim(histogram.edges_ms[occupied[0]] / 1.5, histogram.edges_ms[occupied[-1] + 1] * 1.5)
            axes.set_ylim(0, max(histogram.counts) * HEADROOM)
            axes.yaxis.set_major_formatter(THOUSANDS)
            for name, value, color in (("median", stats.median, "tab:green"), ("p95", stats.p95, "tab:orange"),
                                       ("p99", stats.p99, "tab:red")):
                if value:
                    axes.axvline(value, color=color, linestyle="--", label=f"{name} {value:,.3f} ms")
            if histogram.zero_count:
                axes.plot([], [], " ", label=f"{histogram.zero_count:,} at 0 ms (off the log axis)")
            axes.legend(loc="upper right")
        elif histogram.zero_count:
            _no_data(axes, f"all {histogram.zero_count:,} successful latencies are 0 ms")
        else:
            _no_data(axes, "no successful messages")
        axes.set_xlabel("latency (ms, log scale)")
        axes.set_ylabel("messages per bin")
        axes.set_title(f"Latency distribution of successful messages — {_label(analysis)}")
        axes.grid(alpha=0.3, which="both")
        return self._save(figure, Path(path))

    def cdf_chart(self, analyses: Sequence[tuple[str, AnalysisResult]], path: str | Path) -> Path:
        """The share of successful messages at or under a latency, one curve per run, from the
        histogram's bins (so within a bin's width, a tenth of a decade); 0 ms replies start the curve."""
        figure = Figure(figsize=FIGURE_INCHES)
        axes = figure.add_subplot()
        drawn, low, high = False, [], []
        for label, analysis in analyses:
            histogram = analysis.latency_histogram
            total = histogram.zero_count + sum(histogram.counts)
            if not histogram.counts or not total:
                continue
            cumulative, running = [], histogram.zero_count
            for n in histogram.counts:
                running += n
                cumulative.append(100.0 * running / total)
            x = list(histogram.edges_ms)
            axes.step(x, [100.0 * histogram.zero_count / total] + cumulative, where="post", label=label)
            occupied = [i for i, n in enumerate(histogram.counts) if n]
            low.append(x[occupied[0]] if occupied else x[0])
            high.append(x[occupied[-1] + 1] if occupied else x[-1])
            drawn = True
        if drawn:
            axes.set_xscale("log")
            axes.set_xlim(min(low) / 1.5, max(high) * 1.5)
            axes.xaxis.set_major_formatter(StrMethodFormatter("{x:g}"))
            axes.set_ylim(0, 102)
            for share in (50, 95, 99):
                axes.axhline(share, color="grey", linewidth=0.8, linestyle="--")
                axes.text(0.005, share, f"p{share}", transform=axes.get_yaxis_transform(), ha="left",
                          va="bottom" if share == 50 else "top", color="dimgrey", fontsize=9)
            axes.legend(loc="lower right")
        else:
            _no_data(axes, "no successful messages with a latency above 0 ms")
        axes.set_xlabel("latency (ms, log scale)")
        axes.set_ylabel("successful messages at or under (%)")
        names = _label(analyses[0][1]) if len(analyses) == 1 else f"{len(analyses)} runs"
        axes.set_title(f"Latency CDF of successful messages — {names}")
        axes.grid(alpha=0.3, which="both")
        return self._save(figure, Path(path))

    def room_chart(self, analysis: AnalysisResult, path: str | Path) -> Path:
        figure = Figure(figsize=FIGURE_INCHES)
        axes = figure.add_subplot()
        rooms = analysis.rooms
        if rooms:
            labels = [str(r.room_id) for r in rooms]
            successes = [r.successes for r in rooms]
            axes.bar(labels, successes, label="successful")
            if any(r.failures for r in rooms):
                axes.bar(labels, [r.failures for r in rooms], bottom=successes, color="tab:red", label="failed")
            axes.set_ylim(0, max(r.messages for r in rooms) * HEADROOM)
            axes.yaxis.set_major_formatter(THOUSANDS)
            axes.legend(loc="upper right", ncols=2)
        else:
            _no_data(axes, "no messages")
        axes.set_xlabel("room id")
        axes.set_ylabel("messages")
        axes.set_title(f"Messages per room — {_label(analysis)}")
        axes.grid(alpha=0.3, axis="y")
        return self._save(figure, Path(path))

    def comparison_chart(self, analyses: Sequence[tuple[str, AnalysisResult]], path: str | Path) -> Path:
        """Several runs' throughput curves on one time axis, each from its own first send."""
        figure = Figure(figsize=FIGURE_INCHES)
        axes = figure.add_subplot()
        drawn = False
        for label, analysis in analyses:
            x, y = _midpoints(analysis)
            if x:
                axes.plot(x, y, marker="o", label=label)
                drawn = True
        if drawn:
            axes.set_ylim(bottom=0, top=axes.get_ylim()[1] * HEADROOM)
            axes.set_xlim(left=0)
            axes.yaxis.set_major_formatter(THOUSANDS)
            axes.legend(loc="best")
        else:
            _no_data(axes, "no successful messages in any run")
        bucket = ", ".join(sorted({f"{a.bucket_seconds:g}" for _, a in analyses}))
        axes.set_xlabel("time since each run's first message sent (s)")
        axes.set_ylabel("throughput (successful messages/s)")
        axes.set_title(f"Throughput over time, {len(analyses)} runs ({bucket} s buckets)")
        axes.grid(alpha=0.3)
        return self._save(figure, Path(path))

    def charts(self, analysis: AnalysisResult, directory: str | Path, stem: str,
               boundary_s: float | None = None) -> dict[str, Path]:
        """The four charts of one run, named ``<stem>_<chart>.png``."""
        directory = Path(directory)
        return {
            "throughput": self.throughput_chart(analysis, directory / f"{stem}_throughput.png", boundary_s),
            "latency": self.latency_chart(analysis, directory / f"{stem}_latency.png"),
            "latency_cdf": self.cdf_chart([(_label(analysis), analysis)], directory / f"{stem}_latency_cdf.png"),
            "rooms": self.room_chart(analysis, directory / f"{stem}_rooms.png"),
        }
