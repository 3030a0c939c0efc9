"""``--local``: a ChatFlow server in its own process, on free ports, for one run.

A separate process and not a thread: in the client's process the server would share
the client's GIL and both figures would be wrong.
"""

from __future__ import annotations

import re
import subprocess
import sys
import threading
import time
from pathlib import Path

_LISTENING = re.compile(r"listening on ws://([^:/\s]+|\[[^\]]+\]):(\d+)")
STARTUP_TIMEOUT = 20.0


class LocalServerError(Exception):
    pass


class LocalServer:
    """Starts ``python -m chatflow.server.main`` on 127.0.0.1, port 0; stops it on exit."""

    def __init__(self, log_path: Path | None = None) -> None:
        self.log_path = log_path
        self.process: subprocess.Popen | None = None
        self.url = ""

    def __enter__(self) -> LocalServer:
        self.process = subprocess.Popen(
            [sys.executable, "-m", "chatflow.server.main", "--host", "127.0.0.1",
             "--port", "0", "--health-port", "0", "--log-level", "INFO"],
            stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True,
        )
        log = self.log_path.open("w") if self.log_path else None
        deadline = time.monotonic() + STARTUP_TIMEOUT
        seen = []
        while time.monotonic() < deadline:
            line = self.process.stderr.readline()
            if not line:
                break
            seen.append(line)
            if log:
                log.write(line)
            match = _LISTENING.search(line)
            if match:
                self.url = f"ws://127.0.0.1:{match.group(2)}"
                break
        if not self.url:
            self.__exit__(None, None, None)
            raise LocalServerError("the local server did not start: " + "".join(seen[-5:]).strip())
        threading.Thread(target=self._drain, args=(log,), name="LocalServerLog", daemon=True).start()
        return self

    @property
    def pid(self) -> int:
        assert self.process is not None
        return self.process.pid

    def _drain(self, log) -> None:
        for line in self.process.stderr:
            if log:
                log.write(line)
        if log:
            log.close()

    def __exit__(self, *exc_info) -> None:
        if self.process is None:
            return
        self.process.terminate()
        try:
            self.process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait(timeout=10)
