"""One Recognize stream: audio in, speech events and transcripts out.

Audio is resampled to 16 kHz and cut into 32 ms frames. Each frame goes
through the VAD on the event loop (about 0.15 ms), and the endpointer turns
the probabilities into utterance boundaries. Transcription runs in the
shared inference pool: a final transcript as soon as an utterance ends,
interim ones during speech whenever a worker is free (interims are best
effort, so they never make a final wait behind a queue of them).
"""

from __future__ import annotations

import asyncio
import collections
import time
from collections.abc import Callable, Coroutine
from typing import Any

import numpy as np

from services.asr.protocol import MAX_CHUNK_MS, StreamSettings
from services.asr.transcriber import Transcription, WhisperTranscriber
from services.asr.vad import FRAME_SAMPLES, Endpointer, EndReason, SileroVad, SpeechEnd, SpeechStart
from voice_agent.audio import ASR_SAMPLE_RATE, StreamResampler, check_pcm16_chunk, pcm16_to_float, samples_to_ms
from voice_agent.inference import InferencePool
from voice_agent.metrics import latency_histogram
from voice_agent.telemetry import context_from, tracer, wall_ns
from voice_agent.v1 import asr_pb2

FINAL_PRIORITY = 0
INTERIM_PRIORITY = 1

INFERENCE_SECONDS = latency_histogram("voice_asr_inference_seconds", "Whisper inference time.", ("kind",))
FINAL_LATENCY_SECONDS = latency_histogram(
    "voice_asr_final_latency_seconds", "From the VAD's speech-end decision to the final transcript."
)

_REASONS = {
    EndReason.SILENCE: asr_pb2.SpeechEnded.REASON_SILENCE,
    EndReason.MAX_DURATION: asr_pb2.SpeechEnded.REASON_MAX_DURATION,
    EndReason.END_OF_STREAM: asr_pb2.SpeechEnded.REASON_END_OF_STREAM,
}


def _ms(samples: int) -> int:
    return samples_to_ms(samples, ASR_SAMPLE_RATE)


class AudioHistory:
    """The stream's recent 16 kHz audio, from a start position onwards."""

    def __init__(self) -> None:
        self._chunks: collections.deque[np.ndarray] = collections.deque()
        self._start = 0  # sample index of the first kept sample
        self.end = 0  # sample index after the last kept sample

    def append(self, samples: np.ndarray) -> None:
        self._chunks.append(samples)
        self.end += len(samples)

    def forget_before(self, position: int) -> None:
        while self._chunks and self._start + len(self._chunks[0]) <= position:
            self._start += len(self._chunks.popleft())

    def slice(self, start: int, end: int) -> np.ndarray:
        start, end = max(start, self._start), min(end, self.end)
        if end <= start:
            return np.zeros(0, dtype=np.float32)
        joined = np.concatenate(list(self._chunks))
        return joined[start - self._start : end - self._start]


class RecognitionStream:
    def __init__(
        self,
        settings: StreamSettings,
        vad: SileroVad,
        transcriber: WhisperTranscriber,
        pool: InferencePool,
        max_utterance_ms: int,
        emit: Callable[[asr_pb2.RecognizeResponse], None],
    ) -> None:
        self._settings = settings
        self._vad = vad.stream()
        self._endpointer = Endpointer(settings.vad_threshold, settings.min_silence_ms, max_utterance_ms)
        self._transcriber = transcriber
        self._pool = pool
        self._emit = emit
        self._resampler = StreamResampler(settings.sample_rate, ASR_SAMPLE_RATE)
        self._pad = settings.speech_pad_ms * ASR_SAMPLE_RATE // 1000
        self._interim_step = settings.interim_interval_ms * ASR_SAMPLE_RATE // 1000
        self._history = AudioHistory()
        self._unframed = np.zeros(0, dtype=np.float32)
        self._next_interim_at = 0
        self._interim: asyncio.Task[None] | None = None
        self._last_final: asyncio.Task[None] | None = None
        self._tasks: set[asyncio.Task[None]] = set()
        self._trace_headers: dict[int, dict[str, str]] = {}  # utterance id -> W3C headers of its turn

    def join_trace(self, context: asr_pb2.TraceContext) -> None:
        """The utterance's spans will join the caller's trace (its turn began at SpeechStarted)."""
        if len(self._trace_headers) < 16:  # a caller that never lets an utterance end cannot grow this
            self._trace_headers[context.utterance_id] = dict(context.headers)

    def feed(self, pcm: bytes) -> None:
        """Takes one audio message; raises InvalidArgument for a malformed one."""
        check_pcm16_chunk(pcm, self._settings.sample_rate, MAX_CHUNK_MS)
        self._push(self._resampler.process(pcm16_to_float(pcm)))

    async def finish(self) -> None:
        """The audio is over: ends an open utterance and waits for every final transcript."""
        self._push(self._resampler.flush())
        if len(self._unframed):  # too short for the VAD, but the recogniser should hear it
            self._history.append(self._unframed)
            self._unframed = np.zeros(0, dtype=np.float32)
        end = self._endpointer.finish(self._history.end)
        if end is not None:
            self._on_end(end)
        if self._last_final is not None:
            await self._last_final

    @property
    def at_rest(self) -> bool:
        """No utterance open and every final transcript sent: ending the stream here loses nothing."""
        return not self._endpointer.in_speech and (self._last_final is None or self._last_final.done())

    def close(self) -> None:
        """Cancels every job of this stream; queued inferences never start."""
        for task in list(self._tasks):
            task.cancel()

    def _push(self, samples: np.ndarray) -> None:
        audio = np.concatenate([self._unframed, samples]) if len(self._unframed) else samples
        whole = len(audio) // FRAME_SAMPLES * FRAME_SAMPLES
        for offset in range(0, whole, FRAME_SAMPLES):
            self._on_frame(audio[offset : offset + FRAME_SAMPLES])
        self._unframed = audio[whole:]

    def _on_frame(self, frame: np.ndarray) -> None:
        self._history.append(frame)
        probability = self._vad.probability(frame)
        for event in self._endpointer.push(probability, self._history.end):
            if isinstance(event, SpeechStart):
                self._on_start(event)
            else:
                self._on_end(event)
        start = self._endpointer.utterance_start
        if start is None:
            self._history.forget_before(self._history.end - self._pad - FRAME_SAMPLES)
        elif self._settings.interim_results and self._history.end >= self._next_interim_at:
            self._maybe_interim(start)

    def _on_start(self, event: SpeechStart) -> None:
        self._next_interim_at = event.start + self._interim_step
        self._emit(
            asr_pb2.RecognizeResponse(
                speech_started=asr_pb2.SpeechStarted(utterance_id=event.utterance_id, offset_ms=_ms(event.start))
            )
        )

    def _on_end(self, event: SpeechEnd) -> None:
        decided = time.perf_counter()
        self._emit(
            asr_pb2.RecognizeResponse(
                speech_ended=asr_pb2.SpeechEnded(
                    utterance_id=event.utterance_id,
                    offset_ms=_ms(event.end),
                    decision_offset_ms=_ms(event.decided_at),
                    reason=_REASONS[event.reason],
                )
            )
        )
        audio = self._history.slice(event.start - self._pad, event.end + self._pad)
        self._last_final = self._spawn(self._final(event, audio, decided, self._last_final))

    def _maybe_interim(self, start: int) -> None:
        if self._interim is not None or not self._pool.idle:
            return  # best effort: never queue an interim behind other work
        self._next_interim_at = self._history.end + self._interim_step
        utterance_id = self._endpointer.utterance_id
        audio = self._history.slice(start - self._pad, self._history.end)
        self._interim = self._spawn(self._interim_transcript(utterance_id, start, self._history.end, audio))

    async def _interim_transcript(self, utterance_id: int, start: int, end: int, audio: np.ndarray) -> None:
        requested = time.perf_counter()
        try:
            result = await self._transcribe(INTERIM_PRIORITY, audio, "interim")
        finally:
            self._interim = None
        still_open = self._endpointer.in_speech and self._endpointer.utterance_id == utterance_id
        if still_open and result.text:
            transcript = self._transcript(utterance_id, start, end, result, requested)
            self._emit(asr_pb2.RecognizeResponse(interim=transcript))

    async def _final(
        self, event: SpeechEnd, audio: np.ndarray, decided: float, previous: asyncio.Task[None] | None
    ) -> None:
        result = await self._transcribe(FINAL_PRIORITY, audio, "final")
        if previous is not None:
            await previous  # finals leave in utterance order
        FINAL_LATENCY_SECONDS.observe(time.perf_counter() - decided)
        transcript = self._transcript(event.utterance_id, event.start, event.end, result, decided)
        self._emit(asr_pb2.RecognizeResponse(final=transcript))
        self._trace_final(event, transcript, decided)

    def _trace_final(self, event: SpeechEnd, transcript: asr_pb2.Transcript, decided: float) -> None:
        """Records the utterance's two hops, after the fact, in the trace of its turn."""
        headers = self._trace_headers.pop(event.utterance_id, None)
        parent = context_from(headers) if headers else None
        vad_wait_ms = _ms(event.decided_at - event.end)
        decided_ns = wall_ns(decided)
        common = {"utterance_id": event.utterance_id, "asr.model": self._transcriber.model_dir.name}
        vad = tracer.start_span("asr.vad_wait", parent, start_time=decided_ns - vad_wait_ms * 1_000_000)
        vad.set_attributes({**common, "vad_wait_ms": vad_wait_ms, "asr.end_reason": event.reason.value})
        vad.end(decided_ns)
        final = tracer.start_span("asr.final", parent, start_time=decided_ns)
        final.set_attributes(
            {
                **common,
                "asr_ms": transcript.processing_ms,
                "asr.inference_ms": transcript.inference_ms,
                "asr.audio_ms": transcript.end_ms - transcript.start_ms,
                "asr.language": self._settings.language,
            }
        )
        final.end()

    async def _transcribe(self, priority: int, audio: np.ndarray, kind: str) -> Transcription:
        result = await self._pool.run(priority, self._transcriber.transcribe, audio, self._settings.language)
        INFERENCE_SECONDS.labels(kind).observe(result.inference_ms / 1000)
        return result

    @staticmethod
    def _transcript(utterance_id: int, start: int, end: int, result: Transcription, since: float) -> asr_pb2.Transcript:
        return asr_pb2.Transcript(
            utterance_id=utterance_id,
            text=result.text,
            start_ms=_ms(start),
            end_ms=_ms(end),
            processing_ms=(time.perf_counter() - since) * 1000,
            inference_ms=result.inference_ms,
        )

    def _spawn(self, coroutine: Coroutine[Any, Any, None]) -> asyncio.Task[None]:
        task = asyncio.create_task(coroutine)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)
        return task
