"""``run_client.py`` / ``chatflow-client``: the load test from the command line."""

from __future__ import annotations

import argparse
import dataclasses
import logging
import re
import signal
import sys
from pathlib import Path

from chatflow.arguments import seconds, whole_number
from chatflow.client.config import (LoadTestConfig, MAX_DEFAULT_PROCESSES, MAX_ROOM_MEMBERS, PROGRESS_INTERVAL,
                                    SCENARIOS, add_size_options, default_processes)
from chatflow.client.csv_writer import CsvWriter, MergedCsv
from chatflow.client.figures import Figures, report_figures, summary_figures
from chatflow.client.local_server import LocalServer, LocalServerError
from chatflow.client.progress import ProgressDisplay
from chatflow.client.rate_profile import RateError, RateProfile, parse_rate
from chatflow.client.run import LoadTest
from chatflow.client.summary import (EXIT_FAILED, EXIT_INTERRUPTED, EXIT_OK, EXIT_THRESHOLDS, format_predictions,
                                     outcome, summary_text)
from chatflow.client.summary_file import summary_document, write_summary
from chatflow.client.thresholds import (METRICS, Threshold, ThresholdError, Verdict, evaluate, parse_threshold,
                                        unavailable, verdict_figures)
from chatflow.client.workers import MultiProcessLoadTest
from chatflow.metrics import csv_format, summary_path

PROG = "chatflow-client"

_HOST_PORT = re.compile(r"(?:ws://)?(\[[0-9A-Fa-f:.]+\]|[A-Za-z0-9.-]+):(\d{1,5})/?")

EPILOG = (f"exit status: {EXIT_OK} every message succeeded (and every --threshold held); {EXIT_FAILED} messages "
          f"failed or the server could not be reached (whatever the thresholds); 2 bad options (a malformed "
          f"--threshold too); {EXIT_THRESHOLDS} every message succeeded but a --threshold was crossed; "
          f"{EXIT_INTERRUPTED} interrupted (Ctrl-C)")


def server_url(text: str) -> str:
    """``HOST:PORT`` or ``ws://HOST:PORT`` → ``ws://HOST:PORT`` (the client adds /chat/N)."""
    match = _HOST_PORT.fullmatch(text.strip())
    if match is None:
        raise argparse.ArgumentTypeError(f"expected HOST:PORT or ws://HOST:PORT, got {text!r}")
    host, port = match.group(1), int(match.group(2))
    if not 1 <= port <= 65535:
        raise argparse.ArgumentTypeError(f"port must be 1-65535, got {port}")
    return f"ws://{host}:{port}"


def build_parser() -> argparse.ArgumentParser:
    d = LoadTestConfig  # its fields' defaults
    parser = argparse.ArgumentParser(
        prog=PROG,
        description="ChatFlow load test: warmup and main phases of WebSocket chat messages, "
                    "with retries, per-phase throughput and a Little's Law check.",
        epilog=EPILOG,
    )
    target = parser.add_mutually_exclusive_group(required=True)
    target.add_argument("--server", type=server_url, metavar="HOST:PORT", action="append",
                        help="the chat server (HOST:PORT or ws://HOST:PORT); given more than once, instances "
                             "of one service: each phase's connections are dealt over them in turn")
    target.add_argument("--local", action="store_true",
                        help="start a ChatFlow server on free ports in a separate process, run against it, stop it")
    add_size_options(parser)
    parser.add_argument("--timeout", type=seconds(0, 3600), default=d.timeout,
                        help="seconds to wait for each reply (default %(default)s)")
    parser.add_argument("--max-attempts", type=whole_number(1), default=d.retry.max_attempts,
                        help="attempts per message before it counts failed (default %(default)s)")
    parser.add_argument("--rooms", type=whole_number(1), default=d.rooms,
                        help="each thread picks a room in 1..N (default %(default)s)")
    parser.add_argument("--seed", type=int, default=d.seed, help="seed for a reproducible message mix and rooms")
    parser.add_argument("--probe-messages", type=whole_number(1), default=d.probe_messages,
                        help="round trips measured before the run for Little's Law (default %(default)s)")
    parser.add_argument("--processes", type=whole_number(1), default=default_processes(),
                        help="processes the sender threads are spread over, each with its own generator and CSV "
                             "part (1: all in this process; default: the usable cores, at most "
                             f"{MAX_DEFAULT_PROCESSES}, here %(default)s)")
    parser.add_argument("--scenario", choices=SCENARIOS, default=d.scenario,
                        help="echo: each message answered to its sender (the Java original's run); broadcast: "
                             "each room also has listening members, and what they receive is counted (needs "
                             "run_server.py --mode broadcast; --local starts it so) (default %(default)s)")
    parser.add_argument("--room-members", type=whole_number(1), default=d.room_members, metavar="M",
                        help="broadcast scenario: listening members per room, dealt over every --server "
                             "(default %(default)s)")
    parser.add_argument("--drain-timeout", type=seconds(0, 3600), default=d.fanout_drain, metavar="SECONDS",
                        help="broadcast scenario: after the senders, wait for deliveries until none came for "
                             "this long (default %(default)s)")
    parser.add_argument("--rate", type=rate_profile, metavar="R",
                        help="open loop: R messages per second over the run on a fixed schedule, spread over the "
                             "--threads senders (one message in flight each); no warmup phase; the CSV and the "
                             "summary add each message's intended send time and its response time from it. "
                             "Ramps: FROM:TO:LENGTH (500:5000:60s), stages comma-separated (0:2000:30s,2000:2m); "
                             "the run lasts the stages unless --duration or --messages says otherwise")
    parser.add_argument("--duration", type=seconds(0, 7 * 24 * 3600), metavar="S",
                        help="with --rate: a run of S seconds of schedule (R × S messages), instead of --messages")
    parser.add_argument("--output-dir", type=Path, default=d.output_dir,
                        help="where results are written (default %(default)s)")
    parser.add_argument("--quiet", action="store_true", help="no live progress")
    parser.add_argument("--progress-interval", type=seconds(0, 3600), default=PROGRESS_INTERVAL, metavar="SECONDS",
                        help="seconds between live progress lines when stderr is not a terminal (on a terminal: a "
                             "bar) (default %(default)s)")
    parser.add_argument("--no-analysis", action="store_true",
                        help="write only the metrics CSV and summary.json and print the summary: no statistics, charts or report "
                             "(python -m chatflow.analysis FILE.csv makes them later)")
    parser.add_argument("--threshold", type=threshold_argument, action="append", default=[], metavar="EXPR",
                        help="a pass/fail condition on the run, METRIC OP VALUE, repeatable (e.g. p99<50ms, "
                             "failures==0, failure_rate<0.1%%, throughput>=10000); OP one of < <= > >= == !=; METRIC "
                             f"one of {', '.join(METRICS)} (latencies in ms or s: the response time with --rate); "
                             f"one crossed: exit status {EXIT_THRESHOLDS}")
    # The command line as given, for summary.json: main's argv (None: this process's).
    parser.set_defaults(command=None)
    return parser


def threshold_argument(text: str) -> Threshold:
    """``--threshold``: a malformed expression is argparse's one-line error."""
    try:
        return parse_threshold(text)
    except ThresholdError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from None


def rate_profile(text: str) -> RateProfile:
    """``--rate``: a rate, or a ramp's stages (chatflow.client.rate_profile)."""
    try:
        return parse_rate(text)
    except RateError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from None


def check_open_loop(parser: argparse.ArgumentParser, args: argparse.Namespace) -> None:
    """``--rate`` and ``--duration`` against the other options; ``args.messages`` filled in
    (left None by the parse when not given, so that --duration can tell)."""
    if args.duration is not None:
        if args.rate is None:
            parser.error("argument --duration: needs --rate (a closed-loop run's size is --messages)")
        if args.messages is not None:
            parser.error("argument --duration: not allowed with --messages (give one of them)")
        args.messages = max(1, round(args.rate.count_by(args.duration)))
    elif args.messages is None:
        args.messages = args.rate.messages if args.rate is not None and args.rate.ramps else LoadTestConfig.messages
    if args.rate is not None and args.scenario == "broadcast":
        parser.error("argument --rate: the broadcast scenario runs closed-loop only")
    if args.rate is not None and args.processes > 1:
        # One process, one clock for the schedule (docs/client.md#open-loop---rate).
        print(f"Note: an open-loop run (--rate) runs in one process (not {args.processes})", flush=True)
        args.processes = 1


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    # messages=None: a namespace's attribute is not overwritten by the default, so an
    # absent --messages stays None until check_open_loop fills it in.
    args = parser.parse_args(argv, argparse.Namespace(messages=None))
    if args.room_members > MAX_ROOM_MEMBERS:
        parser.error(f"argument --room-members: at most {MAX_ROOM_MEMBERS}, not {args.room_members}")
    for threshold in args.threshold:
        if (error := unavailable(threshold, args.scenario)) is not None:
            parser.error(f"argument --threshold: {error}")
    args.command = None if argv is None else [PROG, *argv]
    check_open_loop(parser, args)
    logging.basicConfig(level=logging.WARNING, format="%(levelname)s %(name)s: %(message)s")
    if args.scenario == "broadcast" and args.processes > 1:
        # A delivery is paired with its send in the process that sent it (docs/client.md#the-broadcast-scenario).
        print(f"Note: the broadcast scenario runs in one process (not {args.processes}): its members' deliveries "
              "are paired with the sends of the same process", flush=True)
        args.processes = 1
    form = csv_format(args.scenario == "broadcast", args.rate is not None)
    try:
        args.output_dir.mkdir(parents=True, exist_ok=True)
        writer = CsvWriter(args.output_dir, form=form) if args.processes == 1 else MergedCsv(args.output_dir, form)
    except OSError as exc:
        print(f"{PROG}: error: cannot write results to {args.output_dir}: {exc.strerror or exc}", file=sys.stderr)
        return EXIT_FAILED
    try:
        if not args.local:
            return run(args, args.server[0], None, writer)
        mode = ("--mode", "broadcast") if args.scenario == "broadcast" else ()
        with LocalServer(args.output_dir / "server.log", mode) as server:
            print(f"Started a local ChatFlow server at {server.url} (pid {server.pid})", flush=True)
            return run(args, server.url, server.pid, writer)
    except LocalServerError as exc:
        print(f"{PROG}: error: {exc}", file=sys.stderr)
        return EXIT_FAILED
    except KeyboardInterrupt:
        # Outside the run itself: while the local server starts or stops.
        print("\nInterrupted.", file=sys.stderr)
        return EXIT_INTERRUPTED


def load_test_config(args: argparse.Namespace, url: str) -> LoadTestConfig:
    """The run the options ask for, against ``url`` (and the other ``--server``s given)."""
    profile = args.rate
    return LoadTestConfig(
        base_url=url, more_servers=tuple(args.server[1:]) if args.server else (), messages=args.messages,
        warmup_threads=args.warmup_threads, warmup_messages=args.warmup_messages, threads=args.threads,
        timeout=args.timeout,
        retry=dataclasses.replace(LoadTestConfig.retry, max_attempts=args.max_attempts), rooms=args.rooms,
        seed=args.seed, probe_messages=args.probe_messages, output_dir=args.output_dir,
        scenario=args.scenario, room_members=args.room_members, fanout_drain=args.drain_timeout,
        rate=None if profile is None else profile.mean_rate(args.messages),
        rate_profile=profile if profile is not None and profile.ramps else None,
    )


def run(args: argparse.Namespace, url: str, server_pid: int | None, writer: CsvWriter | MergedCsv) -> int:
    config = load_test_config(args, url)
    if isinstance(writer, MergedCsv):
        test: LoadTest = MultiProcessLoadTest(config, args.processes, writer, server_pid=server_pid)
    else:
        writer.start()
        if config.open_loop:
            test = LoadTest(config, server_pid=server_pid, rate_rows=writer.record_row)
        elif config.broadcast:
            test = LoadTest(config, recorder=writer.record_without_fanout, server_pid=server_pid,
                            fanout_rows=writer.record_row)
        else:
            test = LoadTest(config, recorder=writer.record, server_pid=server_pid)
    progress = ProgressDisplay(config.messages, test.snapshot, interval=args.progress_interval)

    def probed(round_trip_s, predictions) -> None:
        print(format_predictions(round_trip_s, predictions, config.open_loop), flush=True)
        if not args.quiet:
            progress.start()

    def interrupt(*_) -> None:
        if not test.stop.is_set():
            print("\nInterrupted: stopping the senders…", file=sys.stderr, flush=True)
        test.stop.set()

    previous = signal.signal(signal.SIGINT, interrupt)
    processes = f" from {test.processes} processes" if test.processes > 1 else ""
    print(f"ChatFlow load test against {url}: {config.messages:,} messages{processes}", flush=True)
    try:
        result = test.run(on_probe=probed)
    finally:
        progress.stop()
        writer.close()
        signal.signal(signal.SIGINT, previous)
    figures = summary_figures(result)
    verdicts = [evaluate(threshold, figures) for threshold in args.threshold]
    ended = outcome(figures, verdicts)
    print(summary_text(figures, verdicts))
    if writer.error:
        print(f"Warning: the metrics file is incomplete: {writer.error}")
    print(f"\nMetrics: {writer.path} ({writer.rows_written:,} rows)")
    path = summary_path(writer.path)
    try:
        write_summary(path, summary_document(figures, argv=args.command or sys.argv, config=config, verdicts=verdicts,
                                             outcome=ended, metrics_csv=writer.path, metrics_rows=writer.rows_written,
                                             metrics_error=writer.error))
        print(f"Summary: {path}")
    except OSError as exc:
        print(f"Warning: no summary file: cannot write {path}: {exc.strerror or exc}")
    if not args.no_analysis:
        analyse(writer, figures, verdicts, config.output_dir)
    print(ended.reason)
    return ended.status


def analyse(writer: CsvWriter | MergedCsv, figures: Figures, verdicts: list[Verdict], directory: Path) -> None:
    """Statistics, charts and the report of the run, from its metrics file.

    Imported here, after the run, so that pandas and matplotlib cost the load test
    neither start-up time nor memory while it measures; and matplotlib only once the
    metrics table is read and gone, so that the two never add up (docs/performance.md).
    """
    from chatflow.analysis.performance_analyzer import AnalysisError, PerformanceAnalyzer

    try:
        analysis = PerformanceAnalyzer().analyze(writer.path)
        from chatflow.analysis.cli import statistics_table, write_outputs
        from chatflow.analysis.summary_file import thresholds_of

        print(statistics_table(analysis))
        written = write_outputs(analysis, directory, writer.path.stem, run=report_figures(figures),
                                thresholds=thresholds_of([verdict_figures(v) for v in verdicts]))
    except (AnalysisError, OSError) as exc:
        print(f"Warning: no analysis of the metrics: {exc}")
        return
    print("Files written:")
    for path in written:
        print(f"  {path}")


if __name__ == "__main__":
    sys.exit(main())
