"""The end-of-run text: SPEC §2.3's Part 1 summary and the Little's Law check, the
thresholds' lines, and the last line with the exit status it explains; all written from
the run's figures (``chatflow.client.figures``), as summary.json is."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from chatflow.client.figures import Figures, report_figures, summary_figures
from chatflow.client.littles_law import Bound, Prediction
from chatflow.client.results import RunResult
from chatflow.client.thresholds import Verdict

RULE = "=" * 72


def format_predictions(round_trip_s: float, predictions: list[Prediction], open_loop: bool = False) -> str:
    """Printed before the phases: what Little's Law expects (nothing in the open loop,
    whose rate its schedule sets)."""
    lines = [f"Little's Law: one round trip W = {round_trip_s * 1000:.3f} ms "
             f"(mean of the probe on one idle connection)"]
    if open_loop:
        return lines[0] + "; the open loop's rate is its schedule's (--rate), so no λ is predicted"
    for p in predictions:
        lines.append(f"  {p.phase:<7} {p.threads:>4} threads → predicted λ = N/W = {p.predicted:>12,.0f} msg/s")
    return "\n".join(lines)


def format_summary(result: RunResult) -> str:
    """A RunResult's summary (``summary_text`` of its figures)."""
    return summary_text(summary_figures(result))


def summary_text(f: Figures, verdicts: Sequence[Verdict] = ()) -> str:
    """The summary, from the run's figures (``chatflow.client.figures``); it ends with one
    line per ``--threshold``."""
    totals, cpu = f["totals"], f["cpu"]
    lines = [RULE, "ChatFlow load test — summary", RULE]

    def add(label: str, value: str) -> None:
        lines.append(f"{label:<26}{value}")

    add("Server", ", ".join(f["servers"]))
    if f["unreachable"]:
        add("Result", f"server unreachable: {f['unreachable']}")
        return "\n".join(lines + threshold_lines(verdicts))
    add("Messages generated", f"{totals['generated']:,}")
    add("Successful", f"{totals['successful']:,}")
    failed = f"{totals['failed']:,}"
    if totals["failed_by_status"]:
        failed += "  (" + ", ".join(f"{k}: {v:,}" for k, v in totals["failed_by_status"].items()) + ")"
    add("Failed", failed)
    if f["client_processes"] > 1:
        add("Client processes", f"{f['client_processes']} (the sender threads dealt round-robin)")
    for lost in f["lost_workers"]:
        add("Worker lost", lost["text"])
    add("Total wall time", f"{f['wall_time_s']:.2f} s (probe, phases and shutdown)")
    for phase in f["phases"]:
        add(phase["name"].capitalize() + " phase", f"{phase['duration_s']:.2f} s, {phase['threads']} threads, "
            f"{phase['ok']:,} ok → {phase['msg_per_s']:,.0f} msg/s")
    add("Overall throughput", f"{f['throughput_msg_s']:,.0f} msg/s (successful messages / "
        f"{f['phases_time_s']:.2f} s of phases)")
    add("Connections opened", f"{totals['connections_opened']:,}")
    add("Reconnections", f"{totals['reconnections']:,}")
    add("Retries", f"{totals['retries']:,}")
    add("Queue found empty", f"{totals['queue_found_empty']:,} times")
    client_cpu, server_cpu = cpu["client_us_per_message"], cpu["server_us_per_message"]
    if client_cpu is not None:
        text = f"client {client_cpu:.1f} µs"
        if server_cpu is not None:
            text += f", server {server_cpu:.1f} µs"
        add("CPU per message", text)
    wait, load = f["client_wait"], f["client_load"]
    if wait is not None:
        add("Client wait", format_client_wait(wait))
    if load is not None:
        add("Client CPU use", f"{load['cores_used']:.2f} cores = {cpu['client_s']:.2f} s CPU / "
            f"{f['phases_time_s']:.2f} s of phases")
        add("Client saturated", saturation_text(load))
    if f["client_peak_rss_mib"] is not None:
        processes = f", its {f['client_processes']} processes together" if f["client_processes"] > 1 else ""
        add("Client peak RSS", f"{f['client_peak_rss_mib']:.0f} MiB (during the run{processes})")
    if f["fanout"] is not None:
        lines += format_fanout(f)
    if f["open_loop"] is not None:
        lines += format_open_loop(f)
    law = f["littles_law"]
    if f["open_loop"] is not None:
        lines += open_loop_law(f["open_loop"])
    elif law["predictions"] and law["round_trip_ms"]:
        lines += ["", f"Little's Law (W = {law['round_trip_ms']:.3f} ms on one idle connection)",
                  f"  {'phase':<8}{'threads':>8}{'predicted':>14}{'actual':>12}{'actual/pred':>13}"
                  f"{'mean W':>11}{'L = λ·W':>10}"]
        lines += [_prediction_row(p) for p in law["predictions"]]
        lines += format_bounds(f)
    lines += threshold_lines(verdicts)
    lines.append(RULE)
    return "\n".join(lines)


def open_loop_law(o: Figures) -> list[str]:
    """Little's Law in the open loop: the schedule set λ, so nothing was predicted (nor a
    bound hit); what it tells is how many messages waited or were in flight on average."""
    lines = ["", "Little's Law (open loop: the schedule sets λ, so it predicts nothing)"]
    if o["concurrency_L"] is not None:
        lines.append(f"  L = λ·W = {o['rate_achieved_msg_s']:,.1f} msg/s × {o['mean_response_ms']:.3f} ms mean response "
                     f"time = {o['concurrency_L']:.1f} messages waiting or in flight on average, of "
                     f"{o['senders']} senders (one in flight each)")
    return lines


def threshold_lines(verdicts: Sequence[Verdict]) -> list[str]:
    """The summary's last block: one line per ``--threshold``, none without."""
    if not verdicts:
        return []
    return ["", "Thresholds (--threshold)"] + [f"  {v.text}" for v in verdicts]


def format_open_loop(f: Figures) -> list[str]:
    """The open loop's block (docs/client.md#open-loop---rate): the rate asked and
    achieved, the lag, and the two latencies, with why they differ when they do."""
    o = f["open_loop"]
    lines = ["", "Open loop (--rate: each message has an intended send time on a fixed schedule)"]

    def add(label: str, value: str) -> None:
        lines.append(f"{label:<26}{value}")

    asked, behind, waking = o["rate_asked_msg_s"], o["behind_schedule"], o["behind_woken_late"]
    ramp = f" on average ({o['ramp']})" if o.get("ramp") else ""
    add("Rate asked", f"{asked:,.1f} msg/s{ramp} over {o['senders']} senders, one message in flight each")
    achieved = f"{o['rate_achieved_msg_s']:,.1f} msg/s ({o['rate_achieved_msg_s'] / asked:.1%} of the rate asked)"
    add("Rate achieved", achieved + "; " + rate_held_text(f))
    add("Behind schedule", f"{behind:,} of {o['messages']:,} messages sent more than {o['behind_tolerance_ms']:g} ms "
        f"after their intended time ({behind - waking:,} after a late reply, {waking:,} "
        f"woken late by the client); the largest lag {o['largest_lag_ms']:,.1f} ms")
    add("Response time", _latency_text(o["response_time"], "intended send → reply: what a user waiting sees"))
    add("Service time", _latency_text(o["service_time"], "actual send → reply: what the server took"))
    response_p99, service_p99 = o["response_time"]["p99_ms"], o["service_time"]["p99_ms"]
    if (response_p99 is not None and service_p99 is not None
            and response_p99 > 2 * service_p99 + o["behind_tolerance_ms"]):
        causes = []
        if behind > waking:
            causes.append(f"{behind - waking:,} waited for their sender's previous reply, which came "
                          "after their slot (the server or the network slow)")
        if waking:
            causes.append(f"{waking:,} were woken late for their slot by the client itself (its GIL, "
                          "its other threads)")
        add("Why they differ", "messages sent late: " + "; ".join(causes) + ". The response time counts that "
            "wait, the service time does not; a closed loop would have hidden it by sending less")
    return lines


def rate_held_text(f: Figures) -> str:
    """Whether the run held the rate asked, and if not what may have held it back."""
    o = f["open_loop"]
    if o["rate_held"]:
        return "the rate was held"
    reasons = []
    load = f["client_load"]
    if load is not None and load["saturated"]:
        reasons.append("the client was saturated (below)")
    bound = o["senders_bound_msg_s"]
    if bound is not None and bound < o["rate_asked_msg_s"]:
        reasons.append(f"{o['senders']} senders ÷ the mean service time allow only "
                       f"{bound:,.0f} msg/s (more --threads, or a faster server)")
    if o["behind_schedule"]:
        reasons.append("replies came later than the next slots")
    why = ": " + "; ".join(reasons) if reasons else ""
    return f"the rate was NOT held (under {o['rate_held_fraction']:.0%} of it){why}"


#: Rooms listed in the summary's per-room table at most (those with the most missing first).
ROOMS_LISTED = 20


def format_fanout(figures: Figures) -> list[str]:
    """The broadcast scenario's block: what the members received (docs/client.md#the-broadcast-scenario)."""
    f, servers = figures["fanout"], len(figures["servers"])
    lines = ["", "Deliveries (the broadcast scenario: what the rooms' listening members received)"]

    def add(label: str, value: str) -> None:
        lines.append(f"{label:<26}{value}")

    add("Room members", f"{f['room_members']} per room × {len(f['rooms'])} rooms, over "
        f"{servers} server{'s' if servers > 1 else ''}")
    add("Deliveries expected", f"{f['expected']:,} (members × successful messages)")
    add("Deliveries received", f"{f['received']:,} (matched {f['matched']:,}, duplicated {f['duplicated']:,}, "
        f"unexpected {f['unexpected']:,}, of failed messages {f['of_failed_messages']:,})")
    add("Deliveries missing", f"{f['missing']:,}")
    add("Deliveries duplicated", f"{f['duplicated']:,}")
    add("Deliveries out of order", f"{f['out_of_order']:,}; unordered (bus down) {f['unordered_bus_down']:,}")
    add("Deliveries unexpected", f"{f['unexpected']:,} (matching no message sent)")
    add("Fan-out each member", _latency_text(f["each_member_latency"], "send → each member"))
    add("Fan-out last member", _latency_text(f["last_member_latency"], "send → the last member"))
    if f["deliveries_per_s_main"] is not None:
        add("Deliveries per second", f"{f['deliveries_per_s_main']:,.0f} (received during the main phase)")
    closes = ", ".join(f"{c['code']} ×{c['count']:,}" for c in f["member_closes_by_server"]) or "none"
    add("Member reconnects", f"{f['member_reconnects']:,} (closed by the server: {closes}; "
        f"gave up: {f['members_lost']:,})")
    add("Room frames to senders", f"{figures['totals']['room_frames_to_senders']:,} (passed over while awaiting a reply)")
    rooms = sorted(f["rooms"], key=lambda c: (-c["missing"], c["room"]))[:ROOMS_LISTED]
    lines.append(f"  {'room':>6}{'expected':>12}{'matched':>12}{'missing':>10}{'duplicated':>12}{'out of order':>14}")
    lines += [f"  {c['room']:>6}{c['expected']:>12,}{c['matched']:>12,}{c['missing']:>10,}{c['duplicated']:>12,}"
              f"{c['out_of_order']:>14,}" for c in sorted(rooms, key=lambda c: c["room"])]
    if len(f["rooms"]) > ROOMS_LISTED:
        lines.append(f"  ({len(f['rooms']) - ROOMS_LISTED} more rooms, in the report)")
    return lines


def _latency_text(figures: dict, what: str) -> str:
    if not figures["count"]:
        return f"none measured ({what})"
    return (f"p50 {figures['p50_ms']:.2f}, p95 {figures['p95_ms']:.2f}, p99 {figures['p99_ms']:.2f}, "
            f"max {figures['max_ms']:.2f} ms ({what}, {figures['count']:,})")


def format_client_wait(wait: Figures) -> str:
    """The client wait line's text (docs/client.md#where-a-reply-waits)."""
    text = f"p50 {wait['p50_ms']:.2f} ms, p99 {wait['p99_ms']:.2f} ms, mean {wait['mean_ms']:.2f} ms"
    if wait["share_of_mean_latency"] is not None:
        text += f" = {wait['share_of_mean_latency']:.0%} of the mean latency"
    return text + " (reply in the kernel → its sender's clock)"


def saturation_text(load: Figures) -> str:
    """Whether the client held the run back, and why (docs/client.md#when-the-client-is-saturated)."""
    ceiling = load["ceiling_cores"]
    used = f"{load['cores_used']:.2f} cores used of the {ceiling} core{'s' if ceiling > 1 else ''} its Python code can use"
    if load["cores"] is not None:
        used += f" ({load['cores']} on the machine)"
    reasons = []
    if load["busy"]:
        reasons.append(f"{used}, ≥ {load['busy_fraction']:.0%}")
    if load["waiting"]:
        reasons.append(f"its replies waited {load['wait_share']:.0%} of the mean latency in it, "
                       f"≥ {load['wait_share_limit']:.0%}")
    if not reasons:
        return f"no: {used}"
    return "yes: " + "; ".join(reasons) + ": the figures measure the client as much as the server"


def _prediction_row(p: Figures) -> str:
    ratio = f"{p['actual_over_predicted']:.2f}" if p["actual_over_predicted"] is not None else "-"
    mean = f"{p['mean_latency_ms']:.3f} ms" if p["mean_latency_ms"] is not None else "-"
    concurrency = f"{p['concurrency_L']:.1f}" if p["concurrency_L"] is not None else "-"
    return (f"  {p['phase']:<8}{p['threads']:>8}{p['predicted_msg_s']:>14,.0f}{p['actual_msg_s'] or 0:>12,.0f}"
            f"{ratio:>13}{mean:>11}{concurrency:>10}")


def format_bounds(f: Figures) -> list[str]:
    """Below the Little's Law table: the seed's prediction, the CPU ceiling, the bound hit."""
    law, cpu = f["littles_law"], f["cpu"]
    bounds = law["bounds"]
    seed = "Little's Law the seed's way"
    if bounds is None:
        return [f"{seed}: no main phase to predict"]
    warmup = bounds["from_warmup"]
    if warmup is not None:
        lines = [f"{seed} (W = {warmup['round_trip_ms']:.3f} ms, the warmup's mean latency)", _prediction_row(warmup)]
    elif not law["warmup_phase"]:
        lines = [f"{seed}: no warmup phase, so no warmup W to predict the main phase from"]
    else:
        lines = [f"{seed}: no warmup message succeeded, so no warmup W to predict the main phase from"]
    label = 13
    if bounds["cpu_ceiling_msg_s"] is not None:
        lines.append(f"{'CPU ceiling':<{label}}{bounds['cpu_ceiling_msg_s']:,.0f} msg/s = {bounds['cores']} cores ÷ "
                     f"({cpu['client_us_per_message']:.1f} µs client + {cpu['server_us_per_message']:.1f} µs server "
                     f"CPU per message)")
    elif cpu["server_s"] is None:
        lines.append(f"{'CPU ceiling':<{label}}unknown: the server's CPU is measured only with --local")
    elif not bounds["cores"]:
        lines.append(f"{'CPU ceiling':<{label}}unknown: the number of usable cores is unknown")
    else:
        lines.append(f"{'CPU ceiling':<{label}}unknown: no CPU per message (no message done)")
    lines.append(f"{'Bound':<{label}}{_bound_text(bounds)}")
    return lines


def _bound_text(b: Figures) -> str:
    """Which bound the main phase hit, in words (the rule: docs/client.md#littles-law-and-the-bounds-of-a-run)."""
    lower, rate, bound, fraction = b["bound_applying"], b["bound_applying_msg_s"], b["bound"], b["actual_over_bound"]
    if lower is None or bound is None or fraction is None:
        return "unknown: neither the round trip nor the CPU gave a rate"
    w = "the warmup's W" if b["from_warmup"] is not None else "the idle probe's W"
    named = f"threads ÷ {w}" if lower == Bound.ROUND_TRIP.value else "the CPU ceiling"
    known = b["cpu_ceiling_msg_s"] is not None and b["round_trip_bound_msg_s"] is not None
    which = "the lower bound" if known else "the one known"
    ran = f"main phase at {fraction:.2f} of {named} ({rate:,.0f} msg/s), {which}"
    if bound == Bound.ROUND_TRIP.value:
        return f"round trip: {ran}: the messages waited on the round trip"
    if bound == Bound.CPU.value:
        return f"CPU: {ran}: the cores were busy"
    return (f"neither: {ran}; under {b['hit_fraction']:.2f} of it, so something else held it back "
            f"(the client's GIL, a lock, the server's one thread, a share of the cores)")


def verdict(result: RunResult) -> str:
    """A RunResult's last line (``verdict_text`` of its figures)."""
    return verdict_text(summary_figures(result))


def verdict_text(f: Figures) -> str:
    """The last line without thresholds: says why the exit status is what it is."""
    totals = f["totals"]
    if f["unreachable"]:
        return f"FAILED: could not connect ({f['unreachable']})"
    if f["interrupted"]:
        return (f"INTERRUPTED: {totals['successful']:,} of {totals['generated']:,} generated messages succeeded, "
                f"{totals['failed']:,} counted failed")
    if totals["successful"] == 0:
        detail = f": {f['last_error']}" if f["last_error"] else ""
        return f"FAILED: no message succeeded{detail}"
    if totals["failed"]:
        return f"FAILED: {totals['failed']:,} of {totals['generated']:,} messages failed"
    fanout = f["fanout"]
    if fanout is not None and not fanout["ok"]:
        hint = " (no room frame came: is the server in --mode broadcast?)" if fanout["received"] == 0 else ""
        return (f"FAILED: of {fanout['expected']:,} deliveries expected, {fanout['missing']:,} missing, "
                f"{fanout['duplicated']:,} duplicated, {fanout['out_of_order']:,} out of order{hint}")
    if fanout is not None:
        return (f"OK: all {totals['successful']:,} messages succeeded and reached all {fanout['room_members']} "
                "members of their room")
    o = f["open_loop"]
    if o is not None and not o["rate_held"]:
        return (f"OK: all {totals['successful']:,} messages succeeded, but the rate was NOT held: "
                f"{o['rate_achieved_msg_s']:,.0f} of {o['rate_asked_msg_s']:,.0f} msg/s asked")
    return f"OK: all {totals['successful']:,} messages succeeded"


#: The client's exit statuses (2 is argparse's, for bad options, a malformed --threshold too).
EXIT_OK, EXIT_FAILED, EXIT_THRESHOLDS, EXIT_INTERRUPTED = 0, 1, 3, 130
#: Their names in summary.json's ``exit``.
EXIT_NAMES = {EXIT_OK: "ok", EXIT_FAILED: "failed", EXIT_THRESHOLDS: "thresholds crossed",
              EXIT_INTERRUPTED: "interrupted"}


@dataclass(frozen=True)
class Outcome:
    """The exit status of a run, and the last line that says why."""

    status: int
    reason: str

    @property
    def name(self) -> str:
        return EXIT_NAMES[self.status]


def outcome(f: Figures, verdicts: Sequence[Verdict] = ()) -> Outcome:
    """Interrupted → 130; messages failed (or nothing could connect) → 1, whatever the
    thresholds (failed messages are the stronger signal); a threshold crossed → 3; else 0
    (docs/client.md#thresholds)."""
    reason = verdict_text(f)
    crossed = [v.threshold.text for v in verdicts if not v.passed]
    of = f"{len(crossed)} of {len(verdicts)} threshold{'s' if len(verdicts) > 1 else ''}"
    if f["interrupted"]:
        return Outcome(EXIT_INTERRUPTED, reason)
    if not f["ok"]:
        return Outcome(EXIT_FAILED, reason + (f" (and {of} crossed)" if crossed else ""))
    if crossed:
        return Outcome(EXIT_THRESHOLDS, f"FAILED: {of} crossed: {', '.join(crossed)}; {reason.removeprefix('OK: ')}")
    if verdicts:
        held = f"all {len(verdicts)} thresholds held" if len(verdicts) > 1 else "the threshold held"
        return Outcome(EXIT_OK, f"{reason}; {held}")
    return Outcome(EXIT_OK, reason)


def run_figures(result: RunResult) -> dict:
    """A RunResult's figures as the report's ``run`` mapping (``report_figures``)."""
    return report_figures(summary_figures(result))
