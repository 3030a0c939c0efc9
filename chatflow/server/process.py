"""A server command as a child process: started, its stderr followed, its ports learnt,
its CPU and memory read, and stopped.

The one launcher for everyone who runs a server beside them: the client's ``--local``,
the tests and the benchmarks. The command is any list (``run_server.py``, a wrapper, a
profiler, another implementation); what it runs is measured as a process tree, so that
a wrapper still measures the server it starts. ``local_server_command`` is ChatFlow's
own server on loopback and free ports, as each of them starts it.
"""

from __future__ import annotations

import collections
import os
import signal
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import IO, TypeVar

import psutil

from chatflow.server import listening

T = TypeVar("T")

#: Where a server started beside its caller listens.
LOOPBACK = "127.0.0.1"
#: Lines of a child's output kept for error messages and for ``wait_for``.
KEPT_LINES = 1000
#: Lines of stderr an error message ends with.
TAIL_LINES = 40
#: How long a server may take to start listening.
START_TIMEOUT = 20.0
#: How long ``stop`` waits after each signal before the next.
STOP_GRACE = 5.0
#: How often a wait for the child to accept connections tries again.
CONNECT_POLL = 0.05
#: Processes looked at in one tree, at most.
MAX_TREE = 1000


def local_server_command(*extra: str, script: str | Path | None = None) -> list[str]:
    """ChatFlow's server on 127.0.0.1 with ports the kernel picks (its listening lines say
    which), then ``extra``; they come last, so an option there overrides.

    It runs as ``python -m chatflow.server.main``, the installed package's, or as
    ``python script`` (``run_server.py``, as a user starts it from a checkout).
    """
    program = [sys.executable, "-m", "chatflow.server.main"] if script is None else [sys.executable, str(script)]
    return [*program, "--host", LOOPBACK, "--port", "0", "--health-port", "0", *extra]


class ServerProcessError(Exception):
    """The server did not start, stopped unasked, or would not stop: one line of reason,
    then the tail of its stderr."""

    def __init__(self, reason: str, tail: Sequence[str] = ()) -> None:
        self.reason = reason
        self.tail = list(tail)
        super().__init__(reason + format_tail(self.tail))


def format_tail(lines: Sequence[str]) -> str:
    """Output lines indented under a message: ``\\n  | line`` each."""
    return "".join(f"\n  | {line}" for line in lines)


class OutputLines:
    """A child's output read line by line from a thread, so that its pipe never fills.

    Keeps the last ``KEPT_LINES`` lines and, with ``log``, copies every line to that file
    as it comes (flushed, so that it can be read while the child runs).
    """

    def __init__(self, stream: IO[str], log: IO[str] | None = None, name: str = "output") -> None:
        self._stream = stream
        self._log = log
        self._lines: collections.deque[str] = collections.deque(maxlen=KEPT_LINES)
        self._count = 0
        self._ended = False
        self._changed = threading.Condition()
        self._thread = threading.Thread(target=self._follow, name=name, daemon=True)
        self._thread.start()

    def _follow(self) -> None:
        try:
            for line in self._stream:
                if self._log is not None:
                    self._log.write(line)
                    self._log.flush()
                with self._changed:
                    self._lines.append(line.rstrip("\n"))
                    self._count += 1
                    self._changed.notify_all()
        finally:
            with self._changed:
                self._ended = True
                self._changed.notify_all()

    @property
    def lines(self) -> list[str]:
        with self._changed:
            return list(self._lines)

    @property
    def text(self) -> str:
        return "\n".join(self.lines)

    @property
    def ended(self) -> bool:
        """The stream is at its end: the child closed it, or exited."""
        with self._changed:
            return self._ended

    def wait_for(self, find: Callable[[str], T | None], timeout: float) -> T | None:
        """What ``find`` first makes of a line (each line is looked at once, in order);
        None at the deadline or at the end of the stream."""
        deadline = time.monotonic() + timeout
        seen = 0
        with self._changed:
            while True:
                new = min(self._count - seen, len(self._lines))
                for line in list(self._lines)[len(self._lines) - new:]:
                    found = find(line)
                    if found:
                        return found
                seen = self._count
                remaining = deadline - time.monotonic()
                if self._ended or remaining <= 0:
                    return None
                self._changed.wait(remaining)

    def join(self, timeout: float) -> None:
        """Wait for the reading thread (after the child has exited), then close the stream and the log."""
        self._thread.join(timeout)
        if not self._thread.is_alive():
            self._stream.close()
            if self._log is not None:
                self._log.close()


class ServerProcess:
    """``command`` running as a child process, from construction until ``stop``.

    Its stderr is followed (``stderr``); stdin and stdout are closed to it; ``env`` is its
    whole environment (as ``subprocess``'s), the caller's when None. With
    ``own_process_group`` it runs in a session of its own and every signal goes to its
    whole process group; without, it stays in the caller's, so that a terminal's Ctrl-C
    or hangup reaches it as it reaches the caller. ``stop_signals`` are what ``stop``
    (and leaving a ``with`` block) sends first, each followed by ``grace`` seconds of
    waiting; SIGKILL comes last in any case.
    """

    def __init__(self, command: Sequence[str], *, cwd: Path | None = None, env: Mapping[str, str] | None = None,
                 log_path: Path | None = None, own_process_group: bool = True,
                 stop_signals: Sequence[int] = (signal.SIGTERM,), grace: float = STOP_GRACE) -> None:
        self.command = list(command)
        self.stop_signals = tuple(stop_signals)
        self.grace = grace
        self._own_group = own_process_group
        try:
            log = log_path.open("w") if log_path is not None else None
        except OSError as exc:
            raise ServerProcessError(f"cannot write the server's log to {log_path}: {exc.strerror or exc}") from None
        try:
            self._process = subprocess.Popen(
                self.command, cwd=cwd, env=dict(env) if env is not None else None, stdin=subprocess.DEVNULL,
                stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True, errors="replace",
                start_new_session=own_process_group,
            )
        except OSError as exc:
            if log is not None:
                log.close()
            raise ServerProcessError(f"cannot start {self.command[0]}: {exc.strerror or exc}") from None
        self.stderr = OutputLines(self._process.stderr, log, name=f"server-stderr-{self._process.pid}")
        try:
            self._psutil: psutil.Process | None = psutil.Process(self._process.pid)
        except psutil.Error:
            self._psutil = None  # already gone: the first wait says so, with its stderr

    def __enter__(self) -> ServerProcess:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.stop()

    @property
    def pid(self) -> int:
        return self._process.pid

    @property
    def returncode(self) -> int | None:
        """The exit status once it has exited (negative: killed by that signal), else None."""
        return self._process.poll()

    def stderr_tail(self) -> str:
        """The last lines of its stderr, formatted to follow a message."""
        return format_tail(self.stderr.lines[-TAIL_LINES:])

    def _error(self, reason: str) -> ServerProcessError:
        return ServerProcessError(f"the server {reason}", self.stderr.lines[-TAIL_LINES:])

    # -- its ports

    def wait_listening(self, scheme: str = "ws", timeout: float = START_TIMEOUT) -> listening.Listening:
        """The first listener of ``scheme`` its stderr announces (``chatflow.server.listening``)."""
        def find(line: str) -> listening.Listening | None:
            found = listening.parse(line)
            return found if found is not None and found.scheme == scheme else None

        found = self.stderr.wait_for(find, timeout)
        if found is not None:
            return found
        if self.stderr.ended:  # it closed its stderr: it is exiting, or has
            try:
                self._process.wait(self.grace)
            except subprocess.TimeoutExpired:
                raise self._error(f"closed its stderr without a 'listening on {scheme}://HOST:PORT' line") from None
        self._check_running()
        raise self._error(f"logged no 'listening on {scheme}://HOST:PORT' line within {timeout:g} s")

    def wait_accepting(self, port: int, host: str = LOOPBACK, timeout: float = START_TIMEOUT) -> None:
        """Until a TCP connection to ``host:port`` is accepted (for a command told its port)."""
        deadline = time.monotonic() + timeout
        while True:
            self._check_running()
            try:
                socket.create_connection((host, port), timeout=1.0).close()
                return
            except OSError:
                if time.monotonic() >= deadline:
                    raise self._error(f"is not accepting on {host}:{port} within {timeout:g} s") from None
                time.sleep(CONNECT_POLL)

    def _check_running(self) -> None:
        if self._process.poll() is not None:
            self.stderr.join(self.grace)
            raise self._error(f"exited with status {self._process.returncode}")

    # -- what it costs

    def _tree(self) -> list[psutil.Process]:
        """The process and its live descendants."""
        if self._psutil is None:
            return []
        try:
            return [self._psutil, *self._psutil.children(recursive=True)][:MAX_TREE]
        except psutil.Error:
            return []

    def cpu_seconds(self) -> tuple[float, float]:
        """User and system CPU time of the process tree so far: each live process's own, and
        that of the children it has reaped, so that a child which exits keeps counting.

        Apart because system time is what the sockets cost (on loopback a send also does
        the receiver's work), user time what the code costs. A process that leaves the tree
        alive (orphaned, then reaped elsewhere) takes its time with it: the sum can fall.
        """
        user = system = 0.0
        for process in self._tree():
            try:
                times = process.cpu_times()
            except psutil.Error:
                continue
            user += times.user + times.children_user
            system += times.system + times.children_system
        return user, system

    def peak_rss_bytes(self) -> int:
        """VmHWM: the most resident memory each process of the tree has had, summed."""
        return self._status_bytes("VmHWM")

    def rss_bytes(self) -> int:
        """VmRSS: the resident memory of the tree now."""
        return self._status_bytes("VmRSS")

    def _status_bytes(self, field: str) -> int:
        """A ``kB`` field of /proc/PID/status, summed over the tree (psutil has no VmHWM)."""
        total = 0
        for process in self._tree():
            try:
                with open(f"/proc/{process.pid}/status") as status:
                    for line in status:
                        if line.startswith(f"{field}:"):
                            total += int(line.split()[1]) * 1024
                            break
            except OSError:
                continue
        return total

    # -- signals and the end

    def send_signal(self, signum: int) -> None:
        """``signum`` to the process group (its own) or the process; nothing once it has exited."""
        if self._process.poll() is not None:
            return
        try:
            if self._own_group:
                os.killpg(self._process.pid, signum)
            else:
                self._process.send_signal(signum)
        except ProcessLookupError:
            pass

    def wait(self, timeout: float) -> int:
        """Its exit status; ServerProcessError if it is still running after ``timeout``."""
        try:
            return self._process.wait(timeout)
        except subprocess.TimeoutExpired:
            raise self._error(f"is still running after {timeout:g} s") from None

    def stop(self) -> int:
        """Each of ``stop_signals``, then SIGKILL, each followed by up to ``grace`` seconds,
        until it has exited; its exit status. Its stderr is read to the end and closed."""
        for signum in (*self.stop_signals, signal.SIGKILL):
            if self._process.poll() is not None:
                break
            self.send_signal(signum)
            try:
                self._process.wait(self.grace)
            except subprocess.TimeoutExpired:
                continue
        returncode = self._process.poll()
        self.stderr.join(self.grace)
        if returncode is None:
            raise self._error(f"did not exit within {self.grace:g} s of SIGKILL")
        return returncode
