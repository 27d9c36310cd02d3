"""Async client of the ASR service's Recognize stream."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator
from dataclasses import dataclass, field

import grpc

from voice_agent.audio import Pcm16Audio
from voice_agent.v1 import asr_pb2, asr_pb2_grpc, audio_pb2

CHUNK_MS = 100  # a typical mobile capture buffer


def recognition_config(sample_rate: int, **options: object) -> asr_pb2.RecognitionConfig:
    """A config for PCM16 audio at ``sample_rate``; options are RecognitionConfig fields."""
    audio = audio_pb2.AudioFormat(encoding=audio_pb2.AUDIO_ENCODING_PCM16LE, sample_rate_hz=sample_rate)
    return asr_pb2.RecognitionConfig(audio=audio, **options)  # type: ignore[arg-type]


async def paced_requests(
    config: asr_pb2.RecognitionConfig, audio: Pcm16Audio, *, realtime: bool, chunk_ms: int = CHUNK_MS
) -> AsyncIterator[asr_pb2.RecognizeRequest]:
    """The config, then the audio in chunks: at real-time pace, as a microphone
    sends it, or as fast as the stream takes it."""
    yield asr_pb2.RecognizeRequest(config=config)
    started = time.perf_counter()
    sent_ms = 0
    for chunk in audio.chunks(chunk_ms):
        if realtime:
            await asyncio.sleep(max(0.0, started + sent_ms / 1000 - time.perf_counter()))
        yield asr_pb2.RecognizeRequest(audio=chunk)
        sent_ms += chunk_ms


@dataclass
class Recognition:
    """Every event of one stream, with the wall-clock time (perf_counter) it arrived."""

    events: list[tuple[float, asr_pb2.RecognizeResponse]] = field(default_factory=list)

    def of(self, kind: str) -> list[asr_pb2.RecognizeResponse]:
        return [event for _, event in self.events if event.WhichOneof("event") == kind]

    @property
    def finals(self) -> list[asr_pb2.Transcript]:
        return [event.final for event in self.of("final")]

    @property
    def text(self) -> str:
        return " ".join(t.text for t in self.finals if t.text)


async def recognize(
    channel: grpc.aio.Channel,
    audio: Pcm16Audio,
    *,
    realtime: bool = True,
    chunk_ms: int = CHUNK_MS,
    deadline_s: float | None = None,
    on_event: object = None,
    **options: object,
) -> Recognition:
    """Streams ``audio`` through Recognize and collects every event."""
    stub = asr_pb2_grpc.AsrStub(channel)
    config = recognition_config(audio.sample_rate, **options)
    result = Recognition()
    call = stub.Recognize(paced_requests(config, audio, realtime=realtime, chunk_ms=chunk_ms), timeout=deadline_s)
    async for event in call:
        result.events.append((time.perf_counter(), event))
        if callable(on_event):
            on_event(event)
    return result
