"""The end-of-run text: SPEC §2.3's Part 1 summary and the Little's Law check."""

from __future__ import annotations

from chatflow.client.client_wait import ClientWait
from chatflow.client.histogram import latency_figures
from chatflow.client.littles_law import HIT_FRACTION, Bound, Bounds, Prediction
from chatflow.client.config import BEHIND_TOLERANCE_MS, RATE_HELD_FRACTION
from chatflow.client.results import OpenLoop, RunResult
from chatflow.client.saturation import BUSY_FRACTION, WAIT_SHARE, ClientLoad

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
    add(f"{'Server':<26}{', '.join(config.servers)}")
    if result.unreachable:
        add(f"{'Result':<26}server unreachable: {result.unreachable}")
        return "\n".join(lines)
    add(f"{'Messages generated':<26}{result.generated:,}")
    add(f"{'Successful':<26}{totals.success:,}")
    failed = f"{totals.failure:,}"
    if totals.failures_by_status:
        failed += "  (" + ", ".join(f"{k}: {v:,}" for k, v in sorted(totals.failures_by_status.items())) + ")"
    add(f"{'Failed':<26}{failed}")
    if result.processes > 1:
        add(f"{'Client processes':<26}{result.processes} (the sender threads dealt round-robin)")
    for lost in result.lost_workers:
        add(f"{'Worker lost':<26}{lost.describe()}")
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
    wait, load = result.client_wait, result.client_load
    if wait is not None:
        add(f"{'Client wait':<26}{format_client_wait(wait)}")
    if load is not None:
        add(f"{'Client CPU use':<26}{load.cores_used:.2f} cores = {result.client_cpu_s:.2f} s CPU / "
            f"{result.phases_s:.2f} s of phases")
        add(f"{'Client saturated':<26}{saturation_text(load)}")
    if result.client_peak_rss_mib is not None:
        processes = f", its {result.processes} processes together" if result.processes > 1 else ""
        add(f"{'Client peak RSS':<26}{result.client_peak_rss_mib:.0f} MiB (during the run{processes})")
    if result.fanout is not None:
        lines += format_fanout(result)
    if result.open_loop is not None:
        lines += format_open_loop(result)
    if result.predictions and result.round_trip_s:
        lines += ["", f"Little's Law (W = {result.round_trip_s * 1000:.3f} ms on one idle connection)",
                  f"  {'phase':<8}{'threads':>8}{'predicted':>14}{'actual':>12}{'actual/pred':>13}"
                  f"{'mean W':>11}{'L = λ·W':>10}"]
        lines += [_prediction_row(p) for p in result.predictions]
        lines += format_bounds(result)
    add(RULE)
    return "\n".join(lines)


def format_open_loop(result: RunResult) -> list[str]:
    """The open loop's block (docs/client.md#open-loop---rate): the rate asked and
    achieved, the lag, and the two latencies, with why they differ when they do."""
    o = result.open_loop
    lines = ["", "Open loop (--rate: each message has an intended send time on a fixed schedule)"]

    def add(label: str, value: str) -> None:
        lines.append(f"{label:<26}{value}")

    add("Rate asked", f"{o.asked_msg_s:,.1f} msg/s over {result.phases[0].threads} senders, one message in flight each")
    achieved = f"{o.achieved_msg_s:,.1f} msg/s ({o.achieved_msg_s / o.asked_msg_s:.1%} of the rate asked)"
    add("Rate achieved", achieved + "; " + rate_held_text(result))
    add("Behind schedule", f"{o.behind:,} of {o.messages:,} messages sent more than {BEHIND_TOLERANCE_MS:g} ms "
        f"after their intended time ({o.behind - o.behind_waking:,} after a late reply, {o.behind_waking:,} "
        f"woken late by the client); the largest lag {o.lag_max_ms:,.1f} ms")
    add("Response time", _latency_text(o.response_time, "intended send → reply: what a user waiting sees"))
    add("Service time", _latency_text(o.service_time, "actual send → reply: what the server took"))
    response_p99, service_p99 = o.response_time["p99_ms"], o.service_time["p99_ms"]
    if response_p99 is not None and service_p99 is not None and response_p99 > 2 * service_p99 + BEHIND_TOLERANCE_MS:
        causes = []
        if o.behind > o.behind_waking:
            causes.append(f"{o.behind - o.behind_waking:,} waited for their sender's previous reply, which came "
                          "after their slot (the server or the network slow)")
        if o.behind_waking:
            causes.append(f"{o.behind_waking:,} were woken late for their slot by the client itself (its GIL, "
                          "its other threads)")
        add("Why they differ", "messages sent late: " + "; ".join(causes) + ". The response time counts that "
            "wait, the service time does not; a closed loop would have hidden it by sending less")
    return lines


def rate_held_text(result: RunResult) -> str:
    """Whether the run held the rate asked, and if not what may have held it back."""
    o = result.open_loop
    if o.held:
        return "the rate was held"
    reasons = []
    load = result.client_load
    if load is not None and load.saturated:
        reasons.append("the client was saturated (below)")
    if o.senders_bound_msg_s is not None and o.senders_bound_msg_s < o.asked_msg_s:
        reasons.append(f"{result.phases[0].threads} senders ÷ the mean service time allow only "
                       f"{o.senders_bound_msg_s:,.0f} msg/s (more --threads, or a faster server)")
    if o.behind:
        reasons.append("replies came later than the next slots")
    why = ": " + "; ".join(reasons) if reasons else ""
    return f"the rate was NOT held (under {RATE_HELD_FRACTION:.0%} of it){why}"


#: Rooms listed in the summary's per-room table at most (those with the most missing first).
ROOMS_LISTED = 20


def format_fanout(result: RunResult) -> list[str]:
    """The broadcast scenario's block: what the members received (docs/client.md#the-broadcast-scenario)."""
    f, config = result.fanout, result.config
    lines = ["", "Deliveries (the broadcast scenario: what the rooms' listening members received)"]

    def add(label: str, value: str) -> None:
        lines.append(f"{label:<26}{value}")

    add("Room members", f"{f.members} per room × {len(f.rooms)} rooms, over "
        f"{len(config.servers)} server{'s' if len(config.servers) > 1 else ''}")
    add("Deliveries expected", f"{f.expected:,} (members × successful messages)")
    add("Deliveries received", f"{f.received:,} (matched {f.matched:,}, duplicated {f.duplicated:,}, "
        f"unexpected {f.unexpected:,}, of failed messages {f.of_failed:,})")
    add("Deliveries missing", f"{f.missing:,}")
    add("Deliveries duplicated", f"{f.duplicated:,}")
    add("Deliveries out of order", f"{f.out_of_order:,}; unordered (bus down) {f.unordered:,}")
    add("Deliveries unexpected", f"{f.unexpected:,} (matching no message sent)")
    add("Fan-out each member", _latency_text(latency_figures(f.each_counts, f.each_max_us), "send → each member"))
    add("Fan-out last member", _latency_text(latency_figures(f.last_counts, f.last_max_us), "send → the last member"))
    main = result.phase("main")
    if main is not None:
        add("Deliveries per second", f"{main.deliveries_per_s:,.0f} (received during the main phase)")
    closes = ", ".join(f"{code} ×{n:,}" for code, n in sorted(f.member_closes.items())) or "none"
    add("Member reconnects", f"{f.member_reconnects:,} (closed by the server: {closes}; gave up: {f.members_lost:,})")
    add("Room frames to senders", f"{result.totals.room_frames:,} (passed over while awaiting a reply)")
    rooms = sorted(f.rooms.items(), key=lambda item: (-item[1].missing, item[0]))[:ROOMS_LISTED]
    lines.append(f"  {'room':>6}{'expected':>12}{'matched':>12}{'missing':>10}{'duplicated':>12}{'out of order':>14}")
    lines += [f"  {room:>6}{c.expected:>12,}{c.matched:>12,}{c.missing:>10,}{c.duplicated:>12,}{c.out_of_order:>14,}"
              for room, c in sorted(rooms)]
    if len(f.rooms) > ROOMS_LISTED:
        lines.append(f"  ({len(f.rooms) - ROOMS_LISTED} more rooms, in the report)")
    return lines


def _latency_text(figures: dict, what: str) -> str:
    if not figures["count"]:
        return f"none measured ({what})"
    return (f"p50 {figures['p50_ms']:.2f}, p95 {figures['p95_ms']:.2f}, p99 {figures['p99_ms']:.2f}, "
            f"max {figures['max_ms']:.2f} ms ({what}, {figures['count']:,})")


def format_client_wait(wait: ClientWait) -> str:
    """The client wait line's text (docs/client.md#where-a-reply-waits)."""
    text = f"p50 {wait.p50_ms:.2f} ms, p99 {wait.p99_ms:.2f} ms, mean {wait.mean_ms:.2f} ms"
    if wait.share is not None:
        text += f" = {wait.share:.0%} of the mean latency"
    return text + " (reply in the kernel → its sender's clock)"


def saturation_text(load: ClientLoad) -> str:
    """Whether the client held the run back, and why (docs/client.md#when-the-client-is-saturated)."""
    ceiling = f"{load.ceiling} core{'s' if load.ceiling > 1 else ''}"
    used = f"{load.cores_used:.2f} cores used of the {ceiling} its Python code can use"
    if load.cores is not None:
        used += f" ({load.cores} on the machine)"
    reasons = []
    if load.busy:
        reasons.append(f"{used}, ≥ {BUSY_FRACTION:.0%}")
    if load.waiting:
        reasons.append(f"its replies waited {load.wait_share:.0%} of the mean latency in it, ≥ {WAIT_SHARE:.0%}")
    if not reasons:
        return f"no: {used}"
    return "yes: " + "; ".join(reasons) + ": the figures measure the client as much as the server"


def _prediction_row(p: Prediction) -> str:
    ratio = f"{p.ratio:.2f}" if p.ratio is not None else "-"
    mean = f"{p.mean_latency_s * 1000:.3f} ms" if p.mean_latency_s is not None else "-"
    concurrency = f"{p.concurrency:.1f}" if p.concurrency is not None else "-"
    return (f"  {p.phase:<8}{p.threads:>8}{p.predicted:>14,.0f}{p.actual or 0:>12,.0f}{ratio:>13}"
            f"{mean:>11}{concurrency:>10}")


def format_bounds(result: RunResult) -> list[str]:
    """Below the Little's Law table: the seed's prediction, the CPU ceiling, the bound hit."""
    bounds = result.bounds
    seed = "Little's Law the seed's way"
    if bounds is None:
        return [f"{seed}: no main phase to predict"]
    if bounds.warmup is not None:
        lines = [f"{seed} (W = {bounds.warmup.round_trip_s * 1000:.3f} ms, the warmup's mean latency)",
                 _prediction_row(bounds.warmup)]
    elif result.phase("warmup") is None:
        lines = [f"{seed}: no warmup phase, so no warmup W to predict the main phase from"]
    else:
        lines = [f"{seed}: no warmup message succeeded, so no warmup W to predict the main phase from"]
    label = 13
    if bounds.cpu is not None:
        client, server = result.client_cpu_us_per_message, result.server_cpu_us_per_message
        lines.append(f"{'CPU ceiling':<{label}}{bounds.cpu:,.0f} msg/s = {bounds.cores} cores ÷ "
                     f"({client:.1f} µs client + {server:.1f} µs server CPU per message)")
    elif result.server_cpu_s is None:
        lines.append(f"{'CPU ceiling':<{label}}unknown: the server's CPU is measured only with --local")
    elif not bounds.cores:
        lines.append(f"{'CPU ceiling':<{label}}unknown: the number of usable cores is unknown")
    else:
        lines.append(f"{'CPU ceiling':<{label}}unknown: no CPU per message (no message done)")
    lines.append(f"{'Bound':<{label}}{_bound_text(bounds)}")
    return lines


def _bound_text(bounds: Bounds) -> str:
    """Which bound the main phase hit, in words (the rule: docs/client.md#littles-law-and-the-bounds-of-a-run)."""
    applies, bound, fraction = bounds.applies, bounds.bound, bounds.fraction
    if applies is None or bound is None or fraction is None:
        return "unknown: neither the round trip nor the CPU gave a rate"
    lower, rate = applies
    w = "the warmup's W" if bounds.warmup is not None else "the idle probe's W"
    named = f"threads ÷ {w}" if lower is Bound.ROUND_TRIP else "the CPU ceiling"
    which = "the lower bound" if bounds.cpu is not None and bounds.round_trip is not None else "the one known"
    ran = f"main phase at {fraction:.2f} of {named} ({rate:,.0f} msg/s), {which}"
    if bound is Bound.ROUND_TRIP:
        return f"round trip: {ran}: the messages waited on the round trip"
    if bound is Bound.CPU:
        return f"CPU: {ran}: the cores were busy"
    return (f"neither: {ran}; under {HIT_FRACTION:.2f} of it, so something else held it back "
            f"(the client's GIL, a lock, the server's one thread, a share of the cores)")


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
    fanout = result.fanout
    if fanout is not None and not fanout.ok:
        hint = " (no room frame came: is the server in --mode broadcast?)" if fanout.received == 0 else ""
        return (f"FAILED: of {fanout.expected:,} deliveries expected, {fanout.missing:,} missing, "
                f"{fanout.duplicated:,} duplicated, {fanout.out_of_order:,} out of order{hint}")
    if fanout is not None:
        return f"OK: all {totals.success:,} messages succeeded and reached all {fanout.members} members of their room"
    open_loop = result.open_loop
    if open_loop is not None and not open_loop.held:
        return (f"OK: all {totals.success:,} messages succeeded, but the rate was NOT held: "
                f"{open_loop.achieved_msg_s:,.0f} of {open_loop.asked_msg_s:,.0f} msg/s asked")
    return f"OK: all {totals.success:,} messages succeeded"


def run_figures(result: RunResult) -> dict:
    """Every figure of the summary, as plain data for the JSON and Markdown report."""
    totals = result.totals
    client_cpu, server_cpu = result.client_cpu_us_per_message, result.server_cpu_us_per_message
    summary = {
        "server": result.config.base_url,
        "servers": list(result.config.servers),
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
        "client_cpu_us_per_message": _rounded(client_cpu, 1),
        "server_cpu_us_per_message": _rounded(server_cpu, 1),
        "client_peak_rss_mib": result.client_peak_rss_mib,
        "client_processes": result.processes,
        "lost_workers": [lost.describe() for lost in result.lost_workers],
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
            "actual_msg_s": _rounded(p.actual, 1),
            "actual_over_predicted": _rounded(p.ratio, 4),
            "mean_latency_ms": _rounded(p.mean_latency_s * 1000 if p.mean_latency_s is not None else None, 4),
            "concurrency_L": _rounded(p.concurrency, 2),
        }
        for p in result.predictions
    ]
    figures = {"summary": summary, "littles_law": littles_law}
    wait, load = result.client_wait, result.client_load
    if wait is not None:
        figures["client_wait"] = {
            "replies": wait.replies, "p50_ms": round(wait.p50_ms, 4), "p99_ms": round(wait.p99_ms, 4),
            "mean_ms": round(wait.mean_ms, 4), "share_of_mean_latency": _rounded(wait.share, 4),
        }
    if load is not None:
        figures["client_load"] = {
            "cores_used": round(load.cores_used, 3), "ceiling_cores": load.ceiling, "cores": load.cores,
            "busy": load.busy, "waiting": load.waiting, "saturated": load.saturated,
            "busy_fraction": BUSY_FRACTION, "wait_share_limit": WAIT_SHARE,
        }
    if result.bounds is not None:
        figures["bounds"] = bound_figures(result.bounds)
    if result.fanout is not None:
        figures.update(fanout_figures(result))
    if result.open_loop is not None:
        figures.update(open_loop_figures(result.open_loop))
    return figures


def open_loop_figures(o: OpenLoop) -> dict:
    """The open loop's figures, as plain data (flat mappings, as the report shows them)."""
    return {
        "open_loop": {
            "rate_asked_msg_s": o.asked_msg_s, "rate_achieved_msg_s": round(o.achieved_msg_s, 1),
            "rate_held": o.held, "rate_held_fraction": RATE_HELD_FRACTION, "messages": o.messages,
            "behind_schedule": o.behind, "behind_woken_late": o.behind_waking, "behind_tolerance_ms": BEHIND_TOLERANCE_MS,
            "largest_lag_ms": round(o.lag_max_ms, 3), "senders_bound_msg_s": _rounded(o.senders_bound_msg_s, 1),
        },
        "response_time": o.response_time,
        "service_time": o.service_time,
    }


def fanout_figures(result: RunResult) -> dict:
    """The broadcast scenario's figures, as plain data (flat mappings and a list, which the
    Markdown report shows as tables)."""
    f = result.fanout
    main = result.phase("main")
    return {
        "fanout": {
            "room_members": f.members, "expected": f.expected, "received": f.received, "matched": f.matched,
            "missing": f.missing, "duplicated": f.duplicated, "out_of_order": f.out_of_order,
            "unordered_bus_down": f.unordered, "unexpected": f.unexpected, "of_failed_messages": f.of_failed,
            "deliveries_per_s_main": round(main.deliveries_per_s, 1) if main is not None else None,
            "member_connections": f.member_connections, "member_reconnects": f.member_reconnects,
            "member_closes_by_server": ", ".join(f"{c}: {n}" for c, n in sorted(f.member_closes.items())) or "none",
            "members_lost": f.members_lost, "room_frames_to_senders": result.totals.room_frames,
        },
        "fanout_each_member_latency": latency_figures(f.each_counts, f.each_max_us),
        "fanout_last_member_latency": latency_figures(f.last_counts, f.last_max_us),
        "fanout_rooms": [{"room": room, "expected": c.expected, "matched": c.matched, "missing": c.missing,
                          "duplicated": c.duplicated, "out_of_order": c.out_of_order}
                         for room, c in sorted(f.rooms.items())],
    }


def bound_figures(bounds: Bounds) -> dict:
    """The seed's prediction, the CPU ceiling and the bound hit, as plain data."""
    warmup, applies = bounds.warmup, bounds.applies
    return {
        "main_threads": bounds.threads,
        "warmup_mean_latency_ms": _rounded(warmup.round_trip_s * 1000 if warmup else None, 4),
        "predicted_from_warmup_msg_s": _rounded(warmup.predicted if warmup else None, 1),
        "main_actual_msg_s": _rounded(bounds.actual, 1),
        "actual_over_predicted_from_warmup": _rounded(warmup.ratio if warmup else None, 4),
        "round_trip_bound_msg_s": _rounded(bounds.round_trip, 1),
        "round_trip_basis": None if bounds.round_trip is None else "warmup" if warmup is not None else "idle probe",
        "cores": bounds.cores,
        "cpu_us_per_message": _rounded(bounds.cpu_s_per_message * 1e6 if bounds.cpu_s_per_message else None, 1),
        "cpu_ceiling_msg_s": _rounded(bounds.cpu, 1),
        "bound": bounds.bound.value if bounds.bound is not None else None,
        "bound_applying": applies[0].value if applies is not None else None,
        "actual_over_bound": _rounded(bounds.fraction, 4),
        "hit_fraction": HIT_FRACTION,
    }


def _rounded(value: float | None, digits: int) -> float | None:
    return round(value, digits) if value is not None else None
