"""How a message is retried: how many attempts, and the backoff between them."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class RetryPolicy:
    max_attempts: int
    backoff: float

    def delay(self, attempt: int) -> float:
        """Wait before ``attempt`` (2, 3, …): backoff, then twice as long each time."""
        return self.backoff * 2 ** (attempt - 2)
