"""A command run to its end and accounted for: CPU and the memory of its whole process tree."""

from __future__ import annotations

import os
import sys
from pathlib import Path

from chatflow.compare.accounting import run_accounted

MIB = 1024
#: A parent and a child, each holding 80 MiB for a second and a half once both hold it
#: (the child says when it does).
TWO_PROCESSES = """
import subprocess, sys, time
hold = ("import sys, time; b = bytearray(80 * 2**20); b[::4096] = b'x' * len(b[::4096]); "
        "print('holding', flush=True); time.sleep(1.5)")
child = subprocess.Popen([sys.executable, "-c", hold], stdout=subprocess.PIPE, text=True)
b = bytearray(80 * 2**20); b[::4096] = b'x' * len(b[::4096])
child.stdout.readline()
time.sleep(1.5)
child.wait()
"""


def test_the_peak_of_the_process_tree_is_the_sum_of_its_processes(tmp_path: Path) -> None:
    accounting = run_accounted([sys.executable, "-c", TWO_PROCESSES], cwd=tmp_path, env=os.environ,
                               stdout=tmp_path / "out", stderr=tmp_path / "err", timeout=30)
    assert accounting.returncode == 0, (tmp_path / "err").read_text()
    # wait4 sees one process at most (and, started by vfork, this process's own memory
    # before the exec); the sampled tree, both at once.
    assert accounting.peak_rss_kib >= 80 * MIB
    assert 160 * MIB <= accounting.peak_tree_rss_kib < 250 * MIB, accounting
    assert accounting.cpu_s > 0 and not accounting.timed_out
