"""``run_server.py`` as a real process: its ports, signals and command-line errors (SPEC §1.1)."""

from __future__ import annotations

import http.client
import signal
import socket
from collections.abc import Iterator

import pytest

from tests.support.clients import connected, receive_close, round_trip
from tests.support.health import get_health
from tests.support.messages import chat_message_json
from tests.support.network import LOCALHOST
from tests.support.processes import assert_usage_error, run_server_to_exit, server_process
from tests.support.waiting import DEFAULT_TIMEOUT, wait_until


@pytest.fixture
def busy_port() -> Iterator[int]:
    """A port with a listener on it, so that binding it fails."""
    with socket.create_server((LOCALHOST, 0)) as listener:
        yield listener.getsockname()[1]


def test_serves_chat_and_health_on_the_ports_it_reports() -> None:
    with server_process() as server:
        with connected(f"{server.url}/chat/1") as ws:
            reply = round_trip(ws, chat_message_json())
        assert reply["status"] == "success"

        health = http.client.HTTPConnection(LOCALHOST, server.health_port, timeout=DEFAULT_TIMEOUT)
        try:
            health.request("GET", "/health")
            response = health.getresponse()
            assert (response.status, response.read()) == (200, b'{"status":"healthy"}')
        finally:
            health.close()


def health_body(port: int, path: str) -> dict:
    status, body = get_health(port, path)
    assert status == 200
    return body


def test_verbose_health_reports_the_connections_in_each_room() -> None:
    with server_process() as server:
        assert health_body(server.health_port, "/health?verbose") == {"status": "healthy", "connections": 0, "rooms": {}}
        with connected(f"{server.url}/chat/3") as a, connected(f"{server.url}/chat/3") as b, \
                connected(f"{server.url}/chat/7") as c:
            for ws in (a, b, c):
                assert round_trip(ws, chat_message_json())["status"] == "success"
            assert health_body(server.health_port, "/health?verbose") == {
                "status": "healthy", "connections": 3, "rooms": {"3": 2, "7": 1}}
            assert health_body(server.health_port, "/health") == {"status": "healthy"}


def test_verbose_health_of_the_echo_mount_has_no_rooms() -> None:
    with server_process("--echo") as server:
        with connected(f"{server.url}/any/path"):
            body = wait_until(lambda: (b := health_body(server.health_port, "/health?verbose"))["connections"] and b)
        assert body == {"status": "healthy", "connections": 1}


@pytest.mark.parametrize("signum", [signal.SIGTERM, signal.SIGINT], ids=["SIGTERM", "SIGINT"])
def test_signal_closes_clients_with_1001_and_exits_0(signum: int) -> None:
    with server_process() as server:
        with connected(f"{server.url}/chat/2") as ws:
            assert round_trip(ws, chat_message_json())["status"] == "success"
            server.process.send_signal(signum)
            code, _ = receive_close(ws)
            assert code == 1001
        assert server.process.wait(5) == 0
        assert "Traceback" not in server.process.stderr.text


def test_max_rooms_option_changes_the_bound_and_the_reasons() -> None:
    with server_process("--max-rooms", "30") as server:
        with connected(f"{server.url}/chat/30") as ws:
            assert round_trip(ws, chat_message_json())["status"] == "success"
        with connected(f"{server.url}/chat/31") as ws:
            assert receive_close(ws) == (1003, "Invalid room number. Room must be between 1 and 30")
        with connected(f"{server.url}/chat/30/") as ws:
            assert receive_close(ws) == (1003, "Invalid endpoint. Use /chat/{roomId} where roomId is 1-30")


def test_max_message_size_option_sets_the_1009_limit() -> None:
    with server_process("--max-message-size", "200") as server:
        with connected(f"{server.url}/chat/3") as ws:
            assert round_trip(ws, chat_message_json())["status"] == "success"
            ws.send(chat_message_json(message="x" * 200))
            assert receive_close(ws)[0] == 1009


def test_echo_option_echoes_text_and_binary_on_any_path() -> None:
    with server_process("--echo") as server:
        with connected(f"{server.url}/anything") as ws:
            ws.send("not a chat message")
            assert ws.recv() == "not a chat message"
            ws.send_binary(b"\x00\xff")
            assert ws.recv() == b"\x00\xff"


@pytest.mark.parametrize("which", ["--port", "--health-port"])
def test_port_in_use_is_a_one_line_error_and_exit_1(busy_port: int, which: str) -> None:
    ports = {"--port": "0", "--health-port": "0", which: str(busy_port)}
    result = run_server_to_exit("--host", LOCALHOST, *[item for pair in ports.items() for item in pair])
    assert result.returncode == 1
    assert "Traceback" not in result.stderr
    [line] = result.stderr.splitlines()
    assert line.startswith("chatflow-server: error: cannot listen for ")
    assert f"{LOCALHOST}:{busy_port}" in line
    assert "in use" in line


@pytest.mark.parametrize(
    ("args", "option"),
    [
        (["--port", "abc"], "--port"),
        (["--port", "70000"], "--port"),
        (["--max-rooms", "0"], "--max-rooms"),
        (["--ping-interval", "0"], "--ping-interval"),
        (["--log-format", "xml"], "--log-format"),
        (["--log-interval", "-1"], "--log-interval"),
        (["--log-interval", "soon"], "--log-interval"),
        (["--worker-exit", "restart"], "--worker-exit"),
    ],
)
def test_bad_option_values_are_a_usage_error(args: list[str], option: str) -> None:
    result = run_server_to_exit(*args)
    assert result.returncode == 2
    assert_usage_error(result.stderr, f"chatflow-server: error: argument {option}: ")


def test_help_describes_the_options() -> None:
    result = run_server_to_exit("--help")
    assert result.returncode == 0
    for option in ("--host", "--port", "--health-port", "--max-rooms", "--echo"):
        assert option in result.stdout


def test_shutdown_does_not_wait_for_a_client_still_in_its_handshake() -> None:
    """A client that never finishes its handshake does not hold the process open."""
    with server_process() as server:
        with socket.create_connection((LOCALHOST, server.chat_port), timeout=DEFAULT_TIMEOUT) as stray:
            stray.sendall(b"GET /chat/1 HTTP/1.1\r\n")
            with connected(f"{server.url}/chat/1") as ws:
                server.process.send_signal(signal.SIGTERM)
                assert receive_close(ws)[0] == 1001
            assert server.process.wait(5) == 0
            assert stray.recv(1024) == b""

