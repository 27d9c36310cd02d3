"""Every client hears why its session was refused or ended, even one that writes audio without pause.

grpc/grpc#36066: a status that ends a stream while the client is still writing may
reach the client as a made-up INTERNAL. The gateway therefore sends the status as an
error event first. These clients are written from the protos alone: grpc.aio and the
generated stubs, none of voice_agent's client code.
"""

from __future__ import annotations

import asyncio
import re
import signal
import urllib.request
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from pathlib import Path

import grpc
import pytest
from support import ServiceProcess, free_port, start_service

from voice_agent.v1 import audio_pb2, gateway_pb2, gateway_pb2_grpc

LIMIT, REFUSED = 2, 4
API_KEY = "va-refusal-test-key-3c2b1a"
CHUNK = b"\0" * (16_000 * 20 // 1000 * 2)  # 20 ms of PCM16 silence at 16 kHz


@dataclass
class Session:
    """What one plain client saw: the events, and the status the stream ended with."""

    events: list[gateway_pb2.ConverseResponse] = field(default_factory=list)
    status: grpc.StatusCode | None = None

    @property
    def gateway_errors(self) -> list[gateway_pb2.ErrorEvent]:
        return [e.error for e in self.events if e.WhichOneof("event") == "error" and e.error.backend == "gateway"]


async def _microphone(paced: bool) -> AsyncIterator[gateway_pb2.ConverseRequest]:
    """The config, then 20 ms chunks forever: back to back (``paced`` False), or in real time."""
    audio = audio_pb2.AudioFormat(encoding=audio_pb2.AUDIO_ENCODING_PCM16LE, sample_rate_hz=16_000)
    yield gateway_pb2.ConverseRequest(config=gateway_pb2.SessionConfig(input_audio=audio))
    while True:
        yield gateway_pb2.ConverseRequest(audio=CHUNK)
        await asyncio.sleep(0.02 if paced else 0)


async def _converse(channel: grpc.aio.Channel, session: Session, *, paced: bool, key: str = API_KEY) -> None:
    """Reads the stream to its end; the session records everything."""
    call = gateway_pb2_grpc.GatewayStub(channel).Converse(
        _microphone(paced), metadata=(("authorization", f"Bearer {key}"),)
    )
    try:
        async for event in call:
            session.events.append(event)
    except grpc.aio.AioRpcError as error:
        session.status = error.code()
    else:
        session.status = grpc.StatusCode.OK


def _active_sessions(gateway: ServiceProcess) -> float:
    with urllib.request.urlopen(f"http://127.0.0.1:{gateway.metrics_port}/metrics", timeout=5) as reply:
        text = reply.read().decode()
    match = re.search(r'^voice_active_streams\{service="gateway"\} (\S+)$', text, re.MULTILINE)
    assert match, "voice_active_streams not exported"
    return float(match.group(1))


async def _until_admitted(gateway: ServiceProcess, count: int) -> None:
    while _active_sessions(gateway) < count:  # noqa: ASYNC110 - another process's gauge
        await asyncio.sleep(0.1)


@pytest.fixture
def gateway(tmp_path: Path) -> ServiceProcess:
    """A real gateway with a small session limit and an API key. Its backends are addresses where
    nothing listens: refusals come before any backend work, and an admitted session stays open
    (its ASR stream retries)."""
    keys = tmp_path / "keys"
    keys.write_text(API_KEY + "\n")
    dead = f"127.0.0.1:{free_port()}"
    args = ["--asr-address", dead, "--tts-address", dead, "--llm-base-url", f"http://{dead}/v1"]
    args += ["--max-streams", str(LIMIT), "--api-keys-file", str(keys), "--shutdown-grace-s", "5"]
    args += ["--retry-after-ms", "700"]
    gateway = start_service("gateway", tmp_path / "gateway.log", *args)
    yield gateway
    gateway.stop()


async def test_refused_and_drained_sessions_hear_why_in_an_error_event(gateway: ServiceProcess) -> None:
    """Past the limit, each session writing without pause gets RESOURCE_EXHAUSTED with a retry hint as
    an error event before its stream ends (whatever status grpc then reports); a bad key gets
    UNAUTHENTICATED; on SIGTERM, the admitted sessions each get UNAVAILABLE (connect again at once)."""
    async with grpc.aio.insecure_channel(gateway.address) as channel:
        admitted = [Session() for _ in range(LIMIT)]
        holding = [asyncio.create_task(_converse(channel, s, paced=True)) for s in admitted]
        await asyncio.wait_for(_until_admitted(gateway, LIMIT), 30)

        refused = [Session() for _ in range(REFUSED)]
        unknown = Session()
        await asyncio.wait_for(
            asyncio.gather(
                *(_converse(channel, s, paced=False) for s in refused),
                _converse(channel, unknown, paced=False, key="not-a-key"),
            ),
            30,
        )
        assert not any(task.done() for task in holding)

        gateway.process.send_signal(signal.SIGTERM)
        await asyncio.wait_for(asyncio.gather(*holding), 30)
    assert gateway.process.wait(timeout=30) == 0

    for session in refused:
        assert session.status is not None and session.status != grpc.StatusCode.OK
        [error] = session.gateway_errors
        assert error.code == "RESOURCE_EXHAUSTED", error
        assert f"limit of {LIMIT} streams" in error.message
        assert error.HasField("retry_after_ms") and 700 <= error.retry_after_ms <= 1050, error
        assert session.events[-1].error == error  # nothing after it
    [error] = unknown.gateway_errors
    assert error.code == "UNAUTHENTICATED" and not error.HasField("retry_after_ms"), error
    for session in admitted:
        assert session.status is not None and session.status != grpc.StatusCode.OK
        [error] = session.gateway_errors
        assert error.code == "UNAVAILABLE" and "shutting down" in error.message, error
        assert error.HasField("retry_after_ms") and error.retry_after_ms == 0, error
        assert session.events[-1].error == error
