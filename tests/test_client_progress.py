"""The live progress (docs/client.md#live-progress): its figures from two snapshots, its
wording, and what a run shows on stderr: lines when it is not a terminal, a bar on one
(a tmux session's screen, read back), nothing with ``--quiet``."""

from __future__ import annotations

import io
import re
import sys
from pathlib import Path

import pytest

from chatflow.client.histogram import add_latency, empty_counts
from chatflow.client.progress import (ProgressDisplay, ProgressFigures, ProgressSnapshot, format_duration, format_line,
                                      format_postfix, interval_counts, progress_figures)
from chatflow.client.config import LoadTestConfig
from chatflow.client.run import LoadTest
from tests.support.client_runs import BackgroundRun, assert_no_traceback
from tests.support.processes import REPO_ROOT, RUN_CLIENT, run_client
from tests.support.services import require
from tests.support.terminal import TMUX, TmuxSession
from tests.support.waiting import wait_until

#: A progress line, its fields captured (docs/client.md#live-progress has the wording).
LINE = re.compile(r"^progress: (?P<done>[\d,]+)/(?P<total>[\d,]+) messages \(\d+%\), (?P<phase>[^;]+); "
                  r"last [\d.]+ s: (?P<msg_s>[\d,]+) msg/s, (?P<latency>(?:response )?p99) (?P<p99>[\d.]+|-) ms; "
                  r"(?P<failed>[\d,]+) failed, (?P<reconnections>[\d,]+) reconnections; "
                  r"(?P<elapsed>[\d.]+ s|\d+ min \d\d s|\d+ h \d\d min) elapsed, "
                  r"ETA (?P<eta>[\d.]+ s|\d+ min \d\d s|\d+ h \d\d min|\?)$")


def histogram(*latencies_us: int) -> list[int]:
    counts = empty_counts()
    for latency in latencies_us:
        add_latency(counts, latency)
    return counts


def snapshot(at: float, done: int, latencies: list[int], phase: str = "main", failed: int = 0,
             reconnections: int = 0, rate: float | None = None, schedule_s: float | None = None) -> ProgressSnapshot:
    return ProgressSnapshot(phase, done, failed, reconnections, latencies, rate, schedule_s, at)


# -- the figures, from snapshots made by hand ----------------------------------------


def test_closed_loop_figures_are_the_last_intervals_and_the_eta_the_mean_rates() -> None:
    first = snapshot(100.0, 0, empty_counts(), phase="warmup")
    # Before the interval: 1,000 messages of 1 ms; during it, 1,000 more: 990 of 2 ms, 10 of 50 ms.
    previous = snapshot(110.0, 1_000, histogram(*[1_000] * 1_000))
    current = snapshot(112.0, 2_000, histogram(*[1_000] * 1_000, *[2_000] * 990, *[50_000] * 10),
                       failed=3, reconnections=2)
    figures = progress_figures(first, previous, current, total=6_000)
    assert (figures.label, figures.done, figures.total, figures.failed, figures.reconnections) == ("main", 2_000,
                                                                                                    6_000, 3, 2)
    assert figures.interval_s == pytest.approx(2.0) and figures.msg_s == pytest.approx(500.0)
    # The interval's p99 (the 990th of its 1,000) is 2 ms, within its bucket's 1/16; the
    # run's so far would be 2 ms too, but the earlier 1 ms do not pull it down.
    assert figures.p99_ms == pytest.approx(2.0, rel=1 / 16)
    # 4,000 to go at the mean 2,000 / 12 s.
    assert figures.eta_s == pytest.approx(24.0) and figures.elapsed_s == pytest.approx(12.0)
    assert figures.behind is None


def test_open_loop_figures_have_the_schedules_eta_and_the_messages_behind() -> None:
    first = snapshot(0.0, 0, empty_counts(), rate=100.0)
    previous = snapshot(5.0, 400, histogram(*[500] * 400), rate=100.0, schedule_s=4.0)
    # 6 s into a 10 s schedule at 100 msg/s: slots 0..600 are due, 560 have their outcome.
    current = snapshot(7.0, 560, histogram(*[500] * 400, *[300_000] * 160), rate=100.0, schedule_s=6.0)
    figures = progress_figures(first, previous, current, total=1_000)
    assert figures.label == "open loop at 100 msg/s"
    assert figures.behind == 601 - 560 and figures.eta_s == pytest.approx(4.0)
    assert figures.p99_ms == pytest.approx(300.0, rel=1 / 16)
    # Before the schedule's slot 0, nothing is due and no ETA can be told.
    waiting = progress_figures(first, first, snapshot(1.0, 0, empty_counts(), rate=100.0), total=1_000)
    assert (waiting.behind, waiting.eta_s) == (0, None)


def test_a_torn_read_gives_plausible_figures_not_an_error() -> None:
    """A sample read while the senders write: a bucket lower than before, a histogram of
    another length, the same instant twice, more done than the total: nothing raises,
    nothing is negative."""
    first = snapshot(0.0, 0, empty_counts())
    previous = snapshot(1.0, 100, histogram(*[1_000] * 100))
    torn = snapshot(1.0, 99, histogram(*[1_000] * 50, *[4_000] * 5))
    figures = progress_figures(first, previous, torn, total=50)
    assert figures.msg_s == 0.0 and figures.done == 50
    assert figures.p99_ms == pytest.approx(4.0, rel=1 / 16)
    assert min(interval_counts(previous.latency_counts, torn.latency_counts)) == 0
    assert interval_counts([1, 2], [1, 2, 3]) == []
    shorter = progress_figures(first, previous, snapshot(2.0, 200, []), total=500)
    assert shorter.p99_ms is None and shorter.msg_s == pytest.approx(100.0)
    for figures in (figures, shorter):
        assert format_line(figures).startswith("progress: ") and format_postfix(figures)


def test_the_wording_is_stable() -> None:
    closed = ProgressFigures(label="main", done=120_000, total=500_000, interval_s=5.0, msg_s=5_210.4, p99_ms=12.345,
                             failed=0, reconnections=1, behind=None, elapsed_s=23.2, eta_s=73.0)
    assert format_line(closed) == ("progress: 120,000/500,000 messages (24%), main phase; last 5 s: 5,210 msg/s, "
                                   "p99 12.35 ms; 0 failed, 1 reconnections; 23 s elapsed, ETA 1 min 13 s")
    assert format_postfix(closed) == "ETA 1 min 13 s, 5,210 msg/s, p99 12.35 ms, 0 failed, 1 reconnections"
    open_loop = ProgressFigures(label="open loop at 2,000 msg/s", done=10_000, total=60_000, interval_s=0.25,
                                msg_s=1_999.0, p99_ms=None, failed=2, reconnections=0, behind=3, elapsed_s=5.04,
                                eta_s=None)
    assert format_line(open_loop) == (
        "progress: 10,000/60,000 messages (17%), open loop at 2,000 msg/s, 3 behind schedule; last 0.2 s: "
        "1,999 msg/s, response p99 - ms; 2 failed, 0 reconnections; 5.0 s elapsed, ETA ?")
    assert format_postfix(open_loop) == "ETA ?, 3 behind, 1,999 msg/s, response p99 - ms, 2 failed, 0 reconnections"
    assert LINE.match(format_line(closed)) and LINE.match(format_line(open_loop))
    assert [format_duration(s) for s in (0.04, 9.2, 59.6, 61, 3_725, None)] == [
        "0.0 s", "9.2 s", "1 min 00 s", "1 min 01 s", "1 h 02 min", "?"]


def test_lines_come_every_interval_from_the_sample() -> None:
    samples = iter(range(1, 10_000))
    stream = io.StringIO()
    display = ProgressDisplay(1_000_000, lambda: snapshot(0.0, next(samples), empty_counts()), stream,
                              interactive=False, interval=0.02)
    display.start()
    try:
        wait_until(lambda: stream.getvalue().count("\n") >= 3, message="three progress lines")
    finally:
        display.stop()
    assert all(LINE.match(line) for line in stream.getvalue().splitlines()), stream.getvalue()


# -- the run's own snapshot -----------------------------------------------------------


def test_the_runs_snapshot_counts_its_senders(chat_url: str) -> None:
    config = LoadTestConfig(chat_url, messages=200_000, warmup_threads=0, threads=4, probe_messages=5)
    test = LoadTest(config)
    assert (test.snapshot().phase, test.snapshot().done) == ("", 0)
    with BackgroundRun(test):
        moving = wait_until(lambda: (s := test.snapshot()).done >= 500 and s, timeout=30, message="the run goes")
    assert moving.phase == "main" and moving.rate is None and moving.schedule_s is None
    assert 0 < sum(moving.latency_counts) <= moving.done and moving.failed == 0


# -- what a run prints on stderr ----------------------------------------------------------


def client(url: str, tmp_path: Path, *args: str) -> list[str]:
    """``run_client.py`` against ``url`` with ``args``, its progress lines (each checked
    for every field) out of its stderr; its stdout holds none."""
    result = run_client("--server", url, "--probe-messages", "5", "--no-analysis", "--output-dir", str(tmp_path),
                        *args)
    assert result.returncode == 0, result
    assert_no_traceback(result)
    assert not re.search("^progress", result.stdout, re.MULTILINE), result.stdout
    lines = [line for line in result.stderr.splitlines() if line.startswith("progress")]
    assert all(LINE.match(line) for line in lines), result.stderr
    return lines


def test_a_closed_loop_run_prints_its_phase_rate_p99_and_counts(chat_url: str, tmp_path: Path) -> None:
    lines = client(chat_url, tmp_path, "--messages", "20000", "--warmup-threads", "2", "--warmup-messages", "500",
                   "--threads", "4", "--processes", "1", "--progress-interval", "0.05")
    assert lines, "no progress line"
    fields = [LINE.match(line) for line in lines]
    assert {f["phase"] for f in fields} <= {"setup phase", "warmup phase", "main phase"}
    assert "main phase" in {f["phase"] for f in fields}, lines
    assert all(f["total"] == "20,000" and f["latency"] == "p99" for f in fields)
    assert any(f["p99"] != "-" for f in fields), lines


def test_an_open_loop_run_prints_the_schedule_and_its_eta(chat_url: str, tmp_path: Path) -> None:
    lines = client(chat_url, tmp_path, "--rate", "400", "--duration", "1.5", "--threads", "4",
                   "--progress-interval", "0.2")
    assert len(lines) >= 3, lines
    fields = [LINE.match(line) for line in lines]
    assert all(f["phase"].startswith("open loop at 400 msg/s, ") and f["phase"].endswith(" behind schedule")
               and f["total"] == "600" and f["latency"] == "response p99" for f in fields), lines
    assert fields[-1]["eta"].endswith(" s") and float(fields[-1]["eta"].split()[0]) < 1.5, lines


def test_with_worker_processes_the_parent_shows_their_figures(chat_url: str, tmp_path: Path) -> None:
    lines = client(chat_url, tmp_path, "--messages", "30000", "--warmup-threads", "0", "--threads", "4",
                   "--processes", "2", "--progress-interval", "0.1")
    fields = [LINE.match(line) for line in lines]
    assert any(int(f["done"].replace(",", "")) > 0 and f["p99"] != "-" for f in fields), lines


def test_quiet_prints_no_progress(chat_url: str, tmp_path: Path) -> None:
    # Half a second of schedule: without --quiet, about ten lines.
    assert client(chat_url, tmp_path, "--rate", "1000", "--duration", "0.5", "--threads", "4",
                  "--progress-interval", "0.05", "--quiet") == []


def test_a_bad_interval_is_a_usage_error(tmp_path: Path) -> None:
    result = run_client("--server", "127.0.0.1:1", "--progress-interval", "0", "--output-dir", str(tmp_path))
    assert result.returncode == 2 and result.stdout == ""
    assert_no_traceback(result)
    assert result.stderr.strip().splitlines()[-1].startswith("chatflow-client: error: argument --progress-interval")


#: The bar's line on the screen: its phase, its count, then format_postfix's figures.
BAR = re.compile(r"^main +\d+%\|.*\| *[\d.]+[kM]?/[\d.]+[kM]? \[\d\d:\d\d, ETA [^,]+, [\d,]+ msg/s, p99 [\d.]+ ms, "
                 r"\d+ failed, \d+ reconnections\]$", re.MULTILINE)


@pytest.mark.timeout(60)
def test_on_a_terminal_it_is_a_bar_with_the_figures(chat_url: str, tmp_path: Path) -> None:
    require(TMUX, "tmux")
    command = [sys.executable, str(RUN_CLIENT), "--server", chat_url, "--messages", "2000000", "--warmup-threads",
               "0", "--threads", "4", "--processes", "1", "--probe-messages", "5", "--no-analysis",
               "--output-dir", str(tmp_path)]
    with TmuxSession(command, REPO_ROOT, width=160, height=20) as terminal:
        # From its second sample (BAR_INTERVAL) the bar has an interval to show a p99 of.
        screen = wait_until(lambda: (text := terminal.screen()) and BAR.search(text) and text, timeout=30,
                            interval=0.2, message="the progress bar with its figures", describe=terminal.screen)
    assert "progress:" not in screen and "Traceback" not in screen
