"""Piper (piper-tts), the fast CPU engine; the embedded voice is en_US joe medium."""

from __future__ import annotations

import logging
from pathlib import Path

import numpy as np
from piper import PiperVoice, SynthesisConfig

from services.tts.engines import REALTIME_VOICES, TtsEngine
from services.tts.models import embedded_piper_model

log = logging.getLogger(__name__)


class PiperEngine(TtsEngine):
    name = "piper"

    def __init__(self, model: str | Path | None, *, device: str = "cpu", threads: int | None = None) -> None:
        model_path = Path(model) if model else embedded_piper_model()
        config_path = Path(f"{model_path}.json")
        for path in (model_path, config_path):
            if not path.is_file():
                raise FileNotFoundError(f"Piper file not found: {path}")
        self._voice = PiperVoice.load(model_path, config_path, use_cuda=device == "cuda")
        if threads:
            log.info("piper-tts sets its own onnxruntime threads; cpu_threads=%d is not applied", threads)
        self.sample_rate = self._voice.config.sample_rate
        speakers = self._voice.config.speaker_id_map or {}
        # A single-speaker model has one voice, named after the model file.
        self._speaker_ids: dict[str, int | None] = dict(speakers) or {model_path.name.removesuffix(".onnx"): None}
        self.voices = sorted(self._speaker_ids)
        self.default_voice = self.voices[0]
        # The Realtime API's voice names: a Piper model is one voice (the embedded en_US-joe-medium), or
        # speakers without a known gender, so every name speaks with the default.
        self.voice_aliases = dict.fromkeys(REALTIME_VOICES, self.default_voice)
        log.info("Piper %s at %d Hz", model_path.name, self.sample_rate)

    def synthesize(self, text: str, voice: str, speed: float) -> np.ndarray:
        config = SynthesisConfig(speaker_id=self._speaker_ids[voice], length_scale=1.0 / speed)
        pieces = [chunk.audio_float_array for chunk in self._voice.synthesize(text, config)]
        return np.concatenate(pieces).astype(np.float32) if pieces else np.zeros(0, dtype=np.float32)
