"""CPU time of the client, and of a local server, over a run's phases; the cores it may use."""

from __future__ import annotations

import os
import resource
import time

import psutil


class CpuMeter:
    """CPU seconds of the client and, when it is local, of the server, since construction.

    The client's are this process's and its ended children's (the worker processes of
    ``--processes``, reaped before ``read``); the local server is still running then, so
    its CPU is not among them.
    """

    def __init__(self, server_pid: int | None) -> None:
        self._client_start = _client_cpu()
        self._server: psutil.Process | None = None
        if server_pid is not None:
            try:
                self._server = psutil.Process(server_pid)
            except psutil.Error:
                pass  # the local server is gone: the run will say so, this figure is missing
        self._server_start = self._server_cpu()

    def _server_cpu(self) -> float | None:
        if self._server is None:
            return None
        try:
            times = self._server.cpu_times()
        except psutil.Error:
            return None
        return times.user + times.system

    def read(self) -> tuple[float, float | None]:
        """(client, server) CPU seconds so far; the server's is None when unknown."""
        client = _client_cpu() - self._client_start
        end = self._server_cpu()
        server = end - self._server_start if end is not None and self._server_start is not None else None
        return client, server


def _client_cpu() -> float:
    children = resource.getrusage(resource.RUSAGE_CHILDREN)
    return time.process_time() + children.ru_utime + children.ru_stime


def usable_cores() -> int | None:
    """The CPUs this process may run on (its affinity, where the OS has one)."""
    if hasattr(os, "sched_getaffinity"):
        return len(os.sched_getaffinity(0))
    return os.cpu_count()
