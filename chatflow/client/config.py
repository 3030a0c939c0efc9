"""The configuration of a load test."""

from __future__ import annotations

from dataclasses import dataclass

from chatflow.client.retry import RetryPolicy
from chatflow.config import ClientDefaults

DEFAULTS = ClientDefaults()


@dataclass(frozen=True)
class LoadTestConfig:
    base_url: str
    messages: int = DEFAULTS.messages
    warmup_threads: int = DEFAULTS.warmup_threads
    warmup_messages: int = DEFAULTS.warmup_messages
    threads: int = DEFAULTS.threads
    timeout: float = DEFAULTS.timeout
    retry: RetryPolicy = RetryPolicy(DEFAULTS.max_attempts, DEFAULTS.backoff)
    rooms: int = DEFAULTS.rooms
    seed: int | None = None
    probe_messages: int = DEFAULTS.probe_messages

    def room_url(self, room: int) -> str:
        return f"{self.base_url}/chat/{room}"
