"""Regenerate docs/comparison.md: ChatFlow against the Java original, the four pairings, on
loopback and through ``chatflow.wan`` at the seed's 34 ms, in one sitting.

Runs ``python -m chatflow.compare --java DIR`` once per network regime. The default
experiment (500,000 messages, 3 interleaved rounds) keeps each regime's report under
docs/measurements/comparison/ (comparison.json, .md, .html and the charts; not the
per-message CSVs) and writes docs/comparison.md from the JSON files; any other keeps its
whole sittings under bench/results/comparison-TIME/, and ``--doc PAGE`` links there. The
Java original is the one built by ``../shared/tools/java-original`` (its README); DIR
defaults to where its ``build.sh`` puts it.

    python -m bench.comparison [--java DIR] [--rounds 3] [--messages 500000] [--rtt-ms 34] [--doc PAGE]
    python -m bench.comparison --loopback-only  # a new loopback sitting; the delayed one kept as saved
    python -m bench.comparison --from-results   # the reports and the page again, from the saved JSON files
"""

from __future__ import annotations

import argparse
import datetime
import json
import os
import shutil
import subprocess
import sys
import tempfile
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from bench import doc
from bench.results import REPO_ROOT, RESULTS_DIR
from chatflow.client.config import LoadTestConfig
from chatflow.compare import document, finding, markdown, report

COMMAND = "python -m bench.comparison"
PAGE = REPO_ROOT / "docs" / "comparison.md"
FOLDER = doc.MEASUREMENTS / "comparison"
#: The seed's laptop → EC2 round trip (SPEC §4).
SEED_RTT_MS = 34.0
ROUNDS = 3
#: Where ``../shared/tools/java-original/build.sh`` builds the Java original unless told.
JAVA_DEFAULT = Path(os.environ.get("JAVA_ORIGINAL", "~/.cache/chatflow-java-original")).expanduser()
#: The files of a regime's report kept in docs/ (the runs' folders, with their CSVs, are not).
KEPT = ("comparison.json", "comparison.md", "comparison.html", "*.png")


def regime_name(rtt_ms: float) -> str:
    return "loopback" if not rtt_ms else f"rtt-{rtt_ms:g}ms"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog=COMMAND, description=__doc__.splitlines()[0])
    parser.add_argument("--java", type=Path, default=JAVA_DEFAULT, metavar="DIR",
                        help="the built Java original (default $JAVA_ORIGINAL or build.sh's folder)")
    parser.add_argument("--rounds", type=int, default=ROUNDS)
    parser.add_argument("--messages", type=int, default=LoadTestConfig.messages)
    parser.add_argument("--rtt-ms", type=float, default=SEED_RTT_MS, help="the delayed regime's round trip")
    parser.add_argument("--from-results", action="store_true",
                        help="render each regime's report and the page again from "
                             "docs/measurements/comparison/*/comparison.json")
    parser.add_argument("--loopback-only", action="store_true",
                        help="run the loopback sitting only; the page keeps the delayed regime's saved sitting, "
                             "each section dated")
    parser.add_argument("--doc", type=Path, default=None,
                        help="write the summary page here (default docs/comparison.md, for the default run only)")
    args = parser.parse_args(argv)

    regimes = [0.0] if args.loopback_only else [0.0, args.rtt_ms]
    default_run = args.rounds == ROUNDS and args.messages == LoadTestConfig.messages
    if args.from_results:
        reports, sittings = FOLDER, []
        for rtt in regimes:
            data = load(FOLDER / regime_name(rtt) / "comparison.json")
            report.write_reports(data, FOLDER / regime_name(rtt))
            sittings.append(data)
    else:
        if not (args.java / "run_server.sh").is_file():
            parser.error(f"no built Java original in {args.java} (see ../shared/tools/java-original/README.md)")
        if default_run:  # its runs' CSVs are large: kept only until the published report is made
            reports = FOLDER
            with tempfile.TemporaryDirectory(prefix="chatflow-comparison-") as scratch:
                sittings = run_sittings(args.java, regimes, args, Path(scratch), publish=True)
        else:
            reports = RESULTS_DIR / f"comparison-{datetime.datetime.now():%Y%m%d-%H%M%S}"
            sittings = run_sittings(args.java, regimes, args, reports, publish=False)
        if isinstance(sittings, int):
            return sittings
        if args.loopback_only and default_run:
            sittings.append(load(FOLDER / regime_name(args.rtt_ms) / "comparison.json"))
    page = args.doc or (PAGE if default_run or args.from_results else None)
    if page is not None:
        print(f"wrote {doc.shown(doc.write_page(page, summary_page(sittings, reports, page.parent)))}")
    elif not default_run:
        print(f"the sittings are in {reports}")
    return 0 if all(run["ok"] for data in sittings for run in data["runs"]) else 1


def run_sittings(java: Path, regimes: Sequence[float], args: argparse.Namespace, root: Path,
                 publish: bool) -> list[dict[str, Any]] | int:
    """One sitting per regime, each in ``root/REGIME``, and with ``publish`` kept as published
    under docs/; the tool's exit status instead if one wrote no comparison.json to go on with."""
    sittings = []
    for rtt in regimes:
        out = root / regime_name(rtt)
        command = [sys.executable, "-m", "chatflow.compare", "--java", str(java), "--rounds", str(args.rounds),
                   "--messages", str(args.messages), "--output-dir", str(out)]
        if rtt:
            command += ["--rtt-ms", f"{rtt:g}"]
        print("$ python", " ".join(command[1:]), flush=True)
        status = subprocess.run(command, cwd=REPO_ROOT, check=False).returncode
        if status not in (0, 1) or not (out / "comparison.json").is_file():
            print(f"{COMMAND}: error: the {regime_name(rtt)} sitting ended with status {status}; "
                  "no page written", file=sys.stderr)
            return status or 1
        data = public(load(out / "comparison.json"), java, root)
        sittings.append(data)
        if publish:
            keep(data, out, FOLDER / regime_name(rtt))
    return sittings


def load(path: Path) -> dict[str, Any]:
    return json.loads(path.read_text(encoding="utf-8"))


def public(data: dict[str, Any], java: Path, scratch: Path) -> dict[str, Any]:
    """The sitting as it may be published: this machine's folders and host name left out."""
    text = json.dumps(data)
    for path, name in ((java, "$JAVA_ORIGINAL"), (scratch, "."), (Path(sys.executable), "python"),
                       (Path.home(), "~")):
        text = text.replace(json.dumps(str(path))[1:-1], name)
    data = json.loads(text)
    data.get("machine", {}).pop("hostname", None)
    return data


def keep(data: Mapping[str, Any], out: Path, folder: Path) -> None:
    """The regime's JSON as published, and its report re-rendered from it, in ``folder``."""
    if folder.exists():
        shutil.rmtree(folder)
    folder.mkdir(parents=True)
    (folder / "comparison.json").write_text(json.dumps(data, indent=1) + "\n", encoding="utf-8")
    report.write_reports(data, folder)


def summary_page(sittings: Sequence[Mapping[str, Any]], reports: Path, page_dir: Path) -> list[str]:
    """The page, linking each regime's report under ``reports`` relative to ``page_dir``."""
    first = sittings[0]
    settings = first["settings"]
    lines = doc.header(
        "ChatFlow against the Java original: the four pairings",
        COMMAND,
        "How the tool measures: [comparison-tool.md](comparison-tool.md); the delay proxy: "
        "[wan.md](wan.md). These figures supersede SPEC §4's.")
    lines += [
        f"{settings['messages']:,} messages a run ({settings['warmup_threads']} × {settings['warmup_messages']:,} "
        f"warmup, then {settings['threads']} threads), {settings['rounds']} rounds of every pairing in ABBA "
        f"order, {sitting_words(sittings)}. Medians over the "
        "rounds, min–max below each. msg/s = successful rows ÷ span of send timestamps in each client's "
        "CSV; server CPU from /proc of its process tree during the client's run; client CPU from wait4 "
        "(as /usr/bin/time), client peak RSS the largest sum over its process tree (a Python client of "
        "several processes is charged for all); the Python client runs with `--no-analysis`, so neither "
        "client's figures include charts.", ""]
    for data in sittings:
        name = regime_name(data["settings"].get("rtt_ms") or 0)
        there = Path(os.path.relpath(reports / name, page_dir)).as_posix()
        lines += [f"## {document.regime(data['settings']).capitalize()}", ""]
        if len(sittings) > 1 and not one_sitting(sittings):
            lines += [f"Sitting of {data.get('created', '?')}, {machine_line(data)}.", ""]
        lines += [f"**Finding.** {finding.finding_of(data)}", ""]
        lines += markdown.markdown_table(document.pairing_table(data))
        note = document.whole_ms_note(data)
        if note:
            lines += [note, ""]
        lines += markdown.markdown_table(document.ratio_table(data))
        failed = document.failures(data)
        if failed:
            lines += ["Failed runs:", "", *(f"- {line}" for line in failed), ""]
        lines += [f"The full report, with every run, the charts and the commands: "
                  f"[comparison.html]({there}/comparison.html) "
                  f"([Markdown]({there}/comparison.md), "
                  f"[JSON]({there}/comparison.json)).", "",
                  f"![Throughput over time]({there}/{document.CHARTS['throughput'][0]})", ""]
    versions = first.get("versions") or {}
    lines += ["## Versions", "", ", ".join(f"{k} {v}" for k, v in versions.items() if v) + ".", ""]
    return lines


def one_sitting(sittings: Sequence[Mapping[str, Any]]) -> bool:
    """Whether the regimes were measured in one go (their tool runs started within three hours)."""
    stamps = [datetime.datetime.fromisoformat(data["created"].replace("Z", "+00:00")) for data in sittings
              if data.get("created")]
    return len(stamps) == len(sittings) and max(stamps) - min(stamps) < datetime.timedelta(hours=3)


def sitting_words(sittings: Sequence[Mapping[str, Any]]) -> str:
    if one_sitting(sittings):
        return f"one sitting on one machine ({machine_line(sittings[0])}, {sittings[0].get('created', '?')[:10]})"
    return "each regime in a sitting of its own, on the machine it names (compare within a section, not across)"


def machine_line(data: Mapping[str, Any]) -> str:
    machine = data.get("machine") or {}
    return f"{machine.get('cpus', '?')} CPUs ({machine.get('cpu_model', '?')}), shared by client and server"


if __name__ == "__main__":
    sys.exit(main())
