"""Speech over the agent's echo (gateway/echo/path.py): the echo path found and fitted on a whole
utterance, on the agent's real voice (Piper) coming back late, quieter and through a room, with a user's
interruption (espeak-ng) said as the echo starts, heard by the real Whisper."""

from __future__ import annotations

import numpy as np
import pytest
from conftest import LEAD, MIC, echoed

from gateway.echo.heard import OVER_ECHO_LEVEL_DB
from gateway.echo.path import SPARE_SAMPLES, EchoTimeline
from services.asr.transcriber import WhisperTranscriber
from voice_agent.audio import float_to_pcm16, pcm16_to_float, resample
from voice_ops.samples import word_error_rate
from voice_ops.turn_sets import room_impulse, utterance


def _timeline(reply: tuple[np.ndarray, int], mic: np.ndarray, chunk_s: float = 0.2, late_ms: int = 0) -> EchoTimeline:
    """The timeline as the Listener fills it: the reply in chunks where the client plays them (``late_ms``
    later), then the mic."""
    timeline = EchoTimeline(MIC)
    audio, rate = reply
    pcm = float_to_pcm16(audio)
    step = int(rate * chunk_s) * 2
    at = LEAD + late_ms * MIC // 1000
    for offset in range(0, len(pcm), step):
        timeline.play(pcm[offset : offset + step], rate, at + round(offset // 2 * MIC / rate))
    samples = float_to_pcm16(mic)
    for offset in range(0, len(samples), MIC // 50 * 2):  # 20 ms chunks
        timeline.heard(samples[offset : offset + MIC // 50 * 2])
    return timeline


def _user(text: str, at: int, length: int) -> np.ndarray:
    """``text`` (an espeak voice that is not the agent's) from sample ``at``, at about -20 dBFS."""
    speech = pcm16_to_float(utterance(text, 2).data)
    speech *= np.float32(0.1 / (np.sqrt(np.mean(speech**2)) + 1e-9))
    out = np.zeros(length, np.float32)
    out[at : at + len(speech)] = speech[: length - at]
    return out


@pytest.mark.parametrize(("delay_ms", "gain_db", "reverb"), [(50, -6, False), (300, -6, True), (150, -20, True)])
def test_the_echo_alone_is_found_and_leaves_little(reply, delay_ms: int, gain_db: float, reverb: bool) -> None:
    mic = echoed(*reply, delay_ms, gain_db, reverb)
    start = LEAD + delay_ms * MIC // 1000
    removed = _timeline(reply, mic).over_echo(start, start + 2 * MIC)
    assert removed is not None
    assert abs(removed.delay_ms - delay_ms) <= 3
    assert removed.level_db < OVER_ECHO_LEVEL_DB - 5, removed.level_db


@pytest.mark.parametrize(("delay_ms", "gain_db", "reverb"), [(50, -6, False), (300, -6, True), (150, -12, False)])
def test_an_interruption_said_as_the_echo_starts_is_kept(
    reply, whisper: WhisperTranscriber, delay_ms: int, gain_db: float, reverb: bool
) -> None:
    """Said as the reply starts playing, before its echo: what a canceller adapting as it goes cannot keep.
    Whisper on the microphone itself writes "Stop it, don't get your lead, or you", "Stop talking news story",
    "start talking please" for these three."""
    echo = echoed(*reply, delay_ms, gain_db, reverb)
    mic = echo + _user("stop talking please", LEAD, len(echo))
    start = LEAD
    removed = _timeline(reply, mic).over_echo(start, start + int(1.5 * MIC))
    assert removed is not None and removed.level_db > OVER_ECHO_LEVEL_DB, removed
    heard = whisper.transcribe(removed.residual, "en").text
    assert word_error_rate("stop talking please", heard) < 0.3, heard


def test_an_echo_that_seems_to_come_before_its_reference_is_found(reply) -> None:
    """The gateway places the reference where the microphone audio it has ends; the microphone's own latency
    can put the echo ahead of it."""
    mic = echoed(*reply, 50, -6, False)
    removed = _timeline(reply, mic, late_ms=150).over_echo(LEAD, LEAD + 2 * MIC)
    assert removed is not None and abs(removed.delay_ms + 100) <= 3, removed
    assert removed.level_db < OVER_ECHO_LEVEL_DB - 5


def test_no_echo_in_the_microphone_is_none(reply) -> None:
    """A headset: the agent plays, the microphone hears only the user. Nothing to remove."""
    mic = _user("wait, stop", LEAD, LEAD + 3 * MIC) + np.random.default_rng(0).normal(0, 1e-3, LEAD + 3 * MIC)
    assert _timeline(reply, mic.astype(np.float32)).over_echo(LEAD, LEAD + 2 * MIC) is None


def test_a_silent_agent_is_none(reply) -> None:
    mic = echoed(*reply, 150, -6, False)
    timeline = EchoTimeline(MIC)
    timeline.heard(float_to_pcm16(mic))
    assert timeline.over_echo(LEAD, LEAD + 2 * MIC) is None


def test_stopped_playback_drops_the_reference_still_to_come(reply) -> None:
    audio, rate = reply
    timeline = EchoTimeline(MIC)
    timeline.play(float_to_pcm16(audio), rate, LEAD)
    timeline.heard(bytes(LEAD * 2))
    timeline.stop_playing()  # at LEAD: the reply never played
    timeline.heard(float_to_pcm16(echoed(*reply, 150, -6, False)[LEAD:]))
    assert timeline.over_echo(LEAD, LEAD + 2 * MIC) is None


def test_the_history_stays_bounded() -> None:
    timeline = EchoTimeline(MIC)
    second = bytes(MIC * 2)
    for at in range(60):
        timeline.play(second, MIC, at * MIC)
        timeline.heard(second)
    assert timeline.kept_samples <= 2 * (EchoTimeline.HISTORY_S * MIC + 2 * SPARE_SAMPLES)  # each: history, spare
    assert timeline.position == 60 * MIC


def _moving(reply: tuple[np.ndarray, int], delays: list[tuple[float, int]], reverb: bool = False) -> np.ndarray:
    """The echo of the reply (-12 dB, through a room with ``reverb``), its delay moved as a phone's jitter
    buffer moves it: ``delays`` are (seconds into the reply, delay ms from then on). The audio around each move
    is dropped (a later delay) or repeated (an earlier one)."""
    audio, rate = reply
    echo = resample(audio, rate, MIC) * np.float32(10 ** (-12 / 20))
    if reverb:
        echo = np.convolve(echo, room_impulse(MIC))[: len(echo)].astype(np.float32)
    most = max(delay for _, delay in delays) * MIC // 1000
    mic = np.zeros(LEAD + most + len(echo) + MIC, np.float32)
    bounds = [int(at_s * MIC) for at_s, _ in delays] + [len(echo)]
    for (_, delay_ms), cut, until in zip(delays, bounds, bounds[1:], strict=False):
        start = LEAD + delay_ms * MIC // 1000 + cut
        mic[start : start + until - cut] = echo[cut:until]
    return mic + np.random.default_rng(0).normal(0, 1e-3, len(mic)).astype(np.float32)


def _jumping(reply: tuple[np.ndarray, int], delay_ms: int, jump_ms: int, at_s: float) -> np.ndarray:
    """The echo of the reply whose delay jumps once, by ``jump_ms`` ``at_s`` into it."""
    return _moving(reply, [(0.0, delay_ms), (at_s, delay_ms + jump_ms)])


@pytest.mark.parametrize("jump_ms", [12, -10])
def test_an_echo_whose_delay_jumps_is_still_removed(reply, jump_ms: int) -> None:
    # Issue 24: through a phone whose jitter buffer moves the echo by 5-15 ms about once a second, one echo path
    # fitted on the whole window left the echo alone at -1 to -4 dB: "more than the echo", transcribed, and
    # its words were user turns. The path is followed block by block within JITTER_S of the delay found.
    mic = _jumping(reply, 150, jump_ms, at_s=1.0)
    start = LEAD + 150 * MIC // 1000
    removed = _timeline(reply, mic).over_echo(start, start + 2 * MIC)
    assert removed is not None
    assert removed.level_db < OVER_ECHO_LEVEL_DB - 2, removed.level_db  # -0.1 and -2.6 dB before


def test_an_echo_whose_delay_moves_within_the_window_is_still_removed(reply) -> None:
    # Issue 24: when the delay moved by 8 ms for a second of a 3.5 s window, and then twice more, the path fitted
    # on the whole window averaged the delays: it explained no part well, no block's shift was clearly better
    # against it, and the echo alone was left at -3 dB (offline, 2 of the benchmark's 4 jittered paths). A fit
    # on the part of the window it explains best starts a second fit.
    mic = _moving(reply, [(0.0, 157), (1.9, 165), (2.9, 154), (3.3, 165), (3.6, 143)], reverb=True)
    removed = _timeline(reply, mic).over_echo(int(2.0 * MIC), int(4.0 * MIC))
    assert removed is not None
    assert removed.level_db < OVER_ECHO_LEVEL_DB - 2, removed.level_db
