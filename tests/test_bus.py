"""Rooms across instances on a real Redis (``--bus``, docs/broadcast.md#the-bus).

Two instances in this process (each its own transport, chat handler and bus, as two
server processes have) or real ``run_server.py`` processes, a real redis-server of the
test's own, real clients on real sockets.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Iterator
from contextlib import ExitStack, contextmanager

from chatflow.server.broadcast import BroadcastChat
from chatflow.server.bus import RedisBus
from chatflow.server.config import DEFAULTS, BusSettings
from chatflow.server.main import bus_of
from tests.support.clients import connected, round_trip
from tests.support.messages import chat_message_json
from tests.support.processes import run_server_to_exit
from tests.support.redis_server import RedisServer, redis_server, require
from tests.support.rooms import bus_server, frames, nothing_more, send_for_reply
from tests.support.servers import RunningServer, serving
from tests.support.waiting import wait_until

#: Quick reconnects, so that a test sees Redis come back within its deadline.
FAST = BusSettings(backoff=0.05, max_backoff=0.2, socket_timeout=1.0, block_ms=200)
ROOM = 4
#: What a server process started by a test uses.
BUS = DEFAULTS.bus_settings


@dataclasses.dataclass
class Instance:
    running: RunningServer
    chat: BroadcastChat
    bus: RedisBus

    def room(self, room: int = ROOM) -> str:
        return f"{self.running.url}/chat/{room}"


@contextmanager
def instance(url: str, name: str) -> Iterator[Instance]:
    """One server instance on the bus at ``url``, connected to it before the body runs."""
    chat = BroadcastChat(max_rooms=DEFAULTS.max_rooms, instance_id=name, member_backlog=DEFAULTS.member_backlog)
    config = dataclasses.replace(DEFAULTS, bus=url, bus_settings=FAST)
    with serving(chat) as running:
        bus = bus_of(config, chat, running.server)
        bus.start()
        try:
            wait_until(lambda: bus.problem() is None, message=f"{name} on the bus", describe=bus.status)
            yield Instance(running, chat, bus)
        finally:
            bus.stop()


def test_members_on_two_instances_get_every_message_once_in_one_order() -> None:
    with redis_server() as redis, instance(redis.url, "a") as a, instance(redis.url, "b") as b, ExitStack() as stack:
        senders = [stack.enter_context(connected(x.room())) for x in (a, b)]
        members = [stack.enter_context(connected(x.room())) for x in (a, a, b, b)]
        stack.enter_context(connected(a.room(ROOM + 1)))  # another room: gets nothing
        wait_until(lambda: a.chat.rooms.occupancy() == {ROOM: 3, ROOM + 1: 1} and b.chat.rooms.occupancy() == {ROOM: 3},
                   message="everyone in their rooms")
        sent, seen_by_senders = [], ([], [])
        for n in range(30):
            text = f"message {n} from {'ab'[n % 2]}"
            assert send_for_reply(senders[n % 2], text, seen_by_senders[n % 2])["status"] == "success"
            sent.append(text)
        received = [frames(member, 30) for member in members]
        # One order for the whole room, on both instances: the bus's.
        orders = {tuple(f["messageId"] for f in got) for got in received}
        assert len(orders) == 1
        sequences = [f["sequence"] for f in received[0]]
        assert sequences == list(range(sequences[0], sequences[0] + 30))
        assert sorted(f["message"] for f in received[0]) == sorted(sent)
        assert all(f["messageId"] == f"{ROOM}-{f['sequence']}" for f in received[0])
        # Each frame names the instance that took the message.
        assert {f["message"][-1]: f["instanceId"] for f in received[0]} == {"a": "a", "b": "b"}
        # The senders got each other's 15 messages, never their own.
        for sender, seen, own in zip(senders, seen_by_senders, "ab"):
            seen += frames(sender, 15 - len(seen))
            assert all(not f["message"].endswith(own) for f in seen)
            assert nothing_more(sender)
        assert all(nothing_more(member) for member in members)
        assert (a.bus.not_crossed, b.bus.not_crossed, a.bus.missed, b.bus.missed) == (0, 0, 0, 0)


def test_redis_down_degrades_then_comes_back_with_exact_counts() -> None:
    with redis_server() as redis, bus_server(redis, "a") as a, bus_server(redis, "b") as b, ExitStack() as stack:
        wait_until(lambda: a.health() == (200, {"status": "healthy"}) and b.health() == (200, {"status": "healthy"}),
                   message="both healthy")
        sender = stack.enter_context(connected(f"{a.url}/chat/{ROOM}"))
        local = stack.enter_context(connected(f"{a.url}/chat/{ROOM}"))
        remote = stack.enter_context(connected(f"{b.url}/chat/{ROOM}"))

        def send(n: int) -> None:
            assert round_trip(sender, chat_message_json(message=f"m{n}"))["status"] == "success"

        wait_until(lambda: a.health(True)[1]["rooms"] == {str(ROOM): 2} and b.health(True)[1]["rooms"] == {str(ROOM): 1},
                   message="members joined")
        for n in range(5):
            send(n)
        before = frames(local, 5)
        assert [f["message"] for f in frames(remote, 5)] == [f["message"] for f in before] == [f"m{n}" for n in range(5)]

        redis.stop()
        status, body = wait_until(lambda: (lambda h: h if h[1]["status"] == "degraded" else None)(a.health()),
                                  message="a degraded")
        assert status == 200 and "unreachable" in body["reason"] and redis.url in body["reason"]
        for n in range(5, 12):
            send(n)
        # Its own members keep chatting, outside the room's order; nothing crosses.
        during = frames(local, 7)
        assert [f["message"] for f in during] == [f"m{n}" for n in range(5, 12)]
        assert all(f["sequence"] is None and f["messageId"].startswith(f"{ROOM}-a-") for f in during)
        assert nothing_more(remote)
        assert a.health(True)[1]["bus"]["notCrossed"] == 7

        redis.start()
        wait_until(lambda: a.health() == (200, {"status": "healthy"}) and b.health() == (200, {"status": "healthy"}),
                   timeout=15, message="both healthy again")
        for n in range(12, 15):
            send(n)
        after_local, after_remote = frames(local, 3), frames(remote, 3)
        assert [f["message"] for f in after_remote] == [f["message"] for f in after_local] == ["m12", "m13", "m14"]
        # A Redis that came back empty goes on from the numbers the instances had seen.
        assert after_local[0]["sequence"] > before[-1]["sequence"]
        verbose = a.health(True)[1]["bus"]
        assert (verbose["notCrossed"], verbose["publisher"], verbose["subscriber"]) == (7, "up", "up")
        assert a.process.stderr.wait_for(lambda line: "reachable again" in line and "7 messages" in line, 5)


def test_a_server_starts_degraded_without_redis_and_joins_when_it_comes() -> None:
    require()
    redis = RedisServer()  # not started yet
    with bus_server(redis, "a") as a:
        status, body = a.health()
        assert (status, body["status"]) == (200, "degraded")
        try:
            redis.start()
            wait_until(lambda: a.health() == (200, {"status": "healthy"}), timeout=15, message="healthy")
        finally:
            redis.stop()


def test_bus_needs_broadcast_mode() -> None:
    result = run_server_to_exit("--bus", "redis://127.0.0.1:6379/0")
    assert result.returncode == 2
    assert result.stderr.strip().splitlines()[-1].endswith("--bus needs --mode broadcast: in echo mode no message "
                                                          "leaves its sender's connection")
    result = run_server_to_exit("--mode", "broadcast", "--bus", "http://x")
    assert result.returncode == 2 and "not a Redis URL" in result.stderr


def test_messages_in_flight_when_redis_hangs_reach_the_local_members_and_are_counted() -> None:
    with redis_server() as redis, bus_server(redis, "a") as a, ExitStack() as stack:
        wait_until(lambda: a.health() == (200, {"status": "healthy"}), message="healthy")
        sender = stack.enter_context(connected(f"{a.url}/chat/{ROOM}"))
        local = stack.enter_context(connected(f"{a.url}/chat/{ROOM}"))
        wait_until(lambda: a.health(True)[1]["rooms"] == {str(ROOM): 2}, message="members joined")
        redis.pause()
        # Replies never wait for the bus; the messages wait in the publisher until Redis
        # is given up on, then go to the local member, outside the room's order.
        for n in range(3):
            assert round_trip(sender, chat_message_json(message=f"m{n}"))["status"] == "success"
        local.settimeout(BUS.socket_timeout + 5)
        got = frames(local, 3)
        assert [(f["message"], f["sequence"]) for f in got] == [("m0", None), ("m1", None), ("m2", None)]
        assert a.health()[1]["status"] == "degraded"
        redis.restart()
        wait_until(lambda: a.health() == (200, {"status": "healthy"}), timeout=15, message="healthy again")
        assert a.health(True)[1]["bus"]["notCrossed"] == 3


def test_worker_processes_share_a_room_through_the_bus() -> None:
    with redis_server() as redis, bus_server(redis, "w", "--workers", "2") as server, ExitStack() as stack:
        url = f"{server.url}/chat/{ROOM}"

        def per_worker() -> list[int]:
            return [row.get("rooms", {}).get(str(ROOM), 0) for row in server.health(True)[1]["workers"]]

        members = []
        for _ in range(100):  # the kernel spreads connections by their ports' hash
            members.append(stack.enter_context(connected(url)))
            counts = wait_until(lambda: (lambda c: c if sum(c) == len(members) else None)(per_worker()),
                                message="joined")
            if len(members) >= 2 and min(counts) >= 1:
                break
        assert min(per_worker()) >= 1
        sender = stack.enter_context(connected(url))
        for n in range(10):
            assert send_for_reply(sender, f"m{n}", [])["status"] == "success"
        orders = {tuple((f["message"], f["sequence"]) for f in frames(member, 10)) for member in members}
        assert len(orders) == 1 and [m for m, _ in next(iter(orders))] == [f"m{n}" for n in range(10)]
        assert server.health() == (200, {"status": "healthy"})
        redis.stop()
        both = ("worker 0: bus", "worker 1: bus")
        status, body = wait_until(lambda: (lambda h: h if all(w in h[1].get("reason", "") for w in both) else None)(
            server.health()), message="both workers degraded")
        assert (status, body["status"]) == (200, "degraded")
