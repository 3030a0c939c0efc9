"""RFC 6455 conformance of both ends, by Autobahn|Testsuite's quick set.

The server: the suite's fuzzing client against ``run_server.py --echo``. The echo mount is
the chat server's own transport with the chat handler swapped for an echo, so what the
suite judges here (framing, fragmentation, UTF-8, closing handshake) is what every chat
client meets.

The client: the suite's fuzzing server against ``compliance/autobahn_echo_client.py``, an echo
on ``ChatWebSocketClient`` with exactly the load runs' settings, so what is judged is the
connection every sender thread uses.

The full sets, with the 9.* limit cases and a comparison with other servers, are
``python -m compliance.conformance`` (docs/conformance.md).

Deselect with ``-m "not autobahn"``. Skipped only where the machine has no Python 2.7 for
wstest (the tool's setup.sh exits 3) and, for the client, where no private network
namespace can be made for the suite's fuzzing server.
"""

from __future__ import annotations

import json
import os
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest

from compliance import autobahn
from compliance.autobahn import KNOWN_LIBRARY_FAILURES, QUICK_CASES, TOOL, TOOL_VARIABLE
from tests.support.processes import REPO_ROOT, ListeningServer, server_process

#: Verdicts that conform to RFC 6455 (NON-STRICT and INFORMATIONAL: the RFC allows it).
CONFORMANT = {"OK", "NON-STRICT", "INFORMATIONAL"}


@pytest.fixture(scope="module")
def wstest() -> None:
    """The tool's wstest venv, built on first use; a skip where it cannot be (CI sets
    $CHATFLOW_AUTOBAHN, so that a missing tool fails there; a clone on its own skips)."""
    if not (TOOL / "setup.sh").is_file():
        missing = f"Autobahn|Testsuite not found at {TOOL} (set {TOOL_VARIABLE} to its folder)"
        assert TOOL_VARIABLE not in os.environ, missing
        pytest.skip(missing)
    setup = autobahn.setup()
    if setup.returncode == autobahn.NO_PYTHON2:
        pytest.skip(setup.stderr.strip().splitlines()[-1])
    assert setup.returncode == 0, setup.stderr[-3000:]


@pytest.fixture
def echo_server(tmp_path: Path) -> Iterator[tuple[str, ListeningServer, Path]]:
    """``run_server.py --echo`` on free ports, its whole log kept in a file."""
    log_path = tmp_path / "server.log"
    with server_process("--echo", log_path=log_path) as server:
        yield f"{server.url}/", server, log_path


def verdicts_of(reports: Path, agent: str, output: str) -> dict[str, str]:
    """Each case's verdict, once every one of the quick set is known to have run."""
    expected = (reports / "expected-cases.txt").read_text().split()
    verdicts = {case: entry["behavior"] for case, entry in json.loads((reports / "index.json").read_text())[agent].items()}
    assert len(expected) == QUICK_CASES, output
    assert sorted(set(expected) - set(verdicts)) == [], "cases that never ran\n" + output
    return verdicts


@pytest.mark.autobahn
@pytest.mark.timeout(600)
def test_echo_endpoint_conforms_to_rfc6455_quick_set(wstest, echo_server, tmp_path):
    url, server, log_path = echo_server
    reports = tmp_path / "reports"
    run = subprocess.run(autobahn.fuzzing_client(url, "chatflow-echo", reports, quick=True),
                         capture_output=True, text=True, timeout=540)
    output = run.stdout[-6000:] + run.stderr[-2000:]
    # 0: nothing FAILED; 1: something FAILED or did not run, judged below. Anything else: wstest broke.
    assert run.returncode in (0, 1), output

    verdicts = verdicts_of(reports, "chatflow-echo", output)
    failed = {case for case, verdict in verdicts.items() if verdict not in CONFORMANT}
    assert failed <= KNOWN_LIBRARY_FAILURES.keys(), f"unexpected failures {sorted(failed - KNOWN_LIBRARY_FAILURES.keys())}\n{output}"

    assert server.process.returncode is None, "the echo server died during the suite:\n" + log_path.read_text()[-3000:]
    errors = [line for line in log_path.read_text().splitlines() if " ERROR " in line or "Traceback" in line]
    assert errors == [], "\n".join(errors)


@pytest.mark.autobahn
@pytest.mark.timeout(600)
def test_load_client_connection_conforms_to_rfc6455_quick_set(wstest, tmp_path):
    reports = tmp_path / "reports"
    run = subprocess.run(autobahn.fuzzing_server("chatflow-client", reports, quick=True),
                         cwd=REPO_ROOT, env=autobahn.checkout_env(), capture_output=True, text=True, timeout=540)
    if run.returncode == 2 and autobahn.NO_NAMESPACE in run.stderr:
        pytest.skip(run.stderr.strip().splitlines()[-1])
    client_log = reports / "client.log"
    output = (run.stdout[-6000:] + run.stderr[-2000:]
              + ("\nclient.log:\n" + client_log.read_text(errors="replace")[-3000:] if client_log.is_file() else ""))
    # 0: every case ran, none FAILED, and the client exited 0.
    assert run.returncode == 0, output

    verdicts = verdicts_of(reports, "chatflow-client", output)
    failed = sorted(case for case, verdict in verdicts.items() if verdict not in CONFORMANT)
    assert failed == [], output
