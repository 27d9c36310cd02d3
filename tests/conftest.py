"""Shared fixtures: real service processes with their real models, and the collectors that observe them.

Every service process the tests start exports its traces to one OTLP receiver in
the test process, so tracing is on for the whole suite, as in production.
"""

from __future__ import annotations

import dataclasses
import json
import os
import socket
import subprocess
import sys
from collections.abc import AsyncIterator, Iterator
from typing import Any

import grpc
import numpy as np
import pytest
from collectors import OtlpReceiver
from support import ServiceProcess, running

from services.asr.transcriber import WhisperTranscriber
from services.tts.models import embedded_piper_model
from voice_agent.audio import resample
from voice_ops.stack import SERVICES, gateway_backend_args
from voice_ops.turn_sets import room_impulse

#: The agent's reply that the echo tests play back into the microphone, and that microphone.
REPLY = "Prepare three short stories about your work, and practise them out loud so they sound natural."
MIC = 16_000
LEAD = MIC // 2  # the client starts playing the reply 0.5 s into the microphone's audio


def echoed(reply: np.ndarray, rate: int, delay_ms: int, gain_db: float, reverb: bool) -> np.ndarray:
    """The microphone: the reply from LEAD + delay, gain_db down, optionally through a room, over -60 dBFS noise."""
    echo = resample(reply, rate, MIC) * np.float32(10 ** (gain_db / 20))
    if reverb:
        echo = np.convolve(echo, room_impulse(MIC)).astype(np.float32)
    start = LEAD + delay_ms * MIC // 1000
    mic = np.zeros(start + len(echo) + MIC, np.float32)
    mic[start : start + len(echo)] = echo
    return mic + np.random.default_rng(0).normal(0, 1e-3, len(mic)).astype(np.float32)


@pytest.fixture(scope="session")
def asr_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ServiceProcess]:
    with running("asr", tmp_path_factory.mktemp("asr") / "asr.log") as server:
        yield server


@pytest.fixture
async def asr_channel(asr_server: ServiceProcess) -> AsyncIterator[grpc.aio.Channel]:
    async with grpc.aio.insecure_channel(asr_server.address) as channel:
        yield channel


@pytest.fixture(autouse=True)
def _unit_tests_start_no_service(request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch) -> None:
    """A test marked ``unit`` (make test-unit) that starts a service process fails, rather than
    making `make test-unit` slow without anyone noticing."""
    if request.node.get_closest_marker("unit") is None:
        return

    def refuse(*args: object, **kwargs: object) -> None:
        raise AssertionError(f"{request.node.nodeid} is marked unit but starts a service process")

    monkeypatch.setattr("voice_ops.stack.launch", refuse)


@pytest.fixture(autouse=True, scope="session")
def _no_model_hub() -> None:
    os.environ["HF_HUB_OFFLINE"] = "1"


@pytest.fixture(autouse=True, scope="session")
def otlp_receiver() -> Iterator[OtlpReceiver]:
    """Receives the spans of every service process started after it (they inherit the environment)."""
    with OtlpReceiver.serving() as receiver:
        os.environ.update(
            OTEL_EXPORTER_OTLP_ENDPOINT=receiver.endpoint,
            OTEL_EXPORTER_OTLP_INSECURE="true",
            OTEL_BSP_SCHEDULE_DELAY="200",  # ms: spans arrive soon after a turn, not 5 s later
        )
        yield receiver


@pytest.fixture(scope="session", params=["kokoro", "piper"])
def tts_server(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> Iterator[ServiceProcess]:
    """A real TTS server per engine; tests using it run once per engine."""
    engine = request.param
    with running("tts", tmp_path_factory.mktemp(f"tts-{engine}") / "tts.log", "--engine", engine) as server:
        server.engine = engine  # type: ignore[attr-defined]
        yield server


@pytest.fixture
async def tts_channel(tts_server: ServiceProcess) -> AsyncIterator[grpc.aio.Channel]:
    async with grpc.aio.insecure_channel(tts_server.address) as channel:
        yield channel


@pytest.fixture(scope="session")
def llm_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ServiceProcess]:
    """The embedded llama.cpp server with the real Gemma 3 270M model."""
    with running("llm", tmp_path_factory.mktemp("llm") / "llm.log", clean_exit=False) as server:
        yield server


@pytest.fixture(scope="session")
def piper_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ServiceProcess]:
    """The fast TTS engine, for the gateway's tests."""
    with running("tts", tmp_path_factory.mktemp("piper") / "tts.log", "--engine", "piper") as server:
        yield server


def gateway_args(asr: ServiceProcess, tts: ServiceProcess, llm: ServiceProcess) -> list[str]:
    return gateway_backend_args(asr.address, tts.address, llm.address)


@pytest.fixture(scope="session")
def gateway_server(
    tmp_path_factory: pytest.TempPathFactory,
    asr_server: ServiceProcess,
    piper_server: ServiceProcess,
    llm_server: ServiceProcess,
) -> Iterator[ServiceProcess]:
    log = tmp_path_factory.mktemp("gateway") / "gateway.log"
    with running("gateway", log, *gateway_args(asr_server, piper_server, llm_server)) as server:
        yield server


@pytest.fixture
async def gateway_channel(gateway_server: ServiceProcess) -> AsyncIterator[grpc.aio.Channel]:
    async with grpc.aio.insecure_channel(gateway_server.address) as channel:
        yield channel


@pytest.fixture(scope="session")
def reply() -> tuple[np.ndarray, int]:
    """REPLY as Piper (the agent's voice) makes it: float32 at 22.05 kHz; the same every run (noise scales 0)."""
    from piper import PiperVoice, SynthesisConfig

    model = embedded_piper_model()
    voice = PiperVoice.load(model, f"{model}.json")
    chunks = voice.synthesize(REPLY, SynthesisConfig(noise_scale=0.0, noise_w_scale=0.0))
    return np.concatenate([chunk.audio_float_array for chunk in chunks]), voice.config.sample_rate


@pytest.fixture(scope="session")
def whisper() -> WhisperTranscriber:
    """The embedded Whisper, in process (beam 5, as the ASR service)."""
    return WhisperTranscriber(beam_size=5)


# ---- the README, followed literally: `voice-agent up` on the default ports

#: The CLI as this checkout has it (`python -m`, whichever checkout the venv was installed from).
CLI = [sys.executable, "-m", "voice_ops.cli"]


def voice_agent(*args: str, env: dict[str, str], timeout: float = 300) -> dict[str, Any]:
    """``voice-agent ARGS --json``: exits 0 and prints exactly one JSON object, which is returned."""
    done = subprocess.run([*CLI, *args, "--json"], env=env, capture_output=True, text=True, timeout=timeout)
    assert done.returncode == 0, done.stderr
    (line,) = done.stdout.strip().splitlines()
    return json.loads(line)


def default_ports() -> dict[str, int]:
    """Every port the embedded stack listens on by default (each service's config: gRPC, metrics, HTTP)."""
    ports = {}
    for spec in SERVICES:
        defaults = spec.config()
        for field in dataclasses.fields(defaults):
            if field.name.endswith("port") and (port := getattr(defaults, field.name)):
                ports[f"{spec.name}.{field.name}"] = port
    return ports


def _listening(port: int) -> bool:
    with socket.socket() as sock:
        return sock.connect_ex(("127.0.0.1", port)) == 0


@pytest.fixture(scope="session")
def readme_stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, Any]]:
    """`voice-agent up` exactly as the README says, on the default ports: yields what `up --json` printed, with
    the environment the commands ran in as "env"; `voice-agent down` stops it all at the end."""
    env = {k: v for k, v in os.environ.items() if not (k.startswith("VOICE_") and k.endswith(("_PORT", "_ADDRESS")))}
    env["VOICE_STATE_DIR"] = str(tmp_path_factory.mktemp("readme-state"))
    taken = {name: port for name, port in default_ports().items() if _listening(port)}
    if taken:
        pytest.fail(f"the README's default ports are taken ({taken}): a stack from `make up`? `make down` first")
    started = voice_agent("up", env=env)
    try:
        yield {**started, "env": env}
    finally:
        assert voice_agent("down", env=env)["stopped"] == [spec.name for spec in SERVICES]
