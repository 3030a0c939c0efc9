"""The delay proxy (``chatflow.wan``): its schedule and its held bytes as pure data, then
through real sockets on 127.0.0.1: the round trip it adds, bytes and order under 64
connections, half-closes and resets passed on, memory bounded by back-pressure, running
out of file descriptors, and its command line."""

from __future__ import annotations

import os
import random
import select
import socket
import statistics
import struct
import sys
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager

import pytest

from chatflow.server.process import ServerProcess
from chatflow.wan import Delay, DelayProxy
from chatflow.wan.cli import main
from chatflow.wan.delay import direction_seed
from chatflow.wan.proxy import dial_order
from chatflow.wan.stream import End, HeldStream
from tests.support.network import LOCALHOST, RECV_SIZE, EchoServer, recv_exactly
from tests.support.processes import with_fd_limit
from tests.support.waiting import DEFAULT_TIMEOUT, wait_until

ANY_PORT = (LOCALHOST, 0)


@contextmanager
def proxied_echo(rtt_ms: float, **options: object) -> Iterator[DelayProxy]:
    with EchoServer() as echo, DelayProxy(listen=ANY_PORT, upstream=echo.address, rtt_ms=rtt_ms,
                                          **options) as proxy:
        yield proxy


def connect(proxy: DelayProxy, timeout: float = DEFAULT_TIMEOUT) -> socket.socket:
    sock = socket.create_connection((LOCALHOST, proxy.port), timeout=timeout)
    sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    return sock


@contextmanager
def listener() -> Iterator[socket.socket]:
    """An upstream the test plays by hand."""
    with socket.create_server(ANY_PORT) as sock:
        sock.settimeout(DEFAULT_TIMEOUT)
        yield sock


def reset(sock: socket.socket) -> None:
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
    sock.close()


# -- the schedule and the held bytes, pure ------------------------------------------------


def test_a_delay_adds_half_the_round_trip_and_jitter_within_its_bound() -> None:
    assert Delay(30).release(10.0) == pytest.approx(10.015)
    delay = Delay(30, jitter_ms=10, seed=1)
    arrivals = [i * 0.1 for i in range(200)]  # far apart: no release waits for the one ahead
    for arrival in arrivals:
        assert arrival + 0.015 <= delay.release(arrival) <= arrival + 0.025


def test_jitter_is_seeded_and_never_reorders() -> None:
    rng = random.Random(7)
    arrivals = sorted(rng.uniform(0, 1) for _ in range(2000))  # dense: jitter would reorder them
    schedules = [[Delay(34, 20, seed=5).release(t) for t in arrivals] for _ in range(2)]
    assert schedules[0] == schedules[1]
    assert schedules[0] == sorted(schedules[0])
    assert all(release >= arrival + 0.017 for release, arrival in zip(schedules[0], arrivals))
    assert [Delay(34, 20, seed=6).release(t) for t in arrivals] != schedules[0]
    assert len({direction_seed(5, n, up) for n in (1, 2) for up in (True, False)}) == 4
    assert direction_seed(None, 1, True) is None


@pytest.mark.parametrize("rtt, jitter", [(-1, 0), (float("nan"), 0), (10, -1), (float("inf"), 0)])
def test_a_bad_figure_is_refused(rtt: float, jitter: float) -> None:
    with pytest.raises(ValueError):
        Delay(rtt, jitter)
    with pytest.raises(ValueError):
        DelayProxy(listen=ANY_PORT, upstream=ANY_PORT, rtt_ms=rtt, jitter_ms=jitter)


def test_held_bytes_are_bounded_released_in_order_and_end_after_them() -> None:
    stream = HeldStream(Delay(10), max_buffer=10)
    assert stream.push(b"abcdef", 0.0) == pytest.approx(0.005)
    assert (stream.held, stream.room) == (6, 4)
    stream.push(b"ghij", 0.001)
    assert stream.room == 0  # full: the source is not read until some goes out
    assert stream.due(0.004) is None
    assert bytes(stream.due(0.0051)) == b"abcdef"
    stream.written(4)
    assert (bytes(stream.due(0.0051)), stream.held, stream.room) == (b"ef", 6, 4)
    stream.written(2)
    assert stream.due(0.0055) is None and stream.next_release() == pytest.approx(0.006)
    stream.end(End.EOF, 0.002)
    assert stream.room == 0
    assert bytes(stream.due(0.007)) == b"ghij"
    stream.written(4)
    assert stream.due(0.007) is End.EOF and stream.held == 0
    stream.passed_on()
    stream.end(End.RESET, 0.003)  # a side that half-closed may still reset
    assert stream.due(0.008) is End.RESET
    with pytest.raises(AssertionError):
        stream.end(End.EOF, 0.004)


def test_held_chunks_are_bounded_as_well_as_bytes() -> None:
    stream = HeldStream(Delay(10), max_buffer=1 << 20, max_chunks=3)
    for n in range(3):
        assert stream.room > 0
        stream.push(b"x", n * 0.001)
    assert (stream.room, stream.held) == (0, 3)  # a byte at a time fills the queue, not the bytes
    stream.written(1)
    assert stream.room == (1 << 20) - 2


def test_the_upstream_is_dialled_in_the_listeners_family_first_each_address_once() -> None:
    v4, v6 = (socket.AF_INET, ("127.0.0.1", 80)), (socket.AF_INET6, ("::1", 80, 0, 0))
    found = [(family, socket.SOCK_STREAM, 6, "", address) for family, address in (v6, v4, v6)]
    assert dial_order(found, socket.AF_INET) == [v4, v6]
    assert dial_order(found, socket.AF_INET6) == [v6, v4]


# -- through sockets ------------------------------------------------------------------------


def test_the_measured_round_trip_is_the_setting() -> None:
    rtt_ms = 30.0
    with proxied_echo(rtt_ms) as proxy, connect(proxy) as sock:
        times = []
        for i in range(20):
            message = f"ping {i:04}".encode()
            started = time.perf_counter()
            sock.sendall(message)
            assert recv_exactly(sock, len(message)) == message
            times.append((time.perf_counter() - started) * 1000)
    assert statistics.median(times) == pytest.approx(rtt_ms, abs=2.0), times
    assert min(times) >= rtt_ms - 1.0, times
    assert proxy.cpu_seconds() > 0 and proxy.port > 0  # both still read after the proxy stopped


def test_bytes_and_order_are_intact_under_64_connections_with_jitter() -> None:
    connections, size = 64, 96 * 1024
    streams = [random.Random(n).randbytes(size) for n in range(connections)]
    received: list[bytes | None] = [None] * connections
    errors: list[BaseException] = []

    def exchange(n: int) -> None:
        try:
            with connect(proxy) as sock:
                writer = threading.Thread(target=send_in_chunks, args=(sock, streams[n], random.Random(-n)))
                writer.start()
                data = bytearray()
                while chunk := sock.recv(RECV_SIZE):
                    data += chunk
                writer.join(DEFAULT_TIMEOUT)
                received[n] = bytes(data)
        except BaseException as exc:  # reported by the test's thread
            errors.append(exc)

    with proxied_echo(10, jitter_ms=5, seed=3) as proxy:
        threads = [threading.Thread(target=exchange, args=(n,)) for n in range(connections)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join(3 * DEFAULT_TIMEOUT)
        assert not errors, errors[:3]
        assert not any(thread.is_alive() for thread in threads)
        wait_until(lambda: proxy.stats().connections_open == 0, message="every link closed")
        stats = proxy.stats()
    assert [n for n in range(connections) if received[n] != streams[n]] == []
    assert (stats.connections_accepted, stats.bytes_to_upstream, stats.bytes_to_client, stats.held_bytes) == (
        connections, connections * size, connections * size, 0)


def send_in_chunks(sock: socket.socket, data: bytes, rng: random.Random) -> None:
    """``data`` in chunks of 1 byte to 8 KiB, then the end of stream."""
    offset = 0
    while offset < len(data):
        size = rng.randint(1, 8192)
        sock.sendall(data[offset:offset + size])
        offset += size
    sock.shutdown(socket.SHUT_WR)


def test_a_jittered_stream_of_small_writes_arrives_in_order() -> None:
    writes = [f"{i:05}".encode() for i in range(300)]
    with proxied_echo(4, jitter_ms=20, seed=11) as proxy, connect(proxy) as sock:
        for write in writes:
            sock.sendall(write)
            time.sleep(0.0005)  # pacing, so that the proxy reads them apart, not a wait for a result
        assert recv_exactly(sock, 5 * len(writes)) == b"".join(writes)
        # read apart, not coalesced: the writes had release times of their own for the jitter to reorder
        assert proxy.stats().chunks_read >= len(writes) // 5, proxy.stats()


def test_a_half_close_is_passed_on_after_the_delay_and_the_other_way_goes_on() -> None:
    rtt = 0.04
    with listener() as upstream, DelayProxy(listen=ANY_PORT, upstream=upstream.getsockname(), rtt_ms=rtt * 1000) as proxy:
        with connect(proxy) as client:
            client.sendall(b"request")
            client.shutdown(socket.SHUT_WR)
            shut_at = time.monotonic()
            server, _ = upstream.accept()
            with server:
                server.settimeout(DEFAULT_TIMEOUT)
                assert recv_exactly(server, 7) == b"request"
                assert server.recv(RECV_SIZE) == b""
                assert time.monotonic() - shut_at >= rtt / 2 - 0.002
                server.sendall(b"reply after your end")
            # the server closed: its end follows its reply
            assert recv_exactly(client, 20) == b"reply after your end"
            assert client.recv(RECV_SIZE) == b""
        wait_until(lambda: proxy.stats().connections_open == 0, message="the link closed")


@pytest.mark.parametrize("who_resets", ["upstream", "client"])
def test_a_reset_is_passed_on(who_resets: str) -> None:
    with listener() as upstream, DelayProxy(listen=ANY_PORT, upstream=upstream.getsockname(), rtt_ms=10) as proxy:
        client = connect(proxy)
        client.sendall(b"x")
        server, _ = upstream.accept()
        server.settimeout(DEFAULT_TIMEOUT)
        assert recv_exactly(server, 1) == b"x"
        resetter, other = (server, client) if who_resets == "upstream" else (client, server)
        resetter.sendall(b"last words")
        reset(resetter)
        with other:
            assert recv_exactly(other, 10) == b"last words"  # what it sent before still arrives
            with pytest.raises(ConnectionResetError):
                other.recv(RECV_SIZE)
        wait_until(lambda: proxy.stats().connections_open == 0, message="the link closed")


def test_a_release_days_away_does_not_overflow_the_selectors_timeout() -> None:
    with proxied_echo(rtt_ms=1e12) as proxy, connect(proxy) as first:
        first.sendall(b"x")
        wait_until(lambda: proxy.stats().held_bytes == 1, message="the byte held")
        with connect(proxy):  # the thread still serves after waiting on that release
            wait_until(lambda: proxy.stats().connections_accepted == 2, message="the second accepted")
        assert proxy.alive


def test_an_upstream_named_by_host_name_is_reached() -> None:
    with EchoServer() as echo, DelayProxy(listen=ANY_PORT, upstream=("localhost", echo.address[1]),
                                          rtt_ms=2) as proxy, connect(proxy) as sock:
        sock.sendall(b"by name")
        assert recv_exactly(sock, 7) == b"by name"


def test_an_upstream_that_refuses_resets_the_client() -> None:
    with listener() as closed:
        address = closed.getsockname()
    with DelayProxy(listen=ANY_PORT, upstream=address, rtt_ms=10) as proxy:
        with pytest.raises(ConnectionResetError):  # on loopback the reset may beat connect() back
            with connect(proxy) as client:
                client.recv(RECV_SIZE)
        assert proxy.stats().upstream_failures == 1


def test_a_side_that_does_not_read_gets_back_pressure_not_a_queue() -> None:
    bound, limit = 256 * 1024, 64 << 20
    with listener() as upstream, DelayProxy(listen=ANY_PORT, upstream=upstream.getsockname(), rtt_ms=2,
                                            max_buffer=bound) as proxy:
        client = connect(proxy)
        server, _ = upstream.accept()
        with client, server:
            client.setblocking(False)
            block = b"m" * RECV_SIZE
            sent, deadline = 0, time.monotonic() + 3 * DEFAULT_TIMEOUT
            while sent < limit and time.monotonic() < deadline:
                _, writable, _ = select.select([], [client], [], 0.2)
                if not writable:
                    if proxy.stats().held_bytes == bound:
                        break  # the client blocks, the proxy is full and reads no more
                    continue
                try:
                    sent += client.send(block)
                except BlockingIOError:
                    pass
            stats = proxy.stats()
            assert stats.held_bytes == bound and stats.max_held_bytes == bound, stats
            assert sent < limit
            # once the far side reads, every byte arrives
            client.setblocking(True)
            client.shutdown(socket.SHUT_WR)
            server.settimeout(DEFAULT_TIMEOUT)
            total = 0
            while chunk := server.recv(RECV_SIZE):
                total += len(chunk)
            assert total == sent
    assert proxy.stats().max_held_bytes == bound


# -- the command line -----------------------------------------------------------------------


@pytest.mark.parametrize("args, option", [
    (["--upstream", "127.0.0.1:1", "--rtt-ms", "abc"], "--rtt-ms"),
    (["--upstream", "127.0.0.1:1", "--rtt-ms", "-3"], "--rtt-ms"),
    (["--upstream", "127.0.0.1:1", "--rtt-ms", "nan"], "--rtt-ms"),
    (["--upstream", "127.0.0.1:1", "--rtt-ms", "60001"], "--rtt-ms"),
    (["--upstream", "127.0.0.1:1", "--rtt-ms", "3", "--jitter-ms", "inf"], "--jitter-ms"),
    (["--upstream", "nowhere", "--rtt-ms", "3"], "--upstream"),
    (["--upstream", "127.0.0.1:70000", "--rtt-ms", "3"], "--upstream"),
])
def test_a_bad_argument_is_one_line_and_exit_2(args: list[str], option: str,
                                               capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exited:
        main(args)
    assert exited.value.code == 2
    errors = [line for line in capsys.readouterr().err.splitlines() if ": error:" in line]
    assert len(errors) == 1 and errors[0].startswith(f"chatflow-wan: error: argument {option}: "), errors


def test_the_command_listens_forwards_and_stops_on_sigterm() -> None:
    with EchoServer() as echo:
        host, port = echo.address
        command = [sys.executable, "-m", "chatflow.wan", "--upstream", f"{host}:{port}", "--rtt-ms", "6"]
        with ServerProcess(command) as process:
            listening = process.wait_listening("tcp")
            assert (listening.host, listening.port > 0) == (LOCALHOST, True)
            with socket.create_connection((LOCALHOST, listening.port), timeout=DEFAULT_TIMEOUT) as sock:
                sock.sendall(b"through the command")
                assert recv_exactly(sock, 19) == b"through the command"
            assert process.stop() == 0
        assert "Traceback" not in process.stderr.text
        assert "chatflow-wan stopped: 1 connections" in process.stderr.text


def test_a_port_in_use_is_one_line_and_exit_1(capsys: pytest.CaptureFixture[str]) -> None:
    with listener() as busy:
        host, port = busy.getsockname()
        assert main(["--listen", f"{host}:{port}", "--upstream", f"{host}:{port}", "--rtt-ms", "1"]) == 1
    [line] = capsys.readouterr().err.splitlines()
    assert line.startswith(f"chatflow-wan: cannot listen on {host}:{port}: ")


def test_an_upstream_that_does_not_resolve_is_one_line_and_exit_1(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["--upstream", "no-such-host.invalid:80", "--rtt-ms", "1"]) == 1
    [line] = capsys.readouterr().err.splitlines()
    assert line.startswith("chatflow-wan: cannot resolve --upstream no-such-host.invalid or --listen 127.0.0.1: ")


def test_a_proxy_that_cannot_listen_raises_in_the_caller_and_holds_nothing() -> None:
    fds = len(os.listdir("/proc/self/fd"))
    with listener() as busy:
        proxy = DelayProxy(listen=busy.getsockname(), upstream=busy.getsockname(), rtt_ms=1)
        with pytest.raises(OSError):
            proxy.start()
    assert len(os.listdir("/proc/self/fd")) == fds


def open_fds() -> int:
    return len(os.listdir("/proc/self/fd"))


def test_a_proxy_holds_nothing_before_start_or_after_stop_and_says_whether_it_serves() -> None:
    with listener() as upstream:
        fds = open_fds()
        unstarted = DelayProxy(listen=ANY_PORT, upstream=upstream.getsockname(), rtt_ms=1)
        assert open_fds() == fds and not unstarted.alive
        unstarted.stop()
        proxy = DelayProxy(listen=ANY_PORT, upstream=upstream.getsockname(), rtt_ms=1).start()
        assert proxy.alive and proxy.failure is None
        proxy.stop()
        assert not proxy.alive and proxy.failure is None
        assert open_fds() == fds


def test_out_of_file_descriptors_clients_wait_and_are_served_once_others_close() -> None:
    """Clients beyond the descriptor limit wait (none is reset); those already through keep
    working, the proxy does not spin on a listener it cannot accept from, and each waiting
    client is served once those ahead of it close."""
    clients = 16  # more than 20 descriptors allow, at two a connection
    with EchoServer() as echo:
        host, port = echo.address
        command = with_fd_limit(20, [sys.executable, "-m", "chatflow.wan", "--upstream", f"{host}:{port}",
                                     "--rtt-ms", "1"])
        with ServerProcess(command) as process:
            proxy_port = process.wait_listening("tcp").port
            socks = [socket.create_connection((LOCALHOST, proxy_port), timeout=DEFAULT_TIMEOUT)
                     for _ in range(clients)]
            try:
                for n, sock in enumerate(socks):
                    sock.sendall(b"%02d" % n)
                assert process.stderr.wait_for(lambda line: "out of file descriptors" in line or None,
                                               DEFAULT_TIMEOUT), process.stderr_tail()
                assert recv_exactly(socks[0], 2) == b"00"
                busy = sum(process.cpu_seconds())
                time.sleep(1.0)  # a window to measure CPU over, not a wait for a result
                assert sum(process.cpu_seconds()) - busy < 0.5, "the proxy spins on its listener"
                for n, sock in enumerate(socks[1:], 1):
                    assert recv_exactly(sock, 2) == b"%02d" % n  # served once the one ahead closed
                    socks[n - 1].close()
            finally:
                for sock in socks:
                    sock.close()
            assert process.returncode is None
            assert process.stop() == 0
        assert "Traceback" not in process.stderr.text


#: ``python -m chatflow.wan`` whose proxy's thread fails at its first connection: the
#: only way to make that thread fail on purpose is to put a fault in it.
FAILING_COMMAND = """
import sys
import chatflow.wan.cli as cli
from chatflow.wan.proxy import DelayProxy

class FailingProxy(DelayProxy):
    def _accept(self, now):
        raise RuntimeError("a fault put in on purpose")

cli.DelayProxy = FailingProxy
sys.exit(cli.main(sys.argv[1:]))
"""


def test_the_command_exits_1_when_the_proxys_thread_fails() -> None:
    with EchoServer() as echo:
        host, port = echo.address
        command = [sys.executable, "-c", FAILING_COMMAND, "--upstream", f"{host}:{port}", "--rtt-ms", "1"]
        with ServerProcess(command) as process:
            with socket.create_connection((LOCALHOST, process.wait_listening("tcp").port), timeout=DEFAULT_TIMEOUT):
                assert process.wait(DEFAULT_TIMEOUT) == 1
    assert process.stderr.lines[-1] == ("chatflow-wan: the proxy stopped by itself (RuntimeError: a fault put in "
                                        "on purpose); every connection was closed"), process.stderr_tail()
