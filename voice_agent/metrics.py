"""Prometheus metrics shared by every process.

Names follow docs/architecture.md: a ``voice_`` prefix, base units, ``_total`` for
counters, and bounded labels (never a session id).
"""

from __future__ import annotations

import asyncio

from prometheus_client import Counter, Gauge, Histogram, start_http_server

# Resolves 10 ms to 5 s, as every latency histogram in the project must.
LATENCY_BUCKETS = (
    0.01,
    0.02,
    0.03,
    0.05,
    0.075,
    0.1,
    0.15,
    0.2,
    0.25,
    0.3,
    0.4,
    0.5,
    0.65,
    0.8,
    1.0,
    1.5,
    2.0,
    3.0,
    5.0,
)


def latency_histogram(name: str, documentation: str, labelnames: tuple[str, ...] = ()) -> Histogram:
    return Histogram(name, documentation, labelnames, buckets=LATENCY_BUCKETS)


ACTIVE_STREAMS = Gauge("voice_active_streams", "Streams being served now.", ["service"])
STREAMS = Counter("voice_streams_total", "Streams accepted.", ["service"])
ERRORS = Counter("voice_errors_total", "Streams ended with an error, by gRPC status code.", ["service", "code"])
ASYNCIO_TASKS = Gauge(
    "voice_asyncio_tasks", "asyncio tasks alive in the process; one that only grows is a leak.", ["service"]
)


# Status codes a service's streams commonly end with; their series exist (at zero) from the start.
COMMON_ERROR_CODES = (
    "INVALID_ARGUMENT",
    "RESOURCE_EXHAUSTED",
    "UNAVAILABLE",
    "DEADLINE_EXCEEDED",
    "INTERNAL",
    "CANCELLED",
)


def init_labels(metric: Counter | Gauge | Histogram, *label_sets: tuple[str, ...]) -> None:
    """Creates each labelled series at zero, so that rate() and the dashboards see it before the first event."""
    for labels in label_sets:
        metric.labels(*labels)


def init_service_metrics(service: str) -> None:
    init_labels(ACTIVE_STREAMS, (service,))
    init_labels(STREAMS, (service,))
    init_labels(ERRORS, *((service, code) for code in COMMON_ERROR_CODES))


def track_event_loop(service: str, loop: asyncio.AbstractEventLoop) -> None:
    """The tasks gauge reads the loop's live tasks at each scrape (all_tasks is safe from another thread)."""
    ASYNCIO_TASKS.labels(service).set_function(lambda: len(asyncio.all_tasks(loop)))


def start_metrics_server(host: str, port: int) -> None:
    """Serves /metrics over HTTP; port 0 turns it off."""
    if port:
        start_http_server(port, addr=host)
