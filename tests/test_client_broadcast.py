"""``run_client.py --scenario broadcast``: a room's fan-out measured (docs/client.md#the-broadcast-scenario).

The accounting's rules on their own, then real runs against real ``run_server.py --mode
broadcast`` processes: one instance (everything arrives), two instances without a bus
(the members on the other instance miss, and the run says so), and a member evicted by
the server for not reading (reconnected, its absence counted missing).
"""

from __future__ import annotations

import csv
import threading
from pathlib import Path

from chatflow import wire
from chatflow.client.config import LoadTestConfig
from chatflow.client.fanout import Entry, FanoutCounts, FanoutTracker, out_of_order, pair
from chatflow.client.framing import MaskKeys
from chatflow.client.members import RoomMembers, member_server
from chatflow.client.message_generator import OutgoingMessage
from chatflow.metrics import BROADCAST_COLUMNS, DELIVERIES, FANOUT_LAST, FINAL, STATUS
from chatflow.models import ChatMessage, ChatResponse, MessageType, RoomMessage
from chatflow.server.broadcast import BroadcastChat
from tests.support.client_runs import assert_no_traceback, figure
from tests.support.clients import connected
from tests.support.processes import server_process, run_client
from tests.support.servers import serving
from tests.support.waiting import wait_until

SMALL_RUN = ("--scenario", "broadcast", "--messages", "2000", "--rooms", "5", "--room-members", "3",
             "--threads", "8", "--warmup-threads", "2", "--warmup-messages", "100", "--processes", "1", "--quiet")


# -- the accounting's rules -------------------------------------------------------------


def outgoing(n: int, room: int = 1, text: str = "hello") -> OutgoingMessage:
    return OutgoingMessage.of(ChatMessage(n, f"user{n}", text, 1_771_000_000_000 + n, MessageType.TEXT), room,
                              MaskKeys())


def room_frame(item: OutgoingMessage, room: int, sequence: int | None) -> bytes:
    """The frame a broadcast server sends the room's members for ``item``; ``None``: the
    bus-down form, ``"sequence":null``."""
    message = wire.decode(item.payload)
    response = ChatResponse(message["userId"], message["username"], message["message"],
                            1_771_000_000_000 + message["userId"], 1_771_000_000_500, MessageType.TEXT)
    frame = wire.encode_room_message(RoomMessage(room, sequence or 1, response, "test"))
    return frame if sequence is not None else frame.replace(b'"sequence":1,', b'"sequence":null,')


def test_pair_takes_the_first_message_of_a_key_the_member_has_not_had() -> None:
    first, second = Entry((1, 7, "t", "m")), Entry((1, 7, "t", "m"))
    first.got = 0b01
    assert pair([first, second], 0b01) is second
    assert pair([first, second], 0b10) is first
    second.got = 0b01
    assert pair([first, second], 0b01) is None


def test_out_of_order_is_a_sequence_not_above_the_previous_one() -> None:
    assert not out_of_order(None, 1)
    assert not out_of_order(4, 5)
    assert out_of_order(5, 5) and out_of_order(5, 3)
    assert not out_of_order(5, None) and not out_of_order(None, None)


def test_every_member_receiving_every_message_once_in_order_is_clean() -> None:
    rows: list[tuple] = []
    tracker = FanoutTracker(2, rows.append, rooms=[1, 2])
    items = [outgoing(n) for n in range(1, 4)]
    for seq, item in enumerate(items, 1):
        entry = tracker.sent(1, item)
        tracker.outcome(entry, (seq, "TEXT", 0.5, "success", 1, True), True)
        for member in (0, 1):
            tracker.receive(1, member, [room_frame(item, 1, seq)], entry.send_ns + 2_000_000)
    counts = tracker.finish()
    assert (counts.expected, counts.received, counts.matched, counts.missing) == (6, 6, 6, 0)
    assert (counts.duplicated, counts.out_of_order, counts.unexpected, counts.of_failed) == (0, 0, 0, 0)
    assert counts.ok and counts.room(2).expected == 0
    assert [row[6:] for row in rows] == [(2, "2.000")] * 3
    assert counts.last_max_us == counts.each_max_us == 2000


def test_duplicates_out_of_order_unexpected_and_missing_are_told_apart() -> None:
    rows: list[tuple] = []
    tracker = FanoutTracker(2, rows.append)
    a, b, stranger = outgoing(1), outgoing(2), outgoing(3)
    entry_a, entry_b = tracker.sent(1, a), tracker.sent(1, b)
    tracker.outcome(entry_a, (1, "TEXT", 0.5, "success", 1, True), True)
    tracker.outcome(entry_b, (2, "TEXT", 0.5, "success", 1, True), True)
    now = entry_b.send_ns
    tracker.receive(1, 0, [room_frame(b, 1, 2), room_frame(a, 1, 1)], now)  # 1 after 2: out of order
    tracker.receive(1, 0, [room_frame(a, 1, 3)], now)                        # a again: duplicated
    tracker.receive(1, 1, [room_frame(a, 1, 1), room_frame(stranger, 1, 4), b"not json"], now)
    tracker.receive(1, 1, [room_frame(b, 2, 5)], now)                        # another room's: unexpected
    counts = tracker.finish()
    assert counts.expected == 4 and counts.matched == 3 and counts.missing == 1  # member 1 never got b
    assert (counts.duplicated, counts.out_of_order, counts.unexpected) == (1, 1, 3)
    assert counts.received == 7 and not counts.ok
    # b reached member 0 only: no last member's latency; a reached both.
    assert sorted((row[6], row[7] == "") for row in rows) == [(1, True), (2, False)]


def test_identical_keys_pair_in_order_and_null_sequences_stay_outside_the_order() -> None:
    tracker = FanoutTracker(1)
    twins = [outgoing(9), outgoing(9)]
    entries = [tracker.sent(1, item) for item in twins]
    for n, entry in enumerate(entries):
        tracker.outcome(entry, (n, "TEXT", 0.5, "success", 1, True), True)
    tracker.receive(1, 0, [room_frame(twins[0], 1, None), room_frame(twins[1], 1, None)], entries[1].send_ns)
    tracker.receive(1, 0, [room_frame(twins[0], 1, None)], entries[1].send_ns)
    counts = tracker.finish()
    assert (counts.matched, counts.unordered, counts.out_of_order, counts.duplicated) == (2, 3, 0, 1)


def test_deliveries_of_a_failed_message_are_counted_apart_and_expect_nothing() -> None:
    tracker = FanoutTracker(2)
    item = outgoing(5)
    entry = tracker.sent(1, item)
    tracker.receive(1, 0, [room_frame(item, 1, 1)], entry.send_ns)
    tracker.outcome(entry, (1, "TEXT", 1000.0, "timeout", 1, True), False)
    counts = tracker.finish()
    assert (counts.expected, counts.of_failed, counts.missing, counts.matched) == (0, 1, 0, 0)


def test_counts_merge_over_processes() -> None:
    one, two = FanoutCounts(members=3, expected=6, matched=5), FanoutCounts(members=3, expected=3, matched=3)
    one.room(1).expected, two.room(1).expected, two.room(2).matched = 6, 3, 3
    one.member_closes[1008] = 1
    two.member_closes[1008] = 2
    one.merge(two)
    assert (one.members, one.expected, one.matched, one.missing) == (3, 9, 8, 1)
    assert (one.room(1).expected, one.room(2).matched, one.member_closes) == (9, 3, {1008: 3})


def test_members_of_a_room_are_dealt_over_the_servers() -> None:
    servers = ("ws://a", "ws://b")
    assert {member_server(servers, 1, k, 3) for k in range(3)} == {"ws://a", "ws://b"}
    assert [member_server(("ws://a",), 4, k, 3) for k in range(3)] == ["ws://a"] * 3


# -- real runs ----------------------------------------------------------------------------


def final_rows(output_dir: Path) -> list[dict[str, str]]:
    (path,) = output_dir.glob("metrics_*.csv")
    with path.open() as file:
        reader = csv.DictReader(file)
        assert tuple(reader.fieldnames) == BROADCAST_COLUMNS
        return [row for row in reader if row[FINAL] == "1"]


def test_a_small_run_on_one_instance_gets_every_delivery_once_in_order(tmp_path: Path) -> None:
    with server_process("--mode", "broadcast") as server:
        result = run_client("--server", server.url, *SMALL_RUN, "--output-dir", str(tmp_path))
    assert_no_traceback(result)
    out = result.stdout
    assert result.returncode == 0, out + result.stderr
    assert figure(out, "Successful") == 2000
    assert figure(out, "Deliveries expected") == figure(out, "Deliveries received") == 3 * 2000
    for label in ("Deliveries missing", "Deliveries duplicated", "Deliveries out of order", "Deliveries unexpected",
                  "Member reconnects"):
        assert figure(out, label) == 0, label
    assert figure(out, "Room frames to senders") > 0  # 8 senders in 5 rooms share some
    rows = final_rows(tmp_path)
    assert len(rows) == 2000 and {row[STATUS] for row in rows} == {"success"}
    assert {row[DELIVERIES] for row in rows} == {"3"}
    assert all(float(row[FANOUT_LAST]) >= 0 for row in rows)
    report = next(tmp_path.glob("*_report.md")).read_text()
    assert "## Fan-out" in report and "fanout_each_member_latency" in report.replace(" ", "_").lower()


def test_two_instances_without_a_bus_miss_the_other_instance_and_say_so(tmp_path: Path) -> None:
    with server_process("--mode", "broadcast") as first, server_process("--mode", "broadcast") as second:
        result = run_client("--server", first.url, "--server", second.url, *SMALL_RUN, "--no-analysis",
                            "--output-dir", str(tmp_path))
    assert_no_traceback(result)
    out = result.stdout
    assert result.returncode == 1, out
    rows = final_rows(tmp_path)
    missing = sum(3 - int(row[DELIVERIES]) for row in rows)
    assert figure(out, "Deliveries expected") == 3 * len(rows) == 6000
    assert figure(out, "Deliveries missing") == missing > 0
    # Each message reached the members on its sender's instance only: 1 or 2 of the 3.
    assert {row[DELIVERIES] for row in rows} <= {"1", "2"}
    assert all(row[FANOUT_LAST] == "" for row in rows)
    assert "FAILED" in out.splitlines()[-1] and "missing" in out.splitlines()[-1]


class StallingTracker(FanoutTracker):
    """The real tracker, whose first ``receive`` holds the member thread until released:
    the members stop reading, as a slow client's would."""

    def __init__(self, *args, **kwargs) -> None:
        super().__init__(*args, **kwargs)
        self.release = threading.Event()

    def receive(self, *args) -> None:
        self.release.wait(20)
        super().receive(*args)


def test_an_evicted_member_reconnects_and_what_it_missed_counts_missing() -> None:
    chat = BroadcastChat(max_rooms=20, instance_id="test", member_backlog=4096)
    with serving(chat) as running:
        config = LoadTestConfig(running.url, rooms=1, room_members=2, timeout=2.0)
        tracker = StallingTracker(2, rooms=[1])
        members = RoomMembers(config, [1], tracker)
        try:
            assert members.open(10) == 2
            text = "x" * 500
            with connected(f"{running.url}/chat/1") as sender:
                def send(n: int) -> Entry:
                    item = outgoing(n, text=text)
                    entry = tracker.sent(1, item)
                    sender.send(item.payload.decode())
                    sender.recv()
                    tracker.outcome(entry, (n, "TEXT", 0.1, "success", 1, True), True)
                    return entry

                sent = iter(range(1, 100_001))
                # The members read nothing meanwhile: the kernel's buffers fill, then the
                # server's backlog, and it closes them with 1008.
                wait_until(lambda: send(next(sent)) and chat.evicted, timeout=30, interval=0,
                           message="a member evicted")
                tracker.release.set()
                wait_until(lambda: tracker.counts.member_reconnects >= chat.evicted, timeout=10,
                           message="the evicted members back")
                wait_until(lambda: chat.rooms.occupancy() == {1: 3}, message="all in the room again")
                last = next(sent)
                after = [send(n) for n in range(last, last + 20)]
                wait_until(lambda: all(entry.got == 0b11 for entry in after), message="the last messages delivered")
        finally:
            members.close()
        counts = tracker.finish()
    assert counts.member_closes.get(1008, 0) == chat.evicted >= 1
    assert counts.member_reconnects >= 1 and counts.members_lost == 0
    assert counts.missing > 0 and counts.matched + counts.missing == counts.expected
    assert counts.duplicated == counts.out_of_order == counts.unexpected == 0


def test_the_analysis_reads_the_broadcast_columns_when_present(tmp_path: Path) -> None:
    from chatflow.analysis.performance_analyzer import PerformanceAnalyzer

    path = tmp_path / "broadcast.csv"
    path.write_text(",".join(BROADCAST_COLUMNS) + "\n"
                    "1000,TEXT,1.000,timeout,1,0,,\n"
                    "1000,TEXT,1.000,success,1,1,3,4.000\n"
                    "1001,TEXT,1.000,success,1,1,3,2.000\n"
                    "1002,JOIN,1.000,success,2,1,1,\n"
                    "1003,TEXT,1.000,error,2,1,0,\n")
    fanout = PerformanceAnalyzer().analyze(path).fanout
    assert (fanout.members, fanout.messages, fanout.deliveries, fanout.expected, fanout.missing) == (3, 3, 7, 9, 2)
    assert (fanout.complete, fanout.incomplete, fanout.last_member_latency_ms.max) == (2, 1, 4.0)
    echo = tmp_path / "echo.csv"
    echo.write_text("timestamp,messageType,latency,statusCode,roomId,final\n1000,TEXT,1.000,success,1,1\n")
    assert PerformanceAnalyzer().analyze(echo).fanout is None


def test_against_an_echo_server_every_delivery_is_missing_and_the_last_line_says_why(tmp_path: Path) -> None:
    with server_process() as server:
        result = run_client("--server", server.url, *SMALL_RUN, "--messages", "300", "--no-analysis",
                            "--output-dir", str(tmp_path))
    assert_no_traceback(result)
    assert result.returncode == 1
    assert figure(result.stdout, "Deliveries missing") == 900
    assert "--mode broadcast" in result.stdout.splitlines()[-1]
