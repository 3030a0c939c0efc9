"""A run's figures, built once as plain data from its ``RunResult``.

Everything else is made from this one structure, so that nothing can disagree with
anything else: the console summary (``chatflow.client.summary``), summary.json
(``chatflow.client.summary_file``, whose keys docs/client.md#summaryjson lists), the
``--threshold`` verdicts (``chatflow.client.thresholds``) and the report's ``run``
mapping (``report_figures``). Values are kept as measured (no rounding here; the
histograms' percentiles are what ``latency_figures`` gives), so the console formats the
same numbers it did from the result itself.
"""

from __future__ import annotations

from typing import Any

from chatflow.client.client_wait import ClientWait
from chatflow.client.config import BEHIND_TOLERANCE_MS, RATE_HELD_FRACTION
from chatflow.client.fanout import FanoutCounts
from chatflow.client.histogram import RUN_PERCENTILES, empty_counts, latency_figures
from chatflow.client.littles_law import HIT_FRACTION, Bounds, Prediction
from chatflow.client.rate_profile import RateProfile
from chatflow.client.results import OpenLoop, PhaseResult, RunResult, SenderStats
from chatflow.client.saturation import BUSY_FRACTION, WAIT_SHARE, ClientLoad

#: ``latency.measure``: what the run's latency figures (and the thresholds on them) time.
ROUND_TRIP, RESPONSE_TIME = "round trip", "response time"

Figures = dict[str, Any]


def summary_figures(result: RunResult) -> Figures:
    """Every figure of the console summary, and what its verdict is made from."""
    totals = result.totals
    config = result.config
    return {
        "servers": list(config.servers),
        "scenario": config.scenario,
        "unreachable": result.unreachable,
        "interrupted": result.interrupted,
        "ok": result.ok,
        "last_error": result.last_error,
        "totals": {
            "generated": result.generated, "successful": totals.success, "failed": totals.failure,
            "failed_by_status": dict(sorted(totals.failures_by_status.items())),
            "connections_opened": totals.connections, "reconnections": totals.reconnections,
            "retries": totals.retries, "queue_found_empty": totals.queue_empty,
            "room_frames_to_senders": totals.room_frames,
        },
        "client_processes": result.processes,
        "lost_workers": [{"index": lost.index, "pid": lost.pid, "exitcode": lost.exitcode, "phase": lost.phase,
                          "messages": lost.messages, "error": lost.error, "text": lost.describe()}
                         for lost in result.lost_workers],
        "wall_time_s": result.wall_s,
        "phases_time_s": result.phases_s,
        "phases": [phase_figures(phase) for phase in result.phases],
        "throughput_msg_s": result.throughput,
        "latency": run_latency(result, totals),
        "cpu": {"client_s": result.client_cpu_s, "server_s": result.server_cpu_s,
                "client_us_per_message": result.client_cpu_us_per_message,
                "server_us_per_message": result.server_cpu_us_per_message, "cores": result.cores},
        "client_peak_rss_mib": result.client_peak_rss_mib,
        "client_wait": client_wait_figures(result.client_wait),
        "client_load": client_load_figures(result.client_load),
        "littles_law": littles_law_figures(result),
        "open_loop": (open_loop_figures(result.open_loop, result.phases[0].threads, result.config.rate_profile,
                                        _mean_response_ms(totals))
                      if result.open_loop else None),
        "fanout": fanout_figures(result.fanout, result) if result.fanout is not None else None,
    }


def latency_block(counts: list[int], max_us: int, mean_ms: float | None, measure: str) -> Figures:
    """A latency's count, p50 … p999 (the middles of their histogram buckets, within 1/16),
    its exact max and its mean, in ms, and what it measures."""
    return {"measure": measure, **latency_figures(counts, max_us, RUN_PERCENTILES),
            "mean_ms": round(mean_ms, 3) if mean_ms is not None else None}


def _mean_response_ms(totals: SenderStats) -> float | None:
    count = sum(totals.response_counts)
    return totals.response_sum_us / count / 1000 if count else None


def run_latency(result: RunResult, totals: SenderStats) -> Figures:
    """The run's latency: each successful message's round trip in the closed loop; in the
    open loop its response time (from its intended send), which the thresholds then read."""
    if result.open_loop is not None:
        return latency_block(totals.response_counts or empty_counts(), totals.response_max_us,
                             _mean_response_ms(totals), RESPONSE_TIME)
    return latency_block(totals.latency_counts, totals.latency_max_us,
                         totals.latency_sum / totals.success if totals.success else None, ROUND_TRIP)


def phase_figures(phase: PhaseResult) -> Figures:
    stats = phase.stats
    mean_s = phase.mean_latency_s
    return {"name": phase.name, "threads": phase.threads, "messages": phase.planned, "ok": stats.success,
            "failed": stats.failure, "duration_s": phase.duration_s, "msg_per_s": phase.throughput,
            "latency": latency_block(stats.latency_counts, stats.latency_max_us,
                                     mean_s * 1000 if mean_s is not None else None, ROUND_TRIP)}


def client_wait_figures(wait: ClientWait | None) -> Figures | None:
    if wait is None:
        return None
    return {"replies": wait.replies, "p50_ms": wait.p50_ms, "p99_ms": wait.p99_ms, "mean_ms": wait.mean_ms,
            "share_of_mean_latency": wait.share}


def client_load_figures(load: ClientLoad | None) -> Figures | None:
    if load is None:
        return None
    return {"cores_used": load.cores_used, "ceiling_cores": load.ceiling, "cores": load.cores,
            "wait_share": load.wait_share, "busy": load.busy, "waiting": load.waiting, "saturated": load.saturated,
            "busy_fraction": BUSY_FRACTION, "wait_share_limit": WAIT_SHARE}


def prediction_figures(p: Prediction) -> Figures:
    return {"phase": p.phase, "threads": p.threads, "round_trip_ms": p.round_trip_s * 1000,
            "predicted_msg_s": p.predicted, "actual_msg_s": p.actual, "actual_over_predicted": p.ratio,
            "mean_latency_ms": p.mean_latency_s * 1000 if p.mean_latency_s is not None else None,
            "concurrency_L": p.concurrency}


def littles_law_figures(result: RunResult) -> Figures:
    bounds = result.bounds
    return {"round_trip_ms": result.round_trip_s * 1000 if result.round_trip_s is not None else None,
            "predictions": [prediction_figures(p) for p in result.predictions],
            "warmup_phase": result.phase("warmup") is not None,
            "bounds": bound_figures(bounds) if bounds is not None else None}


def bound_figures(bounds: Bounds) -> Figures:
    """The seed's prediction, the CPU ceiling and the bound hit."""
    warmup, applies, bound = bounds.warmup, bounds.applies, bounds.bound
    return {
        "main_threads": bounds.threads,
        "main_actual_msg_s": bounds.actual,
        "from_warmup": prediction_figures(warmup) if warmup is not None else None,
        "round_trip_bound_msg_s": bounds.round_trip,
        "round_trip_basis": None if bounds.round_trip is None else "warmup" if warmup is not None else "idle probe",
        "cores": bounds.cores,
        "cpu_us_per_message": bounds.cpu_s_per_message * 1e6 if bounds.cpu_s_per_message else None,
        "cpu_ceiling_msg_s": bounds.cpu,
        "bound_applying": applies[0].value if applies is not None else None,
        "bound_applying_msg_s": applies[1] if applies is not None else None,
        "bound": bound.value if bound is not None else None,
        "actual_over_bound": bounds.fraction,
        "hit_fraction": HIT_FRACTION,
    }


def open_loop_figures(o: OpenLoop, senders: int, ramp: RateProfile | None = None,
                      mean_response_ms: float | None = None) -> Figures:
    """``ramp``: the stages of a rate that ramps (``rate_asked_msg_s`` is then their mean).
    Little's Law in the open loop: the schedule sets λ, so it predicts nothing; it says how
    many messages were waiting or in flight on average, L = λ·W with W the mean response
    time, against the senders' one each."""
    concurrency = o.achieved_msg_s * mean_response_ms / 1000 if mean_response_ms is not None else None
    return {
        "mean_response_ms": mean_response_ms, "concurrency_L": concurrency,
        "rate_asked_msg_s": o.asked_msg_s, "ramp": ramp.describe() if ramp is not None else None, "rate_achieved_msg_s": o.achieved_msg_s, "rate_held": o.held,
        "rate_held_fraction": RATE_HELD_FRACTION, "senders": senders, "messages": o.messages,
        "behind_schedule": o.behind, "behind_woken_late": o.behind_waking, "behind_tolerance_ms": BEHIND_TOLERANCE_MS,
        "largest_lag_ms": o.lag_max_ms, "senders_bound_msg_s": o.senders_bound_msg_s,
        "response_time": o.response_time, "service_time": o.service_time,
    }


def fanout_figures(f: FanoutCounts, result: RunResult) -> Figures:
    main = result.phase("main")
    return {
        "ok": f.ok, "room_members": f.members, "expected": f.expected, "received": f.received,
        "matched": f.matched, "missing": f.missing, "duplicated": f.duplicated, "out_of_order": f.out_of_order,
        "unordered_bus_down": f.unordered, "unexpected": f.unexpected, "of_failed_messages": f.of_failed,
        "deliveries_per_s_main": main.deliveries_per_s if main is not None else None,
        "member_connections": f.member_connections, "member_reconnects": f.member_reconnects,
        "member_closes_by_server": [{"code": code, "count": n} for code, n in sorted(f.member_closes.items())],
        "members_lost": f.members_lost,
        "each_member_latency": latency_figures(f.each_counts, f.each_max_us),
        "last_member_latency": latency_figures(f.last_counts, f.last_max_us),
        "rooms": [{"room": room, "expected": c.expected, "matched": c.matched, "missing": c.missing,
                   "duplicated": c.duplicated, "out_of_order": c.out_of_order} for room, c in sorted(f.rooms.items())],
    }


# -- the report's ``run`` mapping ---------------------------------------------------------


def report_figures(figures: Figures) -> Figures:
    """The report's ``run`` mapping (its keys as before summary.json: flat mappings and
    lists, which the Markdown report shows as tables; rounded for reading)."""
    totals, cpu, phases = figures["totals"], figures["cpu"], figures["phases"]
    summary = {
        "server": figures["servers"][0],
        "servers": figures["servers"],
        "messages_generated": totals["generated"],
        "successful": totals["successful"],
        "failed": totals["failed"],
        "failed_by_status": totals["failed_by_status"],
        "wall_time_s": round(figures["wall_time_s"], 3),
        "phases_time_s": round(figures["phases_time_s"], 3),
        "overall_throughput_msg_s": round(figures["throughput_msg_s"], 1),
        "connections_opened": totals["connections_opened"],
        "reconnections": totals["reconnections"],
        "retries": totals["retries"],
        "queue_found_empty": totals["queue_found_empty"],
        "client_cpu_us_per_message": _rounded(cpu["client_us_per_message"], 1),
        "server_cpu_us_per_message": _rounded(cpu["server_us_per_message"], 1),
        "client_peak_rss_mib": figures["client_peak_rss_mib"],
        "client_processes": figures["client_processes"],
        "lost_workers": [lost["text"] for lost in figures["lost_workers"]],
        "interrupted": figures["interrupted"],
        "unreachable": figures["unreachable"],
    }
    for phase in phases:
        name = phase["name"]
        summary[f"{name}_threads"] = phase["threads"]
        summary[f"{name}_messages"] = phase["messages"]
        summary[f"{name}_successful"] = phase["ok"]
        summary[f"{name}_duration_s"] = round(phase["duration_s"], 3)
        summary[f"{name}_throughput_msg_s"] = round(phase["msg_per_s"], 1)
    law = figures["littles_law"]
    report: Figures = {"summary": summary, "littles_law": [_report_prediction(p) for p in law["predictions"]]}
    wait, load = figures["client_wait"], figures["client_load"]
    if wait is not None:
        report["client_wait"] = {"replies": wait["replies"], **{k: _rounded(wait[k], 4) for k in
                                                                ("p50_ms", "p99_ms", "mean_ms", "share_of_mean_latency")}}
    if load is not None:
        report["client_load"] = {"cores_used": round(load["cores_used"], 3),
                                 **{k: load[k] for k in ("ceiling_cores", "cores", "busy", "waiting", "saturated",
                                                         "busy_fraction", "wait_share_limit")}}
    if law["bounds"] is not None:
        report["bounds"] = _report_bounds(law["bounds"])
    if figures["fanout"] is not None:
        report.update(_report_fanout(figures["fanout"], totals))
    if figures["open_loop"] is not None:
        report.update(_report_open_loop(figures["open_loop"]))
    return report


def _report_prediction(p: Figures) -> Figures:
    return {"phase": p["phase"], "threads": p["threads"], "round_trip_ms": round(p["round_trip_ms"], 4),
            "predicted_msg_s": round(p["predicted_msg_s"], 1), "actual_msg_s": _rounded(p["actual_msg_s"], 1),
            "actual_over_predicted": _rounded(p["actual_over_predicted"], 4),
            "mean_latency_ms": _rounded(p["mean_latency_ms"], 4), "concurrency_L": _rounded(p["concurrency_L"], 2)}


def _report_bounds(b: Figures) -> Figures:
    warmup = b["from_warmup"] or {}
    return {
        "main_threads": b["main_threads"],
        "warmup_mean_latency_ms": _rounded(warmup.get("round_trip_ms"), 4),
        "predicted_from_warmup_msg_s": _rounded(warmup.get("predicted_msg_s"), 1),
        "main_actual_msg_s": _rounded(b["main_actual_msg_s"], 1),
        "actual_over_predicted_from_warmup": _rounded(warmup.get("actual_over_predicted"), 4),
        "round_trip_bound_msg_s": _rounded(b["round_trip_bound_msg_s"], 1),
        "round_trip_basis": b["round_trip_basis"],
        "cores": b["cores"],
        "cpu_us_per_message": _rounded(b["cpu_us_per_message"], 1),
        "cpu_ceiling_msg_s": _rounded(b["cpu_ceiling_msg_s"], 1),
        "bound": b["bound"],
        "bound_applying": b["bound_applying"],
        "actual_over_bound": _rounded(b["actual_over_bound"], 4),
        "hit_fraction": b["hit_fraction"],
    }


def _report_fanout(f: Figures, totals: Figures) -> Figures:
    counts = ("room_members", "expected", "received", "matched", "missing", "duplicated", "out_of_order",
              "unordered_bus_down", "unexpected", "of_failed_messages")
    closes = ", ".join(f"{c['code']}: {c['count']}" for c in f["member_closes_by_server"]) or "none"
    return {
        "fanout": {**{k: f[k] for k in counts}, "deliveries_per_s_main": _rounded(f["deliveries_per_s_main"], 1),
                   "member_connections": f["member_connections"], "member_reconnects": f["member_reconnects"],
                   "member_closes_by_server": closes, "members_lost": f["members_lost"],
                   "room_frames_to_senders": totals["room_frames_to_senders"]},
        "fanout_each_member_latency": f["each_member_latency"],
        "fanout_last_member_latency": f["last_member_latency"],
        "fanout_rooms": f["rooms"],
    }


def _report_open_loop(o: Figures) -> Figures:
    return {
        "open_loop": {
            "rate_asked_msg_s": o["rate_asked_msg_s"], "rate_achieved_msg_s": round(o["rate_achieved_msg_s"], 1),
            "rate_held": o["rate_held"], "rate_held_fraction": o["rate_held_fraction"], "messages": o["messages"],
            "behind_schedule": o["behind_schedule"], "behind_woken_late": o["behind_woken_late"],
            "behind_tolerance_ms": o["behind_tolerance_ms"], "largest_lag_ms": round(o["largest_lag_ms"], 3),
            "senders_bound_msg_s": _rounded(o["senders_bound_msg_s"], 1),
        },
        "response_time": o["response_time"],
        "service_time": o["service_time"],
    }


def _rounded(value: float | None, digits: int) -> float | None:
    return round(value, digits) if value is not None else None
