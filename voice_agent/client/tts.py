"""Async client of the TTS service."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator, Iterable
from dataclasses import dataclass, field

import grpc

from voice_agent.audio import Pcm16Audio
from voice_agent.v1 import tts_pb2, tts_pb2_grpc


@dataclass
class Synthesis:
    """The chunks of one response stream, with the perf_counter time each arrived."""

    started: float
    chunks: list[tuple[float, tts_pb2.TtsAudioChunk]] = field(default_factory=list)

    @property
    def ttfa_ms(self) -> float | None:
        return (self.chunks[0][0] - self.started) * 1000 if self.chunks else None

    @property
    def phrases(self) -> list[tuple[int, int]]:
        """The text span of each phrase, in order."""
        spans: dict[int, tuple[int, int]] = {}
        for _, chunk in self.chunks:
            spans.setdefault(chunk.phrase_index, (chunk.text_start, chunk.text_end))
        return [spans[index] for index in sorted(spans)]

    def audio(self) -> Pcm16Audio:
        rate = self.chunks[0][1].sample_rate_hz if self.chunks else 24_000
        return Pcm16Audio(b"".join(chunk.audio for _, chunk in self.chunks), rate)


async def _collect(call: AsyncIterator[tts_pb2.SynthesizeResponse], started: float) -> Synthesis:
    result = Synthesis(started)
    async for response in call:
        result.chunks.append((time.perf_counter(), response.audio))
    return result


async def synthesize(channel: grpc.aio.Channel, text: str, **config: object) -> Synthesis:
    """A whole text; ``config`` holds SynthesisConfig fields."""
    stub = tts_pb2_grpc.TtsStub(channel)
    request = tts_pb2.SynthesizeRequest(config=tts_pb2.SynthesisConfig(**config), text=text)  # type: ignore[arg-type]
    return await _collect(stub.Synthesize(request), time.perf_counter())


async def synthesize_stream(
    channel: grpc.aio.Channel, fragments: Iterable[str], *, interval_s: float = 0.0, **config: object
) -> Synthesis:
    """Fragments as an LLM streams them, ``interval_s`` apart, then the end marker."""

    async def requests() -> AsyncIterator[tts_pb2.SynthesizeStreamRequest]:
        yield tts_pb2.SynthesizeStreamRequest(config=tts_pb2.SynthesisConfig(**config))  # type: ignore[arg-type]
        for fragment in fragments:
            yield tts_pb2.SynthesizeStreamRequest(text=fragment)
            if interval_s:
                await asyncio.sleep(interval_s)
        yield tts_pb2.SynthesizeStreamRequest(end=tts_pb2.SynthesizeStreamRequest.End())

    stub = tts_pb2_grpc.TtsStub(channel)
    return await _collect(stub.SynthesizeStream(requests()), time.perf_counter())


def words(text: str) -> list[str]:
    """``text`` split as an LLM streams it: each word with the space before it."""
    pieces = text.split(" ")
    return [pieces[0]] + [" " + piece for piece in pieces[1:]]
