"""One yardstick for every client: a run's figures from its metrics CSV alone.

The CSV is what every client writes the same way (ChatFlow's or the Java client's,
read by ``chatflow.analysis``); a client's own phase timers are not comparable (the Java
client's include its sleeps). So msg/s is successful messages over the span of send
timestamps, and the latency figures are over successful messages (docs/comparison-tool.md).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from chatflow.analysis.performance_analyzer import (AnalysisError, MetricsTable, latency_stats, load_metrics,
                                                   success_timeline, successful)
from chatflow.metrics import FINAL, LATENCY, TIMESTAMP

#: Seconds per bucket of the throughput timeline.
TIMELINE_BUCKET_S = 1.0
#: The quantile levels of every run's latency CDF: 0–99 % by 1 %, then the tail finer.
CDF_QUANTILES = tuple([i / 100 for i in range(100)] + [0.995, 0.999, 0.9995, 0.9999, 1.0])
#: A latency column of whole milliseconds (the Java client's) has this resolution; ours, µs.
WHOLE_MS, MICROSECOND_MS = 1, 0.001


def newest_metrics(directory: Path) -> tuple[Path, MetricsTable]:
    """The newest CSV under ``directory`` that is a metrics file, read (``chatflow.analysis``
    reads both clients' files); AnalysisError when there is none."""
    found = sorted(directory.rglob("*.csv"), key=lambda path: path.stat().st_mtime, reverse=True)
    refused = []
    for path in found:
        try:
            return path, load_metrics(path)
        except AnalysisError as exc:
            refused.append(str(exc))
    looked = f" ({len(found)} CSV file(s), none of them metrics; the newest: {refused[0]})" if refused else ""
    raise AnalysisError(f"no metrics CSV under {directory}{looked}")


def figures(table: MetricsTable, messages: int) -> dict[str, Any]:
    """The run's counts, rate and latency; ``messages`` is how many the run was to send."""
    frame = table.frame
    outcomes = int(frame[FINAL].sum())
    succeeded = successful(frame)
    latencies = succeeded[LATENCY].to_numpy()
    span_s = _send_span_s(frame)
    stats = latency_stats(latencies)
    return {
        "messages": messages,
        "rows": len(frame),
        "success": len(succeeded),
        "failed": outcomes - len(succeeded),
        "success_ratio": len(succeeded) / messages if messages else None,
        "span_s": span_s,
        "msg_s": len(succeeded) / span_s if span_s else None,
        "latency_ms": {"mean": stats.mean, "p50": stats.median, "p95": stats.p95, "p99": stats.p99,
                       "max": stats.max},
        "latency_resolution_ms": latency_resolution_ms(latencies),
    }


def _send_span_s(frame: pd.DataFrame) -> float | None:
    """First send to last send, over every attempt (ms timestamps)."""
    if frame.empty:
        return None
    return float(frame[TIMESTAMP].max() - frame[TIMESTAMP].min()) / 1000


def latency_resolution_ms(latencies: np.ndarray) -> float:
    """Whole ms when every latency is integral (and there is one), else µs."""
    return WHOLE_MS if latencies.size and bool(np.all(latencies == np.floor(latencies))) else MICROSECOND_MS


def timeline(table: MetricsTable, bucket_s: float = TIMELINE_BUCKET_S) -> dict[str, Any]:
    """Successful messages per bucket of their completion, from the first send (the analyzer's
    timeline); AnalysisError for a span that would need too many buckets."""
    return {"bucket_s": bucket_s, "success": success_timeline(table.frame, bucket_s).successes}


def cdf(table: MetricsTable) -> dict[str, Any]:
    """Latency of successful messages at ``CDF_QUANTILES`` (the same levels for every run)."""
    latencies = successful(table.frame)[LATENCY].to_numpy()
    if latencies.size == 0:
        return {"quantiles": list(CDF_QUANTILES), "latency_ms": []}
    values = np.quantile(latencies, CDF_QUANTILES, method="linear")
    return {"quantiles": list(CDF_QUANTILES), "latency_ms": values.tolist()}
