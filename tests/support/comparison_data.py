"""A plausible ``comparison.json`` (docs/comparison.md's schema) for the report's tests: four
pairings over two or three rounds with figures shaped like a loopback sitting's, the Java
client's latencies in whole ms; variants with a pairing failed or only some codes run.

The per-round msg/s and CPU figures are chosen so that the ratios come out round
(:data:`EXPECTED`), and the medians and ratios are summed up by the runner's own
``chatflow.compare.aggregate``.
"""

from __future__ import annotations

import copy
import math
import random
import statistics
from collections.abc import Iterable, Mapping
from typing import Any

from chatflow.compare import aggregate
from chatflow.compare.pairings import CODES, abba_order

#: Per pairing, per round: msg/s, server µs/msg, client µs/msg, p50 ms, p99 ms, client RSS MiB.
ROUNDS = {
    "oo": [(15000, 37.0, 90.0, 4, 12, 180), (14000, 36.0, 81.0, 4, 11, 176), (16000, 39.0, 98.0, 5, 14, 184)],
    "op": [(15750, 30.71, 84.0, 3, 9, 178), (13860, 28.08, 74.0, 3, 8, 177), (16960, 33.93, 97.0, 4, 12, 181)],
    "po": [(12300, 44.0, 94.5, 6.1, 24.2, 61), (10360, 39.0, 85.05, 5.4, 22.3, 60),
           (15040, 48.0, 103.88, 7.3, 27.9, 63)],
    "pp": [(13000, 33.0, 95.0, 5.8, 22.6, 62), (11900, 31.0, 86.0, 5.1, 21.4, 60), (14100, 35.0, 102.0, 6.6, 25.1, 64)],
}
#: The ratios of the first three rounds, to two decimals: (median, min, max).
EXPECTED = {
    "server msg/s": (1.05, 0.99, 1.06), "server cpu": (0.83, 0.78, 0.87),
    "client msg/s": (0.82, 0.74, 0.94), "client cpu": (1.05, 1.05, 1.06),
}
#: The CDFs' levels, the same for every run.
QUANTILES = [round(q / 100, 2) for q in range(1, 100)] + [0.995, 0.999]
BUCKET_S = 1.0


def _cdf(p50: float, p99: float, whole_ms: bool) -> list[float]:
    """Log-normal latencies through the run's p50 and p99; floored to whole ms for Java."""
    sigma = math.log(p99 / p50) / 2.326
    values = [p50 * math.exp(sigma * statistics.NormalDist().inv_cdf(q)) for q in QUANTILES]
    return [float(math.floor(v)) if whole_ms else round(v, 3) for v in values]


def _timeline(success: int, span_s: float, rng: random.Random) -> list[int]:
    """Successes per bucket: a warmup second, then the main phase with noise, the last bucket
    cut short where the run ends."""
    buckets = max(1, math.ceil(span_s / BUCKET_S))
    weights = [0.45] + [1.0 + rng.uniform(-0.12, 0.12) for _ in range(buckets - 1)]
    weights[-1] *= (span_s - (buckets - 1) * BUCKET_S) / BUCKET_S
    total = sum(weights)
    counts = [int(success * w / total) for w in weights]
    counts[-1] += success - sum(counts)
    return counts


def _run(code: str, round_number: int, index: int, messages: int, rng: random.Random,
         other_whole_ms: bool) -> dict[str, Any]:
    rate, server_cpu, client_cpu, p50, p99, rss = ROUNDS[code][(round_number - 1) % len(ROUNDS[code])]
    whole_ms = other_whole_ms and code[0] == "o"
    failed = 0 if code != "pp" else round_number  # a few timeouts from the Python client
    success = messages - failed
    span = success / rate
    latencies = _cdf(p50, p99, whole_ms)
    return {
        "code": code, "round": round_number, "index": index, "ok": True, "error": None, "client_exit": 0,
        "csv": f"runs/{index:02d}-{code}-r{round_number}/results/metrics_{index}.csv",
        "figures": {
            "messages": messages, "rows": messages + failed, "success": success, "failed": failed,
            "success_ratio": success / messages, "span_s": span, "msg_s": float(rate),
            "latency_ms": {"mean": round(p50 * 1.2, 3), "p50": float(p50), "p95": latencies[94],
                           "p99": float(p99), "max": float(p99 * 6)},
            "latency_resolution_ms": 1 if whole_ms else 0.001,
            "server_cpu_us_per_msg": server_cpu, "client_cpu_us_per_msg": client_cpu,
            "client_peak_rss_mib": float(rss), "client_wall_s": span + 1.5,
        },
        "timeline": {"bucket_s": BUCKET_S, "success": _timeline(success, span, rng)},
        "cdf": {"quantiles": QUANTILES, "latency_ms": latencies},
    }


def _failed(run: Mapping[str, Any], error: str) -> dict[str, Any]:
    return {**run, "ok": False, "error": error, "client_exit": None, "csv": None, "figures": None,
            "timeline": None, "cdf": None}


def comparison(rounds: int = 3, messages: int = 500_000, other: str = "Java", rtt_ms: float = 0.0,
               only: Iterable[str] = CODES, failed: Mapping[str, str] | None = None,
               other_whole_ms: bool = True, seed: int = 13) -> dict[str, Any]:
    """The comparison.json of a sitting; ``failed`` maps a code to the one-line error of every
    one of its runs (its command did not start); ``other_whole_ms`` says the other's client
    writes whole ms, as the Java client does."""
    rng = random.Random(seed)
    only = [code for code in CODES if code in set(only)]
    order = abba_order(only, rounds)
    runs = []
    for index, (code, round_number) in enumerate(order, 1):  # numbered from 1, as the runner does
        run = _run(code, round_number, index, messages, rng, other_whole_ms)
        runs.append(_failed(run, failed[code]) if failed and code in failed else run)
    names = {"python": "Python", "other": other}
    side = {"p": "Python", "o": other}
    return copy.deepcopy({
        "schema": 1,
        "created": "2026-12-02T06:00:00Z",
        "machine": {"cpus": 2, "cpu_model": "Intel(R) Xeon(R) CPU @ 2.20GHz", "kernel": "6.1.0-27-amd64",
                    "memory_mib": 7900, "python": "3.11.7", "hostname": "classroom-1"},
        "versions": {"chatflow": "0.1.0", "python": "3.11.7", "websockets": "15.0.1",
                     "other": 'openjdk version "17.0.13" 2024-10-15'},
        "settings": {"messages": messages, "warmup_threads": 32, "warmup_messages": 1000, "threads": 64,
                     "rounds": rounds, "rtt_ms": rtt_ms, "jitter_ms": 0.0, "seed": None, "only": only},
        "names": names,
        "codes": {code: {"client": side[code[0]], "server": side[code[1]],
                         "label": f"{side[code[0]]} → {side[code[1]]}"} for code in only},
        "commands": {"python_server": "python -m chatflow.server.main --port {port} --health-port {health_port}",
                     "python_client": "python -m chatflow.client.main --url {url} --messages {messages}",
                     "other_server": "java-original/run_server.sh {port} {health_port}",
                     "other_client": "java-original/run_client.sh {url} {messages}"},
        "order": [code for code, _ in order],
        "runs": runs,
        "pairings": aggregate.pairings(runs, only),
        "ratios": aggregate.ratios(runs),
    })
