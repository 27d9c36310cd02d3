"""Voice activity detection: Silero VAD on ONNX Runtime, and endpointing.

The Silero model comes from the ``silero-vad`` package's data folder (see
``services.asr.models``).
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import Enum
from pathlib import Path

import numpy as np
import onnxruntime as ort

from services.asr.models import silero_vad_path
from voice_agent.audio import ASR_SAMPLE_RATE

FRAME_SAMPLES = 512  # 32 ms at 16 kHz, the frame Silero is trained on
CONTEXT_SAMPLES = 64  # the model sees the previous frame's last 64 samples too
# Hysteresis, as in Silero's own iterator: speech ends only below threshold - 0.15.
NEGATIVE_THRESHOLD_GAP = 0.15


class SileroVad:
    """The loaded model, shared by every stream (ONNX Runtime sessions are thread-safe)."""

    def __init__(self, model_path: str | Path | None = None) -> None:
        options = ort.SessionOptions()
        # One thread: a frame costs ~0.15 ms, far below the cost of waking a pool.
        options.intra_op_num_threads = 1
        options.inter_op_num_threads = 1
        self._session = ort.InferenceSession(
            str(model_path or silero_vad_path()), options, providers=["CPUExecutionProvider"]
        )
        self._sample_rate = np.array(ASR_SAMPLE_RATE, dtype=np.int64)

    def stream(self) -> VadStream:
        return VadStream(self)

    def _run(self, audio: np.ndarray, state: np.ndarray) -> tuple[float, np.ndarray]:
        probability, new_state = self._session.run(None, {"input": audio, "state": state, "sr": self._sample_rate})
        return float(probability[0][0]), new_state


class VadStream:
    """One stream's recurrent state; feed it consecutive 512-sample frames."""

    def __init__(self, vad: SileroVad) -> None:
        self._vad = vad
        self._state = np.zeros((2, 1, 128), dtype=np.float32)
        self._context = np.zeros((1, CONTEXT_SAMPLES), dtype=np.float32)

    def probability(self, frame: np.ndarray) -> float:
        audio = np.concatenate([self._context, frame.reshape(1, FRAME_SAMPLES)], axis=1)
        probability, self._state = self._vad._run(audio, self._state)
        self._context = audio[:, -CONTEXT_SAMPLES:]
        return probability


class EndReason(Enum):
    SILENCE = "silence"
    MAX_DURATION = "max_duration"
    END_OF_STREAM = "end_of_stream"


@dataclass(frozen=True)
class SpeechStart:
    utterance_id: int
    start: int  # sample index, 16 kHz


@dataclass(frozen=True)
class SpeechEnd:
    utterance_id: int
    start: int
    end: int  # where speech ends in the audio
    decided_at: int  # how much audio had arrived when the end was decided
    reason: EndReason


@dataclass(frozen=True)
class SpeechPause:
    """The open utterance has been silent for the pause length (once per stretch of silence)."""

    utterance_id: int
    start: int  # where the utterance's speech began
    silence_from: int  # where the silence began: the speech end, should the utterance end here
    at: int  # how much audio had arrived when the pause was noticed


@dataclass(frozen=True)
class SpeechResume:
    """Speech came back after a SpeechPause, within the same utterance."""

    utterance_id: int
    at: int  # where the speech resumed


Event = SpeechStart | SpeechEnd | SpeechPause | SpeechResume


class Endpointer:
    """Turns per-frame speech probabilities into utterance start and end events.

    Speech starts on the first frame at or above the threshold. It ends where
    the probability first fell below the lower (hysteresis) threshold, once
    that silence has lasted ``min_silence_ms``; a frame back above the
    threshold cancels the pending end. Positions are sample indices at 16 kHz.

    With ``pause_ms``, a silence of that length inside an utterance is a
    SpeechPause (at most one per stretch of silence; clamped to the end-of-turn
    silence, so that every end by silence follows a pause), and speech after
    it a SpeechResume. With ``incomplete_silence_ms`` as well (the adaptive end
    of turn), ``min_silence_ms`` ends the utterance only once the pause has been
    judged complete (``judge``); otherwise the end waits ``incomplete_silence_ms``,
    which also bounds the wait for a judgement that has not come yet.
    """

    def __init__(
        self,
        threshold: float,
        min_silence_ms: int,
        max_utterance_ms: int,
        *,
        pause_ms: int | None = None,
        incomplete_silence_ms: int | None = None,
    ) -> None:
        if incomplete_silence_ms is not None and (pause_ms is None or incomplete_silence_ms < min_silence_ms):
            raise ValueError("the adaptive end of turn needs pauses, and an incomplete silence >= min_silence_ms")
        self._threshold = threshold
        self._negative_threshold = max(threshold - NEGATIVE_THRESHOLD_GAP, 0.01)
        self._min_silence = _samples(min_silence_ms)
        self._max_utterance = _samples(max_utterance_ms)
        self._pause = None if pause_ms is None else min(_samples(pause_ms), self._min_silence)
        self._incomplete_silence = None if incomplete_silence_ms is None else _samples(incomplete_silence_ms)
        self._utterance_id = 0
        self._start: int | None = None  # set while in speech
        self._silence_from: int | None = None
        self._paused = False  # a SpeechPause was sent for the current silence
        self._complete: bool | None = None  # the current pause's judgement, once known
        self._frame_end = 0

    @property
    def in_speech(self) -> bool:
        return self._start is not None

    @property
    def utterance_start(self) -> int | None:
        return self._start

    @property
    def utterance_id(self) -> int:
        """The id of the open utterance, or of the last one when none is open."""
        return self._utterance_id

    @property
    def paused(self) -> bool:
        """The open utterance is in a pause (a SpeechPause was sent and no speech came since)."""
        return self._paused

    def push(self, probability: float, frame_end: int) -> list[Event]:
        """Feeds the probability of the frame that ends at sample ``frame_end``."""
        self._frame_end = frame_end
        frame_start = frame_end - FRAME_SAMPLES
        if self._start is None:
            return [self._begin(frame_start)] if probability >= self._threshold else []
        events: list[Event] = []
        if probability >= self._threshold:
            if self._paused:
                events.append(SpeechResume(self._utterance_id, frame_start))
            self._silence_from, self._paused, self._complete = None, False, None
        elif probability < self._negative_threshold and self._silence_from is None:
            self._silence_from = frame_start
        if self._silence_from is not None:
            silence = frame_end - self._silence_from
            if self._pause is not None and not self._paused and silence >= self._pause:
                self._paused = True
                events.append(SpeechPause(self._utterance_id, self._start, self._silence_from, frame_end))
            if silence >= self._end_silence():
                return [*events, self._end(self._silence_from, frame_end, EndReason.SILENCE)]
        if frame_end - self._start >= self._max_utterance:
            still_speaking = self._silence_from is None
            events.append(self._end(frame_end, frame_end, EndReason.MAX_DURATION))
            if still_speaking:
                events.append(self._begin(frame_end))
        return events

    def judge(self, pause: SpeechPause, complete: bool) -> SpeechEnd | None:
        """The adaptive end of turn's verdict on ``pause``'s transcript; ignored unless that pause is
        still current. Returns the end of the utterance when the silence so far is already long enough."""
        current = self._paused and (pause.utterance_id, pause.silence_from) == (self._utterance_id, self._silence_from)
        if not current or self._silence_from is None:
            return None
        self._complete = complete
        if self._frame_end - self._silence_from >= self._end_silence():
            return self._end(self._silence_from, self._frame_end, EndReason.SILENCE)
        return None

    def finish(self, stream_end: int) -> SpeechEnd | None:
        """Ends an utterance still open when the audio stops."""
        if self._start is None:
            return None
        end = self._silence_from if self._silence_from is not None else stream_end
        return self._end(end, stream_end, EndReason.END_OF_STREAM)

    def _end_silence(self) -> int:
        """The silence that ends the utterance now: the adaptive end of turn waits longer unless the
        pause's transcript read complete."""
        if self._incomplete_silence is None or self._complete:
            return self._min_silence
        return self._incomplete_silence

    def _begin(self, start: int) -> SpeechStart:
        self._utterance_id += 1
        self._start, self._silence_from, self._paused, self._complete = start, None, False, None
        return SpeechStart(self._utterance_id, start)

    def _end(self, end: int, decided_at: int, reason: EndReason) -> SpeechEnd:
        assert self._start is not None
        event = SpeechEnd(self._utterance_id, self._start, end, decided_at, reason)
        self._start, self._silence_from, self._paused, self._complete = None, None, False, None
        return event


def _samples(ms: int) -> int:
    return ms * ASR_SAMPLE_RATE // 1000
