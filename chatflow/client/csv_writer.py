"""The metrics file, written as the run goes by one dedicated thread.

Senders hand over rows through a ``queue.SimpleQueue`` (a C queue: a put takes no
Python lock); the writer formats and writes them
in batches. Memory stays bounded: a sender that finds more than ``HIGH_WATER`` rows
waiting pauses until the writer catches up. A write error (disk full) does not stop the
run: the writer keeps draining, stops writing, and reports the error at the end.
"""

from __future__ import annotations

import heapq
import itertools
import queue
import secrets
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import TextIO

from chatflow.metrics import COLUMNS, ECHO_CSV, FINAL, NO_FANOUT, STATUS, SUCCESS, CsvFormat, MetricRecord

HIGH_WATER = 200_000
BATCH = 4096
POLL_INTERVAL = 0.02
_DONE = None


def metrics_path(directory: Path) -> Path:
    """``metrics_<time>_<random>.csv``: two runs in the same second get two files."""
    stamp = time.strftime("%Y%m%d-%H%M%S")
    return directory / f"metrics_{stamp}_{secrets.token_hex(3)}.csv"


def open_metrics_file(path: Path, header: str = ECHO_CSV.header) -> TextIO:
    """A new metrics file (never an existing one), its header written."""
    file = path.open("x", encoding="ascii", newline="")
    file.write(header + "\n")
    return file


class CsvWriter(threading.Thread):
    """Opens its file at construction, so an unwritable directory fails before the run:
    a new ``metrics_path`` in ``directory``, or ``path`` (a worker's part file); its
    columns are ``form``'s (the broadcast scenario's has two more)."""

    def __init__(self, directory: Path, path: Path | None = None, form: CsvFormat = ECHO_CSV) -> None:
        super().__init__(name="CsvWriter", daemon=True)
        self.path = path or metrics_path(directory)
        self._line = form.line
        self._file = open_metrics_file(self.path, form.header)
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
            self._hold_back()

    def record_without_fanout(self, timestamp_ms: int, message_type: str, latency_ms: float,
                              status: str, room_id: int, final: bool) -> None:
        """``record`` for the broadcast scenario's file: the fan-out columns left blank."""
        self.record_row((timestamp_ms, message_type, latency_ms, status, room_id, final, *NO_FANOUT))

    def record_row(self, row: tuple) -> None:
        """A whole row in the file's columns, from any thread (the fan-out tracker's)."""
        rows = self._rows
        rows.put(row)
        if rows.qsize() > HIGH_WATER:
            self._hold_back()

    def _hold_back(self) -> None:
        rows = self._rows
        while rows.qsize() > HIGH_WATER // 2 and self.is_alive():
            time.sleep(0.01)

    def close(self, timeout: float = 60.0) -> None:
        """Write what is queued, flush, close; returns when the file is complete."""
        self._rows.put(_DONE)
        self.join(timeout)

    def run(self) -> None:
        rows, file, line = self._rows, self._file, self._line
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
                        file.write("".join([line % row for row in batch]))
                        file.flush()
                        self.rows_written += len(batch)
                    except OSError as exc:
                        self.error = exc.strerror or str(exc)
        finally:
            try:
                file.close()
            except OSError as exc:
                self.error = self.error or exc.strerror or str(exc)


class MergedCsv:
    """The run's one metrics file when worker processes write their own parts
    (``--processes``): opened at construction, as CsvWriter's, and filled at the end by
    ``merge``, the parts' rows in order of send time, as one process would have written them."""

    def __init__(self, directory: Path, form: CsvFormat = ECHO_CSV) -> None:
        self.path = metrics_path(directory)
        self.form = form
        self._file = open_metrics_file(self.path, form.header)
        self.rows_written = 0
        self.error: str | None = None

    def part(self, index: int) -> Path:
        """Worker ``index``'s part file, beside the merged file."""
        return self.path.with_name(f"{self.path.stem}.worker{index}.csv")

    def merge(self, parts: list[Path]) -> None:
        """Every complete row of the parts that exist into the file, then the parts removed,
        also after a write error: the run has one metrics file, as in one process."""
        parts = [part for part in parts if part.exists()]
        rows = heapq.merge(*(read_rows(part) for part in parts), key=_send_time)
        try:
            while batch := list(itertools.islice(rows, BATCH * 4)):
                self._file.write("".join(batch))
                self._file.flush()
                self.rows_written += len(batch)
        except OSError as exc:
            self.error = exc.strerror or str(exc)
        finally:
            for part in parts:
                part.unlink(missing_ok=True)

    def close(self) -> None:
        try:
            self._file.close()
        except OSError as exc:
            self.error = self.error or exc.strerror or str(exc)


def read_rows(path: Path) -> Iterator[str]:
    """A metrics file's complete rows, header left out: a process killed while writing
    leaves a last line without its newline, which is not a row."""
    with path.open(encoding="ascii", newline="") as file:
        file.readline()
        for line in file:
            if line.endswith("\n"):
                yield line


def final_outcomes(path: Path) -> tuple[int, dict[str, int]]:
    """(successes, failures by status) of the final rows of a metrics file (either scenario's)."""
    success, failures = 0, {}
    for line in read_rows(path):
        fields = line.rstrip("\n").split(",")
        if fields[_FINAL_AT] != "1":
            continue
        status = fields[_STATUS_AT]
        if status == SUCCESS:
            success += 1
        else:
            failures[status] = failures.get(status, 0) + 1
    return success, failures


_FINAL_AT, _STATUS_AT = COLUMNS.index(FINAL), COLUMNS.index(STATUS)


def _send_time(row: str) -> int:
    return int(row[:row.index(",")])
