"""Deadlines: how long a test waits, and waiting on a condition instead of sleeping.

Nothing sleeps and hopes: every wait is on a condition, each with a deadline, so that a
condition that never comes fails the test instead of hanging it. How long a server
process may take to start is the launcher's (``chatflow.server.process.START_TIMEOUT``).
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import TypeVar

T = TypeVar("T")

#: Long enough for a loaded 2-core machine, short enough that a hang fails fast.
DEFAULT_TIMEOUT = 5.0


def wait_until(predicate: Callable[[], T], timeout: float = DEFAULT_TIMEOUT, interval: float = 0.01,
               message: str = "", describe: Callable[[], object] | None = None) -> T:
    """Poll ``predicate`` until it returns something truthy; return that.

    Raises AssertionError at the deadline. ``message`` names the condition; ``describe``
    is asked for the state at the deadline, when it is worth seeing.
    """
    deadline = time.monotonic() + timeout
    while True:
        value = predicate()
        if value:
            return value
        if time.monotonic() >= deadline:
            state = f"; state: {describe()}" if describe else ""
            raise AssertionError(f"not true within {timeout:g} s: {message or predicate.__qualname__}{state}")
        time.sleep(interval)
