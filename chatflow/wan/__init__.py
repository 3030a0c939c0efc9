"""A network's round-trip time on one machine: a TCP proxy that holds each direction's
bytes for half the round trip (docs/wan.md).

- ``delay``: when each chunk of one direction may go on (the schedule, pure);
- ``stream``: one direction's bytes waiting for their time, with its memory bound (pure);
- ``proxy``: ``DelayProxy``, the sockets and the selector thread that move them;
- ``cli``: ``python -m chatflow.wan`` / ``chatflow-wan``.
"""

from chatflow.wan.delay import Delay
from chatflow.wan.proxy import DelayProxy, ProxyStats

__all__ = ["Delay", "DelayProxy", "ProxyStats"]
