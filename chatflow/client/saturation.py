"""Whether the client itself held a run back: its CPU, and the time replies waited in it.

The client's Python code runs one thread at a time per process (the GIL), so a process
can use about one core for it, whatever the machine has; the kernel's socket work runs
beside it. The rule (docs/client.md#when-the-client-is-saturated): the client is busy
when its CPU over the phases reached ``BUSY_FRACTION`` of its ceiling, min(processes,
cores) cores; its replies waited in it when the client wait reached ``WAIT_SHARE`` of
the mean latency. Either way, the figures measure the client as much as the server.
"""

from __future__ import annotations

from dataclasses import dataclass

#: Busy at this fraction of the cores the client can use (one per process, at most all).
BUSY_FRACTION = 0.8
#: Replies waited in the client when their mean client wait is this share of the mean latency.
WAIT_SHARE = 0.25


@dataclass(frozen=True)
class ClientLoad:
    """The client's use of the cores over a run's phases, and the verdict of the rule."""

    cores_used: float
    #: The cores its Python code could use: min(processes, cores); processes without cores.
    ceiling: int
    cores: int | None
    #: Mean client wait over mean latency; None when not measured.
    wait_share: float | None

    @property
    def busy(self) -> bool:
        return self.cores_used >= BUSY_FRACTION * self.ceiling

    @property
    def waiting(self) -> bool:
        return self.wait_share is not None and self.wait_share >= WAIT_SHARE

    @property
    def saturated(self) -> bool:
        return self.busy or self.waiting


def client_load(client_cpu_s: float | None, phases_s: float, cores: int | None,
                wait_share: float | None = None, processes: int = 1) -> ClientLoad | None:
    """Cores used = client CPU seconds / seconds of phases, against min(processes, cores).

    None without a CPU figure or a phase that lasted.
    """
    if client_cpu_s is None or phases_s <= 0 or processes < 1:
        return None
    ceiling = min(processes, cores) if cores and cores > 0 else processes
    return ClientLoad(client_cpu_s / phases_s, ceiling, cores if cores and cores > 0 else None, wait_share)
