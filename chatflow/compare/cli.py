"""``chatflow-compare`` / ``python -m chatflow.compare``: the four pairings of ChatFlow and
another implementation, run in one sitting, written to comparison.json, then reported."""

from __future__ import annotations

import argparse
import contextlib
import datetime
import json
import shlex
import signal
import sys
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from chatflow.arguments import milliseconds, whole_number
from chatflow.client.config import add_size_options
from chatflow.compare import aggregate, machine, pairings, report
from chatflow.compare.commands import (PLACEHOLDERS, CommandError, CommandTemplate, java_templates,
                                       python_client_template)
from chatflow.compare.pairings import PairingError
from chatflow.compare.runner import Experiment, PairingRunner, Sides
from chatflow.server.process import local_server_command

PROG = "chatflow-compare"
EXIT_OK, EXIT_FAILED, EXIT_USAGE, EXIT_INTERRUPTED = 0, 1, 2, 130
SCHEMA = 1
JSON_NAME = "comparison.json"
OTHER_NAME, JAVA_NAME = "Other", "Java"
#: What ends a sitting as Ctrl-C does: a ``kill``, a closed terminal.
STOP_SIGNALS = (signal.SIGTERM, signal.SIGHUP)
#: Options that ``--report`` may be given with; every other one belongs to a sitting.
REPORT_OPTIONS = ("report", "output_dir")
#: What a saved comparison.json that is not complete makes the report raise.
INCOMPLETE = (KeyError, IndexError, TypeError, ValueError, AttributeError)
#: Milliseconds of delay a proxy may add, at most.
MAX_DELAY_MS = 10_000.0


def template(text: str) -> CommandTemplate:
    try:
        return CommandTemplate(text)
    except CommandError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from None


def build_parser() -> argparse.ArgumentParser:
    placeholders = ", ".join(f"{{{name}}} ({meaning})" for name, meaning in PLACEHOLDERS.items())
    parser = argparse.ArgumentParser(
        prog=PROG,
        description="Run ChatFlow's client and server against another implementation's: the four pairings "
                    "{Python, other} client × {Python, other} server, for several rounds in ABBA order, "
                    "each measured the same way; then comparison.json and the report.",
        epilog=f"Placeholders in the other's commands: {placeholders}. Exit status: 0 if every run was ok, "
               "1 if any failed (each failure is one line; the other runs still run), 2 for a usage error.",
    )
    other = parser.add_argument_group("the other implementation")
    other.add_argument("--java", type=Path, metavar="DIR",
                       help="the Java original built in DIR (its run_server.sh and run_client.sh)")
    other.add_argument("--other-server", type=template, metavar="CMD",
                       help="the other's server command, with {port} and {health_port}")
    other.add_argument("--other-client", type=template, metavar="CMD",
                       help="the other's client command, with {url} (it must write a metrics CSV under its "
                            "working directory)")
    other.add_argument("--other-name", metavar="NAME",
                       help=f"the other's name in labels (default {JAVA_NAME} with --java, else {OTHER_NAME})")
    add_size_options(parser, "each run (the client's options)")
    sitting = parser.add_argument_group("the sitting")
    sitting.add_argument("--rounds", type=whole_number(1), default=3, help="rounds of every pairing (default %(default)s)")
    sitting.add_argument("--only", metavar="CODES",
                         help="run these pairings only, e.g. pp,jp: client then server, p for Python, o (or the "
                              "other's initial) for the other")
    sitting.add_argument("--rtt-ms", type=milliseconds(MAX_DELAY_MS), default=0.0, metavar="MS",
                         help="round-trip delay added by a proxy in front of every server (default 0: none)")
    sitting.add_argument("--jitter-ms", type=milliseconds(MAX_DELAY_MS), default=0.0, metavar="MS",
                         help="the proxy's jitter, seeded and never reordering (default 0)")
    sitting.add_argument("--seed", type=int, default=None, help="the proxy's jitter seed")
    sitting.add_argument("--output-dir", type=Path, default=None,
                         help="where runs, comparison.json and the report go (default results/comparison-TIME)")
    parser.add_argument("--report", type=Path, metavar="FILE.json",
                        help="render the report from a saved comparison.json (into --output-dir, else its "
                             "folder) and run nothing")
    return parser


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    try:
        with stop_signals_interrupt():
            return run(parser, args)
    except KeyboardInterrupt:
        print(f"\n{PROG}: interrupted", file=sys.stderr)
        return EXIT_INTERRUPTED


@contextlib.contextmanager
def stop_signals_interrupt() -> Iterator[None]:
    """``STOP_SIGNALS`` raise KeyboardInterrupt, as Ctrl-C does, so that the same cleanup
    runs: the run's server and client stopped, the JSON kept. One that is ignored (nohup)
    stays ignored."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return

    def interrupt(signum: int, frame: object) -> None:
        raise KeyboardInterrupt

    previous = {signum: signal.getsignal(signum) for signum in STOP_SIGNALS}
    for signum, handler in previous.items():
        if handler is not signal.SIG_IGN:
            signal.signal(signum, interrupt)
    try:
        yield
    finally:
        for signum, handler in previous.items():
            signal.signal(signum, handler)


def run(parser: argparse.ArgumentParser, args: argparse.Namespace) -> int:
    """The sitting the options ask for, or ``--report``'s rendering."""
    if args.report is not None:
        given = [f"--{name.replace('_', '-')}" for name, value in vars(args).items()
                 if name not in REPORT_OPTIONS and value != parser.get_default(name)]
        if given:
            parser.error(f"--report renders a saved sitting and runs nothing: {', '.join(given)} "
                         "cannot go with it")
        return rerender(args.report, args.output_dir)
    try:
        sides, other_version = resolve_sides(args)
        codes = pairings.parse_only(args.only, sides.other_name) if args.only else list(pairings.CODES)
    except (CommandError, PairingError) as exc:
        parser.error(str(exc))
    output_dir = args.output_dir or Path("results") / f"comparison-{now():%Y%m%d-%H%M%S}"
    runs_dir = output_dir / "runs"
    if runs_dir.is_dir() and any(runs_dir.iterdir()):
        parser.error(f"{output_dir} already holds a comparison's runs; choose another --output-dir")
    try:
        runs_dir.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        print(f"{PROG}: error: cannot write to {output_dir}: {exc.strerror or exc}", file=sys.stderr)
        return EXIT_FAILED
    experiment = Experiment(messages=args.messages, warmup_threads=args.warmup_threads,
                            warmup_messages=args.warmup_messages, threads=args.threads, rtt_ms=args.rtt_ms,
                            jitter_ms=args.jitter_ms, seed=args.seed)
    data = skeleton(args, experiment, sides, codes, other_version)
    return sitting(data, PairingRunner(experiment, sides, output_dir), output_dir)


def now() -> datetime.datetime:
    return datetime.datetime.now(datetime.timezone.utc)


def resolve_sides(args: argparse.Namespace) -> tuple[Sides, str | None]:
    """The commands of both sides, and the other's version when the tool can tell it."""
    if args.java is not None:
        if args.other_server is not None or args.other_client is not None:
            raise CommandError("--java fills both of the other's commands: give it, or --other-server and "
                               "--other-client, not both")
        server, client = java_templates(args.java)
        return Sides(args.other_name or JAVA_NAME, server, client, python_client_template()), machine.java_version()
    if args.other_server is None or args.other_client is None:
        raise CommandError("give --java DIR, or both --other-server CMD and --other-client CMD")
    return Sides(args.other_name or OTHER_NAME, args.other_server, args.other_client, python_client_template()), None


def skeleton(args: argparse.Namespace, experiment: Experiment, sides: Sides, codes: list[str],
             other_version: str | None) -> dict[str, Any]:
    """comparison.json before its runs (docs/comparison-tool.md has its keys)."""
    names = {"python": pairings.PYTHON_NAME, "other": sides.other_name}
    return {
        "schema": SCHEMA,
        "created": now().strftime("%Y-%m-%dT%H:%M:%SZ"),
        "machine": machine.machine(),
        "versions": machine.versions(other_version),
        "settings": {"messages": experiment.messages, "warmup_threads": experiment.warmup_threads,
                     "warmup_messages": experiment.warmup_messages, "threads": experiment.threads,
                     "rounds": args.rounds, "rtt_ms": experiment.rtt_ms, "jitter_ms": experiment.jitter_ms,
                     "seed": experiment.seed, "only": codes},
        "names": names,
        "codes": pairings.codes_table(names),
        "commands": {"python_server": shlex.join(local_server_command()), "python_client": sides.python_client.text,
                     "other_server": sides.other_server.text, "other_client": sides.other_client.text},
        "order": [code for code, _ in pairings.abba_order(codes, args.rounds)],
        "runs": [],
        "pairings": {},
        "ratios": {},
    }


def sitting(data: dict[str, Any], runner: PairingRunner, output_dir: Path) -> int:
    """Every run in order, the JSON rewritten after each (an interrupted sitting keeps what
    it measured), then the report."""
    order = pairings.abba_order(data["settings"]["only"], data["settings"]["rounds"])
    path = output_dir / JSON_NAME
    try:
        if not save(data, path):
            return EXIT_FAILED
        for index, (code, round_number) in enumerate(order, 1):
            entry = runner.run(code, round_number, index)
            data["runs"].append(entry)
            print(progress_line(entry, len(order), data["codes"][code]["label"]), flush=True)
            summarise(data)
            if not save(data, path):
                return EXIT_FAILED
    except KeyboardInterrupt:
        print(f"\n{PROG}: interrupted after {len(data['runs'])} of {len(order)} runs; {path} holds them",
              file=sys.stderr)
        return EXIT_INTERRUPTED
    if not render(data, output_dir, [output_dir / JSON_NAME]):
        return EXIT_FAILED
    return EXIT_OK if all(run["ok"] for run in data["runs"]) else EXIT_FAILED


def summarise(data: dict[str, Any]) -> None:
    data["pairings"] = aggregate.pairings(data["runs"], data["settings"]["only"])
    data["ratios"] = aggregate.ratios(data["runs"])


def save(data: dict[str, Any], path: Path) -> bool:
    """``write_json``; False (and one line) if it could not be written."""
    try:
        write_json(data, path)
    except OSError as exc:
        print(f"{PROG}: error: cannot write {exc.filename or path}: {exc.strerror or exc}", file=sys.stderr)
        return False
    return True


def write_json(data: dict[str, Any], path: Path) -> None:
    text = json.dumps(data, indent=1, ensure_ascii=False, allow_nan=False)
    temporary = path.with_suffix(".json.tmp")
    temporary.write_text(text + "\n")
    temporary.replace(path)


def progress_line(entry: dict[str, Any], total: int, label: str) -> str:
    """One run, as it ends: its main figures, or why it failed."""
    head = f"[{entry['index']}/{total}] {entry['code']} round {entry['round']}, {label}:"
    if not entry["ok"]:
        return f"{head} FAILED: {entry['error']}"
    f = entry["figures"]
    return (f"{head} {f['msg_s']:,.0f} msg/s, p99 {f['latency_ms']['p99']:.1f} ms, "
            f"server {f['server_cpu_us_per_msg']:.1f} µs/msg, client {f['client_cpu_us_per_msg']:.1f} µs/msg, "
            f"{f['success']:,}/{f['messages']:,} ok")


def render(data: dict[str, Any], directory: Path, written: list[Path]) -> bool:
    """The report's files and the console table; False (and one line) if they could not be written."""
    try:
        directory.mkdir(parents=True, exist_ok=True)
        written = [*written, *report.write_reports(data, directory)]
    except OSError as exc:
        print(f"{PROG}: error: cannot write the report: {exc.strerror or exc}", file=sys.stderr)
        return False
    print()
    print(report.console(data))
    print("\nFiles written:")
    for path in written:
        print(f"  {path}")
    return True


def rerender(path: Path, output_dir: Path | None) -> int:
    """``--report``: the report from a saved comparison.json."""
    try:
        data = json.loads(path.read_text())
    except OSError as exc:
        print(f"{PROG}: error: cannot read {path}: {exc.strerror or exc}", file=sys.stderr)
        return EXIT_FAILED
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        print(f"{PROG}: error: {path} is not JSON: {exc}", file=sys.stderr)
        return EXIT_FAILED
    if not isinstance(data, dict) or data.get("schema") != SCHEMA:
        print(f"{PROG}: error: {path} is not a comparison.json of schema {SCHEMA}", file=sys.stderr)
        return EXIT_FAILED
    try:
        return EXIT_OK if render(data, output_dir or path.parent, []) else EXIT_FAILED
    except INCOMPLETE as exc:
        what = f"no {exc}" if isinstance(exc, KeyError) else f"{type(exc).__name__}: {exc}"
        print(f"{PROG}: error: {path} is not a complete comparison.json ({what})", file=sys.stderr)
        return EXIT_FAILED
