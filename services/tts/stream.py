"""One synthesis stream: text in (whole or in fragments), audio chunks out.

The segmenter cuts phrases as the text arrives; one task synthesizes them in
order in the shared inference pool (a stream's first phrase jumps the queue,
since time to first audio is what a listener notices) and sends each phrase's
audio as soon as it is ready, in ``chunk_ms`` pieces. Cancelling the stream
cancels that task: a phrase already in the engine finishes, and nothing
after it starts.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable

import numpy as np
from opentelemetry import trace
from prometheus_client import Counter

from services.tts.engines import TtsEngine
from services.tts.protocol import SynthesisSettings, check_text_length
from services.tts.text import Phrase, PhraseSegmenter, speakable
from voice_agent.audio import float_to_pcm16, resample
from voice_agent.inference import InferencePool
from voice_agent.metrics import latency_histogram
from voice_agent.telemetry import tracer
from voice_agent.v1 import tts_pb2

FIRST_PHRASE_PRIORITY = 0
LATER_PHRASE_PRIORITY = 1

PHRASES = Counter("voice_tts_phrases_total", "Phrases synthesized.", ["engine"])
AUDIO_SECONDS = Counter("voice_tts_audio_seconds_total", "Seconds of audio synthesized.", ["engine"])
INFERENCE_SECONDS = latency_histogram("voice_tts_inference_seconds", "Engine time per phrase.", ("engine",))
TTFA_SECONDS = latency_histogram("voice_tts_ttfa_seconds", "From a stream's first text to its first audio chunk.")


class SynthesisStream:
    def __init__(
        self,
        settings: SynthesisSettings,
        engine: TtsEngine,
        pool: InferencePool,
        *,
        max_phrase_chars: int,
        max_text_chars: int,
        chunk_ms: int,
        emit: Callable[[tts_pb2.SynthesizeResponse], None],
    ) -> None:
        self._settings = settings
        self._engine = engine
        self._pool = pool
        self._max_text_chars = max_text_chars
        self._chunk_samples = settings.sample_rate * chunk_ms // 1000
        self._emit = emit
        self._segmenter = PhraseSegmenter(settings.first_phrase_words, max_phrase_chars)
        self._phrases: asyncio.Queue[tuple[Phrase, float] | None] = asyncio.Queue()
        self._first_text_at: float | None = None
        self._sequence = 0
        self._phrases_sent = 0
        self._audio_samples = 0
        self._span = tracer.start_span(
            "tts.stream",
            attributes={
                "tts.engine": engine.name,
                "tts.voice": settings.voice,
                "tts.sample_rate_hz": settings.sample_rate,
            },
        )
        self._worker = asyncio.create_task(self._synthesize_phrases())

    def add_text(self, fragment: str) -> None:
        check_text_length(len(self._segmenter.text) + len(fragment), self._max_text_chars)
        if self._first_text_at is None and fragment.strip():
            self._first_text_at = time.perf_counter()
        self._queue(self._segmenter.push(fragment))

    def flush(self) -> None:
        self._queue(self._segmenter.flush())

    async def finish(self) -> None:
        """No more text: speaks what is left and waits until every chunk is out."""
        self.flush()
        self._phrases.put_nowait(None)
        await self._worker

    def close(self) -> None:
        self._worker.cancel()
        if self._span.is_recording():  # once: close() follows finish() too
            rate = self._settings.sample_rate
            self._span.set_attributes(
                {"tts.phrases": self._phrases_sent, "tts.audio_ms": self._audio_samples * 1000 // rate}
            )
            self._span.end()

    def _queue(self, phrases: list[Phrase]) -> None:
        now = time.perf_counter()
        for phrase in phrases:
            self._phrases.put_nowait((phrase, now))

    async def _synthesize_phrases(self) -> None:
        while (item := await self._phrases.get()) is not None:
            phrase, complete_at = item
            text = speakable(phrase.text)
            if not text:
                continue
            priority = FIRST_PHRASE_PRIORITY if phrase.index == 0 else LATER_PHRASE_PRIORITY
            parent = trace.set_span_in_context(self._span)
            with tracer.start_as_current_span("tts.phrase", parent) as span:
                audio, synthesis_ms = await self._pool.run(priority, self._synthesize, text)
                span.set_attributes(
                    {"tts.phrase_index": phrase.index, "tts.chars": len(text), "tts.synthesis_ms": synthesis_ms}
                )
            self._send(phrase, audio, synthesis_ms, complete_at)

    def _synthesize(self, text: str) -> tuple[np.ndarray, float]:
        started = time.perf_counter()
        audio = self._engine.synthesize(text, self._settings.voice, self._settings.speed)
        audio = resample(audio, self._engine.sample_rate, self._settings.sample_rate)
        return audio, (time.perf_counter() - started) * 1000

    def _send(self, phrase: Phrase, audio: np.ndarray, synthesis_ms: float, complete_at: float) -> None:
        engine = self._engine.name
        PHRASES.labels(engine).inc()
        INFERENCE_SECONDS.labels(engine).observe(synthesis_ms / 1000)
        rate = self._settings.sample_rate
        AUDIO_SECONDS.labels(engine).inc(len(audio) / rate)
        if not len(audio):
            return
        ready = time.perf_counter()
        first_text_at = self._first_text_at or complete_at
        if self._sequence == 0:
            TTFA_SECONDS.observe(ready - first_text_at)
            self._span.set_attribute("tts_ttfa_ms", (ready - first_text_at) * 1000)
        self._phrases_sent += 1
        self._audio_samples += len(audio)
        timing = tts_pb2.SynthesisTiming(
            synthesis_ms=synthesis_ms,
            phrase_latency_ms=(ready - complete_at) * 1000,
            stream_elapsed_ms=(ready - first_text_at) * 1000,
        )
        starts = range(0, len(audio), self._chunk_samples)
        for start in starts:
            piece = audio[start : start + self._chunk_samples]
            chunk = tts_pb2.TtsAudioChunk(
                audio=float_to_pcm16(piece),
                sample_rate_hz=rate,
                sequence_number=self._sequence,
                phrase_index=phrase.index,
                text_start=phrase.start,
                text_end=phrase.end,
                phrase_offset_ms=start * 1000 // rate,
                phrase_duration_ms=len(audio) * 1000 // rate,
                phrase_end=start == starts[-1],
                timing=timing,
            )
            self._sequence += 1
            self._emit(tts_pb2.SynthesizeResponse(audio=chunk))
