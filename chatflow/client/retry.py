"""How a message is retried: how many attempts, and the backoff between them."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class RetryPolicy:
    max_attempts: int = 5
    backoff: float = 0.1

    def delay(self, attempt: int) -> float:
        """Wait before ``attempt`` (2, 3, …): 0.1, 0.2, 0.4, 0.8 s by default."""
        return self.backoff * 2 ** (attempt - 2)
