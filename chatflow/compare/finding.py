"""The comparison's finding: one line saying which side differs and by how much, judged from
the server and client ratios alone. Pure: ratios in, a sentence out.

A side differs in msg/s where its ratio's median is beyond ±:data:`TOLERANCE` of 1 and every
round lies on the same side of 1; where its msg/s does not differ, it still differs in CPU
where every round's CPU ratio is beyond ±:data:`TOLERANCE` on the same side (docs/comparison-tool.md).
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from typing import Any

from chatflow.compare.document import NA, RATIO_CODES, not_compared, ratio_codes, ratio_text

#: A side whose msg/s ratio's median is within this of 1 is "about the same".
TOLERANCE = 0.05
SAME, DIFFERS, UNCLEAR = "about the same", "differs", "unclear"
CHEAPER, COSTLIER = "cheaper", "costlier"


def differs(ratio: float) -> bool:
    """Outside ±TOLERANCE of 1 (to the figure shown: 1.05 is within 5 %)."""
    return round(abs(ratio - 1.0), 6) > TOLERANCE


def verdict(figure: Mapping[str, float | None]) -> str:
    """A side's msg/s ratio judged: about the same (median within ±TOLERANCE), differs (beyond
    it, and every round on the same side of 1), else unclear (the rounds disagree)."""
    median, low, high = figure["median"], figure.get("min"), figure.get("max")
    if not differs(median):
        return SAME
    if low is not None and high is not None and low <= 1.0 <= high:
        return UNCLEAR
    return DIFFERS


def cpu_verdict(figure: Mapping[str, float | None] | None) -> str | None:
    """A side's CPU-per-message ratio judged: cheaper (every round below 1 − TOLERANCE),
    costlier (every round above 1 + TOLERANCE), else None."""
    low, high = (figure or {}).get("min"), (figure or {}).get("max")
    if low is None or high is None:
        return None
    if high < 1.0 and differs(high):
        return CHEAPER
    if low > 1.0 and differs(low):
        return COSTLIER
    return None


def _distance(ratio: float) -> float:
    return abs(math.log(ratio)) if ratio > 0 else math.inf


def finding(ratios: Mapping[str, Any], names: Mapping[str, str], missing: Mapping[str, str] | None = None) -> str:
    """One line saying which side differs and by how much, from the server and client ratios.

    Each side is judged by :func:`verdict` on msg/s, else by :func:`cpu_verdict` on its CPU per
    message; a difference in msg/s leads one in CPU, and of two alike the one furthest from 1
    leads. ``missing`` says, per side, why its ratio is absent.
    """
    python, other = names.get("python", "Python"), names.get("other", "other")
    clauses, verdicts, costs, distance = {}, {}, {}, {}
    for side in ("client", "server"):
        entry = ratios.get(side) or {}
        rate = entry.get("msg_s") or {}
        if rate.get("median") is None:
            reason = (missing or {}).get(side) or "a pairing missing"
            clauses[side] = f"the {side}s were not compared ({reason})"
            continue
        verdicts[side] = verdict(rate)
        cpu = entry.get(f"{side}_cpu_us_per_msg")
        cost = cpu_verdict(cpu) if verdicts[side] != DIFFERS else None
        distance[side] = _distance(cpu["median"] if cost and cpu.get("median") else rate["median"])
        rate_said = (f"{ratio_text(rate)} the {other} {side}'s msg/s "
                     f"under the same {'client' if side == 'server' else 'server'}")
        at_cpu = f" at {ratio_text(cpu)} its CPU per message" if ratio_text(cpu) != NA else ""
        if cost:
            costs[side] = cost
            manner = "at about the same rate" if verdicts[side] == SAME else "while its rounds disagree on the rate"
            clauses[side] = f"the {python} {side} is {cost} {manner}: {rate_said}{at_cpu}"
        else:
            clauses[side] = f"the {python} {side} makes {rate_said}{',' if at_cpu else ''}{at_cpu}"
    if not verdicts:
        return f"No side can be judged: {clauses['client']}; {clauses['server']}."
    ranked = sorted(verdicts, key=distance.__getitem__, reverse=True)
    different = [side for side in ranked if verdicts[side] == DIFFERS]
    in_cpu = [side for side in ranked if side in costs]
    unjudged = [side for side in ("client", "server") if side not in verdicts]

    def said(side: str) -> str:
        if side in costs:
            return clauses[side]
        if verdicts[side] == UNCLEAR:
            return f"the {side}s' rounds disagree: {clauses[side]}"
        return f"the {side}s are about the same: {clauses[side]}"

    if len(different) == 2:
        lead, parts = f"Both sides differ, the {different[0]}s most", [clauses[side] for side in different]
    elif different and in_cpu:
        lead = f"Both sides differ, the {different[0]}s in msg/s, the {in_cpu[0]}s in CPU"
        parts = [clauses[different[0]], clauses[in_cpu[0]]]
    elif different:
        lead = f"The {different[0]}s are the difference"
        parts = [clauses[different[0]]] + [said(side) for side in ranked if side != different[0]]
    elif len(in_cpu) == 2:
        lead, parts = f"Both sides differ in CPU only, the {in_cpu[0]}s most", [clauses[side] for side in in_cpu]
    elif in_cpu:
        lead = f"The {in_cpu[0]}s are the difference, in CPU"
        parts = [clauses[in_cpu[0]]] + [said(side) for side in ranked if side != in_cpu[0]]
    elif all(v == SAME for v in verdicts.values()):
        lead = (f"Neither side differs by more than {TOLERANCE:.0%}" if len(verdicts) == 2
                else f"The {ranked[0]}s are about the same")
        parts = [clauses[side] for side in ranked]
    else:
        lead, parts = "No side clearly differs", [said(side) for side in ranked]
    parts += [clauses[side] for side in unjudged]
    return f"{lead}: " + "; ".join(parts) + "."


def finding_of(data: Mapping[str, Any]) -> str:
    """The finding of a comparison.json."""
    ratios = data.get("ratios") or {}
    missing = {side: not_compared(data, ratio_codes(ratios, side)) for side in RATIO_CODES}
    return finding(ratios, data.get("names") or {}, missing)
