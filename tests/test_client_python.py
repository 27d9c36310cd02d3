"""The Python SDK (voice_agent.client: ``connect``, ``VoiceSession``, ``spoken_turn``) against the real embedded
stack, on tests/client_stack.py's gateway (``--max-streams 1``, an API key, a TCP proxy in front)."""

from __future__ import annotations

import asyncio
import random
import time
from collections.abc import AsyncIterator

import pytest
from client_stack import API_KEY, Gateways, agent_item, conversation_record, kept_as_heard, sdk_gateways
from support import spoken

from voice_agent.client import events as ev
from voice_agent.client.playout import RealTimePlayout
from voice_agent.client.session import FRAME_MS, VoiceSession, _Framer, connect
from voice_agent.client.talk import TurnFailed, spoken_turn

__all__ = ["sdk_gateways"]  # the fixture, for pytest
TURN_S = 120


async def _until(events: AsyncIterator[ev.Event], seen: list[ev.Event], kind: type, **fields: object) -> ev.Event:
    """Reads events into ``seen`` until one of ``kind`` with ``fields``; fails on a Closed first."""
    async for event in events:
        seen.append(event)
        if isinstance(event, kind) and all(getattr(event, k) == v for k, v in fields.items()):
            return event
        assert not isinstance(event, ev.Closed), seen
    raise AssertionError(f"the session ended before a {kind.__name__}: {seen}")


async def _say(session: VoiceSession, text: str, lead_ms: int = 500) -> None:
    """``text`` spoken as a microphone sends it: 20 ms at a time, in real time, then the end of the turn."""
    audio = spoken(text, lead_ms=lead_ms).audio
    for frame in audio.chunks(FRAME_MS):
        await session.send_audio(frame, audio.sample_rate)
        await asyncio.sleep(FRAME_MS / 1000)
    await session.end_turn()


async def test_a_spoken_turn_as_voice_agent_talk_holds_it(sdk_gateways: Gateways) -> None:
    question = spoken("How do I prepare for a job interview?", sample_rate=24_000)
    turn = await spoken_turn(sdk_gateways.proxy.address, question.audio, token=API_KEY, timeout_s=TURN_S)
    assert "interview" in turn.transcript.lower(), turn.events
    assert turn.reply.strip() and turn.reply_audio().duration_ms > 500
    metrics = turn.metrics()
    assert 0 < metrics["e2e_ms"] < 60_000, metrics
    assert turn.of(ev.SessionStarted)[0].conversation_id


async def test_barge_in_flushes_the_playout_and_reports_what_was_heard(sdk_gateways: Gateways) -> None:
    playout = RealTimePlayout()
    seen: list[ev.Event] = []
    session = await connect(sdk_gateways.proxy.address, token=API_KEY, playout=playout)
    events = session
    try:
        await _until(events, seen, ev.SessionStarted)
        await session.send_text("I have a job interview next week and I feel nervous. What should I do?")
        first = await asyncio.wait_for(_until(events, seen, ev.AgentAudio), TURN_S)
        # Little lead, so that it is decided inside even a short reply ("Let's get started!" is 0.8 s).
        speaking = asyncio.create_task(_say(session, "Wait, stop. Tell me something else instead.", lead_ms=100))
        cut = await asyncio.wait_for(_until(events, seen, ev.Interrupted, turn_id=first.turn_id), TURN_S)
        await asyncio.sleep(0.3)  # the interrupted turn stopped playing at the flush
        assert playout.played_ms(cut.turn_id) == cut.played_ms
        received_ms = sum(
            len(e.pcm16) // 2 * 1000 // e.sample_rate
            for e in seen
            if isinstance(e, ev.AgentAudio) and e.turn_id == cut.turn_id
        )
        assert 0 < cut.played_ms < received_ms, (cut, received_ms)
        assert playout.played_ms(cut.turn_id) == cut.played_ms
        await speaking
    finally:
        await session.close()
    # The history keeps what the client said it played: the interrupted reply up to the truncation.
    reply = "".join(e.delta for e in seen if isinstance(e, ev.AgentText) and e.turn_id == cut.turn_id)
    record = await conversation_record(sdk_gateways, session.conversation_id, lambda r: agent_item(r, cut.turn_id))
    kept_as_heard(agent_item(record, cut.turn_id), reply)


async def test_a_wrong_key_is_not_retried(sdk_gateways: Gateways) -> None:
    with pytest.raises(TurnFailed) as failed:
        await spoken_turn(sdk_gateways.proxy.address, spoken("Hello there.").audio, token="not-the-key")
    assert failed.value.error.code == "UNAUTHENTICATED"
    seen: list[ev.Event] = []
    session = await connect(sdk_gateways.proxy.address, token="not-the-key")
    closed = await asyncio.wait_for(_until(session, seen, ev.Closed), 30)
    assert closed.error is not None and closed.error.code == "UNAUTHENTICATED"
    assert not [e for e in seen if isinstance(e, ev.Reconnecting)]


async def test_a_dropped_connection_is_resumed_with_its_history(sdk_gateways: Gateways) -> None:
    seen: list[ev.Event] = []
    session = await connect(sdk_gateways.proxy.address, token=API_KEY)
    events = session
    try:
        first = await _until(events, seen, ev.SessionStarted)
        await session.send_text("My name is Ada and I am preparing for a nursing interview.")
        answered = await asyncio.wait_for(_until(events, seen, ev.TurnMetrics, interrupted=False), TURN_S)
        sdk_gateways.proxy.drop()
        lost = await asyncio.wait_for(_until(events, seen, ev.Reconnecting), 30)
        assert lost.cause.code == "UNAVAILABLE" and lost.cause.backend == "transport" and lost.delay_ms > 0, lost
        resumed = await asyncio.wait_for(_until(events, seen, ev.SessionStarted), TURN_S)
        assert resumed.resumed and resumed.conversation_id == first.conversation_id, resumed
        assert resumed.last_turn_id >= answered.turn_id, resumed
        await session.send_text("What should I say first?")
        after = await asyncio.wait_for(_until(events, seen, ev.TurnMetrics, interrupted=False), TURN_S)
        assert after.turn_id > answered.turn_id
    finally:
        await session.close()
    record = await conversation_record(sdk_gateways, first.conversation_id, lambda r: agent_item(r, after.turn_id))
    said = [(item.role, item.text) for item in record.items]
    assert said[0] == ("user", "My name is Ada and I am preparing for a nursing interview."), said
    assert ("user", "What should I say first?") in said and agent_item(record, after.turn_id), said


@pytest.mark.unit
def test_audio_goes_out_in_20_ms_frames_at_the_session_rate() -> None:
    framer = _Framer(16_000)
    assert framer.add(b"\1\0" * 300, 16_000) == []  # 18.75 ms: no whole frame yet
    frames = framer.add(b"\2\0" * 400, 16_000)
    assert [len(f) for f in frames] == [640, 640] and frames[0][598:602] == b"\1\0\2\0"
    (last,) = framer.finish()
    assert len(last) == 640 and last[120:] == b"\0" * 520  # 60 samples left, padded with silence
    resampled = [f for _ in range(50) for f in framer.add(b"\0\1" * 960, 48_000)]  # one second at 48 kHz
    assert 48 <= len(resampled) <= 50  # soxr holds a few ms back for its filter
    with pytest.raises(ValueError, match="even number"):
        framer.add(b"\0" * 3, 16_000)
    with pytest.raises(ValueError, match="8000"):
        framer.add(b"\0" * 4, 4_000)


@pytest.mark.unit
def test_back_off_is_capped_jittered_and_honours_the_servers_hint() -> None:
    policy = ev.ReconnectPolicy(initial_ms=100, max_ms=1_000, max_attempts=5, random=random.Random(7))
    lost = ev.Error("UNAVAILABLE", "connection reset", backend="transport")
    for attempt in range(1, 6):
        cap = min(1_000, 100 * 2 ** (attempt - 1))
        assert cap / 2 <= policy.delay_ms(attempt, lost) <= cap
    assert policy.delay_ms(6, lost) is None
    assert policy.delay_ms(1, ev.Error("RESOURCE_EXHAUSTED", "limit", 700)) == 700
    assert policy.delay_ms(1, ev.Error("UNAVAILABLE", "shutting down", 0)) == 0
    for code in ("UNAUTHENTICATED", "INVALID_ARGUMENT", "PERMISSION_DENIED", "DEADLINE_EXCEEDED"):
        assert policy.delay_ms(1, ev.Error(code, "no", 5)) is None


@pytest.mark.unit
def test_the_playout_reports_what_was_played_when_flushed() -> None:
    playout = RealTimePlayout()
    playout.play(3, b"\0" * 48_000, 24_000)  # one second
    time.sleep(0.2)
    played = playout.flush(3)
    assert 190 <= played < 1_000 and not playout.playing
    time.sleep(0.05)
    assert playout.played_ms(3) == played  # flushed: its clock stopped
    playout.play(3, b"\0" * 4_800, 24_000)  # a late chunk of the interrupted turn is not played
    assert not playout.playing and playout.started_at(4) is None
