"""deploy/grafana-dashboard.json queries only what the server exports: every metric name in
its PromQL is a sample of a real server's ``/metrics`` after a workload that gives every
family samples (a broadcast server in the test's process, and ``--workers 2``'s supervisor
for the workers' own family)."""

from __future__ import annotations

import json
import re
import socket

from tests.support.clients import connected, receive_close, round_trip
from tests.support.frames import handshake_request
from tests.support.messages import chat_message_json
from tests.support.metrics import scrape
from tests.support.network import LOCALHOST, read_to_end
from tests.support.processes import REPO_ROOT, server_process
from tests.support.servers import assembled
from tests.support.waiting import DEFAULT_TIMEOUT, wait_until

DASHBOARD = REPO_ROOT / "deploy" / "grafana-dashboard.json"
#: What PromQL writes with a name that is not a metric's: its aggregations, keywords and
#: functions (a function is also told by the parenthesis after it).
NOT_METRICS = {"sum", "min", "max", "avg", "count", "by", "without", "on", "ignoring", "group_left", "group_right",
               "bool", "and", "or", "unless", "offset", "le", "inf", "nan"}
_STRINGS = re.compile(r'"(?:[^"\\]|\\.)*"|\'(?:[^\'\\]|\\.)*\'')
_MATCHERS = re.compile(r"\{[^{}]*\}|\[[^\[\]]*\]")
_GROUPINGS = re.compile(r"\b(?:by|without|on|ignoring|group_left|group_right)\s*\([^()]*\)")
_NAME = re.compile(r"(?<![A-Za-z0-9_:.])[A-Za-z_:][A-Za-z0-9_:]*(?![A-Za-z0-9_:])(?!\s*\()")
_LABEL_VALUES = re.compile(r"label_values\(\s*([A-Za-z_:][A-Za-z0-9_:]*)\s*,\s*[A-Za-z_]+\s*\)")


def metric_names(expr: str) -> set[str]:
    """The metric names a PromQL expression selects: strings, label matchers, ranges and
    groupings taken out, then every name that is neither called nor a keyword. Grafana's
    ``label_values(metric, label)`` (a variable's query, not PromQL) names its metric."""
    if variable := _LABEL_VALUES.fullmatch(expr.strip()):
        return {variable.group(1)}
    bare = _GROUPINGS.sub(" ", _MATCHERS.sub(" ", _STRINGS.sub(" ", expr)))
    return {match.group() for match in _NAME.finditer(bare) if match.group() not in NOT_METRICS}


def queries(dashboard: dict) -> list[str]:
    """Every PromQL expression of the dashboard: its panels' targets and its variables'."""
    exprs = [target["expr"] for panel in dashboard["panels"] for target in panel.get("targets", [])]
    for variable in dashboard["templating"]["list"]:
        query = variable.get("query")
        if variable["type"] == "query":
            exprs.append(query["query"] if isinstance(query, dict) else query)
    return exprs


def test_metric_names_reads_promql() -> None:
    quantile = 'histogram_quantile(0.99, sum by (le) (rate(a_bucket{job=~"$job",x!="y"}[$__rate_interval])))'
    assert metric_names(quantile) == {"a_bucket"}
    assert metric_names("sum(rate(a_total[5m])) / sum without (worker) (b)") == {"a_total", "b"}
    assert metric_names("label_values(up_metric, job)") == {"up_metric"}


def workload(url: str, port: int) -> None:
    """Every kind of message, a room's fan-out, a refused path, a refused handshake."""
    with connected(f"{url}/chat/4") as sender, connected(f"{url}/chat/4") as member:
        for text in (chat_message_json(), chat_message_json(userId=0), "not json"):
            round_trip(sender, text)
        sender.send_binary(b"\x00")
        sender.recv()
        member.recv()
    with connected(f"{url}/chat/0") as stray:
        receive_close(stray)
    with socket.create_connection((LOCALHOST, port), timeout=DEFAULT_TIMEOUT) as old:
        old.sendall(handshake_request(version="8"))
        read_to_end(old)


def test_every_metric_the_dashboard_queries_is_exported() -> None:
    dashboard = json.loads(DASHBOARD.read_text())
    wanted = set().union(*(metric_names(expr) for expr in queries(dashboard)))
    # The panels the issue asks for, each on its metric (the extraction found them).
    assert {"chatflow_messages_received_total", "chatflow_connections_open", "chatflow_room_connections",
            "chatflow_handler_seconds_bucket", "chatflow_validation_errors_total", "process_cpu_seconds_total",
            "process_resident_memory_bytes"} <= wanted
    with assembled(mode="broadcast") as server, connected(f"{server.url}/chat/9"):  # a room occupied
        workload(server.url, server.port)
        exported = wait_until(lambda: (s := scrape(server.health_port)).count(
            "chatflow_connections_closed_total") >= 3 and s, message="the workload's connections closed").sample_names
    with server_process("--workers", "2") as workers:
        exported |= scrape(workers.health_port).sample_names
    assert not wanted - exported, f"queried, not exported: {sorted(wanted - exported)}"


def test_the_dashboard_is_one_grafana_model_on_one_data_source() -> None:
    dashboard = json.loads(DASHBOARD.read_text())
    panels = dashboard["panels"]
    assert len({panel["id"] for panel in panels}) == len(panels)
    assert all(panel["datasource"] == {"type": "prometheus", "uid": "${datasource}"} for panel in panels)
    assert all(panel["targets"] and all(target["refId"] for target in panel["targets"]) for panel in panels)
    names = [variable["name"] for variable in dashboard["templating"]["list"]]
    assert names == ["datasource", "job"]
