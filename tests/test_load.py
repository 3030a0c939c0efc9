"""The server under many connections at once, and under connection churn: the short
form of ``python -m bench.soak`` (docs/reliability.md has the long form's figures).

One client thread drives every connection, so that the server (in this process) has
the second core: a message goes out on every connection before any reply is read.
"""

from __future__ import annotations

import gc
import json
import os
import threading

import websocket

from chatflow.server.config import DEFAULTS, MiB
from tests.support.clients import close, connect, connected, round_trip
from tests.support.messages import chat_message_json
from tests.support.servers import RunningServer
from tests.support.waiting import wait_until

CONNECTIONS = 300
MESSAGES_EACH = 3
CHURN_CYCLES = 1000
#: Cycles run before the baseline is taken, so that caches and free lists have grown.
CHURN_WARMUP = 100
#: What 1,000 cycles may add to this process's resident memory (the server's and the
#: clients'). A leak of one socket object per cycle would be several times this.
CHURN_RSS_GROWTH = 4 * MiB
ROOMS = DEFAULTS.max_rooms


def rss_bytes() -> int:
    with open("/proc/self/status") as status:
        for line in status:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) * 1024
    raise AssertionError("no VmRSS in /proc/self/status")


def held_resources(running: RunningServer) -> tuple[int, int, int]:
    """Sockets the server holds, threads and open file descriptors of this process."""
    return running.server.connection_count, threading.active_count(), len(os.listdir("/proc/self/fd"))


def none_more(now: tuple[int, int, int], baseline: tuple[int, int, int]) -> bool:
    """Each count at most its baseline: fewer is an earlier test's garbage collected."""
    return all(count <= base for count, base in zip(now, baseline))


def test_connections_in_every_room_each_get_every_reply_in_order(chat_server: RunningServer) -> None:
    rooms = chat_server.handler.rooms
    clients: list[websocket.WebSocket] = []
    try:
        for n in range(CONNECTIONS):
            clients.append(connect(f"{chat_server.url}/chat/{n % ROOMS + 1}", timeout=30))
        per_room = CONNECTIONS // ROOMS
        assert rooms.occupancy() == {room: per_room for room in range(1, ROOMS + 1)}

        for n, ws in enumerate(clients):
            for m in range(MESSAGES_EACH):
                ws.send(chat_message_json(userId=n + 1, username=f"conn{n}", message=f"message {m}"))
        for n, ws in enumerate(clients):
            replies = [json.loads(ws.recv()) for _ in range(MESSAGES_EACH)]
            assert [(r["status"], r["userId"], r["username"], r["message"]) for r in replies] == [
                ("success", n + 1, f"conn{n}", f"message {m}") for m in range(MESSAGES_EACH)
            ]
    finally:
        for ws in clients:
            close(ws)
    wait_until(lambda: chat_server.server.connection_count == 0 and rooms.occupancy() == {},
               describe=lambda: (chat_server.server.connection_count, rooms.occupancy()))


def test_connection_churn_leaks_no_socket_thread_or_memory(chat_server: RunningServer) -> None:
    """Connect, send, get the reply, close, again and again: nothing may accumulate."""

    def cycle(n: int) -> None:
        with connected(f"{chat_server.url}/chat/{n % ROOMS + 1}") as ws:
            reply = round_trip(ws, chat_message_json(userId=n % 100_000 + 1))
            assert (reply["status"], reply["userId"]) == ("success", n % 100_000 + 1)

    for n in range(CHURN_WARMUP):
        cycle(n)
    wait_until(lambda: chat_server.server.connection_count == 0)
    gc.collect()
    baseline, rss_before = held_resources(chat_server), rss_bytes()

    for n in range(CHURN_CYCLES):
        cycle(n)

    wait_until(lambda: none_more(held_resources(chat_server), baseline), message=f"back to {baseline}",
               describe=lambda: held_resources(chat_server))
    assert chat_server.handler.rooms.occupancy() == {}
    assert chat_server.server.open_connections == 0
    growth = rss_bytes() - rss_before
    assert growth < CHURN_RSS_GROWTH, f"resident memory grew {growth / MiB:.1f} MiB over {CHURN_CYCLES} cycles"
