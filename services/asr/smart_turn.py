"""Smart Turn v3.2: Pipecat's audio end-of-turn model, on ONNX Runtime.

The model (8 MB, BSD-2, a Whisper-tiny encoder with a classifier head) ships as
``smart-turn-v3.2-cpu.onnx`` inside the ``pipecat-ai`` wheel, which ``make setup``
installs with ``--no-deps``: only the file is read, pipecat is never imported
(its ``__init__`` imports loguru and more).

Its input is what Pipecat's ``LocalSmartTurnAnalyzerV3`` gives it: the last 8 s
of the turn's 16 kHz audio, zero-padded at the start when shorter, normalised to
zero mean and unit variance, as Whisper log-mel features (80 x 800). Its output
is the probability that the turn is complete. The features below are Pipecat's
numpy port of ``transformers.WhisperFeatureExtractor(chunk_length=8)``
(``pipecat/audio/turn/smart_turn/_whisper_features.py``, BSD-2, derived from
Apache-2.0 code of Hugging Face); ``tests/test_smart_turn.py`` checks that they
equal that file's output. faster-whisper's own FeatureExtractor does not do the
waveform normalisation nor drop the last frame, so it is not reused.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import onnxruntime as ort
from numpy.lib.stride_tricks import sliding_window_view

from services.asr.models import smart_turn_path
from voice_agent.audio import ASR_SAMPLE_RATE

WINDOW_SAMPLES = 8 * ASR_SAMPLE_RATE  # the model hears the last 8 s
DEFAULT_THRESHOLD = 0.5  # Pipecat's: complete above it

_N_FFT, _HOP, _N_MELS = 400, 160, 80


def _mel_filters() -> np.ndarray:
    """Slaney-scale, Slaney-normalised triangular filters, (201, 80), as transformers builds Whisper's."""

    def to_mel(hz: np.ndarray) -> np.ndarray:
        mel = 3.0 * hz / 200.0
        log = hz >= 1000.0
        mel[log] = 15.0 + np.log(hz[log] / 1000.0) * (27.0 / np.log(6.4))
        return mel

    def to_hz(mel: np.ndarray) -> np.ndarray:
        hz = 200.0 * mel / 3.0
        log = mel >= 15.0
        hz[log] = 1000.0 * np.exp(np.log(6.4) / 27.0 * (mel[log] - 15.0))
        return hz

    edges = to_mel(np.array([0.0, ASR_SAMPLE_RATE / 2.0]))
    filter_hz = to_hz(np.linspace(edges[0], edges[1], _N_MELS + 2))
    fft_hz = np.linspace(0, ASR_SAMPLE_RATE // 2, _N_FFT // 2 + 1)
    slopes = filter_hz[None, :] - fft_hz[:, None]
    diff = np.diff(filter_hz)
    filters = np.maximum(0.0, np.minimum(-slopes[:, :-2] / diff[:-1], slopes[:, 2:] / diff[1:]))
    return filters * (2.0 / (filter_hz[2:] - filter_hz[:-2]))[None, :]


_WINDOW = np.hanning(_N_FFT + 1)[:-1]  # periodic Hann, as torch.hann_window
_MEL_FILTERS_T = _mel_filters().T


def features(audio: np.ndarray) -> np.ndarray:
    """Whisper log-mel features (80 x 800, float32) of exactly 8 s of 16 kHz audio."""
    x = np.asarray(audio, dtype=np.float32)
    x = (x - x.mean()) / np.sqrt(x.var() + 1e-7)
    padded = np.pad(x.astype(np.float64), (_N_FFT // 2, _N_FFT // 2), mode="reflect")
    frames = sliding_window_view(padded, _N_FFT)[::_HOP]
    power = (np.abs(np.fft.rfft(frames * _WINDOW, axis=-1)) ** 2).T
    log_spec = np.log10(np.maximum(1e-10, _MEL_FILTERS_T @ power))[:, :-1]
    log_spec = np.maximum(log_spec, log_spec.max() - 8.0)
    return ((log_spec + 4.0) / 4.0).astype(np.float32)


def last_window(audio: np.ndarray) -> np.ndarray:
    """The last 8 s of ``audio``, zero-padded at the start when shorter (as Pipecat does)."""
    audio = np.asarray(audio, dtype=np.float32)[-WINDOW_SAMPLES:]
    return np.pad(audio, (WINDOW_SAMPLES - len(audio), 0)) if len(audio) < WINDOW_SAMPLES else audio


class SmartTurn:
    """The loaded model, shared by every stream: ONNX Runtime sessions are thread-safe, so ``predict``
    may run in any worker of the ASR's inference pool."""

    def __init__(self, model_path: str | Path | None = None, *, threads: int = 1) -> None:
        options = ort.SessionOptions()
        options.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
        options.intra_op_num_threads = threads
        options.inter_op_num_threads = 1
        options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
        self.model_path = Path(model_path or smart_turn_path())
        self._session = ort.InferenceSession(str(self.model_path), options, providers=["CPUExecutionProvider"])

    def predict(self, audio: np.ndarray) -> float:
        """The probability that the turn is complete, from the turn's 16 kHz float32 audio so far
        (its speech and the silence after it)."""
        batch = features(last_window(audio))[None]
        (probability,) = self._session.run(None, {"input_features": batch})
        return float(np.asarray(probability).reshape(-1)[0])
