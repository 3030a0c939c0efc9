"""Logs for operators (docs/logging.md): the periodic summary line with the counts of a
known workload, ``--log-format json`` (every stderr line a JSON object), the DEBUG lines
of a connection's events (the options' usage errors are test_run_server.py's). Real
server processes on 127.0.0.1; every wait is on a condition with a deadline."""

from __future__ import annotations

import json
import logging
import re
import socket
from collections.abc import Callable
from typing import Any

from chatflow.logs import FIELDS, JsonFormatter
from chatflow.server.summary import Reading, summary
from tests.support.clients import connected, receive_close, round_trip
from tests.support.frames import handshake_request
from tests.support.messages import chat_message_json
from tests.support.network import LOCALHOST, read_to_end
from tests.support.processes import ListeningServer, server_process
from tests.support.waiting import DEFAULT_TIMEOUT, wait_until

VALID, INVALID = 5, 2
#: What ``workload`` does, as the summary lines must add it up.
EXPECTED = {"opened": 2, "closed": 2, "messages": VALID + INVALID + 2, "invalid": INVALID, "bad_json": 1,
            "binary": 1, "refused_handshakes": 1, "errors": INVALID + 3}
SUMMARY_TEXT = re.compile(r"chatflow\.server\.summary: (?P<connections>\d+) connections \(\+(?P<opened>\d+) "
                          r"-(?P<closed>\d+)\), (?P<rate>[\d.,]+) msg/s, (?P<errors>\d+) errors \((?P<invalid>\d+) "
                          r"invalid, (?P<bad_json>\d+) bad JSON, (?P<binary>\d+) binary, (?P<refused_handshakes>\d+) "
                          r"refused handshakes\) in the last (?P<interval>[\d.]+) s$")
JSON_KEYS = {"time", "level", "logger", "message"}
INTERVAL = "0.5"


def workload(server: ListeningServer) -> None:
    """Two connections (one in room 1 sending every kind of message, one refused its room
    with 1003) and a handshake refused with 426; every reply awaited."""
    with connected(f"{server.url}/chat/1") as ws:
        for _ in range(VALID):
            assert round_trip(ws, chat_message_json())["status"] == "success"
        for _ in range(INVALID):
            assert round_trip(ws, chat_message_json(userId=0))["status"] == "error"
        assert round_trip(ws, "not json")["status"] == "error"
        ws.send_binary(b"\x00")
        assert json.loads(ws.recv())["status"] == "error"
    with connected(f"{server.url}/chat/99") as ws:
        assert receive_close(ws)[0] == 1003
    with socket.create_connection((LOCALHOST, server.chat_port), timeout=DEFAULT_TIMEOUT) as sock:
        sock.sendall(handshake_request("/chat/1", version="12"))
        assert read_to_end(sock).startswith(b"HTTP/1.1 426 ")


def records(server: ListeningServer) -> list[dict[str, Any]]:
    """Every stderr line so far, each parsed as JSON (a line that is not fails the test)."""
    return [json.loads(line) for line in server.process.stderr.lines]


def totals(lines: list[dict[str, Any]]) -> dict[str, int]:
    """``EXPECTED``'s counts added up over the summary lines."""
    summaries = [line for line in lines if line["logger"] == "chatflow.server.summary"]
    return {key: sum(line[key] for line in summaries) for key in EXPECTED}


def wait_for_lines(server: ListeningServer, done: Callable[[list], object], parse: Callable[[ListeningServer], list],
                   message: str) -> list:
    """The parsed lines once ``done`` is true of them."""
    return wait_until(lambda: done(lines := parse(server)) and lines, message=message,
                      describe=lambda: server.process.stderr_tail())


# -- the line, as a pure function ---------------------------------------------------


def reading(at: float, **counts: int | None) -> Reading:
    values = dict(connections=0, failure=None, opened=0, closed=0, messages=0, invalid=0, bad_json=0, binary=0,
                  refused_handshakes=0)
    return Reading(at, **{**values, **counts})


def test_the_summary_is_the_difference_of_two_readings() -> None:
    before = reading(100.0, connections=61, opened=10, closed=4, messages=1_000, invalid=1)
    after = reading(110.0, connections=64, opened=13, closed=5, messages=244_100, invalid=3, bad_json=1)
    text, fields = summary(before, after)
    assert text == ("64 connections (+3 -1), 24,310 msg/s, 3 errors (2 invalid, 1 bad JSON, 0 binary, "
                    "0 refused handshakes) in the last 10 s")
    assert fields == {"interval_s": 10.0, "connections": 64, "opened": 3, "closed": 1, "messages": 243_100,
                      "msg_s": 24_310.0, "errors": 3, "invalid": 2, "bad_json": 1, "binary": 0,
                      "refused_handshakes": 0}


def test_what_is_not_counted_is_left_out_and_a_dead_server_says_so() -> None:
    echo = dict(invalid=None, bad_json=None, binary=None)
    text, _ = summary(reading(0.0, **echo), reading(2.0, messages=3, **echo))
    assert text == "0 connections (+0 -0), 1.5 msg/s, 0 errors (0 refused handshakes) in the last 2 s"
    nothing = dict(opened=None, closed=None, messages=None, refused_handshakes=None, **echo)
    text, fields = summary(reading(0.0, **nothing), reading(1.0, connections=2, failure="gone", **nothing))
    assert text == "NOT SERVING (gone); 2 connections, nothing else counted (--no-metrics) in the last 1 s"
    assert fields == {"interval_s": 1.0, "connections": 2, "failure": "gone"}


def test_a_json_line_keeps_its_own_keys_and_the_traceback_on_one_line() -> None:
    formatter = JsonFormatter({"worker": 3})
    try:
        raise ValueError("boom")
    except ValueError as exc:
        record = logging.LogRecord("chatflow.x", logging.ERROR, __file__, 1, "failed %s", ("here",),
                                   (type(exc), exc, exc.__traceback__))
    setattr(record, FIELDS, {"message": "not this", "code": 1011})
    line = formatter.format(record)
    assert "\n" not in line
    entry = json.loads(line)
    assert entry["message"] == "failed here" and entry["worker"] == 3 and entry["code"] == 1011
    assert re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z", entry["time"])
    assert "ValueError: boom" in entry["exception"]


# -- real servers -------------------------------------------------------------------


def test_json_summary_lines_add_up_to_the_workload_and_every_line_parses() -> None:
    with server_process("--log-format", "json", "--log-interval", INTERVAL, "--log-level", "DEBUG") as server:
        workload(server)
        lines = wait_for_lines(server, lambda lines: totals(lines) == EXPECTED, records,
                               "the summary lines add up to the workload")
        assert all(JSON_KEYS <= line.keys() for line in lines)
        events = [line for line in lines if line["logger"] == "chatflow.server.connections"]
        by_kind = {kind: [line for line in events if line["event"] == kind] for kind in ("opened", "closed", "refused")}
        assert [(line["path"], line["room"]) for line in by_kind["opened"]] == [("/chat/1", 1), ("/chat/99", None)]
        assert [(line["code"], line["messages"]) for line in by_kind["closed"]] == [(1000, 9), (1003, 0)]
        assert by_kind["closed"][1]["reason"].startswith("Invalid room number")
        assert [line["status"] for line in by_kind["refused"]] == [426]
        # Nothing per message at DEBUG: every line is a connection event, a summary, or the start's.
        loggers = {line["logger"] for line in lines}
        assert loggers == {"chatflow.server.lifecycle", "chatflow.server.summary", "chatflow.server.connections"}


def test_text_summary_and_connection_lines() -> None:
    with server_process("--log-interval", INTERVAL, "--log-level", "DEBUG") as server:
        workload(server)

        def summaries(running: ListeningServer) -> list[dict[str, int]]:
            return [{key: int(value) for key, value in match.groupdict().items() if key not in ("rate", "interval")}
                    for line in running.process.stderr.lines if (match := SUMMARY_TEXT.search(line))]

        def added_up(lines: list[dict[str, int]]) -> bool:
            return all(sum(line[key] for line in lines) == EXPECTED[key] for key in EXPECTED if key != "messages")

        wait_for_lines(server, added_up, summaries, "the text summary lines add up to the workload")
        text = server.process.stderr.text
        assert re.search(r"connections: opened 127\.0\.0\.1:\d+ on /chat/1 \(room 1\)$", text, re.M)
        assert re.search(r"connections: closed 127\.0\.0\.1:\d+ on /chat/1: 1000 after [\d.]+ s, 9 messages$",
                         text, re.M)
        assert re.search(r"connections: refused 127\.0\.0\.1:\d+: 426 ", text, re.M)


def test_at_info_there_is_no_connection_line() -> None:
    with server_process("--log-interval", INTERVAL) as server:
        workload(server)
        wait_until(lambda: "refused handshakes" in server.process.stderr.text, message="a summary line",
                   describe=lambda: server.process.stderr_tail())
        assert "chatflow.server.connections" not in server.process.stderr.text


def test_each_worker_logs_its_own_summary() -> None:
    with server_process("--workers", "2", "--log-format", "json", "--log-interval", INTERVAL) as server:
        lines = wait_for_lines(
            server, lambda lines: {line.get("worker") for line in lines if line["logger"] == "chatflow.server.summary"}
            == {0, 1}, records, "a summary line from each worker")
        assert all(JSON_KEYS <= line.keys() for line in lines)
