"""Statistics of one per-message metrics CSV (SPEC §2.5), ours or the Java client's.

The file is read once by pandas' C parser with explicit dtypes, then every figure is a
vectorised operation: no Python runs per row (docs/analysis.md, "Speed").
Malformed rows are counted and left out, never fatal: a run that was cut short still
deserves its statistics. Only a file that cannot be a metrics CSV at all (missing,
a directory, empty, not text, columns missing) raises :class:`AnalysisError`.

Definitions (docs/analysis.md says why):

- a *message* is a row with ``final`` = 1, or every row when the file has no ``final``
  column (the Java client records only outcomes);
- latency statistics are over successful messages; percentiles use linear
  interpolation between the closest ranks (numpy's default, ``method="linear"``);
- the run starts at the first send and ends at the last completion (send + latency);
  a successful message counts in the bucket of its completion; the last bucket ends
  with the run and is divided by its real length;
- per-room throughput is the room's successful messages over the run's span, so the
  rooms' throughputs add up to the run's;
- the open loop's columns, when the file has them (``--rate``): the response time of a
  successful message is its ``responseTime`` (intended send → reply), and ``latency`` is
  then its service time;
- the broadcast scenario's columns, when the file has them: a successful message's
  ``deliveries`` are the members that received it, of as many as the largest count any
  message reached (the room's members, inferred); the last member's latency is over the
  messages that reached every member.
"""

from __future__ import annotations

import math
import re
import warnings
from collections.abc import Callable
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from chatflow.metrics import (BROADCAST_COLUMNS, COLUMNS, DELIVERIES, FANOUT_LAST, FINAL, INTENDED, JAVA_COLUMNS,
                              LATENCY, MESSAGE_TYPE, RATE_COLUMNS, RESPONSE, ROOM, STATUS, TIMESTAMP, Status)
from chatflow.models import MessageType

PERCENTILE_METHOD = "linear interpolation between closest ranks (numpy.percentile method='linear')"
DEFAULT_BUCKET_SECONDS = 10.0
#: A bucket shorter than the CSV's timestamp resolution (1 ms) would mean nothing.
MIN_BUCKET_SECONDS = 0.001
#: Beyond this the chart is unreadable and the JSON huge: a wrong timestamp is likelier.
MAX_BUCKETS = 100_000
HISTOGRAM_BINS_PER_DECADE = 10
MESSAGE_TYPES = tuple(t.value for t in MessageType)

_NUMERIC = (TIMESTAMP, LATENCY, ROOM, FINAL, DELIVERIES, FANOUT_LAST, INTENDED, RESPONSE)
_TEXT = (MESSAGE_TYPE, STATUS)


def _header_key(name: str) -> str:
    return re.sub(r"[^a-z0-9]", "", name.lower())


#: Header cells are matched ignoring case and punctuation, with an optional unit
#: suffix: Java clients write ``LatencyMs`` or ``latency_ms`` as often as ``latency``.
_HEADER_KEYS = {_header_key(name): name for name in (*BROADCAST_COLUMNS, *RATE_COLUMNS)} | {
    _header_key(name) + "ms": name for name in (TIMESTAMP, LATENCY)}
_SKIPPED_LINE = re.compile(r"Skipping line \d+")
#: A completion instant in µs must be exact in a float64 (NaN and infinity fail too).
_EXACT_US = 2.0 ** 53
#: Room ids are Java ints.
_ROOM_LIMIT = 2 ** 31


class AnalysisError(Exception):
    """The input cannot be analysed; the message is one line meant for the user."""


@dataclass(frozen=True)
class LatencyStats:
    """Milliseconds; ``None`` when there is no successful message to measure."""

    count: int
    mean: float | None
    median: float | None
    p95: float | None
    p99: float | None
    min: float | None
    max: float | None


@dataclass(frozen=True)
class TypeFigures:
    message_type: str
    messages: int
    percent: float
    successes: int
    failures: int
    throughput_per_s: float | None
    latency_ms: LatencyStats


@dataclass(frozen=True)
class RoomFigures:
    room_id: int
    messages: int
    successes: int
    failures: int
    throughput_per_s: float | None


@dataclass(frozen=True)
class Bucket:
    """Seconds since the first send; the last bucket may be shorter than the others."""

    start_s: float
    end_s: float
    successes: int
    throughput_per_s: float | None


@dataclass(frozen=True)
class LatencyHistogram:
    """Log-spaced bins of successful latencies; zeros (1 ms clocks) cannot sit on a log axis."""

    edges_ms: list[float]
    counts: list[int]
    zero_count: int


@dataclass(frozen=True)
class FanoutFigures:
    """The broadcast scenario's columns summed up (docs/analysis.md#the-broadcast-scenarios-columns)."""

    #: The largest ``deliveries`` of a message: the room's listening members, inferred.
    members: int
    #: Successful messages, their deliveries, and members × messages.
    messages: int
    deliveries: int
    expected: int
    missing: int
    #: Successful messages that reached every member, and those that did not.
    complete: int
    incomplete: int
    #: Send → the last member, over the complete messages.
    last_member_latency_ms: LatencyStats


@dataclass(frozen=True)
class AnalysisResult:
    source: str
    bucket_seconds: float
    percentile_method: str
    has_final_column: bool
    rows: int
    malformed_rows: int
    messages: int
    successes: int
    failures: int
    retried_attempts: int
    status_counts: dict[str, int]
    retried_by_status: dict[str, int]
    latency_ms: LatencyStats
    message_types: list[TypeFigures]
    rooms: list[RoomFigures]
    first_timestamp_ms: float | None
    end_timestamp_ms: float | None
    span_s: float | None
    throughput_per_s: float | None
    buckets: list[Bucket]
    latency_histogram: LatencyHistogram
    #: None for a file without the broadcast scenario's columns.
    fanout: FanoutFigures | None = None
    #: An open loop's response times (intended send → reply) of its successful messages;
    #: ``latency_ms`` is then their service times. None without the open loop's columns.
    response_time_ms: LatencyStats | None = None

    def to_dict(self) -> dict[str, Any]:
        """Plain Python values only, ready for ``json.dumps``."""
        return asdict(self)


@dataclass(frozen=True)
class MetricsTable:
    """The valid rows of a metrics file, with what had to be left out."""

    frame: pd.DataFrame
    malformed_rows: int
    has_final_column: bool


def load_metrics(path: str | Path) -> MetricsTable:
    """Read and validate a metrics CSV; raises AnalysisError only for a file that is not one."""
    path = Path(path)
    if not path.exists():
        raise AnalysisError(f"{path}: no such file")
    if path.is_dir():
        raise AnalysisError(f"{path}: is a directory, not a CSV file")
    try:
        header = pd.read_csv(path, nrows=0, engine="c", skipinitialspace=True).columns
        columns, headerless = _map_columns(path, [str(name) for name in header])
        frame, skipped = _read_rows(path, columns, headerless)
    except pd.errors.EmptyDataError:
        raise AnalysisError(f"{path}: empty file (expected a CSV header "
                            f"{','.join(JAVA_COLUMNS)}[,{FINAL}])") from None
    except UnicodeDecodeError:
        raise AnalysisError(f"{path}: not a text CSV file (invalid UTF-8)") from None
    except pd.errors.ParserError as exc:
        raise AnalysisError(f"{path}: cannot parse as CSV: {_last_line(exc)}") from None
    except OSError as exc:
        raise AnalysisError(f"{path}: cannot read: {exc.strerror or exc}") from None
    has_final = FINAL in frame.columns
    valid = _valid_rows(frame, has_final)
    frame = frame.loc[valid].reset_index(drop=True)
    frame[ROOM] = frame[ROOM].astype(np.int64)
    frame[FINAL] = frame[FINAL].astype(bool) if has_final else True
    return MetricsTable(frame, skipped + int((~valid).sum()), has_final)


def _map_columns(path: Path, header: list[str]) -> tuple[dict[str, Any], bool]:
    """Canonical column → the file's column label; headerless files go by position."""
    found: dict[str, str] = {}
    for name in header:
        canonical = _HEADER_KEYS.get(_header_key(name))
        if canonical is None:
            continue
        if canonical in found:
            raise AnalysisError(f"{path}: column {canonical} appears twice in the header")
        found[canonical] = name
    if not found and header and _is_number(header[0]):
        positions = {name: i for i, name in enumerate(COLUMNS) if i < len(header)}
        if len(positions) >= len(JAVA_COLUMNS):
            return positions, True
    missing = [name for name in JAVA_COLUMNS if name not in found]
    if missing:
        raise AnalysisError(f"{path}: missing column(s) {', '.join(missing)}; expected the header "
                            f"{','.join(JAVA_COLUMNS)}[,{FINAL}], found {','.join(header)[:200]}")
    return found, False


def _read_rows(path: Path, columns: dict[str, Any], headerless: bool) -> tuple[pd.DataFrame, int]:
    """Typed fast path; a non-numeric cell sends the numeric columns through their distinct values."""
    typed = {columns[name]: "float64" for name in _NUMERIC if name in columns}
    typed |= {columns[name]: "category" for name in _TEXT}
    options: dict[str, Any] = dict(engine="c", skipinitialspace=True, on_bad_lines="warn",
                                   header=None if headerless else 0)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always", pd.errors.ParserWarning)
        try:
            raw = pd.read_csv(path, dtype=typed, **options)
        except (pd.errors.ParserError, pd.errors.EmptyDataError, UnicodeDecodeError):
            raise
        except ValueError:
            caught.clear()
            raw = pd.read_csv(path, dtype=dict.fromkeys(typed, "category"), **options)
    skipped = sum(len(_SKIPPED_LINE.findall(str(w.message))) for w in caught)
    frame = pd.DataFrame({name: raw[label] for name, label in columns.items()})
    for name in _NUMERIC:
        if name in frame.columns and frame[name].dtype != np.float64:
            frame[name] = _as_float(frame[name])
    frame[MESSAGE_TYPE] = _normalised(frame[MESSAGE_TYPE], str.upper)
    frame[STATUS] = _normalised(frame[STATUS], str.lower)
    return frame, skipped


def _as_float(column: pd.Series) -> pd.Series:
    """``to_numeric`` over the distinct cells only, not over every cell; bad cells → NaN."""
    distinct = pd.to_numeric(pd.Series(column.cat.categories, dtype=object), errors="coerce")
    values = np.append(distinct.to_numpy(np.float64), np.nan)
    return pd.Series(values[column.cat.codes.to_numpy()], index=column.index)


def _normalised(column: pd.Series, case: Callable[[str], str]) -> pd.Series:
    """Strip and re-case the few distinct values, not the half million cells."""
    column = column.astype("category")
    mapping = {value: case(str(value).strip()) or None for value in column.cat.categories}
    return column.map(mapping).astype("category")


def _valid_rows(frame: pd.DataFrame, has_final: bool) -> pd.Series:
    timestamp, latency, room = frame[TIMESTAMP], frame[LATENCY], frame[ROOM]
    valid = ((timestamp >= 0) & (latency >= 0) & ((timestamp + latency) * 1000 < _EXACT_US)
             & (room >= 0) & (room < _ROOM_LIMIT) & (room == np.floor(room))
             & frame[MESSAGE_TYPE].isin(MESSAGE_TYPES) & frame[STATUS].notna())
    if has_final:
        valid &= frame[FINAL].isin((0.0, 1.0))
    return valid


def _is_number(text: str) -> bool:
    try:
        float(text)
    except ValueError:
        return False
    return True


def _last_line(exc: Exception) -> str:
    return str(exc).strip().splitlines()[-1] if str(exc).strip() else type(exc).__name__


class PerformanceAnalyzer:
    """Turns a metrics CSV into an :class:`AnalysisResult` of plain figures."""

    def __init__(self, bucket_seconds: float = DEFAULT_BUCKET_SECONDS) -> None:
        _check_bucket(bucket_seconds)
        self.bucket_seconds = float(bucket_seconds)

    def analyze(self, path: str | Path) -> AnalysisResult:
        table = load_metrics(path)
        frame = table.frame
        messages = frame[frame[FINAL]]
        retried = frame[~frame[FINAL]]
        succeeded = successful(frame)
        start_us, end_us = _run_bounds_us(frame)
        span_s = (end_us - start_us) / 1e6 if start_us is not None else None
        rate = _rate_over(span_s)
        return AnalysisResult(
            source=str(path),
            bucket_seconds=self.bucket_seconds,
            percentile_method=PERCENTILE_METHOD,
            has_final_column=table.has_final_column,
            rows=len(frame),
            malformed_rows=table.malformed_rows,
            messages=len(messages),
            successes=len(succeeded),
            failures=len(messages) - len(succeeded),
            retried_attempts=len(retried),
            status_counts=_counts(messages[STATUS]),
            retried_by_status=_counts(retried[STATUS]),
            latency_ms=latency_stats(succeeded[LATENCY].to_numpy()),
            message_types=_type_figures(messages, succeeded, rate),
            rooms=_room_figures(messages, rate),
            first_timestamp_ms=start_us / 1000 if start_us is not None else None,
            end_timestamp_ms=end_us / 1000 if end_us is not None else None,
            span_s=span_s,
            throughput_per_s=rate(len(succeeded)),
            buckets=self._buckets(frame),
            latency_histogram=latency_histogram(succeeded[LATENCY].to_numpy()),
            fanout=fanout_figures(succeeded) if DELIVERIES in frame.columns else None,
            response_time_ms=response_stats(succeeded) if RESPONSE in frame.columns else None,
        )

    def _buckets(self, frame: pd.DataFrame) -> list[Bucket]:
        timeline = success_timeline(frame, self.bucket_seconds)
        buckets = []
        for i, n in enumerate(timeline.successes):
            begin, end = i * timeline.bucket_us, min((i + 1) * timeline.bucket_us, timeline.span_us)
            length_s = (end - begin) / 1e6
            buckets.append(Bucket(begin / 1e6, end / 1e6, n, n / length_s if length_s > 0 else None))
        return buckets


@dataclass(frozen=True)
class SuccessTimeline:
    """Successful messages per bucket of their completion, from the run's first send; the
    last bucket ends with the run's last completion, so it may be shorter than the others.
    Whole microseconds, so that bucket edges are exact."""

    bucket_us: int
    span_us: int
    successes: list[int]


def successful(frame: pd.DataFrame) -> pd.DataFrame:
    """The rows of messages that succeeded (their last attempt's outcome is success)."""
    return frame[frame[FINAL] & (frame[STATUS] == Status.SUCCESS)]


def success_timeline(frame: pd.DataFrame, bucket_seconds: float) -> SuccessTimeline:
    """The throughput timeline of a metrics table's frame; AnalysisError rather than more
    than MAX_BUCKETS buckets (a stray timestamp would otherwise allocate without limit)."""
    _check_bucket(bucket_seconds)
    start_us, end_us = _run_bounds_us(frame)
    bucket_us = round(bucket_seconds * 1e6)
    if start_us is None:
        return SuccessTimeline(bucket_us, 0, [])
    span_us = end_us - start_us
    count = max(1, -(-span_us // bucket_us))
    if count > MAX_BUCKETS:
        raise AnalysisError(
            f"{count:,} buckets of {bucket_seconds:g} s over a span of {span_us / 1e6:,.3f} s "
            f"(at most {MAX_BUCKETS:,}): check the file's timestamps, or use a longer bucket")
    done_us = _completion_us(successful(frame)) - start_us
    index = np.minimum(done_us // bucket_us, count - 1).astype(np.int64)
    return SuccessTimeline(bucket_us, span_us, np.bincount(index, minlength=count).tolist())


def fanout_figures(succeeded: pd.DataFrame) -> FanoutFigures:
    """The deliveries of the successful messages, from the broadcast scenario's columns."""
    deliveries = succeeded[DELIVERIES].to_numpy()
    counted = deliveries[~np.isnan(deliveries)]
    members = int(counted.max()) if counted.size else 0
    total = int(counted.sum())
    last = succeeded[FANOUT_LAST].to_numpy() if FANOUT_LAST in succeeded.columns else np.empty(0)
    last = last[~np.isnan(last)]
    expected = members * int(counted.size)
    return FanoutFigures(members, int(counted.size), total, expected, expected - total, int(last.size),
                         int(counted.size - last.size), latency_stats(last))


def response_stats(succeeded: pd.DataFrame) -> LatencyStats:
    """The open loop's response times of the successful messages (a blank cell left out)."""
    response = succeeded[RESPONSE].to_numpy()
    return latency_stats(response[~np.isnan(response)])


def _check_bucket(bucket_seconds: float) -> None:
    if not (math.isfinite(bucket_seconds) and bucket_seconds >= MIN_BUCKET_SECONDS):
        raise AnalysisError(f"bucket length must be at least {MIN_BUCKET_SECONDS} s, got {bucket_seconds}")


def latency_stats(latencies: np.ndarray) -> LatencyStats:
    """Exact statistics over every value (no sampling, no sketch)."""
    if latencies.size == 0:
        return LatencyStats(0, None, None, None, None, None, None)
    median, p95, p99 = np.percentile(latencies, [50, 95, 99], method="linear").tolist()
    return LatencyStats(int(latencies.size), float(latencies.mean()), median, p95, p99,
                        float(latencies.min()), float(latencies.max()))


def latency_histogram(latencies: np.ndarray) -> LatencyHistogram:
    """Whole decades from the smallest positive latency to the largest, 10 bins each."""
    positive = latencies[latencies > 0]
    zero_count = int(latencies.size - positive.size)
    if positive.size == 0:
        return LatencyHistogram([], [], zero_count)
    low, high = float(positive.min()), float(positive.max())
    first, last = math.floor(math.log10(low)), math.ceil(math.log10(high))
    last = max(last, first + 1)
    edges = np.logspace(first, last, (last - first) * HISTOGRAM_BINS_PER_DECADE + 1)
    edges[0], edges[-1] = min(edges[0], low), max(edges[-1], high)
    counts, _ = np.histogram(positive, bins=edges)
    return LatencyHistogram(edges.tolist(), counts.tolist(), zero_count)


def _completion_us(frame: pd.DataFrame) -> np.ndarray:
    """Send time plus latency, in whole microseconds so bucket edges are exact."""
    return np.rint(frame[TIMESTAMP].to_numpy() * 1000 + frame[LATENCY].to_numpy() * 1000).astype(np.int64)


def _run_bounds_us(frame: pd.DataFrame) -> tuple[int | None, int | None]:
    """First send and last completion over every row, retried attempts included."""
    if frame.empty:
        return None, None
    start = int(np.rint(frame[TIMESTAMP].min() * 1000))
    return start, int(_completion_us(frame).max())


def _rate_over(span_s: float | None) -> Callable[[int], float | None]:
    def rate(successes: int) -> float | None:
        return successes / span_s if span_s else None
    return rate


def _counts(column: pd.Series) -> dict[str, int]:
    counts = column.value_counts(sort=False)
    return {str(k): int(v) for k, v in sorted(counts.items(), key=lambda kv: (-kv[1], str(kv[0]))) if v}


def _type_figures(messages: pd.DataFrame, succeeded: pd.DataFrame,
                  rate: Callable[[int], float | None]) -> list[TypeFigures]:
    totals = messages[MESSAGE_TYPE].value_counts(sort=False)
    totals = totals[totals > 0].sort_values(ascending=False, kind="stable")
    ok = succeeded[MESSAGE_TYPE].value_counts(sort=False)
    stats = _latency_stats_by(succeeded, MESSAGE_TYPE)
    empty = latency_stats(np.empty(0))
    figures = []
    for message_type, n in totals.items():
        successes = int(ok.get(message_type, 0))
        figures.append(TypeFigures(str(message_type), int(n), 100.0 * int(n) / len(messages), successes,
                                   int(n) - successes, rate(successes), stats.get(message_type, empty)))
    return figures


def _latency_stats_by(succeeded: pd.DataFrame, key: str) -> dict[Any, LatencyStats]:
    """Per group, by the very function of the overall figures (at most three message types)."""
    return {k: latency_stats(values.to_numpy())
            for k, values in succeeded.groupby(key, observed=True)[LATENCY]}


def _room_figures(messages: pd.DataFrame, rate: Callable[[int], float | None]) -> list[RoomFigures]:
    success = (messages[STATUS] == Status.SUCCESS).to_numpy()
    rooms = pd.DataFrame({"room": messages[ROOM].to_numpy(), "ok": success})
    grouped = rooms.groupby("room")["ok"].agg(["size", "sum"]).sort_index()
    return [RoomFigures(int(room), int(row["size"]), int(row["sum"]), int(row["size"] - row["sum"]),
                        rate(int(row["sum"])))
            for room, row in grouped.iterrows()]
