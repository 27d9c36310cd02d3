"""AgentTurn's orchestration with FAKE backends (a unit test of the turn's timing logic only;
the real LLM and TTS are exercised in test_gateway.py)."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator

import pytest
from opentelemetry import trace

from gateway.events import AgentAudio, AgentText, Event
from gateway.history import History
from gateway.llm import Reply
from gateway.persona import DEFAULT_SYSTEM_PROMPT, FALLBACK_REPLY
from gateway.preemption import HeldEvents
from gateway.turn import AgentTurn, TurnTiming
from voice_agent.v1 import tts_pb2

pytestmark = pytest.mark.unit  # no model, no service: make test-unit

RATE = 16_000


class FakeLlm:
    """Streams scripted replies, one per request (the last one again after that); records what it was asked."""

    def __init__(self, *replies: tuple[str, ...]) -> None:
        self.replies = replies or (("Pause ", "before ", "you ", "answer."),)
        self.requests: list[list[dict[str, str]]] = []
        self.finished = 0  # streams read to their end

    async def stream(self, messages: list[dict[str, str]], reply: Reply) -> AsyncIterator[str]:
        self.requests.append(messages)
        for delta in self.replies[min(len(self.requests), len(self.replies)) - 1]:
            reply.text += delta
            reply.tokens += 1
            yield delta
        self.finished += 1


class FakeTtsCall:
    """One chunk of ``seconds`` of audio for the whole reply, as soon as the text has ended."""

    def __init__(self, requests: AsyncIterator[tts_pb2.SynthesizeStreamRequest], seconds: float) -> None:
        self._requests = requests
        self._seconds = seconds

    def __aiter__(self) -> AsyncIterator[tts_pb2.SynthesizeResponse]:
        return self._responses()

    async def _responses(self) -> AsyncIterator[tts_pb2.SynthesizeResponse]:
        text = "".join([r.text async for r in self._requests])
        audio = b"\0\0" * int(RATE * self._seconds)
        chunk = tts_pb2.TtsAudioChunk(audio=audio, sample_rate_hz=RATE, text_start=0, text_end=len(text))
        yield tts_pb2.SynthesizeResponse(audio=chunk)

    def cancel(self) -> None:
        pass

    def add_done_callback(self, callback: object) -> None:
        pass


class FakeTts:
    def __init__(self, seconds: float) -> None:
        self.seconds = seconds

    def SynthesizeStream(self, requests: AsyncIterator[tts_pb2.SynthesizeStreamRequest]) -> FakeTtsCall:  # noqa: N802
        return FakeTtsCall(requests, self.seconds)


def _turn(
    sent: list[float],
    seconds: float,
    first_audio: asyncio.Event | None = None,
    hold: asyncio.Event | None = None,
    llm: FakeLlm | None = None,
    texts: list[str] | None = None,
) -> AgentTurn:
    history = History("You are a coach.", 1000)
    history.add_user("How do I start?")

    def emit(event: Event) -> None:
        if isinstance(event, AgentText) and texts is not None:
            texts.append(event.delta)
        if isinstance(event, AgentAudio):
            sent.append(time.perf_counter())
            if first_audio is not None:
                first_audio.set()

    return AgentTurn(
        1,
        history.messages(),
        llm or FakeLlm(),  # type: ignore[arg-type]
        FakeTts(seconds),  # type: ignore[arg-type]
        tts_pb2.SynthesisConfig(),
        TurnTiming(final_at=time.perf_counter()),
        emit,
        lead_ms=500,
        tts_timeout_s=5,
        span=trace.INVALID_SPAN,
        hold=hold,
    )


async def test_a_turn_stays_interruptible_until_its_audio_has_played_at_the_client() -> None:
    sent: list[float] = []
    first_audio = asyncio.Event()
    turn = _turn(sent, seconds=1.0, first_audio=first_audio)
    task = asyncio.create_task(turn.run())
    await asyncio.wait_for(first_audio.wait(), timeout=5)
    # All of the audio was sent at once (1 s, ahead of playback); the client plays it for a second.
    await asyncio.sleep(0.5)
    assert not task.done(), "the turn ended while the client was still playing its audio"
    assert turn.heard_text() == turn.reply.text  # its only chunk has started playing
    task.cancel()  # a barge-in now still interrupts it
    await asyncio.gather(task, return_exceptions=True)


async def test_a_turn_ends_once_its_audio_has_played() -> None:
    sent: list[float] = []
    turn = _turn(sent, seconds=0.2)
    await asyncio.wait_for(turn.run(), timeout=5)
    assert time.perf_counter() - sent[0] >= 0.19


async def test_a_held_turn_sends_no_audio_until_it_is_kept() -> None:
    """A preemptive turn runs its LLM and TTS at once, but its audio waits for the keep."""
    sent: list[float] = []
    kept = asyncio.Event()
    turn = _turn(sent, seconds=0.2, hold=kept)
    task = asyncio.create_task(turn.run())
    await asyncio.sleep(0.3)
    assert not sent and turn.timing.tts_first_audio_at is not None  # synthesized, not sent
    kept.set()
    await asyncio.wait_for(task, timeout=5)
    assert len(sent) == 1


async def test_held_events_are_sent_in_order_once_released_and_never_otherwise() -> None:
    emitted: list[Event] = []
    kept, dropped = HeldEvents(emitted.append), HeldEvents(emitted.append)
    for held in (kept, dropped):
        for delta in ("a", "b"):
            held.put(AgentText(1, delta))
    assert not emitted
    kept.release()
    kept.put(AgentText(1, "c"))
    assert [e.delta for e in emitted if isinstance(e, AgentText)] == ["a", "b", "c"]


async def test_held_audio_is_sent_on_resume_with_nothing_lost() -> None:
    """Speech over the agent holds its audio (an interruption being decided); resuming sends the
    chunk it stopped at, and the client's clock goes on from where its buffer ends."""
    sent: list[float] = []
    turn = _turn(sent, seconds=0.3)
    turn.hold_audio()
    assert turn.holding
    task = asyncio.create_task(turn.run())
    await asyncio.sleep(0.3)
    assert not sent and not task.done()  # held: nothing sent, nothing cancelled
    turn.resume_audio()
    await asyncio.wait_for(task, timeout=5)
    assert len(sent) == 1 and turn.heard_text() == turn.reply.text


async def test_labels_never_reach_the_client_or_the_tts_and_end_the_llm_stream() -> None:
    llm, texts = FakeLlm(("Coach:", " Coach:", " Try", " this.", " Client", ":", " and", " more")), []
    turn = _turn([], seconds=0.05, llm=llm, texts=texts)
    await asyncio.wait_for(turn.run(), timeout=5)
    assert "".join(texts) == turn.text == "Try this." and turn.heard_text() == "Try this."
    assert llm.finished == 0  # the stream was closed at the client's label, not read to its end
    assert turn.empty_recovery is None


async def test_a_reply_with_nothing_to_say_is_asked_again_with_the_built_in_persona() -> None:
    llm, texts = (
        FakeLlm(
            ("Head:", " Head:", " Head:"),
            (" Breathe", " first."),
        ),
        [],
    )
    turn = _turn([], seconds=0.05, llm=llm, texts=texts)
    await asyncio.wait_for(turn.run(), timeout=5)
    assert turn.text == "Breathe first." and "".join(texts) == turn.text
    assert [request[0]["content"] for request in llm.requests] == ["You are a coach.", DEFAULT_SYSTEM_PROMPT]
    assert llm.requests[1][1:] == llm.requests[0][1:]  # the same conversation, only the persona differs
    assert turn.empty_recovery == "retry"


async def test_when_the_retry_is_empty_too_the_fallback_line_is_said() -> None:
    llm, texts = FakeLlm(("",), (" ...",)), []
    turn = _turn([], seconds=0.05, llm=llm, texts=texts)
    await asyncio.wait_for(turn.run(), timeout=5)
    assert turn.text == FALLBACK_REPLY == "".join(texts) and turn.heard_text() == FALLBACK_REPLY
    assert len(llm.requests) == 2 and turn.empty_recovery == "fallback"
