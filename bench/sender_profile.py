"""The per-message path of one sender: what it costs, and where the cost goes.

``python -m bench.sender_profile`` starts a ChatFlow server process on 127.0.0.1 and, in
a client process of its own, runs one ``MessageSender`` (its ``RetryingConnection``,
websocket-client underneath, the ``CsvWriter`` as its recorder) over messages the
``MessageGenerator`` made beforehand, so that only the sender's path and the writer run
while it measures. One thread: no other sender contends for the GIL, so the figures are
the path's own cost (docs/client.md#the-senders-per-message-path).

Each run reports the client process's CPU per message (the sender's thread and the
writer's) and the sender thread's own; ``--profile`` runs it under cProfile instead and
prints each function's own time per message (cProfile's overhead inflates the small
calls; compare rows within one profile). ``--client-tree DIR`` also runs the client of
another checkout, interleaved (A B B A). Results go to bench/results/sender_profile_<timestamp>.json.
"""

from __future__ import annotations

import argparse
import datetime
import json
import statistics
import subprocess
import sys
from pathlib import Path

from bench import defaults
from bench.doc import text_table
from bench.results import REPO_ROOT, add_client_bench_options, environment, write_results
from bench.server_bench import BenchError, server_command, server_running
from chatflow.arguments import whole_number

#: The client process: only APIs every recent tree has, so that an older checkout runs it too.
CHILD = """
import cProfile, json, pstats, queue, sys, tempfile, threading, time
from pathlib import Path
from chatflow.client.config import LoadTestConfig
from chatflow.client.csv_writer import CsvWriter
from chatflow.client.message_generator import MessageGenerator
from chatflow.client.message_sender import MessageSender

url, messages, warmup, profile = sys.argv[1], int(sys.argv[2]), int(sys.argv[3]), sys.argv[4] == "1"
config = LoadTestConfig(url)
stop = threading.Event()
made = queue.SimpleQueue()
generator = MessageGenerator(messages + warmup, made, stop, rooms=1, seed=42, capacity=messages + warmup)
generator.start()
generator.join()
with tempfile.TemporaryDirectory() as scratch:
    writer = CsvWriter(Path(scratch))
    writer.start()
    def sender(quota):
        return MessageSender(config.room_url(1), 1, made, quota, stop, timeout=config.timeout,
                             retry=config.retry, recorder=writer.record)
    sender(warmup).run()
    measured = sender(messages)
    profiler = cProfile.Profile(time.thread_time) if profile else None
    cpu, thread_cpu, wall = time.process_time(), time.thread_time(), time.perf_counter()
    if profiler:
        profiler.enable()
    stats = measured.run()
    if profiler:
        profiler.disable()
    thread_cpu, wall = time.thread_time() - thread_cpu, time.perf_counter() - wall
    writer.close()
    cpu = time.process_time() - cpu
rows = []
if profiler:
    for (path, line, name), (calls, _, own, cumulative, _) in pstats.Stats(profiler).stats.items():
        rows.append({"function": f"{Path(path).name}:{line}({name})" if line else name, "calls": calls,
                     "own_s": own, "cumulative_s": cumulative})
print(json.dumps({"success": stats.success, "cpu_s": cpu, "thread_cpu_s": thread_cpu, "wall_s": wall,
                  "profile": rows}))
"""

MESSAGES = 50_000
WARMUP = 2_000
ROUNDS = 2
#: Profile rows printed: the dearest functions by their own time.
PROFILE_ROWS = 30


def run_once(tree: Path, messages: int, warmup: int, profile: bool, timeout: float) -> dict:
    """One server process, one client process: the sender's figures, per message."""
    with server_running(*server_command(None, echo=False)) as (_, port):
        command = [sys.executable, "-c", CHILD, f"ws://127.0.0.1:{port}", str(messages), str(warmup),
                   "1" if profile else "0"]
        try:
            done = subprocess.run(command, cwd=tree, capture_output=True, text=True, timeout=timeout)
        except subprocess.TimeoutExpired:
            raise BenchError(f"the client did not finish within {timeout:g} s") from None
    if done.returncode != 0:
        raise BenchError(f"the client exited with status {done.returncode}: {done.stderr.strip()[-2000:]}")
    result = json.loads(done.stdout.splitlines()[-1])
    if result["success"] != messages:
        raise BenchError(f"{result['success']:,} of {messages:,} messages succeeded")
    per_message = 1e6 / messages
    return {
        "cpu_us_per_message": result["cpu_s"] * per_message,
        "sender_thread_cpu_us_per_message": result["thread_cpu_s"] * per_message,
        "wall_us_per_message": result["wall_s"] * per_message,
        "profile": sorted(({**row, "own_us_per_message": row["own_s"] * per_message,
                            "cumulative_us_per_message": row["cumulative_s"] * per_message,
                            "calls_per_message": row["calls"] / messages} for row in result["profile"]),
                          key=lambda row: -row["own_s"]),
    }


FIGURES = [("client CPU (µs/msg)", "cpu_us_per_message"),
           ("sender thread CPU (µs/msg)", "sender_thread_cpu_us_per_message"),
           ("wall (µs/msg)", "wall_us_per_message")]


def profile_table(profile: list[dict]) -> list[str]:
    rows = [["function", "calls/msg", "own µs/msg", "cumulative µs/msg"]]
    rows += [[row["function"], f"{row['calls_per_message']:.2f}", f"{row['own_us_per_message']:.2f}",
              f"{row['cumulative_us_per_message']:.2f}"] for row in profile[:PROFILE_ROWS]]
    return text_table(rows)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="python -m bench.sender_profile",
                                     description="One sender's per-message path against a local server: "
                                                 "CPU per message, or a cProfile of it.")
    parser.add_argument("--messages", type=whole_number(1), default=MESSAGES, help="measured (default %(default)s)")
    parser.add_argument("--warmup", type=whole_number(1), default=WARMUP, help="before them (default %(default)s)")
    parser.add_argument("--rounds", type=whole_number(1), default=ROUNDS, help="rounds (default %(default)s)")
    parser.add_argument("--profile", action="store_true", help="under cProfile, one run per tree")
    add_client_bench_options(parser, defaults.RUN_TIMEOUT)
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    started = datetime.datetime.now(datetime.timezone.utc)
    trees = {"this tree": REPO_ROOT, **{tree.resolve().name: tree.resolve() for tree in args.client_tree}}
    names = list(trees)
    runs = []
    try:
        for round_index in range(1 if args.profile else args.rounds):
            for name in names if round_index % 2 == 0 else names[::-1]:
                figures = run_once(trees[name], args.messages, args.warmup, args.profile, args.timeout)
                runs.append({"round": round_index + 1, "tree": name, "figures": figures})
                print(f"round {round_index + 1} {name}: {figures['cpu_us_per_message']:.1f} µs/msg client CPU",
                      file=sys.stderr, flush=True)
    except BenchError as exc:
        print(f"sender_profile: error: {exc}", file=sys.stderr)
        return 1
    medians = {name: {key: statistics.median(run["figures"][key] for run in runs if run["tree"] == name)
                      for _, key in FIGURES} for name in names}
    rows = [["figure", *names]]
    rows += [[label, *(f"{medians[name][key]:.1f}" for name in names)] for label, key in FIGURES]
    print(f"One sender, {args.messages:,} messages{' under cProfile' if args.profile else ''}: "
          f"median of {1 if args.profile else args.rounds} round(s)")
    print("\n".join(text_table(rows)))
    if args.profile:
        for run in runs:
            print(f"\n{run['tree']}: own time per message, dearest first")
            print("\n".join(profile_table(run["figures"]["profile"])))
    report = {"benchmark": "sender_profile", "started_at": started.isoformat(),
              "options": {"messages": args.messages, "warmup": args.warmup, "rounds": args.rounds,
                          "profile": args.profile, "trees": names},
              "environment": environment(), "runs": runs, "medians": medians}
    print(f"results: {write_results(report, args.output_dir, 'sender_profile')}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
