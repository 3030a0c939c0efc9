"""What Python allocates while a test runs, through tracemalloc."""

from __future__ import annotations

import tracemalloc
from collections.abc import Callable, Iterator
from contextlib import contextmanager


@contextmanager
def traced_memory() -> Iterator[Callable[[], tuple[int, int]]]:
    """tracemalloc on for the ``with`` body, its peak reset; yields ``get_traced_memory``
    (current, peak). Tracing that was on before (``-X tracemalloc``) is left on."""
    tracing_already = tracemalloc.is_tracing()
    tracemalloc.start()
    tracemalloc.reset_peak()
    try:
        yield tracemalloc.get_traced_memory
    finally:
        if not tracing_already:
            tracemalloc.stop()
