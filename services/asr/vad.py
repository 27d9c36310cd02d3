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


class Endpointer:
    """Turns per-frame speech probabilities into utterance start and end events.

    Speech starts on the first frame at or above the threshold. It ends where
    the probability first fell below the lower (hysteresis) threshold, once
    that silence has lasted ``min_silence_ms``; a frame back above the
    threshold cancels the pending end. Positions are sample indices at 16 kHz.
    """

    def __init__(self, threshold: float, min_silence_ms: int, max_utterance_ms: int) -> None:
        self._threshold = threshold
        self._negative_threshold = max(threshold - NEGATIVE_THRESHOLD_GAP, 0.01)
        self._min_silence = min_silence_ms * ASR_SAMPLE_RATE // 1000
        self._max_utterance = max_utterance_ms * ASR_SAMPLE_RATE // 1000
        self._utterance_id = 0
        self._start: int | None = None  # set while in speech
        self._silence_from: int | None = None

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

    def push(self, probability: float, frame_end: int) -> list[SpeechStart | SpeechEnd]:
        """Feeds the probability of the frame that ends at sample ``frame_end``."""
        frame_start = frame_end - FRAME_SAMPLES
        if self._start is None:
            return [self._begin(frame_start)] if probability >= self._threshold else []
        if probability >= self._threshold:
            self._silence_from = None
        elif probability < self._negative_threshold and self._silence_from is None:
            self._silence_from = frame_start
        if self._silence_from is not None and frame_end - self._silence_from >= self._min_silence:
            return [self._end(self._silence_from, frame_end, EndReason.SILENCE)]
        if frame_end - self._start >= self._max_utterance:
            still_speaking = self._silence_from is None
            events: list[SpeechStart | SpeechEnd] = [self._end(frame_end, frame_end, EndReason.MAX_DURATION)]
            if still_speaking:
                events.append(self._begin(frame_end))
            return events
        return []

    def finish(self, stream_end: int) -> SpeechEnd | None:
        """Ends an utterance still open when the audio stops."""
        if self._start is None:
            return None
        end = self._silence_from if self._silence_from is not None else stream_end
        return self._end(end, stream_end, EndReason.END_OF_STREAM)

    def _begin(self, start: int) -> SpeechStart:
        self._utterance_id += 1
        self._start, self._silence_from = start, None
        return SpeechStart(self._utterance_id, start)

    def _end(self, end: int, decided_at: int, reason: EndReason) -> SpeechEnd:
        assert self._start is not None
        event = SpeechEnd(self._utterance_id, self._start, end, decided_at, reason)
        self._start, self._silence_from = None, None
        return event
