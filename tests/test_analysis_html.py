"""The analysis's HTML report (``<stem>_report.html``) and its several-runs page, from real
small client runs against a real local server, opened in a headless Chromium."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from chatflow.analysis.cli import main
from chatflow.analysis.html_report import render_run, render_runs
from chatflow.analysis.performance_analyzer import PerformanceAnalyzer
from tests.support import browser
from tests.support.client_runs import assert_no_traceback
from tests.support.processes import run_client

#: Small runs with a warmup, so that the page has a warmup/main boundary to mark.
RUNS = {"a": ("3000", "4"), "b": ("2000", "2")}
#: Fine buckets for a run of a few tenths of a second, so the throughput curve has points.
BUCKET = "0.02"


def client_run(directory: Path, messages: str, threads: str) -> Path:
    """One real run (its own analysis writes the first report); returns its CSV."""
    result = run_client("--local", "--messages", messages, "--warmup-threads", "2", "--warmup-messages", "200",
                        "--threads", threads, "--probe-messages", "5", "--quiet", "--output-dir", str(directory))
    assert result.returncode == 0, result
    assert_no_traceback(result)
    [csv] = directory.glob("metrics_*.csv")
    return csv


@pytest.fixture(scope="module")
def runs(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    return {name: client_run(tmp_path_factory.mktemp(f"run_{name}"), *given) for name, given in RUNS.items()}


@pytest.fixture(scope="module")
def chromium() -> Iterator[Any]:
    yield from browser.chromium_or_skip()


def rows(chrome: Any, table_id: str) -> int:
    return chrome.execute_script(f"return document.querySelectorAll('#{table_id} tbody tr').length;")


def columns(chrome: Any, table_id: str) -> int:
    return chrome.execute_script(f"return document.querySelectorAll('#{table_id} thead th').length;")


def assert_loaded(page: browser.PageLoad, images: int) -> None:
    assert len(page.images) == images, page.images
    assert all(image["complete"] and image["width"] > 0 for image in page.images), page.images
    assert all(name.startswith("data:") for name in page.resources), page.resources
    assert page.errors == []


def test_the_client_writes_the_html_report_beside_the_markdown(runs: dict[str, Path]) -> None:
    csv = runs["a"]
    page = csv.with_name(f"{csv.stem}_report.html")
    assert csv.with_name(f"{csv.stem}_report.md").exists()
    text = page.read_text(encoding="utf-8")
    assert text.startswith("<!DOCTYPE html>") and "http://" not in text and "https://" not in text
    assert "Warmup → main boundary at" in text


def test_one_run_in_a_browser(runs: dict[str, Path], chromium: Any, tmp_path: Path) -> None:
    csv = runs["a"]
    assert main([str(csv), "--bucket-seconds", BUCKET, "--output-dir", str(tmp_path)]) == 0
    report = json.loads(csv.with_name(f"{csv.stem}_report.json").read_text(encoding="utf-8"))
    analysis = json.loads((tmp_path / f"{csv.stem}_report.json").read_text(encoding="utf-8"))["analysis"]
    page = browser.open_page(chromium, tmp_path / f"{csv.stem}_report.html")
    assert page.title == f"ChatFlow metrics report: {csv.name}"
    assert_loaded(page, images=4)
    assert rows(chromium, "summary") == 9
    assert rows(chromium, "outcomes") == len(analysis["status_counts"])
    assert rows(chromium, "types") == len(analysis["message_types"]) == 3
    assert rows(chromium, "buckets") == len(analysis["buckets"]) > 5
    assert rows(chromium, "rooms") == len(analysis["rooms"])
    assert rows(chromium, "thresholds") == 0
    assert "Thresholds" not in page.text
    # the boundary comes from the client's figures, kept from its report
    warmup = report["run"]["summary"]["warmup_duration_s"]
    assert f"Warmup → main boundary at {warmup:,.3f} s" in page.text
    assert "Successful" in page.text and "Little" in page.text
    shot = browser.full_page_png(chromium)
    browser.keep_screenshot(shot)
    assert len(shot) > 10_000


def test_several_runs_side_by_side_in_a_browser(runs: dict[str, Path], chromium: Any, tmp_path: Path) -> None:
    files = [str(runs["a"]), str(runs["b"])]
    assert main([*files, "--bucket-seconds", BUCKET, "--output-dir", str(tmp_path)]) == 0
    page_path = tmp_path / f"{runs['a'].stem}_comparison.html"
    page = browser.open_page(chromium, page_path)
    assert page.title == "ChatFlow metrics: 2 runs compared"
    assert_loaded(page, images=2 + 2 * 2)  # two overlaid charts, each run's latency and rooms
    assert columns(chromium, "runs") == 3
    assert rows(chromium, "runs") >= 17
    assert runs["a"].stem in page.text and runs["b"].stem in page.text


def test_thresholds_render_escaped_and_only_when_given(runs: dict[str, Path], tmp_path: Path) -> None:
    analysis = PerformanceAnalyzer(float(BUCKET)).analyze(runs["b"])
    judged = [("p99 < 50 ms", True, "p99 3.2 ms"), ("<script>alert(1)</script> & fails", False, "1 < 2")]
    html = render_run(analysis, {}, thresholds=judged)
    assert '<table id="thresholds">' in html
    assert "&lt;script&gt;alert(1)&lt;/script&gt; &amp; fails" in html and "<script>" not in html
    assert "1 of 2 thresholds failed." in html
    assert html.count('<tr class="failed">') == 1
    assert "Thresholds" not in render_run(analysis, {}, thresholds=[])
    several = render_runs(["a", "b"], [analysis, analysis], {}, [{}, {}], thresholds=[judged, None])
    assert several.count("<h2>Thresholds: a</h2>") == 1 and "Thresholds: b" not in several
