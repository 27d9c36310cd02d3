"""The turn-taking benchmark's echo paths (voice_ops/echo_paths.py) and its playout model: pure numpy, no
model, no service."""

from __future__ import annotations

import numpy as np
import pytest

from benchmarks.turns import heard_over_ms
from voice_agent.audio import Pcm16Audio
from voice_agent.v1 import gateway_pb2
from voice_ops.echo_paths import (
    FRAME_MS,
    EchoPath,
    EchoRenderer,
    at_speech_level,
    realistic_paths,
    room_response,
    speech_shaped_noise,
)
from voice_ops.turn_sets import speech_onset_ms

pytestmark = pytest.mark.unit
RATE = 16_000


@pytest.mark.parametrize("path", realistic_paths(-25, 4), ids=lambda p: p.describe())
def test_each_path_leaves_the_echo_at_its_level(path: EchoPath) -> None:
    renderer, noise = EchoRenderer(path, RATE), speech_shaped_noise(2 * RATE, RATE)
    echo = np.zeros(3 * RATE)
    for start in range(0, len(noise), RATE // 10):  # chunk by chunk, the room's tail overlapping the next
        part = renderer.shape(noise[start : start + RATE // 10])
        echo[start : start + len(part)] += part
    level = 10 * np.log10(np.mean(echo[: len(noise)] ** 2) / np.mean(noise**2))
    assert abs(level - path.level_db) < 0.5


def test_a_room_is_a_unit_energy_response_that_starts_at_once() -> None:
    response = room_response(3, RATE)
    assert abs(np.sum(response.astype(np.float64) ** 2) - 1) < 1e-3
    assert np.argmax(np.abs(response)) < 16  # its own delay is the path's: the direct sound first


def test_the_jitter_buffer_holds_the_delay_then_jumps_within_its_bound() -> None:
    path = EchoPath(-25, delay_ms=150, jitter_ms=15, seed=1)
    delays = np.array(EchoRenderer(path, RATE).delays(20 * 1000 // FRAME_MS))  # 20 s of frames
    base, bound = 150 * RATE // 1000, 15 * RATE // 1000
    assert np.all(np.abs(delays - base) <= bound)
    jumps = np.count_nonzero(np.diff(delays))
    assert 5 <= jumps <= 40  # about once a second
    assert EchoRenderer(EchoPath(-25, jitter_ms=0), RATE).delays(50) == [150 * RATE // 1000] * 50


def test_every_voice_is_set_to_the_agents_speech_level() -> None:
    quiet = np.concatenate([np.zeros(RATE // 2), 0.01 * speech_shaped_noise(RATE, RATE), np.zeros(RATE // 2)])
    loud = at_speech_level(quiet.astype(np.float32))
    active = loud[RATE // 2 : RATE // 2 + RATE]
    assert abs(20 * np.log10(np.sqrt(np.mean(active**2))) - -22.0) < 1.0


def _audio(turn_id: int, ms: int) -> gateway_pb2.ConverseResponse:
    chunk = gateway_pb2.AgentAudio(turn_id=turn_id, audio=b"\0\0" * (RATE * ms // 1000), sample_rate_hz=RATE)
    return gateway_pb2.ConverseResponse(agent_audio=chunk)


def test_the_agent_heard_over_the_user_stops_at_the_interruption() -> None:
    # 1 s of audio arrives at 0 (a 500 ms lead plays on), the user speaks from 0.2 s for 2 s, the interruption
    # reaches the client at 0.6 s: 400 ms of the agent were heard over the user.
    interruption = gateway_pb2.ConverseResponse(interruption=gateway_pb2.Interruption(turn_id=1))
    arrivals = [(0.0, _audio(1, 1000)), (0.6, interruption), (0.7, _audio(1, 500))]
    assert heard_over_ms(arrivals, onset=0.2, duration_s=2.0) == pytest.approx(400.0)
    # With no interruption, all of it from the onset to the end of the playout; the next turn is not counted.
    arrivals = [(0.0, _audio(1, 1000)), (0.5, _audio(1, 1000)), (1.0, _audio(2, 1000))]
    assert heard_over_ms(arrivals, onset=0.2, duration_s=1.0) == pytest.approx(1000.0)


def test_the_speech_is_measured_from_its_onset_not_a_click_before_it() -> None:
    # The call's segments begin with a click (40 ms at -26 dBFS) and 200 ms of silence before the speaker: the
    # agent heard "while the sentence was said" counts from the speech, not from the click.
    t = np.arange(RATE // 2) / RATE
    speech = 0.14 * np.sin(2 * np.pi * 220 * t)  # -20 dBFS
    click = np.full(RATE * 40 // 1000, 0.05)
    samples = np.concatenate([click, np.zeros(RATE // 5), speech])
    audio = Pcm16Audio((samples * 32767).astype("<i2").tobytes(), RATE)
    assert speech_onset_ms(audio) == 240
    assert speech_onset_ms(Pcm16Audio((speech * 32767).astype("<i2").tobytes(), RATE)) == 0
