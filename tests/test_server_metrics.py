"""``GET /metrics`` (docs/metrics.md): exact counts after a known workload, the exposition
read by prometheus_client's parsers, ``--no-metrics``, and one scrape over ``--workers``.
Real servers on 127.0.0.1, real sockets; every wait has a deadline."""

from __future__ import annotations

import contextlib
import json
import os
import re
import signal
import socket

import pytest
from prometheus_client.metrics_core import CounterMetricFamily, GaugeMetricFamily
from prometheus_client.openmetrics.parser import text_string_to_metric_families as openmetrics_families
from prometheus_client.parser import text_string_to_metric_families
from prometheus_client.registry import CollectorRegistry

from chatflow.server import metrics
from chatflow.server.message_validator import FIELDS
from tests.support.clients import connected, receive_close, round_trip
from tests.support.frames import OPCODE_BINARY, OPCODE_CLOSE, OPCODE_TEXT, client_frame, handshake, \
    handshake_request, parse_frame
from tests.support.messages import chat_message_json
from tests.support.metrics import Scrape, get_metrics, scrape
from tests.support.network import LOCALHOST, RECV_SIZE, read_to_end
from tests.support.processes import REPO_ROOT, server_process
from tests.support.servers import AssembledServer, assembled
from tests.support.waiting import DEFAULT_TIMEOUT, wait_until

VALID = 12
#: Invalid messages and the fields each fails.
INVALID = [(chat_message_json(userId=0), ("userId",)),
           (chat_message_json(omit=("username", "message")), ("username", "message")),
           (chat_message_json(timestamp="yesterday", messageType="SHOUT"), ("timestamp", "messageType"))]
NOT_OBJECTS = ["not json", "[1, 2]"]
CLOSE_1000 = client_frame(OPCODE_CLOSE, (1000).to_bytes(2, "big"))
#: Reads of the replies at most, each bounded by the socket's timeout.
MAX_READS = 1000


@pytest.fixture
def server() -> AssembledServer:
    with assembled() as running:
        yield running


def frames_of(data: bytes | bytearray, whole: bool = True) -> list[tuple[int, bytes]]:
    """Every whole frame in ``data``, in order; ``whole``: nothing may follow them."""
    frames, offset = [], 0
    for _ in range(len(data)):
        frame = parse_frame(data, offset)
        if frame is None:
            break
        opcode, payload, offset = frame
        frames.append((opcode, payload))
    assert offset == len(data) or not whole, "a partial frame at the end"
    return frames


def exchange(port: int, path: str, frames: list[bytes]) -> tuple[int, int, list[tuple[int, bytes]]]:
    """A raw connection: the handshake and ``frames`` sent at once, a reply read for each,
    then a close 1000 and all the server sends until it ends the stream. The bytes sent,
    the bytes received, and the frames received."""
    with socket.create_connection((LOCALHOST, port), timeout=DEFAULT_TIMEOUT) as sock:
        request, response = handshake(sock, path)
        payload = b"".join(frames)
        sock.sendall(payload)
        replies = bytearray()
        for _ in range(MAX_READS):
            if len(frames_of(replies, whole=False)) >= len(frames):
                break
            chunk = sock.recv(RECV_SIZE)
            assert chunk, "the server ended the stream before its replies"
            replies += chunk
        sock.sendall(CLOSE_1000)
        replies += read_to_end(sock)
    return len(request) + len(payload) + len(CLOSE_1000), len(response) + len(replies), frames_of(replies)


def closed(server: AssembledServer, code: int, count: int = 1) -> Scrape:
    """The scrape once ``count`` connections have ended with ``code``."""
    return wait_until(lambda: (now := scrape(server.health_port)).count(
        "chatflow_connections_closed_total", code=str(code)) >= count and now,
        message=f"{count} connections closed with {code}")


def test_exact_counts_after_a_known_workload(server: AssembledServer) -> None:
    texts = [chat_message_json(userId=n + 1) for n in range(VALID)] + [text for text, _ in INVALID] + NOT_OBJECTS
    frames = [client_frame(OPCODE_TEXT, text.encode()) for text in texts] + [client_frame(OPCODE_BINARY, b"\x00")]
    sent, received, replies = exchange(server.port, "/chat/3", frames)
    statuses = [json.loads(payload)["status"] for opcode, payload in replies if opcode == OPCODE_TEXT]
    assert statuses == ["success"] * VALID + ["error"] * (len(INVALID) + len(NOT_OBJECTS) + 1)
    assert replies[-1][0] == OPCODE_CLOSE
    with connected(f"{server.url}/chat/99") as stray:
        assert receive_close(stray)[0] == 1003
    with connected(f"{server.url}/chat/7") as member:
        assert round_trip(member, chat_message_json())["status"] == "success"
        with socket.create_connection((LOCALHOST, server.port), timeout=DEFAULT_TIMEOUT) as old:
            old.sendall(handshake_request(version="8"))
            assert read_to_end(old).startswith(b"HTTP/1.1 426 ")
        counts = closed(server, 1003)
        handled = len(frames) + 1
        assert counts.total("chatflow_messages_received_total", outcome="success") == VALID + 1
        assert counts.total("chatflow_messages_received_total", outcome="invalid") == len(INVALID)
        assert counts.total("chatflow_messages_received_total", outcome="bad_json") == len(NOT_OBJECTS)
        assert counts.total("chatflow_messages_received_total", outcome="binary") == 1
        failed = [field for _, fields in INVALID for field in fields]
        for field in FIELDS:
            assert counts.total("chatflow_validation_errors_total", field=field) == failed.count(field), field
        assert counts.total("chatflow_replies_sent_total") == handled
        timed = counts.total("chatflow_handler_seconds_count")  # a sample, the first message always in it
        assert 1 <= timed <= handled and counts.total("chatflow_handler_seconds_bucket", le="+Inf") == timed
        assert 0 < counts.total("chatflow_handler_seconds_sum") < 1
        assert counts.total("chatflow_selector_messages_per_wakeup_sum") == handled
        assert counts.total("chatflow_selector_wakeups_total") >= counts.total(
            "chatflow_selector_messages_per_wakeup_count") >= 2
        assert counts.total("chatflow_connections_opened_total") == 3
        assert counts.total("chatflow_connections_closed_total", code="1000") == 1
        assert counts.total("chatflow_connections_closed_total") == 2
        assert counts.total("chatflow_handshakes_refused_total", status="426") == 1
        assert counts.total("chatflow_connections_open") == 1
        assert counts.labels("chatflow_room_connections", "room") == {"7"}
        assert counts.total("chatflow_room_connections", room="7") == 1
        assert counts.total("chatflow_websocket_up") == 1
        assert counts.total("process_cpu_seconds_total") > 0
        assert counts.total("process_resident_memory_bytes") > 0
    counts = closed(server, 1000, 2)
    assert counts.total("chatflow_connections_closed_total") == 3
    assert counts.total("chatflow_connections_open") == 0
    assert not counts.labels("chatflow_room_connections", "room")


def test_bytes_are_what_the_sockets_carried(server: AssembledServer) -> None:
    frames = [client_frame(OPCODE_TEXT, chat_message_json(userId=n + 1).encode()) for n in range(5)]
    sent, received, _ = exchange(server.port, "/chat/1", frames)
    counts = closed(server, 1000)
    assert counts.total("chatflow_received_bytes_total") == sent
    assert counts.total("chatflow_sent_bytes_total") == received


def test_the_handler_is_timed_on_about_one_message_in_16(server: AssembledServer) -> None:
    messages = 3200
    frame = client_frame(OPCODE_TEXT, chat_message_json().encode())
    _, _, replies = exchange(server.port, "/chat/1", [frame] * messages)
    assert len(replies) == messages + 1
    counts = closed(server, 1000)
    assert counts.total("chatflow_selector_messages_per_wakeup_sum") == messages
    # 2 ** HANDLER_SAMPLE_BITS on average: about 194 of 3,200; the bounds are many deviations away.
    expected = messages / (2 ** metrics.HANDLER_SAMPLE_BITS + 0.5)
    assert expected / 2 < counts.total("chatflow_handler_seconds_count") < expected * 2


def test_the_exposition_reads_as_prometheus_text_and_as_openmetrics(server: AssembledServer) -> None:
    with connected(f"{server.url}/chat/2") as ws:
        round_trip(ws, chat_message_json())
        status, content_type, body = get_metrics(server.health_port)
        assert (status, content_type) == (200, "text/plain; version=0.0.4; charset=utf-8")
        names = {family.name: family.type for family in text_string_to_metric_families(body.decode())}
        assert names["chatflow_messages_received"] == "counter"
        assert names["chatflow_handler_seconds"] == "histogram"
        assert names["chatflow_connections_open"] == "gauge"
        status, content_type, body = get_metrics(server.health_port, accept="application/openmetrics-text")
        assert status == 200 and content_type.startswith("application/openmetrics-text")
        parsed = {family.name: family for family in openmetrics_families(body.decode())}
        assert set(parsed) == set(names)
        assert get_metrics(server.health_port, method="HEAD")[:2] == (200, "text/plain; version=0.0.4; charset=utf-8")
        assert get_metrics(server.health_port, method="POST")[0] == 405


def test_no_metrics_counts_nothing_and_serves_no_metrics() -> None:
    with assembled(metrics=False) as server:
        assert server.parts.websocket.stats is None and server.parts.chat.stats is None
        assert server.parts.registry is None
        with connected(f"{server.url}/chat/1") as ws:
            assert round_trip(ws, chat_message_json())["status"] == "success"
        assert get_metrics(server.health_port)[0] == 404


def test_broadcast_counts_deliveries() -> None:
    with assembled(mode="broadcast") as server:
        with connected(f"{server.url}/chat/5") as sender, connected(f"{server.url}/chat/5") as member:
            wait_until(lambda: scrape(server.health_port).total("chatflow_room_connections", room="5") == 2,
                       message="both in room 5")
            assert round_trip(sender, chat_message_json())["status"] == "success"
            assert json.loads(member.recv())["type"] == "roomMessage"
            counts = scrape(server.health_port)
            assert counts.total("chatflow_broadcast_deliveries_total") == 1
            assert counts.total("chatflow_broadcast_evictions_total") == 0
            assert counts.total("chatflow_messages_received_total", outcome="success") == 1


def test_merge_labels_each_sample_with_its_worker() -> None:
    def registry(value: float) -> CollectorRegistry:
        class One:
            def collect(self):
                yield CounterMetricFamily("x", "x.", value=value)
                yield GaugeMetricFamily("g", "g.", value=value * 10)

        one = CollectorRegistry(auto_describe=False)
        one.register(One())
        return one

    merged = metrics.merge({"0": metrics.families(registry(1)), "1": metrics.families(registry(2))})
    assert [(family.name, family.type) for family in merged] == [("x", "counter"), ("g", "gauge")]
    assert [(sample.name, sample.labels, sample.value) for sample in merged[0].samples] == [
        ("x_total", {"worker": "0"}, 1), ("x_total", {"worker": "1"}, 2)]


def test_one_scrape_covers_every_worker() -> None:
    with server_process("--workers", "2") as server, contextlib.ExitStack() as stack:
        opened = []
        for n in range(40):  # SO_REUSEPORT spreads them: until each worker has some
            opened.append(stack.enter_context(connected(f"{server.url}/chat/{n % 20 + 1}")))
            assert round_trip(opened[-1], chat_message_json())["status"] == "success"
            counts = scrape(server.health_port)
            per_worker = [counts.total("chatflow_connections_open", worker=w) for w in ("0", "1")]
            if len(opened) >= 4 and min(per_worker) > 0:
                break
        assert min(per_worker) > 0, per_worker
        assert counts.total("chatflow_messages_received_total", outcome="success") == len(opened)
        assert counts.total("chatflow_connections_open") == len(opened)
        assert counts.labels("process_cpu_seconds_total", "worker") == {"0", "1", "supervisor"}
        assert counts.total("chatflow_worker_up", worker="0") == counts.total("chatflow_worker_up", worker="1") == 1
        victim = server.health(verbose=True)[1]["workers"][1]["pid"]
        os.kill(victim, signal.SIGKILL)
        counts = wait_until(lambda: (c := scrape(server.health_port)).total("chatflow_worker_up", worker="1") == 0
                            and c, message="worker 1 down in /metrics")
        assert counts.labels("chatflow_connections_open", "worker") == {"0"}


def test_docs_name_every_metric_the_server_exports() -> None:
    with assembled(mode="broadcast") as server:
        exported = set(scrape(server.health_port).families)
    documented = set(re.findall(r"`((?:chatflow|process)_[a-z_]+)`", (REPO_ROOT / "docs" / "metrics.md").read_text()))
    missing = {name for name in exported if name not in documented and f"{name}_total" not in documented}
    assert not missing, f"not in docs/metrics.md: {sorted(missing)}"
