"""Synthesis engines behind one small interface; an operator picks one by configuration."""

from __future__ import annotations

from abc import ABC, abstractmethod
from typing import ClassVar

import numpy as np

from services.tts.config import TtsConfig

#: The voice names of OpenAI's Realtime API. Its clients send them (the Agents SDK's default is
#: 'ash'), so every engine maps each onto a voice it has: its ``voice_aliases``, built from a table
#: in the engine's own module (docs/architecture.md shows the tables).
REALTIME_VOICES = ("alloy", "ash", "ballad", "coral", "echo", "sage", "shimmer", "verse", "marin", "cedar")


class TtsEngine(ABC):
    """One loaded model. ``synthesize`` is blocking and thread-safe."""

    name: ClassVar[str]
    sample_rate: int
    voices: list[str]
    default_voice: str
    #: Every name of REALTIME_VOICES → one of ``voices``.
    voice_aliases: dict[str, str]

    def resolve_voice(self, name: str) -> str | None:
        """The voice ``name`` stands for: itself when the engine has it, else its alias's; None if neither."""
        return name if name in self.voices else self.voice_aliases.get(name)

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
