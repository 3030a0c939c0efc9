"""A run's phases: how many senders each has, and how many messages each sender sends."""

from __future__ import annotations

from dataclasses import dataclass

from chatflow.client.config import LoadTestConfig


@dataclass
class PhasePlan:
    name: str
    quotas: list[int]

    @property
    def threads(self) -> int:
        return len(self.quotas)

    @property
    def messages(self) -> int:
        return sum(self.quotas)


def split(total: int, parts: int) -> list[int]:
    """``total`` in ``parts`` shares that differ by at most one."""
    share, extra = divmod(total, parts)
    return [share + (1 if i < extra else 0) for i in range(parts)]


def plan_phases(config: LoadTestConfig) -> list[PhasePlan]:
    """Warmup: each warmup thread sends its fixed count; main: the rest, split evenly.

    No warmup phase when either warmup figure is 0 or the run is an open loop (``--rate``:
    one phase on one schedule), nor a main phase when the warmup takes every message.
    """
    warmup_total = 0 if config.open_loop else min(config.messages, config.warmup_threads * config.warmup_messages)
    plans = []
    if warmup_total:
        plans.append(PhasePlan("warmup", split(warmup_total, config.warmup_threads)))
    main_total = config.messages - warmup_total
    if main_total:
        plans.append(PhasePlan("main", split(main_total, config.threads)))
    return plans
