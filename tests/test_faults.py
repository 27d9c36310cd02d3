"""Faults and shutdown with real processes: backends killed or hung mid-turn, and SIGTERM drains.

Each test starts its own copy of the backend it breaks (and its own gateway), so the
session-scoped servers the other tests share are never harmed.
"""

from __future__ import annotations

import asyncio
import re
import signal
import time
import urllib.request
from collections.abc import AsyncIterator

import grpc
import pytest
from conftest import gateway_args
from grpc_health.v1 import health_pb2, health_pb2_grpc
from support import ServiceProcess, spoken, start_service, stream_error

from voice_agent.call_status import ServerStatus
from voice_agent.client.asr import recognition_config
from voice_agent.client.converse import Conversation, TurnResult, session_config
from voice_agent.client.tts import synthesize, synthesize_stream, words
from voice_agent.errors import DRAINED_KEY
from voice_agent.v1 import asr_pb2, asr_pb2_grpc, gateway_pb2, gateway_pb2_grpc
from voice_ops.stack import launch, service

QUESTION = "I have a job interview next week and I feel nervous"


def _metric(server: ServiceProcess, series: str) -> float:
    """One series of a process's /metrics, e.g. 'voice_active_streams{service="gateway"}'."""
    with urllib.request.urlopen(f"http://127.0.0.1:{server.metrics_port}/metrics", timeout=5) as reply:
        text = reply.read().decode()
    match = re.search(rf"^{re.escape(series)} (\S+)$", text, re.MULTILINE)
    assert match, f"{series} not exported"
    return float(match.group(1))


async def _settles(server: ServiceProcess, series: str, at_most: float, timeout_s: float = 10.0) -> float:
    """Waits for a gauge to come down to ``at_most``; returns its last value."""
    deadline = time.monotonic() + timeout_s
    while (value := _metric(server, series)) > at_most and time.monotonic() < deadline:  # noqa: ASYNC110 - another process
        await asyncio.sleep(0.2)
    return value


def _restart(server: ServiceProcess, log, *args: str) -> ServiceProcess:
    """The same service on the same port: the gateway finds it again without being told."""
    port = int(server.address.rsplit(":", 1)[1])
    again = launch(service(server.name), log, *args, port=port, metrics_port=server.metrics_port)
    again.wait_until_serving(120)
    return again


def _errors(events: list, kinds: tuple[str, ...] = ("error",)) -> list:
    return [e.error for _, e in events if e.WhichOneof("event") in kinds]


async def _in_flight(conversation: Conversation, text: str) -> asyncio.Task[TurnResult]:
    """Starts a typed turn and returns once the gateway is working on it (the agent's first words)."""
    start = len(conversation.events)
    turn = asyncio.create_task(conversation.type(text, max_wait_s=120))
    deadline = time.monotonic() + 60
    while not any(e.WhichOneof("event") == "agent_text" for _, e in conversation.events[start:]):
        assert time.monotonic() < deadline and not turn.done(), "the turn never started"
        await asyncio.sleep(0.01)
    return turn


@pytest.mark.parametrize("backend", ["asr", "llm", "tts"])
async def test_a_backend_killed_mid_turn(
    tmp_path, asr_server: ServiceProcess, llm_server: ServiceProcess, piper_server: ServiceProcess, backend: str
) -> None:
    """SIGKILL during a turn: the client gets an error event naming the backend, the session
    stays open, the gateway reconnects when it returns, and the next turn works. Afterwards no
    stream, session or asyncio task is left behind."""
    servers = {"asr": asr_server, "llm": llm_server, "tts": piper_server}
    extra = ("--engine", "piper") if backend == "tts" else ()
    servers[backend] = start_service(backend, tmp_path / f"{backend}.log", *extra)
    gateway = start_service(
        "gateway", tmp_path / "gateway.log", *gateway_args(servers["asr"], servers["tts"], servers["llm"])
    )
    try:
        async with grpc.aio.insecure_channel(gateway.address) as channel:
            async with Conversation(channel) as warm:  # the gateway's steady state, before any fault
                await warm.type("Hello.", max_wait_s=120)
            tasks_before = await _settles(gateway, 'voice_asyncio_tasks{service="gateway"}', 0, timeout_s=1)
            async with Conversation(channel) as conversation:
                first = await conversation.type("How do I start my talk?", max_wait_s=120)
                # Stop it first, so that the kill lands while the gateway waits on it (the LLM's reply or
                # the TTS stream), whatever the speed of this machine; then kill it.
                servers[backend].process.send_signal(signal.SIGSTOP)
                turn = asyncio.create_task(conversation.type("And what if I forget my words?", max_wait_s=120))
                await asyncio.sleep(0.5)
                servers[backend].process.kill()
                servers[backend].process.wait()
                failed = await turn
                servers[backend] = _restart(servers[backend], tmp_path / f"{backend}-again.log", *extra)
                await asyncio.sleep(1.5)  # the gateway retries a returning backend at least every second
                if backend == "asr":
                    last = await conversation.speak(spoken(QUESTION).audio, max_wait_s=120)
                    assert last.transcript.strip(), "no transcript after the ASR came back"
                else:
                    last = await conversation.type("Thank you.", max_wait_s=120)
            everything = list(conversation.events)
        assert first.answer() is not None and not first.errors
        errors = _errors(everything)
        assert [e.backend for e in errors if e.backend == backend], [(e.backend, e.message) for e in errors]
        assert all(e.code == "UNAVAILABLE" for e in errors), [(e.backend, e.code, e.message) for e in errors]
        if backend != "asr":  # the turn that lost its backend failed; the ASR's loss fails no turn
            assert failed.answer() is None and any(e.turn_id == 2 for e in errors)
        assert last.answer() is not None and not last.errors, [(e.backend, e.message) for e in last.errors]
        assert await _settles(gateway, "voice_gateway_active_sessions", 0) == 0
        assert await _settles(gateway, 'voice_active_streams{service="gateway"}', 0) == 0
        assert await _settles(gateway, 'voice_asyncio_tasks{service="gateway"}', tasks_before) <= tasks_before
    finally:
        if backend in servers and servers[backend].process.poll() is None:
            servers[backend].stop()
        assert gateway.stop() == 0


@pytest.mark.parametrize("backend", ["llm", "tts"])
async def test_a_hung_backend_fails_the_turn_with_deadline_exceeded(
    tmp_path, asr_server: ServiceProcess, llm_server: ServiceProcess, piper_server: ServiceProcess, backend: str
) -> None:
    """A backend that stops answering (SIGSTOP) fails that turn with DEADLINE_EXCEEDED within the
    gateway's deadline; the session goes on, and the turn after it comes back works."""
    servers = {"asr": asr_server, "llm": llm_server, "tts": piper_server}
    extra = ("--engine", "piper") if backend == "tts" else ()
    servers[backend] = start_service(backend, tmp_path / f"{backend}.log", *extra)
    args = gateway_args(servers["asr"], servers["tts"], servers["llm"])
    gateway = start_service(
        "gateway", tmp_path / "gateway.log", *args, "--llm-timeout-s", "4", "--backend-timeout-s", "6"
    )
    try:
        async with grpc.aio.insecure_channel(gateway.address) as channel, Conversation(channel) as conversation:
            await conversation.type("Hello.", max_wait_s=120)
            servers[backend].process.send_signal(signal.SIGSTOP)
            hung = await conversation.type("How do I start my talk?", max_wait_s=30)
            servers[backend].process.send_signal(signal.SIGCONT)
            await asyncio.sleep(2)  # it catches up with what piled up while it was stopped
            after = await conversation.type("Thank you.", max_wait_s=120)
        assert [(e.backend, e.code, e.turn_id) for e in hung.errors] == [(backend, "DEADLINE_EXCEEDED", 2)]
        assert after.answer() is not None and not after.errors, [(e.backend, e.message) for e in after.errors]
    finally:
        servers[backend].process.send_signal(signal.SIGCONT)
        servers[backend].stop()
        assert gateway.stop() == 0


def _health(address: str) -> int:
    with grpc.insecure_channel(address) as channel:
        return health_pb2_grpc.HealthStub(channel).Check(health_pb2.HealthCheckRequest(), timeout=2).status


async def _refused(channel: grpc.aio.Channel) -> grpc.aio.AioRpcError:
    """The status of a new session, which is expected to be refused."""
    with pytest.raises(grpc.aio.AioRpcError) as refused:
        async with Conversation(channel) as late:
            await late.ended(timeout_s=10)
    return refused.value


@pytest.mark.parametrize("grace_s", [30, 1])
async def test_the_gateway_drains_on_sigterm(
    tmp_path, asr_server: ServiceProcess, llm_server: ServiceProcess, piper_server: ServiceProcess, grace_s: int
) -> None:
    """SIGTERM mid-turn: health NOT_SERVING and new sessions refused at once; the turn in flight
    finishes within the drain time and the session then ends UNAVAILABLE, marked drained; past
    the drain time, it is ended UNAVAILABLE with a message that says so. The process exits 0."""
    args = [*gateway_args(asr_server, piper_server, llm_server), "--shutdown-grace-s", str(grace_s)]
    gateway = start_service("gateway", tmp_path / "gateway.log", *args)
    try:
        async with grpc.aio.insecure_channel(gateway.address) as channel:
            with pytest.raises(grpc.aio.AioRpcError) as ended:
                async with Conversation(channel) as conversation:
                    turn = await _in_flight(conversation, "How do I start my talk?")
                    gateway.process.send_signal(signal.SIGTERM)
                    await asyncio.sleep(0.3)
                    assert _health(gateway.address) == health_pb2.HealthCheckResponse.NOT_SERVING
                    refused = await _refused(channel)
                    result = await turn
                    await conversation.ended(timeout_s=40)
        assert refused.code() == grpc.StatusCode.UNAVAILABLE and "shutting down" in refused.details()
        status = ended.value
        assert status.code() == grpc.StatusCode.UNAVAILABLE, status.details()
        if grace_s == 30:
            assert result.answer() is not None and not result.errors  # the turn in flight finished
            assert (DRAINED_KEY, "1") in tuple(status.trailing_metadata()), status.details()
        else:
            assert "drain time ran out" in status.details()
        assert gateway.process.wait(timeout=30) == 0
    finally:
        gateway.stop()


async def _microphone(audio: bytes, sample_rate: int, seconds: float) -> AsyncIterator[asr_pb2.RecognizeRequest]:
    """A live microphone: the config, the speech, then silence, all at real-time pace."""
    yield asr_pb2.RecognizeRequest(config=recognition_config(sample_rate))
    chunk = sample_rate * 2 // 10
    silence = b"\0" * chunk
    started = time.perf_counter()
    for index in range(int(seconds * 10)):
        await asyncio.sleep(max(0.0, started + index / 10 - time.perf_counter()))
        piece = audio[index * chunk : (index + 1) * chunk]
        yield asr_pb2.RecognizeRequest(audio=piece + silence[len(piece) :])


async def test_the_asr_drains_between_utterances(tmp_path) -> None:
    """SIGTERM mid-utterance: the utterance is still transcribed, then the stream ends UNAVAILABLE,
    marked drained (the gateway reconnects without telling the user); new streams are refused.
    Statuses are read as the gateway reads them (``ServerStatus``): a write in flight as the server
    ends a stream makes grpc.aio report INTERNAL in place of the server's status (grpc/grpc#36066)."""
    asr = start_service("asr", tmp_path / "asr.log", "--shutdown-grace-s", "30")
    sample = spoken(QUESTION)
    events: list[asr_pb2.RecognizeResponse] = []
    try:
        async with grpc.aio.insecure_channel(asr.address) as channel:
            call = asr_pb2_grpc.AsrStub(channel).Recognize(
                _microphone(sample.audio.data, sample.audio.sample_rate, seconds=20)
            )
            status = ServerStatus(call)
            with pytest.raises(grpc.aio.AioRpcError) as ended:
                async for event in call:
                    events.append(event)
                    if event.WhichOneof("event") == "speech_started":
                        asr.process.send_signal(signal.SIGTERM)
                        await asyncio.sleep(0.5)
                        # While the utterance drains (after it, the process exits and a new stream races that).
                        refused = await _asr_refusal(channel)
        finals = [e.final.text for e in events if e.WhichOneof("event") == "final"]
        assert finals and finals[0].strip(), [e.WhichOneof("event") for e in events]
        drained = status.of(ended.value)
        assert drained.code() == grpc.StatusCode.UNAVAILABLE, drained.details()
        assert (DRAINED_KEY, "1") in tuple(drained.trailing_metadata())
        assert refused.code() == grpc.StatusCode.UNAVAILABLE, refused.details()
        assert "shutting down" in refused.details()
        assert asr.process.wait(timeout=30) == 0
    finally:
        asr.stop()


async def _asr_refusal(channel: grpc.aio.Channel) -> grpc.aio.AioRpcError:
    """The server's status for a new ASR stream, which is expected to be refused."""
    return await stream_error(asr_pb2_grpc.AsrStub(channel).Recognize(_microphone(b"", 16_000, 1)))


async def test_sessions_past_the_limits_are_refused_with_a_retry_hint(
    tmp_path, asr_server: ServiceProcess, llm_server: ServiceProcess, piper_server: ServiceProcess
) -> None:
    """Past --max-streams: RESOURCE_EXHAUSTED at once, with retry-after-ms in the trailers. An idle
    session is ended DEADLINE_EXCEEDED; an over-long typed text gets an error event and the session goes on."""
    args = [*gateway_args(asr_server, piper_server, llm_server), "--max-streams", "1", "--idle-timeout-s", "2"]
    args += ["--max-text-chars", "50", "--retry-after-ms", "700"]
    gateway = start_service("gateway", tmp_path / "gateway.log", *args)
    try:
        async with grpc.aio.insecure_channel(gateway.address) as channel:
            async with Conversation(channel) as first:
                too_long = await first.type("word " * 30, max_wait_s=10)
                answered = await first.type("How do I start my talk?", max_wait_s=120)
                started = time.perf_counter()
                refused = await _refused(channel)
                refused_in_s = time.perf_counter() - started
            idle = await _idle_session(channel)
        assert refused.code() == grpc.StatusCode.RESOURCE_EXHAUSTED, refused.details()
        hint = dict(refused.trailing_metadata())["retry-after-ms"]
        assert 700 <= int(hint) <= 1050
        assert refused_in_s < 2.0  # answered before any work: far below a turn
        assert [(e.code, e.backend) for e in too_long.errors] == [("INVALID_ARGUMENT", "gateway")]
        assert answered.answer() is not None and not answered.errors
        assert idle.code() == grpc.StatusCode.DEADLINE_EXCEEDED and "no message" in idle.details()
    finally:
        assert gateway.stop() == 0


async def _idle_session(channel: grpc.aio.Channel) -> grpc.aio.AioRpcError:
    """A client that sends its config and then nothing at all."""
    forever = asyncio.Event()

    async def requests() -> AsyncIterator[gateway_pb2.ConverseRequest]:
        yield gateway_pb2.ConverseRequest(config=session_config(16_000))
        await forever.wait()

    with pytest.raises(grpc.aio.AioRpcError) as ended:
        async for _ in gateway_pb2_grpc.GatewayStub(channel).Converse(requests(), timeout=30):
            pass
    forever.set()
    return ended.value


async def test_the_tts_finishes_its_streams_on_sigterm(tmp_path) -> None:
    """SIGTERM while a reply streams in: the stream still gets every phrase's audio, new streams
    are refused UNAVAILABLE, and the process exits 0."""
    tts = start_service("tts", tmp_path / "tts.log", "--engine", "piper", "--shutdown-grace-s", "30")
    reply = "Take a slow breath before you start. Then say your first sentence. You will be fine."
    try:
        async with grpc.aio.insecure_channel(tts.address) as channel:
            stream = asyncio.create_task(synthesize_stream(channel, words(reply), interval_s=0.1))
            await asyncio.sleep(0.5)  # the text is still arriving
            tts.process.send_signal(signal.SIGTERM)
            await asyncio.sleep(0.3)
            with pytest.raises(grpc.aio.AioRpcError) as refused:
                await synthesize(channel, "Hello.")
            synthesis = await stream
        assert refused.value.code() == grpc.StatusCode.UNAVAILABLE
        assert synthesis.phrases[-1][1] == len(reply), synthesis.phrases  # the last phrase ends the text
        assert tts.process.wait(timeout=30) == 0
    finally:
        tts.stop()
