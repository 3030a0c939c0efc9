"""A real redis-server of the test's own, on a free loopback port, with nothing saved.

Debian's ``redis-server`` package provides it; where it is missing the tests that need it
skip, or fail in CI (``tests.support.services``).
"""

from __future__ import annotations

import signal
from collections.abc import Iterator
from contextlib import contextmanager

import redis

from chatflow.server.process import ServerProcess
from tests.support import services
from tests.support.network import LOCALHOST, free_port

EXECUTABLE = "redis-server"
#: How long a redis-server may take to accept connections.
START_TIMEOUT = 10.0


def missing() -> str | None:
    """Why no redis-server can run here, or None."""
    return services.missing(EXECUTABLE, "redis-server")


def require() -> None:
    """Skip the calling test where there is no redis-server, or fail where one is required."""
    services.require(EXECUTABLE, "redis-server")


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
