"""The end-of-run text: SPEC §2.3's Part 1 summary and the Little's Law check."""

from __future__ import annotations

from chatflow.client.littles_law import Prediction
from chatflow.client.results import RunResult

RULE = "=" * 72


def format_predictions(round_trip_s: float, predictions: list[Prediction]) -> str:
    """Printed before the phases: what Little's Law expects."""
    lines = [f"Little's Law: one round trip W = {round_trip_s * 1000:.3f} ms "
             f"(mean of the probe on one idle connection)"]
    for p in predictions:
        lines.append(f"  {p.phase:<7} {p.threads:>4} threads → predicted λ = N/W = {p.predicted:>12,.0f} msg/s")
    return "\n".join(lines)


def format_summary(result: RunResult) -> str:
    totals = result.totals
    config = result.config
    lines = [RULE, "ChatFlow load test — summary", RULE]
    add = lines.append
    add(f"{'Server':<26}{config.base_url}")
    if result.unreachable:
        add(f"{'Result':<26}server unreachable: {result.unreachable}")
        return "\n".join(lines)
    add(f"{'Messages generated':<26}{result.generated:,}")
    add(f"{'Successful':<26}{totals.success:,}")
    failed = f"{totals.failure:,}"
    if totals.failures_by_status:
        failed += "  (" + ", ".join(f"{k}: {v:,}" for k, v in sorted(totals.failures_by_status.items())) + ")"
    add(f"{'Failed':<26}{failed}")
    add(f"{'Total wall time':<26}{result.wall_s:.2f} s (probe, phases and shutdown)")
    for phase in result.phases:
        add(f"{phase.name.capitalize() + ' phase':<26}{phase.duration_s:.2f} s, {phase.threads} threads, "
            f"{phase.stats.success:,} ok → {phase.throughput:,.0f} msg/s")
    add(f"{'Overall throughput':<26}{result.throughput:,.0f} msg/s (successful messages / "
        f"{result.phases_s:.2f} s of phases)")
    add(f"{'Connections opened':<26}{totals.connections:,}")
    add(f"{'Reconnections':<26}{totals.reconnections:,}")
    add(f"{'Retries':<26}{totals.retries:,}")
    add(f"{'Queue found empty':<26}{totals.queue_empty:,} times")
    client_cpu, server_cpu = result.client_cpu_us_per_message, result.server_cpu_us_per_message
    if client_cpu is not None:
        cpu = f"client {client_cpu:.1f} µs"
        if server_cpu is not None:
            cpu += f", server {server_cpu:.1f} µs"
        add(f"{'CPU per message':<26}{cpu}")
    if result.client_peak_rss_mib is not None:
        add(f"{'Client peak RSS':<26}{result.client_peak_rss_mib:.0f} MiB (during the run)")
    if result.predictions and result.round_trip_s:
        lines += ["", f"Little's Law (W = {result.round_trip_s * 1000:.3f} ms on one idle connection)",
                  f"  {'phase':<8}{'threads':>8}{'predicted':>14}{'actual':>12}{'actual/pred':>13}"
                  f"{'mean W':>11}{'L = λ·W':>10}"]
        for p in result.predictions:
            ratio = f"{p.ratio:.2f}" if p.ratio is not None else "-"
            mean = f"{p.mean_latency_s * 1000:.3f} ms" if p.mean_latency_s is not None else "-"
            concurrency = f"{p.concurrency:.1f}" if p.concurrency is not None else "-"
            add(f"  {p.phase:<8}{p.threads:>8}{p.predicted:>14,.0f}{p.actual or 0:>12,.0f}{ratio:>13}"
                f"{mean:>11}{concurrency:>10}")
    add(RULE)
    return "\n".join(lines)


def verdict(result: RunResult) -> str:
    """The last line: says why the exit status is what it is."""
    totals = result.totals
    if result.unreachable:
        return f"FAILED: could not connect ({result.unreachable})"
    if result.interrupted:
        return (f"INTERRUPTED: {totals.success:,} of {result.generated:,} generated messages succeeded, "
                f"{totals.failure:,} counted failed")
    if totals.success == 0:
        detail = f": {result.last_error}" if result.last_error else ""
        return f"FAILED: no message succeeded{detail}"
    if totals.failure:
        return f"FAILED: {totals.failure:,} of {result.generated:,} messages failed"
    return f"OK: all {totals.success:,} messages succeeded"


def run_figures(result: RunResult) -> dict:
    """Every figure of the summary, as plain data for the JSON and Markdown report."""
    totals = result.totals
    client_cpu, server_cpu = result.client_cpu_us_per_message, result.server_cpu_us_per_message
    summary = {
        "server": result.config.base_url,
        "messages_generated": result.generated,
        "successful": totals.success,
        "failed": totals.failure,
        "failed_by_status": dict(sorted(totals.failures_by_status.items())),
        "wall_time_s": round(result.wall_s, 3),
        "phases_time_s": round(result.phases_s, 3),
        "overall_throughput_msg_s": round(result.throughput, 1),
        "connections_opened": totals.connections,
        "reconnections": totals.reconnections,
        "retries": totals.retries,
        "queue_found_empty": totals.queue_empty,
        "client_cpu_us_per_message": round(client_cpu, 1) if client_cpu is not None else None,
        "server_cpu_us_per_message": round(server_cpu, 1) if server_cpu is not None else None,
        "client_peak_rss_mib": result.client_peak_rss_mib,
        "interrupted": result.interrupted,
        "unreachable": result.unreachable,
    }
    for phase in result.phases:
        summary[f"{phase.name}_threads"] = phase.threads
        summary[f"{phase.name}_messages"] = phase.planned
        summary[f"{phase.name}_successful"] = phase.stats.success
        summary[f"{phase.name}_duration_s"] = round(phase.duration_s, 3)
        summary[f"{phase.name}_throughput_msg_s"] = round(phase.throughput, 1)
    littles_law = [
        {
            "phase": p.phase,
            "threads": p.threads,
            "round_trip_ms": round(p.round_trip_s * 1000, 4),
            "predicted_msg_s": round(p.predicted, 1),
            "actual_msg_s": round(p.actual, 1) if p.actual is not None else None,
            "actual_over_predicted": round(p.ratio, 4) if p.ratio is not None else None,
            "mean_latency_ms": round(p.mean_latency_s * 1000, 4) if p.mean_latency_s is not None else None,
            "concurrency_L": round(p.concurrency, 2) if p.concurrency is not None else None,
        }
        for p in result.predictions
    ]
    return {"summary": summary, "littles_law": littles_law}
