"""The comparison's pure parts: pairings and their order, command templates, the one
yardstick on hand-written CSVs of each client, and the ratios (exact figures)."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from chatflow.analysis.performance_analyzer import AnalysisError, PerformanceAnalyzer
from chatflow.compare import aggregate, yardstick
from chatflow.compare.commands import CommandError, CommandTemplate, java_templates, run_values
from chatflow.compare.pairings import CODES, PairingError, abba_order, codes_table, parse_only

# -- pairings


def test_abba_order_reverses_every_second_round() -> None:
    assert abba_order(CODES, 2) == [("pp", 1), ("po", 1), ("op", 1), ("oo", 1),
                                    ("oo", 2), ("op", 2), ("po", 2), ("pp", 2)]
    assert [code for code, _ in abba_order(["pp", "oo"], 3)] == ["pp", "oo", "oo", "pp", "pp", "oo"]


@pytest.mark.parametrize(("text", "codes"), [
    ("pp,jp", ["pp", "op"]),
    (" JP , pp,oo ", ["pp", "op", "oo"]),
    ("oj,jo,pj", ["po", "oo"]),
    ("po,po", ["po"]),
])
def test_only_takes_the_others_initial_for_o(text: str, codes: list[str]) -> None:
    assert parse_only(text, "Java") == codes


@pytest.mark.parametrize("text", ["px", "ppp", ",", "jp"])
def test_only_refuses_what_is_no_pairing(text: str) -> None:
    with pytest.raises(PairingError):
        parse_only(text, "Go")


def test_an_other_named_with_p_is_o_only() -> None:
    assert parse_only("pp,op", "Pony") == ["pp", "op"]
    assert codes_table({"python": "Python", "other": "Pony"})["op"] == {
        "client": "Pony", "server": "Python", "label": "Pony → Python"}


# -- commands


def values(**overrides: object) -> dict[str, object]:
    return {**run_values(url="ws://127.0.0.1:9001", host="127.0.0.1", port=9001, health_port=9002, messages=500,
                         warmup_threads=2, warmup_messages=10, threads=4), **overrides}


def test_a_template_is_split_then_filled_word_by_word() -> None:
    command = CommandTemplate("A={port} B='x y' ./srv --port={port} --dir '{url} here' ${HOME}").fill(
        values(url="ws://h:1 /odd"))
    assert command.env == {"A": "9001", "B": "x y"}
    assert command.argv == ["./srv", "--port=9001", "--dir", "ws://h:1 /odd here", "${HOME}"]


@pytest.mark.parametrize(("text", "says"), [
    ("srv {prot}", "unknown placeholder(s) {prot}"),
    ("srv 'open", "cannot split"),
    ("A=1 B=2", "no program"),
    ("", "no program"),
])
def test_a_bad_template_is_one_line(text: str, says: str) -> None:
    with pytest.raises(CommandError, match="^[^\n]*$") as caught:
        CommandTemplate(text)
    assert says in str(caught.value)


def test_java_shorthand_fills_the_scripts_of_its_folder(tmp_path: Path) -> None:
    folder = tmp_path / "java original"
    folder.mkdir()
    with pytest.raises(CommandError, match="not a built Java original"):
        java_templates(folder)
    for name in ("run_server.sh", "run_client.sh"):
        (folder / name).write_text("#!/bin/sh\n")
    server, client = (template.fill(values()) for template in java_templates(folder))
    assert server.env == {}  # the ports come from the environment the runner sets
    assert server.argv == [str(folder / "run_server.sh")]
    assert client.argv == [str(folder / "run_client.sh"), "ws://127.0.0.1:9001"] and client.env == {}


# -- the yardstick

JAVA_CSV = """timestamp,messageType,latency,statusCode,roomId
1000,TEXT,2,success,1
1500,JOIN,4,success,2
2000,TEXT,10,error,3
3000,LEAVE,6,success,1
"""
CHATFLOW_CSV = """timestamp,messageType,latency,statusCode,roomId,final
1000,TEXT,1.500,timeout,1,0
1100,TEXT,0.250,success,1,1
1200,JOIN,0.750,success,2,1
1400,TEXT,5.000,error,3,1
"""


def measured(tmp_path: Path, text: str, messages: int) -> tuple[dict, dict, dict]:
    (tmp_path / "results").mkdir()
    (tmp_path / "results" / "metrics_1.csv").write_text(text)
    path, table = yardstick.newest_metrics(tmp_path)
    assert path == tmp_path / "results" / "metrics_1.csv"
    return yardstick.figures(table, messages), yardstick.timeline(table), yardstick.cdf(table)


def test_the_java_clients_csv(tmp_path: Path) -> None:
    figures, timeline, cdf = measured(tmp_path, JAVA_CSV, messages=4)
    assert figures == {
        "messages": 4, "rows": 4, "success": 3, "failed": 1, "success_ratio": 0.75,
        "span_s": 2.0, "msg_s": 1.5,  # 3 successes over 2 s of sends (not to the last reply)
        "latency_ms": {"mean": 4.0, "p50": 4.0, "p95": pytest.approx(5.8), "p99": pytest.approx(5.96), "max": 6.0},
        "latency_resolution_ms": 1,
    }
    # Completions at 0.002, 0.504 and 2.006 s after the first send.
    assert timeline == {"bucket_s": 1.0, "success": [2, 0, 1]}
    assert len(cdf["quantiles"]) == len(cdf["latency_ms"]) == len(yardstick.CDF_QUANTILES)
    assert cdf["latency_ms"][0] == 2.0 and cdf["latency_ms"][-1] == 6.0 and cdf["quantiles"][50] == 0.5
    assert cdf["latency_ms"][50] == 4.0


def test_chatflows_csv_counts_outcomes_not_attempts(tmp_path: Path) -> None:
    figures, timeline, _ = measured(tmp_path, CHATFLOW_CSV, messages=4)
    assert figures == {
        "messages": 4, "rows": 4, "success": 2, "failed": 1, "success_ratio": 0.5,
        "span_s": 0.4, "msg_s": 5.0,
        "latency_ms": {"mean": 0.5, "p50": 0.5, "p95": pytest.approx(0.725), "p99": pytest.approx(0.745),
                       "max": 0.75},
        "latency_resolution_ms": 0.001,
    }
    assert timeline == {"bucket_s": 1.0, "success": [2]}


@pytest.mark.parametrize("text", [JAVA_CSV, CHATFLOW_CSV])
def test_the_timeline_is_the_analyzers(tmp_path: Path, text: str) -> None:
    (tmp_path / "metrics.csv").write_text(text)
    path, table = yardstick.newest_metrics(tmp_path)
    buckets = PerformanceAnalyzer(yardstick.TIMELINE_BUCKET_S).analyze(path).buckets
    assert yardstick.timeline(table)["success"] == [bucket.successes for bucket in buckets]


def test_a_stray_timestamp_is_one_line_not_a_billion_buckets(tmp_path: Path) -> None:
    stray = JAVA_CSV + "0,TEXT,1,success,1\n1800000000000,TEXT,1,success,1\n"  # 1970 and 2027
    (tmp_path / "metrics.csv").write_text(stray)
    _, table = yardstick.newest_metrics(tmp_path)
    with pytest.raises(AnalysisError, match=r"^[\d,]+ buckets of 1 s .*at most 100,000[^\n]*$"):
        yardstick.timeline(table)


def test_a_run_without_successes_has_a_timeline_of_zeros(tmp_path: Path) -> None:
    (tmp_path / "metrics.csv").write_text("timestamp,messageType,latency,statusCode,roomId\n"
                                          "1000,TEXT,2,error,1\n2500,TEXT,2,timeout,1\n")
    assert yardstick.timeline(yardstick.newest_metrics(tmp_path)[1]) == {"bucket_s": 1.0, "success": [0, 0]}


def test_the_newest_metrics_csv_wins_and_other_csvs_are_passed_over(tmp_path: Path) -> None:
    old, new, other = tmp_path / "a" / "old.csv", tmp_path / "b" / "new.csv", tmp_path / "other.csv"
    for path, text, mtime in ((old, JAVA_CSV, 1_000), (new, CHATFLOW_CSV, 2_000), (other, "a,b\n1,2\n", 3_000)):
        path.parent.mkdir(exist_ok=True)
        path.write_text(text)
        os.utime(path, (mtime, mtime))
    assert yardstick.newest_metrics(tmp_path)[0] == new
    for path in (old, new, other):
        path.unlink()
    with pytest.raises(AnalysisError, match="no metrics CSV under"):
        yardstick.newest_metrics(tmp_path)


# -- aggregates


def run(code: str, round_number: int, msg_s: float, server_us: float, client_us: float, ok: bool = True) -> dict:
    return {"code": code, "round": round_number, "ok": ok,
            "figures": {"msg_s": msg_s, "server_cpu_us_per_msg": server_us, "client_cpu_us_per_msg": client_us,
                        "latency_ms": {"p50": 1.0, "p99": 4.0}, "client_peak_rss_mib": 100.0, "success_ratio": 1.0}}


RUNS = [
    run("oo", 1, 100, 40, 80), run("op", 1, 150, 30, 80), run("po", 1, 50, 40, 100), run("pp", 1, 100, 20, 40),
    run("oo", 2, 200, 40, 80), run("op", 2, 100, 20, 80), run("po", 2, 300, 40, 160), run("pp", 2, 100, 10, 40),
    # Round 3: the other pair failed, so no ratio of this round; the failed run's figures count nowhere.
    run("oo", 3, 1, 1, 1, ok=False), run("op", 3, 999, 1, 1), run("pp", 3, 400, 30, 40),
]


def test_pairings_are_medians_with_min_max_of_ok_runs() -> None:
    summary = aggregate.pairings(RUNS, ["oo", "pp"])
    assert summary["oo"]["runs"] == 3 and summary["oo"]["ok_runs"] == 2
    assert summary["oo"]["median"]["msg_s"] == 150 and summary["oo"]["min"]["msg_s"] == 100
    assert summary["oo"]["max"]["msg_s"] == 200
    assert summary["pp"]["median"]["msg_s"] == 100 and summary["pp"]["max"]["server_cpu_us_per_msg"] == 30
    assert summary["pp"]["median"]["p99_ms"] == 4.0 and summary["pp"]["median"]["client_peak_rss_mib"] == 100.0


def test_ratios_are_per_round_then_median_and_min_max() -> None:
    ratios = aggregate.ratios(RUNS)
    assert ratios["server"]["numerator"] == "op" and ratios["server"]["denominator"] == "oo"
    assert ratios["server"]["msg_s"] == {"median": 1.0, "min": 0.5, "max": 1.5}
    assert ratios["server"]["server_cpu_us_per_msg"] == {"median": 0.625, "min": 0.5, "max": 0.75}
    assert ratios["client"]["msg_s"] == {"median": 1.0, "min": 0.5, "max": 1.5}
    assert ratios["client"]["client_cpu_us_per_msg"] == {"median": 1.625, "min": 1.25, "max": 2.0}
    assert ratios["pair"]["msg_s"] == {"median": 0.75, "min": 0.5, "max": 1.0}
    assert set(ratios["pair"]) == {"numerator", "denominator", "msg_s", "server_cpu_us_per_msg",
                                   "client_cpu_us_per_msg"}


def test_a_ratio_without_both_sides_is_null() -> None:
    ratios = aggregate.ratios([run("pp", 1, 100, 20, 40)])
    assert ratios["pair"]["msg_s"] == {"median": None, "min": None, "max": None}
