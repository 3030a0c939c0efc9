"""``--local``: a ChatFlow server in its own process, on free ports, for one run.

A separate process and not a thread: in the client's process the server would share
the client's GIL and both figures would be wrong.
"""

from __future__ import annotations

import queue
import subprocess
import sys
import threading
import time
from pathlib import Path

from chatflow.server import listening

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
        try:
            lines: queue.Queue[str | None] = queue.Queue()
            threading.Thread(target=self._read_log, args=(lines,), name="LocalServerLog", daemon=True).start()
            deadline = time.monotonic() + STARTUP_TIMEOUT
            seen: list[str] = []
            while not self.url:
                try:
                    line = lines.get(timeout=max(0.0, deadline - time.monotonic()))
                except queue.Empty:
                    line = None
                if line is None:  # the server exited, or the deadline passed
                    detail = "".join(seen[-5:]).strip() or f"no sign of life within {STARTUP_TIMEOUT:.0f} s"
                    raise LocalServerError(f"the local server did not start: {detail}")
                seen.append(line)
                found = listening.parse(line)
                if found is not None and found.scheme == "ws":
                    self.url = f"ws://127.0.0.1:{found.port}"
        except BaseException:
            # A failed start, or Ctrl-C while waiting: the server must not outlive the client.
            self.__exit__(None, None, None)
            raise
        return self

    def _read_log(self, lines: queue.Queue[str | None]) -> None:
        """Copies the server's log to the log file, and hands it over until it is up."""
        log = self.log_path.open("w") if self.log_path else None
        try:
            for line in self.process.stderr:
                if log:
                    log.write(line)
                    log.flush()
                if not self.url:
                    lines.put(line)
        finally:
            lines.put(None)
            if log:
                log.close()

    @property
    def pid(self) -> int:
        assert self.process is not None
        return self.process.pid

    def __exit__(self, *exc_info) -> None:
        if self.process is None:
            return
        self.process.terminate()
        try:
            self.process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait(timeout=10)
