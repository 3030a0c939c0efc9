"""Echo client for Autobahn|Testsuite's fuzzing server, on ChatFlow's client connection.

The suite's fuzzing server tests WebSocket *clients*: for each case this connects, then
sends every message back unchanged, as the same type, until the connection closes. The
connection is ``ChatWebSocketClient``'s, with exactly the settings of the load runs, so
the verdicts are those of the load client. Run by ``compliance/conformance.py`` and
``tests/test_autobahn.py`` through the tool's ``run_fuzzingserver.sh``, which sets
``AUTOBAHN_URL`` and ``AUTOBAHN_AGENT``.
"""

from __future__ import annotations

import os
import sys

from chatflow.client.chat_websocket_client import (
    OPCODE_TEXT,
    ChatWebSocketClient,
    ConnectFailed,
    ConnectionClosed,
    ReplyTimeout,
)

#: The suite's largest messages (16 MiB) take seconds each way; no reply timeout applies.
TIMEOUT = 120.0


def echo_case(url: str) -> None:
    client = ChatWebSocketClient(url, timeout=TIMEOUT)
    try:
        while True:
            opcode, data = client.receive()
            client.send(data, opcode)
    except (ConnectionClosed, ReplyTimeout):
        pass
    finally:
        client.close()


def main() -> int:
    url, agent = os.environ["AUTOBAHN_URL"], os.environ["AUTOBAHN_AGENT"]
    counter = ChatWebSocketClient(f"{url}/getCaseCount", timeout=TIMEOUT)
    opcode, data = counter.receive()
    counter.close()
    count = int(data.decode() if opcode == OPCODE_TEXT else data)
    for case in range(1, count + 1):
        try:
            echo_case(f"{url}/runCase?case={case}&agent={agent}")
        except ConnectFailed as exc:
            print(f"case {case}: {exc}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
