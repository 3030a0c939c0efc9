"""The server's Prometheus metrics: every name, what the chat handler counts, and the
collectors that turn the counts into ``GET /metrics`` (docs/metrics.md).

Nothing here runs per message. The selector thread bumps plain numbers, the transport's
in ``TransportStats`` and the chat handler's in ``ChatStats``, and a collector reads
them when Prometheus scrapes, from the health endpoint's thread: counting then costs the
hot path a few increments, where a ``prometheus_client.Counter`` would take a lock on
each (docs/measurements/metrics.md has the A/B). With ``--workers`` the supervisor asks
each worker for its families over its pipe and serves them merged, a ``worker`` label on
every sample (``merge``; docs/metrics.md says why not the library's multiprocess mode).

This is the server's: ``chatflow.metrics`` is the client's CSV, another schema.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator, Mapping
from typing import TYPE_CHECKING

from prometheus_client.exposition import choose_encoder
from prometheus_client.metrics_core import CounterMetricFamily, GaugeMetricFamily, HistogramMetricFamily, Metric
from prometheus_client.process_collector import ProcessCollector
from prometheus_client.registry import Collector, CollectorRegistry
from prometheus_client.utils import floatToGoString

from chatflow.server.message_validator import FIELDS
from chatflow.server.transport.stats import TransportStats

if TYPE_CHECKING:
    from chatflow.server.bus import RedisBus
    from chatflow.server.chat_websocket_server import ChatWebSocketServer
    from chatflow.server.transport import WebSocketServer

# -- the names (counters without their ``_total``, which the exposition adds) ------------
CONNECTIONS_OPEN = "chatflow_connections_open"
ROOM_CONNECTIONS = "chatflow_room_connections"
CONNECTIONS_OPENED = "chatflow_connections_opened"
CONNECTIONS_CLOSED = "chatflow_connections_closed"
HANDSHAKES_REFUSED = "chatflow_handshakes_refused"
MESSAGES_RECEIVED = "chatflow_messages_received"
VALIDATION_ERRORS = "chatflow_validation_errors"
REPLIES_SENT = "chatflow_replies_sent"
RECEIVED_BYTES = "chatflow_received_bytes"
SENT_BYTES = "chatflow_sent_bytes"
HANDLER_SECONDS = "chatflow_handler_seconds"
WAKEUPS = "chatflow_selector_wakeups"
MESSAGES_PER_WAKEUP = "chatflow_selector_messages_per_wakeup"
WEBSOCKET_UP = "chatflow_websocket_up"
BROADCAST_DELIVERIES = "chatflow_broadcast_deliveries"
BROADCAST_EVICTIONS = "chatflow_broadcast_evictions"
BROADCAST_UNORDERED = "chatflow_broadcast_unordered"
BUS_UP = "chatflow_bus_up"
BUS_MESSAGES = "chatflow_bus_messages"
WORKER_UP = "chatflow_worker_up"
#: The label of every sample the supervisor of ``--workers`` serves: the worker's index,
#: or ``supervisor`` for its own process figures.
WORKER = "worker"
SUPERVISOR = "supervisor"

#: The outcomes of ``MESSAGES_RECEIVED``: a success reply, validation errors (counted
#: again by field in ``VALIDATION_ERRORS``), text that is not a JSON object, a binary frame.
SUCCESS, INVALID, BAD_JSON, BINARY = "success", "invalid", "bad_json", "binary"
#: ``BUS_MESSAGES``'s kinds: the bus's counts of ``RedisBus.status``, by their keys there.
BUS_KINDS = {"published": "published", "received": "received", "not_crossed": "notCrossed",
             "missed": "missed", "reordered": "reordered"}

#: ``HANDLER_SECONDS``'s upper bounds: a valid chat message takes some 10-20 µs.
HANDLER_BUCKETS = (5e-6, 1e-5, 1.5e-5, 2e-5, 3e-5, 5e-5, 1e-4, 2e-4, 5e-4, 1e-3, 5e-3, 2e-2, 1e-1)
#: One message in 2 ** this, on average, has its handler time taken (``TransportStats``).
HANDLER_SAMPLE_BITS = 4
#: ``MESSAGES_PER_WAKEUP``'s: up to the loop's batch (1,024) and beyond.
BATCH_BUCKETS = (1, 2, 4, 8, 16, 32, 64, 128, 256, 512, 1024)


class ChatStats:
    """What the chat handler counts, on the selector thread only: each message's outcome,
    and each failed validation rule (by its wire key, from the validator's table)."""

    __slots__ = ("success", "invalid", "bad_json", "binary", "field_errors")

    def __init__(self) -> None:
        self.success = 0
        self.invalid = 0
        self.bad_json = 0
        self.binary = 0
        #: A fixed key per rule, so that a reader's copy never races a new key.
        self.field_errors = dict.fromkeys(FIELDS, 0)

    def rejected(self, fields: tuple[str, ...]) -> None:
        """A message refused for ``fields`` (none: it was not a JSON object)."""
        if not fields:
            self.bad_json += 1
            return
        self.invalid += 1
        errors = self.field_errors
        for key in fields:
            errors[key] += 1

    @property
    def refused(self) -> int:
        """Messages that got an error reply, of every kind."""
        return self.invalid + self.bad_json + self.binary


def transport_stats(sample_bits: int = HANDLER_SAMPLE_BITS) -> TransportStats:
    """The transport's counts, with this module's histogram bounds (``sample_bits``: other
    than the server's sample, for the benchmark of what it saves)."""
    return TransportStats(handler_bounds_ns=[round(bound * 1e9) for bound in HANDLER_BUCKETS],
                          batch_bounds=BATCH_BUCKETS, sample_bits=sample_bits)


def histogram(name: str, documentation: str, bounds: Iterable[float], buckets: list[int],
              total: float) -> HistogramMetricFamily:
    """A histogram family from one bucket list (``buckets[i]``: the observations at most
    ``bounds[i]`` and above the bound before; the last, those above every bound)."""
    cumulative, running = [], 0
    for bound, count in zip([*bounds, float("inf")], buckets):
        running += count
        cumulative.append((floatToGoString(bound), running))
    return HistogramMetricFamily(name, documentation, buckets=cumulative, sum_value=total)


def labelled(family: CounterMetricFamily | GaugeMetricFamily,
             values: Mapping[object, float]) -> CounterMetricFamily | GaugeMetricFamily:
    """``family`` with one sample per entry of ``values``, its key the one label's value."""
    for key, value in values.items():
        family.add_metric([str(key)], value)
    return family


class ServerCollector(Collector):
    """One server process's families, read from its counts at each scrape."""

    def __init__(self, websocket: WebSocketServer, chat: ChatWebSocketServer | None,
                 bus: RedisBus | None = None) -> None:
        self._websocket = websocket
        self._chat = chat
        self._bus = bus

    def collect(self) -> Iterator[Metric]:
        websocket, chat = self._websocket, self._chat
        yield GaugeMetricFamily(WEBSOCKET_UP, "1 while the WebSocket listener and its selector thread serve, else 0.",
                                value=0 if websocket.failure else 1)
        yield GaugeMetricFamily(CONNECTIONS_OPEN, "WebSocket connections open (handshake accepted, not closed yet).",
                                value=websocket.open_connections)
        stats = websocket.stats
        if stats is not None:
            yield from transport_families(stats)
        if chat is None:
            return
        yield labelled(GaugeMetricFamily(ROOM_CONNECTIONS, "Chat connections in each occupied room.",
                                         labels=["room"]), chat.rooms.occupancy())
        if chat.stats is not None:
            yield from chat_families(chat.stats)
        broadcast = chat.broadcast_counts()
        if broadcast is not None:
            yield from broadcast_families(broadcast)
        if self._bus is not None:
            yield from bus_families(self._bus.status())


def transport_families(stats: TransportStats) -> Iterator[Metric]:
    yield CounterMetricFamily(CONNECTIONS_OPENED, "WebSocket handshakes accepted.", value=stats.opened)
    yield labelled(CounterMetricFamily(CONNECTIONS_CLOSED, "Admitted connections ended, by the code of the first "
                                       "close frame (1006: none).", labels=["code"]), stats.closed.copy())
    yield labelled(CounterMetricFamily(HANDSHAKES_REFUSED, "Opening handshakes answered with an HTTP error, by status.",
                                       labels=["status"]), stats.refused.copy())
    yield CounterMetricFamily(REPLIES_SENT, "Frames the handler sent on the connection whose message it handled.",
                              value=stats.replies)
    yield CounterMetricFamily(RECEIVED_BYTES, "Bytes read from WebSocket sockets (handshakes and framing included).",
                              value=stats.bytes_in)
    yield CounterMetricFamily(SENT_BYTES, "Bytes written to WebSocket sockets (handshakes and framing included).",
                              value=stats.bytes_out)
    yield histogram(HANDLER_SECONDS, "The handler's time for one whole message (validation, reply, fan-out), "
                    f"of a random sample of about one message in {2 ** HANDLER_SAMPLE_BITS}.",
                    HANDLER_BUCKETS, list(stats.handler_buckets), stats.handler_ns / 1e9)
    yield CounterMetricFamily(WAKEUPS, "Wake-ups of the selector thread, idle ones included.", value=stats.wakeups)
    batches = list(stats.batch_buckets)
    yield histogram(MESSAGES_PER_WAKEUP, "Messages handled by each wake-up of the selector that handled any.",
                    BATCH_BUCKETS, batches, stats.messages)


def chat_families(stats: ChatStats) -> Iterator[Metric]:
    yield labelled(CounterMetricFamily(MESSAGES_RECEIVED, "Chat messages received, by outcome.", labels=["outcome"]),
                   {SUCCESS: stats.success, INVALID: stats.invalid, BAD_JSON: stats.bad_json, BINARY: stats.binary})
    yield labelled(CounterMetricFamily(VALIDATION_ERRORS, "Invalid messages by each field that failed its rule.",
                                       labels=["field"]), stats.field_errors.copy())


def broadcast_families(counts: Mapping[str, int]) -> Iterator[Metric]:
    yield CounterMetricFamily(BROADCAST_DELIVERIES, "Room frames handed to the other members of a room.",
                              value=counts["delivered"])
    yield CounterMetricFamily(BROADCAST_EVICTIONS, "Members closed with 1008 for not reading their room's frames.",
                              value=counts["evicted"])
    yield CounterMetricFamily(BROADCAST_UNORDERED, "Messages delivered outside their room's order (the bus was down).",
                              value=counts["unordered"])


def bus_families(status: Mapping[str, object]) -> Iterator[Metric]:
    yield labelled(GaugeMetricFamily(BUS_UP, "1 while the bus's publisher or subscriber reaches Redis, else 0.",
                                     labels=["side"]),
                   {side: 1 if status[side] == "up" else 0 for side in ("publisher", "subscriber")})
    yield labelled(CounterMetricFamily(BUS_MESSAGES, "Messages through the Redis bus, by what became of them.",
                                       labels=["kind"]), {kind: status[key] for kind, key in BUS_KINDS.items()})


def registry_of(websocket: WebSocketServer, chat: ChatWebSocketServer | None,
                bus: RedisBus | None = None) -> CollectorRegistry:
    """One process's registry: its server's families and the process's CPU and memory.
    A registry of its own, not the library's global one, so that a test may run several."""
    registry = CollectorRegistry(auto_describe=False)
    registry.register(ServerCollector(websocket, chat, bus))
    ProcessCollector(registry=registry)
    return registry


def exposition(registry: Collector, accept: str | None) -> tuple[bytes, str]:
    """The scrape's body and its content type, in the format the ``Accept`` header asks
    for (Prometheus' text format, or OpenMetrics)."""
    encoder, content_type = choose_encoder(accept or "")
    return encoder(registry), content_type


def families(registry: Collector) -> list[Metric]:
    """What a worker sends the supervisor: its families, as plain (picklable) data."""
    return list(registry.collect())


def merge(by_worker: Mapping[str, Iterable[Metric]]) -> list[Metric]:
    """The families of several processes as one set: a family per name, each sample
    labelled with ``WORKER``, the key it came under."""
    merged: dict[str, Metric] = {}
    for worker, worker_families in by_worker.items():
        for family in worker_families:
            into = merged.get(family.name)
            if into is None:
                into = merged[family.name] = Metric(family.name, family.documentation, family.type, family.unit)
            into.samples.extend(sample._replace(labels={**sample.labels, WORKER: worker}) for sample in family.samples)
    return list(merged.values())


class WorkersCollector(Collector):
    """The supervisor's families: each worker's (``ask``: by index, None for a worker that
    did not answer in time or is gone) and its own process figures, merged (``merge``),
    and which workers answered (``WORKER_UP``)."""

    def __init__(self, ask: Callable[[], Mapping[int, list[Metric] | None]]) -> None:
        self._ask = ask
        self._process = ProcessCollector(registry=None)

    def collect(self) -> Iterator[Metric]:
        answers = self._ask()
        yield labelled(GaugeMetricFamily(WORKER_UP, "1 for a worker that answered this scrape, 0 for one that did "
                                         "not (gone, stopped or busy).", labels=[WORKER]),
                       {index: 0 if answer is None else 1 for index, answer in answers.items()})
        by_worker = {SUPERVISOR: list(self._process.collect())}
        by_worker.update((str(index), answer) for index, answer in answers.items() if answer is not None)
        yield from merge(by_worker)


def workers_registry(ask: Callable[[], Mapping[int, list[Metric] | None]]) -> CollectorRegistry:
    """The supervisor's registry (``WorkersCollector``)."""
    registry = CollectorRegistry(auto_describe=False)
    registry.register(WorkersCollector(ask))
    return registry
