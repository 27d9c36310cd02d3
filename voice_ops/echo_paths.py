"""Realistic echo paths (issue 24): how the agent's own voice comes back into the user's microphone when a
phone or a laptop plays it aloud, for the turn-taking benchmark's echo sets.

An ``EchoPath`` is the chain, in order:

- a small loudspeaker (``loudspeaker``): driven hard, it clips (a soft ``tanh`` clip, 9 dB of drive) and
  passes only its band (a 2nd-order Butterworth band-pass, 300 Hz to 5 kHz): what no linear echo model
  captures, and what WebRTC AEC3 and the gateway's linear path fit leave as residual;
- the room (``room``): an impulse response simulated by pyroomacoustics (image source method, a shoebox of
  3-6 m a side, RT60 0.25-0.6 s, loudspeaker and microphone 10-50 cm apart, all drawn from ``seed``);
- the phone's delay jitter (``jitter_ms``): a jitter buffer holds the echo's delay for a while, then jumps
  (once a second on average, by 5 ms up to ``jitter_ms``, staying within ``jitter_ms`` of ``delay_ms``),
  dropping or repeating a piece of audio as a phone's playout does;
- the residual level (``level_db``): the echo's power over the agent's audio as sent, calibrated on
  speech-shaped noise through the whole chain, so -25 dB means the same echo energy on every path.

``EchoRenderer`` applies one path to a session's agent audio, chunk by chunk (the band-pass keeps its state;
the room's tail overlaps the next chunk), and says where each frame lands on the microphone's timeline.
Pure numpy/scipy/pyroomacoustics, no I/O.
"""

from __future__ import annotations

import functools
from dataclasses import dataclass

import numpy as np

#: The loudspeaker's drive before its clip, and its band (Hz).
DRIVE_DB = 9.0
BAND_HZ = (300.0, 5000.0)
FRAME_MS = 20  # the jitter's step: one phone audio frame
JUMP_EVERY_S = 1.0  # how often, on average, a phone's jitter buffer moves the delay
#: The user's speech and the calibration noise are set to this RMS (dBFS), about the agent's (Piper's) own.
SPEECH_RMS_DBFS = -22.0


@dataclass(frozen=True)
class EchoPath:
    """One way the agent's voice comes back: see the module's docstring."""

    level_db: float
    delay_ms: int = 150
    loudspeaker: bool = True
    room: bool = True
    jitter_ms: float = 0.0
    seed: int = 0

    def describe(self) -> str:
        parts = [f"{self.level_db:g} dB", f"{self.delay_ms} ms"]
        parts += ["loudspeaker"] * self.loudspeaker + ["room"] * self.room
        parts += [f"jitter ±{self.jitter_ms:g} ms"] if self.jitter_ms else []
        return ", ".join(parts)


def realistic_paths(level_db: float, count: int) -> list[EchoPath]:
    """``count`` paths at one level, cycling through the conditions a speakerphone meets: delays 80-300 ms,
    a room each (its own seed), the loudspeaker's nonlinearity on most, a phone's jitter on half."""
    delays = (120, 200, 80, 300, 150)
    return [
        EchoPath(
            level_db,
            delay_ms=delays[i % len(delays)],
            loudspeaker=i % 4 != 3,
            room=True,
            jitter_ms=(0.0, 15.0)[i % 2],
            seed=i,
        )
        for i in range(count)
    ]


@functools.cache
def room_response(seed: int, sample_rate: int = 16_000) -> np.ndarray:
    """A speakerphone in a room: pyroomacoustics' image-source impulse response, unit energy."""
    import pyroomacoustics as pra

    rng = np.random.default_rng(seed)
    size = rng.uniform([3.0, 3.0, 2.4], [6.0, 5.0, 3.0])
    rt60 = rng.uniform(0.25, 0.6)
    absorption, max_order = pra.inverse_sabine(rt60, size)
    room = pra.ShoeBox(
        size, fs=sample_rate, materials=pra.Material(absorption), max_order=min(max_order, 12), air_absorption=True
    )
    speaker = rng.uniform([1.0, 1.0, 0.8], size - 1.0)
    direction = rng.normal(size=3)
    mic = speaker + direction / np.linalg.norm(direction) * rng.uniform(0.1, 0.5)
    room.add_source(speaker)
    room.add_microphone(np.clip(mic, 0.2, size - 0.2))
    room.compute_rir()
    response = np.asarray(room.rir[0][0], np.float64)
    first = int(np.argmax(np.abs(response) > 0.1 * np.max(np.abs(response))))
    response = response[max(0, first - 8) : first + sample_rate // 2]  # the delay is the path's own
    return (response / np.sqrt(np.sum(response**2))).astype(np.float32)


class EchoRenderer:
    """One ``EchoPath`` applied to a session's agent audio, chunk by chunk, at the microphone's rate."""

    def __init__(self, path: EchoPath, sample_rate: int = 16_000) -> None:
        from scipy import signal

        self.path = path
        self._rate = sample_rate
        self._room = room_response(path.seed, sample_rate) if path.room else None
        self._band = signal.butter(2, BAND_HZ, btype="bandpass", fs=sample_rate, output="sos")
        self._band_state = signal.sosfilt_zi(self._band) * 0.0
        self._rng = np.random.default_rng(path.seed + 1000)
        self._jitter = 0.0  # samples, the random walk's position
        self._gain = 10 ** (path.level_db / 20) / _calibration_gain(path, sample_rate)

    def shape(self, samples: np.ndarray) -> np.ndarray:
        """The echo of ``samples`` (float, played contiguously after the last chunk), before its delay: the
        loudspeaker, the room (its tail runs past the chunk's end), and the level."""
        from scipy import signal

        out = samples.astype(np.float64)
        if self.path.loudspeaker:
            drive = 10 ** (DRIVE_DB / 20)
            out = np.tanh(out * drive) / drive
            out, self._band_state = signal.sosfilt(self._band, out, zi=self._band_state)
        if self._room is not None:
            out = np.convolve(out, self._room)
        return (out * self._gain).astype(np.float32)

    def delays(self, frames: int) -> list[int]:
        """The delay (samples) of each of the next ``frames`` FRAME_MS frames: the path's, moved by the phone's
        jitter buffer, which holds a delay for a while and then jumps (every JUMP_EVERY_S on average, by 5 ms
        up to ``jitter_ms``, staying within ``jitter_ms`` of the path's delay), dropping or repeating audio."""
        base = self.path.delay_ms * self._rate // 1000
        limit = self.path.jitter_ms * self._rate / 1000
        out = []
        for _ in range(frames):
            if limit and self._rng.random() < FRAME_MS / 1000 / JUMP_EVERY_S:
                jump = self._rng.uniform(0.005 * self._rate, limit) * self._rng.choice((-1, 1))
                self._jitter = float(np.clip(self._jitter + jump, -limit, limit))
            out.append(base + round(self._jitter))
        return out


def _calibration_gain(path: EchoPath, sample_rate: int) -> float:
    """The chain's RMS gain (before the level) on speech-shaped noise at SPEECH_RMS_DBFS."""
    from scipy import signal

    noise = speech_shaped_noise(sample_rate * 2, sample_rate)
    out = noise.astype(np.float64)
    if path.loudspeaker:
        drive = 10 ** (DRIVE_DB / 20)
        band = signal.butter(2, BAND_HZ, btype="bandpass", fs=sample_rate, output="sos")
        out = signal.sosfilt(band, np.tanh(out * drive) / drive)
    if path.room:
        out = np.convolve(out, room_response(path.seed, sample_rate))[: len(noise)]
    return float(np.sqrt(np.mean(out**2)) / np.sqrt(np.mean(noise**2)))


@functools.cache
def speech_shaped_noise(length: int, sample_rate: int = 16_000) -> np.ndarray:
    """Noise with speech's long-term spectrum (-6 dB an octave above 500 Hz), at SPEECH_RMS_DBFS, fixed seed."""
    rng = np.random.default_rng(24)
    spectrum = np.fft.rfft(rng.normal(size=length))
    freqs = np.fft.rfftfreq(length, 1 / sample_rate)
    spectrum *= 1 / np.maximum(1.0, freqs / 500.0)
    spectrum[freqs < 80] = 0
    noise = np.fft.irfft(spectrum, length)
    return (noise / np.sqrt(np.mean(noise**2)) * 10 ** (SPEECH_RMS_DBFS / 20)).astype(np.float32)


def at_speech_level(samples: np.ndarray) -> np.ndarray:
    """``samples`` (float) scaled so that its speech (the 20 ms frames within 30 dB of its loudest) has
    SPEECH_RMS_DBFS: every voice of the material as loud as the agent's."""
    frames = samples[: len(samples) // 320 * 320].reshape(-1, 320)
    power = np.mean(frames.astype(np.float64) ** 2, axis=1)
    if not len(power) or power.max() <= 0:
        return samples
    active = power[power > power.max() * 1e-3]
    gain = 10 ** (SPEECH_RMS_DBFS / 20) / np.sqrt(np.mean(active))
    return np.clip(samples * gain, -1, 1).astype(np.float32)
