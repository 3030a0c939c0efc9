"""``python -m chatflow.compare`` end to end, with ChatFlow standing in as the other
implementation: real servers on free ports, real clients, their CSVs, the JSON, the report."""

from __future__ import annotations

import json
import re
import signal
import subprocess
import sys
from pathlib import Path

import psutil
import pytest

from tests.support.client_runs import assert_no_traceback
from chatflow.compare.commands import CommandTemplate, python_client_template
from chatflow.compare.runner import Experiment, PairingRunner, Sides
from tests.support.compare_runs import (SMALL_MESSAGES, SMALL_RUN, STAND_IN_CLIENT, STAND_IN_SERVER, run_compare,
                                        stand_in)
from tests.support.waiting import wait_until

pytestmark = pytest.mark.timeout(120)

PROGRESS = re.compile(r"^\[(\d+)/(\d+)\] (pp|po|op|oo) round (\d+), ")
CHARTS = ("comparison_throughput.png", "comparison_latency_cdf.png", "comparison_bars.png")


def progress_lines(stdout: str) -> list[str]:
    return [line for line in stdout.splitlines() if PROGRESS.match(line)]


def test_four_pairings_measured_into_the_json_and_the_report(tmp_path: Path) -> None:
    out = tmp_path / "sitting"
    result = run_compare(*stand_in(), *SMALL_RUN, "--rounds", "1", "--output-dir", str(out), cwd=tmp_path)
    assert result.returncode == 0, result.stdout + result.stderr
    assert_no_traceback(result)
    data = json.loads((out / "comparison.json").read_text())
    assert data["schema"] == 1 and data["order"] == ["pp", "po", "op", "oo"]
    assert data["settings"] | {"only": None} == {
        "messages": SMALL_MESSAGES, "warmup_threads": 2, "warmup_messages": 50, "threads": 4, "rounds": 1,
        "rtt_ms": 0.0, "jitter_ms": 0.0, "seed": None, "only": None}
    assert data["codes"]["op"] == {"client": "Twin", "server": "Python", "label": "Twin → Python"}
    assert data["commands"]["other_client"] == stand_in()[3]
    assert [(run["code"], run["round"], run["index"]) for run in data["runs"]] == [
        ("pp", 1, 1), ("po", 1, 2), ("op", 1, 3), ("oo", 1, 4)]
    for run in data["runs"]:
        figures = run["figures"]
        assert run["ok"] and run["error"] is None and run["client_exit"] == 0, run
        assert (figures["messages"], figures["success"], figures["rows"], figures["failed"]) == (
            SMALL_MESSAGES, SMALL_MESSAGES, SMALL_MESSAGES, 0), run
        assert figures["success_ratio"] == 1.0 and figures["msg_s"] > 0 and figures["latency_resolution_ms"] == 0.001
        assert figures["client_cpu_us_per_msg"] > 0 and figures["server_cpu_us_per_msg"] >= 0
        assert figures["client_peak_rss_mib"] > 10 and figures["client_wall_s"] > 0
        assert sum(run["timeline"]["success"]) == SMALL_MESSAGES
        # Each client wrote where it runs: ours under results/, the stand-in's deeper.
        folder = f"runs/{run['index']:02d}-{run['code']}-r1/client/"
        csv = Path(run["csv"])
        assert run["csv"].startswith(folder + ("results/" if run["code"][0] == "p" else "out/metrics/")), run["csv"]
        assert (out / csv).read_text().count("\n") == SMALL_MESSAGES + 1
        assert (out / folder / ".." / "server" / "server.log").exists()
    assert all(data["pairings"][code]["ok_runs"] == 1 for code in ("pp", "po", "op", "oo"))
    assert all(data["ratios"][name]["msg_s"]["median"] > 0 for name in ("server", "client", "pair"))
    assert (out / "comparison.md").read_text().strip()
    page = (out / "comparison.html").read_text()
    assert page.count('src="data:image/png;base64,') == 3, "the three charts, embedded"
    for chart in CHARTS:
        assert (out / chart).read_bytes().startswith(b"\x89PNG\r\n\x1a\n"), chart
    lines = progress_lines(result.stdout)
    assert [PROGRESS.match(line).group(3) for line in lines] == ["pp", "po", "op", "oo"]
    assert all(f"{SMALL_MESSAGES:,}/{SMALL_MESSAGES:,} ok" in line for line in lines), result.stdout

    # The report again, from the saved JSON alone, elsewhere.
    again = run_compare("--report", str(out / "comparison.json"), "--output-dir", str(tmp_path / "again"),
                        cwd=tmp_path)
    assert again.returncode == 0, again.stdout + again.stderr
    assert (tmp_path / "again" / "comparison.md").read_text() == (out / "comparison.md").read_text()
    assert not progress_lines(again.stdout)


def test_a_failing_other_server_fails_its_pairings_only(tmp_path: Path) -> None:
    result = run_compare(*stand_in(server="false"), *SMALL_RUN, "--rounds", "1", "--output-dir", str(tmp_path / "o"),
                         cwd=tmp_path)
    assert result.returncode == 1, result.stdout + result.stderr
    assert_no_traceback(result)
    runs = {run["code"]: run for run in json.loads((tmp_path / "o" / "comparison.json").read_text())["runs"]}
    for code in ("po", "oo"):
        assert not runs[code]["ok"] and runs[code]["figures"] is None
        assert runs[code]["error"] == "the Twin server did not start: it exited with status 1"
    for code in ("pp", "op"):
        assert runs[code]["ok"] and runs[code]["figures"]["success"] == SMALL_MESSAGES
    failed = [line for line in progress_lines(result.stdout) if "FAILED" in line]
    assert failed == ["[2/4] po round 1, Python → Twin: FAILED: the Twin server did not start: it exited with status 1",
                      "[4/4] oo round 1, Twin → Twin: FAILED: the Twin server did not start: it exited with status 1"]


def test_a_client_that_writes_no_csv_or_fails_is_one_line(tmp_path: Path) -> None:
    result = run_compare(*stand_in(client="sh -c 'echo no luck >&2; exit 3'"), *SMALL_RUN, "--only", "tp,tt",
                         "--output-dir", str(tmp_path / "o"), "--rounds", "1", cwd=tmp_path)
    assert result.returncode == 1, result.stdout + result.stderr
    assert_no_traceback(result)
    data = json.loads((tmp_path / "o" / "comparison.json").read_text())
    assert data["settings"]["only"] == data["order"] == ["op", "oo"]
    assert [run["error"] for run in data["runs"]] == ["the Twin client exited with status 3 (no luck)"] * 2
    assert [run["client_exit"] for run in data["runs"]] == [3, 3]

    # It writes nothing and leaves a process behind, which goes with it.
    leaver = "sh -c 'sleep 60 >/dev/null 2>&1 & echo $! > leftover'"
    silent = run_compare(*stand_in(client=leaver), *SMALL_RUN, "--only", "op", "--rounds", "1",
                         "--output-dir", str(tmp_path / "s"), cwd=tmp_path)
    assert silent.returncode == 1
    [line] = progress_lines(silent.stdout)
    assert re.fullmatch(r"\[1/1\] op round 1, Twin → Python: FAILED: the Twin client's metrics: "
                        r"no metrics CSV under \S+/runs/01-op-r1/client", line), line
    leftover = int((tmp_path / "s" / "runs" / "01-op-r1" / "client" / "leftover").read_text())
    wait_until(lambda: not running(leftover), timeout=10, message="the client's leftover gone")


def test_a_relative_program_runs_from_the_tools_directory_and_cwd_names_it(tmp_path: Path) -> None:
    (tmp_path / "bin").mkdir()
    server = tmp_path / "bin" / "serve.sh"
    server.write_text('#!/bin/sh\nexec "$1" -m chatflow.server.main --host 127.0.0.1 --port "$2" --health-port "$3"\n')
    server.chmod(0o755)
    (tmp_path / "client.sh").write_text(STAND_IN_CLIENT.replace("{python} {url}", '"$1" "$2"') + "\n")
    result = run_compare(*stand_in(server="bin/serve.sh {python} {port} {health_port}",
                                   client="sh {cwd}/client.sh {python} {url}"),
                         *SMALL_RUN, "--only", "oo", "--rounds", "1", "--output-dir", str(tmp_path / "o"), cwd=tmp_path)
    assert result.returncode == 0, result.stdout + result.stderr
    [run] = json.loads((tmp_path / "o" / "comparison.json").read_text())["runs"]
    assert run["ok"] and run["figures"]["success"] == SMALL_MESSAGES, run


def test_an_unexpected_error_fails_its_run_only_with_its_traceback_kept(tmp_path: Path) -> None:
    """Here the run's server folder cannot be made: a file is in its place."""
    template = CommandTemplate(STAND_IN_SERVER)
    sides = Sides("Twin", template, CommandTemplate(STAND_IN_CLIENT), python_client_template())
    runner = PairingRunner(Experiment(messages=SMALL_MESSAGES, warmup_threads=0, warmup_messages=0, threads=1),
                           sides, tmp_path)
    run_dir = tmp_path / "runs" / "01-oo-r1"
    run_dir.mkdir(parents=True)
    (run_dir / "server").write_text("in the way")
    entry = runner.run("oo", 1, 1)
    assert not entry["ok"] and entry["figures"] is None
    assert entry["error"].startswith("internal error: FileExistsError: "), entry["error"]
    assert "\n" not in entry["error"]
    assert "Traceback" in (run_dir / "internal-error.txt").read_text()


@pytest.mark.parametrize(("args", "says"), [
    ((), "give --java DIR, or both --other-server CMD and --other-client CMD"),
    (("--other-server", "x"), "give --java DIR, or both"),
    (("--java", "."), "is not a built Java original"),
    (("--other-server", "x {prot}", "--other-client", "y"), "unknown placeholder(s) {prot}"),
    (("--other-server", "x", "--other-client", "y", "--only", "pz"), "unknown pairing 'pz'"),
    (("--other-server", "x", "--other-client", "y", "--rtt-ms", "-3"), "argument --rtt-ms"),
])
def test_usage_errors_are_one_line_and_status_2(tmp_path: Path, args: tuple[str, ...], says: str) -> None:
    result = run_compare(*args, cwd=tmp_path)
    assert result.returncode == 2, result
    assert_no_traceback(result)
    assert result.stdout == ""
    last = result.stderr.strip().splitlines()[-1]
    assert last.startswith("chatflow-compare: error: ") and says in last, result.stderr
    assert not (tmp_path / "results").exists()


def test_a_sitting_does_not_mix_with_an_earlier_one(tmp_path: Path) -> None:
    (tmp_path / "o" / "runs" / "01-pp-r1").mkdir(parents=True)
    result = run_compare(*stand_in(), "--output-dir", str(tmp_path / "o"), cwd=tmp_path)
    assert result.returncode == 2 and "already holds a comparison's runs" in result.stderr


def test_report_of_a_file_that_is_not_a_comparison(tmp_path: Path) -> None:
    (tmp_path / "x.json").write_text("{not json")
    (tmp_path / "y.json").write_text('{"schema": 7}')
    for name in ("x.json", "y.json", "missing.json"):
        result = run_compare("--report", str(tmp_path / name), cwd=tmp_path)
        assert result.returncode == 1, result
        assert_no_traceback(result)
        assert result.stderr.startswith("chatflow-compare: error: ") and len(result.stderr.splitlines()) == 1


def test_report_of_an_incomplete_comparison_is_one_line(tmp_path: Path) -> None:
    (tmp_path / "z.json").write_text('{"schema": 1, "runs": 5}')
    result = run_compare("--report", str(tmp_path / "z.json"), cwd=tmp_path)
    assert result.returncode == 1, result
    assert_no_traceback(result)
    assert result.stderr.startswith("chatflow-compare: error: ") and len(result.stderr.splitlines()) == 1
    assert "z.json is not a complete comparison.json (" in result.stderr, result.stderr


def test_report_with_a_sittings_options_is_a_usage_error(tmp_path: Path) -> None:
    (tmp_path / "a.json").write_text('{"schema": 1}')
    result = run_compare("--report", str(tmp_path / "a.json"), "--rounds", "5", "--rtt-ms", "3", cwd=tmp_path)
    assert result.returncode == 2, result
    assert_no_traceback(result)
    assert result.stderr.strip().splitlines()[-1] == (
        "chatflow-compare: error: --report renders a saved sitting and runs nothing: --rounds, --rtt-ms "
        "cannot go with it")


def test_rtt_puts_a_delay_proxy_in_front_of_the_server(tmp_path: Path) -> None:
    rtt_ms = 10.0
    client = STAND_IN_CLIENT.replace("--quiet", "--quiet --probe-messages 5")
    result = run_compare(*stand_in(client=client), *SMALL_RUN, "--only", "tp", "--rounds", "1", "--rtt-ms", str(rtt_ms),
                         "--output-dir", str(tmp_path / "o"), cwd=tmp_path)
    assert result.returncode == 0, result.stdout + result.stderr
    data = json.loads((tmp_path / "o" / "comparison.json").read_text())
    assert data["settings"]["rtt_ms"] == rtt_ms
    [run] = data["runs"]
    assert run["ok"] and run["figures"]["success"] == SMALL_MESSAGES
    # Every reply crossed the proxy twice, half the round trip each way.
    assert run["cdf"]["latency_ms"][0] >= rtt_ms
    assert rtt_ms <= run["figures"]["latency_ms"]["p50"] < 10 * rtt_ms
    assert run["figures"]["proxy_cpu_us_per_msg"] > 0


def running(pid: int) -> bool:
    try:
        return psutil.Process(pid).status() != psutil.STATUS_ZOMBIE
    except psutil.NoSuchProcess:
        return False


@pytest.mark.parametrize("signum", [signal.SIGINT, signal.SIGTERM, signal.SIGHUP], ids=lambda s: s.name)
def test_ctrl_c_or_a_kill_ends_the_sitting_with_its_client_and_server_gone(tmp_path: Path, signum: int) -> None:
    if signal.getsignal(signum) is signal.SIG_IGN:
        pytest.skip(f"{signal.Signals(signum).name} is ignored here (nohup), and so, as it should be, in the tool")
    # The "other" client records its pid, then waits for a signal that only a kill brings.
    client = "sh -c 'echo $$ > pid; exec sleep 60'"
    process = subprocess.Popen(
        [sys.executable, "-m", "chatflow.compare", *stand_in(client=client), *SMALL_RUN, "--only", "tp",
         "--rounds", "1", "--output-dir", str(tmp_path / "o")],
        cwd=tmp_path, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        pid_file = tmp_path / "o" / "runs" / "01-op-r1" / "client" / "pid"
        server_dir = (tmp_path / "o" / "runs" / "01-op-r1" / "server").resolve()
        wait_until(lambda: pid_file.exists() and pid_file.read_text().strip(), timeout=30, message="the client ran")
        client_pid = int(pid_file.read_text())
        process.send_signal(signum)
        stdout, stderr = process.communicate(timeout=30)
    finally:
        if process.poll() is None:
            process.kill()
            process.communicate(timeout=10)
    assert process.returncode == 130, stdout + stderr
    assert_no_traceback(stdout + stderr)
    assert stderr.strip().splitlines()[-1].startswith("chatflow-compare: interrupted after 0 of 1 runs")
    # Killed, it may stay a zombie for a moment until its new parent reaps it.
    wait_until(lambda: not running(client_pid), timeout=10, message="the client gone")
    assert not [p for p in psutil.process_iter(["cwd"]) if p.info["cwd"] == str(server_dir)], "the server outlived it"
    assert json.loads((tmp_path / "o" / "comparison.json").read_text())["runs"] == []


def test_a_server_that_dies_during_the_run_is_the_runs_error(tmp_path: Path) -> None:
    # Accepts the tool's readiness check and the client's first connection, then exits.
    server = ("{python} -c \"import socket, sys; s = socket.create_server(('127.0.0.1', int(sys.argv[1]))); "
              "[s.accept() for _ in range(2)]; sys.exit(7)\" {port}")
    result = run_compare(*stand_in(server=server), *SMALL_RUN, "--only", "po", "--rounds", "1",
                         "--output-dir", str(tmp_path / "o"), cwd=tmp_path)
    assert result.returncode == 1, result.stdout + result.stderr
    assert_no_traceback(result)
    [run] = json.loads((tmp_path / "o" / "comparison.json").read_text())["runs"]
    assert run["error"] == "the Twin server exited during the run with status 7", run
    assert run["client_exit"] == 1 and not run["ok"]
