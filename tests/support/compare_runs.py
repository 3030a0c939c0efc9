"""``chatflow-compare`` run from a test, with ChatFlow standing in as the "other"
implementation (CI has no Java): its commands given as templates, as a user gives them."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

#: ChatFlow's server, told its ports through the placeholders.
STAND_IN_SERVER = "{python} -m chatflow.server.main --host 127.0.0.1 --port {port} --health-port {health_port}"
#: ChatFlow's client run the Java client's way: the URL its one argument, the sizes from the
#: environment, its CSV somewhere below its working directory.
STAND_IN_CLIENT = ("sh -c 'exec \"$0\" -m chatflow.client.main --server \"$1\" --messages \"$CHATFLOW_TOTAL_MESSAGES\" "
                   "--warmup-threads \"$CHATFLOW_WARMUP_THREADS\" --warmup-messages \"$CHATFLOW_WARMUP_MESSAGES\" "
                   "--threads \"$CHATFLOW_MAIN_THREADS\" --quiet --no-analysis --output-dir out/metrics' "
                   "{python} {url}")
#: A small run: seconds per pairing.
SMALL_MESSAGES = 400
SMALL_RUN = ("--messages", str(SMALL_MESSAGES), "--warmup-threads", "2", "--warmup-messages", "50", "--threads", "4")
#: Long enough for a loaded machine; a sitting that hangs fails here instead of the suite.
COMPARE_TIMEOUT = 90.0


def stand_in(server: str = STAND_IN_SERVER, client: str = STAND_IN_CLIENT, name: str = "Twin") -> tuple[str, ...]:
    """The options that make ChatFlow (or ``server`` / ``client``) the other implementation."""
    return ("--other-server", server, "--other-client", client, "--other-name", name)


def run_compare(*args: str, cwd: Path, timeout: float = COMPARE_TIMEOUT) -> subprocess.CompletedProcess[str]:
    """``python -m chatflow.compare args`` to its end."""
    return subprocess.run([sys.executable, "-m", "chatflow.compare", *args], cwd=cwd, stdin=subprocess.DEVNULL,
                          capture_output=True, text=True, timeout=timeout)
