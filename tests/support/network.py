"""The loopback network every test and benchmark uses, and raw TCP reads with a bound.

Everything listens and connects on 127.0.0.1 only, on ports the kernel picks, so that
test files can run in parallel.
"""

from __future__ import annotations

import socket

LOCALHOST = "127.0.0.1"
#: More than any response or run of frames a test expects from the server.
MAX_READ = 256 * 1024
#: What one ``recv`` asks for, wherever tests, benchmarks and the fault proxy read a socket.
RECV_SIZE = 64 * 1024


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
