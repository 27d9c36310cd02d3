"""Makes the recorded user turns under loadtest/audio/ (run once; the WAVs are committed).

espeak-ng speech through voice_ops.samples.speak: 16 kHz mono PCM16, 300 ms of
silence before the speech and none after it (the load generators stream silence
between turns, as a microphone does). ``question-*.wav`` are the turns a user
asks; ``barge-in.wav`` is what a user says over the agent when a barge-in is asked for.

    .venv/bin/python loadtest/make_audio.py
"""

from __future__ import annotations

from pathlib import Path

from voice_ops.samples import save, speak

AUDIO_DIR = Path(__file__).resolve().parent / "audio"
TURNS = {
    "question-1.wav": "How can I sound more confident in meetings?",
    "question-2.wav": "What should I say when they ask about my biggest weakness?",
    "question-3.wav": "How do I ask my manager for a raise?",
    "barge-in.wav": "Wait, I have a different question.",
}


def main() -> None:
    AUDIO_DIR.mkdir(exist_ok=True)
    for name, text in TURNS.items():
        sample = speak(text, sample_rate=16_000, lead_ms=300, tail_ms=0)
        save(sample, AUDIO_DIR / name)
        print(f"{name}: {sample.audio.duration_ms} ms, {text!r}")


if __name__ == "__main__":
    main()
