"""A command run to its end as ``/usr/bin/time`` runs one: its CPU and peak memory from
``wait4``, whose rusage covers the process and every descendant it waited for; and the
peak of its process tree's resident memory added up, sampled: ``wait4``'s gives only the
largest single process's (a client of several processes, ``--processes``), and not even
that faithfully (``Accounting.peak_tree_rss_kib``).

The command runs in a session of its own, and once it has ended (or timed out, or been
interrupted here) its whole process group is killed, so that nothing it started outlives
the run: a wrapper's leftovers included.
"""

from __future__ import annotations

import os
import signal
import subprocess
import threading
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

import psutil

#: How long the reaping waits after SIGKILL.
KILL_GRACE = 10.0
#: How often the process tree's memory is added up.
SAMPLE_INTERVAL = 0.25


class StartError(Exception):
    """The command could not be started; one line."""


@dataclass(frozen=True)
class Accounting:
    """How a command ended and what it cost."""

    #: Exit status, or minus the signal that ended it (as ``subprocess``); None if not reaped.
    returncode: int | None
    user_s: float
    system_s: float
    #: The largest resident set of the process or of any descendant it waited for (ru_maxrss).
    peak_rss_kib: int
    wall_s: float
    timed_out: bool
    #: The largest sum of the resident sets of the process and its descendants, sampled
    #: every SAMPLE_INTERVAL: the figure to report. ``peak_rss_kib`` is not, beyond the
    #: largest single process: Linux keeps in it the high-water mark of the memory the
    #: process had before its exec, which for a process started by vfork (as subprocess
    #: starts one) is the starting process's own.
    peak_tree_rss_kib: int = 0

    @property
    def cpu_s(self) -> float:
        return self.user_s + self.system_s


def run_accounted(argv: Sequence[str], *, cwd: Path, env: Mapping[str, str], stdout: Path, stderr: Path,
                  timeout: float) -> Accounting:
    """Run ``argv`` to its end (at most ``timeout`` seconds, then its process group is killed)."""
    reaped: list[tuple[int, int, os.struct_rusage]] = []
    waiter = threading.Thread(target=lambda: reaped.append(os.wait4(process.pid, 0)), daemon=True)
    with stdout.open("wb") as out, stderr.open("wb") as err:
        started = time.monotonic()
        try:
            process = subprocess.Popen(list(argv), cwd=cwd, env=dict(env), stdin=subprocess.DEVNULL, stdout=out,
                                       stderr=err, start_new_session=True)
        except OSError as exc:
            raise StartError(f"cannot start {argv[0]}: {exc.strerror or exc}") from None
        # From here on a Ctrl-C (or a stop signal, raised as one) must still kill the group:
        # the next statement is the try, and the waiter starts inside it.
        try:
            waiter.name = f"wait4-{process.pid}"
            waiter.start()
            tree = TreeMemory(process.pid)
            deadline = started + timeout
            while waiter.is_alive() and (left := deadline - time.monotonic()) > 0:
                tree.sample()
                waiter.join(min(SAMPLE_INTERVAL, left))
        finally:
            # Not reaped: the deadline, or Ctrl-C here (after which a thread's is_alive may lie).
            timed_out = not reaped
            # Reaped or not, whatever is left of its group goes too; the group's id stays its
            # own while any member lives, so this reaches no one else.
            _kill_group(process.pid)
            if timed_out and waiter.ident is not None:
                waiter.join(KILL_GRACE)
    wall_s = time.monotonic() - started
    if not reaped:
        return Accounting(None, 0.0, 0.0, 0, wall_s, timed_out)
    _, status, usage = reaped[0]
    # Reaped here, by wait4: Popen is told, so that it never waits for the pid again.
    process.returncode = os.waitstatus_to_exitcode(status)
    return Accounting(process.returncode, usage.ru_utime, usage.ru_stime, usage.ru_maxrss, wall_s, timed_out,
                      tree.peak_kib)


class TreeMemory:
    """The peak of a process tree's resident memory, added up over its processes."""

    def __init__(self, pid: int) -> None:
        self.pid = pid
        self.peak_kib = 0

    def sample(self) -> None:
        try:
            root = psutil.Process(self.pid)
            processes = [root, *root.children(recursive=True)]
        except psutil.Error:
            return
        total = 0
        for process in processes:
            try:
                total += process.memory_info().rss
            except psutil.Error:
                pass  # ended meanwhile
        self.peak_kib = max(self.peak_kib, total // 1024)


def _kill_group(pgid: int) -> None:
    try:
        os.killpg(pgid, signal.SIGKILL)
    except ProcessLookupError:
        pass
