"""The comparison's report from a comparison.json alone: the console table, the ratios and the
finding for known inputs, comparison.md, comparison.html (self-contained) and the charts, and
the page as a headless Chromium renders it."""

from __future__ import annotations

import json
import re
import struct
from collections.abc import Iterator
from pathlib import Path
from typing import Any, Union

import pytest

from chatflow.compare.finding import CHEAPER, COSTLIER, cpu_verdict, differs, finding, finding_of
from chatflow.compare.report import console, write_reports
from tests.support import browser
from tests.support.comparison_data import EXPECTED, comparison

PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"
#: A msg/s ratio given to :func:`ratios`: a median, or (median, min, max), or None for none.
Given = Union[float, tuple[float, float, float], None]
#: The module's written sitting: its data, its directory and the files written.
Written = tuple[dict, Path, list[Path]]
NAMES = {"python": "Python", "other": "Java"}

FULL_FINDING = (
    "Both sides differ, the clients in msg/s, the servers in CPU: the Python client makes 0.82× (0.74–0.94) "
    "the Java client's msg/s under the same server, at 1.05× (1.05–1.06) its CPU per message; the Python server "
    "is cheaper at about the same rate: 1.05× (0.99–1.06) the Java server's msg/s under the same client at 0.83× "
    "(0.78–0.87) its CPU per message.")


def ratio(median: float, low: float | None = None, high: float | None = None) -> dict[str, float]:
    return {"median": median, "min": median if low is None else low, "max": median if high is None else high}


def ratios(server: Given, client: Given, server_cpu: Given = None, client_cpu: Given = None) -> dict[str, dict]:
    """The server and client ratios of msg/s, and of each side's CPU per message where given:
    a median, or (median, min, max)."""
    def figure(value: Given) -> dict[str, float] | None:
        return None if value is None else ratio(*value) if isinstance(value, tuple) else ratio(value)

    given = {"server": {"numerator": "op", "denominator": "oo", "msg_s": figure(server)},
             "client": {"numerator": "po", "denominator": "oo", "msg_s": figure(client)}}
    for side, cpu in (("server", server_cpu), ("client", client_cpu)):
        if cpu is not None:
            given[side][f"{side}_cpu_us_per_msg"] = figure(cpu)
    return given


@pytest.fixture(scope="module")
def written(tmp_path_factory: pytest.TempPathFactory) -> Written:
    """The full sitting's reports, written once for the module's tests."""
    data = comparison()
    directory = tmp_path_factory.mktemp("comparison")
    return data, directory, write_reports(data, directory)


# -- the finding ------------------------------------------------------------------------------


def test_the_finding_of_the_full_sitting_names_the_slower_client_and_the_cheaper_server() -> None:
    assert finding_of(comparison()) == FULL_FINDING


@pytest.mark.parametrize("server, client, expected", [
    (1.02, 0.97, "Neither side differs by more than 5%: the Python client makes 0.97× the Java client's msg/s "
                 "under the same server; the Python server makes 1.02× the Java server's msg/s under the same "
                 "client."),
    (1.05, 0.95, "Neither side differs by more than 5%: the Python client makes 0.95× the Java client's msg/s "
                 "under the same server; the Python server makes 1.05× the Java server's msg/s under the same "
                 "client."),
    (1.30, 0.98, "The servers are the difference: the Python server makes 1.30× the Java server's msg/s under "
                 "the same client; the clients are about the same: the Python client makes 0.98× the Java "
                 "client's msg/s under the same server."),
    (0.80, 1.10, "Both sides differ, the servers most: the Python server makes 0.80× the Java server's msg/s "
                 "under the same client; the Python client makes 1.10× the Java client's msg/s under the same "
                 "server."),
    ((1.30, 0.90, 1.70), 0.98,
     "No side clearly differs: the servers' rounds disagree: the Python server makes 1.30× (0.90–1.70) the Java "
     "server's msg/s under the same client; the clients are about the same: the Python client makes 0.98× the "
     "Java client's msg/s under the same server."),
    ((1.30, 0.90, 1.70), 0.80,
     "The clients are the difference: the Python client makes 0.80× the Java client's msg/s under the same "
     "server; the servers' rounds disagree: the Python server makes 1.30× (0.90–1.70) the Java server's msg/s "
     "under the same client."),
    (None, 0.70, "The clients are the difference: the Python client makes 0.70× the Java client's msg/s under "
                 "the same server; the servers were not compared (Java → Python failed)."),
    (1.01, None, "The servers are about the same: the Python server makes 1.01× the Java server's msg/s under "
                 "the same client; the clients were not compared (Python → Java failed)."),
    (None, None, "No side can be judged: the clients were not compared (Python → Java failed); the servers "
                 "were not compared (Java → Python failed)."),
])
def test_the_finding_rule(server: Given, client: Given, expected: str) -> None:
    missing = {"server": "Java → Python failed", "client": "Python → Java failed"}
    assert finding(ratios(server, client), NAMES, missing) == expected


@pytest.mark.parametrize("server, client, server_cpu, client_cpu, expected", [
    (1.02, 0.98, (0.83, 0.78, 0.87), None,
     "The servers are the difference, in CPU: the Python server is cheaper at about the same rate: 1.02× the Java "
     "server's msg/s under the same client at 0.83× (0.78–0.87) its CPU per message; the clients are about the "
     "same: the Python client makes 0.98× the Java client's msg/s under the same server."),
    (1.02, 0.98, (0.90, 0.80, 0.95), None,  # one round's CPU within 5 %: not cheaper
     "Neither side differs by more than 5%: the Python client makes 0.98× the Java client's msg/s under the same "
     "server; the Python server makes 1.02× the Java server's msg/s under the same client, at 0.90× (0.80–0.95) "
     "its CPU per message."),
    (0.97, 1.00, (0.80, 0.75, 0.85), (1.20, 1.10, 1.30),
     "Both sides differ in CPU only, the servers most: the Python server is cheaper at about the same rate: 0.97× "
     "the Java server's msg/s under the same client at 0.80× (0.75–0.85) its CPU per message; the Python client "
     "is costlier at about the same rate: 1.00× the Java client's msg/s under the same server at 1.20× "
     "(1.10–1.30) its CPU per message."),
    ((1.30, 0.90, 1.70), 0.98, (0.80, 0.70, 0.90), None,
     "The servers are the difference, in CPU: the Python server is cheaper while its rounds disagree on the rate: "
     "1.30× (0.90–1.70) the Java server's msg/s under the same client at 0.80× (0.70–0.90) its CPU per message; "
     "the clients are about the same: the Python client makes 0.98× the Java client's msg/s under the same "
     "server."),
    (1.30, 0.98, 0.80, None,  # a side that differs in msg/s is judged by msg/s, its CPU said beside
     "The servers are the difference: the Python server makes 1.30× the Java server's msg/s under the same "
     "client, at 0.80× its CPU per message; the clients are about the same: the Python client makes 0.98× the "
     "Java client's msg/s under the same server."),
    (None, 1.00, None, (1.10, 1.06, 1.20),
     "The clients are the difference, in CPU: the Python client is costlier at about the same rate: 1.00× the "
     "Java client's msg/s under the same server at 1.10× (1.06–1.20) its CPU per message; the servers were not "
     "compared (Java → Python failed)."),
])
def test_the_finding_rule_on_cpu_where_msg_s_does_not_differ(server: Given, client: Given, server_cpu: Given,
                                                              client_cpu: Given, expected: str) -> None:
    missing = {"server": "Java → Python failed", "client": "Python → Java failed"}
    assert finding(ratios(server, client, server_cpu, client_cpu), NAMES, missing) == expected


def test_a_side_within_tolerance_is_about_the_same_at_its_edge() -> None:
    assert not differs(1.05) and not differs(0.95)
    assert differs(1.051) and differs(0.949)
    assert cpu_verdict({"median": 0.8, "min": 0.7, "max": 0.95}) is None
    assert cpu_verdict({"median": 0.8, "min": 0.7, "max": 0.949}) == CHEAPER
    assert cpu_verdict({"median": 1.2, "min": 1.05, "max": 1.3}) is None
    assert cpu_verdict({"median": 1.2, "min": 1.051, "max": 1.3}) == COSTLIER


def test_a_missing_ratio_entry_is_not_compared() -> None:
    assert finding({}, NAMES).startswith("No side can be judged: the clients were not compared")


# -- the console ------------------------------------------------------------------------------


def test_console_has_every_pairing_the_ratios_and_the_finding_last() -> None:
    text = console(comparison())
    lines = text.splitlines()
    rows = {line.split("  ")[0]: line for line in lines if "/ 1,500,000" in line}
    assert list(rows) == ["Java → Java", "Java → Python", "Python → Java", "Python → Python"]
    assert "15,000 (14,000–16,000)" in rows["Java → Java"]
    assert re.search(r"3/3 +12,300 \(10,360–15,040\) +6\.10 +24\.2 +44\.0 +94\.5 +61 +1,500,000 / 1,500,000$",
                     rows["Python → Java"])
    assert re.search(r" 4† +12† ", rows["Java → Java"])  # whole ms, marked
    assert "† The Java client writes latencies in whole milliseconds" in text
    server = next(line for line in lines if re.match(r"server {2,}", line))
    client = next(line for line in lines if re.match(r"client {2,}", line))
    median, low, high = EXPECTED["server msg/s"]
    assert f"{median:.2f}× ({low:.2f}–{high:.2f})" in server
    assert "0.83× (0.78–0.87)" in server
    assert "0.82× (0.74–0.94)" in client and "1.05× (1.05–1.06)" in client
    assert lines[-1] == FULL_FINDING


def test_console_reports_a_failed_pairing_and_its_errors() -> None:
    error = "other client exited with status 1: could not find or load main class"
    text = console(comparison(failed={"po": error}))
    assert re.search(r"^Python → Java +0/3 +failed$", text, re.M)
    assert [line for line in text.splitlines() if error in line] == [
        f"  Python → Java, round 1 (run 2): {error}", f"  Python → Java, round 2 (run 7): {error}",
        f"  Python → Java, round 3 (run 10): {error}"]
    assert text.splitlines()[-1].endswith("the clients were not compared (Python → Java failed).")


def test_console_with_only_some_pairings() -> None:
    text = console(comparison(only=["pp", "op"], rounds=2))
    assert "Java → Python        2/2" in text and "Python → Python      2/2" in text
    assert "Java → Java" not in text.split("\n\n")[1]  # the pairing table has no row for it
    assert text.splitlines()[-1] == (
        "No side can be judged: the clients were not compared (Python → Java was not run and Java → Java was "
        "not run); the servers were not compared (Java → Java was not run).")


def test_no_whole_ms_note_where_every_client_has_sub_ms_latencies() -> None:
    text = console(comparison(other="Go", other_whole_ms=False))
    assert "†" not in text and "Go → Go" in text


# -- the files --------------------------------------------------------------------------------


def png_size(path: Path) -> tuple[int, int]:
    head = path.read_bytes()[:24]
    assert head[:8] == PNG_SIGNATURE and head[12:16] == b"IHDR", f"{path} is not a PNG"
    return struct.unpack(">II", head[16:24])


def test_every_file_is_written_and_every_chart_is_a_png(written: Written) -> None:
    _, directory, paths = written
    assert [p.name for p in paths] == ["comparison.md", "comparison.html", "comparison_throughput.png",
                                       "comparison_latency_cdf.png", "comparison_bars.png"]
    for path in paths[2:]:
        width, height = png_size(path)
        assert width >= 800 and height >= 400


def test_markdown_has_the_tables_the_finding_and_relative_chart_links(written: Written) -> None:
    data, directory, _ = written
    text = (directory / "comparison.md").read_text(encoding="utf-8")
    assert f"**Finding.** {FULL_FINDING}" in text
    assert "| Python → Java | 3/3 | 12,300 (10,360–15,040) | 6.10 (5.40–7.30) |" in text
    assert "| client | Python → Java ÷ Java → Java | 0.82× (0.74–0.94) |  | 1.05× (1.05–1.06) |" in text
    for name in ("comparison_throughput.png", "comparison_latency_cdf.png", "comparison_bars.png"):
        assert f"]({name})" in text
    assert text.count("\n| ") >= 4 + 3 + len(data["runs"])
    assert "java-original/run_client.sh {url} {messages}" in text


def test_html_is_self_contained(written: Written) -> None:
    _, directory, _ = written
    page = (directory / "comparison.html").read_text(encoding="utf-8")
    sources = re.findall(r'src="([^"]*)"', page)
    assert len(sources) == 3 and all(s.startswith("data:image/png;base64,") for s in sources)
    without_data = re.sub(r'"data:[^"]*"', '""', page)
    for reference in ("http:", "https:", "//", "href=", "url(", "@import", "<script", "<link"):
        assert reference not in without_data
    assert FULL_FINDING.replace("'", "&#x27;") in page
    assert '<td>12,300<span class="range">10,360–15,040</span></td>' in page  # the range on its own line
    assert '<h2>Every run</h2><details><summary>12 rows: open to show</summary>' in page  # folded until opened


def test_html_sets_apart_only_the_ranges_of_figures(tmp_path: Path) -> None:
    error = "other client exited with status 3 (no luck)"
    write_reports(comparison(rounds=1, failed={"po": error}), tmp_path)
    page = (tmp_path / "comparison.html").read_text(encoding="utf-8")
    assert f"<td>{error}</td>" in page and "no luck</span>" not in page
    assert '<td>4†</td>' in page  # a whole-ms median of one round: no range, its mark kept


def test_a_report_from_the_saved_json_is_the_same(written: Written, tmp_path: Path) -> None:
    data, directory, _ = written
    saved = json.loads(json.dumps(data))
    write_reports(saved, tmp_path)
    assert (tmp_path / "comparison.md").read_text() == (directory / "comparison.md").read_text()


def test_a_failed_pairing_is_written_as_failed(tmp_path: Path) -> None:
    write_reports(comparison(rounds=2, failed={"oo": "other server exited with status 127 before listening"}),
                  tmp_path)
    text = (tmp_path / "comparison.md").read_text(encoding="utf-8")
    assert "| Java → Java | 0/2 | failed |" in text
    assert "- Java → Java, round 1 (run 4): other server exited with status 127 before listening" in text
    assert "No side can be judged" in text
    for name in ("comparison_throughput.png", "comparison_latency_cdf.png", "comparison_bars.png"):
        png_size(tmp_path / name)


# -- in a browser -----------------------------------------------------------------------------


@pytest.fixture(scope="module")
def chromium() -> Iterator[Any]:
    yield from browser.chromium_or_skip()


def test_the_page_in_a_browser(written: Written, chromium: Any, tmp_path: Path) -> None:
    data, directory, _ = written
    page = browser.open_page(chromium, directory / "comparison.html")
    assert page.title.startswith("ChatFlow comparison: Python and Java")
    assert len(page.images) == 3
    assert all(image["complete"] and image["width"] > 0 for image in page.images), page.images
    assert all(name.startswith("data:") for name in page.resources), page.resources
    assert page.errors == []
    for code in data["codes"].values():
        assert re.search(rf"^{code['label']} 3/3 ", page.text, re.M), code["label"]
    shot = browser.full_page_png(chromium)
    (tmp_path / "screenshot.png").write_bytes(shot)
    browser.keep_screenshot(shot)
    width, height = png_size(tmp_path / "screenshot.png")
    assert width >= 1000 and height > 2000  # the whole page, not the window
    from matplotlib.image import imread

    pixels = imread(tmp_path / "screenshot.png")
    assert pixels.std() > 0.05, "the screenshot is blank"
