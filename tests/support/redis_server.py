"""A real redis-server of the test's own, on a free loopback port, with nothing saved.

Debian's ``redis-server`` package provides it. Where it is missing the tests that need it
skip with the reason, unless ``$CHATFLOW_REQUIRE_REDIS`` is 1 (CI sets it, and installs
the package), where a missing server fails them instead.
"""

from __future__ import annotations

import os
import shutil
import signal
from collections.abc import Iterator
from contextlib import contextmanager

import pytest
import redis

from chatflow.server.process import ServerProcess
from tests.support.network import LOCALHOST, free_port

REQUIRE_VARIABLE = "CHATFLOW_REQUIRE_REDIS"
EXECUTABLE = "redis-server"
#: How long a redis-server may take to accept connections.
START_TIMEOUT = 10.0


def missing() -> str | None:
    """Why no redis-server can run here, or None."""
    if shutil.which(EXECUTABLE) is None:
        return f"{EXECUTABLE} is not installed (Debian: apt-get install redis-server)"
    return None


def require() -> None:
    """Skip the calling test where there is no redis-server, or fail where one is required."""
    reason = missing()
    if reason is not None:
        if os.environ.get(REQUIRE_VARIABLE) == "1":
            pytest.fail(f"{reason}, and ${REQUIRE_VARIABLE}=1")
        pytest.skip(reason)


class RedisServer:
    """``redis-server --port N --save '' --appendonly no`` on 127.0.0.1, stopped and started
    again on the same port (``restart``), as an operator restarts one."""

    def __init__(self) -> None:
        self.port = free_port()
        self.url = f"redis://{LOCALHOST}:{self.port}/0"
        self._process: ServerProcess | None = None

    @property
    def pid(self) -> int:
        assert self._process is not None, "not running"
        return self._process.pid

    @property
    def running(self) -> bool:
        return self._process is not None

    def start(self) -> None:
        assert self._process is None, "already running"
        command = [EXECUTABLE, "--port", str(self.port), "--bind", LOCALHOST, "--save", "", "--appendonly", "no",
                   "--protected-mode", "no", "--loglevel", "warning"]
        self._process = ServerProcess(command, grace=2.0)
        self._process.wait_accepting(self.port, timeout=START_TIMEOUT)

    def stop(self) -> None:
        """Gone at once, with everything it held (SIGKILL: nothing is saved anyway)."""
        if self._process is not None:
            self._process.send_signal(signal.SIGKILL)
            self._process.stop()
            self._process = None

    def pause(self) -> None:
        """Frozen (SIGSTOP): connected, but answering nothing, as a Redis that hangs."""
        assert self._process is not None, "not running"
        self._process.send_signal(signal.SIGSTOP)

    def restart(self) -> None:
        self.stop()
        self.start()

    def client(self) -> redis.Redis:
        return redis.Redis.from_url(self.url, socket_timeout=5)


@contextmanager
def redis_server() -> Iterator[RedisServer]:
    """A redis-server for the ``with`` body; the calling test skips where there is none."""
    require()
    server = RedisServer()
    server.start()
    try:
        yield server
    finally:
        server.stop()
