"""Observability with real processes: one trace per turn across every hop, and the metrics that
the dashboards and alert rules use, scraped by a real Prometheus."""

from __future__ import annotations

import os
import secrets
from collections.abc import Iterator

import grpc
import pytest
from collectors import OtlpReceiver, Prometheus, ReceivedSpan, dashboard_and_rule_series
from support import ServiceProcess, spoken

from voice_agent.client.converse import Conversation

TIMINGS = ("vad_wait_ms", "asr_ms", "llm_ttft_ms", "tts_ttfa_ms", "e2e_ms", "overhead_ms")


def _traceparent() -> tuple[str, str]:
    trace_id = secrets.token_hex(16)
    return trace_id, f"00-{trace_id}-{secrets.token_hex(8)}-01"


async def _spoken_turn(gateway: ServiceProcess, text: str, metadata: tuple[tuple[str, str], ...] = ()) -> None:
    async with grpc.aio.insecure_channel(gateway.address) as channel, Conversation(channel, metadata=metadata) as c:
        turn = await c.speak(spoken(text).audio)
    assert not turn.errors and turn.answer() is not None, turn.errors


def _turn_trace(spans: list[ReceivedSpan], session_trace_id: str) -> list[ReceivedSpan]:
    """The spans of the first turn of the session whose Converse stream joined ``session_trace_id``."""
    roots = [s for s in spans if s.name == "voice.turn" and session_trace_id in s.linked_trace_ids]
    if not roots:
        return []
    return [s for s in spans if s.trace_id == roots[0].trace_id]


def _complete(trace: list[ReceivedSpan]) -> bool:
    names = {s.name for s in trace}
    return {"voice.turn", "asr.vad_wait", "asr.final", "llm.chat", "llm.generate", "tts.synthesize"} <= names and (
        "tts.stream" in names
    )


async def test_one_spoken_turn_is_one_trace_across_processes(
    gateway_server: ServiceProcess, otlp_receiver: OtlpReceiver
) -> None:
    session_trace_id, traceparent = _traceparent()
    await _spoken_turn(gateway_server, "How do I prepare for a hard conversation?", (("traceparent", traceparent),))
    trace = _turn_trace(
        otlp_receiver.wait_for(lambda spans: _complete(_turn_trace(spans, session_trace_id))), session_trace_id
    )

    by_name = {s.name: s for s in trace}
    by_id = {s.span_id: s for s in trace}
    root = by_name["voice.turn"]
    assert root.parent_id == "" and root.service == "voice-gateway"
    assert {s.service for s in trace} >= {"voice-gateway", "voice-asr", "voice-tts", "voice-llm"}
    for span in trace:  # one tree: every parent is in the trace
        assert span is root or span.parent_id in by_id, f"{span.name} ({span.service}) has no parent in the trace"

    def parent(name: str) -> ReceivedSpan:
        return by_id[by_name[name].parent_id]

    # The ASR's spans of the utterance join the turn in-band; the LLM's through HTTP headers.
    assert parent("asr.vad_wait") is root and parent("asr.final") is root
    assert by_name["asr.final"].service == "voice-asr"
    assert parent("llm.chat") is root and parent("llm.generate") is by_name["llm.chat"]
    assert by_name["llm.generate"].service == "voice-llm"
    # TTS through gRPC metadata: turn -> tts.synthesize -> gRPC client -> gRPC server (TTS process) -> tts.stream.
    server_span = parent("tts.stream")
    assert server_span.service == "voice-tts" and server_span.name.endswith("/SynthesizeStream")
    client_span = by_id[server_span.parent_id]
    assert client_span.service == "voice-gateway" and by_id[client_span.parent_id] is by_name["tts.synthesize"]
    assert parent("tts.synthesize") is root
    assert any(s.name == "tts.phrase" and by_id[s.parent_id] is by_name["tts.stream"] for s in trace)

    # The timing names of docs/architecture.md, as attributes.
    for name in TIMINGS:
        assert name in root.attributes, name
    assert root.attributes["turn.outcome"] == "completed"
    assert root.attributes["e2e_ms"] > root.attributes["llm_ttft_ms"] > 0
    assert by_name["asr.vad_wait"].attributes["vad_wait_ms"] == root.attributes["vad_wait_ms"]
    assert by_name["asr.final"].attributes["asr_ms"] > 0
    assert by_name["llm.chat"].attributes["llm_ttft_ms"] == root.attributes["llm_ttft_ms"]
    assert by_name["llm.chat"].attributes["gen_ai.usage.output_tokens"] > 0
    assert by_name["tts.synthesize"].attributes["tts_ttfa_ms"] == root.attributes["tts_ttfa_ms"]
    assert by_name["tts.stream"].attributes["tts.engine"] == "piper"

    # The Converse stream's own span carries the client's trace; the turn links to it.
    # (Exported when the stream ends, a moment after the turn's spans.)
    otlp_receiver.wait_for(
        lambda spans: any(s.trace_id == session_trace_id and s.name.endswith("/Converse") for s in spans)
    )


# ---- metrics, through a real Prometheus


# Exported by processes this machine cannot run: NVIDIA's DCGM exporter needs a GPU, and vLLM's
# own metrics are checked against a real vLLM server by `make test-vllm` (tests/vllm).
NOT_HERE = ("DCGM_", "vllm:")


@pytest.fixture(scope="module")
def prometheus(
    tmp_path_factory: pytest.TempPathFactory,
    gateway_server: ServiceProcess,
    asr_server: ServiceProcess,
    piper_server: ServiceProcess,
    llm_server: ServiceProcess,
) -> Iterator[Prometheus]:
    targets = {
        "voice-gateway": f"127.0.0.1:{gateway_server.metrics_port}",
        "voice-asr": f"127.0.0.1:{asr_server.metrics_port}",
        "voice-tts": f"127.0.0.1:{piper_server.metrics_port}",
        "voice-llm": llm_server.address,
    }
    server = Prometheus(targets, tmp_path_factory.mktemp("prometheus"))
    try:
        yield server
    finally:
        server.stop()


async def test_every_dashboard_and_alert_series_has_data_in_prometheus(
    prometheus: Prometheus, gateway_server: ServiceProcess, otlp_receiver: OtlpReceiver
) -> None:
    await _spoken_turn(gateway_server, "What is one thing I can do today to feel calmer?")
    series = sorted(name for name in dashboard_and_rule_series() if not name.startswith(NOT_HERE))
    assert "voice_gateway_e2e_seconds_bucket" in series and "up" in series

    def all_have_data() -> bool:
        return all(prometheus.has_data(name) for name in series)

    # The first scrape after start takes a few seconds: wait for data, not for a fixed time.
    prometheus.wait_until(all_have_data, 60, "every series returns data")
    missing = [name for name in series if not prometheus.has_data(name)]
    assert not missing
    up = prometheus.api("query", query="up")["result"]
    assert {r["metric"]["job"] for r in up if r["value"][1] == "1"} == {
        "voice-gateway",
        "voice-asr",
        "voice-tts",
        "voice-llm",
    }

    # The end-to-end histogram's exemplars carry the trace ids of real turns.
    def exemplar_trace_ids() -> set[str]:
        data = prometheus.api("query_exemplars", query="voice_gateway_e2e_seconds_bucket", start="0", end="9999999999")
        return {e["labels"].get("trace_id", "") for d in data for e in d["exemplars"]}

    prometheus.wait_until(lambda: bool(exemplar_trace_ids()), 30, "an exemplar is scraped")
    turn_traces = {s.trace_id for s in otlp_receiver.spans if s.name == "voice.turn"}
    assert exemplar_trace_ids() & turn_traces


def test_tracing_is_on_for_the_test_processes() -> None:
    assert os.environ["OTEL_EXPORTER_OTLP_ENDPOINT"].startswith("http://127.0.0.1:")
