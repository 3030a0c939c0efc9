"""What a comparison ran on, and the versions of what it ran: figures from different
machines or versions are not comparable, so the JSON says which."""

from __future__ import annotations

import importlib.metadata
import os
import platform
import subprocess
from typing import Any

import psutil

import chatflow

#: How long ``java -version`` may take.
VERSION_TIMEOUT = 20.0


def cpu_model() -> str | None:
    """The first ``model name`` of /proc/cpuinfo."""
    try:
        with open("/proc/cpuinfo") as cpuinfo:
            for line in cpuinfo:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return None


def machine() -> dict[str, Any]:
    return {"cpus": os.cpu_count(), "cpu_model": cpu_model(), "kernel": platform.release(),
            "memory_mib": round(psutil.virtual_memory().total / 2 ** 20), "python": platform.python_version(),
            "hostname": platform.node()}


def package_version(name: str) -> str | None:
    """The installed distribution's version, or None when it is not installed."""
    try:
        return importlib.metadata.version(name)
    except importlib.metadata.PackageNotFoundError:
        return None


def java_version() -> str | None:
    """The first line ``java -version`` prints (on stderr), or None without a java."""
    try:
        done = subprocess.run(["java", "-version"], stdin=subprocess.DEVNULL, capture_output=True, text=True,
                              timeout=VERSION_TIMEOUT)
    except (OSError, subprocess.TimeoutExpired):
        return None
    lines = (done.stderr or done.stdout).strip().splitlines()
    return lines[0].strip() if lines else None


def versions(other: str | None) -> dict[str, Any]:
    """ChatFlow's, Python's and websockets' versions, and the other implementation's as given."""
    return {"chatflow": chatflow.__version__, "python": platform.python_version(),
            "websockets": package_version("websockets"), "other": other}
