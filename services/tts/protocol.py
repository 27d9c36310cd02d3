"""Per-request settings: the SynthesisConfig message read, defaulted and validated."""

from __future__ import annotations

from dataclasses import dataclass

from services.tts.config import TtsConfig
from services.tts.engines import TtsEngine
from voice_agent.audio import TTS_OUTPUT_RATES
from voice_agent.errors import InvalidArgument, quoted
from voice_agent.v1 import tts_pb2

MIN_SPEED, MAX_SPEED = 0.5, 2.0


@dataclass(frozen=True)
class SynthesisSettings:
    voice: str
    sample_rate: int
    speed: float
    first_phrase_words: int


def settings_from_config(config: tts_pb2.SynthesisConfig, engine: TtsEngine, service: TtsConfig) -> SynthesisSettings:
    """Raises InvalidArgument naming the problem."""
    if config.engine and config.engine != engine.name:
        raise InvalidArgument(f"engine {quoted(config.engine)} was asked for, but this server runs {engine.name!r}")
    voice = resolve_voice(config.voice or service.voice or engine.default_voice, engine)
    sample_rate = config.sample_rate_hz or engine.sample_rate
    if sample_rate not in TTS_OUTPUT_RATES:
        raise InvalidArgument(
            f"unsupported output rate {sample_rate} Hz: use 0 (the engine's {engine.sample_rate}) or one of "
            + ", ".join(map(str, TTS_OUTPUT_RATES))
        )
    speed = config.speed or 1.0
    if not MIN_SPEED <= speed <= MAX_SPEED:
        raise InvalidArgument(f"speed {speed} is out of range [{MIN_SPEED}, {MAX_SPEED}]")
    words = config.first_phrase_words if config.HasField("first_phrase_words") else service.first_phrase_words
    if not 1 <= words <= 50:
        raise InvalidArgument(f"first_phrase_words {words} is out of range [1, 50]")
    return SynthesisSettings(voice, sample_rate, speed, words)


def resolve_voice(name: str, engine: TtsEngine) -> str:
    """The engine's voice that ``name`` (a voice, or a Realtime API voice name) stands for; InvalidArgument if none."""
    voice = engine.resolve_voice(name)
    if voice is None:
        raise InvalidArgument(
            f"unknown voice {quoted(name)}: {engine.name} has {', '.join(engine.voices)}; "
            f"or a Realtime API voice name, one of {', '.join(engine.voice_aliases)}"
        )
    return voice


def check_text_length(total_chars: int, limit: int) -> None:
    if total_chars > limit:
        raise InvalidArgument(f"text of {total_chars} characters is over the limit of {limit}")
