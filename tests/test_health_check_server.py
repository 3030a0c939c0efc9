"""The HTTP health endpoint over real HTTP on 127.0.0.1 (SPEC §1.6)."""

from __future__ import annotations

import http.client
from collections.abc import Iterator

import pytest

from chatflow.server.config import DEFAULTS
from chatflow.server.health_check_server import HealthCheckServer
from tests.support.network import LOCALHOST
from tests.support.waiting import DEFAULT_TIMEOUT


@pytest.fixture(scope="module")
def health_port() -> Iterator[int]:
    """One server for the module: stopping one takes up to its 0.5 s poll interval."""
    server = HealthCheckServer(host=LOCALHOST, port=0, idle_timeout=DEFAULTS.health_idle_timeout)
    server.start()
    try:
        yield server.address[1]
    finally:
        server.stop()


def request(port: int, method: str, path: str, body: bytes | None = None) -> tuple[http.client.HTTPResponse, bytes]:
    connection = http.client.HTTPConnection(LOCALHOST, port, timeout=DEFAULT_TIMEOUT)
    try:
        connection.request(method, path, body=body)
        response = connection.getresponse()
        return response, response.read()
    finally:
        connection.close()


def test_get_health_answers_healthy_as_json(health_port: int) -> None:
    response, body = request(health_port, "GET", "/health")
    assert response.status == 200
    assert response.getheader("Content-Type") == "application/json"
    assert body == b'{"status":"healthy"}'
    assert response.getheader("Content-Length") == str(len(body))


def test_health_answers_again_on_the_same_kept_alive_connection(health_port: int) -> None:
    connection = http.client.HTTPConnection(LOCALHOST, health_port, timeout=DEFAULT_TIMEOUT)
    try:
        for _ in range(3):
            connection.request("GET", "/health")
            response = connection.getresponse()
            assert (response.status, response.read()) == (200, b'{"status":"healthy"}')
    finally:
        connection.close()


@pytest.mark.parametrize("method", ["POST", "PUT", "DELETE", "PATCH"])
def test_other_methods_on_health_are_not_allowed(health_port: int, method: str) -> None:
    response, _ = request(health_port, method, "/health", body=b'{"status":"?"}')
    assert response.status == 405
    assert "GET" in response.getheader("Allow", "")


@pytest.mark.parametrize("path", ["/healthz", "/health/x", "/", "/chat/1", "/Health"])
def test_other_paths_are_not_found(health_port: int, path: str) -> None:
    response, _ = request(health_port, "GET", path)
    assert response.status == 404


def test_post_to_another_path_is_not_found(health_port: int) -> None:
    response, _ = request(health_port, "POST", "/healthz", body=b"{}")
    assert response.status == 404


def test_verbose_adds_the_details_after_the_status() -> None:
    figures = {"connections": 3, "rooms": {1: 2, 7: 1}}
    server = HealthCheckServer(host=LOCALHOST, port=0, idle_timeout=DEFAULTS.health_idle_timeout,
                               details=lambda: figures)
    server.start()
    try:
        port = server.address[1]
        for path in ("/health?verbose", "/health?verbose=1", "/health?x=y&verbose"):
            response, body = request(port, "GET", path)
            assert (response.status, body) == (200, b'{"status":"healthy","connections":3,"rooms":{"1":2,"7":1}}'), path
            assert response.getheader("Content-Type") == "application/json"
        # Without the word, exactly SPEC's body.
        assert request(port, "GET", "/health?verbosity")[1] == b'{"status":"healthy"}'
        assert request(port, "GET", "/health")[1] == b'{"status":"healthy"}'
    finally:
        server.stop()


def test_verbose_without_details_is_the_plain_status(health_port: int) -> None:
    response, body = request(health_port, "GET", "/health?verbose")
    assert (response.status, body) == (200, b'{"status":"healthy"}')


def test_stop_releases_the_port() -> None:
    server = HealthCheckServer(host=LOCALHOST, port=0, idle_timeout=DEFAULTS.health_idle_timeout)
    server.start()
    port = server.address[1]
    server.stop()
    with pytest.raises(ConnectionRefusedError):
        request(port, "GET", "/health")


def test_a_problem_turns_the_answer_503_with_its_fields_and_verbose_adds_the_details() -> None:
    problem: dict | None = {"status": "unhealthy", "workers_down": [{"index": 1}]}
    server = HealthCheckServer(host=LOCALHOST, port=0, idle_timeout=DEFAULTS.health_idle_timeout,
                               details=lambda: {"connections": 0}, problem=lambda: problem)
    server.start()
    try:
        port = server.address[1]
        response, body = request(port, "GET", "/health")
        assert (response.status, body) == (503, b'{"status":"unhealthy","workers_down":[{"index":1}]}')
        assert response.getheader("Content-Type") == "application/json"
        response, body = request(port, "GET", "/health?verbose")
        assert (response.status, body) == (503, b'{"status":"unhealthy","workers_down":[{"index":1}],"connections":0}')
        problem = None
        assert request(port, "GET", "/health")[1] == b'{"status":"healthy"}'
    finally:
        server.stop()
