"""The endpointing state machine, driven by probability sequences (no model involved), and the
end-of-turn heuristic on transcripts."""

import pytest

from services.asr.turn_end import reads_complete
from services.asr.vad import (
    FRAME_SAMPLES,
    Endpointer,
    EndReason,
    Event,
    SpeechEnd,
    SpeechPause,
    SpeechResume,
    SpeechStart,
)

pytestmark = pytest.mark.unit  # no model, no service: make test-unit

FRAME_MS = 32


def run(probabilities: list[float], min_silence_ms: int = 200, max_utterance_ms: int = 30_000) -> list:
    endpointer = Endpointer(0.5, min_silence_ms, max_utterance_ms)
    events = []
    for index, probability in enumerate(probabilities, start=1):
        events += endpointer.push(probability, index * FRAME_SAMPLES)
    final = endpointer.finish(len(probabilities) * FRAME_SAMPLES)
    return events + ([final] if final else [])


def test_start_and_end_positions() -> None:
    events = run([0.0] * 10 + [0.9] * 20 + [0.0] * 10)
    assert events[0] == SpeechStart(1, 10 * FRAME_SAMPLES)
    end = events[1]
    assert isinstance(end, SpeechEnd) and end.reason is EndReason.SILENCE
    assert end.end == 30 * FRAME_SAMPLES
    # 200 ms of silence is 7 frames of 32 ms: the end is decided on the 7th.
    assert end.decided_at == 37 * FRAME_SAMPLES
    assert len(events) == 2


def test_a_short_pause_does_not_end_the_utterance() -> None:
    events = run([0.9] * 10 + [0.0] * 5 + [0.9] * 10 + [0.0] * 10)
    assert [type(e) for e in events] == [SpeechStart, SpeechEnd]
    assert events[1].end == 25 * FRAME_SAMPLES


def test_hysteresis_keeps_speech_between_the_thresholds() -> None:
    events = run([0.9] * 5 + [0.4] * 20 + [0.1] * 10)
    assert events[1].end == 25 * FRAME_SAMPLES


def test_longer_silence_wait() -> None:
    events = run([0.9] * 5 + [0.0] * 12, min_silence_ms=500)
    assert events[-1].reason is EndReason.END_OF_STREAM  # 12 frames = 384 ms < 500 ms
    assert events[-1].end == 5 * FRAME_SAMPLES


def test_max_duration_cuts_and_speech_goes_on() -> None:
    events = run([0.9] * 30, max_utterance_ms=640)  # 640 ms = 20 frames
    reasons = [e.reason for e in events if isinstance(e, SpeechEnd)]
    assert reasons == [EndReason.MAX_DURATION, EndReason.END_OF_STREAM]
    assert [e.utterance_id for e in events if isinstance(e, SpeechStart)] == [1, 2]
    assert events[1].end == events[2].start == 20 * FRAME_SAMPLES


def test_no_speech_no_events() -> None:
    assert run([0.1] * 50) == []


# ---- pauses and the adaptive end of turn


def run_paused(
    probabilities: list[float], verdicts: dict[int, bool] | None = None, **options: int
) -> list[Event | tuple[str, SpeechEnd | None]]:
    """Like ``run`` with pauses on; ``verdicts``: after which frame (1-based) the open pause is judged."""
    endpointer = Endpointer(0.5, options.pop("min_silence_ms", 200), 30_000, **options)
    events: list = []
    pause = None
    for index, probability in enumerate(probabilities, start=1):
        for event in endpointer.push(probability, index * FRAME_SAMPLES):
            pause = event if isinstance(event, SpeechPause) else pause
            events.append(event)
        if verdicts and index in verdicts:
            assert pause is not None
            events.append(("judged", endpointer.judge(pause, verdicts[index])))
    final = endpointer.finish(len(probabilities) * FRAME_SAMPLES)
    return events + ([final] if final else [])


ADAPTIVE = {"pause_ms": 64, "min_silence_ms": 150, "incomplete_silence_ms": 700}


def kinds(events: list) -> list[str]:
    return [e[0] if isinstance(e, tuple) else type(e).__name__ for e in events]


def test_a_pause_then_the_end() -> None:
    events = run_paused([0.9] * 10 + [0.0] * 10, pause_ms=64)
    assert kinds(events) == ["SpeechStart", "SpeechPause", "SpeechEnd"]
    pause = events[1]
    assert (pause.start, pause.silence_from, pause.at) == (0, 10 * FRAME_SAMPLES, 12 * FRAME_SAMPLES)
    assert events[2].decided_at == 17 * FRAME_SAMPLES  # pauses change nothing about the end


def test_one_pause_per_silence_and_a_resume_after_it() -> None:
    events = run_paused([0.9] * 5 + [0.0] * 3 + [0.9] * 5 + [0.0] * 3 + [0.9] * 2 + [0.0] * 10, pause_ms=64)
    assert kinds(events) == [
        "SpeechStart",
        *("SpeechPause", "SpeechResume") * 2,
        "SpeechPause",
        "SpeechEnd",
    ]
    resume = events[2]
    assert isinstance(resume, SpeechResume) and resume.at == 8 * FRAME_SAMPLES
    assert all(e.utterance_id == 1 for e in events)


def test_silence_shorter_than_the_pause_sends_nothing() -> None:
    events = run_paused([0.9] * 5 + [0.0] * 2 + [0.9] * 5 + [0.0] * 10, pause_ms=96)
    assert kinds(events) == ["SpeechStart", "SpeechPause", "SpeechEnd"]


def test_the_pause_is_clamped_to_the_end_of_turn_silence() -> None:
    events = run_paused([0.9] * 5 + [0.0] * 10, pause_ms=1000, min_silence_ms=100)
    assert kinds(events) == ["SpeechStart", "SpeechPause", "SpeechEnd"]
    assert events[1].at == events[2].decided_at == 9 * FRAME_SAMPLES


def test_adaptive_ends_at_min_silence_after_a_complete_pause() -> None:
    speech, silence = [0.9] * 10, [0.0] * 30
    events = run_paused(speech + silence, {13: True}, **ADAPTIVE)
    assert kinds(events) == ["SpeechStart", "SpeechPause", "judged", "SpeechEnd"]
    assert events[-1].decided_at - events[-1].end == 5 * FRAME_SAMPLES  # 150 ms is 5 frames


def test_adaptive_waits_longer_after_an_incomplete_pause() -> None:
    events = run_paused([0.9] * 10 + [0.0] * 30, {13: False}, **ADAPTIVE)
    end = events[-1]
    assert kinds(events) == ["SpeechStart", "SpeechPause", "judged", "SpeechEnd"]
    assert end.reason is EndReason.SILENCE and end.decided_at - end.end == 22 * FRAME_SAMPLES  # 700 ms: 22 frames


def test_adaptive_speech_resumes_within_the_longer_wait() -> None:
    probabilities = [0.9] * 10 + [0.0] * 10 + [0.9] * 10 + [0.0] * 30
    events = run_paused(probabilities, {13: False, 33: True}, **ADAPTIVE)
    pause_and_verdict = ["SpeechPause", "judged"]
    assert kinds(events) == ["SpeechStart", *pause_and_verdict, "SpeechResume", *pause_and_verdict, "SpeechEnd"]
    assert events[-1].decided_at == (30 + 5) * FRAME_SAMPLES


def test_adaptive_a_late_verdict_ends_the_utterance_at_once() -> None:
    events = run_paused([0.9] * 10 + [0.0] * 30, {20: True}, **ADAPTIVE)
    assert kinds(events) == ["SpeechStart", "SpeechPause", "judged"]
    end = events[2][1]
    # Decided when the verdict came: 10 frames of silence had arrived by then, not the 5 of min_silence_ms.
    assert end.decided_at == 20 * FRAME_SAMPLES and end.end == 10 * FRAME_SAMPLES


def test_adaptive_without_a_verdict_waits_the_incomplete_silence() -> None:
    events = run_paused([0.9] * 10 + [0.0] * 30, **ADAPTIVE)
    assert events[-1].reason is EndReason.SILENCE and events[-1].decided_at == (10 + 22) * FRAME_SAMPLES


def test_a_verdict_on_an_old_pause_is_ignored() -> None:
    endpointer = Endpointer(0.5, 150, 30_000, pause_ms=64, incomplete_silence_ms=700)
    events = [e for i in range(1, 11) for e in endpointer.push(0.9 if i <= 5 else 0.0, i * FRAME_SAMPLES)]
    old = next(e for e in events if isinstance(e, SpeechPause))
    endpointer.push(0.9, 11 * FRAME_SAMPLES)  # resumed: the old pause is out of date
    assert endpointer.judge(old, True) is None
    assert not endpointer.paused


# ---- does a transcript read as the end of a turn?


@pytest.mark.parametrize(
    "text",
    [
        "Can you help me with my presentation?",
        "I would like to practice my opening.",
        "That went really well!",
        "Thank you.",
        'He said "stop."',
        "What should I do next?",
        "I'm nervous about it.",
        # Whisper tiny.en's short answers, often without a full stop; a number is a word
        "10 of clubs",
        "$950 a month",
        "Sounds good",
        "My flight leaves at 7.30.",
        "I'm in New Jersey now though.",
        "No.",  # alone, a whole answer
        "Okay.",
        "You did that well.",
    ],
)
def test_complete(text: str) -> None:
    assert reads_complete(text)


@pytest.mark.parametrize(
    "text",
    [
        "My manager said that.",  # Whisper's full stop on a fragment
        "I want to talk about.",
        "Can you help me with?",  # and its question mark on one
        "I am worried because.",
        "The hardest part is...",
        "I practiced it for…",
        "So the main thing,",
        "I was going to -",
        "and then I",
        "I want to tell you about",
        "Well.",  # an opener alone, its comma written as a full stop
        "Honestly,",
        "Um.",
        "",
    ],
)
def test_incomplete(text: str) -> None:
    assert not reads_complete(text)
