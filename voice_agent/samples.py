"""Spoken test material: English utterances made with espeak-ng and sox, with
known silences around the speech, and the WER used to score transcripts.

Used by the test suite, the benchmarks and ``make demo``. Needs the Debian
packages espeak-ng and sox (``make setup`` installs them).
"""

from __future__ import annotations

import re
import subprocess
import tempfile
from dataclasses import dataclass
from pathlib import Path

from voice_agent.audio import PCM16_SAMPLE_BYTES, Pcm16Audio, read_wav, samples_to_ms, write_wav

# sox trims what is below this level at each end of espeak's output, so that
# the speech starts and ends exactly where the padding says.
_TRIM = ["silence", "1", "0.01", "0.5%", "reverse", "silence", "1", "0.01", "0.5%", "reverse"]


@dataclass(frozen=True)
class SpokenSample:
    text: str
    audio: Pcm16Audio
    speech_start_ms: int
    speech_end_ms: int


def speak(
    text: str, *, sample_rate: int = 16_000, lead_ms: int = 500, tail_ms: int = 1000, words_per_minute: int = 165
) -> SpokenSample:
    """``text`` spoken by espeak-ng, trimmed, then padded with silence."""
    with tempfile.TemporaryDirectory() as tmp:
        raw, out = Path(tmp) / "raw.wav", Path(tmp) / "out.wav"
        subprocess.run(
            ["espeak-ng", "-v", "en-us", "-s", str(words_per_minute), "-w", str(raw), text],
            check=True,
            capture_output=True,
        )
        subprocess.run(
            ["sox", str(raw), "-r", str(sample_rate), "-b", "16", "-c", "1", str(out), *_TRIM],
            check=True,
            capture_output=True,
        )
        speech = read_wav(out)
    silence = b"\0" * PCM16_SAMPLE_BYTES
    lead = silence * (sample_rate * lead_ms // 1000)
    tail = silence * (sample_rate * tail_ms // 1000)
    speech_ms = samples_to_ms(len(speech.data) // PCM16_SAMPLE_BYTES, sample_rate)
    audio = Pcm16Audio(lead + speech.data + tail, sample_rate)
    return SpokenSample(text, audio, lead_ms, lead_ms + speech_ms)


def join(samples: list[SpokenSample]) -> tuple[Pcm16Audio, list[tuple[int, int]]]:
    """One stream of several samples (same rate); returns it and each speech span in ms."""
    data, spans, offset_ms = b"", [], 0
    for sample in samples:
        spans.append((offset_ms + sample.speech_start_ms, offset_ms + sample.speech_end_ms))
        data += sample.audio.data
        offset_ms += sample.audio.duration_ms
    return Pcm16Audio(data, samples[0].audio.sample_rate), spans


def save(sample: SpokenSample, path: str | Path) -> None:
    write_wav(path, sample.audio)


_DIGITS = ["zero", "one", "two", "three", "four", "five", "six", "seven", "eight", "nine"]
_SPELLINGS = {"ok": "okay"}


def normalize(text: str) -> str:
    """Lower case, no punctuation, single digits as words (Whisper writes "3 of clubs"), one spelling of "okay"."""
    text = re.sub(r"\b(\d)\b", lambda m: _DIGITS[int(m.group(1))], text.lower())
    text = re.sub(r"[^a-z0-9' ]+", " ", text.replace("-", " "))
    return " ".join(_SPELLINGS.get(word, word) for word in text.split())


def word_error_rate(reference: str | list[str], hypothesis: str | list[str]) -> float:
    """WER after ``normalize`` on both sides (one pair, or lists scored together)."""
    import jiwer

    refs = [reference] if isinstance(reference, str) else reference
    hyps = [hypothesis] if isinstance(hypothesis, str) else hypothesis
    return float(jiwer.wer([normalize(r) for r in refs], [normalize(h) or "<empty>" for h in hyps]))


if __name__ == "__main__":
    import sys

    if len(sys.argv) != 3:
        raise SystemExit("usage: python -m voice_agent.samples TEXT OUT.wav")
    save(speak(sys.argv[1]), sys.argv[2])
