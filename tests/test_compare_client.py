"""The client's ``--no-analysis``, which the comparison runs it with: the CSV, the
summary and its summary.json only, so that its process's CPU is the load test's."""

from __future__ import annotations

import re
from pathlib import Path

from tests.support.client_runs import SUMMARY_LABELS, assert_no_traceback, figure
from tests.support.processes import run_client


def test_no_analysis_writes_the_csv_and_the_summary_only(tmp_path: Path) -> None:
    result = run_client("--local", "--no-analysis", "--messages", "600", "--warmup-threads", "2",
                        "--warmup-messages", "100", "--threads", "4", "--probe-messages", "5", "--quiet",
                        "--output-dir", str(tmp_path))
    assert result.returncode == 0, result
    assert_no_traceback(result)
    out = result.stdout
    for label in SUMMARY_LABELS:
        assert re.search(rf"^\s*{re.escape(label)}", out, re.MULTILINE), f"no {label!r} line in:\n{out}"
    assert figure(out, "Successful") == 600
    [csv] = tmp_path.glob("metrics_*.csv")
    assert f"Metrics: {csv} (600 rows)" in out
    assert sorted(path.name for path in tmp_path.iterdir()) == sorted([csv.name, f"{csv.stem}.summary.json",
                                                                       "server.log"])
    assert "Files written" not in out and "Aggregated" not in out
    assert out.strip().splitlines()[-1] == "OK: all 600 messages succeeded"
