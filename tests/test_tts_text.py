"""Phrase segmentation and text clean-up (pure logic, no engine)."""

import pytest

from services.tts.text import PhraseSegmenter, speakable
from voice_agent.client.tts import words

pytestmark = pytest.mark.unit  # no model, no service: make test-unit

REPLY = (
    "Great question, and a common one. Start with a short story about a real client. "
    "Then explain what changed for them! Does that make sense?"
)


def segment(fragments: list[str], first_phrase_words: int = 4, max_phrase_chars: int = 300) -> list[str]:
    segmenter = PhraseSegmenter(first_phrase_words, max_phrase_chars)
    phrases = [p for fragment in fragments for p in segmenter.push(fragment)] + segmenter.flush()
    assert [p.index for p in phrases] == list(range(len(phrases)))
    # Contiguous slices: in order, no gaps, no overlaps.
    assert [p.start for p in phrases[1:]] == [p.end for p in phrases[:-1]]
    assert all(segmenter.text[p.start : p.end] == p.text for p in phrases)
    return [p.text for p in phrases]


@pytest.mark.parametrize("fragments", [[REPLY], words(REPLY), list(REPLY)], ids=["whole", "words", "chars"])
def test_short_first_phrase_then_sentences(fragments: list[str]) -> None:
    assert segment(fragments) == [
        "Great question,",
        " and a common one.",
        " Start with a short story about a real client.",
        " Then explain what changed for them!",
        " Does that make sense?",
    ]


def test_first_phrase_is_cut_after_the_word_limit() -> None:
    text = "I think that you should practice the opening until it feels natural."
    assert segment(words(text), first_phrase_words=4) == [
        "I think that you",
        " should practice the opening until it feels natural.",
    ]
    assert segment(words(text), first_phrase_words=20) == [text]


def test_abbreviations_and_decimals_do_not_end_a_sentence() -> None:
    text = "Ask Dr. Smith about it. The score went up 3.5 points, e.g. on the first test."
    assert segment(words(text), first_phrase_words=50) == [
        "Ask Dr. Smith about it.",
        " The score went up 3.5 points, e.g. on the first test.",
    ]


def test_an_overlong_sentence_is_cut_at_a_clause_or_a_word() -> None:
    text = "word " * 40 + "and then, " + "more " * 40
    phrases = segment([text], first_phrase_words=2, max_phrase_chars=60)
    assert all(len(p) <= 60 for p in phrases)
    assert "".join(phrases) == text


def test_punctuation_or_emoji_alone_is_never_a_phrase() -> None:
    assert segment(["😀 ", "... ", "Well, ", "hello there."]) == ["😀 ... Well,", " hello there."]
    assert segment(["  ", "\n"]) == []


def test_speakable_drops_emoji_and_control_characters() -> None:
    assert speakable("Hi 😀👍🏽 there\x07\x00!\u200d\ufe0f") == "Hi there!"
    assert speakable("Line one\nline two\ttab") == "Line one line two tab"
    assert speakable("Привет, 3.5 km") == "Привет, 3.5 km"
