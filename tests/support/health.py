"""The health endpoint asked over real HTTP, as a monitor asks it."""

from __future__ import annotations

import http.client
import json
from typing import Any

from tests.support.network import LOCALHOST
from tests.support.waiting import DEFAULT_TIMEOUT


def get_health(port: int, path: str = "/health") -> tuple[int, dict[str, Any]]:
    """``GET path`` on 127.0.0.1:``port``: the status code and the JSON body."""
    connection = http.client.HTTPConnection(LOCALHOST, port, timeout=DEFAULT_TIMEOUT)
    try:
        connection.request("GET", path)
        response = connection.getresponse()
        return response.status, json.loads(response.read())
    finally:
        connection.close()
