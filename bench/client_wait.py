"""Where a reply waits in the client, and the levers that shorten the wait.

``python -m bench.client_wait`` runs the client (``chatflow.client.main``, with its CSV
writer and analysis) as its own process against a ChatFlow server process on 127.0.0.1,
once per variant and round, each run on a fresh server. A variant sets levers in the
client's process before it starts: the GIL's switch interval, and module constants of
the client (the generator's queue and refill, the CSV writer's batch and poll). Variants
run interleaved, in reverse order every other round (A B B A), and every figure is also
given as a ratio to the first variant's of the same round, the one comparison a shared
machine allows (bench/README.md#reading-the-figures).

Figures per run: msg/s, latency mean, p50 and p99 (the client's analysis of its CSV), the
client wait's p50, p99 and mean (docs/client.md#where-a-reply-waits), the client's CPU
per message and cores used, and the server's CPU per message. ``--client-tree DIR`` runs
the client from another checkout (an older commit, ``git archive`` into a folder) as a
variant of its own, for what a change costs. Results go to
bench/results/client_wait_<timestamp>.json.
"""

from __future__ import annotations

import argparse
import datetime
import json
import os
import statistics
import sys
import tempfile
from dataclasses import dataclass, field
from pathlib import Path

from bench import defaults
from bench.doc import text_table
from bench.end_to_end import run_client, tail, warmup_per_thread
from bench.results import REPO_ROOT, add_client_bench_options, environment, write_results
from bench.server_bench import BenchError, server_command, server_running
from chatflow.arguments import whole_number
from chatflow.client.config import LoadTestConfig

#: Run in the client's process before the client: set the levers, then run it. Only what
#: the tree has may be set, so that a variant never measures a lever that is not there.
CHILD = """
import gc, importlib, json, sys
levers = json.loads(sys.argv[1])
if levers.get("gc") == "off":
    gc.disable()
elif levers.get("gc") == "freeze":
    gc.freeze()
if levers["switch_interval"] is not None:
    sys.setswitchinterval(levers["switch_interval"])
for name, value in levers["constants"].items():
    module_name, attribute = name.rsplit(".", 1)
    module = importlib.import_module(module_name)
    if not hasattr(module, attribute):
        sys.exit(f"this client has no {name}")
    setattr(module, attribute, value)
from chatflow.client.main import main
sys.exit(main(sys.argv[2:]))
"""

GENERATOR = "chatflow.client.message_generator"
CSV_WRITER = "chatflow.client.csv_writer"


@dataclass(frozen=True)
class Variant:
    """A client as a run measures it: its levers, and the tree it runs from (None: this one)."""

    name: str
    switch_interval: float | None = None
    constants: dict[str, float] = field(default_factory=dict)
    tree: Path | None = None
    #: The cyclic garbage collector: None as it is, "off" (gc.disable) or "freeze" (gc.freeze).
    gc: str | None = None
    #: ``--processes``: the levers are set in the client's first process only, so a variant
    #: with levers runs in one.
    processes: int = 1

    def levers(self) -> str:
        return json.dumps({"switch_interval": self.switch_interval, "constants": self.constants, "gc": self.gc})


#: What the bench can run; ``--variants`` picks some, in order, the first the reference.
VARIANTS = {v.name: v for v in [
    Variant("default"),
    Variant("switch-1ms", switch_interval=0.001),
    Variant("switch-0.5ms", switch_interval=0.0005),
    Variant("switch-0.2ms", switch_interval=0.0002),
    Variant("refill-500", constants={f"{GENERATOR}.REFILL_FRACTION": 0.05}),
    Variant("refill-100", constants={f"{GENERATOR}.REFILL_FRACTION": 0.01}),
    Variant("csv-batch-256", constants={f"{CSV_WRITER}.BATCH": 256}),
    Variant("csv-poll-5ms", constants={f"{CSV_WRITER}.POLL_INTERVAL": 0.005}),
    Variant("csv-poll-100ms", constants={f"{CSV_WRITER}.POLL_INTERVAL": 0.1}),
    Variant("refill-100+csv-poll-100ms", constants={f"{GENERATOR}.REFILL_FRACTION": 0.01,
                                                    f"{CSV_WRITER}.POLL_INTERVAL": 0.1}),
    Variant("switch-50ms", switch_interval=0.05),
    Variant("gc-off", gc="off"),
    Variant("gc-freeze", gc="freeze"),
    Variant("processes-2", processes=2),
]}
DEFAULT_VARIANTS = ["default", "switch-1ms", "switch-0.5ms", "switch-0.2ms"]
MESSAGES = 200_000
ROUNDS = 2

#: (label, figure, digits) of the printed table.
FIGURES = [
    ("msg/s", "msg_s", 0),
    ("latency mean (ms)", "latency_mean_ms", 3),
    ("latency p50 (ms)", "latency_p50_ms", 3),
    ("latency p99 (ms)", "latency_p99_ms", 3),
    ("client wait mean (ms)", "client_wait_mean_ms", 3),
    ("client wait p50 (ms)", "client_wait_p50_ms", 3),
    ("client wait p99 (ms)", "client_wait_p99_ms", 3),
    ("client wait / mean latency", "client_wait_share", 3),
    ("client CPU (µs/msg)", "client_cpu_us_per_message", 1),
    ("client cores used", "client_cores_used", 2),
    ("server CPU (µs/msg)", "server_cpu_us_per_message", 1),
]


def has_processes(tree: Path | None) -> bool:
    """Whether the client of ``tree`` (None: this checkout) takes ``--processes``."""
    return tree is None or "--processes" in (tree / "chatflow" / "client" / "main.py").read_text()


def client_command(variant: Variant, server: str, messages: int, seed: int, output_dir: str) -> list[str]:
    # A tree (``--client-tree``) from before --processes runs in one process anyway; one
    # that has it runs in as many as this one's variant, not in its own default's.
    processes = ["--processes", str(variant.processes)] if has_processes(variant.tree) else []
    return [sys.executable, "-c", CHILD, variant.levers(), "--server", server, "--quiet", *processes,
            "--output-dir", output_dir, "--seed", str(seed), "--messages", str(messages),
            "--warmup-threads", str(LoadTestConfig.warmup_threads),
            "--warmup-messages", str(warmup_per_thread(messages)), "--threads", str(LoadTestConfig.threads)]


def run_once(variant: Variant, messages: int, seed: int, timeout: float) -> dict:
    """One server process, one client process with the variant's levers: the run's figures."""
    with server_running(*server_command(None, echo=False)) as (server, port):
        with tempfile.TemporaryDirectory(prefix="chatflow-client-wait-") as scratch:
            command = client_command(variant, f"127.0.0.1:{port}", messages, seed, scratch)
            cpu_before = sum(server.cpu_seconds())
            status, output = run_client(command, timeout, cwd=variant.tree or REPO_ROOT)
            cpu_after = sum(server.cpu_seconds())
            if status != 0:
                raise BenchError(f"{variant.name}: the client exited with status {status}{tail(output)}")
            reports = list(Path(scratch).glob("*_report.json"))
            if len(reports) != 1:
                raise BenchError(f"{variant.name}: expected one *_report.json, found {len(reports)}{tail(output)}")
            report = json.loads(reports[0].read_text())
    return figures_of(report, messages, cpu_after - cpu_before)


def figures_of(report: dict, messages: int, server_cpu_s: float) -> dict:
    summary, latency = report["run"]["summary"], report["analysis"]["latency_ms"]
    if summary["successful"] != messages:
        raise BenchError(f"{summary['successful']:,} of {messages:,} messages succeeded")
    wait = report["run"].get("client_wait") or {}
    load = report["run"].get("client_load") or {}
    return {
        "msg_s": summary["overall_throughput_msg_s"],
        "latency_mean_ms": latency["mean"],
        "latency_p50_ms": latency["median"],
        "latency_p99_ms": latency["p99"],
        "client_wait_mean_ms": wait.get("mean_ms"),
        "client_wait_p50_ms": wait.get("p50_ms"),
        "client_wait_p99_ms": wait.get("p99_ms"),
        "client_wait_share": wait.get("share_of_mean_latency"),
        "client_cpu_us_per_message": summary["client_cpu_us_per_message"],
        "client_cores_used": load.get("cores_used"),
        "server_cpu_us_per_message": server_cpu_s / messages * 1e6,
        "load_average_after": os.getloadavg()[0],
    }


def round_order(variants: list[Variant], round_index: int) -> list[Variant]:
    """A B C, then C B A: each variant's runs fall as much early as late in the sitting."""
    return variants if round_index % 2 == 0 else variants[::-1]


def ratios(runs: list[dict], reference: str) -> dict[str, dict[str, float | None]]:
    """Each variant's figures over the reference's of the same round, the median over rounds."""
    by_round: dict[int, dict[str, dict]] = {}
    for run in runs:
        by_round.setdefault(run["round"], {})[run["variant"]] = run["figures"]
    out: dict[str, dict[str, float | None]] = {}
    for variant in dict.fromkeys(run["variant"] for run in runs):
        out[variant] = {}
        for _, figure, _ in FIGURES:
            values = [figures[variant][figure] / figures[reference][figure] for figures in by_round.values()
                      if variant in figures and reference in figures
                      and figures[variant][figure] is not None and figures[reference][figure]]
            out[variant][figure] = round(statistics.median(values), 4) if values else None
    return out


def medians(runs: list[dict]) -> dict[str, dict[str, float | None]]:
    out: dict[str, dict[str, float | None]] = {}
    for variant in dict.fromkeys(run["variant"] for run in runs):
        out[variant] = {}
        for _, figure, _ in FIGURES:
            values = [run["figures"][figure] for run in runs
                      if run["variant"] == variant and run["figures"][figure] is not None]
            out[variant][figure] = statistics.median(values) if values else None
    return out


def console_table(names: list[str], median: dict, ratio: dict) -> list[str]:
    """Median of the rounds for each variant, and in brackets its ratio to the reference."""
    rows = [["figure", *names]]
    for label, figure, digits in FIGURES:
        cells = [label]
        for name in names:
            value, share = median[name][figure], ratio[name][figure]
            cell = "-" if value is None else f"{value:,.{digits}f}"
            if name != names[0] and share is not None:
                cell += f" ({share:.2f}×)"
            cells.append(cell)
        rows.append(cells)
    return text_table(rows)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="python -m bench.client_wait",
                                     description="The client's wait for the GIL and the levers that shorten it: "
                                                 "interleaved variants of client runs against a local server.")
    parser.add_argument("--variants", default=",".join(DEFAULT_VARIANTS),
                        help=f"comma-separated, the first the reference; of {', '.join(VARIANTS)} "
                             "(default %(default)s)")
    parser.add_argument("--messages", type=whole_number(1), default=MESSAGES, help="per run (default %(default)s)")
    parser.add_argument("--rounds", type=whole_number(1), default=ROUNDS, help="rounds (default %(default)s)")
    parser.add_argument("--seed", type=int, default=defaults.SEED, help="the client's --seed (default %(default)s)")
    add_client_bench_options(parser, defaults.END_TO_END_TIMEOUT)
    return parser


def chosen_variants(args: argparse.Namespace) -> list[Variant]:
    names = [name.strip() for name in args.variants.split(",") if name.strip()]
    unknown = [name for name in names if name not in VARIANTS]
    if unknown:
        raise BenchError(f"unknown variant {', '.join(unknown)}; known: {', '.join(VARIANTS)}")
    trees = []
    for tree in args.client_tree:
        if not (tree / "chatflow" / "client" / "main.py").is_file():
            raise BenchError(f"{tree} has no chatflow/client/main.py")
        trees.append(Variant(tree.resolve().name, tree=tree.resolve()))
    return [VARIANTS[name] for name in names] + trees


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    started = datetime.datetime.now(datetime.timezone.utc)
    try:
        variants = chosen_variants(args)
        if not variants:
            raise BenchError("no variant to run")
        runs = []
        for round_index in range(args.rounds):
            for variant in round_order(variants, round_index):
                figures = run_once(variant, args.messages, args.seed, args.timeout)
                runs.append({"round": round_index + 1, "variant": variant.name, "figures": figures})
                print(f"round {round_index + 1}/{args.rounds} {variant.name}: {figures['msg_s']:,.0f} msg/s, "
                      f"p99 {figures['latency_p99_ms']:.2f} ms, client {figures['client_cpu_us_per_message']:.1f} "
                      f"µs/msg, load average {figures['load_average_after']:.1f}", file=sys.stderr, flush=True)
    except BenchError as exc:
        print(f"client_wait: error: {exc}", file=sys.stderr)
        return 1
    names = [variant.name for variant in variants]
    median, ratio = medians(runs), ratios(runs, names[0])
    print(f"Client wait, {args.messages:,} messages × {args.rounds} round(s): median (ratio to {names[0]}'s "
          f"of the same round, median)")
    print("\n".join(console_table(names, median, ratio)))
    report = {
        "benchmark": "client_wait",
        "started_at": started.isoformat(),
        "options": {"variants": names, "messages": args.messages, "rounds": args.rounds, "seed": args.seed},
        "variants": {v.name: {"switch_interval": v.switch_interval, "constants": v.constants,
                              "tree": str(v.tree) if v.tree else None} for v in variants},
        "environment": environment(),
        "runs": runs,
        "medians": median,
        "ratios": ratio,
    }
    print(f"results: {write_results(report, args.output_dir, 'client_wait')}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
