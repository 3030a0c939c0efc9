"""The per-message metrics file (SPEC §2.5): its outcomes, its columns, its rows; and
the name and schema version of the run's summary.json beside it.

The client writes them (``chatflow.client.csv_writer``, ``chatflow.client.summary_file``)
and the analysis reads them (``chatflow.analysis.performance_analyzer``,
``chatflow.analysis.summary_file``); both take the names from here.
"""

from __future__ import annotations

from collections.abc import Callable
from enum import StrEnum
from pathlib import Path
from typing import NamedTuple

from chatflow.models import ReplyStatus


class Status(StrEnum):
    """A message attempt's outcome: the reply's status, or what happened instead of a reply."""

    SUCCESS = ReplyStatus.SUCCESS.value
    ERROR = ReplyStatus.ERROR.value
    TIMEOUT = "timeout"
    CONNECTION_CLOSED = "connection_closed"
    CONNECTION_FAILED = "connection_failed"
    #: Still queued, or waiting to be retried, when the run was stopped.
    CANCELLED = "cancelled"
    #: A bug in the client (or its recorder) while the message was in hand.
    CLIENT_ERROR = "client_error"
    #: A message of a worker process (``--processes``) that ended before reporting it.
    WORKER_LOST = "worker_lost"


# The same names as plain str, for the per-message path: an enum member costs a lookup
# each time, and the CSV writer formats a str faster.
SUCCESS, ERROR, TIMEOUT = Status.SUCCESS.value, Status.ERROR.value, Status.TIMEOUT.value
CONNECTION_CLOSED, CONNECTION_FAILED = Status.CONNECTION_CLOSED.value, Status.CONNECTION_FAILED.value
CANCELLED, CLIENT_ERROR = Status.CANCELLED.value, Status.CLIENT_ERROR.value
WORKER_LOST = Status.WORKER_LOST.value

TIMESTAMP, MESSAGE_TYPE, LATENCY, STATUS, ROOM, FINAL = (
    "timestamp", "messageType", "latency", "statusCode", "roomId", "final")
#: The Java client's five columns: its files have these and no others, one row per message.
JAVA_COLUMNS = (TIMESTAMP, MESSAGE_TYPE, LATENCY, STATUS, ROOM)
#: ChatFlow adds ``final``: 1 for a message's last attempt (its outcome), 0 for an
#: attempt that was retried.
COLUMNS = (*JAVA_COLUMNS, FINAL)
CSV_HEADER = ",".join(COLUMNS)

#: The broadcast scenario's two more columns (docs/analysis.md#the-broadcast-scenarios-columns),
#: on a message's final row: ``deliveries``, the room's listening members that received it,
#: and ``fanoutLastMs``, send → the last of them, blank unless every member received it.
#: Both blank on a retried attempt's row.
DELIVERIES, FANOUT_LAST = "deliveries", "fanoutLastMs"
BROADCAST_COLUMNS = (*COLUMNS, DELIVERIES, FANOUT_LAST)
BROADCAST_CSV_HEADER = ",".join(BROADCAST_COLUMNS)

#: The open loop's two more columns (``--rate``, docs/analysis.md#the-open-loops-columns):
#: ``intendedTimestamp``, the epoch ms (to the µs) the schedule meant the message to be
#: sent at, and ``responseTime``, ms from then to the attempt's outcome (the latency a
#: user waiting for the message sees); ``latency`` stays the service time from the
#: actual send, and ``timestamp`` the actual send.
INTENDED, RESPONSE = "intendedTimestamp", "responseTime"
RATE_COLUMNS = (*COLUMNS, INTENDED, RESPONSE)
RATE_CSV_HEADER = ",".join(RATE_COLUMNS)

#: Called once per attempt: (epoch ms at send, message type, latency ms, status, room, final).
Recorder = Callable[[int, str, float, str, int, bool], None]


#: A row's line in ``COLUMNS`` order, newline included, from its fields as a plain tuple:
#: one C-level format per row, for the CSV writer (``final`` as 1 or 0).
CSV_LINE = "%d,%s,%.3f,%s,%d,%d\n"
#: A broadcast scenario's row: ``CSV_LINE``'s fields, then the two columns as text.
BROADCAST_CSV_LINE = CSV_LINE[:-1] + ",%s,%s\n"
#: An open loop's row: ``CSV_LINE``'s fields, then intended epoch ms and response ms.
RATE_CSV_LINE = CSV_LINE[:-1] + ",%.3f,%.3f\n"
#: The two columns of a row that has no fan-out figures (a retried attempt).
NO_FANOUT = ("", "")


class CsvFormat(NamedTuple):
    """A metrics file's header and the format of its rows."""

    header: str
    line: str


ECHO_CSV = CsvFormat(CSV_HEADER, CSV_LINE)
BROADCAST_CSV = CsvFormat(BROADCAST_CSV_HEADER, BROADCAST_CSV_LINE)
RATE_CSV = CsvFormat(RATE_CSV_HEADER, RATE_CSV_LINE)


def csv_format(broadcast: bool, open_loop: bool = False) -> CsvFormat:
    """The metrics file of a scenario: the echo scenario's is the one of SPEC §2.5 and the
    Java comparison, unchanged; the open loop's (``--rate``) has two more columns."""
    if open_loop:
        return RATE_CSV
    return BROADCAST_CSV if broadcast else ECHO_CSV


class MetricRecord(NamedTuple):
    """One row, its fields named. The senders hand the CSV writer plain tuples of these
    fields instead (docs/client.md#the-senders-per-message-path)."""

    timestamp_ms: int
    message_type: str
    latency_ms: float
    status: str
    room_id: int
    final: bool

    def csv_line(self) -> str:
        """The row in ``COLUMNS`` order, newline included."""
        return CSV_LINE % self


#: summary.json (docs/client.md#summaryjson): every figure of a run's console summary, its
#: command, configuration, versions, thresholds and exit status, beside its metrics file as
#: ``<csv stem>.summary.json``. ``schema`` is this number, raised when a key changes its
#: meaning or goes away (new keys may come without it).
SUMMARY_SCHEMA = 1
SUMMARY_SUFFIX = ".summary.json"


def summary_path(csv: Path) -> Path:
    """The summary.json of a metrics file."""
    return csv.with_name(csv.stem + SUMMARY_SUFFIX)
