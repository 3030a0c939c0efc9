"""Autobahn|Testsuite as this repository runs it: where the tool is, how its scripts are
called, what they say when a run cannot be made, and the case known to fail inside the
library ChatFlow's server is built on.

Read by the runner (``python -m compliance.conformance``) and by the test suite's quick
sets (``tests/test_autobahn.py``), so that both find the same tool and judge the same way.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

from tests.support.processes import REPO_ROOT

#: Names the tool's folder; CI sets it, so that a missing tool fails there.
TOOL_VARIABLE = "CHATFLOW_AUTOBAHN"
#: The tool's folder: $CHATFLOW_AUTOBAHN, else ../shared/tools/autobahn beside the repository.
TOOL = Path(os.environ.get(TOOL_VARIABLE) or REPO_ROOT.parent / "shared" / "tools" / "autobahn")
#: Building wstest's Python 2.7 venv on first use takes minutes.
SETUP_TIMEOUT = 900
#: setup.sh's exit status where the machine has no Python 2.7 for wstest.
NO_PYTHON2 = 3
#: run_fuzzingserver.sh's stderr (exit status 2) where it cannot make the private network
#: namespace it runs the client in.
NO_NAMESPACE = "cannot create a private network namespace"
#: Cases in ``--quick``: all but 9.* (limits), 12.* and 13.* (compression).
QUICK_CASES = 247

#: Server failures that are the `websockets` protocol core's, not ChatFlow's, each with why.
KNOWN_LIBRARY_FAILURES = {
    "7.1.5": "a Close frame in the middle of a fragmented message, which the library fails with 1002 "
             "where the suite expects 1000, and which its maintainers hold RFC 6455 allows "
             "([conformance.md](../conformance.md#reading-the-verdicts))",
}

#: The client's peer: an echo on ChatWebSocketClient, started by run_fuzzingserver.sh.
ECHO_CLIENT = (sys.executable, "-m", "compliance.autobahn_echo_client")


def setup() -> subprocess.CompletedProcess[str]:
    """The tool's setup.sh, which builds wstest's venv on first use; the last line of its
    stdout is wstest's path, exit status ``NO_PYTHON2`` where it cannot be built."""
    return subprocess.run([str(TOOL / "setup.sh")], capture_output=True, text=True, timeout=SETUP_TIMEOUT)


def fuzzing_client(url: str, agent: str, out: Path, quick: bool) -> list[str]:
    """The suite's fuzzing client against the echo server at ``url``, its reports in ``out``."""
    return [str(TOOL / "run_fuzzingclient.sh"), url, agent, "--out", str(out), *(["--quick"] if quick else [])]


def fuzzing_server(agent: str, out: Path, quick: bool, client: tuple[str, ...] = ECHO_CLIENT) -> list[str]:
    """The suite's fuzzing server and ``client``, together in a private network namespace."""
    return [str(TOOL / "run_fuzzingserver.sh"), agent, "--out", str(out), *(["--quick"] if quick else []),
            "--", *client]


def checkout_env() -> dict[str, str]:
    """This environment with the checkout first on PYTHONPATH: the client the tool starts
    imports the chatflow and compliance packages from here."""
    return {**os.environ, "PYTHONPATH": os.pathsep.join(filter(None, (str(REPO_ROOT), os.environ.get("PYTHONPATH"))))}
