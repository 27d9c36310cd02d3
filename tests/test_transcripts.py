"""What a transcript is checked against: decoding loops, the WER's normalisation, and the recorded
human speech the benchmarks measure with."""

from __future__ import annotations

import pytest

from services.asr.transcriber import repeats_itself
from voice_ops.samples import normalize, recorded_turns, word_error_rate

pytestmark = pytest.mark.unit  # no model, no service: make test-unit


@pytest.mark.parametrize(
    "text",
    [
        "5.5.5.5.5",
        "5 5 5 5 5 5 5 5 5 5",
        "Yes, sir, sir, sir.",
        "so I think I think I think",
        "a b c a b c a b c",
        "Hang on. My presentation is only 5 minutes long. Hang on. My presentation is only 5 minutes long.",
    ],
)
def test_a_decoding_loop_is_found(text: str) -> None:
    assert repeats_itself(text)


@pytest.mark.parametrize(
    "text",
    [
        "five five",
        "No, no.",
        "I think I think so",
        "Make eye contact. Eye contact.",
        "I don't know, I don't know.",
        "Take two slow breaths. Then take two more slow breaths.",
    ],
)
def test_a_repeat_people_say_is_no_loop(text: str) -> None:
    assert not repeats_itself(text)


@pytest.mark.parametrize(
    ("written", "spoken"),
    [
        ("10 of clubs.", "ten of clubs"),
        ("$950 a month", "nine hundred and fifty dollars a month"),
        ("The salary is 62,000.", "the salary is sixty two thousand"),
        ("My flight leaves at 7.30, so", "my flight leaves at seven thirty so"),
        ("My flight leaves at 730 so", "my flight leaves at seven thirty so"),
        ("O.K. sounds good", "okay sounds good"),
        ("Twelve.", "twelve"),
    ],
)
def test_numbers_are_normalised_as_a_reference_spells_them(written: str, spoken: str) -> None:
    assert normalize(written) == spoken


def test_whisper_digits_cost_no_word_error() -> None:
    assert word_error_rate("Nine hundred and fifty dollars a month.", "$950 a month.") == 0.0


def test_the_recorded_call_is_nine_turns_of_real_speech() -> None:
    turns = recorded_turns(lead_ms=300, tail_ms=1000)
    assert len(turns) == 9 and all(turn.text for turn in turns)
    assert turns[2].text == "Oh, hello. I didn't know you were there."  # two transcript lines of one speaker
    for turn in turns:
        assert turn.audio.sample_rate == 16_000
        assert turn.speech_start_ms == 300 and turn.audio.duration_ms == turn.speech_end_ms + 1000
        assert 400 < turn.speech_end_ms - turn.speech_start_ms < 7000
