"""Every default the benchmarks share, in one place: their command lines read them here.

The shape of a client run is the client's own (``chatflow.client.config.LoadTestConfig``),
the server's limits the server's (``chatflow.server.config.DEFAULTS``); these are what
the benchmarks add: how much each measures and how long it may take.
"""

from __future__ import annotations

#: Runs of each benchmark, each on a fresh server process: the median and the min–max.
RUNS = 3
#: Measured messages of a server_bench or TCP floor run, after ``WARMUP`` of warmup.
MESSAGES = 200_000
WARMUP = 10_000
#: The end-to-end client's ``--seed``, the same in every run.
SEED = 42
#: Seconds a server_bench or TCP floor run may take.
RUN_TIMEOUT = 600.0
#: Seconds an end-to-end run (500,000 messages by default) may take; also every run of
#: ``python -m bench``.
END_TO_END_TIMEOUT = 1800.0
