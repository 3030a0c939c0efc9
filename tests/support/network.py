"""The loopback network every test and benchmark uses, raw TCP reads with a bound, and a TCP echo server.

Everything listens and connects on 127.0.0.1 only, on ports the kernel picks, so that
test files can run in parallel.
"""

from __future__ import annotations

import socket
import threading

LOCALHOST = "127.0.0.1"
#: More than any response or run of frames a test expects from the server.
MAX_READ = 256 * 1024
#: What one ``recv`` asks for, wherever tests, benchmarks and the fault proxy read a socket.
RECV_SIZE = 64 * 1024
#: How long a helper's thread may take to stop.
JOIN_TIMEOUT = 5.0


def free_port() -> int:
    """A port nothing listens on right now (for a number needed before binding)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind((LOCALHOST, 0))
        return sock.getsockname()[1]


def recv_exactly(sock: socket.socket, size: int) -> bytes:
    """``size`` bytes from the peer, read in large chunks (each bounded by the socket's timeout)."""
    data = bytearray()
    while len(data) < size:
        chunk = sock.recv(min(RECV_SIZE, size - len(data)))
        if not chunk:
            raise AssertionError(f"connection ended after {len(data)} of {size} bytes")
        data += chunk
    return bytes(data)


def read_to_end(sock: socket.socket) -> bytes:
    """Everything the peer sends until it ends the stream (EOF, or a reset), at most ``MAX_READ``."""
    data = bytearray()
    try:
        while chunk := sock.recv(RECV_SIZE):
            data += chunk
            assert len(data) <= MAX_READ, "the peer does not stop sending"
    except ConnectionResetError:
        pass
    return bytes(data)


class EchoServer:
    """A TCP server on 127.0.0.1 that sends every byte back, a thread per connection; at the
    client's end of stream it ends its own (``shutdown(SHUT_WR)``). A context manager."""

    def __init__(self) -> None:
        self._listener = socket.create_server((LOCALHOST, 0))
        self._threads: list[threading.Thread] = []
        self._socks: list[socket.socket] = []
        self._accepting = threading.Thread(target=self._accept, name="EchoServer", daemon=True)

    @property
    def address(self) -> tuple[str, int]:
        return LOCALHOST, self._listener.getsockname()[1]

    def __enter__(self) -> EchoServer:
        self._accepting.start()
        return self

    def __exit__(self, *exc_info: object) -> None:
        self._listener.shutdown(socket.SHUT_RDWR)  # wakes accept()
        self._listener.close()
        self._accepting.join(JOIN_TIMEOUT)
        for sock in list(self._socks):
            try:
                sock.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass
        for thread in list(self._threads):
            thread.join(JOIN_TIMEOUT)
        assert not any(t.is_alive() for t in [self._accepting, *self._threads]), "an echo thread did not stop"

    def _accept(self) -> None:
        while True:
            try:
                sock, _ = self._listener.accept()
            except OSError:
                return
            sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            self._socks.append(sock)
            thread = threading.Thread(target=self._echo, args=(sock,), name="EchoConnection", daemon=True)
            self._threads.append(thread)
            thread.start()

    @staticmethod
    def _echo(sock: socket.socket) -> None:
        with sock:
            try:
                while data := sock.recv(RECV_SIZE):
                    sock.sendall(data)
                sock.shutdown(socket.SHUT_WR)
            except OSError:
                pass
