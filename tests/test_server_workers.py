"""``run_server.py --workers N``: worker processes on one port, one health endpoint, one stop
(docs/workers.md). Real processes, real sockets; every wait has a deadline."""

from __future__ import annotations

import contextlib
import os
import signal
import socket
from collections.abc import Callable, Iterator

import pytest
import websocket

from chatflow.server.config import DEFAULTS
from chatflow.server.workers import add_up
from tests.support.clients import connected, receive_close, round_trip
from tests.support.health import get_health
from tests.support.messages import chat_message_json
from tests.support.network import LOCALHOST
from tests.support.processes import (ListeningServer, assert_usage_error, gone, run_server_to_exit,
                                     server_process)
from tests.support.waiting import wait_until

WORKERS = 2
#: Connections opened at most until every worker holds some: SO_REUSEPORT hashes each
#: connection's addresses, so with two workers 10 leave one empty once in 500 or so.
MAX_CONNECTIONS = 200
BATCH = 10
#: How long the supervisor may take to stop: the workers' grace, its margin, and slack.
STOP_BOUND = DEFAULTS.shutdown_grace + DEFAULTS.worker_stop_margin + 2


@pytest.fixture
def workers() -> Iterator[ListeningServer]:
    with server_process("--workers", str(WORKERS)) as server:
        yield server


def verbose(server: ListeningServer) -> dict:
    status, body = get_health(server.health_port, "/health?verbose")
    assert status == 200, body
    return body


def worker_pids(server: ListeningServer) -> list[int]:
    return [row["pid"] for row in verbose(server)["workers"]]


def spread_over_workers(server: ListeningServer, stack: contextlib.ExitStack) -> tuple[list[websocket.WebSocket], dict]:
    """Connections opened, ``BATCH`` at a time, until every worker holds some; they and the
    verbose health that shows it."""
    opened: list[websocket.WebSocket] = []
    for _ in range(MAX_CONNECTIONS // BATCH):
        for _ in range(BATCH):
            opened.append(stack.enter_context(connected(f"{server.url}/chat/{len(opened) % 20 + 1}")))
        body = wait_until(lambda: (b := verbose(server))["connections"] == len(opened) and b,
                          message=f"the workers count {len(opened)} connections", describe=lambda: verbose(server))
        if all(row["connections"] > 0 for row in body["workers"]):
            return opened, body
    raise AssertionError(f"{MAX_CONNECTIONS} connections did not reach every worker: {body['workers']}")


def test_workers_share_one_port_and_each_serves_chat(workers: ListeningServer) -> None:
    with contextlib.ExitStack() as stack:
        opened, body = spread_over_workers(workers, stack)
        for ws in opened:
            assert round_trip(ws, chat_message_json())["status"] == "success"
        rows = body["workers"]
        assert [row["index"] for row in rows] == list(range(WORKERS))
        assert all(row["alive"] and row["answered"] for row in rows)
        pids = {row["pid"] for row in rows}
        assert len(pids) == WORKERS and workers.process.pid not in pids
        assert sum(row["connections"] for row in rows) == body["connections"] == len(opened)
        assert body["rooms"] == add_up(row["rooms"] for row in rows)
        assert sum(body["rooms"].values()) == len(opened)
        status, plain = get_health(workers.health_port)
        assert (status, plain) == (200, {"status": "healthy"})
    lines = [line for line in workers.process.stderr.lines if "listening on ws://" in line]
    assert len(lines) == 1 and f"in {WORKERS} worker processes" in lines[0], lines


def send_sigterm_to_the_supervisor(server: ListeningServer) -> None:
    os.kill(server.process.pid, signal.SIGTERM)


def send_ctrl_c_to_the_group(server: ListeningServer) -> None:
    """As a terminal does: SIGINT to every process of the group, the workers too."""
    server.process.send_signal(signal.SIGINT)


@pytest.mark.parametrize("stop", [send_sigterm_to_the_supervisor, send_ctrl_c_to_the_group],
                         ids=["SIGTERM", "Ctrl-C"])
def test_a_signal_stops_every_worker_and_closes_clients_with_1001(
        workers: ListeningServer, stop: Callable[[ListeningServer], None]) -> None:
    with contextlib.ExitStack() as stack:
        opened, _ = spread_over_workers(workers, stack)
        pids = worker_pids(workers)
        stop(workers)
        assert {receive_close(ws)[0] for ws in opened} == {1001}
    assert workers.process.wait(STOP_BOUND) == 0
    wait_until(lambda: all(gone(pid) for pid in pids), message="every worker gone")
    stderr = workers.process.stderr.text
    assert "Traceback" not in stderr and "KeyboardInterrupt" not in stderr, stderr
    assert "exited unasked" not in stderr, stderr


def test_a_killed_worker_turns_health_503_naming_it(workers: ListeningServer) -> None:
    victim, survivor = worker_pids(workers)
    os.kill(victim, signal.SIGKILL)
    status, body = wait_until(lambda: (answer := get_health(workers.health_port))[0] == 503 and answer,
                              message="/health answers 503")
    assert body == {"status": "unhealthy", "workers_down": [{"index": 0, "pid": victim, "exitcode": -signal.SIGKILL}]}
    status, body = get_health(workers.health_port, "/health?verbose")
    assert status == 503
    assert [(row["pid"], row["alive"], row["answered"]) for row in body["workers"]] == [
        (victim, False, False), (survivor, True, True)]
    with connected(f"{workers.url}/chat/1") as ws:  # every new connection reaches the survivor
        assert round_trip(ws, chat_message_json())["status"] == "success"
    errors = wait_until(lambda: [line for line in workers.process.stderr.lines if "exited unasked" in line],
                        message="the death logged")
    assert len(errors) == 1 and f"pid {victim}" in errors[0] and " ERROR " in errors[0]
    send_sigterm_to_the_supervisor(workers)
    assert workers.process.wait(STOP_BOUND) == 0


def test_with_worker_exit_stop_a_killed_worker_stops_them_all_with_status_1() -> None:
    # What a service manager needs to restart the whole (the systemd unit's choice).
    with server_process("--workers", str(WORKERS), "--worker-exit", "stop") as server:
        with connected(f"{server.url}/chat/1") as ws:
            assert round_trip(ws, chat_message_json())["status"] == "success"
            victim, survivor = worker_pids(server)
            os.kill(victim, signal.SIGKILL)
            assert server.process.wait(STOP_BOUND) == 1
        wait_until(lambda: gone(survivor), message="the other worker gone")
        stderr = server.process.stderr.text
        assert f"pid {victim}) exited unasked" in stderr and "stopping the others (--worker-exit stop)" in stderr
        assert "Traceback" not in stderr, stderr


def test_a_worker_that_does_not_answer_is_reported_without_holding_health_up(workers: ListeningServer) -> None:
    stopped, running = worker_pids(workers)
    os.kill(stopped, signal.SIGSTOP)
    try:
        body = verbose(workers)
        assert [(row["pid"], row["alive"], row["answered"]) for row in body["workers"]] == [
            (stopped, True, False), (running, True, True)]
        assert get_health(workers.health_port) == (200, {"status": "healthy"})
    finally:
        os.kill(stopped, signal.SIGCONT)
    # Its late answer is skipped, not taken for the next question's.
    body = wait_until(lambda: (b := verbose(workers)) and all(row["answered"] for row in b["workers"]) and b,
                      message="both answer again")
    assert body["connections"] == 0


def test_workers_1_is_the_single_process() -> None:
    with server_process("--workers", "1") as server:
        assert verbose(server) == {"status": "healthy", "connections": 0, "rooms": {}}
        assert not any("worker" in line for line in server.process.stderr.lines), server.process.stderr.text


def test_echo_mount_in_workers() -> None:
    with server_process("--workers", str(WORKERS), "--echo") as server:
        with connected(f"{server.url}/any/path") as ws:
            ws.send("back")
            assert ws.recv() == "back"
        assert "rooms" not in verbose(server)


@pytest.mark.parametrize("value", ["0", "x", "-1", "1.5"])
def test_workers_must_be_a_whole_number_of_at_least_1(value: str) -> None:
    result = run_server_to_exit("--workers", value)
    assert result.returncode == 2
    assert_usage_error(result.stderr, "chatflow-server: error: argument --workers: ")


def test_broadcast_in_several_workers_needs_a_bus() -> None:
    result = run_server_to_exit("--workers", "2", "--mode", "broadcast")
    assert result.returncode == 2
    assert_usage_error(result.stderr, "chatflow-server: error: --workers 2 with --mode broadcast needs --bus: "
                                      "members in different workers would not see each other's messages")


def test_port_in_use_is_a_one_line_error_and_exit_1() -> None:
    with socket.create_server((LOCALHOST, 0)) as busy:
        port = busy.getsockname()[1]
        result = run_server_to_exit("--host", LOCALHOST, "--port", str(port), "--health-port", "0",
                                    "--workers", str(WORKERS))
    assert result.returncode == 1
    [line] = result.stderr.splitlines()
    assert line.startswith(f"chatflow-server: error: cannot listen for WebSocket on {LOCALHOST}:{port}: ")


def test_health_port_in_use_stops_the_started_workers() -> None:
    with socket.create_server((LOCALHOST, 0)) as busy:
        port = busy.getsockname()[1]
        result = run_server_to_exit("--host", LOCALHOST, "--port", "0", "--health-port", str(port),
                                    "--workers", str(WORKERS))
    assert result.returncode == 1
    errors = [line for line in result.stderr.splitlines() if "error" in line]
    assert errors == [f"chatflow-server: error: cannot listen for health on {LOCALHOST}:{port}: Address already in use"]
    assert "Traceback" not in result.stderr


def test_add_up_sums_numbers_and_mappings_key_by_key() -> None:
    figures = [{"connections": 2, "rooms": {3: 1, 1: 1}, "broadcast": {"delivered": 5, "evicted": 0}},
               {"connections": 1, "rooms": {3: 1}, "broadcast": {"delivered": 2, "evicted": 1}}]
    assert add_up(figures) == {"connections": 3, "rooms": {1: 1, 3: 2}, "broadcast": {"delivered": 7, "evicted": 1}}
    assert list(add_up(figures)["rooms"]) == [1, 3]
    assert add_up([]) == {}


def test_workers_stop_when_the_supervisor_is_killed(workers: ListeningServer) -> None:
    """Their pipes to it close: each stops as on SIGTERM, its clients told 1001."""
    with contextlib.ExitStack() as stack:
        opened, _ = spread_over_workers(workers, stack)
        pids = worker_pids(workers)
        os.kill(workers.process.pid, signal.SIGKILL)
        assert {receive_close(ws)[0] for ws in opened} == {1001}
    wait_until(lambda: all(gone(pid) for pid in pids), timeout=STOP_BOUND, message="every worker gone")
