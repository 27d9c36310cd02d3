"""The embedded LLM server: llama.cpp's OpenAI-compatible app, observed like every other process.

``/metrics`` is served on the HTTP port (as vLLM does), and each ``/v1/`` request
gets an ``llm.generate`` span that continues the caller's W3C trace context.
"""

from __future__ import annotations

import os
import time
from typing import Any

from opentelemetry import trace
from prometheus_client import make_asgi_app

from services.llm.config import LlmServerConfig
from voice_agent import metrics
from voice_agent.metrics import latency_histogram
from voice_agent.telemetry import context_from, trace_headers, tracer

INFERENCE_SECONDS = latency_histogram("voice_llm_inference_seconds", "A completion, request to last byte.")
TTFT_SECONDS = latency_histogram("voice_llm_ttft_seconds", "A streamed completion, request to first chunk.")
GENERATION_PATHS = ("/v1/chat/completions", "/v1/completions")

# HTTP statuses under the gRPC names that voice_errors_total uses everywhere.
_STATUS_CODES = {
    400: "INVALID_ARGUMENT",
    401: "UNAUTHENTICATED",
    403: "PERMISSION_DENIED",
    404: "NOT_FOUND",
    422: "INVALID_ARGUMENT",
    429: "RESOURCE_EXHAUSTED",
    500: "INTERNAL",
    503: "UNAVAILABLE",
    504: "DEADLINE_EXCEEDED",
}

Scope = dict[str, Any]
Message = dict[str, Any]


class ObservedApp:
    """ASGI middleware: metrics and a span for each request under ``/v1/``."""

    def __init__(self, app: Any, model: str) -> None:
        self._app = app
        self._model = model
        self._metrics = make_asgi_app()
        metrics.init_service_metrics("llm")

    async def __call__(self, scope: Scope, receive: Any, send: Any) -> None:
        path = scope.get("path", "")
        if path == "/metrics":  # answered here: a mounted app would redirect to /metrics/
            await self._metrics(scope, receive, send)
            return
        if scope["type"] != "http" or not path.startswith("/v1/"):
            await self._app(scope, receive, send)
            return
        headers = {key.decode("latin-1"): value.decode("latin-1") for key, value in scope.get("headers", [])}
        span = tracer.start_span(
            "llm.generate",
            context_from(headers),
            kind=trace.SpanKind.SERVER,
            attributes={"http.route": path, "gen_ai.request.model": self._model},
        )
        request = _Request(path, time.perf_counter())
        metrics.ACTIVE_STREAMS.labels("llm").inc()
        metrics.STREAMS.labels("llm").inc()

        async def observed_send(message: Message) -> None:
            request.saw(message)
            await send(message)

        # FastAPI opens spans of its own from these headers: make them children of this one.
        own = [(key.encode("latin-1"), value.encode("latin-1")) for key, value in trace_headers(span).items()]
        others = [(k, v) for k, v in scope.get("headers", []) if k not in (b"traceparent", b"tracestate")]
        scope = {**scope, "headers": others + own}
        try:
            await self._app(scope, receive, observed_send)
        finally:
            metrics.ACTIVE_STREAMS.labels("llm").dec()
            request.record(span)


class _Request:
    """What one request's response did, and when."""

    def __init__(self, path: str, started: float) -> None:
        self.path = path
        self.started = started
        self.status = 0
        self.streamed = False
        self.first_chunk_at: float | None = None
        self.chunks = 0

    def saw(self, message: Message) -> None:
        if message["type"] == "http.response.start":
            self.status = message["status"]
            content_type = dict(message.get("headers", [])).get(b"content-type", b"")
            self.streamed = content_type.startswith(b"text/event-stream")
        elif message["type"] == "http.response.body" and message.get("body"):
            self.chunks += 1
            if self.first_chunk_at is None:
                self.first_chunk_at = time.perf_counter()

    def record(self, span: trace.Span) -> None:
        elapsed = time.perf_counter() - self.started
        generated = self.path in GENERATION_PATHS and 200 <= self.status < 300
        if generated:
            INFERENCE_SECONDS.observe(elapsed)
            if self.streamed and self.first_chunk_at is not None:
                ttft = self.first_chunk_at - self.started
                TTFT_SECONDS.observe(ttft)
                span.set_attribute("llm_ttft_ms", ttft * 1000)
        if self.status >= 400 or not self.status:
            code = _STATUS_CODES.get(self.status, "UNKNOWN") if self.status else "CANCELLED"
            metrics.ERRORS.labels("llm", code).inc()
            span.set_status(trace.Status(trace.StatusCode.ERROR, f"HTTP {self.status or 'cancelled'}"))
        span.set_attributes({"http.response.status_code": self.status, "llm.stream_chunks": self.chunks})
        span.end()


def create_app(config: LlmServerConfig, model: str) -> ObservedApp:
    """llama.cpp's app for ``model`` (a GGUF file), inside the middleware that adds /metrics and spans."""
    from llama_cpp.server.app import create_app as llama_cpp_app
    from llama_cpp.server.settings import ModelSettings, ServerSettings

    app = llama_cpp_app(
        # Without interrupt_requests=False, a new request kills the streams already in flight.
        server_settings=ServerSettings(host=config.host, port=config.port, interrupt_requests=False),
        model_settings=[
            ModelSettings(
                model=model,
                model_alias=config.model_alias,
                n_ctx=config.context_tokens,
                n_threads=config.threads or os.cpu_count() or 1,
                n_threads_batch=config.batch_threads or os.cpu_count() or 1,
                verbose=False,
            )
        ],
    )
    return ObservedApp(app, config.model_alias)
