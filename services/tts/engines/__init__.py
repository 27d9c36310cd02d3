"""Synthesis engines behind one small interface; an operator picks one by configuration."""

from __future__ import annotations

from abc import ABC, abstractmethod
from typing import ClassVar

import numpy as np

from services.tts.config import TtsConfig


class TtsEngine(ABC):
    """One loaded model. ``synthesize`` is blocking and thread-safe."""

    name: ClassVar[str]
    sample_rate: int
    voices: list[str]
    default_voice: str

    @abstractmethod
    def synthesize(self, text: str, voice: str, speed: float) -> np.ndarray:
        """Float32 mono audio at ``sample_rate``; empty when nothing in ``text`` can be spoken."""


def load_engine(config: TtsConfig) -> TtsEngine:
    threads = config.cpu_threads or None
    if config.engine == "piper":
        from services.tts.engines.piper import PiperEngine

        return PiperEngine(config.model or None, device=config.device, threads=threads)
    from services.tts.engines.kokoro import KokoroEngine

    return KokoroEngine(config.model or None, config.voices or None, device=config.device, threads=threads)
