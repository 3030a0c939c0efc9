"""Live progress while a run goes: a bar on a terminal, a line every few seconds elsewhere."""

from __future__ import annotations

import sys
import threading
import time
from collections.abc import Callable
from typing import TextIO

from tqdm import tqdm

#: (messages done, of which failed)
Sample = Callable[[], tuple[int, int]]

LINE_INTERVAL = 5.0
BAR_INTERVAL = 0.25


class ProgressDisplay:
    """Polls the senders' counts from its own thread; never touches the hot path."""

    def __init__(self, total: int, sample: Sample, stream: TextIO = sys.stderr, interactive: bool | None = None) -> None:
        self.total = total
        self.sample = sample
        self.stream = stream
        self.interactive = stream.isatty() if interactive is None else interactive
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="ProgressDisplay", daemon=True)

    def start(self) -> None:
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        if self._thread.is_alive():
            self._thread.join(5)

    def _run(self) -> None:
        if self.interactive:
            self._run_bar()
        else:
            self._run_lines()

    def _run_bar(self) -> None:
        with tqdm(total=self.total, unit="msg", unit_scale=True, dynamic_ncols=True,
                  file=self.stream, smoothing=0.1, desc="messages") as bar:
            shown = 0
            while True:
                stopping = self._stop.wait(BAR_INTERVAL)
                done, failed = self.sample()
                bar.update(done - shown)
                shown = done
                bar.set_postfix(failed=failed, refresh=False)
                if stopping:
                    return

    def _run_lines(self) -> None:
        start = last_time = time.monotonic()
        last_done = 0
        while not self._stop.wait(LINE_INTERVAL):
            done, failed = self.sample()
            now = time.monotonic()
            rate = (done - last_done) / (now - last_time)
            percent = 100.0 * done / self.total if self.total else 100.0
            print(f"progress: {done:,}/{self.total:,} messages ({percent:.0f}%), "
                  f"{rate:,.0f} msg/s now, {failed:,} failed, {now - start:.0f} s",
                  file=self.stream, flush=True)
            last_done, last_time = done, now
