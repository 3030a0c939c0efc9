"""summary.json (issue #16): written by every run beside its CSV, its figures the
console's, read back by ``chatflow.analysis``; real runs against real servers."""

from __future__ import annotations

import json
import re
import signal
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from chatflow.analysis.cli import main as analysis_main
from chatflow.analysis.performance_analyzer import AnalysisError
from chatflow.analysis.summary_file import boundary_of, load_summary, summary_beside, thresholds_of
from chatflow.client.config import LoadTestConfig
from chatflow.metrics import SUMMARY_SCHEMA, summary_path
from chatflow.server.process import OutputLines
from tests.support.client_runs import assert_no_traceback, figure, line_after, summary_json
from tests.support.network import free_port
from tests.support.processes import REPO_ROOT, RUN_CLIENT, ListeningServer, run_client, server_process

SMALL_RUN = ("--messages", "600", "--warmup-threads", "2", "--warmup-messages", "50", "--threads", "4",
             "--probe-messages", "10", "--processes", "1", "--quiet", "--no-analysis")
THRESHOLDS = ("--threshold", "p99<30s", "--threshold", "failures==0", "--threshold", "failure_rate<0.1%",
              "--threshold", "throughput>=1e12")


@pytest.fixture(scope="module")
def server() -> Iterator[ListeningServer]:
    with server_process() as running:
        yield running


@pytest.fixture(scope="module")
def echo_run(server: ListeningServer, tmp_path_factory: pytest.TempPathFactory):
    """One closed-loop run with thresholds: its process result, its directory, its summary.json."""
    directory = tmp_path_factory.mktemp("echo")
    args = ("--server", f"127.0.0.1:{server.chat_port}", *SMALL_RUN, "--output-dir", str(directory), *THRESHOLDS)
    result = run_client(*args)
    assert_no_traceback(result)
    return result, directory, summary_json(directory), args


def test_the_file_is_beside_the_csv_and_its_path_printed(echo_run) -> None:
    result, directory, document, _ = echo_run
    [csv] = directory.glob("metrics_*.csv")
    path = summary_path(csv)
    assert path.name == f"{csv.stem}.summary.json" and path.exists()
    lines = result.stdout.splitlines()
    metrics = next(i for i, line in enumerate(lines) if line.startswith("Metrics: "))
    assert lines[metrics:metrics + 2] == [f"Metrics: {csv} (600 rows)", f"Summary: {path}"]
    assert document["metrics_csv"] == {"path": str(csv), "rows": 600, "error": None}


def test_command_configuration_and_versions(echo_run) -> None:
    _, directory, document, args = echo_run
    assert document["schema"] == SUMMARY_SCHEMA
    assert document["command"]["argv"] == [str(RUN_CLIENT), *args]
    assert document["command"]["line"].endswith("--threshold 'p99<30s' --threshold failures==0 "
                                                "--threshold 'failure_rate<0.1%' --threshold 'throughput>=1e12'")
    configuration = document["configuration"]
    assert set(configuration) == set(LoadTestConfig.__dataclass_fields__)
    assert (configuration["messages"], configuration["threads"], configuration["warmup_threads"],
            configuration["output_dir"], configuration["rate"]) == (600, 4, 2, str(directory), None)
    assert configuration["retry"] == {"max_attempts": 5, "backoff": 0.1}
    versions = document["versions"]
    assert set(versions) == {"chatflow", "python", "websockets", "websocket-client", "orjson", "platform"}
    assert versions["python"] == ".".join(map(str, sys.version_info[:3]))
    assert all(versions.values()), versions


def test_every_console_figure_is_in_the_file_with_the_same_value(echo_run) -> None:
    result, _, d, _ = echo_run
    out = result.stdout
    totals, cpu, law = d["totals"], d["cpu"], d["littles_law"]
    assert (figure(out, "Messages generated"), figure(out, "Successful"), figure(out, "Failed")) == (
        totals["generated"], totals["successful"], totals["failed"]) == (600, 600, 0)
    assert (figure(out, "Connections opened"), figure(out, "Reconnections"), figure(out, "Retries"),
            figure(out, "Queue found empty")) == (totals["connections_opened"], totals["reconnections"],
                                                   totals["retries"], totals["queue_found_empty"])
    assert line_after(out, "Server") == ", ".join(d["servers"])
    assert line_after(out, "Total wall time").startswith(f"{d['wall_time_s']:.2f} s ")
    assert [p["name"] for p in d["phases"]] == ["warmup", "main"]
    for p in d["phases"]:
        assert line_after(out, f"{p['name'].capitalize()} phase") == (
            f"{p['duration_s']:.2f} s, {p['threads']} threads, {p['ok']:,} ok → {p['msg_per_s']:,.0f} msg/s")
        assert p["failed"] == 0 and p["latency"]["count"] == p["ok"] == p["messages"]
    assert line_after(out, "Overall throughput") == (f"{d['throughput_msg_s']:,.0f} msg/s (successful messages / "
                                                     f"{d['phases_time_s']:.2f} s of phases)")
    assert line_after(out, "CPU per message") == f"client {cpu['client_us_per_message']:.1f} µs"
    assert cpu["server_s"] is None, "the server's CPU is known only with --local"
    load = d["client_load"]
    assert line_after(out, "Client CPU use") == (f"{load['cores_used']:.2f} cores = {cpu['client_s']:.2f} s CPU / "
                                                 f"{d['phases_time_s']:.2f} s of phases")
    assert line_after(out, "Client saturated").startswith("yes: " if load["saturated"] else "no: ")
    assert line_after(out, "Client peak RSS").startswith(f"{d['client_peak_rss_mib']:.0f} MiB")
    wait = d["client_wait"]
    if wait is not None:
        assert line_after(out, "Client wait").startswith(
            f"p50 {wait['p50_ms']:.2f} ms, p99 {wait['p99_ms']:.2f} ms, mean {wait['mean_ms']:.2f} ms")
    assert f"Little's Law (W = {law['round_trip_ms']:.3f} ms on one idle connection)" in out
    for p in law["predictions"]:
        assert re.search(rf"^  {p['phase']:<8}{p['threads']:>8}{p['predicted_msg_s']:>14,.0f}"
                         rf"{p['actual_msg_s']:>12,.0f}{p['actual_over_predicted']:>13.2f}\s+"
                         rf"{p['mean_latency_ms']:.3f} ms\s+{p['concurrency_L']:.1f}$", out, re.M), p
    bounds = law["bounds"]
    assert line_after(out, "Bound").startswith(f"{bounds['bound']}: main phase at {bounds['actual_over_bound']:.2f} ")
    warmup = bounds["from_warmup"]
    assert f"Little's Law the seed's way (W = {warmup['round_trip_ms']:.3f} ms, the warmup's mean latency)" in out
    # The run's latency (no console line of its own: the thresholds show it).
    latency = d["latency"]
    assert latency["measure"] == "round trip" and latency["count"] == 600
    assert latency["p50_ms"] <= latency["p90_ms"] <= latency["p95_ms"] <= latency["p99_ms"] <= latency["p999_ms"] \
        <= latency["max_ms"]
    assert d["open_loop"] is None and d["fanout"] is None and d["unreachable"] is None and not d["interrupted"]


def test_the_thresholds_and_the_exit_as_the_console_ends(echo_run) -> None:
    result, _, d, _ = echo_run
    lines = result.stdout.splitlines()
    start = lines.index("Thresholds (--threshold)")
    assert lines[start + 1:start + 5] == [f"  {t['text']}" for t in d["thresholds"]]
    assert lines[start + 5] == "=" * 72
    assert [(t["expression"], t["passed"]) for t in d["thresholds"]] == [
        ("p99<30s", True), ("failures==0", True), ("failure_rate<0.1%", True), ("throughput>=1e12", False)]
    p99, failures, rate, throughput = d["thresholds"]
    assert (p99["metric"], p99["operator"], p99["limit"], p99["unit"]) == ("p99", "<", 30_000.0, "ms")
    assert p99["measured"] == d["latency"]["p99_ms"] and p99["measured_text"].endswith(" ms (round trip)")
    assert (failures["measured"], rate["measured"], rate["limit"]) == (0, 0.0, 0.001)
    assert throughput["measured"] == d["throughput_msg_s"]
    assert result.returncode == 3
    assert d["exit"] == {"status": 3, "name": "thresholds crossed", "reason": lines[-1]}


def test_a_run_without_thresholds_prints_as_before_and_still_writes_the_file(server: ListeningServer,
                                                                               tmp_path: Path) -> None:
    result = run_client("--server", f"127.0.0.1:{server.chat_port}", *SMALL_RUN, "--output-dir", str(tmp_path))
    assert result.returncode == 0, result
    out = result.stdout
    assert "Thresholds" not in out and "✓" not in out
    lines = out.splitlines()
    # The summary closes with its rule right after the bound, then the files, then the verdict.
    bound = next(i for i, line in enumerate(lines) if line.startswith("Bound "))
    assert lines[bound + 1:bound + 3] == ["=" * 72, ""]
    assert [line.split(":")[0] for line in lines[bound + 3:]] == ["Metrics", "Summary", "OK"]
    document = summary_json(tmp_path)
    assert document["thresholds"] == []
    assert document["exit"] == {"status": 0, "name": "ok", "reason": "OK: all 600 messages succeeded"}


def test_an_open_loop_run_records_its_schedule_and_response_time(server: ListeningServer, tmp_path: Path) -> None:
    result = run_client("--server", f"127.0.0.1:{server.chat_port}", "--rate", "500", "--duration", "0.6",
                        "--threads", "4", "--probe-messages", "5", "--quiet", "--no-analysis",
                        "--output-dir", str(tmp_path), "--threshold", "p99<30s")
    assert result.returncode == 0, result
    out, d = result.stdout, summary_json(tmp_path)
    o = d["open_loop"]
    assert (o["rate_asked_msg_s"], o["messages"], o["senders"]) == (500.0, 300, 4)
    assert line_after(out, "Rate asked") == "500.0 msg/s over 4 senders, one message in flight each"
    assert line_after(out, "Rate achieved").startswith(f"{o['rate_achieved_msg_s']:,.1f} msg/s")
    assert line_after(out, "Behind schedule").startswith(f"{o['behind_schedule']:,} of 300 messages")
    response = o["response_time"]
    assert line_after(out, "Response time").startswith(
        f"p50 {response['p50_ms']:.2f}, p95 {response['p95_ms']:.2f}, p99 {response['p99_ms']:.2f}, "
        f"max {response['max_ms']:.2f} ms")
    # The run's latency, which the thresholds read, is the response time here.
    latency = d["latency"]
    assert latency["measure"] == "response time"
    assert {k: latency[k] for k in response} == response
    assert d["thresholds"][0]["text"].startswith("p99 (response time) ")
    assert f"  {d['thresholds'][0]['text']}" in out.splitlines()
    assert [p["name"] for p in d["phases"]] == ["main"]
    # Little's Law says how many waited or were in flight; it predicts no rate, hits no bound.
    assert o["concurrency_L"] == pytest.approx(o["rate_achieved_msg_s"] * o["mean_response_ms"] / 1000)
    assert round(o["mean_response_ms"], 3) == latency["mean_ms"]
    assert line_after(out, "  L = λ·W").startswith(f"= {o['rate_achieved_msg_s']:,.1f} msg/s × ")
    assert "Little's Law the seed's way" not in out and "Bound" not in out and "predicted λ" not in out


def test_a_broadcast_run_records_its_deliveries(tmp_path: Path) -> None:
    with server_process("--mode", "broadcast") as server:
        result = run_client("--server", server.url, "--scenario", "broadcast", "--messages", "400", "--rooms", "3",
                            "--room-members", "2", "--threads", "4", "--warmup-threads", "0", "--drain-timeout",
                            "0.3", "--probe-messages", "5", "--quiet", "--no-analysis", "--output-dir", str(tmp_path),
                            "--threshold", "missing==0", "--threshold", "fanout_p99<30s")
    assert result.returncode == 0, result
    out, d = result.stdout, summary_json(tmp_path)
    f = d["fanout"]
    assert (f["room_members"], f["expected"], f["missing"], f["ok"]) == (2, 800, 0, True)
    for label, key in [("Deliveries expected", "expected"), ("Deliveries received", "received"),
                       ("Deliveries missing", "missing"), ("Deliveries duplicated", "duplicated"),
                       ("Deliveries out of order", "out_of_order"), ("Deliveries unexpected", "unexpected"),
                       ("Member reconnects", "member_reconnects")]:
        assert figure(out, label) == f[key], label
    last = f["last_member_latency"]
    assert line_after(out, "Fan-out last member").startswith(f"p50 {last['p50_ms']:.2f}, p95 {last['p95_ms']:.2f}")
    assert sum(room["expected"] for room in f["rooms"]) == 800
    assert [t["passed"] for t in d["thresholds"]] == [True, True]
    assert d["thresholds"][1]["measured"] == last["p99_ms"]
    assert d["exit"]["reason"] == out.strip().splitlines()[-1]


def test_an_unreachable_server_writes_a_file_that_says_so(tmp_path: Path) -> None:
    port = free_port()
    result = run_client("--server", f"127.0.0.1:{port}", "--timeout", "0.3", "--quiet", "--no-analysis",
                        "--output-dir", str(tmp_path), "--threshold", "p99<1s")
    assert result.returncode == 1, result
    assert_no_traceback(result)
    d = summary_json(tmp_path)
    assert d["unreachable"] and f"127.0.0.1:{port}" in d["unreachable"]
    assert d["phases"] == [] and d["totals"]["generated"] == 0
    assert d["thresholds"][0]["measured"] is None and not d["thresholds"][0]["passed"]
    assert d["exit"]["status"] == 1 and d["exit"]["reason"].startswith("FAILED: could not connect")
    assert d["exit"]["reason"].endswith("(and 1 of 1 threshold crossed)")
    assert d["exit"]["reason"] == result.stdout.strip().splitlines()[-1]


@pytest.mark.timeout(60)
def test_an_interrupted_run_writes_a_file_that_says_so(server: ListeningServer, tmp_path: Path) -> None:
    process = subprocess.Popen(
        [sys.executable, str(RUN_CLIENT), "--server", f"127.0.0.1:{server.chat_port}", "--messages", "5000000",
         "--warmup-threads", "0", "--threads", "2", "--probe-messages", "5", "--processes", "1", "--quiet",
         "--no-analysis", "--output-dir", str(tmp_path)],
        cwd=REPO_ROOT, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    stdout = OutputLines(process.stdout, name="client-stdout")
    stderr = OutputLines(process.stderr, name="client-stderr")
    try:
        # The prediction is printed once the probe is done, as the phase starts.
        assert stdout.wait_for(re.compile(r"^  main .* threads → predicted").search, 30), stdout.text
        process.send_signal(signal.SIGINT)
        returncode = process.wait(15)
    finally:
        if process.poll() is None:
            process.kill()
            process.wait(5)
        for lines in (stdout, stderr):
            lines.join(5)
    assert returncode == 130, stdout.text + stderr.text
    d = summary_json(tmp_path)
    assert d["interrupted"] and d["exit"]["status"] == 130 and d["exit"]["name"] == "interrupted"
    assert d["exit"]["reason"] == stdout.lines[-1] and d["exit"]["reason"].startswith("INTERRUPTED")
    assert d["totals"]["successful"] == figure(stdout.text, "Successful")


# -- read back ------------------------------------------------------------------------------


def test_the_loader_reads_a_good_file_and_the_reports_get_its_thresholds(echo_run, tmp_path: Path,
                                                                        capsys: pytest.CaptureFixture[str]) -> None:
    _, directory, document, _ = echo_run
    [csv] = directory.glob("metrics_*.csv")
    assert load_summary(summary_path(csv)) == summary_beside(csv) == document
    assert thresholds_of(document["thresholds"])[3] == (
        "throughput>=1e12", False, document["thresholds"][3]["measured_text"])
    assert boundary_of(document) == document["phases"][0]["duration_s"]
    # The analysis of the CSV alone (the run had --no-analysis) finds its summary.json.
    assert analysis_main([str(csv), "--output-dir", str(tmp_path)]) == 0
    out = capsys.readouterr().out
    assert f"Thresholds of {csv.stem} (its summary.json; exit status 3, thresholds crossed)" in out
    assert f"  {document['thresholds'][3]['text']}" in out.splitlines()
    report = (tmp_path / f"{csv.stem}_report.md").read_text()
    assert "## Thresholds\n\n1 of 4 thresholds failed.\n" in report
    assert "| throughput>=1e12 | FAILED |" in report and "| p99<30s | passed |" in report
    html = (tmp_path / f"{csv.stem}_report.html").read_text()
    assert '<table id="thresholds">' in html and "1 of 4 thresholds failed." in html


@pytest.mark.parametrize(("content", "says"), [
    (None, "cannot read"),
    ("{", "is not JSON"),
    ("[1, 2]", "is not a ChatFlow summary.json (no integer 'schema' key)"),
    ('{"schema": "1"}', "no integer 'schema' key"),
    ('{"schema": 99}', f"has schema 99; this version reads up to {SUMMARY_SCHEMA}"),
    ('{"schema": 1, "command": {}}', "is not a ChatFlow summary.json (no 'configuration', 'versions'"),
], ids=["missing", "not-json", "not-an-object", "schema-not-int", "newer", "keys-missing"])
def test_the_loader_refuses_what_is_not_a_summary_in_one_line(content: str | None, says: str, tmp_path: Path) -> None:
    path = tmp_path / "run.summary.json"
    if content is not None:
        path.write_text(content)
    with pytest.raises(AnalysisError) as raised:
        load_summary(path)
    assert says in str(raised.value) and "\n" not in str(raised.value)


def test_a_broken_summary_beside_a_csv_is_a_warning_not_the_end(echo_run, tmp_path: Path,
                                                                capsys: pytest.CaptureFixture[str]) -> None:
    _, directory, _, _ = echo_run
    [original] = directory.glob("metrics_*.csv")
    csv = tmp_path / original.name
    csv.write_bytes(original.read_bytes())
    summary_path(csv).write_text(json.dumps({"schema": 1}))
    assert analysis_main([str(csv)]) == 0
    captured = capsys.readouterr()
    assert "chatflow-analysis: warning: " in captured.err and "analysed without it" in captured.err
    assert "## Thresholds" not in (tmp_path / f"{csv.stem}_report.md").read_text()
