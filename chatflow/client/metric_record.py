"""One row of the per-message metrics (SPEC §2.5)."""

from __future__ import annotations

from typing import NamedTuple

#: The Java client's five columns, and ``final``: 1 for a message's last attempt (its
#: outcome), 0 for an attempt that was retried. The Java client writes no retried
#: attempts, so its files have no such column and every row is a message.
CSV_HEADER = "timestamp,messageType,latency,statusCode,roomId,final"


class MetricRecord(NamedTuple):
    """A tuple, not a class with fields to set: one is made per attempt on the hot path."""

    timestamp_ms: int
    message_type: str
    latency_ms: float
    status: str
    room_id: int
    final: bool

    def csv_line(self) -> str:
        return (f"{self.timestamp_ms},{self.message_type},{self.latency_ms:.3f},"
                f"{self.status},{self.room_id},{1 if self.final else 0}\n")
