"""Shared fixtures: a real ASR server process with its real models."""

from __future__ import annotations

import os
from collections.abc import AsyncIterator, Iterator

import grpc
import pytest
from support import ServiceProcess, start_service

from voice_agent.stack import gateway_backend_args


@pytest.fixture(scope="session")
def asr_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ServiceProcess]:
    server = start_service("asr", tmp_path_factory.mktemp("asr") / "asr.log")
    yield server
    assert server.stop() == 0, server.log.read_text()


@pytest.fixture
async def asr_channel(asr_server: ServiceProcess) -> AsyncIterator[grpc.aio.Channel]:
    async with grpc.aio.insecure_channel(asr_server.address) as channel:
        yield channel


@pytest.fixture(autouse=True, scope="session")
def _no_model_hub() -> None:
    os.environ["HF_HUB_OFFLINE"] = "1"


@pytest.fixture(scope="session", params=["kokoro", "piper"])
def tts_server(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> Iterator[ServiceProcess]:
    """A real TTS server per engine; tests using it run once per engine."""
    engine = request.param
    server = start_service("tts", tmp_path_factory.mktemp(f"tts-{engine}") / "tts.log", "--engine", engine)
    server.engine = engine  # type: ignore[attr-defined]
    yield server
    assert server.stop() == 0, server.log.read_text()


@pytest.fixture
async def tts_channel(tts_server: ServiceProcess) -> AsyncIterator[grpc.aio.Channel]:
    async with grpc.aio.insecure_channel(tts_server.address) as channel:
        yield channel


@pytest.fixture(scope="session")
def llm_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ServiceProcess]:
    """The embedded llama.cpp server with the real Gemma 3 270M model."""
    server = start_service("llm", tmp_path_factory.mktemp("llm") / "llm.log")
    yield server
    server.stop()


@pytest.fixture(scope="session")
def piper_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ServiceProcess]:
    """The fast TTS engine, for the gateway's tests."""
    server = start_service("tts", tmp_path_factory.mktemp("piper") / "tts.log", "--engine", "piper")
    yield server
    server.stop()


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
    server = start_service("gateway", log, *gateway_args(asr_server, piper_server, llm_server))
    yield server
    assert server.stop() == 0, server.log.read_text()


@pytest.fixture
async def gateway_channel(gateway_server: ServiceProcess) -> AsyncIterator[grpc.aio.Channel]:
    async with grpc.aio.insecure_channel(gateway_server.address) as channel:
        yield channel
