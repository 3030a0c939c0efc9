"""``--processes N``: the senders in worker processes, one run for the user (docs/client.md#several-processes).

Real worker processes against the real chat server: the counts across workers, the one
merged CSV, the phases in step, a worker killed mid-run, Ctrl-C, and ``--processes 1``.
"""

from __future__ import annotations

import json
import os
import random
import signal
import subprocess
import sys
from pathlib import Path

import psutil
import pytest

from chatflow.client.config import LoadTestConfig
from chatflow.client.csv_writer import MergedCsv, final_outcomes, read_rows
from chatflow.client.message_generator import QUEUE_SIZE, random_message
from chatflow.client.plan import plan_phases
from chatflow.client.run import assign_rooms
from chatflow.client.summary import format_summary, verdict
from chatflow.client.workers import MultiProcessLoadTest, spread
from chatflow.metrics import CSV_HEADER, WORKER_LOST, MetricRecord, Status
from tests.support.client_runs import BackgroundRun, assert_no_traceback, figure
from tests.support.processes import REPO_ROOT, RUN_CLIENT, gone, run_client, server_process
from tests.support.servers import RecordingChatHandler, serving
from tests.support.waiting import wait_until

PROBE = 5
#: What the probe sends before it measures (``chatflow.client.probe``).
PROBE_WARMING = 10


def csv_final_rows(path: Path) -> list[list[str]]:
    rows = [line.rstrip("\n").split(",") for line in read_rows(path)]
    return [row for row in rows if row[-1] == "1"]


# -- the share of each worker (pure) ------------------------------------------------


def test_senders_are_dealt_round_robin_with_every_quota_kept(tmp_path: Path) -> None:
    config = LoadTestConfig("ws://127.0.0.1:1", messages=10_000, warmup_threads=3, warmup_messages=100,
                            threads=5, seed=4)
    plans = plan_phases(config)
    senders = assign_rooms(plans, config)
    shares = spread(plans, senders, 2, config.seed, lambda i: tmp_path / f"part{i}.csv")
    assert [[name for name, _ in share.phases] for share in shares] == [["warmup", "main"]] * 2
    assert [[len(senders) for _, senders in share.phases] for share in shares] == [[2, 3], [1, 2]]
    for phase, plan in enumerate(plans):
        dealt = [sender for share in shares for sender in share.phases[phase][1]]
        assert sorted(dealt) == sorted(senders[phase])
    assert sum(share.messages for share in shares) == config.messages
    assert len({share.seed for share in shares}) == 2 and len({share.part for share in shares}) == 2
    # Together the workers queue no more messages than one process.
    assert sum(share.capacity for share in shares) == QUEUE_SIZE
    # More processes than senders: the idle ones get empty phases, never a missing one.
    idle = spread(plans, senders, 4, None, lambda i: tmp_path / f"p{i}.csv")
    assert idle[3].phases[0] == ("warmup", []) and idle[3].seed is None


def test_rooms_are_the_same_for_one_process_or_several() -> None:
    """The seed picks the senders' rooms, however they are spread."""
    config = LoadTestConfig("ws://127.0.0.1:1", messages=2_000, warmup_threads=4, warmup_messages=100,
                            threads=8, seed=21)
    plans = plan_phases(config)
    rng = random.Random(config.seed + 1)
    assert assign_rooms(plans, config) == [[(rng.randint(1, 20), q, config.base_url) for q in plan.quotas]
                                           for plan in plans]


# -- the merged metrics file --------------------------------------------------------


def test_parts_merge_in_send_time_order_and_a_torn_last_line_is_no_row(tmp_path: Path) -> None:
    merged = MergedCsv(tmp_path)
    rows = [MetricRecord(1_000 + t, "TEXT", 1.5, Status.SUCCESS.value, 3, True) for t in range(6)]
    first, second = merged.part(0), merged.part(1)
    first.write_text(CSV_HEADER + "\n" + "".join(r.csv_line() for r in rows[0::2]))
    # A worker killed while writing: its last line has no newline.
    second.write_text(CSV_HEADER + "\n" + "".join(r.csv_line() for r in rows[1::2]) + "1006,TEXT,2.")
    assert final_outcomes(second) == (3, {})
    merged.merge([first, second, tmp_path / "never-written.csv"])
    merged.close()
    lines = merged.path.read_text().splitlines()
    assert lines == [CSV_HEADER] + [r.csv_line().rstrip("\n") for r in rows]
    assert merged.rows_written == 6 and merged.error is None
    assert not first.exists() and not second.exists()


def test_final_outcomes_count_final_rows_only(tmp_path: Path) -> None:
    path = tmp_path / "m.csv"
    path.write_text(CSV_HEADER + "\n" + "".join(r.csv_line() for r in [
        MetricRecord(1, "TEXT", 1.0, "timeout", 1, False),
        MetricRecord(2, "TEXT", 1.0, "success", 1, True),
        MetricRecord(3, "JOIN", 1.0, "error", 2, True),
        MetricRecord(4, "LEAVE", 0.0, "connection_failed", 2, True),
    ]))
    assert final_outcomes(path) == (1, {"error": 1, "connection_failed": 1})


# -- a run over two worker processes ------------------------------------------------


@pytest.fixture(scope="module")
def two_process_run(tmp_path_factory: pytest.TempPathFactory):
    """3,000 messages, 4 warmup threads × 250 then 6 main threads, from 2 worker processes."""
    directory = tmp_path_factory.mktemp("two-process")
    handler = RecordingChatHandler()
    with serving(handler) as running:
        config = LoadTestConfig(running.url, messages=3_000, warmup_threads=4, warmup_messages=250, threads=6,
                                seed=17, probe_messages=PROBE, output_dir=directory)
        output = MergedCsv(directory)
        test = MultiProcessLoadTest(config, 2, output)
        result = test.run()
        output.close()
    return result, handler, output, config


def test_counts_are_exact_across_workers(two_process_run) -> None:
    result, handler, _, config = two_process_run
    totals = result.totals
    assert result.ok, format_summary(result)
    assert result.generated == config.messages == totals.success
    assert (totals.failure, result.unsent, totals.retries, result.lost_workers) == (0, 0, 0, [])
    # Every round trip is in the run's histogram, merged across the processes.
    assert sum(totals.latency_counts) == totals.success and totals.latency_max_us > 0
    assert result.processes == 2
    # Every message reached the server once, besides the probe's.
    assert len(handler.texts) == config.messages + PROBE + PROBE_WARMING
    assert verdict(result) == "OK: all 3,000 messages succeeded"
    assert "Client processes          2" in format_summary(result)


def test_one_csv_with_one_final_row_per_message(two_process_run) -> None:
    result, _, output, config = two_process_run
    assert list(output.path.parent.glob("*.worker*.csv")) == []
    rows = csv_final_rows(output.path)
    assert len(rows) == output.rows_written == config.messages
    assert {row[3] for row in rows} == {"success"}
    # Merged by send time: each part is in order of completion, so a row is never more
    # than a reply timeout behind the latest before it.
    stamps = [int(row[0]) for row in rows]
    assert all(stamp >= latest - config.timeout * 1000 for stamp, latest in zip(stamps, _running_max(stamps)))
    assert output.path.read_text().splitlines()[0] == CSV_HEADER


def _running_max(values: list[int]) -> list[int]:
    latest, out = values[0], []
    for value in values:
        latest = max(latest, value)
        out.append(latest)
    return out


def test_phases_run_in_order_with_every_sender(two_process_run) -> None:
    result, handler, _, config = two_process_run
    assert [(p.name, p.threads, p.stats.success, p.stats.connections) for p in result.phases] == [
        ("warmup", 4, 1_000, 4), ("main", 6, 2_000, 6)]
    assert all(p.duration_s > 0 for p in result.phases)
    # The probe's connection, then the 4 warmup connections, then the 6 main ones, in
    # the rooms the seed picks.
    rooms = [room for phase in assign_rooms(plan_phases(config), config) for room, _, _ in phase]
    opened = [int(path.rsplit("/", 1)[1]) for path in handler.paths[1:]]
    assert sorted(opened[:4]) == sorted(rooms[:4]) and sorted(opened[4:]) == sorted(rooms[4:])


def test_a_worker_killed_mid_run_is_reported_and_its_messages_counted(tmp_path: Path) -> None:
    messages = 400_000
    with serving(RecordingChatHandler()) as running:
        config = LoadTestConfig(running.url, messages=messages, warmup_threads=0, warmup_messages=0, threads=4,
                                seed=5, probe_messages=PROBE, output_dir=tmp_path)
        output = MergedCsv(tmp_path)
        test = MultiProcessLoadTest(config, 2, output)
        with BackgroundRun(test) as run:
            wait_until(lambda: test.snapshot().done >= 2_000, timeout=60, message="the run is under way")
            victim = test.worker_pids[0]
            os.kill(victim, signal.SIGKILL)
            wait_until(lambda: gone(victim), timeout=10, message="the worker is gone")
            # The survivor goes on; then the run is stopped, as a user would.
            done = test.snapshot().done
            wait_until(lambda: test.snapshot().done >= done + 2_000, timeout=60, message="the other worker goes on")
            test.stop.set()
            result = run.result(30, "the run did not end")
        output.close()
    totals = result.totals
    (lost,) = result.lost_workers
    assert (lost.index, lost.pid, lost.exitcode, lost.phase) == (0, victim, -signal.SIGKILL, "main")
    assert totals.failures_by_status[WORKER_LOST] == lost.messages > 0
    # Every message generated is counted, once: the dead worker's share as well.
    assert totals.success + totals.failure == result.generated
    assert not result.ok and verdict(result).startswith("INTERRUPTED")
    summary = format_summary(result)
    assert f"worker 0 (pid {victim}) ended during the main phase (killed by signal 9)" in summary
    assert f"{WORKER_LOST}: {lost.messages:,}" in summary
    # The CSV holds one final row for every message a sender took: all but the lost
    # ones and those still queued at the stop.
    rows = csv_final_rows(output.path)
    assert len(rows) == totals.success + totals.failure - lost.messages - result.unsent
    assert sum(row[3] == "success" for row in rows) == totals.success


# -- the command line ---------------------------------------------------------------


def test_ctrl_c_stops_every_worker_within_a_bound(tmp_path: Path) -> None:
    """SIGINT to the whole process group, as a terminal sends it: the workers ignore it, the
    coordinator stops them, counts everything, exits 130."""
    with server_process() as server:
        client = subprocess.Popen(
            [sys.executable, str(RUN_CLIENT), "--server", server.url, "--messages", "5000000", "--processes", "2",
             "--probe-messages", str(PROBE), "--quiet", "--no-analysis", "--output-dir", str(tmp_path)],
            cwd=REPO_ROOT, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
            start_new_session=True)
        try:
            parent = psutil.Process(client.pid)

            def workers() -> list[psutil.Process]:
                return [c for c in parent.children() if "spawn_main" in " ".join(c.cmdline())]

            wait_until(lambda: len(workers()) == 2, timeout=30, message="two workers started")
            pids = [w.pid for w in workers()]
            wait_until(lambda: sum(p.stat().st_size for p in tmp_path.glob("*.worker*.csv")) > 50_000,
                       timeout=60, message="the workers are sending")
            os.killpg(client.pid, signal.SIGINT)
            out, err = client.communicate(timeout=20)
        finally:
            if client.poll() is None:
                os.killpg(client.pid, signal.SIGKILL)
                client.wait()
    assert client.returncode == 130, out + err
    assert_no_traceback(out + err)
    assert all(gone(pid) for pid in pids)
    assert out.strip().splitlines()[-1].startswith("INTERRUPTED")
    assert "Worker lost" not in out
    (metrics,) = tmp_path.glob("metrics_*.csv")
    generated, success = figure(out, "Messages generated"), figure(out, "Successful")
    assert success + figure(out, "Failed") == generated
    assert len(csv_final_rows(metrics)) >= success


def test_processes_1_is_the_single_process_run(tmp_path: Path) -> None:
    """No worker, no part file, and the message mix of the seeded generator in this process."""
    messages = 1_500
    handler = RecordingChatHandler()
    with serving(handler) as running:
        result = run_client("--server", running.url, "--messages", str(messages), "--warmup-threads", "2",
                            "--warmup-messages", "250", "--threads", "3", "--seed", "9", "--processes", "1",
                            "--probe-messages", str(PROBE), "--quiet", "--no-analysis",
                            "--output-dir", str(tmp_path))
    assert result.returncode == 0, result
    assert "Client processes" not in result.stdout and " from 1 processes" not in result.stdout
    (metrics,) = tmp_path.glob("metrics_*.csv")
    assert len(csv_final_rows(metrics)) == messages
    rng = random.Random(9)
    expected = sorted(_identity(random_message(rng, 20)[0]) for _ in range(messages))
    sent = sorted(_identity(json.loads(text)) for text in handler.texts[PROBE + PROBE_WARMING:])
    assert sent == expected


def _identity(message) -> tuple:
    """A message's fields but its timestamp (wire JSON or ChatMessage)."""
    if isinstance(message, dict):
        return message["userId"], message["username"], message["message"], message["messageType"]
    return message.user_id, message.username, message.message, message.message_type.value


def test_processes_0_is_a_usage_error() -> None:
    result = run_client("--server", "127.0.0.1:1", "--processes", "0")
    assert result.returncode == 2
    assert_no_traceback(result)
    assert "--processes: must be at least 1, not 0" in result.stderr


def test_several_servers_share_each_phase_s_connections_in_turn(tmp_path: Path) -> None:
    """``--server`` twice: two instances, each phase's connections dealt over them, across
    the worker processes too."""
    first, second = RecordingChatHandler(), RecordingChatHandler()
    with serving(first) as one, serving(second) as two:
        result = run_client("--server", one.url, "--server", two.url, "--messages", "2000", "--warmup-threads", "4",
                            "--warmup-messages", "100", "--threads", "6", "--processes", "2",
                            "--probe-messages", str(PROBE), "--quiet", "--no-analysis", "--output-dir", str(tmp_path))
    assert result.returncode == 0, result
    assert f"Server                    {one.url}, {two.url}" in result.stdout
    # The probe's connection is the first server's; then 2 + 2 warmup and 3 + 3 main ones.
    assert (len(first.paths), len(second.paths)) == (1 + 2 + 3, 2 + 3)
    probe_texts = PROBE + PROBE_WARMING
    assert len(first.texts) - probe_texts + len(second.texts) == 2_000
    assert len(second.texts) > 0
