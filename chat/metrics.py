"""Prometheus metrics of this process (``GET /metrics``, see docs/operations.md).

Every process serves its own: with several daphne processes, scrape each of them
(their values are not added up here; no multiprocess mode is needed since one
daphne process is one Python process).

Label values are bounded: protocols and transports come from a fixed list, and
operation names (chosen by clients) are kept only when they look like a GraphQL
name and while fewer than ``MAX_OPERATION_NAMES`` distinct ones have been seen;
anything else is counted as ``other``.
"""

from __future__ import annotations

import re
import threading
from contextvars import ContextVar

from prometheus_client import Counter, Gauge, Histogram, disable_created_metrics

# No ``*_created`` series: the process start time says the same.
disable_created_metrics()

# Transports that carry subscriptions: the WebSocket subprotocols and the HTTP ones.
PROTOCOLS = ("graphql-transport-ws", "graphql-ws", "sse", "multipart")
MAX_OPERATION_NAMES = 200
_OPERATION_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_]{0,63}")
OTHER = "other"
ANONYMOUS = "anonymous"

OPEN_CONNECTIONS = Gauge(
    "chat_open_connections", "Open real-time connections (WebSockets, HTTP subscription streams)", ["protocol"]
)
OPEN_SUBSCRIPTIONS = Gauge("chat_open_subscriptions", "Subscriptions running", ["protocol"])
DELIVERIES = Counter("chat_deliveries", "Events delivered to subscribers (one per subscriber)", ["path"])
REPLAYED = Counter("chat_replayed_events", "Stored events replayed to subscriptions resuming after a cursor")
GAP_FILLS = Counter("chat_gap_fills", "Gaps in a subscription's event sequence filled from the event table")
SLOW_CLIENT_CUTOFFS = Counter(
    "chat_slow_client_cutoffs", "Connections closed because the client did not read (close 4429)", ["protocol"]
)
CHANNEL_LAYER_ERRORS = Counter("chat_channel_layer_errors", "Channel layer (Redis) failures seen", ["where"])
RATE_LIMITED = Counter("chat_rate_limited", "Requests refused by a rate limit", ["action"])
OPERATION_SECONDS = Histogram(
    "chat_operation_duration_seconds",
    "GraphQL query and mutation durations, by transport and operation name",
    ["transport", "type", "operation"],
    buckets=(0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10),
)

for _protocol in PROTOCOLS:  # every protocol's series exist from the start, at 0
    OPEN_CONNECTIONS.labels(_protocol)
    OPEN_SUBSCRIPTIONS.labels(_protocol)
    SLOW_CLIENT_CUTOFFS.labels(_protocol)

_names: set[str] = set()
_names_lock = threading.Lock()


def protocol_label(protocol: str | None) -> str:
    return protocol if protocol in PROTOCOLS else OTHER


def operation_label(name: str | None) -> str:
    """A client's operation name as a label value: itself if it is a plausible
    GraphQL name among the first ``MAX_OPERATION_NAMES`` seen, else ``other``."""
    if not name:
        return ANONYMOUS
    if not _OPERATION_NAME.fullmatch(name):
        return OTHER
    if name in _names:
        return name
    with _names_lock:
        if len(_names) >= MAX_OPERATION_NAMES:
            return OTHER
        _names.add(name)
    return name


# --- What transports call -------------------------------------------------------------


def connection_opened(protocol: str) -> None:
    OPEN_CONNECTIONS.labels(protocol_label(protocol)).inc()


def connection_closed(protocol: str) -> None:
    OPEN_CONNECTIONS.labels(protocol_label(protocol)).dec()


def subscription_opened(protocol: str) -> None:
    OPEN_SUBSCRIPTIONS.labels(protocol_label(protocol)).inc()


def subscription_closed(protocol: str) -> None:
    OPEN_SUBSCRIPTIONS.labels(protocol_label(protocol)).dec()


# Set in a subscription operation's context when the live engine takes the
# subscription over: the operation ends, the subscription runs on, and whoever
# took it over counts it closed when it really ends.
_handed_over: ContextVar[bool] = ContextVar("subscription_handed_over", default=False)


def subscription_handed_over() -> None:
    _handed_over.set(True)


def subscription_ends_with_operation() -> bool:
    """Whether the current subscription operation's end is its subscription's end."""
    return not _handed_over.get()


def slow_client_cut_off(protocol: str) -> None:
    SLOW_CLIENT_CUTOFFS.labels(protocol_label(protocol)).inc()


def operation_finished(transport: str, operation_type: str | None, name: str | None, seconds: float) -> None:
    transport = transport if transport in ("http", "websocket") else OTHER
    operation_type = operation_type if operation_type in ("query", "mutation") else OTHER
    OPERATION_SECONDS.labels(transport, operation_type, operation_label(name)).observe(seconds)


# --- What the engine and the services call ---------------------------------------------------


# Resolved once: a delivery is counted per subscriber, on the hot path of a fan-out.
_DELIVERIES_BY_PATH = {path: DELIVERIES.labels(path) for path in ("fast", "stream")}


def delivered(path: str, count: int = 1) -> None:
    """``path``: ``fast`` (written straight to the transport) or ``stream`` (the subscription's generator)."""
    _DELIVERIES_BY_PATH[path].inc(count)


class PendingCount:
    """Counts made in the event loop's thread many times per event (a fan-out's fast
    deliveries), added to their counter by ``flush`` once the event is handed out:
    a Prometheus counter takes a lock on each increment."""

    __slots__ = ("counter", "pending")

    def __init__(self, counter):
        self.counter = counter
        self.pending = 0

    def flush(self) -> None:
        if self.pending:
            count, self.pending = self.pending, 0
            self.counter.inc(count)


fast_deliveries = PendingCount(_DELIVERIES_BY_PATH["fast"])


def replayed(count: int = 1) -> None:
    REPLAYED.inc(count)


def gap_filled() -> None:
    GAP_FILLS.inc()


def channel_layer_failed(where: str) -> None:
    CHANNEL_LAYER_ERRORS.labels(where).inc()


def rate_limited(action: str) -> None:
    RATE_LIMITED.labels(action).inc()
