"""The HTTP health endpoint (SPEC §1.6), on the standard library's threading server.

``GET /health`` answers exactly SPEC's ``{"status":"healthy"}``; ``GET /health?verbose``
adds what the server reports of itself (open connections, connections per room), as
``/healthz?verbose`` does on a Kubernetes API server (docs/server-design.md). A server
that is not wholly well says so (``Problem``): ``degraded`` with HTTP 200 while it still
serves its clients (its bus is down, docs/broadcast.md), ``unhealthy`` with 503 when it
knows itself broken (its WebSocket listener or selector thread gone, a worker process
gone: docs/workers.md). ``GET /metrics`` serves the server's Prometheus metrics, when it
is given them (docs/metrics.md).
"""

from __future__ import annotations

import json
import logging
import threading
from collections.abc import Callable, Mapping
from http import HTTPStatus
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import parse_qs, urlsplit

log = logging.getLogger("chatflow.server.health")

HEALTH_PATH = "/health"
METRICS_PATH = "/metrics"
HEALTHY_BODY = b'{"status":"healthy"}'
VERBOSE = "verbose"

#: What ``?verbose`` adds to the status: figures of the server, read from the health
#: endpoint's threads, so they must be safe to read from any thread.
Details = Callable[[], Mapping[str, object]]
#: What is wrong with the server now: None while nothing is, else the answer's fields,
#: ``status`` first (``DEGRADED`` or ``UNHEALTHY``); read from the endpoint's threads.
Problem = Callable[[], Mapping[str, object] | None]
#: ``/metrics``: the scrape's body and content type, for the request's ``Accept`` header.
Metrics = Callable[[str | None], tuple[bytes, str]]
DEGRADED, UNHEALTHY = "degraded", "unhealthy"


class _HealthRequestHandler(BaseHTTPRequestHandler):
    server_version = "ChatFlow"
    sys_version = ""
    protocol_version = "HTTP/1.1"

    def do_GET(self) -> None:
        self._respond(send_body=True)

    def do_HEAD(self) -> None:
        self._respond(send_body=False)

    def _respond(self, send_body: bool) -> None:
        url = urlsplit(self.path)
        if url.path == METRICS_PATH and self.server.metrics is not None:
            self._scrape(send_body)
            return
        if url.path != HEALTH_PATH:
            self._send(HTTPStatus.NOT_FOUND, b'{"status":"not found"}', send_body)
            return
        details = self.server.details
        problem = self.server.problem() if self.server.problem is not None else None
        verbose = details is not None and VERBOSE in parse_qs(url.query, keep_blank_values=True)
        if problem is None and not verbose:
            self._send(HTTPStatus.OK, HEALTHY_BODY, send_body)
            return
        fields = dict(problem) if problem is not None else {"status": "healthy"}
        if verbose:
            fields.update(details())
        body = json.dumps(fields, separators=(",", ":")).encode()
        unhealthy = problem is not None and problem["status"] == UNHEALTHY
        self._send(HTTPStatus.SERVICE_UNAVAILABLE if unhealthy else HTTPStatus.OK, body, send_body)

    def _scrape(self, send_body: bool) -> None:
        try:
            body, content_type = self.server.metrics(self.headers.get("Accept"))
        except Exception:
            log.exception("collecting the metrics failed")
            self._send(HTTPStatus.INTERNAL_SERVER_ERROR, b'{"status":"metrics failed"}', send_body)
            return
        self._send(HTTPStatus.OK, body, send_body, content_type=content_type)

    def _served(self, path: str) -> bool:
        return path == HEALTH_PATH or (path == METRICS_PATH and self.server.metrics is not None)

    def _not_allowed(self) -> None:
        # The request body is never read, so the connection cannot be reused.
        self.close_connection = True
        if not self._served(urlsplit(self.path).path):
            self._send(HTTPStatus.NOT_FOUND, b'{"status":"not found"}', True)
            return
        self._send(HTTPStatus.METHOD_NOT_ALLOWED, b'{"status":"method not allowed"}', True, allow="GET, HEAD")

    do_POST = do_PUT = do_DELETE = do_PATCH = do_OPTIONS = _not_allowed

    def _send(self, status: HTTPStatus, body: bytes, send_body: bool, allow: str | None = None,
              content_type: str = "application/json") -> None:
        self.send_response(status)
        self.send_header("Content-Type", content_type)
        self.send_header("Content-Length", str(len(body)))
        if allow:
            self.send_header("Allow", allow)
        self.end_headers()
        if send_body:
            self.wfile.write(body)

    def setup(self) -> None:
        # A thread serves each connection; without a timeout a client that sends
        # nothing (or keeps its connection alive and idle) holds its thread for ever.
        self.timeout = self.server.idle_timeout
        super().setup()

    def log_message(self, format: str, *args: object) -> None:
        log.debug("%s %s", self.address_string(), format % args)


class _HealthHTTPServer(ThreadingHTTPServer):
    daemon_threads = True

    def __init__(self, address: tuple[str, int], idle_timeout: float, details: Details | None,
                 problem: Problem | None, metrics: Metrics | None) -> None:
        self.idle_timeout = idle_timeout
        self.details = details
        self.problem = problem
        self.metrics = metrics
        super().__init__(address, _HealthRequestHandler)


class HealthCheckServer:
    """``GET /health`` → 200 ``{"status":"healthy"}`` (503 while ``problem`` says why not),
    and ``GET /metrics`` when given ``metrics``; binds in ``start()``."""

    def __init__(self, *, host: str, port: int, idle_timeout: float, details: Details | None = None,
                 problem: Problem | None = None, metrics: Metrics | None = None) -> None:
        self.host = host
        self.port = port
        #: A connection that has not sent a whole request for this long is closed.
        self.idle_timeout = idle_timeout
        self.details = details
        self.problem = problem
        self.metrics = metrics
        self._httpd: _HealthHTTPServer | None = None
        self._thread: threading.Thread | None = None

    @property
    def address(self) -> tuple[str, int]:
        assert self._httpd is not None, "start() first"
        return self._httpd.server_address[:2]

    def start(self) -> None:
        self._httpd = _HealthHTTPServer((self.host, self.port), self.idle_timeout, self.details, self.problem,
                                        self.metrics)
        self._thread = threading.Thread(target=self._httpd.serve_forever, name="HealthCheckServer", daemon=True)
        self._thread.start()

    def stop(self) -> None:
        if self._httpd is not None:
            self._httpd.shutdown()
            self._httpd.server_close()
            self._httpd = None
