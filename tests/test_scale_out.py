"""Two instances behind the repository's nginx configuration, their rooms shared through a
real Redis (docs/scale-out.md): clients that know one address get one room."""

from __future__ import annotations

import json
from contextlib import ExitStack
from pathlib import Path

from tests.support.clients import connected, receive_close
from tests.support.network import LOCALHOST
from tests.support.nginx import nginx_in_front
from tests.support.redis_server import redis_server
from tests.support.rooms import bus_server, send_for_reply
from tests.support.waiting import wait_until

ROOM = 3


def test_members_behind_nginx_share_a_room_across_two_instances(tmp_path: Path) -> None:
    with redis_server() as redis, bus_server(redis, "a") as a, bus_server(redis, "b") as b, \
            nginx_in_front([a.chat_port, b.chat_port], tmp_path / "nginx") as port, ExitStack() as stack:
        url = f"ws://{LOCALHOST}:{port}/chat/{ROOM}"
        members = [stack.enter_context(connected(url)) for _ in range(4)]
        sender = stack.enter_context(connected(url))
        # least_conn deals the connections over both instances.
        occupancy = wait_until(lambda: (lambda o: o if sum(o) == 5 else None)(
            [server.health(True)[1]["rooms"].get(str(ROOM), 0) for server in (a, b)]), message="all joined")
        assert min(occupancy) >= 2, occupancy
        for n in range(10):
            assert send_for_reply(sender, f"m{n}", [])["status"] == "success"
        orders = set()
        for member in members:
            got = [json.loads(member.recv()) for _ in range(10)]
            assert [f["message"] for f in got] == [f"m{n}" for n in range(10)]
            orders.add(tuple(f["sequence"] for f in got))
        assert len(orders) == 1
        # The instances' own answers come through unchanged: a bad path is closed with 1003.
        with connected(f"ws://{LOCALHOST}:{port}/chat/99") as refused:
            assert receive_close(refused)[0] == 1003
