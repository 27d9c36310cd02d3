"""The server-side echo canceller (gateway/echo/canceller.py, WebRTC AEC3 through livekit), on the
agent's real voice (Piper) coming back into the microphone late, quieter and through a room, and on a user's
interruption (espeak-ng) over it, heard by the real Whisper."""

from __future__ import annotations

import sys

import numpy as np
import pytest
from conftest import LEAD, MIC, echoed

from gateway.echo.canceller import EchoCanceller, create_echo_canceller
from services.asr.transcriber import WhisperTranscriber
from voice_agent.audio import float_to_pcm16, pcm16_to_float, resample
from voice_ops.samples import normalize
from voice_ops.turn_sets import utterance

AEC3_DELAY = 128  # samples: AEC3's own algorithmic delay at 16 kHz (two 64-sample blocks)


def _played(canceller: EchoCanceller, reply: np.ndarray, rate: int, chunk_s: float = 0.2) -> None:
    """Hands the reply to the canceller as the gateway would: in chunks, each where it starts playing."""
    pcm = float_to_pcm16(reply)
    step = int(rate * chunk_s) * 2
    for offset in range(0, len(pcm), step):
        canceller.play(pcm[offset : offset + step], rate, LEAD + round(offset // 2 * MIC / rate))


def _cleaned(canceller: EchoCanceller, mic: np.ndarray, chunk_ms: float = 20) -> np.ndarray:
    pcm = float_to_pcm16(mic)
    step = int(MIC * chunk_ms / 1000) * 2
    return pcm16_to_float(b"".join(canceller.process(pcm[i : i + step]) for i in range(0, len(pcm), step)))


def _db(x: np.ndarray) -> float:
    return float(10 * np.log10(np.mean(np.square(x, dtype=np.float64)) + 1e-20))


def _late_erle(mic: np.ndarray, out: np.ndarray, delay_ms: int, reply_s: float) -> float:
    """Echo reduction from 1.5 s into the echo to its end: the converged canceller."""
    start = LEAD + delay_ms * MIC // 1000
    a, b = start + int(1.5 * MIC), start + int(reply_s * MIC)
    return _db(mic[a:b]) - _db(out[a:b])


@pytest.mark.parametrize(
    ("delay_ms", "gain_db", "reverb", "at_least_db"),
    [(50, -6, False, 25), (150, -12, True, 15), (300, -20, True, 12), (300, -6, False, 25)],
)
def test_echo_drops_once_converged(reply, delay_ms: int, gain_db: float, reverb: bool, at_least_db: float) -> None:
    samples, rate = reply
    mic = echoed(samples, rate, delay_ms, gain_db, reverb)
    canceller = EchoCanceller(MIC)
    _played(canceller, samples, rate)
    out = _cleaned(canceller, mic)
    assert len(out) == len(mic)
    # Measured (benchmarks/aec.py): 30-35 dB dry, 20-25 dB through the room; -20 dB echo is near the noise floor.
    assert _late_erle(mic, out, delay_ms, len(samples) / rate) >= at_least_db


def test_a_misplaced_reference_cancels_nothing(reply) -> None:
    """The control: the same echo with the reference played 1.5 s too late is not cancelled (so the figures
    above come from the reference, not from suppressing everything)."""
    samples, rate = reply
    mic = echoed(samples, rate, 150, -12, False)
    canceller = EchoCanceller(MIC)
    pcm = float_to_pcm16(samples)
    canceller.play(pcm, rate, LEAD + 3 * MIC // 2 + len(samples) * MIC // rate)  # after the echo is over
    out = _cleaned(canceller, mic)
    assert _late_erle(mic, out, 150, len(samples) / rate) < 3


def test_interruption_over_the_echo_keeps_its_words_and_energy(reply, whisper: WhisperTranscriber) -> None:
    """At -12 dB through the room. (At -6 dB through the room AEC3 also takes bits of the user's speech 1.5 s
    into a cold start: "Let's top, top in please"; benchmarks/aec.py measures that.) The canceller's output is
    AEC3's from about 1.3 s on: the echo found within 0.3 s, then EchoDetector.CONVERGE_S."""
    samples, rate = reply
    mic = echoed(samples, rate, 150, -12, True)
    user = pcm16_to_float(utterance("stop talking please", 1).data)
    at = LEAD + int(2.0 * MIC)
    mic[at : at + len(user)] += user
    canceller = EchoCanceller(MIC)
    _played(canceller, samples, rate)
    out = _cleaned(canceller, mic)
    span = slice(at - MIC // 5, at + len(user) + MIC // 5)
    heard = normalize(whisper.transcribe(out[span], "en").text)
    assert "stop" in heard and "talking" in heard, heard
    # The user's speech keeps most of its energy: within 6 dB of the speech alone (the echo under it is gone).
    delayed = slice(at + AEC3_DELAY, at + len(user) + AEC3_DELAY)
    assert _db(out[delayed]) >= _db(user) - 6
    assert canceller.echo_found  # AEC3's output, not the raw audio (the echo's reduction: the test above)


@pytest.mark.parametrize("chunk_ms", [10, 30, 50, 70])
def test_chunks_of_whole_frames_give_the_same_output_with_no_lag(reply, chunk_ms: int) -> None:
    samples, rate = reply
    mic = echoed(samples, rate, 150, -12, False)[: 3 * MIC]
    reference = EchoCanceller(MIC)
    _played(reference, samples, rate)
    twenty = _cleaned(reference, mic, 20)
    canceller = EchoCanceller(MIC)
    _played(canceller, samples, rate)
    out = _cleaned(canceller, mic, chunk_ms)
    assert canceller.lag_samples == 0
    assert np.array_equal(out, twenty)


def test_a_chunk_short_of_a_frame_is_held_back_as_a_constant_lag(reply) -> None:
    samples, rate = reply
    mic = echoed(samples, rate, 150, -12, False)[: 3 * MIC]
    whole = EchoCanceller(MIC)
    _played(whole, samples, rate)
    expected = _cleaned(whole, mic, 10)
    canceller = EchoCanceller(MIC)
    _played(canceller, samples, rate)
    out = _cleaned(canceller, mic, 25)  # 400 samples: 2.5 frames
    lag = canceller.lag_samples
    assert 0 < lag < MIC // 100
    assert len(out) == len(mic)
    assert np.array_equal(out[lag:], expected[: len(mic) - lag])


@pytest.mark.parametrize("play_rate", [22_050, 24_000, 16_000])
def test_the_reference_is_resampled_to_the_mic_rate(reply, play_rate: int) -> None:
    """Piper's 22.05 kHz, Kokoro's 24 kHz: handed over in odd-sized chunks, resampled without seams."""
    samples, rate = reply
    at_rate = resample(samples, rate, play_rate)
    mic = echoed(samples, rate, 150, -12, False)
    canceller = EchoCanceller(MIC)
    _played(canceller, at_rate, play_rate, chunk_s=0.137)
    out = _cleaned(canceller, mic)
    assert _late_erle(mic, out, 150, len(samples) / rate) >= 25


def test_with_the_agent_silent_the_user_passes_through(whisper: WhisperTranscriber) -> None:
    user = pcm16_to_float(utterance("what do you mean?", 2).data)
    mic = np.concatenate([np.zeros(LEAD, np.float32), user, np.zeros(LEAD, np.float32)])
    out = _cleaned(EchoCanceller(MIC), mic)
    span = slice(LEAD + AEC3_DELAY, LEAD + AEC3_DELAY + len(user))
    assert abs(_db(out[span]) - _db(user)) < 1
    assert normalize(whisper.transcribe(out, "en").text) == "what do you mean"


@pytest.mark.parametrize("at_s", [0.3, 1.5])
def test_with_no_echo_the_user_over_the_agent_passes_untouched(reply, at_s: float) -> None:
    """A headset, or a client whose own echo cancellation worked: the agent plays, no echo comes back. A fresh
    AEC3 would still take the user's words for echo and cut them by ~40 dB; the echo detector lets them by."""
    samples, rate = reply
    user = pcm16_to_float(utterance("stop talking please", 2).data)
    start = LEAD + int(at_s * MIC)
    mic = np.random.default_rng(1).normal(0, 1e-3, LEAD + len(samples) * MIC // rate + MIC).astype(np.float32)
    mic[start : start + len(user)] += user
    canceller = EchoCanceller(MIC)
    _played(canceller, samples, rate)
    out = _cleaned(canceller, mic)
    span = slice(start, start + len(user))
    assert abs(_db(out[span]) - _db(mic[span])) < 1
    assert not canceller.echo_found


def test_the_echo_detector_switches_the_canceller_in(reply) -> None:
    samples, rate = reply
    mic = echoed(samples, rate, 150, -20, reverb=True)
    canceller = EchoCanceller(MIC)
    _played(canceller, samples, rate)
    pcm = float_to_pcm16(mic)
    found_at = None
    for offset in range(0, len(pcm), 640):
        canceller.process(pcm[offset : offset + 640])
        if canceller.echo_found and found_at is None:
            found_at = offset // 2
    assert found_at is not None
    assert found_at - LEAD < 1.5 * MIC, "found within 1.5 s of the reply's start"


def test_bad_input_is_refused() -> None:
    with pytest.raises(ValueError, match="mic_rate"):
        EchoCanceller(44_100)
    with pytest.raises(ValueError, match="even"):
        EchoCanceller(MIC).process(b"\0\0\0")


def test_the_factory_says_none_without_livekit(monkeypatch: pytest.MonkeyPatch) -> None:
    assert isinstance(create_echo_canceller(MIC), EchoCanceller)
    monkeypatch.setitem(sys.modules, "livekit", None)  # import livekit now raises ImportError
    assert create_echo_canceller(MIC) is None
