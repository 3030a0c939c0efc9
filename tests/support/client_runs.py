"""The load test run from a test: in a background thread while the test acts on the
world, and what a run printed and wrote (its summary.json), read back."""

from __future__ import annotations

import json
import re
import subprocess
import threading
from pathlib import Path
from typing import Any

from chatflow.client.results import RunResult
from chatflow.client.run import LoadTest

#: The lines every summary has, finished or interrupted.
SUMMARY_LABELS = ("Successful", "Failed", "Warmup phase", "Main phase", "Overall throughput",
                  "Connections opened", "Reconnections", "Little's Law")


class BackgroundRun:
    """A LoadTest running in its own thread, so the test can act on the world meanwhile;
    stopped and joined when the ``with`` block ends, whatever happened in it."""

    def __init__(self, test: LoadTest) -> None:
        self.test = test
        self._results: list[RunResult] = []
        self._thread = threading.Thread(target=lambda: self._results.append(test.run()),
                                        name="load-test", daemon=True)

    def __enter__(self) -> BackgroundRun:
        self._thread.start()
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.test.stop.set()
        self._thread.join(10)

    def result(self, timeout: float, message: str = "the run did not finish") -> RunResult:
        self._thread.join(timeout)
        assert not self._thread.is_alive(), message
        return self._results[0]


def figure(output: str, label: str) -> int:
    """The first number after ``label`` at the start of a summary line."""
    match = re.search(rf"^{re.escape(label)}\s+([\d,]+)", output, re.MULTILINE)
    assert match, f"no {label!r} line in:\n{output}"
    return int(match[1].replace(",", ""))


def line_after(output: str, label: str) -> str:
    """The rest of the summary line that starts with ``label`` (its value column)."""
    match = re.search(rf"^{re.escape(label)}\s+(.*)$", output, re.MULTILINE)
    assert match, f"no {label!r} line in:\n{output}"
    return match[1]


def summary_json(directory: Path) -> dict[str, Any]:
    """The one run's summary.json in ``directory``, parsed."""
    [path] = Path(directory).glob("*.summary.json")
    return json.loads(path.read_text(encoding="utf-8"))


def assert_no_traceback(result: subprocess.CompletedProcess[str] | str) -> None:
    text = result if isinstance(result, str) else result.stdout + result.stderr
    assert "Traceback" not in text, text
