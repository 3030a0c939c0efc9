"""A command on a terminal of its own: a detached tmux session, its screen read back.

Each session has a tmux server of its own (``-L`` a fresh socket name, no configuration
file read), so that it touches no other tmux session on the machine, and is gone with it.
"""

from __future__ import annotations

import shlex
import subprocess
import uuid
from pathlib import Path

TMUX = "tmux"
#: How long one tmux command may take.
COMMAND_TIMEOUT = 10.0


class TmuxSession:
    """``command`` run in a detached tmux session of ``width`` × ``height`` characters, in
    ``cwd``; its pane stays once the command has ended, so its last screen can be read.
    The tmux server (and the command with it) is killed when the ``with`` block ends."""

    def __init__(self, command: list[str], cwd: Path, width: int = 200, height: int = 50) -> None:
        self.command = command
        self.cwd = cwd
        self.width, self.height = width, height
        self.socket = f"chatflow-test-{uuid.uuid4().hex[:12]}"

    def _tmux(self, *args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run([TMUX, "-L", self.socket, "-f", "/dev/null", *args], stdin=subprocess.DEVNULL,
                              capture_output=True, text=True, timeout=COMMAND_TIMEOUT)

    def __enter__(self) -> TmuxSession:
        started = self._tmux("new-session", "-d", "-s", "run", "-x", str(self.width), "-y", str(self.height),
                             "-c", str(self.cwd), shlex.join(self.command),
                             ";", "set-option", "-t", "run", "remain-on-exit", "on")
        if started.returncode != 0:
            raise RuntimeError(f"tmux new-session failed: {started.stderr.strip()}")
        return self

    def screen(self) -> str:
        """The pane's text as it shows now ("" once the session is gone)."""
        captured = self._tmux("capture-pane", "-p", "-t", "run")
        return captured.stdout if captured.returncode == 0 else ""

    def __exit__(self, *exc_info: object) -> None:
        self._tmux("kill-server")
