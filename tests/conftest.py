"""The suite's fixtures; the helpers they and the tests use are in ``tests.support``."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from tests.support.servers import RunningServer, chat_handler, serving


@pytest.fixture
def chat_server() -> Iterator[RunningServer]:
    """The chat application with default limits, in this process."""
    with serving(chat_handler()) as running:
        yield running


@pytest.fixture
def chat_url(chat_server: RunningServer) -> str:
    """The ws:// base URL of ``chat_server`` (append ``/chat/{roomId}``)."""
    return chat_server.url
