"""The endpointing state machine, driven by probability sequences (no model involved)."""

from services.asr.vad import FRAME_SAMPLES, Endpointer, EndReason, SpeechEnd, SpeechStart

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
