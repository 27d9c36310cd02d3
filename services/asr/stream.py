"""One Recognize stream: audio in, speech events and transcripts out.

Audio is resampled to 16 kHz and cut into 32 ms frames. Each frame goes
through the VAD on the event loop (about 0.15 ms), and the endpointer turns
the probabilities into utterance boundaries. Transcription runs in the
shared inference pool: a final transcript as soon as an utterance ends,
interim ones during speech whenever a worker is free (interims are best
effort, so they never make a final wait behind a queue of them).

With speculative transcripts, a pause in the speech (the endpointer's
SpeechPause) is transcribed at once, with the audio the final would have if
the speech ended there, and sent as SpeechPaused; speech after it sends
SpeechResumed. The final can reuse the pause's transcript (the same audio),
and the adaptive end of turn waits longer after one that ends mid-sentence.
The stream's turn_detector says what judges a pause complete: its transcript's
words (``text``), Smart Turn v3.2 on its audio (``smart_turn``: run in the pool
before the transcript, and the end of turn does not wait for the transcript),
or ``both`` (complete only when both say so).

Event order, per utterance: speech_started, then interims and pairs of
paused/resumed, then at most one more paused, speech_ended and the final.
Every resumed answers the paused just before it; a pause whose transcript was
not ready when speech resumed or the utterance ended is never sent.
"""

from __future__ import annotations

import asyncio
import collections
import logging
import threading
import time
from collections.abc import Callable, Coroutine
from dataclasses import dataclass, field
from typing import Any, TypeVar

import numpy as np
from prometheus_client import Counter

from services.asr.config import TURN_DETECTORS
from services.asr.protocol import StreamSettings, interim_interval_from_update
from services.asr.smart_turn import DEFAULT_THRESHOLD, SmartTurn
from services.asr.transcriber import Transcription, WhisperTranscriber
from services.asr.turn_end import reads_complete
from services.asr.vad import (
    FRAME_SAMPLES,
    Endpointer,
    EndReason,
    Event,
    SileroVad,
    SpeechEnd,
    SpeechPause,
    SpeechResume,
    SpeechStart,
)
from voice_agent.audio import ASR_SAMPLE_RATE, StreamResampler, check_pcm16_chunk, pcm16_to_float, samples_to_ms
from voice_agent.contract import MAX_CHUNK_MS
from voice_agent.errors import InvalidArgument
from voice_agent.inference import InferencePool
from voice_agent.metrics import init_labels, latency_histogram
from voice_agent.telemetry import context_from, tracer, wall_ns
from voice_agent.v1 import asr_pb2

log = logging.getLogger("services.asr")
T = TypeVar("T")

FINAL_PRIORITY = 0
# A pause's transcript may become the final, or decide the end of the turn: it queues as a final does.
PAUSE_PRIORITY = FINAL_PRIORITY
INTERIM_PRIORITY = 1

INFERENCE_SECONDS = latency_histogram("voice_asr_inference_seconds", "Whisper inference time.", ("kind",))
FINAL_LATENCY_SECONDS = latency_histogram(
    "voice_asr_final_latency_seconds", "From the VAD's speech-end decision to the final transcript."
)
PAUSE_TRANSCRIPTS = Counter(
    "voice_asr_pause_transcripts_total",
    "Pause transcriptions by what became of them: reused as the final, out of date (the speech resumed), "
    "or unused (the final was transcribed anew).",
    ["outcome"],
)
init_labels(PAUSE_TRANSCRIPTS, ("reused",), ("resumed",), ("unused",))
TURN_VERDICTS = Counter(
    "voice_asr_turn_verdicts_total",
    "Pauses judged by the end-of-turn detector (RecognitionConfig.turn_detector), by verdict.",
    ["detector", "verdict"],
)
init_labels(TURN_VERDICTS, *((d, v) for d in TURN_DETECTORS for v in ("complete", "incomplete")))

END_OF_TURN_SECONDS = latency_histogram(
    "voice_asr_end_of_turn_seconds",
    "Silence waited from the end of speech to the end-of-turn decision (audio time), by what decided it: the"
    " turn detector with the adaptive end of turn (text, smart_turn, both), or the fixed silence wait.",
    ("detector",),
)
init_labels(END_OF_TURN_SECONDS, *((d,) for d in (*TURN_DETECTORS, "silence")))

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


@dataclass
class _Pause:
    """One pause's transcription: a job in the inference pool, then maybe a SpeechPaused event."""

    event: SpeechPause
    window: tuple[int, int]  # the audio transcribed, as sample indices
    audio: np.ndarray
    requested: float  # perf_counter
    # Set by the worker thread as the inference starts: until then, cancelling the job costs nothing.
    started: threading.Event = field(default_factory=threading.Event)
    sent: bool = False  # SpeechPaused went out
    job: asyncio.Task[Transcription | None] = field(init=False)
    # Smart Turn's verdict on the same audio (turn_detector smart_turn or both); None if it failed.
    audio_verdict: asyncio.Task[bool | None] | None = None
    audio_started: threading.Event = field(default_factory=threading.Event)
    judged: bool = False  # the detector's verdict was counted

    def drop(self) -> None:
        """Not needed any more: a job still waiting in the queue never runs; a running one is left to
        finish (cancelling it would free its pool slot while the model is still busy)."""
        if not self.started.is_set():
            self.job.cancel()
        if self.audio_verdict is not None and not self.audio_started.is_set():
            self.audio_verdict.cancel()


class RecognitionStream:
    def __init__(
        self,
        settings: StreamSettings,
        vad: SileroVad,
        transcriber: WhisperTranscriber,
        pool: InferencePool,
        max_utterance_ms: int,
        emit: Callable[[asr_pb2.RecognizeResponse], None],
        *,
        onset_pad_ms: int = 0,
        smart_turn: SmartTurn | None = None,
    ) -> None:
        """``onset_pad_ms``: audio before the speech start that transcriptions get (AsrConfig.onset_pad_ms);
        never less than the stream's speech_pad_ms. ``smart_turn``: the loaded model, needed by the
        turn detectors smart_turn and both."""
        if settings.turn_detector != "text" and smart_turn is None:
            raise InvalidArgument(
                f"turn_detector {settings.turn_detector!r} needs Smart Turn, which this ASR service did not load "
                "(the pipecat-ai package is not installed)"
            )
        self._settings = settings
        self._smart_turn = smart_turn
        self._vad = vad.stream()
        self._endpointer = Endpointer(
            settings.vad_threshold, settings.min_silence_ms, max_utterance_ms, **_endpointing(settings)
        )
        self._transcriber = transcriber
        self._pool = pool
        self._emit = emit
        self._resampler = StreamResampler(settings.sample_rate, ASR_SAMPLE_RATE)
        self._pad = settings.speech_pad_ms * ASR_SAMPLE_RATE // 1000
        self._onset_pad = max(onset_pad_ms * ASR_SAMPLE_RATE // 1000, self._pad)
        self._last_end = 0  # where the last utterance's speech ended (sample index)
        self._interim_step = settings.interim_interval_ms * ASR_SAMPLE_RATE // 1000
        self._history = AudioHistory()
        self._unframed = np.zeros(0, dtype=np.float32)
        self._next_interim_at = 0
        self._interim: asyncio.Task[None] | None = None
        self._pause: _Pause | None = None  # the open utterance's current pause
        self._last_final: asyncio.Task[None] | None = None
        self._tasks: set[asyncio.Task[Any]] = set()
        self._trace_headers: dict[int, dict[str, str]] = {}  # utterance id -> W3C headers of its turn

    def join_trace(self, context: asr_pb2.TraceContext) -> None:
        """The utterance's spans will join the caller's trace (its turn began at SpeechStarted)."""
        if len(self._trace_headers) < 16:  # a caller that never lets an utterance end cannot grow this
            self._trace_headers[context.utterance_id] = dict(context.headers)

    def update(self, update: asr_pb2.RecognitionUpdate) -> None:
        """Applies a RecognitionUpdate; raises InvalidArgument for a value out of range."""
        interval = interim_interval_from_update(update, self._settings)
        if interval is not None:
            self._interim_step = interval * ASR_SAMPLE_RATE // 1000
            # a shorter interval applies to the utterance in progress at once, a longer one from its next interim
            self._next_interim_at = min(self._next_interim_at, self._history.end + self._interim_step)

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
            self._on_event(event)
        start = self._endpointer.utterance_start
        if start is None:
            self._history.forget_before(self._history.end - self._onset_pad - FRAME_SAMPLES)
        elif self._settings.interim_results and self._history.end >= self._next_interim_at and self._pause is None:
            self._maybe_interim(start)  # not in a pause: its transcript says what an interim would

    def _on_event(self, event: Event) -> None:
        if isinstance(event, SpeechStart):
            self._on_start(event)
        elif isinstance(event, SpeechPause):
            self._on_pause(event)
        elif isinstance(event, SpeechResume):
            self._on_resume(event)
        else:
            self._on_end(event)

    def _on_start(self, event: SpeechStart) -> None:
        self._next_interim_at = event.start + self._interim_step
        self._emit(
            asr_pb2.RecognizeResponse(
                speech_started=asr_pb2.SpeechStarted(utterance_id=event.utterance_id, offset_ms=_ms(event.start))
            )
        )

    def _on_end(self, event: SpeechEnd) -> None:
        decided = time.perf_counter()
        if event.reason is EndReason.SILENCE:
            detector = self._settings.turn_detector if self._settings.adaptive_endpointing else "silence"
            END_OF_TURN_SECONDS.labels(detector).observe(_ms(event.decided_at - event.end) / 1000)
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
        window = self._window(event.start, event.end, event.decided_at)
        self._last_end = event.end
        reused = self._take_pause(window)
        audio = reused.audio if reused is not None else self._history.slice(*window)
        self._last_final = self._spawn(self._final(event, audio, decided, self._last_final, reused))

    def _take_pause(self, window: tuple[int, int]) -> _Pause | None:
        """Closes the ending utterance's pause; returns it if the final can be its transcript: the
        same audio exactly (no speech since the pause began, and as much padding)."""
        pause, self._pause = self._pause, None
        if pause is None:
            return None
        if self._settings.reuse_pause_transcript and pause.window == window:
            PAUSE_TRANSCRIPTS.labels("reused").inc()
            return pause
        PAUSE_TRANSCRIPTS.labels("unused").inc()
        pause.drop()
        return None

    # ---- speculative transcripts

    def _on_pause(self, event: SpeechPause) -> None:
        window = self._window(event.start, event.silence_from, event.at)
        pause = _Pause(event, window, self._history.slice(*window), time.perf_counter())
        if self._settings.turn_detector != "text":  # queued first: the end of turn should not wait for Whisper
            pause.audio_verdict = self._spawn(self._audio_verdict(pause))
        pause.job = self._spawn(self._pause_transcript(pause))
        self._pause = pause

    def _on_resume(self, event: SpeechResume) -> None:
        pause, self._pause = self._pause, None
        if pause is None:
            return
        PAUSE_TRANSCRIPTS.labels("resumed").inc()
        if pause.sent:
            resumed = asr_pb2.SpeechResumed(utterance_id=event.utterance_id, offset_ms=_ms(event.at))
            self._emit(asr_pb2.RecognizeResponse(resumed=resumed))
        else:
            pause.drop()  # never announced, so nothing to take back

    async def _pause_transcript(self, pause: _Pause) -> Transcription | None:
        """Transcribes the pause; sends SpeechPaused if the pause is still on. None if inference failed
        (the final then transcribes for itself)."""
        try:
            result = await self._transcribe(PAUSE_PRIORITY, pause.audio, "pause", pause.started)
        except Exception:
            log.exception("pause transcription failed")
            return None
        if self._pause is pause and pause.audio_verdict is not None:
            await asyncio.wait({pause.audio_verdict})  # never raises, even if the verdict was cancelled
        if self._pause is pause:
            self._send_paused(pause, result)
        return result

    async def _audio_verdict(self, pause: _Pause) -> bool | None:
        """Smart Turn on the pause's audio. With turn_detector smart_turn, its verdict decides the end of
        turn at once, without waiting for the transcript. None if inference failed (the text decides)."""
        assert self._smart_turn is not None
        try:
            probability = await self._pool.run(
                PAUSE_PRIORITY, _predict_in_worker, self._smart_turn, pause.audio, pause.audio_started
            )
        except Exception:
            log.exception("Smart Turn failed")
            return None
        complete = probability >= DEFAULT_THRESHOLD
        if self._settings.turn_detector == "smart_turn" and self._pause is pause:
            self._judge(pause, complete)
        return complete

    def _verdict(self, pause: _Pause, text_complete: bool) -> bool:
        """The stream's detector's verdict on the pause, its transcript's and its audio's known."""
        verdict = pause.audio_verdict
        known = verdict is not None and verdict.done() and not verdict.cancelled()
        audio_complete = verdict.result() if known and verdict is not None else None
        if audio_complete is None:  # text only, or Smart Turn failed
            return text_complete
        if self._settings.turn_detector == "smart_turn":
            return audio_complete
        return text_complete and audio_complete

    def _judge(self, pause: _Pause, complete: bool) -> None:
        """The adaptive end of turn's verdict on the pause (once counted per pause)."""
        if not pause.judged:
            pause.judged = True
            TURN_VERDICTS.labels(self._settings.turn_detector, "complete" if complete else "incomplete").inc()
        if self._settings.adaptive_endpointing:
            end = self._endpointer.judge(pause.event, complete)
            if end is not None:  # the silence was already long enough: it was waiting for this verdict
                self._on_end(end)

    def _send_paused(self, pause: _Pause, result: Transcription) -> None:
        event = pause.event
        complete = self._verdict(pause, reads_complete(result.text))
        transcript = self._transcript(event.utterance_id, event.start, event.silence_from, result, pause.requested)
        paused = asr_pb2.SpeechPaused(
            utterance_id=event.utterance_id, offset_ms=_ms(event.silence_from), transcript=transcript, complete=complete
        )
        pause.sent = True
        self._emit(asr_pb2.RecognizeResponse(paused=paused))
        self._judge(pause, complete)

    def _window(self, start: int, end: int, available: int) -> tuple[int, int]:
        """The audio transcribed for speech from ``start`` to ``end``: from the onset pad before it to
        speech_pad_ms after it, as far as it had arrived when the transcription was decided."""
        # Never back into the last utterance's speech: a part after a max_utterance cut starts where
        # the part before ended, and gets speech_pad_ms of it, as before.
        onset = max(start - self._onset_pad, min(start - self._pad, self._last_end))
        return onset, min(end + self._pad, available)

    # ---- interims and finals

    def _maybe_interim(self, start: int) -> None:
        if self._interim is not None or not self._pool.idle:
            return  # best effort: never queue an interim behind other work
        self._next_interim_at = self._history.end + self._interim_step
        utterance_id = self._endpointer.utterance_id
        audio = self._history.slice(*self._window(start, self._history.end, self._history.end))
        self._interim = self._spawn(self._interim_transcript(utterance_id, start, self._history.end, audio))

    async def _interim_transcript(self, utterance_id: int, start: int, end: int, audio: np.ndarray) -> None:
        requested = time.perf_counter()
        try:
            result = await self._transcribe(INTERIM_PRIORITY, audio, "interim")
        finally:
            self._interim = None
        still_open = self._endpointer.in_speech and self._endpointer.utterance_id == utterance_id
        if still_open and self._pause is None and result.text:  # no interim between paused and resumed
            transcript = self._transcript(utterance_id, start, end, result, requested)
            self._emit(asr_pb2.RecognizeResponse(interim=transcript))

    async def _final(
        self,
        event: SpeechEnd,
        audio: np.ndarray,
        decided: float,
        previous: asyncio.Task[None] | None,
        pause: _Pause | None,
    ) -> None:
        result = await pause.job if pause is not None else None  # still running: wait for it, do not start another
        reused = result is not None
        if result is None:
            result = await self._transcribe(FINAL_PRIORITY, audio, "final")
        if previous is not None:
            await previous  # finals leave in utterance order
        FINAL_LATENCY_SECONDS.observe(time.perf_counter() - decided)
        transcript = self._transcript(event.utterance_id, event.start, event.end, result, decided)
        if reused:  # no inference since the end was decided
            transcript.inference_ms, transcript.reused = 0.0, True
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
                "asr.reused": transcript.reused,
            }
        )
        final.end()

    async def _transcribe(
        self, priority: int, audio: np.ndarray, kind: str, started: threading.Event | None = None
    ) -> Transcription:
        language, greedy = self._settings.language, kind == "interim"  # an interim is a preview: greedy is enough
        result = await self._pool.run(
            priority, _transcribe_in_worker, self._transcriber, audio, language, greedy, started
        )
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

    def _spawn(self, coroutine: Coroutine[Any, Any, T]) -> asyncio.Task[T]:
        task = asyncio.create_task(coroutine)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)
        return task


def _transcribe_in_worker(
    transcriber: WhisperTranscriber, audio: np.ndarray, language: str, greedy: bool, started: threading.Event | None
) -> Transcription:
    if started is not None:
        started.set()
    return transcriber.transcribe(audio, language, greedy=greedy)


def _predict_in_worker(smart_turn: SmartTurn, audio: np.ndarray, started: threading.Event) -> float:
    started.set()
    started_at = time.perf_counter()
    probability = smart_turn.predict(audio)
    INFERENCE_SECONDS.labels("smart_turn").observe(time.perf_counter() - started_at)
    return probability


def _endpointing(settings: StreamSettings) -> dict[str, int | None]:
    """The endpointer's pause and adaptive settings. A pause is transcribed with the padding the final
    would have, so it is noticed no sooner than speech_pad_ms into the silence (the endpointer also
    clamps it to the end-of-turn silence)."""
    if not settings.speculative_transcripts:
        return {"pause_ms": None, "incomplete_silence_ms": None}
    adaptive = settings.adaptive_endpointing
    return {
        "pause_ms": max(settings.pause_ms, settings.speech_pad_ms),
        "incomplete_silence_ms": settings.incomplete_silence_ms if adaptive else None,
    }
