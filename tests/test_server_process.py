"""The one launcher of a server process (``chatflow.server.process``), on real commands:
its ports learnt from its own lines or by connecting, its errors with its stderr, its
process tree measured, and a stop that is bounded even for a command that ignores it."""

from __future__ import annotations

import os
import signal
import sys
import textwrap
import time
from pathlib import Path

import psutil
import pytest

from chatflow.server.process import START_TIMEOUT, OutputLines, ServerProcess, ServerProcessError
from tests.support.network import LOCALHOST, free_port
from tests.support.processes import REPO_ROOT, run_server_on_loopback
from tests.support.waiting import DEFAULT_TIMEOUT, wait_until


def python(code: str) -> list[str]:
    """A command that runs ``code`` in this interpreter."""
    return [sys.executable, "-c", textwrap.dedent(code)]


def test_learns_both_ports_from_the_listening_lines_and_stops_with_sigterm() -> None:
    with ServerProcess(run_server_on_loopback(), cwd=REPO_ROOT) as server:
        ws = server.wait_listening("ws")
        http = server.wait_listening("http")
        assert (ws.scheme, ws.host, http.scheme) == ("ws", LOCALHOST, "http")
        assert ws.port != http.port and 0 < ws.port < 65536
        server.wait_accepting(ws.port)
        user, system = server.cpu_seconds()
        assert user > 0 and system >= 0  # an interpreter's start-up
        assert server.peak_rss_bytes() >= server.rss_bytes() > 0
        assert server.returncode is None
        assert server.stop() == 0
    assert "stopped" in server.stderr.text
    assert server.stderr.ended


def test_a_command_that_exits_is_an_error_with_its_status_and_stderr() -> None:
    command = python("""
        import sys
        print("cannot listen: something is wrong", file=sys.stderr)
        sys.exit(3)
    """)
    with ServerProcess(command) as server, pytest.raises(ServerProcessError) as failed:
        server.wait_listening("ws")
    assert failed.value.reason == "the server exited with status 3"
    assert failed.value.tail == ["cannot listen: something is wrong"]
    assert str(failed.value) == "the server exited with status 3\n  | cannot listen: something is wrong"
    assert server.returncode == 3


def test_a_command_that_cannot_be_started_is_one_line() -> None:
    with pytest.raises(ServerProcessError) as failed:
        ServerProcess(["/nonexistent/chatflow-server"])
    assert str(failed.value) == "cannot start /nonexistent/chatflow-server: No such file or directory"


def test_no_listening_line_before_the_deadline_is_an_error_and_a_stubborn_command_is_killed() -> None:
    command = python("""
        import signal, sys, time
        signal.signal(signal.SIGTERM, signal.SIG_IGN)
        print("ignoring SIGTERM", file=sys.stderr, flush=True)
        time.sleep(60)
    """)
    with ServerProcess(command, grace=0.5) as server:
        assert server.stderr.wait_for(lambda line: line == "ignoring SIGTERM", START_TIMEOUT)
        with pytest.raises(ServerProcessError) as failed:
            server.wait_listening("ws", timeout=0.2)
        assert failed.value.reason == "the server logged no 'listening on ws://HOST:PORT' line within 0.2 s"
        assert failed.value.tail == ["ignoring SIGTERM"]
        started = time.monotonic()
        assert server.stop() == -signal.SIGKILL
        assert time.monotonic() - started < 0.5 + DEFAULT_TIMEOUT


def test_a_command_told_its_port_is_waited_for_until_it_accepts() -> None:
    port = free_port()
    command = python(f"""
        import socket, time
        time.sleep(0.3)
        listener = socket.create_server(("{LOCALHOST}", {port}))
        time.sleep(60)
    """)
    with ServerProcess(command) as server:
        server.wait_accepting(port, LOCALHOST)
    with ServerProcess(python("import time; time.sleep(60)")) as server, pytest.raises(ServerProcessError) as failed:
        server.wait_accepting(free_port(), LOCALHOST, timeout=0.2)
    assert failed.value.reason.startswith(f"the server is not accepting on {LOCALHOST}:")


def test_its_whole_process_tree_is_measured_and_signalled() -> None:
    """A wrapper (here ``sh -c``) still measures and stops the server it starts."""
    child = python("""
        import os, sys, time
        deadline = time.process_time() + 0.3
        while time.process_time() < deadline:
            pass
        print(f"busy child {os.getpid()} done", file=sys.stderr, flush=True)
        time.sleep(60)
    """)
    command = ["sh", "-c", " ".join(f"'{part}'" for part in child) + "; exit 0"]
    with ServerProcess(command) as server:
        assert os.getpgid(server.pid) == server.pid  # its own process group
        line = server.stderr.wait_for(lambda line: line.startswith("busy child") and line, START_TIMEOUT)
        assert line, server.stderr.text
        child_pid = int(line.split()[2])
        user, system = server.cpu_seconds()
        assert user + system >= 0.3
        server.stop()

    def child_gone() -> bool:
        try:
            return psutil.Process(child_pid).status() == psutil.STATUS_ZOMBIE
        except psutil.NoSuchProcess:
            return True
    wait_until(child_gone, message="the wrapper's child ended with it")


def test_a_child_that_has_exited_keeps_counting_in_the_trees_cpu() -> None:
    """Its CPU moves to the parent that reaped it, and is counted there."""
    child = python("""
        import time
        deadline = time.process_time() + 0.3
        while time.process_time() < deadline:
            pass
    """)
    command = ["sh", "-c", " ".join(f"'{part}'" for part in child) + "; echo child reaped >&2; sleep 60"]
    with ServerProcess(command) as server:
        assert server.stderr.wait_for(lambda line: line == "child reaped", START_TIMEOUT), server.stderr.text
        # The busy child is gone: the tree is the shell and its sleep.
        wait_until(lambda: [child.name() for child in psutil.Process(server.pid).children()] == ["sleep"],
                   message="the shell's sleep")
        user, system = server.cpu_seconds()
        assert user + system >= 0.3


def test_its_environment_is_the_one_given() -> None:
    command = python("""
        import os, sys
        print(os.environ.get("CHATFLOW_PROBE"), os.environ.get("HOME"), file=sys.stderr)
    """)
    with ServerProcess(command, env={"PATH": os.environ["PATH"], "CHATFLOW_PROBE": "given"}) as server:
        assert server.wait(DEFAULT_TIMEOUT) == 0
    assert server.stderr.lines == ["given None"]


def test_outside_its_own_group_it_shares_the_callers_and_the_log_keeps_every_line(tmp_path: Path) -> None:
    log_path = tmp_path / "server.log"
    command = python("""
        import sys
        for n in range(3):
            print(f"line {n}", file=sys.stderr)
    """)
    with ServerProcess(command, log_path=log_path, own_process_group=False) as server:
        assert os.getpgid(server.pid) == os.getpgrp()
        assert server.wait(DEFAULT_TIMEOUT) == 0
    assert server.stderr.lines == ["line 0", "line 1", "line 2"]
    assert log_path.read_text() == "line 0\nline 1\nline 2\n"


def test_wait_for_a_line_that_never_comes_ends_with_the_stream() -> None:
    with ServerProcess(python("print('only line', file=__import__('sys').stderr)")) as server:
        assert server.stderr.wait_for(lambda line: "never" in line, START_TIMEOUT) is None
        assert server.stderr.ended
        with pytest.raises(ServerProcessError, match="exited with status 0"):
            server.wait_listening("ws")


def test_output_lines_follow_any_stream(tmp_path: Path) -> None:
    path = tmp_path / "out.txt"
    path.write_text("first\nsecond\n")
    lines = OutputLines(path.open())
    assert lines.wait_for(lambda line: line == "second" and line, DEFAULT_TIMEOUT) == "second"
    lines.join(DEFAULT_TIMEOUT)
    assert lines.lines == ["first", "second"] and lines.ended
