"""``python -m chatflow.wan`` / ``chatflow-wan``: a delay proxy in front of a server, until a signal."""

from __future__ import annotations

import argparse
import signal
import socket
import sys
import threading

from chatflow.arguments import milliseconds, port, whole_number
from chatflow.server import listening
from chatflow.wan.proxy import DEFAULT_MAX_BUFFER, DelayProxy

PROG = "chatflow-wan"
#: A round trip longer than this is surely a mistake in the unit (seconds for ms).
MAX_RTT_MS = 60_000.0


def address(text: str) -> tuple[str, int]:
    """``HOST:PORT`` (an IPv6 host in brackets: ``[::1]:8080``)."""
    host, colon, number = text.rpartition(":")
    if not colon or not host:
        raise argparse.ArgumentTypeError(f"not HOST:PORT: {text!r}")
    if host.startswith("[") and host.endswith("]"):
        host = host[1:-1]
    return host, port(number)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog=PROG,
        description="A TCP proxy that holds each direction's bytes for half a round trip (plus "
                    "jitter that never reorders): a network's latency on one machine (docs/wan.md).",
    )
    parser.add_argument("--listen", type=address, default=("127.0.0.1", 0), metavar="HOST:PORT",
                        help="where to accept connections, port 0 for any free port (default 127.0.0.1:0)")
    parser.add_argument("--upstream", type=address, required=True, metavar="HOST:PORT",
                        help="the server every connection is relayed to")
    parser.add_argument("--rtt-ms", type=milliseconds(MAX_RTT_MS), required=True, metavar="MS",
                        help="the round-trip time to add: each direction is held for half of it")
    parser.add_argument("--jitter-ms", type=milliseconds(MAX_RTT_MS), default=0.0, metavar="MS",
                        help="each direction's delay grows by a draw uniform in 0..MS, never "
                             "passing the chunk ahead (default %(default)g)")
    parser.add_argument("--seed", type=int, help="the jitter's seed (default: a fresh one each run)")
    parser.add_argument("--max-buffer", type=whole_number(1), default=DEFAULT_MAX_BUFFER, metavar="BYTES",
                        help="bytes one direction holds before its source is no longer read (default %(default)s)")
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    proxy = DelayProxy(listen=args.listen, upstream=args.upstream, rtt_ms=args.rtt_ms,
                       jitter_ms=args.jitter_ms, seed=args.seed, max_buffer=args.max_buffer)
    try:
        proxy.start()
    except socket.gaierror as exc:
        print(f"{PROG}: cannot resolve --upstream {args.upstream[0]} or --listen {args.listen[0]}: {exc.strerror}",
              file=sys.stderr)
        return 1
    except OSError as exc:
        print(f"{PROG}: cannot listen on {args.listen[0]}:{args.listen[1]}: {exc.strerror or exc}", file=sys.stderr)
        return 1
    stop = threading.Event()
    for signum in (signal.SIGINT, signal.SIGTERM):
        signal.signal(signum, lambda *_: stop.set())
    host, upstream = args.listen[0], args.upstream
    print(listening.line(PROG, "tcp", host, proxy.port)
          + f" -> {upstream[0]}:{upstream[1]}, round trip +{args.rtt_ms:g} ms, jitter 0-{args.jitter_ms:g} ms",
          file=sys.stderr, flush=True)
    while proxy.alive and not stop.wait(1.0):
        pass
    proxy.stop()
    if not stop.is_set():
        print(f"{PROG}: the proxy stopped by itself ({proxy.failure or 'no reason given'}); "
              "every connection was closed", file=sys.stderr, flush=True)
        return 1
    stats = proxy.stats()
    print(f"{PROG} stopped: {stats.connections_accepted} connections, {stats.bytes_to_upstream:,} bytes up, "
          f"{stats.bytes_to_client:,} down, {proxy.cpu_seconds():.2f} s CPU", file=sys.stderr, flush=True)
    return 0
