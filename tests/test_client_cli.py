"""``run_client.py`` as a user runs it: a process, its output, its exit status (SPEC §2, §3)."""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import sys
from pathlib import Path

import pytest

from chatflow.server.process import OutputLines
from tests.support.client_runs import SUMMARY_LABELS, assert_no_traceback, figure
from tests.support.network import free_port
from tests.support.processes import REPO_ROOT, RUN_CLIENT, run_client

def test_unreachable_server_is_a_clear_failure(tmp_path: Path) -> None:
    closed = free_port()
    result = run_client("--server", f"127.0.0.1:{closed}", "--timeout", "0.5", "--output-dir", str(tmp_path))
    assert result.returncode == 1, result
    assert_no_traceback(result)
    last = result.stdout.strip().splitlines()[-1]
    assert last.startswith("FAILED: could not connect"), result.stdout
    assert f"127.0.0.1:{closed}" in last and "refused" in last.lower()


@pytest.mark.parametrize(
    ("args", "option"),
    [
        (["--messages", "-1"], "--messages"),
        (["--threads", "0"], "--threads"),
        (["--timeout", "0"], "--timeout"),
        (["--server", "not a host"], "--server"),
        (["--server", "127.0.0.1:99999"], "--server"),
    ],
    ids=["negative-messages", "zero-threads", "zero-timeout", "server-not-a-host", "port-out-of-range"],
)
def test_bad_option_is_a_one_line_usage_error(args: list[str], option: str, tmp_path: Path) -> None:
    if "--server" not in args:
        args = ["--server", "127.0.0.1:1", *args]
    result = run_client(*args, "--output-dir", str(tmp_path))
    assert result.returncode == 2, result
    assert_no_traceback(result)
    assert result.stdout == ""
    errors = [line for line in result.stderr.splitlines() if "error:" in line]
    assert errors == [result.stderr.strip().splitlines()[-1]], result.stderr
    assert errors[0].startswith(f"chatflow-client: error: argument {option}"), result.stderr


def test_local_run_prints_the_summary_and_ends_ok(tmp_path: Path) -> None:
    result = run_client("--local", "--messages", "3000", "--warmup-threads", "2", "--warmup-messages", "500",
                        "--threads", "4", "--probe-messages", "20", "--output-dir", str(tmp_path))
    assert result.returncode == 0, result
    assert_no_traceback(result)
    out = result.stdout
    for label in SUMMARY_LABELS:
        assert re.search(rf"^\s*{re.escape(label)}", out, re.MULTILINE), f"no {label!r} line in:\n{out}"
    assert out.strip().splitlines()[-1].startswith("OK")
    assert (figure(out, "Messages generated"), figure(out, "Successful"), figure(out, "Failed")) == (3_000, 3_000, 0)
    assert re.search(r"^Warmup phase .* 2 threads, 1,000 ok", out, re.MULTILINE), out
    assert re.search(r"^Main phase .* 4 threads, 2,000 ok", out, re.MULTILINE), out
    assert (figure(out, "Connections opened"), figure(out, "Reconnections")) == (6, 0)
    # The local server ran as its own process and left its log in the output directory.
    assert "listening on ws://" in (tmp_path / "server.log").read_text()
    # One metrics row per message, then the statistics, the report and the charts.
    [csv] = tmp_path.glob("metrics_*.csv")
    rows = csv.read_text().splitlines()
    assert rows[0] == "timestamp,messageType,latency,statusCode,roomId,final"
    assert len(rows) == 1 + 3_000 and all(row.endswith(",1") and ",success," in row for row in rows[1:])
    assert re.search(r"^Aggregated\s+3,000\s+0\s", out, re.MULTILINE), out
    report = json.loads(csv.with_name(csv.stem + "_report.json").read_text())
    assert report["analysis"]["messages"] == report["run"]["summary"]["successful"] == 3_000
    assert report["run"]["littles_law"][0]["phase"] == "warmup"
    assert csv.with_name(csv.stem + "_report.md").read_text().startswith("# ")
    for chart in ("throughput", "latency", "rooms"):
        assert csv.with_name(f"{csv.stem}_{chart}.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


@pytest.mark.timeout(60)
def test_ctrl_c_stops_the_run_counted_with_status_130(tmp_path: Path) -> None:
    process = subprocess.Popen(
        [sys.executable, str(RUN_CLIENT), "--local", "--messages", "5000000", "--warmup-threads", "2",
         "--warmup-messages", "100", "--output-dir", str(tmp_path)],
        cwd=REPO_ROOT, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
        # Its own process group, so SIGINT reaches the client and its local server as a
        # terminal's Ctrl-C would.
        start_new_session=True,
    )
    stdout = OutputLines(process.stdout, name="client-stdout")
    stderr = OutputLines(process.stderr, name="client-stderr")
    try:
        assert stderr.wait_for(re.compile(r"^progress: [\d,]+/").search, 30), f"no progress line in:\n{stderr.text}"
        os.killpg(process.pid, signal.SIGINT)
        returncode = process.wait(15)
    finally:
        if process.poll() is None:
            os.killpg(process.pid, signal.SIGKILL)
            process.wait(5)
        for lines in (stdout, stderr):
            lines.join(5)
    out = stdout.text
    assert returncode == 130, out + stderr.text
    assert_no_traceback(out + stderr.text)
    for label in SUMMARY_LABELS:
        assert label in out, f"no {label!r} in:\n{out}"
    assert stdout.lines[-1].startswith("INTERRUPTED"), out
    generated, success, failed = figure(out, "Messages generated"), figure(out, "Successful"), figure(out, "Failed")
    assert success > 0 and success + failed == generated
    assert stdout.lines[-1] == (f"INTERRUPTED: {success:,} of {generated:,} generated messages succeeded, "
                                f"{failed:,} counted failed")
