"""The open loop (``run_client.py --rate``) measured: what it costs the client against the
closed loop at the same msg/s, how well it keeps its schedule, and what it shows when the
server stalls.

Each run is ``run_client.py`` as its own process against a ChatFlow server process on
127.0.0.1, its figures read from the summary.json it writes (docs/client.md#summaryjson).
In each round, in an order reversed every other round:

- **cost**: through a delay proxy of each of ``--rtt-ms`` (``chatflow.wan``'s, in this
  process), the closed loop (64 senders, no warmup) for ``--messages``, then the open loop
  (128 senders) at the rate that closed loop achieved, for as many messages: the two at
  the same msg/s on the same path. The client's CPU per message of the two, and its
  ratio: what the schedule (senders sleeping to their slots, the clocks, two more CSV
  columns) costs. (On loopback the closed loop runs at the machine's limit, a rate no open
  loop of one process holds: the delay sets a rate both can.)
- **schedule**: ``--rate 2000 --duration 30`` (issue #16's figure): the rate achieved, the
  messages behind schedule, response and service time.
- **stalls**: ``--rate 1000 --duration 20`` through a proxy that holds the server's replies
  for 1 s every 5 s (``tests.support.fault_proxy``), 8 senders: the service time stays
  small while the response time shows the stalls.

Prints a table, saves JSON under bench/results/; the default run writes
docs/measurements/rate.md and its JSON beside it.

    python -m bench.rate [--rounds 3] [--messages 30000] [--rtt-ms 10,40]
    python -m bench.rate --rounds 1 --messages 10000 --schedule-s 5 --stall-s 6   # a smoke run: no page
    python -m bench.rate --from-results FILE.json
"""

from __future__ import annotations

import argparse
import contextlib
import datetime
import json
import sys
import tempfile
from pathlib import Path

from bench import doc, results
from bench.end_to_end import run_client, tail
from bench.server_bench import BenchError, server_command, server_running
from chatflow.arguments import whole_number
from chatflow.wan.proxy import DelayProxy
from tests.support.fault_proxy import FaultProxy, FaultRates, Stalls
from tests.support.network import LOCALHOST
from tests.support.processes import REPO_ROOT

COMMAND = "python -m bench.rate"
PAGE = doc.MEASUREMENTS / "rate.md"
SAVED = doc.MEASUREMENTS / "rate.json"
ROUNDS, MESSAGES, RTTS = 3, 30_000, "10,40"
#: The senders: the closed loop's and the schedule run's (the default --threads), and the
#: open loop's in the cost runs (twice as many: one message in flight each, it needs room
#: above the rate to keep its schedule: senders ÷ round trip).
SENDERS, OPEN_SENDERS = 64, 128
#: The stalls run has fewer: each sender's one message in flight at a stall takes it in its
#: service time too, and with 8 of them that is under 1 % of the messages.
STALL_SENDERS = 8
SCHEDULE_RATE, SCHEDULE_S = 2000, 30
STALL_RATE, STALL_S, STALL_EVERY_S, STALL_LENGTH_S = 1000, 20, 5.0, 1.0
TIMEOUT_S = 300.0


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog=COMMAND, description=__doc__.splitlines()[0])
    results.add_page_options(parser, messages=MESSAGES, rounds=ROUNDS)
    parser.add_argument("--rtt-ms", default=RTTS, help="the delay proxy's round trips of the cost runs (default %(default)s)")
    parser.add_argument("--schedule-s", type=whole_number(1), default=SCHEDULE_S,
                        help=f"seconds of the --rate {SCHEDULE_RATE} run (default %(default)s)")
    parser.add_argument("--stall-s", type=whole_number(1), default=STALL_S,
                        help=f"seconds of the --rate {STALL_RATE} run through the stalling proxy (default %(default)s)")
    args = parser.parse_args(argv)
    if args.from_results:
        publish(json.loads(args.from_results.read_text()), args.doc or PAGE)
        return 0
    try:
        rtts = [float(n) for n in args.rtt_ms.split(",")]
    except ValueError:
        parser.error(f"--rtt-ms: not a list of numbers: {args.rtt_ms!r}")
    if not rtts or min(rtts) <= 0:
        parser.error("--rtt-ms: each more than 0")
    started = datetime.datetime.now().isoformat(timespec="seconds")
    runs: list[dict] = []
    try:
        for round_number in range(1, args.rounds + 1):
            steps = [("cost", rtt) for rtt in rtts] + [("schedule", None), ("stalls", None)]
            if round_number % 2 == 0:
                steps.reverse()
            for kind, rtt in steps:
                if kind == "cost":
                    closed = run("closed", round_number, SENDERS, args.messages, rtt_ms=rtt)
                    opened = run("open", round_number, OPEN_SENDERS, args.messages, rate=closed["throughput_msg_s"],
                                 rtt_ms=rtt)
                    made = [closed, opened]
                elif kind == "schedule":
                    made = [run("schedule", round_number, SENDERS, None, rate=SCHEDULE_RATE,
                                duration=args.schedule_s)]
                else:
                    made = [run("stalls", round_number, STALL_SENDERS, None, rate=STALL_RATE, duration=args.stall_s,
                                stalls=Stalls(STALL_EVERY_S, STALL_LENGTH_S))]
                for entry in made:
                    print(_line(entry), flush=True)
                runs += made
    except BenchError as exc:
        print(f"{COMMAND}: {exc}", file=sys.stderr)
        return 1
    report = {"command": COMMAND, "created": started, "rounds": args.rounds, "messages": args.messages,
              "rtt_ms": rtts, "schedule": {"rate": SCHEDULE_RATE, "seconds": args.schedule_s},
              "stalls": {"rate": STALL_RATE, "seconds": args.stall_s, "every_s": STALL_EVERY_S,
                         "length_s": STALL_LENGTH_S},
              "environment": results.environment(), "runs": runs, "summary": summarise(runs, rtts)}
    print("\n".join(["", *doc.text_table(_rows(report))]))
    saved = results.write_results(report, results.RESULTS_DIR, "rate")
    print(f"saved {doc.shown(saved)}")
    default = (args.rounds, args.messages, args.rtt_ms, args.schedule_s, args.stall_s) == (
        ROUNDS, MESSAGES, RTTS, SCHEDULE_S, STALL_S)
    if args.doc is not None or default:
        publish(report, args.doc or PAGE)
    return 0 if all(entry["ok"] for entry in runs) else 1


def run(kind: str, round_number: int, threads: int, messages: int | None, *, rate: float | None = None,
        duration: int | None = None, stalls: Stalls | None = None, rtt_ms: float | None = None) -> dict:
    """One client run on a fresh server: its summary.json's figures that the page shows."""
    size = ["--messages", str(messages)] if duration is None else ["--duration", str(duration)]
    if rate is not None and duration is None:
        size = ["--duration", f"{messages / rate:.6f}"]
    with server_running(*server_command(None, echo=False)) as (_, port):
        with tempfile.TemporaryDirectory(prefix="chatflow-rate-") as scratch:
            with contextlib.ExitStack() as stack:
                target = f"127.0.0.1:{port}"
                if stalls is not None:
                    proxy = stack.enter_context(FaultProxy(port, FaultRates(), seed=round_number, stalls=stalls))
                    target = proxy.url.removeprefix("ws://")
                if rtt_ms is not None:
                    delay = stack.enter_context(DelayProxy(listen=(LOCALHOST, 0), upstream=(LOCALHOST, port),
                                                           rtt_ms=rtt_ms))
                    target = f"{LOCALHOST}:{delay.port}"
                command = [sys.executable, "run_client.py", "--server", target, "--threads", str(threads),
                           "--warmup-messages", "0", *size, *(["--rate", f"{rate:.3f}"] if rate else []),
                           "--quiet", "--no-analysis", "--output-dir", scratch]
                status, output = run_client(command, TIMEOUT_S, cwd=REPO_ROOT)
            found = list(Path(scratch).glob("*.summary.json"))
            if len(found) != 1:
                raise BenchError(f"{kind} run: expected one summary.json, found {len(found)}{tail(output)}")
            summary = json.loads(found[0].read_text())
    # The scratch folder is this machine's, not the run's: the saved command names it ".".
    summary["command"]["line"] = summary["command"]["line"].replace(scratch, ".")
    return entry_of(kind, round_number, threads, rtt_ms, status, summary)


def entry_of(kind: str, round_number: int, threads: int, rtt_ms: float | None, status: int, s: dict) -> dict:
    """The figures of one run, from its summary.json (docs/client.md#summaryjson)."""
    o = s.get("open_loop") or {}
    response, service = o.get("response_time") or {}, o.get("service_time") or {}
    latency = s["latency"]
    return {
        "kind": kind, "round": round_number, "threads": threads, "rtt_ms": rtt_ms, "status": status, "ok": status == 0,
        "messages": s["totals"]["successful"], "failed": s["totals"]["failed"],
        "throughput_msg_s": s["throughput_msg_s"],
        "client_cpu_us_per_message": s["cpu"]["client_us_per_message"],
        "latency_p50_ms": latency["p50_ms"], "latency_p99_ms": latency["p99_ms"],
        "rate_asked_msg_s": o.get("rate_asked_msg_s"), "rate_achieved_msg_s": o.get("rate_achieved_msg_s"),
        "rate_held": o.get("rate_held"), "behind_schedule": o.get("behind_schedule"),
        "behind_woken_late": o.get("behind_woken_late"), "largest_lag_ms": o.get("largest_lag_ms"),
        "response_p50_ms": response.get("p50_ms"), "response_p99_ms": response.get("p99_ms"),
        "service_p50_ms": service.get("p50_ms"), "service_p99_ms": service.get("p99_ms"),
        "command": s["command"]["line"],
    }


def summarise(runs: list[dict], rtts: list[float]) -> dict:
    """Medians and min–max per kind of run; the cost's ratio open ÷ closed per round."""
    def spread(kind: str, rtt: float | None = None) -> dict:
        mine = [r for r in runs if r["kind"] == kind and r["rtt_ms"] == rtt and r["ok"]]
        return results.summarise(mine) if mine else {}

    cost = []
    for rtt in rtts:
        pairs = [(c, o) for c in runs for o in runs if c["kind"] == "closed" and o["kind"] == "open"
                 and c["rtt_ms"] == o["rtt_ms"] == rtt and c["round"] == o["round"] and c["ok"] and o["ok"]]
        ratios = [{"cpu_ratio": o["client_cpu_us_per_message"] / c["client_cpu_us_per_message"],
                   "rate_ratio": o["throughput_msg_s"] / c["throughput_msg_s"]} for c, o in pairs]
        cost.append({"rtt_ms": rtt, "closed": spread("closed", rtt), "open": spread("open", rtt),
                     "ratio": results.summarise(ratios) if ratios else {}})
    return {"cost": cost, "schedule": spread("schedule"), "stalls": spread("stalls")}


def _s(spread: dict, key: str, digits: int) -> str:
    return results.format_spread(spread.get(key), digits)


def _rows(report: dict) -> list[list[str]]:
    """The console's table (the page has the same, in Markdown)."""
    rows = [[f"cost: the closed loop ({SENDERS} senders), then the open loop ({OPEN_SENDERS}) at its msg/s"],
            ["round trip", "closed msg/s", "open msg/s", "closed µs/msg", "open µs/msg", "open/closed CPU"]]
    for c in report["summary"]["cost"]:
        rows.append([f"{c['rtt_ms']:g} ms", _s(c["closed"], "throughput_msg_s", 0), _s(c["open"], "rate_achieved_msg_s", 0),
                     _s(c["closed"], "client_cpu_us_per_message", 1), _s(c["open"], "client_cpu_us_per_message", 1),
                     _s(c["ratio"], "cpu_ratio", 2)])
    return rows + [["schedule (64 senders) and stalls (8 senders)"], *_latency_rows(report)]


def _latency_rows(report: dict) -> list[list[str]]:
    head = ["run", "asked msg/s", "achieved msg/s", "behind", "largest lag ms", "response p50/p99 ms",
            "service p50/p99 ms"]
    rows = [head]
    for name in ("schedule", "stalls"):
        s = report["summary"][name]
        rows.append([name, _s(s, "rate_asked_msg_s", 0), _s(s, "rate_achieved_msg_s", 1), _s(s, "behind_schedule", 0),
                     _s(s, "largest_lag_ms", 1), f"{_s(s, 'response_p50_ms', 2)} / {_s(s, 'response_p99_ms', 1)}",
                     f"{_s(s, 'service_p50_ms', 2)} / {_s(s, 'service_p99_ms', 1)}"])
    return rows


def publish(report: dict, page_path: Path) -> None:
    doc.publish(page(report), page_path, report, PAGE, SAVED)


def page(report: dict) -> list[str]:
    lines = doc.header("The open loop: its cost, its schedule, and stalls", COMMAND,
                       "What the open loop is and why: [client.md](../client.md#open-loop---rate).")
    sched, stalls = report["schedule"], report["stalls"]
    lines += [f"{report['rounds']} rounds, the steps of every other round in reverse order; each run is "
              "`run_client.py` as its own process against a fresh ChatFlow server process on 127.0.0.1 (client and "
              "server share the machine's CPUs), its figures from the summary.json it wrote. Medians, min–max in "
              "brackets. " + doc.measured_on(report["created"], report["environment"]), ""]
    lines += ["## What the schedule costs the client", "",
              f"Through a delay proxy of each round trip (`chatflow.wan`'s, in the benchmark's process): the closed "
              f"loop ({SENDERS} senders, no warmup) for {report['messages']:,} messages, then the open loop "
              f"({OPEN_SENDERS} senders: it needs room above the rate, senders ÷ round trip) at the rate that closed "
              "loop achieved, for as many messages: the two at the same msg/s on the same path. The open loop's "
              "msg/s is its rate achieved. The client's CPU per message is over its phases "
              "(`cpu.client_us_per_message`). On loopback without a delay the closed loop runs at the machine's "
              "limit, a rate no open loop in one process holds.", ""]
    cost = doc.table(*_markdown(_rows(report)[1:len(report["summary"]["cost"]) + 2]), "r" * 6)
    lines += cost + [""]
    lines += ["## The schedule kept, and stalled replies", "",
              f"**schedule**: `--rate {sched['rate']} --duration {sched['seconds']}`, {SENDERS} senders. "
              f"**stalls**: `--rate {stalls['rate']} --duration {stalls['seconds']} --threads {STALL_SENDERS}` "
              f"through a proxy that holds the server's replies for {stalls['length_s']:g} s every "
              f"{stalls['every_s']:g} s (each sender's message in flight at a stall takes it in its service "
              f"time too: with {STALL_SENDERS} senders under 1 % of the messages; the last stall holds the "
              "last replies, so the rate achieved, up to the last reply, is below the rate asked). Behind: the "
              "messages sent more than 1 ms after their intended time. Response time runs from the intended send time, service time "
              "from the actual send; the client's percentiles are within 1/16 "
              "([latency histograms](../client.md#latency-histograms)).", ""]
    lines += doc.table(*_markdown(_latency_rows(report)), "lrrrrrr") + [""]
    failed = [r for r in report["runs"] if not r["ok"]]
    if failed:
        lines += ["Runs that did not succeed:", ""] + [f"- {_line(r)}" for r in failed]
    return lines


def _markdown(rows: list[list[str]]) -> tuple[list[str], list[list[str]]]:
    return rows[0], rows[1:]


def _line(entry: dict) -> str:
    figures = (f"{entry['throughput_msg_s']:,.0f} msg/s, client {entry['client_cpu_us_per_message']:.1f} µs/msg, "
               f"p99 {entry['latency_p99_ms']:.2f} ms")
    if entry["rate_asked_msg_s"] is not None:
        figures += (f", asked {entry['rate_asked_msg_s']:,.0f}, behind {entry['behind_schedule']:,}, "
                    f"service p99 {entry['service_p99_ms']:.2f} ms")
    status = "" if entry["ok"] else f" (exit status {entry['status']})"
    return f"round {entry['round']} {entry['kind']:<8} {entry['threads']:>3} threads: {figures}{status}"


if __name__ == "__main__":
    sys.exit(main())
