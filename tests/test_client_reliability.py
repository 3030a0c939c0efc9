"""The client when the world fails it: the server stopped by SIGTERM mid-run, a network
that delays, drops and resets at random, and results that cannot be written.

Complements ``test_client_faults.py`` (scripted servers, a SIGKILL and restart): here
the server is ``run_server.py`` in its own process and the faults come from outside the
server (a signal, ``fault_proxy.FaultProxy``, the file system).
"""

from __future__ import annotations

import os
import queue
import signal
import subprocess
import sys
import threading
import time
from collections import Counter
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor, wait
from contextlib import ExitStack
from pathlib import Path

import orjson
import pytest

from chatflow.client import main as client_main
from chatflow.client.chat_websocket_client import ChatWebSocketClient, ConnectionClosed
from chatflow.client.config import LoadTestConfig, RetryPolicy
from chatflow.client.csv_writer import BATCH, CsvWriter
from chatflow.client.framing import MaskKeys
from chatflow.client.message_generator import OutgoingMessage
from chatflow.client.message_sender import MessageSender
from chatflow.client.results import RunResult, SenderStats
from chatflow.client.run import LoadTest
from chatflow.client.summary import format_summary
from chatflow.metrics import Status
from chatflow.models import ChatMessage, MessageType
from chatflow.timestamps import now_ms
from tests.support.client_runs import SUMMARY_LABELS, BackgroundRun, assert_no_traceback, figure
from tests.support.fault_proxy import Fault, FaultProxy, FaultRates, Link, Message
from tests.support.network import free_port
from tests.support.processes import REPO_ROOT, RUN_CLIENT, run_client, server_process
from tests.support.waiting import wait_until

#: Statuses a lost message may end with when the network, not the server, failed it.
NETWORK_FAILURES = {Status.TIMEOUT, Status.CONNECTION_CLOSED, Status.CONNECTION_FAILED}


def assert_accounted(result: RunResult, records: list[tuple]) -> None:
    """Every generated message counted once, the records agree, and so does the summary."""
    totals = result.totals
    assert result.unreachable is None and not result.interrupted
    assert totals.success + totals.failure == result.generated == result.config.messages
    finals = [record for record in records if record[5]]
    assert len(finals) == result.generated, "one final record per message"
    assert sum(1 for record in finals if record[3] == Status.SUCCESS) == totals.success
    # Each failed attempt that was not its message's last was followed by a retry.
    assert sum(1 for record in records if not record[5]) == totals.retries
    summary = format_summary(result)
    assert figure(summary, "Messages generated") == result.generated
    assert figure(summary, "Successful") == totals.success
    assert figure(summary, "Failed") == totals.failure
    assert figure(summary, "Connections opened") == totals.connections
    assert figure(summary, "Reconnections") == totals.reconnections
    assert figure(summary, "Retries") == totals.retries
    for status, count in totals.failures_by_status.items():
        assert f"{status}: {count:,}" in summary


# -- the server stopped by SIGTERM, and restarted, mid-run ----------------------------------


@pytest.mark.timeout(60)
def test_server_sigterm_mid_run_closes_with_1001_and_the_run_finishes_after_a_restart() -> None:
    port = free_port()
    records: list[tuple] = []
    with ExitStack() as stack:
        first = stack.enter_context(server_process("--port", str(port)))
        # Enough messages that the run is still going when the server gets round to the
        # 1001s (it stops its health endpoint first, which can take half a second), and
        # 0.1 + 0.2 + … + 6.4 s of backoff: far more than a restart takes.
        config = LoadTestConfig(first.url, messages=20_000, warmup_threads=2, warmup_messages=250, threads=8,
                                timeout=0.5, retry=RetryPolicy(max_attempts=8, backoff=0.1), seed=7,
                                probe_messages=5)
        test = LoadTest(config, recorder=lambda *record: records.append(record))
        with BackgroundRun(test) as run:
            # The same connection class as the senders', idle, to read what they are told.
            observer = ChatWebSocketClient(f"{first.url}/chat/1", timeout=10)
            stack.callback(observer.close)
            wait_until(lambda: test.snapshot().done >= 1_000, timeout=30, message="the main phase is under way")
            first.process.send_signal(signal.SIGTERM)
            sigterm_at = time.monotonic()
            with pytest.raises(ConnectionClosed, match=r"^server closed the connection \(1001: server shutting down\)$"):
                observer.receive()
            closed_at = time.monotonic()
            done_at_close = test.snapshot().done
            # At once, as the senders do: the server waits for the end of the stream.
            observer.close()
            assert first.process.wait(10) == 0
            exited_at = time.monotonic()
            second = stack.enter_context(server_process("--port", str(port)))
            listening_at = time.monotonic()
            assert second.chat_port == port
            result = run.result(45, "the run did not finish after the restart")
    assert_accounted(result, records)
    totals = result.totals
    assert done_at_close < config.messages
    assert (totals.success, totals.failures_by_status) == (config.messages, {}), totals.failures_by_status
    closed = [record for record in records if record[3] == Status.CONNECTION_CLOSED]
    assert closed and not any(record[5] for record in closed), "the 1001 closes were retried"
    assert totals.reconnections > 0 and totals.retries >= len(closed)
    assert result.ok
    print(f"\nSIGTERM → 1001 {closed_at - sigterm_at:.2f} s, → exit {exited_at - sigterm_at:.2f} s, "
          f"exit → listening again {listening_at - exited_at:.2f} s; {done_at_close:,} done at the 1001; "
          f"retried attempts {dict(Counter(record[3] for record in records if not record[5]))}, "
          f"{totals.reconnections} reconnections, {totals.retries} retries")


# -- a network that delays, drops and resets -----------------------------------------------

PROXY_TIMEOUT_S = 0.3
#: Per chunk read (each request and each reply is about one chunk).
PROXY_RATES = FaultRates(delay=0.02, drop=0.005, reset=0.005, max_delay=2 * PROXY_TIMEOUT_S)
#: Enough attempts that a message rarely runs out of them through 3 % faults.
PROXY_RETRY = RetryPolicy(max_attempts=8, backoff=0.01)


def faults(proxy: FaultProxy) -> dict[str, int]:
    return {fault.value: count for fault, count in sorted(proxy.faults.items(), key=lambda item: item[0].value)}


def text_of(message: Message) -> str:
    return orjson.loads(message.payload)["message"]


def assert_one_request_at_a_time(links: list[Link]) -> None:
    """On every connection the k-th reply answers the k-th request, and the client sent
    a request only once the previous reply had been given to it: a reply can be read by
    none but the request it answers (SPEC §2.2: no late reply credited to a later one)."""
    for link in links:
        requests, replies = link.texts(to_server=True), link.texts(to_server=False)
        assert len(replies) <= len(requests)
        for request, reply in zip(requests, replies):
            assert text_of(reply) == text_of(request), f"connection {link.number}: replies out of order"
        for k in range(1, len(requests)):
            previous = replies[k - 1] if k - 1 < len(replies) else None
            assert previous is not None and previous.sent_at is not None \
                and requests[k].read_at > previous.sent_at, \
                f"connection {link.number}: request {k + 1} sent before reply {k} was delivered"


@pytest.mark.timeout(60)
def test_run_through_a_faulty_network_counts_every_message_and_reuses_no_connection_after_a_fault() -> None:
    records: list[tuple] = []
    with server_process() as server, FaultProxy(server.chat_port, PROXY_RATES, seed=1) as proxy:
        config = LoadTestConfig(proxy.url, messages=3_000, warmup_threads=4, warmup_messages=100, threads=12,
                                timeout=PROXY_TIMEOUT_S, retry=PROXY_RETRY, seed=2, probe_messages=5)
        result = LoadTest(config, recorder=lambda *record: records.append(record)).run()
    assert_accounted(result, records)
    totals = result.totals
    assert set(totals.failures_by_status) <= NETWORK_FAILURES, totals.failures_by_status
    assert all(proxy.faults[fault] > 0 for fault in (Fault.DELAY, Fault.DROP, Fault.RESET)), proxy.faults
    statuses = {record[3] for record in records if not record[5]}
    assert {Status.TIMEOUT, Status.CONNECTION_CLOSED} <= statuses, statuses
    assert totals.reconnections > 0 and totals.retries > 0
    assert_one_request_at_a_time(proxy.links)
    print(f"\n{config.messages:,} messages in {result.wall_s:.1f} s; proxy faults {faults(proxy)}; "
          f"{totals.success:,} ok, {totals.failure} failed {totals.failures_by_status}; "
          f"retried attempts {dict(Counter(record[3] for record in records if not record[5]))}, "
          f"{totals.reconnections} reconnections, {totals.retries} retries")


def unique_messages(sender: int, count: int) -> list[OutgoingMessage]:
    """Messages whose text names them, so that each reply says whose it is."""
    messages = []
    mask_keys = MaskKeys()
    for k in range(count):
        user = sender * 1_000 + k + 1
        chat = ChatMessage(user, f"user{user}", f"sender {sender} message {k}", now_ms(), MessageType.TEXT)
        messages.append(OutgoingMessage.of(chat, sender, mask_keys))
    return messages


@pytest.mark.timeout(60)
def test_every_success_is_credited_with_its_own_reply_and_the_delay_it_met() -> None:
    """Senders as a run makes them, one queue each, so that the n-th final record of a
    sender is its n-th message; the proxy's log says when that message's request and
    reply passed, and the client's latency must span that interval."""
    senders, each = 8, 150
    outgoing = {sender: unique_messages(sender, each) for sender in range(1, senders + 1)}
    records: dict[int, list[tuple]] = {sender: [] for sender in outgoing}
    stop = threading.Event()
    with server_process() as server, FaultProxy(server.chat_port, PROXY_RATES, seed=3) as proxy:
        workers = []
        for sender, messages in outgoing.items():
            queued: queue.SimpleQueue[OutgoingMessage] = queue.SimpleQueue()
            for message in messages:
                queued.put(message)
            workers.append(MessageSender(f"{proxy.url}/chat/{sender}", sender, queued, each, stop,
                                         timeout=PROXY_TIMEOUT_S, retry=PROXY_RETRY,
                                         recorder=lambda *record, out=records[sender]: out.append(record)))
        with ThreadPoolExecutor(max_workers=senders) as pool:
            futures = [pool.submit(worker.run) for worker in workers]
            _, pending = wait(futures, timeout=45)
            stop.set()
        assert not pending, "the senders did not finish"
    totals = SenderStats()
    for future in futures:
        totals.merge(future.result())
    assert totals.success + totals.failure == senders * each
    assert set(totals.failures_by_status) <= NETWORK_FAILURES, totals.failures_by_status
    assert totals.reconnections > 0 and totals.retries > 0
    assert_one_request_at_a_time(proxy.links)

    # Where each message's requests went, in the order the proxy read them.
    requests: dict[str, list[tuple[Link, int, Message]]] = {}
    for link in proxy.links:
        for k, request in enumerate(link.texts(to_server=True)):
            requests.setdefault(text_of(request), []).append((link, k, request))
    delayed = 0
    for sender, messages in outgoing.items():
        finals = [record for record in records[sender] if record[5]]
        assert len(finals) == each
        for message, (_, _, latency_ms, status, _, _) in zip(messages, finals):
            if status != Status.SUCCESS:
                continue
            text = orjson.loads(message.payload)["message"]
            # The successful attempt was the message's last, so its request was read last.
            link, k, request = max(requests[text], key=lambda found: found[2].read_at)
            replies = link.texts(to_server=False)
            assert k < len(replies), f"{text!r}: credited, but its reply never came"
            reply = replies[k]
            assert text_of(reply) == text and reply.sent_at is not None, f"{text!r}: its reply was never delivered"
            passed = reply.sent_at - request.read_at
            # The client's interval (send → reply read) contains the proxy's (request
            # read → reply delivered), which contains every delay the proxy added.
            assert passed >= request.held + reply.held
            assert latency_ms / 1000 >= passed, \
                f"{text!r}: {latency_ms:.3f} ms, yet its request and reply took {passed * 1000:.3f} ms through the proxy"
            if request.held + reply.held > 0:
                delayed += 1
    assert delayed > 0, "no successful message met a delay: the check above checked nothing"
    print(f"\n{senders * each} messages; {delayed} successes met an injected delay; proxy faults {faults(proxy)}")


# -- results that cannot be written ---------------------------------------------------------


def under_a_regular_file(tmp_path: Path) -> Path:
    """As root, permission bits stop nothing; a path through a file stops everyone."""
    (tmp_path / "file.txt").write_text("")
    return tmp_path / "file.txt" / "sub"


@pytest.mark.parametrize(
    ("make_directory", "reason"),
    [
        (under_a_regular_file, "Not a directory"),
        (lambda _: Path("/proc/chatflow-results"), "No such file or directory"),
        # /proc exists, and takes no new file.
        (lambda _: Path("/proc"), "No such file or directory"),
    ],
    ids=["under-a-regular-file", "cannot-create-the-directory", "cannot-create-the-file"],
)
def test_unwritable_output_directory_is_a_one_line_error_before_the_run(
        tmp_path: Path, make_directory: Callable[[Path], Path], reason: str) -> None:
    directory = make_directory(tmp_path)
    # Nothing listens on the port: had the client tried to run, it would say so on stdout.
    result = run_client("--server", f"127.0.0.1:{free_port()}", "--output-dir", str(directory))
    assert result.returncode == 1, result
    assert_no_traceback(result)
    assert result.stdout == ""
    assert result.stderr.splitlines() == [f"chatflow-client: error: cannot write results to {directory}: {reason}"]
    assert not directory.exists() or not any(directory.glob("metrics_*.csv"))


def csv_rows(path: Path) -> int:
    with path.open("rb") as file:
        return sum(1 for _ in file) - 1


def fill_the_disk_under(writer: CsvWriter, after_rows: int, done: list[int]) -> None:
    """Once ``after_rows`` rows are written, point the writer's open file at /dev/full:
    every write from then on fails with ENOSPC, as on a full disk."""
    wait_until(lambda: writer.rows_written >= after_rows, timeout=30, message=f"{after_rows} rows written")
    fds = Path("/proc/self/fd")
    for fd in os.listdir(fds):
        try:
            target = os.readlink(fds / fd)
        except OSError:
            continue
        if target == str(writer.path):
            full = os.open("/dev/full", os.O_WRONLY)
            try:
                os.dup2(full, int(fd))
            finally:
                os.close(full)
            done.append(writer.rows_written)
            return
    raise AssertionError(f"no open descriptor for {writer.path}")


@pytest.mark.timeout(60)
@pytest.mark.filterwarnings("error::pytest.PytestUnhandledThreadExceptionWarning")
def test_disk_full_mid_run_the_run_goes_on_and_warns_that_the_metrics_are_incomplete(
        tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    messages = 20_000
    with server_process() as server:
        args = client_main.build_parser().parse_args([
            "--server", server.url, "--messages", str(messages), "--warmup-threads", "2",
            "--warmup-messages", "500", "--threads", "4", "--probe-messages", "5", "--quiet",
            "--output-dir", str(tmp_path),
        ])
        writer = CsvWriter(tmp_path)
        filled: list[int] = []
        filler = threading.Thread(target=fill_the_disk_under, args=(writer, 2_000, filled), daemon=True)
        filler.start()
        status = client_main.run(args, server.url, None, writer)
        filler.join(5)
    out = capsys.readouterr().out
    assert filled, "the disk was never filled"
    assert status == 0, out
    assert_no_traceback(out)
    for label in SUMMARY_LABELS:
        assert label in out, f"no {label!r} in:\n{out}"
    assert figure(out, "Successful") == messages
    assert "Warning: the metrics file is incomplete: No space left on device" in out.splitlines()
    assert out.strip().splitlines()[-1] == f"OK: all {messages:,} messages succeeded"
    # The writer ended by itself, and what it says it wrote is what the file holds.
    assert not writer.is_alive() and writer.error == "No space left on device"
    # (A batch being written at the instant of the fill may leave part of itself.)
    rows = csv_rows(writer.path)
    assert filled[0] <= writer.rows_written <= rows < writer.rows_written + BATCH
    assert rows < messages
    assert f"Metrics: {writer.path} ({writer.rows_written:,} rows)" in out


#: ``python -c`` this, LIMIT, run_client.py, its arguments: the limit is set in the
#: client's own process (a ``preexec_fn`` is unsafe in a process with threads).
RUN_CLIENT_WITH_FILE_SIZE_LIMIT = (
    "import resource, runpy, sys; "
    "resource.setrlimit(resource.RLIMIT_FSIZE, (int(sys.argv[1]),) * 2); "
    "sys.argv = sys.argv[2:]; "
    "runpy.run_path(sys.argv[0], run_name='__main__')"
)


@pytest.mark.timeout(60)
def test_file_size_limit_mid_run_as_a_process_prints_everything_and_no_traceback(tmp_path: Path) -> None:
    """The whole command under RLIMIT_FSIZE: the metrics file stops mid-line (the kernel
    writes up to the limit, then refuses); the run, the summary and the analysis of what
    was written still happen."""
    limit = 64 * 1024
    messages = 5_000
    with server_process() as server:
        result = subprocess.run(
            [sys.executable, "-c", RUN_CLIENT_WITH_FILE_SIZE_LIMIT, str(limit), str(RUN_CLIENT),
             "--server", server.url, "--messages", str(messages), "--warmup-threads", "2",
             "--warmup-messages", "500", "--threads", "4", "--probe-messages", "5", "--quiet",
             "--output-dir", str(tmp_path)],
            cwd=REPO_ROOT, stdin=subprocess.DEVNULL, capture_output=True, text=True, timeout=45,
        )
    out = result.stdout
    assert result.returncode == 0, result
    assert_no_traceback(result)
    for label in SUMMARY_LABELS:
        assert label in out, f"no {label!r} in:\n{out}"
    assert "Warning: the metrics file is incomplete: File too large" in out.splitlines()
    assert out.strip().splitlines()[-1] == f"OK: all {messages:,} messages succeeded"
    (metrics,) = tmp_path.glob("metrics_*.csv")
    assert metrics.stat().st_size == limit
