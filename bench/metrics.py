"""What counting for ``/metrics`` costs the server: its CPU per message with the counts on
(the default) and off (``--no-metrics``, which skips the counting, not only the endpoint),
A/B in one sitting, two ways; and what one scrape costs, one process against the
supervisor of ``--workers 2``.

In one thread: the real ``Connection`` and chat handler, 64 of them over socket pairs,
driven as the selector loop's three passes drive them (every connection read, every
message handled, every reply sent, one message per connection a pass), this thread's CPU
timed over the passes only, the client's sends and reads left out; the variants alternate
in short blocks. It leaves out what makes a whole server's CPU per message move with the
machine's load (how many messages each wake-up batches), so it resolves a fraction of a
microsecond on a busy machine.

Whole servers: each A/B run is a ``bench.server_bench`` run (a fresh server process, the raw closed-loop
load client, the server's CPU from /proc over the measured window only). The rounds go
on-off, off-on, …, so that neither variant always runs first; the figure is the median of
the per-round differences, beside the two medians. Prints a table and saves JSON under
bench/results/; a run of the default size also writes docs/measurements/metrics.md and its
JSON (``--doc PAGE`` writes any run's page there). Why the counts are built as they are:
docs/metrics.md.

    python -m bench.metrics [--rounds 10] [--messages 200000] [--connections 64] [--doc PAGE]
    python -m bench.metrics --rounds 1 --messages 20000 --block-rounds 30 --scrapes 5   # a smoke run: no page
    python -m bench.metrics --from-results FILE.json                    # the page again
"""

from __future__ import annotations

import argparse
import datetime
import itertools
import json
import statistics
import sys
import time
import socket
from contextlib import ExitStack
from pathlib import Path

from bench import defaults, doc, results
from bench.processes import interleaved
from bench.server_bench import BenchError, ServerUnderTest, run_once
from chatflow.arguments import whole_number
from chatflow.server import metrics
from chatflow.server.chat_websocket_server import ChatWebSocketServer
from chatflow.server.config import DEFAULTS
from chatflow.server.process import ServerProcess, local_server_command
from chatflow.server.transport import Connection, TransportStats
from chatflow.server.transport.connection import Admission
from chatflow.server.transport.loop import RECV_SIZE
from chatflow.wire import SUCCESS_TAIL
from tests.support.frames import OPCODE_TEXT, client_frame, handshake_request, raw_handshake
from tests.support.messages import sized_chat_message
from tests.support.metrics import get_metrics
from tests.support.network import LOCALHOST

COMMAND = "python -m bench.metrics"
PAGE = doc.MEASUREMENTS / "metrics.md"
SAVED = doc.MEASUREMENTS / "metrics.json"
ROUNDS = 10
SCRAPES = 50
#: The one-thread A/B: rounds of a block of each variant, passes a block, connections a pass.
BLOCK_ROUNDS = 1500
PASSES = 5
DRIVEN_CONNECTIONS = 64
#: The budget of issue #17: counting may add this much to the server's CPU per message.
BUDGET_PERCENT = 3.0
VARIANTS = {"on": ServerUnderTest("metrics on"), "off": ServerUnderTest("--no-metrics", options=("--no-metrics",))}
#: The one-thread A/B's variants: the server's, the server's with every message timed (the
#: design the sample replaced), none; each a TransportStats' sample_bits, or None.
DRIVEN = {"on": ("metrics on", metrics.HANDLER_SAMPLE_BITS), "every": ("metrics on, every message timed", 0),
          "off": ("--no-metrics", None)}
#: The figures of an A/B run shown and summarised (server_bench's keys), with their labels and digits.
SHOWN = (("server_cpu_us_per_message", "server µs/msg", 2), ("server_user_cpu_us_per_message", "user µs/msg", 2),
         ("server_system_cpu_us_per_message", "system µs/msg", 2), ("messages_per_second", "msg/s", 0))


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog=COMMAND, description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=whole_number(1), default=ROUNDS, help="(default %(default)s)")
    parser.add_argument("--messages", type=whole_number(1000), default=defaults.MESSAGES,
                        help="measured messages per run (default %(default)s)")
    parser.add_argument("--warmup", type=whole_number(1), default=defaults.WARMUP, help="(default %(default)s)")
    parser.add_argument("--connections", type=whole_number(1), default=64, help="(default %(default)s)")
    parser.add_argument("--block-rounds", type=whole_number(2), default=BLOCK_ROUNDS,
                        help="one-thread A/B: rounds of a block of each variant (default %(default)s)")
    parser.add_argument("--passes", type=whole_number(1), default=PASSES,
                        help=f"one-thread A/B: passes over its {DRIVEN_CONNECTIONS} connections a block "
                             "(default %(default)s)")
    parser.add_argument("--scrapes", type=whole_number(1), default=SCRAPES,
                        help="scrapes timed on each server of the scrape measurement (default %(default)s)")
    parser.add_argument("--timeout", type=float, default=defaults.RUN_TIMEOUT, help="seconds a run may take")
    parser.add_argument("--doc", type=Path, help="write the page here (default: docs/measurements/metrics.md, "
                                                 "for the default run only)")
    parser.add_argument("--from-results", type=Path, metavar="JSON", help="rewrite the page from a saved sitting")
    return parser


class Driven:
    """``connections`` chat connections over socket pairs, counting into ``stats`` (None:
    ``--no-metrics``), each past its handshake; ``block`` runs passes and times them."""

    def __init__(self, connections: int, stats: TransportStats | None) -> None:
        self.stats = stats
        self.chat = ChatWebSocketServer(max_rooms=DEFAULTS.max_rooms,
                                        stats=None if stats is None else metrics.ChatStats())
        admission = Admission(DEFAULTS.limits.max_connections)
        self.buffer = memoryview(bytearray(RECV_SIZE))
        self.pairs: list[tuple[Connection, socket.socket]] = []
        now = time.monotonic()
        for index in range(connections):
            server_end, client_end = socket.socketpair()
            server_end.setblocking(False)
            client_end.setblocking(False)
            conn = Connection(server_end, ("local", index), handler=self.chat, limits=DEFAULTS.limits,
                              admission=admission, now=now, watch=lambda *_: None, forget=lambda _: None,
                              stats=stats)
            client_end.sendall(handshake_request(f"/chat/{index % DEFAULTS.max_rooms + 1}"))
            conn.handle(conn.receive(self.buffer, now) or [])
            conn.flush(now)
            if not _drain(client_end).startswith(b"HTTP/1.1 101 "):
                raise BenchError("a driven connection's handshake was refused")
            self.pairs.append((conn, client_end))
        self.frames = [client_frame(OPCODE_TEXT, sized_chat_message(index + 1)) for index in range(connections)]

    def block(self, passes: int) -> float:
        """``passes`` passes; this thread's CPU seconds in the passes' server side."""
        spent = 0.0
        buffer, pairs, stats = self.buffer, self.pairs, self.stats
        for _ in range(passes):
            for (_, client), frame in zip(pairs, self.frames):
                client.send(frame)
            started = time.thread_time()
            now = time.monotonic()
            handled = 0 if stats is None else stats.messages
            received = [(conn, conn.receive(buffer, now)) for conn, _ in pairs]
            for conn, events in received:
                conn.handle(events)
            for conn, _ in received:
                conn.flush(now)
            if stats is not None:
                stats.woke(stats.messages - handled)
            spent += time.thread_time() - started
            for _, client in pairs:
                if not _drain(client).endswith(SUCCESS_TAIL):
                    raise BenchError("a driven connection got no success reply")
        return spent

    def close(self) -> None:
        for conn, client in self.pairs:
            client.close()
            conn.release()


def _drain(sock: socket.socket) -> bytes:
    """What the socket holds now (the driven server has written all it will)."""
    data = bytearray()
    for _ in range(100):
        try:
            chunk = sock.recv(RECV_SIZE)
        except BlockingIOError:
            break
        if not chunk:
            break
        data += chunk
    return bytes(data)


def driven_runs(rounds: int, passes: int, connections: int) -> dict[str, list[float]]:
    """``rounds`` short blocks of each variant of ``DRIVEN``, back to back, in each of their
    orders by turns: each block's µs of CPU per message, by variant (the ``i``-th of each
    ran in the same round)."""
    variants = {name: Driven(connections, None if bits is None else metrics.transport_stats(bits))
                for name, (_, bits) in DRIVEN.items()}
    orders = list(itertools.permutations(variants))
    warmup = 10 * passes
    try:
        for variant in variants.values():  # warm each up: caches, allocator, branch history
            variant.block(warmup)
        spent: dict[str, list[float]] = {name: [] for name in variants}
        for index in range(rounds):
            for name in orders[index % len(orders)]:
                seconds = variants[name].block(passes)
                spent[name].append(round(seconds / (passes * connections) * 1e6, 3))
        expected = (warmup + rounds * passes) * connections
        for name, variant in variants.items():
            if variant.stats is not None and variant.stats.messages != expected:
                raise BenchError(f"variant {name} counted {variant.stats.messages:,} messages of {expected:,}")
        return spent
    finally:
        for variant in variants.values():
            variant.close()


def ab_runs(args: argparse.Namespace) -> list[dict]:
    """Every A/B run, in the order run: its round, its variant, server_bench's figures."""
    args.echo = False  # what run_once reads of a server_bench command line
    runs = []
    for round_number, variant in interleaved(list(VARIANTS), args.rounds):
        figures = run_once(args, VARIANTS[variant], args.connections)
        runs.append({"round": round_number, "variant": variant, **figures})
        print(f"r{round_number} {VARIANTS[variant].label}: {figures['server_cpu_us_per_message']:.2f} µs/msg, "
              f"{figures['messages_per_second']:,.0f} msg/s, load average {figures['load_average_after']:.1f}",
              file=sys.stderr, flush=True)
    return runs


def difference(runs: list[dict]) -> dict:
    """``paired`` over the whole-server runs, each round's two runs a pair."""
    by_round: dict[int, dict[str, float]] = {}
    for run in runs:
        by_round.setdefault(run["round"], {})[run["variant"]] = run["server_cpu_us_per_message"]
    complete = [pair for pair in by_round.values() if len(pair) == 2]
    return paired([pair["on"] for pair in complete], [pair["off"] for pair in complete])


def paired(on: list[float], off: list[float]) -> dict:
    """Counting's cost from pairs of measurements (``on[i]`` beside ``off[i]``): the median
    of on − off, in µs and as a share of off, the figure a noisy minute moves least (it
    moves both of a pair); the medians' and the fastest's difference (other work on the
    machine only ever adds CPU, so each variant's fastest is the least disturbed); and the
    quartiles of the pairs' differences and the 95 % bound of their median (its standard
    error from the quartiles' σ: 1.253 σ / √n), which say how well the sitting resolved it."""
    differences = [a - b for a, b in zip(on, off)]
    percents = [(a - b) / b * 100 for a, b in zip(on, off)]
    quartiles = statistics.quantiles(percents, n=4) if len(percents) > 1 else [percents[0]] * 3
    sigma = (quartiles[2] - quartiles[0]) / 1.349
    bound = 1.96 * 1.253 * sigma / len(percents) ** 0.5
    bound_us = bound / 100 * statistics.median(off)
    return {"on_us": statistics.median(on), "off_us": statistics.median(off), "pairs": len(differences),
            "paired_us": statistics.median(differences), "paired_percent": statistics.median(percents),
            "medians_percent": (statistics.median(on) - statistics.median(off)) / statistics.median(off) * 100,
            "fastest_percent": (min(on) - min(off)) / min(off) * 100,
            "quartiles_percent": [quartiles[0], quartiles[2]], "bound_percent": bound, "bound_us": bound_us,
            "budget_percent": BUDGET_PERCENT}


def scrape_cost(scrapes: int, *options: str) -> dict:
    """One server (``options``), a connection in every room, then ``scrapes`` timed
    ``GET /metrics``: their median and slowest, the body's size and its samples."""
    with ServerProcess(local_server_command("--log-level", "INFO", *options)) as server, ExitStack() as stack:
        port = server.wait_listening("ws").port
        health_port = server.wait_listening("http").port
        server.wait_accepting(port, LOCALHOST)
        for room in range(1, DEFAULTS.max_rooms + 1):
            stack.callback(raw_handshake(port, f"/chat/{room}").close)
        times, body = [], b""
        for _ in range(scrapes):
            started = time.perf_counter()
            status, _, body = get_metrics(health_port)
            times.append((time.perf_counter() - started) * 1e3)
            if status != 200:
                raise BenchError(f"GET /metrics answered {status}: {body[:200]!r}")
    samples = sum(1 for line in body.decode().splitlines() if line and not line.startswith("#"))
    return {"server": " ".join(options) or "one process", "median_ms": statistics.median(times),
            "max_ms": max(times), "bytes": len(body), "samples": samples}


def summary_rows(runs: list[dict]) -> list[list[str]]:
    rows = []
    for variant, under_test in VARIANTS.items():
        spread = results.summarise([run for run in runs if run["variant"] == variant])
        rows.append([under_test.label, *(results.format_spread(spread[key], digits) for key, _, digits in SHOWN)])
    return rows


def driven_rows(spent: dict[str, list[float]]) -> list[list[str]]:
    return [[DRIVEN[variant][0], results.format_spread(
        {"median": statistics.median(values), "min": min(values), "max": max(values)}, 2)]
        for variant, values in spent.items()]


def scrape_rows(scraped: list[dict]) -> list[list[str]]:
    return [[row["server"], f"{row['median_ms']:.1f}", f"{row['max_ms']:.1f}", f"{row['bytes']:,}",
             f"{row['samples']:,}"] for row in scraped]


SCRAPE_HEAD = ["server", "median ms", "slowest ms", "body bytes", "samples"]


def load(runs: list[dict]) -> str:
    """The load averages of the runs, as a range (2 CPUs and a load of 2 is a full machine)."""
    loads = [run["load_average_after"] for run in runs]
    return f"{min(loads):.1f}–{max(loads):.1f}"


def verdict(cost: dict, whole_server_us: float | None = None) -> str:
    """The cost in one paragraph, and whether the sitting shows it within the budget, over
    it, or cannot tell (the 95 % bound of the median reaches across the budget);
    ``whole_server_us``: measured against a whole server's CPU per message without
    counting (the budget's base), not the figure's own."""
    low, high = cost["quartiles_percent"]
    text = (f"Counting costs {cost['paired_us']:+.2f} ± {cost['bound_us']:.2f} µs per message, "
            f"{cost['paired_percent']:+.1f} ± {cost['bound_percent']:.1f} % of the CPU without it (the median of "
            f"{cost['pairs']:,} pairs' on − off and its 95 % bound; half of the pairs between {low:+.1f} and "
            f"{high:+.1f} %; the medians' difference {cost['medians_percent']:+.1f} %, the fastest's "
            f"{cost['fastest_percent']:+.1f} %).")
    share, bound = cost["paired_percent"], cost["bound_percent"]
    if whole_server_us is not None:
        share, bound = cost["paired_us"] / whole_server_us * 100, cost["bound_us"] / whole_server_us * 100
        text += (f" Of a whole server's {whole_server_us:.2f} µs per message without counting (below): "
                 f"{share:+.1f} ± {bound:.1f} %.")
    budget = cost["budget_percent"]
    if share + bound < budget:
        return text + f" Within the {budget:g} % budget."
    if share - bound > budget:
        return text + f" Over the {budget:g} % budget."
    return text + f" Whether that is within the {budget:g} % budget, this figure cannot tell."


def driven_cost(report: dict, variant: str = "on") -> dict:
    """What ``variant`` of the one-thread A/B costs over ``--no-metrics``."""
    return paired(report["driven"][variant], report["driven"]["off"])


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    if args.from_results:
        publish(json.loads(args.from_results.read_text()), args.doc or PAGE)
        return 0
    started = datetime.datetime.now().isoformat(timespec="seconds")
    try:
        driven = driven_runs(args.block_rounds, args.passes, DRIVEN_CONNECTIONS)
        print(f"one thread: {verdict(paired(driven['on'], driven['off']))}", file=sys.stderr, flush=True)
        print(f"one thread, every message timed: {verdict(paired(driven['every'], driven['off']))}",
              file=sys.stderr, flush=True)
        runs = ab_runs(args)
        scraped = [scrape_cost(args.scrapes), scrape_cost(args.scrapes, "--workers", "2")]
    except BenchError as exc:
        print(f"{COMMAND}: error: {exc}", file=sys.stderr)
        return 1
    report = {"command": COMMAND, "created": started, "rounds": args.rounds, "messages": args.messages,
              "warmup": args.warmup, "connections": args.connections, "block_rounds": args.block_rounds,
              "passes": args.passes,
              "driven_connections": DRIVEN_CONNECTIONS, "scrapes": args.scrapes, "driven": driven, "runs": runs,
              "scrape": scraped, "environment": results.environment()}
    whole = difference(runs)
    print("\n".join(["", *doc.text_table([["one thread", "µs/msg"], *driven_rows(driven)]), "",
                     verdict(driven_cost(report), whole["off_us"]), "",
                     "Every message timed: " + verdict(driven_cost(report, "every"), whole["off_us"]), "",
                     *doc.text_table([["whole servers", *(label for _, label, _ in SHOWN)], *summary_rows(runs)]),
                     "", verdict(whole), "", *doc.text_table([SCRAPE_HEAD, *scrape_rows(scraped)])]))
    print(f"\nSaved {results.write_results(report, results.RESULTS_DIR, 'metrics')}")
    default_run = ((args.rounds, args.messages, args.connections, args.block_rounds, args.passes)
                   == (ROUNDS, defaults.MESSAGES, 64, BLOCK_ROUNDS, PASSES))
    if args.doc is not None or default_run:
        publish(report, args.doc or PAGE)
    return 0


def publish(report: dict, page_path: Path) -> None:
    doc.publish(page(report), page_path, report, PAGE, SAVED)


def page(report: dict) -> list[str]:
    lines = doc.header("What counting for /metrics costs the server", COMMAND,
                       "How the counts are built and why: [metrics.md](../metrics.md).")
    whole = difference(report["runs"])
    lines += [doc.measured_on(report["created"], report["environment"])
              + f" The 1-minute load average after each whole-server run: {load(report['runs'])} "
              "(2 CPUs: above 2, other work waited for the cores).", ""]
    lines += ["## In one thread: the counted path", "",
              f"The real `Connection` and chat handler, {report['driven_connections']} connections over socket pairs, "
              "driven as the selector loop's three passes drive them (each connection read, each message handled, "
              "each reply sent; one 160-byte chat message per connection a pass); this thread's CPU "
              "(`time.thread_time`) over the passes only, the client's sends and reads left out. "
              f"{report['block_rounds']:,} rounds of a block of {report['passes']} passes of each variant, back to "
              "back, "
              "in each of their orders by turns, so that a slow minute of the machine falls on all of a round; "
              "each counting variant's count of messages checked against those sent. Beside the server's variant, "
              "the design it replaced: the handler timed on every message, not on a sample. Not in it: the "
              "selector's `select()`, and what the machine's load does to a wake-up's batch. Medians of the "
              "blocks, min–max in brackets.", ""]
    lines += doc.table(["", "CPU µs/msg"], driven_rows(report["driven"]), "lr")
    lines += ["", "The server's: " + verdict(driven_cost(report), whole["off_us"]), "",
              "Every message timed: " + verdict(driven_cost(report, "every"), whole["off_us"]), ""]
    lines += ["## Whole servers", "",
              f"The server's CPU per message with the counts on (the default) and off (`--no-metrics`), "
              f"{report['rounds']} rounds, each on then off or off then on; each run `bench.server_bench`'s: a fresh "
              f"`run_server.py`, {report['connections']} connections of the raw closed-loop client, "
              f"{report['messages']:,} measured messages after {report['warmup']:,} of warmup, the server's CPU "
              "from /proc over the measured window. Medians, min–max in brackets. Here the machine's other work "
              "moves each run by more than counting costs (how many messages each wake-up batches follows the "
              "load); the one-thread figure above is the one that resolves it.", ""]
    lines += doc.table(["", *(label for _, label, _ in SHOWN)], summary_rows(report["runs"]), "l" + "r" * len(SHOWN))
    lines += ["", verdict(whole), ""]
    lines += ["## One scrape", "",
              f"`GET /metrics` timed {report['scrapes']} times in a row from one client on the same machine, a "
              f"connection open in each of the {DEFAULTS.max_rooms} rooms, no other load of ours; with `--workers 2` "
              "the supervisor asks both workers over their pipes and merges their families.", ""]
    lines += doc.table(SCRAPE_HEAD, scrape_rows(report["scrape"]), "lrrrr")
    return lines


if __name__ == "__main__":
    sys.exit(main())
