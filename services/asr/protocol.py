"""Per-stream settings: the RecognitionConfig message read, defaulted and validated."""

from __future__ import annotations

from dataclasses import dataclass

from services.asr.config import TURN_DETECTORS
from voice_agent.audio import check_format
from voice_agent.contract import (
    DEFAULT_INCOMPLETE_SILENCE_MS,
    DEFAULT_INTERIM_INTERVAL_MS,
    DEFAULT_MIN_SILENCE_MS,
    INTERIM_INTERVAL_RANGE_MS,
    MAX_SILENCE_MS,
)
from voice_agent.errors import InvalidArgument, quoted
from voice_agent.v1 import asr_pb2

DEFAULT_VAD_THRESHOLD = 0.5
DEFAULT_SPEECH_PAD_MS = 100
DEFAULT_PAUSE_MS = 64  # two 32 ms frames of silence
DEFAULT_TURN_DETECTOR = "text"


@dataclass(frozen=True)
class StreamSettings:
    sample_rate: int
    language: str
    vad_threshold: float
    min_silence_ms: int
    speech_pad_ms: int
    interim_results: bool
    interim_interval_ms: int
    # Latency techniques (docs/performance/latency-techniques.md): off unless the client asks.
    speculative_transcripts: bool = False
    pause_ms: int = DEFAULT_PAUSE_MS
    reuse_pause_transcript: bool = False
    adaptive_endpointing: bool = False
    incomplete_silence_ms: int = DEFAULT_INCOMPLETE_SILENCE_MS
    turn_detector: str = DEFAULT_TURN_DETECTOR


def _in_range(name: str, value: float, low: float, high: float, *, open_ends: bool = False) -> None:
    inside = low < value < high if open_ends else low <= value <= high
    if not inside:
        bounds = f"({low}, {high})" if open_ends else f"[{low}, {high}]"
        raise InvalidArgument(f"{name} {value} is out of range {bounds}")


def settings_from_request(
    request: asr_pb2.RecognizeRequest,
    default_language: str,
    languages: list[str],
    default_turn_detector: str = DEFAULT_TURN_DETECTOR,
) -> StreamSettings:
    """Validates the stream's first message; raises InvalidArgument naming the problem."""
    if request.WhichOneof("request") != "config":
        raise InvalidArgument("the first message of a Recognize stream must be a RecognitionConfig (field 'config')")
    config = request.config
    if not config.HasField("audio"):
        raise InvalidArgument("RecognitionConfig.audio is required: give the encoding and sample_rate_hz")
    sample_rate = check_format(config.audio)  # resampled to 16 kHz by the stream
    language = config.language or default_language
    if language not in languages:
        shown = ", ".join(languages[:20]) + (" ..." if len(languages) > 20 else "")
        raise InvalidArgument(f"language {quoted(language)} is not supported by the loaded model: use one of {shown}")
    settings = StreamSettings(
        sample_rate=sample_rate,
        language=language,
        vad_threshold=config.vad_threshold if config.HasField("vad_threshold") else DEFAULT_VAD_THRESHOLD,
        min_silence_ms=config.min_silence_ms if config.HasField("min_silence_ms") else DEFAULT_MIN_SILENCE_MS,
        speech_pad_ms=config.speech_pad_ms if config.HasField("speech_pad_ms") else DEFAULT_SPEECH_PAD_MS,
        interim_results=config.interim_results if config.HasField("interim_results") else True,
        interim_interval_ms=(
            config.interim_interval_ms if config.HasField("interim_interval_ms") else DEFAULT_INTERIM_INTERVAL_MS
        ),
        turn_detector=config.turn_detector if config.HasField("turn_detector") else default_turn_detector,
        **_latency_settings(config),
    )
    _in_range("vad_threshold", settings.vad_threshold, 0.0, 1.0, open_ends=True)
    _in_range("min_silence_ms", settings.min_silence_ms, 0, MAX_SILENCE_MS)
    _in_range("speech_pad_ms", settings.speech_pad_ms, 0, 1000)
    _in_range("interim_interval_ms", settings.interim_interval_ms, *INTERIM_INTERVAL_RANGE_MS)
    _check_latency_settings(settings)
    return settings


def _latency_settings(config: asr_pb2.RecognitionConfig) -> dict[str, bool | int]:
    min_silence_ms = config.min_silence_ms if config.HasField("min_silence_ms") else DEFAULT_MIN_SILENCE_MS
    return {
        "speculative_transcripts": config.speculative_transcripts,
        "pause_ms": config.pause_ms if config.HasField("pause_ms") else DEFAULT_PAUSE_MS,
        "reuse_pause_transcript": config.reuse_pause_transcript,
        "adaptive_endpointing": config.adaptive_endpointing,
        # Unset, it is never shorter than the end-of-turn silence it extends.
        "incomplete_silence_ms": (
            config.incomplete_silence_ms
            if config.HasField("incomplete_silence_ms")
            else max(DEFAULT_INCOMPLETE_SILENCE_MS, min_silence_ms)
        ),
    }


def _check_latency_settings(settings: StreamSettings) -> None:
    _in_range("pause_ms", settings.pause_ms, 32, 1000)
    if settings.turn_detector not in TURN_DETECTORS:
        raise InvalidArgument(
            f"turn_detector {quoted(settings.turn_detector)} is not one of {', '.join(TURN_DETECTORS)}"
        )
    _in_range("incomplete_silence_ms", settings.incomplete_silence_ms, settings.min_silence_ms, MAX_SILENCE_MS)
    for name in ("reuse_pause_transcript", "adaptive_endpointing"):
        if getattr(settings, name) and not settings.speculative_transcripts:
            raise InvalidArgument(f"{name} needs speculative_transcripts: it works on the pause transcripts")


def interim_interval_from_update(update: asr_pb2.RecognitionUpdate, settings: StreamSettings) -> int | None:
    """The interim interval a RecognitionUpdate asks for (0: the stream's own), or None when it leaves it."""
    if not update.HasField("interim_interval_ms"):
        return None
    if update.interim_interval_ms == 0:
        return settings.interim_interval_ms
    _in_range("interim_interval_ms", update.interim_interval_ms, *INTERIM_INTERVAL_RANGE_MS)
    return update.interim_interval_ms
