"""OpenTelemetry tracing, set up once for every process.

Configuration is OpenTelemetry's own: ``OTEL_EXPORTER_OTLP_ENDPOINT`` (or
``OTEL_EXPORTER_OTLP_TRACES_ENDPOINT``) turns tracing on and names an
OTLP/gRPC collector; ``OTEL_SERVICE_NAME``, ``OTEL_RESOURCE_ATTRIBUTES``,
``OTEL_TRACES_SAMPLER`` and ``OTEL_BSP_*`` work as documented upstream. With no
endpoint, tracing is off and every span below is a no-op costing nanoseconds.

W3C trace context crosses into the ASR and TTS processes in gRPC metadata
(``opentelemetry-instrumentation-grpc`` interceptors on our own channels and
servers only, so an exporter's calls are never traced), into the LLM server in
HTTP headers, and into an ASR utterance that began before its turn existed
in-band (``RecognizeRequest.trace_context``).
"""

from __future__ import annotations

import importlib.metadata
import logging
import os
import time
from collections.abc import Mapping
from typing import Any

from opentelemetry import context as otel_context
from opentelemetry import propagate, trace
from opentelemetry.sdk.resources import SERVICE_NAME, SERVICE_VERSION, Resource
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import BatchSpanProcessor

log = logging.getLogger(__name__)

# The tracer every span of the project comes from.
tracer = trace.get_tracer("voice_agent")

# Health checks and reflection would drown the turns in probe traffic.
_UNTRACED_SERVICES = ("grpc.health.v1.Health", "grpc.reflection.v1alpha.ServerReflection")

_provider: TracerProvider | None = None


def otlp_endpoint() -> str:
    return os.environ.get("OTEL_EXPORTER_OTLP_TRACES_ENDPOINT") or os.environ.get("OTEL_EXPORTER_OTLP_ENDPOINT", "")


def tracing_enabled() -> bool:
    disabled = os.environ.get("OTEL_SDK_DISABLED", "").lower() == "true"
    return bool(otlp_endpoint()) and not disabled and os.environ.get("OTEL_TRACES_EXPORTER", "otlp") != "none"


class _DetachNoise(logging.Filter):
    """Drops OpenTelemetry's "Failed to detach context" error: its gRPC server interceptor logs it,
    with a traceback, whenever a client cancels a stream (harmless; opentelemetry-python-contrib#2357)."""

    def filter(self, record: logging.LogRecord) -> bool:
        return record.getMessage() != "Failed to detach context"


logging.getLogger("opentelemetry.context").addFilter(_DetachNoise())


def setup_tracing(service_name: str) -> bool:
    """Installs the global tracer provider with an OTLP/gRPC exporter; False when tracing is off."""
    global _provider
    if _provider is not None or not tracing_enabled():
        if _provider is None:
            log.info("tracing off (set OTEL_EXPORTER_OTLP_ENDPOINT to export spans)")
        return _provider is not None
    # Imported here: the exporter pulls in its own gRPC stack, which a process without tracing never needs.
    from opentelemetry.exporter.otlp.proto.grpc.trace_exporter import OTLPSpanExporter

    resource = Resource.create(
        {
            SERVICE_NAME: os.environ.get("OTEL_SERVICE_NAME") or service_name,
            SERVICE_VERSION: importlib.metadata.version("voice-agent"),
            "service.namespace": "voice-agent",
        }
    )
    _provider = TracerProvider(resource=resource)
    _provider.add_span_processor(BatchSpanProcessor(OTLPSpanExporter()))
    trace.set_tracer_provider(_provider)
    log.info("tracing on: %s exports to %s", resource.attributes[SERVICE_NAME], otlp_endpoint())
    return True


def shutdown_tracing() -> None:
    """Flushes the spans still queued; called once as the process stops."""
    if _provider is not None:
        _provider.shutdown()


def _traced(details: Any) -> bool:
    method = details.method.decode() if isinstance(details.method, bytes) else details.method
    return not method.lstrip("/").startswith(_UNTRACED_SERVICES)


def server_interceptors() -> list[Any]:
    """gRPC server interceptors that continue the caller's trace; none when tracing is off."""
    if _provider is None:
        return []
    from opentelemetry.instrumentation.grpc import aio_server_interceptor

    return [aio_server_interceptor(filter_=_traced)]


def client_interceptors() -> list[Any]:
    """gRPC channel interceptors that send the current trace context; none when tracing is off."""
    if _provider is None:
        return []
    from opentelemetry.instrumentation.grpc import aio_client_interceptors

    return aio_client_interceptors(filter_=_traced)


def trace_headers(span: trace.Span | None = None) -> dict[str, str]:
    """W3C trace context headers (``traceparent``, ``tracestate``) of a span, or of the current context."""
    carrier: dict[str, str] = {}
    propagate.inject(carrier, context=trace.set_span_in_context(span) if span is not None else None)
    return carrier


def context_from(headers: Mapping[str, str]) -> otel_context.Context:
    return propagate.extract(headers)


def trace_id_of(span: trace.Span) -> str | None:
    """The span's trace id in hex, for exemplars and logs; None for a span that is not sampled."""
    span_context = span.get_span_context()
    return format(span_context.trace_id, "032x") if span_context.is_valid and span_context.trace_flags.sampled else None


def wall_ns(perf_counter_at: float) -> int:
    """Converts a ``time.perf_counter()`` reading to the epoch nanoseconds that span times use."""
    return time.time_ns() - int((time.perf_counter() - perf_counter_at) * 1e9)
