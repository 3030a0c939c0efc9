"""WebSocket conformance of ChatFlow's server and client, beside two other servers; writes its page.

Runs Autobahn|Testsuite (the tool in $CHATFLOW_AUTOBAHN, else ../shared/tools/autobahn
beside the repository: ``compliance.autobahn``) both ways round:

- its fuzzing server against the load-testing client's connection,
  ``python -m compliance.autobahn_echo_client`` (``ChatWebSocketClient`` with the load runs'
  settings), through the tool's ``run_fuzzingserver.sh``, which needs a private network
  namespace;
- its fuzzing client against three echo servers, one after another, so that the
  document can say how ChatFlow's transport compares with the servers it could have been
  built on: ChatFlow's ``run_server.py --echo`` with every default but its addresses, a
  plain `websockets` sync echo server with the library's defaults, and an echo server on
  the `websocket-server` 0.6.4 package.

It also times, with timeit, the UTF-8 check of websocket-client that the client turns
off against the strict decode it does instead, so that the document states what the
setting saves from the same run.

    python -m compliance.conformance            # the full set, 517 cases per peer, about 15 min
    python -m compliance.conformance --quick    # 247 cases per peer, about 2 min
    python -m compliance.conformance --from-reports DIR   # rewrite the document from a past run

The full set rewrites docs/measurements/conformance.md (what the verdicts mean and why
they stay: docs/conformance.md); ``--quick`` writes no page unless ``--doc PATH`` says
where. The wstest reports (HTML per case, with the wire log) and summary.json stay in
``--reports DIR`` (default: a new temporary directory).
Exit status: 0 when every peer was run to the end, 1 when a run broke (wstest stopped,
a server died, the client exited non-zero), 2 when something needed is missing (a
package, the tool, a network namespace), 3 when the machine has no Python 2.7.
"""

from __future__ import annotations

import argparse
import dataclasses
import datetime
import importlib.metadata
import importlib.util
import json
import platform
import re
import shlex
import subprocess
import sys
import tempfile
import time
import timeit
from pathlib import Path
from types import ModuleType

from bench import doc
from chatflow import __version__ as CHATFLOW_VERSION
from chatflow.server.process import ServerProcess, ServerProcessError, local_server_command
from compliance import autobahn
from compliance.autobahn import KNOWN_LIBRARY_FAILURES, TOOL
from tests.support.processes import REPO_ROOT

DOC = doc.MEASUREMENTS / "conformance.md"
SUMMARY = "summary.json"

VERDICTS = ("OK", "NON-STRICT", "INFORMATIONAL", "UNIMPLEMENTED", "FAILED", "NOT RUN")
STOP_TIMEOUT = 10.0
WEBSOCKET_SERVER_VERSION = "0.6.4"


@dataclasses.dataclass(frozen=True)
class EchoPeer:
    """One echo the suite judges, a server (its fuzzing client connects) or a client."""

    agent: str
    title: str
    command: tuple[str, ...]


CHATFLOW_ECHO = EchoPeer("chatflow-echo", "ChatFlow `run_server.py --echo`",
                         tuple(local_server_command("--echo", script="run_server.py")))
SERVERS = (
    CHATFLOW_ECHO,
    EchoPeer("websockets-sync", "`websockets` sync server, defaults",
             (sys.executable, "-m", "compliance.echo_servers", "websockets")),
    EchoPeer("websocket-server", f"`websocket-server` {WEBSOCKET_SERVER_VERSION}",
             (sys.executable, "-m", "compliance.echo_servers", "websocket-server")),
)
CLIENT = EchoPeer("chatflow-client", "ChatFlow `ChatWebSocketClient`", autobahn.ECHO_CLIENT)

#: SPEC §1.4's example success reply, 197 bytes: what a sender receives for every message.
SUCCESS_REPLY = (b'{"userId":12345,"username":"user12345","message":"Hello everyone!",'
                 b'"clientTimestamp":"2026-02-13T10:30:00.000Z","serverTimestamp":"2026-02-13T10:30:00.123Z",'
                 b'"messageType":"TEXT","status":"success"}')
#: What is timed on it: websocket-client's check, and the strict decode the client does instead.
UTF8_CHECKS = {"validate_utf8": "validate_utf8(r)", "decode": "r.decode()"}


@dataclasses.dataclass(frozen=True)
class CaseResult:
    case_id: str
    verdict: str
    reason: str


@dataclasses.dataclass(frozen=True)
class PeerRun:
    peer: EchoPeer
    results: list[CaseResult]
    seconds: float
    trouble: str

    def count(self, verdict: str) -> int:
        return sum(1 for r in self.results if r.verdict == verdict)


@dataclasses.dataclass(frozen=True)
class Conformance:
    """One run of the suite against every server: what the document is written from."""

    date: str
    quick: bool
    versions: dict[str, str]
    servers: list[PeerRun]
    client: PeerRun
    utf8_check_us: dict[str, float]


class Missing(Exception):
    """Something the run needs is not on this machine; the message says what to do."""


# -- preparing ---------------------------------------------------------------------


def check_tool() -> None:
    if not (TOOL / "run_fuzzingclient.sh").is_file():
        raise Missing(f"the Autobahn tool: no {TOOL / 'run_fuzzingclient.sh'} (it belongs at "
                      f"../shared/tools/autobahn, beside the repository, or where ${autobahn.TOOL_VARIABLE} says)")


def check_packages() -> None:
    missing = []
    for package, wanted in (("websockets", None), ("websocket-client", None), ("websocket-server", WEBSOCKET_SERVER_VERSION)):
        try:
            version = importlib.metadata.version(package)
        except importlib.metadata.PackageNotFoundError:
            version = None
        if version is None or (wanted and version != wanted):
            spec = f"{package}=={wanted}" if wanted else package
            found = f"{version} is installed" if version else "not installed"
            missing.append(f"the Python package {spec} ({found}): pip install '{spec}'")
    if missing:
        raise Missing("\n  ".join(missing))


def setup_wstest() -> str:
    """wstest's path, once the tool's setup.sh has its Python 2.7 venv ready."""
    setup = autobahn.setup()
    if setup.returncode == autobahn.NO_PYTHON2:
        print(f"conformance: {setup.stderr.strip().splitlines()[-1]}", file=sys.stderr)
        raise SystemExit(autobahn.NO_PYTHON2)
    if setup.returncode != 0:
        raise Missing(f"a working wstest: the tool's setup.sh failed (exit {setup.returncode}):\n{setup.stderr[-2000:]}")
    return setup.stdout.strip().splitlines()[-1]


def load_summarize() -> ModuleType:
    """The tool's own summarize.py, so FAILED reasons read the same as its console verdict."""
    spec = importlib.util.spec_from_file_location("autobahn_summarize", TOOL / "summarize.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def installed_versions(wstest: str) -> dict[str, str]:
    suite = subprocess.run([wstest, "--autobahnversion"], capture_output=True, text=True, timeout=60).stdout
    match = re.search(r"AutobahnTestSuite\s+(\S+)", suite)
    return {
        "Autobahn|Testsuite": match.group(1) if match else "unknown",
        "Python": platform.python_version(),
        "ChatFlow": CHATFLOW_VERSION,
        "websockets": importlib.metadata.version("websockets"),
        "websocket-client": importlib.metadata.version("websocket-client"),
        "wsaccel": wsaccel_version(),
        "websocket-server": importlib.metadata.version("websocket-server"),
    }


def wsaccel_version() -> str:
    """wsaccel, when installed, replaces websocket-client's pure-Python UTF-8 check."""
    try:
        return importlib.metadata.version("wsaccel")
    except importlib.metadata.PackageNotFoundError:
        return "not installed"


# -- running -----------------------------------------------------------------------


def start(server: EchoPeer, log_path: Path) -> tuple[ServerProcess, str]:
    """Start a server and return it with its URL, read from its own log line."""
    process = ServerProcess(server.command, cwd=REPO_ROOT, log_path=log_path, grace=STOP_TIMEOUT)
    try:
        found = process.wait_listening("ws")
    except ServerProcessError as exc:
        process.stop()
        raise RuntimeError(f"{server.agent} did not start: {exc}") from None
    return process, f"ws://{found.host}:{found.port}/"


def run_server(server: EchoPeer, out: Path, quick: bool, summarize: ModuleType) -> PeerRun:
    out.mkdir(parents=True, exist_ok=True)
    process, url = start(server, out / "server.log")
    print(f"== {server.agent} at {url}", flush=True)
    began = time.monotonic()
    try:
        tool = subprocess.run(autobahn.fuzzing_client(url, server.agent, out, quick), cwd=REPO_ROOT)
        died = process.returncode
    finally:
        process.stop()
    seconds = time.monotonic() - began
    trouble = []
    if tool.returncode not in (0, 1):
        trouble.append(f"the tool ended with status {tool.returncode} (wstest stopped or broke; see wstest.log)")
    if died is not None:
        trouble.append(f"the server exited with status {died} during the run")
    return PeerRun(server, read_results(out, server.agent, summarize), seconds, "; ".join(trouble))


def run_client(out: Path, quick: bool, summarize: ModuleType) -> PeerRun:
    """The suite's fuzzing server and the echo client, together in a private network namespace."""
    out.mkdir(parents=True, exist_ok=True)
    print(f"== {CLIENT.agent}", flush=True)
    command = autobahn.fuzzing_server(CLIENT.agent, out, quick, CLIENT.command)
    began = time.monotonic()
    tool = subprocess.run(command, cwd=REPO_ROOT, env=autobahn.checkout_env(), stderr=subprocess.PIPE, text=True)
    seconds = time.monotonic() - began
    sys.stderr.write(tool.stderr)
    if tool.returncode == 2 and autobahn.NO_NAMESPACE in tool.stderr:
        raise Missing(f"a private network namespace for the client's run: {tool.stderr.strip().splitlines()[-1]}")
    results = read_results(out, CLIENT.agent, summarize)
    trouble = ""
    if tool.returncode not in (0, 1):
        trouble = f"the tool ended with status {tool.returncode} (wstest broke or --timeout; see wstest.log)"
    elif tool.returncode == 1 and not any(r.verdict in ("FAILED", "NOT RUN") for r in results):
        trouble = "the client exited with a non-zero status (see client.log)"
    return PeerRun(CLIENT, results, seconds, trouble)


def time_utf8_checks() -> dict[str, float]:
    """Microseconds per success reply of each UTF-8 check, as ``python -m timeit`` times them (best of 5)."""
    from websocket._utils import validate_utf8

    namespace = {"validate_utf8": validate_utf8, "r": SUCCESS_REPLY}
    times = {}
    for name, statement in UTF8_CHECKS.items():
        timer = timeit.Timer(statement, globals=namespace)
        loops, _ = timer.autorange()
        times[name] = min(timer.repeat(5, loops)) / loops * 1e6
    return times


def run_all(reports: Path, quick: bool) -> Conformance:
    check_tool()
    check_packages()
    wstest = setup_wstest()
    summarize = load_summarize()
    # The client first: where it cannot run (no network namespace), that is known at once.
    client = run_client(reports / CLIENT.agent, quick, summarize)
    servers = [run_server(server, reports / server.agent, quick, summarize) for server in SERVERS]
    result = Conformance(datetime.date.today().isoformat(), quick, installed_versions(wstest), servers, client,
                         time_utf8_checks())
    (reports / SUMMARY).write_text(json.dumps(summary_json(result), indent=2, ensure_ascii=False) + "\n")
    return result


def run_json(run: PeerRun) -> dict:
    return {
        "seconds": round(run.seconds, 1),
        "trouble": run.trouble,
        "counts": {v: run.count(v) for v in VERDICTS},
        "not_ok": {r.case_id: [r.verdict, r.reason] for r in run.results if r.verdict != "OK"},
    }


def summary_json(result: Conformance) -> dict:
    return {
        "date": result.date,
        "quick": result.quick,
        "versions": result.versions,
        "utf8_check_us": {name: round(us, 3) for name, us in result.utf8_check_us.items()},
        "client": {result.client.peer.agent: run_json(result.client)},
        "servers": {run.peer.agent: run_json(run) for run in result.servers},
    }


def reload(reports: Path) -> Conformance:
    """A past run, from its reports directory: the verdicts are read again from the case reports."""
    check_tool()
    summarize = load_summarize()
    summary = json.loads((reports / SUMMARY).read_text())
    if CLIENT.agent not in summary.get("client", {}):
        raise Missing(f"the client's run: {reports} holds a run made before the client was part of it; run the suite again")

    def reloaded(peer: EchoPeer, past: dict) -> PeerRun:
        return PeerRun(peer, read_results(reports / peer.agent, peer.agent, summarize), past["seconds"], past["trouble"])

    servers = [reloaded(server, summary["servers"][server.agent]) for server in SERVERS]
    client = reloaded(CLIENT, summary["client"][CLIENT.agent])
    return Conformance(summary["date"], summary["quick"], summary["versions"], servers, client, summary["utf8_check_us"])


# -- reading a report ---------------------------------------------------------------


def read_results(out: Path, agent: str, summarize: ModuleType) -> list[CaseResult]:
    """Every selected case with its verdict and, unless OK, why, in the suite's order."""
    index_path = out / "index.json"
    index = json.loads(index_path.read_text()).get(agent, {}) if index_path.is_file() else {}
    expected = (out / "expected-cases.txt").read_text().split()
    results = []
    for case_id in sorted(set(expected) | set(index), key=summarize.case_key):
        entry = index.get(case_id)
        if entry is None:
            results.append(CaseResult(case_id, "NOT RUN", "selected but never run"))
            continue
        verdict = entry.get("behavior", "?")
        if verdict == "OK":
            results.append(CaseResult(case_id, verdict, ""))
            continue
        case = json.loads((out / entry["reportfile"]).read_text())
        if verdict not in VERDICTS:
            verdict = "FAILED"
        results.append(CaseResult(case_id, verdict, reason(case, verdict, summarize)))
    return results


def how_closed(case: dict) -> str:
    code, text = case.get("remoteCloseCode"), case.get("remoteCloseReason")
    if code is None:
        return "closed without a close code"
    return f"closed with {code}" + (f" '{text}'" if text else "")


def reason(case: dict, verdict: str, summarize: ModuleType) -> str:
    peer = "client" if case.get("isServer") else "server"  # isServer: the suite played the server
    if verdict == "FAILED":
        return summarize.failure_reason(case, case.get("behavior"))
    if verdict == "UNIMPLEMENTED":
        if peer == "client" and "sec-websocket-extensions" not in (case.get("httpRequest") or "").lower():
            return "permessage-deflate not offered: the handshake request asks for no extension"
        if peer == "server" and "sec-websocket-extensions" not in (case.get("httpResponse") or "").lower():
            return "permessage-deflate not negotiated: the handshake answer accepts no extension"
        return str(case.get("result"))
    strict = (case.get("expected") or {}).get("OK") or []
    received = case.get("received") or []
    if verdict == "NON-STRICT":
        missing = [e for e in strict if e and e[0] == "message" and e not in received]
        if missing:
            what = "the message" if len(missing) == 1 else f"the {len(missing)} messages"
            return f"failed the connection on the bad frame before echoing {what} sent ahead of it ({how_closed(case)})"
        if any(e and e[0] == "timeout" and e not in strict for e in received):
            where = "once the whole message was in" if peer == "client" else "at the end of the frame"
            return (f"caught the invalid UTF-8 {where}, after the suite's next wait, "
                    f"not at the bad octet ({how_closed(case)})")
    return f"{str(case.get('result', '')).rstrip('.')}; the {peer} {how_closed(case)}"


# -- writing the document -----------------------------------------------------------


def compact_ids(ids: list[str], all_ids: list[str]) -> str:
    """Case ids as the suite's patterns: a whole group as ``12.*``, three or more in a row as ``a–b``."""
    chosen = set(ids)
    parts, covered = [], set()
    for depth in (1, 2):
        for prefix in dict.fromkeys(".".join(c.split(".")[:depth]) for c in ids):
            group = [c for c in all_ids if c.startswith(prefix + ".")]
            if len(group) > 1 and not covered.issuperset(group) and chosen.issuperset(group):
                parts.append((all_ids.index(group[0]), f"{prefix}.*"))
                covered.update(group)
    position = {c: i for i, c in enumerate(all_ids)}
    run: list[str] = []
    for case_id in [c for c in ids if c not in covered] + [None]:
        if case_id is not None and run and position[case_id] == position[run[-1]] + 1:
            run.append(case_id)
            continue
        if run:
            parts.append((position[run[0]], ", ".join(run) if len(run) < 3 else f"{run[0]}–{run[-1]}"))
        run = [case_id] if case_id is not None else []
    return ", ".join(text for _, text in sorted(parts))


def counts_table(runs: list[PeerRun], role: str) -> list[str]:
    rows = [(run.peer.title, str(len(run.results)), *(str(run.count(v)) for v in VERDICTS)) for run in runs]
    return doc.table((role, "cases", *VERDICTS), rows, "l" + "r" * (len(VERDICTS) + 1))


def trouble_lines(runs: list[PeerRun]) -> list[str]:
    lines = []
    for run in runs:
        if run.trouble:
            lines += [f"The run against {run.peer.title} did not end normally: {run.trouble}.", ""]
    return lines


def failed_ids(run: PeerRun) -> list[str]:
    return [r.case_id for r in run.results if r.verdict == "FAILED"]


def headline(result: Conformance) -> str:
    """The verdict in one paragraph: what fails against ChatFlow, and against the others."""
    servers = {run.peer.agent: run for run in result.servers}
    chatflow, plain, other = servers["chatflow-echo"], servers["websockets-sync"], servers["websocket-server"]
    failed = failed_ids(chatflow)
    if not failed:
        ours = "fails none"
    elif set(failed) <= KNOWN_LIBRARY_FAILURES.keys():
        only = "only " if len(failed) == 1 else ""
        ours = (f"fails {only}{', '.join(failed)}, inside the `websockets` protocol core it is built on: "
                + "; ".join(KNOWN_LIBRARY_FAILURES[case_id] for case_id in failed))
    else:
        ours = f"fails {len(failed)}: {compact_ids(failed, [r.case_id for r in chatflow.results])}"
    client_failed = failed_ids(result.client)
    client = "fails none" if not client_failed else f"fails {len(client_failed)}: {', '.join(client_failed)}"
    return (f"**In short**: of the {len(chatflow.results)} cases, ChatFlow's server {ours}. The plain "
            f"`websockets` sync server with its defaults fails {plain.count('FAILED')}{limit_cases(plain)}, "
            f"`websocket-server` {other.count('FAILED')}. ChatFlow's client {client} (*Client*, below).")


def limit_cases(run: PeerRun) -> str:
    """Which of a run's failures are the 9.* limit cases, as a parenthesis (empty when none are)."""
    failed = failed_ids(run)
    limits = [case_id for case_id in failed if case_id.startswith("9.")]
    if not limits:
        return ""
    others = [case_id for case_id in failed if not case_id.startswith("9.")]
    return f" ({', '.join(others) + ' and ' if others else ''}{len(limits)} of the 9.\\* limit cases)"


def non_ok_table(run: PeerRun) -> list[str]:
    """Every case that is not OK, those with the same verdict and reason on one row."""
    all_ids = [r.case_id for r in run.results]
    groups: dict[tuple[str, str], list[str]] = {}
    for r in run.results:
        if r.verdict != "OK":
            groups.setdefault((r.verdict, r.reason), []).append(r.case_id)
    if not groups:
        return ["Every case OK."]
    ordered = sorted(groups.items(), key=lambda item: (VERDICTS.index(item[0][0]), all_ids.index(item[1][0])))
    rows = [(cases_cell(compact_ids(ids, all_ids), len(ids)), verdict, why) for (verdict, why), ids in ordered]
    return doc.table(("cases", "verdict", "reason"), rows)


def cases_cell(pattern: str, count: int) -> str:
    """Case ids and their count; a pattern's ``*`` is a character, not emphasis."""
    return pattern.replace("*", "\\*") + (f" ({count})" if count > 1 else "")


def times_cheaper(slow_us: float, fast_us: float) -> str:
    """A ratio of timings in words, to two significant figures: ``about 800 times``."""
    return f"about {float(f'{slow_us / fast_us:.2g}'):,.0f} times"


def client_section(result: Conformance) -> list[str]:
    info, client = result.versions, result.client
    check_us, decode_us = result.utf8_check_us["validate_utf8"], result.utf8_check_us["decode"]
    library = ("pure Python: wsaccel, its C extension, is not installed" if info["wsaccel"] == "not installed"
               else f"with wsaccel {info['wsaccel']}, its C extension")
    return [
        "## Client",
        "",
        "The load-testing client's connection, `ChatWebSocketClient` on "
        f"[websocket-client](https://pypi.org/project/websocket-client/) {info['websocket-client']}, against the "
        "suite's fuzzing server: `python -m compliance.autobahn_echo_client` opens one connection per case with the "
        "settings of the load runs (only the reply timeout is raised, to 120 s, for the suite's 16 MiB messages) "
        "and sends every message back unchanged, as the same type; the tool's `run_fuzzingserver.sh` runs both in "
        "a private network namespace with only loopback.",
        "",
        *counts_table([client], "client"),
        "",
        *trouble_lines([client]),
        "### Every case that is not OK",
        "",
        *non_ok_table(client),
        "",
        "### The UTF-8 check of a reply",
        "",
        "The client turns off websocket-client's UTF-8 check and decodes every text reply strictly instead "
        "([client.md](../client.md#the-connection-websocket-client-tuned) says why). Both timed with timeit on "
        "SPEC §1.4's 197-byte success reply (`SUCCESS_REPLY`), best of 5 repeats, as `python -m timeit` does:",
        "",
        *doc.table(("check", "µs per reply"), [
            (f"websocket-client's `validate_utf8` ({library})", f"{check_us:.1f}"),
            ("`bytes.decode()`, the client's", f"{decode_us:.2f}"),
        ], "lr"),
        "",
        f"The decode is {times_cheaper(check_us, decode_us)} cheaper: {check_us - decode_us:.1f} µs of CPU saved "
        "per reply.",
        "",
    ]


def document(result: Conformance) -> list[str]:
    info = result.versions
    selection = "the quick set (all but 9.\\*, 12.\\*, 13.\\*)" if result.quick else "the full set"
    lines = [
        *doc.header("WebSocket conformance: the latest verdicts", "python -m compliance.conformance",
                    "What the suite checks, how to read its verdicts, and why each case that is not OK stays so: "
                    "[conformance.md](../conformance.md)."),
        headline(result),
        "",
        f"[Autobahn|Testsuite](https://github.com/crossbario/autobahn-testsuite) {info['Autobahn|Testsuite']}, "
        f"{selection}, run on {result.date} with Python {info['Python']}, ChatFlow {info['ChatFlow']}, "
        f"websockets {info['websockets']}, websocket-client {info['websocket-client']} and websocket-server "
        f"{info['websocket-server']}: the suite's fuzzing client against three echo servers, and its fuzzing "
        "server against ChatFlow's client (*Client*, below).",
        "",
        f"- **ChatFlow**: `{shlex.join(CHATFLOW_ECHO.command[1:])}`, the chat "
        "server's transport with an echo handler in place of chat, every limit at its `--echo` default.",
        "- **`websockets`**: `python -m compliance.echo_servers websockets`, the library's sync server "
        "(`websockets.sync.server.serve`) with every default.",
        "- **`websocket-server`**: `python -m compliance.echo_servers websocket-server`, an echo on the "
        f"`websocket-server` {WEBSOCKET_SERVER_VERSION} package.",
        "",
        "## Servers",
        "",
        *counts_table(result.servers, "server"),
        "",
        *trouble_lines(result.servers),
    ]
    for run in result.servers:
        lines += [f"### {run.peer.title}: every case that is not OK", "", *non_ok_table(run), ""]
    return lines + client_section(result)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m compliance.conformance", description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true",
                        help=f"{autobahn.QUICK_CASES} cases per peer instead of the full 517")
    parser.add_argument("--reports", type=Path, help="where the wstest reports go (default: a new temporary directory)")
    parser.add_argument("--from-reports", type=Path, metavar="DIR",
                        help="run nothing: write the document from the reports of a past run")
    parser.add_argument("--doc", type=Path,
                        help=f"the document to write (default: {doc.shown(DOC)} for the full set, none for --quick)")
    args = parser.parse_args(argv)
    try:
        if args.from_reports:
            reports = args.from_reports
            result = reload(reports)
        else:
            reports = args.reports or Path(tempfile.mkdtemp(prefix="chatflow-conformance-"))
            result = run_all(reports, args.quick)
    except Missing as exc:
        print(f"conformance: missing:\n  {exc}", file=sys.stderr)
        return 2

    runs = [result.client, *result.servers]
    print("\n| peer | seconds | " + " | ".join(VERDICTS) + " |")
    for run in runs:
        print(f"| {run.peer.agent} | {run.seconds:.0f} | " + " | ".join(str(run.count(v)) for v in VERDICTS) + " |")
    print("UTF-8 check per 197-byte reply: " + ", ".join(f"{name} {us:.2f} µs" for name, us in result.utf8_check_us.items()))
    page_path = args.doc or (None if result.quick else DOC)
    if page_path is not None:
        print(f"wrote {doc.shown(doc.write_page(page_path, document(result)))}")
    print(f"reports (index.html per peer) and {SUMMARY} in {reports}")
    return 1 if any(run.trouble for run in runs) else 0


if __name__ == "__main__":
    sys.exit(main())
