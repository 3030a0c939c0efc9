"""``run_server.py`` and ``run_client.py`` as processes, as a user runs them.

Servers are started through the product's one launcher (``chatflow.server.process``);
commands that end by themselves (errors, ``--help``, a whole client run) through
``subprocess.run`` with a timeout.
"""

from __future__ import annotations

import signal
import subprocess
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import psutil

from chatflow.server.process import START_TIMEOUT, ServerProcess, local_server_command
from tests.support.health import get_health
from tests.support.network import LOCALHOST
from tests.support.waiting import DEFAULT_TIMEOUT

REPO_ROOT = Path(__file__).resolve().parents[2]
RUN_SERVER = REPO_ROOT / "run_server.py"
RUN_CLIENT = REPO_ROOT / "run_client.py"
#: Long enough for a loaded machine; a client that hangs fails here instead of the suite.
RUN_TIMEOUT = 40.0


@dataclass(frozen=True)
class ListeningServer:
    """``run_server.py`` running as its own process, with the ports it bound."""

    process: ServerProcess
    chat_port: int
    health_port: int

    @property
    def url(self) -> str:
        return f"ws://{LOCALHOST}:{self.chat_port}"

    def health(self, verbose: bool = False) -> tuple[int, dict[str, Any]]:
        """``GET /health`` (``?verbose``): its HTTP status and its JSON, whatever the status."""
        return get_health(self.health_port, "/health?verbose" if verbose else "/health")


def server_command(*args: str) -> list[str]:
    """``run_server.py args``."""
    return [sys.executable, str(RUN_SERVER), *args]


def run_server_on_loopback(*args: str) -> list[str]:
    """``run_server.py`` on 127.0.0.1 and free ports, then ``args``."""
    return local_server_command(*args, script=RUN_SERVER)


def with_fd_limit(limit: int, command: list[str]) -> list[str]:
    """``command`` with RLIMIT_NOFILE set to ``limit``: a Python that sets it, then execs
    the command in its place (the same process)."""
    setter = ("import os, resource, sys; "
              f"resource.setrlimit(resource.RLIMIT_NOFILE, ({limit}, {limit})); os.execv(sys.argv[1], sys.argv[1:])")
    return [sys.executable, "-c", setter, *command]


@contextmanager
def server_process(*args: str, timeout: float = START_TIMEOUT, fd_limit: int | None = None,
                   log_path: Path | None = None) -> Iterator[ListeningServer]:
    """Start ``run_server.py`` on 127.0.0.1, free ports, plus ``args``; wait until it listens.

    ``args`` come last, so ``--port N`` there overrides the free port. ``fd_limit`` lowers
    its RLIMIT_NOFILE; ``log_path`` keeps its whole stderr. The process is killed on the way
    out if the test left it running.
    """
    command = run_server_on_loopback(*args)
    if fd_limit is not None:
        command = with_fd_limit(fd_limit, command)
    with ServerProcess(command, cwd=REPO_ROOT, log_path=log_path, stop_signals=(signal.SIGKILL,),
                       grace=DEFAULT_TIMEOUT) as process:
        chat_port = process.wait_listening("ws", timeout).port
        health_port = process.wait_listening("http", timeout).port
        yield ListeningServer(process, chat_port, health_port)


def run_server_to_exit(*args: str, timeout: float = START_TIMEOUT) -> subprocess.CompletedProcess[str]:
    """Run ``run_server.py args`` for a command that must end by itself (errors, --help)."""
    return subprocess.run(server_command(*args), cwd=REPO_ROOT, stdin=subprocess.DEVNULL,
                          capture_output=True, text=True, timeout=timeout)


def run_client(*args: str, timeout: float = RUN_TIMEOUT) -> subprocess.CompletedProcess[str]:
    """Run ``run_client.py args`` to its end."""
    return subprocess.run([sys.executable, str(RUN_CLIENT), *args], cwd=REPO_ROOT, stdin=subprocess.DEVNULL,
                          capture_output=True, text=True, timeout=timeout)


def gone(pid: int) -> bool:
    """The process has ended (reaped, or a zombie waiting to be)."""
    try:
        return psutil.Process(pid).status() == psutil.STATUS_ZOMBIE
    except psutil.NoSuchProcess:
        return True


def assert_usage_error(stderr: str, starts_with: str) -> None:
    """argparse's usage, then exactly one error line, and no traceback."""
    assert "Traceback" not in stderr
    assert stderr.startswith("usage: chatflow-server ")
    errors = [line for line in stderr.splitlines() if ": error:" in line]
    assert errors == [stderr.splitlines()[-1]], stderr
    assert errors[0].startswith(starts_with), stderr
