"""Live progress while a run goes: a bar on a terminal, a line every few seconds elsewhere.

The display samples the run from its own thread (``LoadTest.snapshot``) and never touches
the senders' hot path; what it shows is worked out from two snapshots by pure functions
(``progress_figures``, ``format_line``, ``format_postfix``), documented in
docs/client.md#live-progress.
"""

from __future__ import annotations

import math
import sys
import threading
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TextIO

from tqdm import tqdm

from chatflow.client.config import PROGRESS_INTERVAL
from chatflow.client.histogram import percentile_us
from chatflow.client.rate_profile import RateProfile

#: Seconds between two samples of the bar, and the span its msg/s and p99 are taken over.
BAR_INTERVAL = 0.25
BAR_WINDOW = 1.0
#: The bar: its phase, how far, then the figures of ``format_postfix`` (tqdm's own rate
#: and ETA left out: the ETA is the schedule's in the open loop).
BAR_FORMAT = "{desc} {percentage:3.0f}%|{bar}| {n_fmt}/{total_fmt} [{elapsed}{postfix}]"


@dataclass(frozen=True)
class ProgressSnapshot:
    """What a run has counted so far, at ``at`` (``time.monotonic``).

    Sampled without a lock while the senders (or the workers, through shared memory)
    write their counts: each count is one that its writer held at some moment, but two
    counts may be of slightly different moments. Good enough for a display; the figures
    made of two snapshots never go negative and never raise for it."""

    #: The phase running: warmup, main, drain (the broadcast scenario's), "" before the first.
    phase: str
    #: Messages with a final outcome, and of those failed.
    done: int
    failed: int
    reconnections: int
    #: The successful messages' latencies so far (chatflow.client.histogram buckets): the
    #: round trip in the closed loop, the response time in the open loop; empty if unknown.
    latency_counts: list[int]
    #: The open loop's rate asked, and the seconds since its schedule's slot 0 (None before
    #: it starts); None in the closed loop.
    rate: float | None = None
    schedule_s: float | None = None
    at: float = field(default_factory=time.monotonic)
    #: The open loop's schedule over time (a ramp's stages); None in the closed loop.
    profile: RateProfile | None = None


Sample = Callable[[], ProgressSnapshot]


@dataclass(frozen=True)
class ProgressFigures:
    """What one line (or one refresh of the bar) says."""

    label: str
    done: int
    total: int
    #: The interval the next two are of, in seconds.
    interval_s: float
    msg_s: float
    #: The interval's p99 latency (the response time's in the open loop); None without a success in it.
    p99_ms: float | None
    failed: int
    reconnections: int
    #: The open loop's messages whose slot has passed and whose outcome is not known yet; None in the closed loop.
    behind: int | None
    elapsed_s: float
    #: None while it cannot be told (nothing done yet, the schedule not started).
    eta_s: float | None

    @property
    def open_loop(self) -> bool:
        return self.behind is not None


def phase_label(snapshot: ProgressSnapshot) -> str:
    profile = snapshot.profile
    if profile is not None and profile.ramps and snapshot.schedule_s is not None:
        return f"open loop ramping, at {profile.rate_at(snapshot.schedule_s):,.0f} msg/s"
    if snapshot.rate is not None:
        return f"open loop at {snapshot.rate:,.0f} msg/s"
    return snapshot.phase or "setup"


def interval_counts(previous: list[int], current: list[int]) -> list[int]:
    """The latencies counted between two snapshots; a bucket read lower than before (a
    torn read) counts none, and lists of different lengths (one unknown) give none."""
    if len(previous) != len(current):
        return []
    return [max(0, now - before) for before, now in zip(previous, current)]


def progress_figures(first: ProgressSnapshot, previous: ProgressSnapshot, current: ProgressSnapshot,
                     total: int) -> ProgressFigures:
    """The figures of ``current``: its interval's from ``previous``, the ETA from ``first``
    (the display's first sample) in the closed loop, from the schedule in the open loop."""
    interval = max(0.0, current.at - previous.at)
    done = min(current.done, total) if total else current.done
    msg_s = max(0, current.done - previous.done) / interval if interval > 0 else 0.0
    p99 = percentile_us(interval_counts(previous.latency_counts, current.latency_counts), 0.99)
    remaining = max(0, total - done)
    behind = eta = None
    if current.rate is not None:
        if current.schedule_s is not None:
            profile = current.profile or RateProfile.constant(current.rate)
            behind = max(0, profile.due(current.schedule_s, total) - current.done)
            eta = max(0.0, profile.offset_s(total) - current.schedule_s)
        else:
            behind = 0
    else:
        elapsed = current.at - first.at
        mean = (current.done - first.done) / elapsed if elapsed > 0 else 0.0
        eta = remaining / mean if mean > 0 else (0.0 if not remaining else None)
    return ProgressFigures(
        label=phase_label(current), done=done, total=total, interval_s=interval, msg_s=msg_s,
        p99_ms=None if p99 is None else p99 / 1000, failed=current.failed, reconnections=current.reconnections,
        behind=behind, elapsed_s=max(0.0, current.at - first.at), eta_s=eta)


def format_duration(seconds: float | None) -> str:
    """``4.2 s``, ``42 s``, ``7 min 03 s``, ``2 h 05 min``; ``?`` when unknown."""
    if seconds is None or not math.isfinite(seconds):
        return "?"
    if seconds < 9.95:
        return f"{max(0.0, seconds):.1f} s"
    whole = round(seconds)
    if whole < 60:
        return f"{whole} s"
    if whole < 3600:
        return f"{whole // 60} min {whole % 60:02d} s"
    return f"{whole // 3600} h {whole % 3600 // 60:02d} min"


def _latency(figures: ProgressFigures) -> str:
    name = "response p99" if figures.open_loop else "p99"
    return f"{name} {'-' if figures.p99_ms is None else f'{figures.p99_ms:.2f}'} ms"


def _counts(figures: ProgressFigures) -> str:
    return f"{figures.failed:,} failed, {figures.reconnections:,} reconnections"


def format_line(figures: ProgressFigures) -> str:
    """The line written every few seconds when stderr is not a terminal."""
    percent = 100.0 * figures.done / figures.total if figures.total else 100.0
    behind = f", {figures.behind:,} behind schedule" if figures.open_loop else ""
    phase = figures.label if figures.open_loop else f"{figures.label} phase"
    interval = f"{figures.interval_s:.1f}".rstrip("0").rstrip(".")
    return (f"progress: {figures.done:,}/{figures.total:,} messages ({percent:.0f}%), {phase}{behind}; "
            f"last {interval} s: {figures.msg_s:,.0f} msg/s, {_latency(figures)}; {_counts(figures)}; "
            f"{format_duration(figures.elapsed_s)} elapsed, ETA {format_duration(figures.eta_s)}")


def format_postfix(figures: ProgressFigures) -> str:
    """The bar's figures after its count (its phase is its description): the ETA first,
    so that a terminal too narrow for the line (tqdm cuts its end) loses the least."""
    behind = f", {figures.behind:,} behind" if figures.open_loop else ""
    return (f"ETA {format_duration(figures.eta_s)}{behind}, {figures.msg_s:,.0f} msg/s, {_latency(figures)}, "
            f"{_counts(figures)}")


class ProgressDisplay:
    """Samples the run from its own thread, to ``stream`` (stderr): a tqdm bar when it is
    a terminal, else a line every ``interval`` seconds."""

    def __init__(self, total: int, sample: Sample, stream: TextIO = sys.stderr, interactive: bool | None = None,
                 interval: float = PROGRESS_INTERVAL) -> None:
        self.total = total
        self.sample = sample
        self.stream = stream
        self.interactive = stream.isatty() if interactive is None else interactive
        self.interval = interval
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="ProgressDisplay", daemon=True)

    def start(self) -> None:
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        if self._thread.is_alive():
            self._thread.join(5)

    def _run(self) -> None:
        if self.interactive:
            self._run_bar()
        else:
            self._run_lines()

    def _run_bar(self) -> None:
        first = self.sample()
        # The snapshots of the last BAR_WINDOW seconds: a few, BAR_WINDOW / BAR_INTERVAL + 2 at most.
        window = deque([first], maxlen=math.ceil(BAR_WINDOW / BAR_INTERVAL) + 2)
        with tqdm(total=self.total, unit="msg", unit_scale=True, dynamic_ncols=True, file=self.stream,
                  desc=phase_label(first), bar_format=BAR_FORMAT) as bar:
            while True:
                stopping = self._stop.wait(BAR_INTERVAL)
                current = self.sample()
                window.append(current)
                while len(window) > 2 and current.at - window[1].at >= BAR_WINDOW:
                    window.popleft()
                figures = progress_figures(first, window[0], current, self.total)
                bar.set_description_str(figures.label, refresh=False)
                bar.set_postfix_str(format_postfix(figures), refresh=False)
                bar.update(max(0, figures.done - bar.n))
                bar.refresh()
                if stopping:
                    return

    def _run_lines(self) -> None:
        first = previous = self.sample()
        while not self._stop.wait(self.interval):
            current = self.sample()
            print(format_line(progress_figures(first, previous, current, self.total)), file=self.stream, flush=True)
            previous = current
