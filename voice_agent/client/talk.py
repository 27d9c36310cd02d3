"""One spoken turn on the Python SDK: what `voice-agent talk` runs, and the SDK's example (docs/clients.md)."""

from __future__ import annotations

import asyncio
from dataclasses import dataclass, field

from voice_agent.audio import Pcm16Audio
from voice_agent.client import events as ev
from voice_agent.client.converse import STAGES
from voice_agent.client.session import FRAME_MS, VoiceSession, connect


class TurnFailed(RuntimeError):
    """The session ended with an error that is not retried (or retries ran out): the server's code and message."""

    def __init__(self, error: ev.Error) -> None:
        super().__init__(f"{error.code}: {error.message}")
        self.error = error


@dataclass
class SpokenTurn:
    """Every event of the turn's session, in order."""

    events: list[ev.Event] = field(default_factory=list)

    def of(self, kind: type) -> list:
        return [event for event in self.events if isinstance(event, kind)]

    @property
    def conversation_id(self) -> str:
        """The conversation the turn was in (the last SessionStarted's): to resume it with."""
        started = self.of(ev.SessionStarted)
        return started[-1].conversation_id if started else ""

    @property
    def transcript(self) -> str:
        return " ".join(t.text for t in self.of(ev.Transcript) if t.final and t.text)

    @property
    def answer(self) -> ev.TurnMetrics | None:
        answers = [m for m in self.of(ev.TurnMetrics) if not m.interrupted]
        return answers[-1] if answers else None

    @property
    def reply(self) -> str:
        turn = self.answer.turn_id if self.answer else None
        return "".join(t.delta for t in self.of(ev.AgentText) if t.turn_id == turn)

    def reply_audio(self) -> Pcm16Audio:
        """Every reply chunk received."""
        chunks = self.of(ev.AgentAudio)
        return Pcm16Audio(b"".join(c.pcm16 for c in chunks), chunks[0].sample_rate if chunks else 24_000)

    @property
    def turn_errors(self) -> list[ev.Error]:
        """A backend's failures (the session went on)."""
        return [e for e in self.of(ev.Error) if e.backend in ("asr", "llm", "tts")]

    def metrics(self) -> dict[str, float]:
        """The answering turn's stages, e2e_ms (the client's clock) and overhead_ms."""
        answer = self.answer
        if answer is None:
            return {}
        result = {stage: round(getattr(answer, stage), 1) for stage in STAGES}
        if answer.e2e_ms is not None:
            result["e2e_ms"] = answer.e2e_ms
            result["overhead_ms"] = round(answer.e2e_ms - sum(result[s] for s in STAGES), 1)
        result["gateway_first_audio_ms"] = round(answer.gateway_first_audio_ms, 1)
        return result


async def spoken_turn(
    address: str,
    audio: Pcm16Audio,
    *,
    token: str | None = None,
    tls_ca: str = "",
    timeout_s: float = 120.0,
    keep: bool = False,
    **options: object,
) -> SpokenTurn:
    """Says ``audio`` as a microphone would (20 ms at a time, in real time) once a session is admitted, then
    waits for the answer; raises ``TurnFailed`` when the session ends with an error. ``keep``: leave the
    conversation resumable (``detach``) rather than end it, so that ``resume_conversation_id`` goes on with it."""
    session = await connect(address, token=token, tls_ca=tls_ca, sample_rate=audio.sample_rate, **options)
    turn = SpokenTurn()
    try:
        await asyncio.wait_for(_hold(session, audio, turn), timeout_s)
    finally:
        await (session.detach() if keep else session.close())
    return turn


async def _hold(session: VoiceSession, audio: Pcm16Audio, turn: SpokenTurn) -> None:
    speaking: asyncio.Task[None] | None = None
    try:
        async for event in session:
            turn.events.append(event)
            if isinstance(event, ev.SessionStarted) and speaking is None:
                speaking = asyncio.create_task(_speak(session, audio))
            elif isinstance(event, ev.TurnMetrics) and not event.interrupted:
                return
            elif isinstance(event, ev.Error) and event.backend in ("llm", "tts"):
                return  # the turn failed; the caller reports it
            elif isinstance(event, ev.Closed) and event.error is not None:
                raise TurnFailed(event.error)
    finally:
        if speaking is not None:
            speaking.cancel()


async def _speak(session: VoiceSession, audio: Pcm16Audio) -> None:
    loop = asyncio.get_running_loop()
    start = loop.time()
    for index, frame in enumerate(audio.chunks(FRAME_MS)):
        await asyncio.sleep(max(0.0, start + index * FRAME_MS / 1000 - loop.time()))
        await session.send_audio(frame, audio.sample_rate)
    await session.end_turn()
