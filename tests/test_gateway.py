"""The conversation turn through the gateway: real ASR, LLM (llama.cpp + Gemma 3 270M)
and TTS (Piper) server processes."""

from __future__ import annotations

import asyncio
import contextlib
import re
import urllib.request
from collections.abc import AsyncIterator, Awaitable, Callable

import grpc
import pytest
from conftest import gateway_args
from support import ServiceProcess, spoken, start_service, stream_error

from gateway.config import GatewayConfig
from gateway.session_settings import SessionChoices, session_settings, settings_for
from voice_agent.audio import Pcm16Audio
from voice_agent.client.asr import recognize
from voice_agent.client.converse import Conversation, session_config, talk
from voice_agent.errors import InvalidArgument
from voice_agent.v1 import gateway_pb2, gateway_pb2_grpc
from voice_ops.samples import word_error_rate
from voice_ops.stack import launch, service
from voice_ops.turn_sets import EchoConversation, utterance

QUESTION = "I have a job interview next week and I feel nervous"
INTERRUPTION = "Wait I have a different question"


async def test_a_spoken_question_through_the_whole_pipeline(
    gateway_channel: grpc.aio.Channel, asr_server: ServiceProcess
) -> None:
    result = await talk(gateway_channel, spoken(QUESTION).audio)
    assert not result.errors
    assert word_error_rate(QUESTION, result.transcript) <= 0.2, result.transcript
    assert result.reply.strip()
    metrics = result.metrics()
    assert set(metrics) >= {"vad_wait_ms", "asr_ms", "llm_ttft_ms", "tts_ttfa_ms", "e2e_ms", "overhead_ms"}
    assert all(metrics[k] > 0 for k in ("vad_wait_ms", "asr_ms", "llm_ttft_ms", "tts_ttfa_ms", "e2e_ms"))
    # The reply, played back through the ASR, is English speech.
    reply = result.reply_audio().resampled(16_000)
    padded = Pcm16Audio(reply.data + b"\0" * 32_000, 16_000)
    async with grpc.aio.insecure_channel(asr_server.address) as channel:
        heard = (await recognize(channel, padded, realtime=False)).text
    assert re.search(r"[A-Za-z]{2,}", heard), heard
    audio = [e.agent_audio for _, e in result.of("agent_audio")]
    assert [a.sequence_number for a in audio] == list(range(len(audio)))


async def test_a_question_at_44_1_khz_is_heard_at_its_own_rate(gateway_channel: grpc.aio.Channel) -> None:
    """As `voice-agent talk --wav` sends a file recorded at 44.1 kHz: the gateway takes it, no client resamples."""
    result = await talk(gateway_channel, spoken(QUESTION, sample_rate=44_100).audio)
    assert not result.errors, result.errors
    assert word_error_rate(QUESTION, result.transcript) <= 0.2, result.transcript
    assert result.reply.strip()


async def test_barge_in_stops_the_agent_and_truncates_what_it_said(gateway_channel: grpc.aio.Channel) -> None:
    result = await talk(gateway_channel, spoken(QUESTION).audio, barge_in_audio=spoken(INTERRUPTION, lead_ms=0).audio)
    interruptions = result.of("interruption")
    assert len(interruptions) == 1, [e.WhichOneof("event") for _, e in result.events]
    interrupted_at, event = interruptions[0]
    turn_id = event.interruption.turn_id
    # No audio of the interrupted turn after the interruption.
    assert not [t for t, e in result.of("agent_audio") if e.agent_audio.turn_id == turn_id and t > interrupted_at]
    # What the user heard is where the agent's side of the history stops: a prefix of the reply.
    assert result.reply_of(turn_id).startswith(event.interruption.heard_text)
    metrics = [e.turn_metrics for _, e in result.of("turn_metrics")]
    assert metrics[0].interrupted and not metrics[-1].interrupted
    assert word_error_rate(INTERRUPTION, result.of("final_transcript")[-1][1].final_transcript.text) <= 0.3


async def _typed_turns(
    channel: grpc.aio.Channel, texts: list[str], between: Callable[[int], Awaitable[None]] | None = None
) -> list[gateway_pb2.ConverseResponse]:
    """Typed turns, one after another in one session, with ``between(i)`` run after turn i
    (to change the world between turns); returns every event."""
    async with Conversation(channel) as conversation:
        for index, text in enumerate(texts):
            await conversation.type(text, max_wait_s=120)
            if between is not None:
                await between(index)
    return [event for _, event in conversation.events]


def _kinds(events: list) -> list[str]:
    return [e.WhichOneof("event") for e in events]


async def test_typed_text_is_a_turn(gateway_channel: grpc.aio.Channel) -> None:
    events = await _typed_turns(gateway_channel, ["How do I start my talk?", "And how do I end it?"])
    metrics = [e.turn_metrics for e in events if e.WhichOneof("event") == "turn_metrics"]
    assert [m.turn_id for m in metrics] == [1, 2]
    assert all(m.llm_tokens > 0 for m in metrics)
    started = events[0].session_started  # every stream's first event: the conversation's id
    assert events[0].WhichOneof("event") == "session_started"
    assert re.fullmatch(r"conv_[0-9a-f]{24}", started.conversation_id)
    assert not started.resumed and started.resume_window_s == 120
    assert "agent_audio" in _kinds(events) and "error" not in _kinds(events)


async def test_a_realtime_voice_name_is_a_voice(gateway_channel: grpc.aio.Channel) -> None:
    """SessionConfig.voice takes the Realtime API's names too: the TTS maps each onto a voice it has."""
    async with Conversation(gateway_channel, voice="ash") as conversation:
        await conversation.type("How do I start my talk?", max_wait_s=120)
    kinds = _kinds([event for _, event in conversation.events])
    assert "agent_audio" in kinds and "error" not in kinds


BAD_SESSIONS = {
    "no config first": [gateway_pb2.ConverseRequest(text="hello")],
    "input rate over 48 kHz": [gateway_pb2.ConverseRequest(config=session_config(48_001))],
    "input rate under 8 kHz": [gateway_pb2.ConverseRequest(config=session_config(7_999))],
    "unknown voice": [gateway_pb2.ConverseRequest(config=session_config(16_000, voice="nobody"))],
    "bad output rate": [gateway_pb2.ConverseRequest(config=session_config(16_000, output_sample_rate_hz=11_025))],
    "odd audio bytes": [
        gateway_pb2.ConverseRequest(config=session_config(16_000)),
        gateway_pb2.ConverseRequest(audio=b"\0"),
    ],
    "second config": [gateway_pb2.ConverseRequest(config=session_config(16_000))] * 2,
}


@pytest.mark.parametrize("case", BAD_SESSIONS, ids=list(BAD_SESSIONS))
async def test_malformed_sessions_get_invalid_argument(gateway_channel: grpc.aio.Channel, case: str) -> None:
    async def requests() -> AsyncIterator[gateway_pb2.ConverseRequest]:
        for request in BAD_SESSIONS[case]:
            yield request

    error = await stream_error(gateway_pb2_grpc.GatewayStub(gateway_channel).Converse(requests()))
    assert error.code() == grpc.StatusCode.INVALID_ARGUMENT, error.details()


@pytest.mark.parametrize("rate", [8_000, 11_025, 22_050, 44_100, 48_000])
def test_any_integer_input_rate_from_8_to_48_khz_is_taken(rate: int) -> None:
    """No servers: the session's settings alone (gateway/session_settings.py); the ASR resamples whatever rate it is."""
    settings = session_settings(gateway_pb2.ConverseRequest(config=session_config(rate)), GatewayConfig())
    assert settings.input_sample_rate == settings.recognition.audio.sample_rate_hz == rate


@pytest.mark.parametrize("rate", [0, 7_999, 48_001])
def test_input_rates_outside_8_to_48_khz_are_refused_naming_the_range(rate: int) -> None:
    request = gateway_pb2.ConverseRequest(config=session_config(rate))
    with pytest.raises(InvalidArgument, match=f"{rate} Hz: use any integer rate from 8000 to 48000 Hz"):
        session_settings(request, GatewayConfig())
    with pytest.raises(InvalidArgument, match=f"{rate} Hz: use any integer rate from 8000 to 48000 Hz"):
        settings_for(SessionChoices(input_sample_rate=rate), GatewayConfig())  # the Realtime front's way in


@pytest.mark.parametrize("backend", ["llm", "tts"])
async def test_a_backend_that_dies_and_returns(
    tmp_path, asr_server: ServiceProcess, llm_server: ServiceProcess, piper_server: ServiceProcess, backend: str
) -> None:
    """A backend killed between turns: an UNAVAILABLE error event naming it, the session
    stays open, and the turn after its restart works."""
    servers = {"asr": asr_server, "llm": llm_server, "tts": piper_server}
    extra = ("--engine", "piper") if backend == "tts" else ()
    servers[backend] = start_service(backend, tmp_path / f"{backend}.log", *extra)
    args = gateway_args(servers["asr"], servers["tts"], servers["llm"])
    gateway = start_service("gateway", tmp_path / "gateway.log", *args)
    port, metrics_port = int(servers[backend].address.rsplit(":", 1)[1]), servers[backend].metrics_port

    async def between(turn: int) -> None:
        if turn == 0:
            servers[backend].stop()
        elif turn == 1:
            servers[backend] = launch(
                service(backend), tmp_path / f"{backend}-again.log", *extra, port=port, metrics_port=metrics_port
            )
            await asyncio.to_thread(servers[backend].wait_until_serving, 120)
            await asyncio.sleep(1.5)  # the gateway retries a returning backend at least every second

    try:
        async with grpc.aio.insecure_channel(gateway.address) as channel:
            events = await _typed_turns(channel, ["How do I start my talk?", "Is that normal?", "What next?"], between)
    finally:
        servers[backend].stop()
        assert gateway.stop() == 0
    outcomes = [e.WhichOneof("event") for e in events if e.WhichOneof("event") in ("turn_metrics", "error")]
    assert outcomes == ["turn_metrics", "error", "turn_metrics"], _kinds(events)
    error = next(e.error for e in events if e.WhichOneof("event") == "error")
    assert (error.code, error.backend, error.turn_id) == ("UNAVAILABLE", backend, 2)


def _streams_served(server: ServiceProcess) -> float:
    with urllib.request.urlopen(f"http://127.0.0.1:{server.metrics_port}/metrics", timeout=5) as reply:
        text = reply.read().decode()
    match = re.search(r'^voice_streams_total\{service="tts"\} (\S+)$', text, re.MULTILINE)
    return float(match.group(1)) if match else 0.0


async def test_streams_are_spread_over_every_address_of_a_backend(
    tmp_path, asr_server: ServiceProcess, llm_server: ServiceProcess, piper_server: ServiceProcess
) -> None:
    """A backend address naming several pods (a headless Service in the cluster; two addresses
    here) gets the gateway's streams round-robin, not all on the first one."""
    second = start_service("tts", tmp_path / "tts-2.log", "--engine", "piper")
    pair = f"ipv4:{piper_server.address},{second.address}"
    args = gateway_args(asr_server, piper_server, llm_server)
    args[args.index("--tts-address") + 1] = pair
    gateway = start_service("gateway", tmp_path / "gateway.log", *args)
    before = _streams_served(piper_server), _streams_served(second)
    try:
        async with grpc.aio.insecure_channel(gateway.address) as channel:
            events = await _typed_turns(channel, ["How do I start?", "And then?", "What next?", "Thanks."])
    finally:
        assert gateway.stop() == 0
    served = _streams_served(piper_server) - before[0], _streams_served(second) - before[1]
    second.stop()
    assert "error" not in _kinds(events)
    assert sum(served) == 4 and min(served) >= 1, served  # (a pod still connecting gets none until ready)


# ---- turn-taking over the agent (issue 17): espeak voices that differ from the agent's (Piper)


def _decisions(result) -> list[str]:
    return [e.interruption_decision.kind for _, e in result.of("interruption_decision")]


def _decided(result) -> list[tuple[str, str]]:
    return [(e.interruption_decision.kind, e.interruption_decision.text) for _, e in result.of("interruption_decision")]


async def test_a_backchannel_over_the_reply_does_not_interrupt_it(gateway_channel: grpc.aio.Channel) -> None:
    over = Pcm16Audio(utterance("yeah", 1).data + b"\0" * 16_000, 16_000)
    result = await talk(gateway_channel, spoken(QUESTION).audio, barge_in_audio=over)
    assert not result.of("interruption"), _decisions(result)
    metrics = [e.turn_metrics for _, e in result.of("turn_metrics")]
    assert len(metrics) == 1 and not metrics[0].interrupted
    assert "interruption" not in _decisions(result)


async def test_an_intent_over_the_reply_interrupts_it(gateway_channel: grpc.aio.Channel) -> None:
    over = Pcm16Audio(utterance("wait", 2).data + b"\0" * 16_000, 16_000)
    result = await talk(gateway_channel, spoken(QUESTION).audio, barge_in_audio=over)
    assert _decisions(result)[:1] == ["interruption"], _decided(result)
    assert len(result.of("interruption")) == 1
    assert next(e.turn_metrics.interrupted for _, e in result.of("turn_metrics"))


ECHO_DEFENCES = {
    # the default: the transcript's echo rejection (the echo reaches the ASR; its words are the agent's)
    "default": gateway_pb2.TurnTakingOptions(),
    # and AEC3 on the user's audio, once the echo detector finds the echo
    "with echo cancellation": gateway_pb2.TurnTakingOptions(echo_cancellation=True),
}
NO_DEFENCE = gateway_pb2.TurnTakingOptions(
    echo_cancellation=False, echo_rejection=False, interruption_decision=False, backchannels=False
)


async def _echoed_turn(channel: grpc.aio.Channel, options: gateway_pb2.TurnTakingOptions) -> EchoConversation:
    async with EchoConversation(channel, delay_ms=150, gain_db=-12, turn_taking=options) as conversation:
        await conversation.speak(spoken(QUESTION).audio)
        await asyncio.sleep(4)  # the echo's last words, and a final for them, would come now
    return conversation


async def test_with_no_defence_the_agents_echo_interrupts_it(gateway_channel: grpc.aio.Channel) -> None:
    """The control for the test below: this echo is loud enough to matter (the agent interrupts itself, and
    answers its own words: no reply ever ends uninterrupted, so the wait for one runs out)."""
    async with EchoConversation(gateway_channel, delay_ms=150, gain_db=-12, turn_taking=NO_DEFENCE) as conversation:
        with contextlib.suppress(TimeoutError):
            await conversation.speak(spoken(QUESTION).audio, max_wait_s=20)
    assert [e for _, e in conversation.events if e.WhichOneof("event") == "interruption"]


@pytest.mark.parametrize("defence", list(ECHO_DEFENCES))
async def test_the_agents_own_echo_neither_interrupts_nor_speaks_for_the_user(
    gateway_channel: grpc.aio.Channel, defence: str
) -> None:
    """The reply, played back into the microphone 150 ms late at -12 dB (a phone on speaker)."""
    conversation = await _echoed_turn(gateway_channel, ECHO_DEFENCES[defence])
    events = [e for _, e in conversation.events]
    said = [(e.WhichOneof("event"), str(e)[:200]) for e in events if e.WhichOneof("event") != "agent_audio"]
    assert not [e for e in events if e.WhichOneof("event") == "interruption"], said
    # Words for the user: the question's only (the echo may leave a wordless final: noise, no turn).
    finals = [e.final_transcript.text for e in events if e.WhichOneof("event") == "final_transcript"]
    assert [f for f in finals if f.strip()] == finals[:1] and word_error_rate(QUESTION, finals[0]) <= 0.2, finals
    metrics = [e.turn_metrics for e in events if e.WhichOneof("event") == "turn_metrics"]
    assert len(metrics) == 1 and not metrics[0].interrupted


@pytest.mark.parametrize(("delay_ms", "intent"), [(300, "sorry, but"), (150, "what do you mean?")])
async def test_an_interruption_said_as_the_echo_starts_interrupts(
    gateway_channel: grpc.aio.Channel, delay_ms: int, intent: str
) -> None:
    """The loudest echo of the set (-6 dB), with an intent said as the agent's first audio arrives: Whisper
    often writes the two together as the agent's words alone; heard again with the echo removed
    (gateway/echo/path.py), the user's words interrupt, and are the user's turn."""
    over = Pcm16Audio(utterance(intent, 3).data + bytes(16_000 * 3), 16_000)  # 1.5 s of silence after it
    async with EchoConversation(gateway_channel, delay_ms=delay_ms, gain_db=-6) as conversation:
        await conversation.speak(spoken(QUESTION).audio, barge_in=over, max_wait_s=60)
        await asyncio.sleep(2)
    events = [e for _, e in conversation.events]
    said = [(e.WhichOneof("event"), str(e)[:200]) for e in events if e.WhichOneof("event") != "agent_audio"]
    assert [e for e in events if e.WhichOneof("event") == "interruption"], said
    decisions = [e.interruption_decision for e in events if e.WhichOneof("event") == "interruption_decision"]
    assert decisions[0].kind == "interruption", said
