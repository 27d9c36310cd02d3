"""Client of the gateway's Converse stream: open a session, send audio, iterate events.

``talk`` runs one real-time-paced spoken turn as a phone would: the
microphone's audio, then silence, until the agent's turn ends. It measures
``e2e_ms`` on the client's clock: from when the last sample of the user's
speech was sent (the ASR's speech-end offset, mapped to the wall-clock time
that sample went out) to the first agent audio chunk received.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator
from dataclasses import dataclass, field

import grpc

from voice_agent.audio import PCM16_SAMPLE_BYTES, Pcm16Audio
from voice_agent.v1 import audio_pb2, gateway_pb2, gateway_pb2_grpc

CHUNK_MS = 100
STAGES = ("vad_wait_ms", "asr_ms", "llm_ttft_ms", "tts_ttfa_ms")


def session_config(sample_rate: int, **options: object) -> gateway_pb2.SessionConfig:
    audio = audio_pb2.AudioFormat(encoding=audio_pb2.AUDIO_ENCODING_PCM16LE, sample_rate_hz=sample_rate)
    return gateway_pb2.SessionConfig(input_audio=audio, **options)  # type: ignore[arg-type]


@dataclass
class TurnResult:
    """One user turn and the agent's answer, with the events as they arrived (perf_counter)."""

    events: list[tuple[float, gateway_pb2.ConverseResponse]] = field(default_factory=list)
    sent_at_ms: dict[int, float] = field(default_factory=dict)  # audio offset (ms) -> when it was sent

    def of(self, kind: str) -> list[tuple[float, gateway_pb2.ConverseResponse]]:
        return [(t, e) for t, e in self.events if e.WhichOneof("event") == kind]

    @property
    def transcript(self) -> str:
        return " ".join(e.final_transcript.text for _, e in self.of("final_transcript") if e.final_transcript.text)

    @property
    def reply(self) -> str:
        return "".join(e.agent_text.delta for _, e in self.of("agent_text"))

    def reply_audio(self) -> Pcm16Audio:
        chunks = [e.agent_audio for _, e in self.of("agent_audio")]
        return Pcm16Audio(b"".join(c.audio for c in chunks), chunks[0].sample_rate_hz if chunks else 24_000)

    @property
    def errors(self) -> list[gateway_pb2.ErrorEvent]:
        return [e.error for _, e in self.of("error")]

    def metrics(self) -> dict[str, float]:
        """The turn's timing names; e2e_ms and overhead_ms from the client's clock."""
        turn_metrics = self.of("turn_metrics")
        if not turn_metrics:
            return {}
        reported = turn_metrics[-1][1].turn_metrics
        result = {stage: round(getattr(reported, stage), 1) for stage in STAGES}
        ended, audio = self.of("speech_ended"), self.of("agent_audio")
        if ended and audio:
            offset = ended[-1][1].speech_ended.offset_ms
            # When the chunk carrying the last sample of speech was sent.
            sent = self.sent_at_ms.get(offset // CHUNK_MS * CHUNK_MS)
            if sent is not None:
                result["e2e_ms"] = round((audio[0][0] - sent) * 1000, 1)
                result["overhead_ms"] = round(result["e2e_ms"] - sum(result[s] for s in STAGES), 1)
        result["gateway_first_audio_ms"] = round(reported.gateway_first_audio_ms, 1)
        return result


async def talk(
    channel: grpc.aio.Channel,
    audio: Pcm16Audio,
    *,
    max_wait_s: float = 60.0,
    barge_in_audio: Pcm16Audio | None = None,
    **options: object,
) -> TurnResult:
    """Speaks ``audio`` at real-time pace, keeps the microphone open (silence) until the
    agent's turn ends, then ends the session. With ``barge_in_audio``, that audio is
    spoken over the agent as soon as its first audio arrives."""
    result = TurnResult()
    turn_over = asyncio.Event()
    agent_speaking = asyncio.Event()
    rate = audio.sample_rate
    silence = b"\0" * (rate * CHUNK_MS // 1000 * PCM16_SAMPLE_BYTES)

    async def requests() -> AsyncIterator[gateway_pb2.ConverseRequest]:
        yield gateway_pb2.ConverseRequest(config=session_config(rate, **options))
        started = time.perf_counter()
        offset_ms = 0

        async def send(chunk: bytes) -> gateway_pb2.ConverseRequest:
            nonlocal offset_ms
            await asyncio.sleep(max(0.0, started + offset_ms / 1000 - time.perf_counter()))
            result.sent_at_ms[offset_ms] = time.perf_counter()
            offset_ms += CHUNK_MS
            return gateway_pb2.ConverseRequest(audio=chunk)

        for chunk in audio.chunks(CHUNK_MS):
            yield await send(chunk)
        deadline = time.perf_counter() + max_wait_s
        barged = barge_in_audio is None
        while not turn_over.is_set() and time.perf_counter() < deadline:
            if not barged and agent_speaking.is_set():
                barged = True
                for chunk in barge_in_audio.chunks(CHUNK_MS):  # type: ignore[union-attr]
                    yield await send(chunk)
            yield await send(silence)
        yield gateway_pb2.ConverseRequest(end=gateway_pb2.ConverseRequest.EndSession())

    call = gateway_pb2_grpc.GatewayStub(channel).Converse(requests())
    async for event in call:
        result.events.append((time.perf_counter(), event))
        kind = event.WhichOneof("event")
        if kind == "agent_audio":
            agent_speaking.set()
        # A barge-in makes two turns: the interrupted one, and the answer to the interruption.
        turns_expected = 1 if barge_in_audio is None else 2
        failed = kind == "error" and event.error.backend in ("llm", "tts")
        if failed or len(result.of("turn_metrics")) >= turns_expected:
            turn_over.set()
    return result
