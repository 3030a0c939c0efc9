"""The metrics file, written as the run goes by one dedicated thread.

Senders hand over rows through a ``queue.SimpleQueue`` (a C queue: a put takes no
Python lock); the writer formats and writes them
in batches. Memory stays bounded: a sender that finds more than ``HIGH_WATER`` rows
waiting pauses until the writer catches up. A write error (disk full) does not stop the
run: the writer keeps draining, stops writing, and reports the error at the end.
"""

from __future__ import annotations

import queue
import secrets
import threading
import time
from pathlib import Path

from chatflow.metrics import CSV_HEADER, CSV_LINE, MetricRecord

HIGH_WATER = 200_000
BATCH = 4096
POLL_INTERVAL = 0.02
_DONE = None


def metrics_path(directory: Path) -> Path:
    """``metrics_<time>_<random>.csv``: two runs in the same second get two files."""
    stamp = time.strftime("%Y%m%d-%H%M%S")
    return directory / f"metrics_{stamp}_{secrets.token_hex(3)}.csv"


class CsvWriter(threading.Thread):
    """Opens its file at construction, so an unwritable directory fails before the run."""

    def __init__(self, directory: Path) -> None:
        super().__init__(name="CsvWriter", daemon=True)
        self.path = metrics_path(directory)
        self._file = self.path.open("x", encoding="ascii", newline="")
        self._file.write(CSV_HEADER + "\n")
        self._rows: queue.SimpleQueue[MetricRecord | None] = queue.SimpleQueue()
        #: Rows handed to the OS: each batch is flushed, so that after a write error
        #: this counts what the file holds, not what sat in its buffer.
        self.rows_written = 0
        self.error: str | None = None

    def record(self, timestamp_ms: int, message_type: str, latency_ms: float,
               status: str, room_id: int, final: bool) -> None:
        """Called by the senders, from any thread."""
        rows = self._rows
        # A plain tuple of MetricRecord's fields: building the named one costs a Python call.
        rows.put((timestamp_ms, message_type, latency_ms, status, room_id, final))
        if rows.qsize() > HIGH_WATER:
            while rows.qsize() > HIGH_WATER // 2 and self.is_alive():
                time.sleep(0.01)

    def close(self, timeout: float = 60.0) -> None:
        """Write what is queued, flush, close; returns when the file is complete."""
        self._rows.put(_DONE)
        self.join(timeout)

    def run(self) -> None:
        rows, file = self._rows, self._file
        try:
            done = False
            while not done:
                batch = []
                while len(batch) < BATCH:
                    try:
                        batch.append(rows.get_nowait())
                    except queue.Empty:
                        break
                if not batch:
                    # Polling, not a blocking get(): waking up for every row would
                    # cost a GIL handoff per message.
                    time.sleep(POLL_INTERVAL)
                    continue
                if batch[-1] is _DONE:
                    batch.pop()
                    done = True
                if self.error is None and batch:
                    try:
                        file.write("".join([CSV_LINE % row for row in batch]))
                        file.flush()
                        self.rows_written += len(batch)
                    except OSError as exc:
                        self.error = exc.strerror or str(exc)
        finally:
            try:
                file.close()
            except OSError as exc:
                self.error = self.error or exc.strerror or str(exc)
