"""The recorded human speech from PyPI packages (voice_ops.human_speech): what is there, where each
utterance's speech lies, and that each paused sentence's cut lies at a word boundary."""

from __future__ import annotations

import re

import numpy as np
import pytest

from services.asr.transcriber import WhisperTranscriber
from voice_agent.audio import pcm16_to_float
from voice_ops.human_speech import (
    CLAUSE,
    CUTS,
    FUNCTION_WORD,
    SAMPLE_RATE,
    HumanSample,
    complete_utterances,
    describe,
    paused_sentences,
)


def _samples(sample: HumanSample, start_ms: int, end_ms: int) -> np.ndarray:
    return np.frombuffer(sample.audio.data, dtype=np.int16)[start_ms * 16 : end_ms * 16]


@pytest.mark.unit
def test_the_packages_give_fifteen_utterances_of_four_speakers_with_their_references() -> None:
    found = describe()
    assert found["utterances"] == 15
    assert sum(len(source["speakers"]) for source in found["by_source"].values()) == 4
    samples = complete_utterances()
    assert [s.text for s in samples][:2] == ["Hello?", "Hello?"]
    assert samples[-1].text == "He turned sharply, and faced Gregson across the table."
    assert all(s.audio.sample_rate == SAMPLE_RATE for s in samples)
    assert {s.wideband for s in samples[:13]} == {False} and {s.wideband for s in samples[13:]} == {True}


@pytest.mark.unit
def test_an_utterance_is_padded_with_silence_around_its_speech() -> None:
    for sample in complete_utterances(lead_ms=300, tail_ms=1000):
        assert sample.speech_start_ms == 300
        assert sample.audio.duration_ms == sample.speech_end_ms + 1000
        assert not _samples(sample, 0, 300).any() and not _samples(sample, sample.speech_end_ms, 10**9).any()
        assert np.abs(_samples(sample, 300, sample.speech_end_ms)).max() > 1000  # the call is quiet


@pytest.mark.unit
@pytest.mark.parametrize("kind", [FUNCTION_WORD, CLAUSE])
def test_a_paused_sentence_is_the_same_speech_with_silence_at_the_cut(kind: str) -> None:
    whole = {s.text: s for s in complete_utterances()}
    paused = paused_sentences(kind, pause_ms=450)
    assert len(paused) == sum(cut[3] == kind for cut in CUTS) >= 5
    for sample in paused:
        ((start, end),) = sample.pauses
        assert end - start == 450 and sample.cut == kind
        assert " ".join(sample.parts) == sample.text and sample.text in whole
        assert not _samples(sample, start, end).any()
        assert sample.speech_end_ms - sample.speech_start_ms == (
            whole[sample.text].speech_end_ms - whole[sample.text].speech_start_ms + 450
        )
        assert sample.last_part_start_ms == end


@pytest.mark.unit
def test_an_unknown_kind_of_cut_is_refused() -> None:
    with pytest.raises(ValueError, match="kind must be"):
        paused_sentences("breath")


def _words(text: str) -> list[str]:
    return re.sub(r"[^a-z' ]", " ", text.lower()).split()


@pytest.mark.parametrize("kind", [FUNCTION_WORD, CLAUSE])
def test_each_cut_lies_at_a_word_boundary(kind: str, whisper: WhisperTranscriber) -> None:
    """Whisper hears the word before the cut at the end of the first half, or the word after it at the
    start of the second (tiny.en mishears some of the telephone call's words, "in" as "and")."""
    for sample in paused_sentences(kind, pause_ms=300):
        audio = pcm16_to_float(sample.audio.data)
        ((start, end),) = sample.pauses
        first = _words(whisper.transcribe(audio[: (start + 100) * 16], "en").text)
        second = _words(whisper.transcribe(audio[(end - 100) * 16 :], "en").text)
        before, after = _words(sample.parts[0])[-1], _words(sample.parts[1])[0]
        assert first[-1:] == [before] or second[:1] == [after] or (before, first[-1:]) == ("in", ["and"]), (
            sample.parts,
            first,
            second,
        )
