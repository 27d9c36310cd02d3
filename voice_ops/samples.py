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


@dataclass(frozen=True)
class PausedSample(SpokenSample):
    """A sample spoken in parts with silence between them; ``pauses`` are those silences, in ms."""

    parts: tuple[str, ...] = ()
    pauses: tuple[tuple[int, int], ...] = ()

    @property
    def last_part_start_ms(self) -> int:
        """Where the last part's speech begins: a final transcript decided before it cut the speaker off."""
        return self.pauses[-1][1] if self.pauses else self.speech_start_ms


# Utterances with a pause in the middle of the sentence, after a word that cannot end it (an article, a
# preposition, a conjunction, a possessive): the adaptive end of turn must wait them out. Each is two parts,
# spoken with MID_SENTENCE_PAUSE_MS of silence between them by ``speak_with_pauses``. Whisper tiny.en gets
# every first part's last word right, so that the set measures the end of turn, not recognition: it
# mishears some others of espeak's (its sentence-final "talk about" comes out as "talk him out.", which
# reads complete, and would end the turn).
MID_SENTENCE_PAUSE_MS = 300
PAUSE_SET: tuple[tuple[str, ...], ...] = (
    ("I want to tell you about", "my presentation tomorrow"),
    ("My manager said that", "I should speak more slowly"),
    ("Can you help me with", "the opening of my talk"),
    ("I get nervous when", "people look at me"),
    ("I practiced it for", "three hours yesterday"),
    ("The hardest part is", "the question and answer session"),
    ("I would like to", "sound more confident"),
    ("Yesterday I talked to", "my team about the deadline"),
    ("I am worried because", "the audience is very senior"),
    ("Please give me feedback on", "my introduction"),
)
# Complete questions: the adaptive end of turn ends these after min_silence_ms.
COMPLETE_QUESTIONS: tuple[str, ...] = (
    "Can you help me with my presentation?",
    "How can I sound more confident?",
    "What should I do next?",
)


def speak(
    text: str,
    *,
    sample_rate: int = 16_000,
    lead_ms: int = 500,
    tail_ms: int = 1000,
    words_per_minute: int = 165,
    voice: str = "en-us",
) -> SpokenSample:
    """``text`` spoken by espeak-ng (``voice``: any of ``espeak-ng --voices``, with a +variant such as
    "en-gb+f3"), trimmed, then padded with silence."""
    speech = _speech(text, sample_rate, words_per_minute, voice)
    silence = b"\0" * PCM16_SAMPLE_BYTES
    lead = silence * (sample_rate * lead_ms // 1000)
    tail = silence * (sample_rate * tail_ms // 1000)
    speech_ms = samples_to_ms(len(speech) // PCM16_SAMPLE_BYTES, sample_rate)
    audio = Pcm16Audio(lead + speech + tail, sample_rate)
    return SpokenSample(text, audio, lead_ms, lead_ms + speech_ms)


def speak_with_pauses(
    parts: tuple[str, ...] | list[str],
    *,
    pause_ms: int = MID_SENTENCE_PAUSE_MS,
    sample_rate: int = 16_000,
    lead_ms: int = 500,
    tail_ms: int = 1000,
    words_per_minute: int = 165,
) -> PausedSample:
    """``parts`` spoken one by one (each trimmed, as ``speak`` does) with ``pause_ms`` of silence
    between them, then padded with silence. Each part ends with espeak's sentence-final fall in pitch,
    as a hesitating speaker's often does."""
    silence = b"\0" * PCM16_SAMPLE_BYTES
    data = silence * (sample_rate * lead_ms // 1000)
    pauses = []
    for index, part in enumerate(parts):
        if index:
            pause_start = samples_to_ms(len(data) // PCM16_SAMPLE_BYTES, sample_rate)
            data += silence * (sample_rate * pause_ms // 1000)
            pauses.append((pause_start, samples_to_ms(len(data) // PCM16_SAMPLE_BYTES, sample_rate)))
        data += _speech(part, sample_rate, words_per_minute)
    speech_end_ms = samples_to_ms(len(data) // PCM16_SAMPLE_BYTES, sample_rate)
    data += silence * (sample_rate * tail_ms // 1000)
    text = " ".join(parts)
    audio = Pcm16Audio(data, sample_rate)
    return PausedSample(text, audio, lead_ms, speech_end_ms, parts=tuple(parts), pauses=tuple(pauses))


def _speech(text: str, sample_rate: int, words_per_minute: int, voice: str = "en-us") -> bytes:
    """espeak-ng's PCM16 for ``text``, with the silence at each end trimmed off."""
    with tempfile.TemporaryDirectory() as tmp:
        raw, out = Path(tmp) / "raw.wav", Path(tmp) / "out.wav"
        subprocess.run(
            ["espeak-ng", "-v", voice, "-s", str(words_per_minute), "-w", str(raw), text],
            check=True,
            capture_output=True,
        )
        subprocess.run(
            ["sox", str(raw), "-r", str(sample_rate), "-b", "16", "-c", "1", str(out), *_TRIM],
            check=True,
            capture_output=True,
        )
        return read_wav(out).data


RECORDED_CALL_PACKAGE = "pyannote-audio"


def recorded_turns(*, lead_ms: int = 300, tail_ms: int = 1000) -> list[SpokenSample]:
    """Real human speech: each speaker turn of the telephone call that the ``pyannote-audio`` wheel ships
    as its sample (30 s, two speakers, 16 kHz, with an STM transcript), cut at its transcript's times
    and padded with silence. ``make setup`` installs that wheel with ``--no-deps``, for these files only."""
    folder = _package_folder(RECORDED_CALL_PACKAGE, "sample/sample.wav")
    call = read_wav(folder / "sample.wav")
    lines = [line.split(maxsplit=5) for line in (folder / "sample.stm").read_text().splitlines() if line.strip()]
    turns: list[tuple[str, float, float, str]] = []  # speaker, start s, end s, text
    for _, _, speaker, start, end, text in lines:
        if turns and turns[-1][0] == speaker:
            turns[-1] = (speaker, turns[-1][1], float(end), f"{turns[-1][3]} {text}")
        else:
            turns.append((speaker, float(start), float(end), text))
    silence = b"\0" * PCM16_SAMPLE_BYTES
    lead, tail = (silence * (call.sample_rate * ms // 1000) for ms in (lead_ms, tail_ms))
    samples = []
    for _, start, end, text in turns:
        first, last = (int(seconds * call.sample_rate) * PCM16_SAMPLE_BYTES for seconds in (start, end))
        speech = call.data[first:last]
        speech_ms = samples_to_ms(len(speech) // PCM16_SAMPLE_BYTES, call.sample_rate)
        audio = Pcm16Audio(lead + speech + tail, call.sample_rate)
        samples.append(SpokenSample(text, audio, lead_ms, lead_ms + speech_ms))
    return samples


def _package_folder(distribution: str, member: str) -> Path:
    """The folder of ``member`` inside an installed distribution, found without importing it."""
    from importlib import metadata

    try:
        files = metadata.files(distribution) or []
    except metadata.PackageNotFoundError as error:
        raise FileNotFoundError(f"{distribution} is not installed: run `make setup`") from error
    for file in files:
        if str(file).endswith(member):
            return Path(str(file.locate())).parent
    raise FileNotFoundError(f"{member} is not in {distribution}")


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


_SPELLINGS = {"ok": "okay", "mr": "mister", "mrs": "missus", "dr": "doctor"}
_TIME = re.compile(r"\b(\d{1,2})[:.](\d{2})\b")  # Whisper writes "seven thirty" as 7.30 or 7:30
_AT_TIME = re.compile(r"\bat (\d{1,2})([0-5]\d)\b")  # ... and "at seven thirty" as "at 730"
_MONEY = re.compile(r"\$(\d[\d,]*(?:\.\d+)?)")
_NUMBER = re.compile(r"\d[\d,]*(?:\.\d+)?")


def _spoken_number(digits: str) -> str:
    """A number as words ("62,000" -> "sixty two thousand"), the way a reference transcript spells it."""
    from num2words import num2words

    value = float(digits.replace(",", "")) if "." in digits else int(digits.replace(",", ""))
    return num2words(value).replace("-", " ").replace(",", "")


def normalize(text: str) -> str:
    """Lower case, no punctuation, numbers, times and sums of money in words (Whisper writes "ten of
    clubs" as "10 of clubs" and "nine hundred and fifty dollars" as "$950"), one spelling of "okay"."""
    text = text.lower().replace("o.k.", "okay").replace("%", " percent")
    text = _AT_TIME.sub(r"at \1:\2", text)
    text = _TIME.sub(lambda m: f"{m.group(1)} {m.group(2)}" if m.group(2) != "00" else m.group(1), text)
    text = _MONEY.sub(lambda m: f"{m.group(1)} dollars", text)
    text = _NUMBER.sub(lambda m: f" {_spoken_number(m.group(0))} ", text)
    text = re.sub(r"[^a-z' ]+", " ", text.replace("-", " "))
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
        raise SystemExit("usage: python -m voice_ops.samples TEXT OUT.wav")
    save(speak(sys.argv[1]), sys.argv[2])
