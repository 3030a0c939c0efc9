"""The lines a server logs once it listens: how anyone learns the ports it bound.

With port 0 the kernel picks the ports, and these lines are the only place that says
which. Every reader (the client's ``--local``, the tests, the benchmarks) goes
through ``parse``, so the wording can change here without breaking one of them.
"""

from __future__ import annotations

import re
from typing import NamedTuple

#: ``listening on ws://HOST:PORT``, ``http://HOST:PORT/…`` or ``tcp://HOST:PORT`` (a plain TCP
#: listener: the delay proxy, an echo server); an IPv6 host may be bare
#: (``ws://:::8081``) or bracketed. The line may be the message of a JSON log line
#: (``--log-format json``), the port then followed by its closing quote.
_LISTENING = re.compile(r"listening on (ws|http|tcp)://(\[[^\]]*\]|\S*?):(\d+)(?=[/\s\"]|$)")


class Listening(NamedTuple):
    scheme: str
    host: str
    port: int


def line(what: str, scheme: str, host: str, port: int, path: str = "") -> str:
    """``{what} listening on {scheme}://{host}:{port}{path}``."""
    return f"{what} listening on {scheme}://{host}:{port}{path}"


def parse(text: str) -> Listening | None:
    """The listener a log line announces, or None for any other line."""
    match = _LISTENING.search(text)
    if match is None:
        return None
    return Listening(match[1], match[2], int(match[3]))
