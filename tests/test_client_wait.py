"""The client wait: the kernel's receive stamp on a real socket, and the histogram of the waits."""

from __future__ import annotations

import socket
import time

import pytest

from chatflow.client.chat_websocket_client import SO_TIMESTAMPNS, StampedSocket, wrap_socket
from chatflow.client.client_wait import SAMPLE_EVERY, summarise_waits
from chatflow.client.histogram import BUCKETS, bucket_of, bucket_range, empty_counts, percentile_us
from chatflow.client.results import SenderStats
from tests.support.network import LOCALHOST
from tests.support.waiting import wait_until

linux_only = pytest.mark.skipif(SO_TIMESTAMPNS is None, reason="SO_TIMESTAMPNS is Linux's")


def connected() -> tuple[socket.socket, socket.socket]:
    with socket.create_server((LOCALHOST, 0)) as listener:
        client = socket.create_connection(listener.getsockname())
        peer, _ = listener.accept()
    return client, peer


def stamps_on() -> None:
    """The kernel turns receive stamps on for the first socket that asks a moment later
    (a deferred switch): bytes that arrive before then carry none. Wait for it on a
    connection of its own."""
    client, peer = connected()
    with client, peer:
        stamped = StampedSocket(client, timeout=5.0)

        def stamped_read() -> int | None:
            peer.sendall(b".")
            stamped.recv(1)
            return stamped.received_ns

        wait_until(stamped_read, timeout=5, message="the kernel stamps received data")


@pytest.fixture
def pair():
    """(StampedSocket, its peer): a real TCP connection on the loopback."""
    if SO_TIMESTAMPNS is not None:
        stamps_on()
    client, peer = connected()
    with client, peer:
        yield StampedSocket(client, timeout=5.0), peer


@linux_only
def test_the_stamp_is_the_kernels_receive_time_of_the_data_read(pair) -> None:
    buffered, peer = pair
    assert buffered.received_ns is None  # nothing read yet
    before = time.time_ns()
    peer.sendall(b"reply")
    assert buffered.recv(100) == b"reply"
    after = time.time_ns()
    assert before <= buffered.received_ns <= after


@linux_only
def test_a_reply_read_in_two_parts_keeps_the_stamp_of_its_last_bytes(pair) -> None:
    buffered, peer = pair
    peer.sendall(b"head")
    assert buffered.recv(100) == b"head"
    first = buffered.received_ns
    between = time.time_ns()
    peer.sendall(b"tail")
    assert buffered.recv(100) == b"tail"
    assert first <= between <= buffered.received_ns


@linux_only
def test_bytes_served_from_the_buffer_keep_the_stamp_of_the_read_that_brought_them(pair) -> None:
    buffered, peer = pair
    peer.sendall(b"abcdef")
    # All six bytes in the kernel first, so that one read brings them.
    assert buffered.recv_into(bytearray(6), 6, socket.MSG_PEEK | socket.MSG_WAITALL) == 6
    assert buffered.recv(3) == b"abc"
    stamp = buffered.received_ns
    assert buffered.recv(3) == b"def"
    assert buffered.received_ns == stamp


@linux_only
def test_one_connection_in_sample_every_is_stamped() -> None:
    with socket.create_server((LOCALHOST, 0)) as listener:
        sockets = [socket.create_connection(listener.getsockname()) for _ in range(2 * SAMPLE_EVERY)]
        try:
            wrapped = [wrap_socket(sock, timeout=5.0) for sock in sockets]
            assert sum(isinstance(sock, StampedSocket) for sock in wrapped) == 2
            assert all(sock.received_ns is None for sock in wrapped)  # nothing read yet
        finally:
            for sock in sockets:
                sock.close()


def test_every_wait_falls_in_its_buckets_range_and_buckets_follow_the_waits() -> None:
    previous = 0
    for wait_us in [*range(0, 5000), *range(5000, 2**25, 997), 2**25 - 1]:
        index = bucket_of(wait_us)
        low, high = bucket_range(index)
        assert low <= wait_us < high
        assert index >= previous  # monotonic
        assert high - low <= max(1, low / 16)  # within 1/16 of the wait
        previous = index
    assert previous == BUCKETS - 1


def test_waits_beyond_the_last_bucket_and_below_zero_are_kept_at_the_ends() -> None:
    assert bucket_of(10**12) == BUCKETS - 1
    assert bucket_of(-5) == 0


def test_percentiles_and_mean_of_known_waits() -> None:
    stats = SenderStats()
    for wait_us in [100] * 98 + [10_000, 20_000]:
        stats.add_client_wait(wait_us)
    counts = stats.client_wait_counts
    assert percentile_us(counts, 0.5) == pytest.approx(100, rel=1 / 16)
    assert percentile_us(counts, 0.99) == pytest.approx(10_000, rel=1 / 16)
    assert percentile_us(counts, 1.0) == pytest.approx(20_000, rel=1 / 16)
    wait = summarise_waits(counts, stats.client_wait_sum_us, mean_latency_ms=1.0)
    assert wait.replies == 100
    assert wait.mean_ms == pytest.approx((98 * 100 + 30_000) / 100 / 1000)
    assert wait.share == pytest.approx(wait.mean_ms / 1.0)
    assert summarise_waits(empty_counts(), 0, 1.0) is None
    assert summarise_waits(counts, stats.client_wait_sum_us, None).share is None


def test_merged_stats_add_the_histograms_bucket_by_bucket() -> None:
    one, other = SenderStats(), SenderStats()
    one.add_client_wait(50)
    other.add_client_wait(50)
    other.add_client_wait(5_000)
    one.merge(other)
    assert len(one.client_wait_counts) == BUCKETS
    assert one.client_wait_counts[bucket_of(50)] == 2 and one.client_wait_counts[bucket_of(5_000)] == 1
    assert one.client_wait_sum_us == 5_100
