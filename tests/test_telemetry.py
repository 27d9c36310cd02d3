"""The tracing set-up's switches and helpers, and the gateway's clock of received audio."""

from __future__ import annotations

import time

import pytest
from opentelemetry import trace
from opentelemetry.sdk.trace import TracerProvider

from gateway.listening import AudioClock
from voice_agent import telemetry

pytestmark = pytest.mark.unit  # no model, no service: make test-unit


@pytest.mark.parametrize(
    ("env", "enabled"),
    [
        ({}, False),
        ({"OTEL_EXPORTER_OTLP_ENDPOINT": "http://collector:4317"}, True),
        ({"OTEL_EXPORTER_OTLP_TRACES_ENDPOINT": "http://collector:4317"}, True),
        ({"OTEL_EXPORTER_OTLP_ENDPOINT": "http://collector:4317", "OTEL_SDK_DISABLED": "true"}, False),
        ({"OTEL_EXPORTER_OTLP_ENDPOINT": "http://collector:4317", "OTEL_TRACES_EXPORTER": "none"}, False),
    ],
)
def test_tracing_is_on_only_with_an_endpoint(
    monkeypatch: pytest.MonkeyPatch, env: dict[str, str], enabled: bool
) -> None:
    for name in ("OTEL_EXPORTER_OTLP_ENDPOINT", "OTEL_EXPORTER_OTLP_TRACES_ENDPOINT", "OTEL_SDK_DISABLED"):
        monkeypatch.delenv(name, raising=False)
    for name, value in env.items():
        monkeypatch.setenv(name, value)
    assert telemetry.tracing_enabled() is enabled


def test_trace_headers_round_trip_a_span_context() -> None:
    span = TracerProvider().get_tracer("test").start_span("turn")
    headers = telemetry.trace_headers(span)
    assert headers["traceparent"].split("-")[1] == telemetry.trace_id_of(span)
    remote = trace.get_current_span(telemetry.context_from(headers)).get_span_context()
    assert remote.trace_id == span.get_span_context().trace_id and remote.span_id == span.get_span_context().span_id
    span.end()


def test_a_non_recording_span_has_no_headers_and_no_trace_id() -> None:
    assert telemetry.trace_headers(trace.INVALID_SPAN) == {}
    assert telemetry.trace_id_of(trace.INVALID_SPAN) is None


def test_wall_ns_converts_perf_counter_readings() -> None:
    assert abs(telemetry.wall_ns(time.perf_counter() - 0.5) - (time.time_ns() - 500_000_000)) < 20_000_000


def test_the_audio_clock_dates_samples_by_when_their_chunk_arrived() -> None:
    clock = AudioClock(16_000)
    chunk = b"\0" * 3200  # 100 ms
    clock.sent(chunk, received_at=10.0)  # audio 0-100 ms
    clock.sent(chunk, received_at=10.1)  # audio 100-200 ms
    assert clock.at(100) == pytest.approx(10.0)
    assert clock.at(150) == pytest.approx(10.05)  # captured 50 ms before its chunk's last sample
    assert clock.at(250) is None  # not received yet
    clock.restart()  # a new ASR stream counts from zero again
    clock.sent(chunk, received_at=20.0)
    assert clock.at(50) == pytest.approx(19.95)
