"""The agent's echo as a signal: where its voice comes back in the microphone, and the microphone without it.

The gateway knows what the client plays (every agent audio chunk), so it has the reference from which an echo
in the user's audio can be found (``find_echo``: GCC-PHAT) and, once found, fitted and removed
(``remove_echo``: a least-squares estimate of the echo path, fitted on the whole window at once).

``EchoTimeline`` keeps the last HISTORY_S (8 s) of a session's microphone audio and of the agent's audio placed
where the client plays it, for ``over_echo``: given an utterance that the transcript took for the agent's
echo, is there more in it than the echo (the user speaking over it), and what is left once the echo is gone?

Why not cancel the echo as it comes (canceller.py, AEC3)? An interruption said as the agent's first
reply starts is over before any canceller has learnt the echo path: WebRTC's AEC3 suppresses it with the
echo, and a linear canceller that must adapt as it goes leaks the echo's first half-second, which Whisper
then hears with the user's words (docs/performance/turn-taking.md, "Speech over the echo"). Fitted afterwards on the
whole utterance, the same echo path is well determined (the user's speech does not correlate with the
reference), so the echo's words go and the user's stay. Pure numpy, no I/O.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import soxr

from voice_agent.audio import pcm16_to_float

#: Longest echo path delay looked for (the client's buffers, the network back, the room); AEC3 itself finds no
#: longer one. The echo constants live here, in the pure module; the canceller (echo_canceller.py) uses them too.
MAX_DELAY_S = 0.5
#: How much earlier than its reference the echo may seem to come: the gateway places the reference where the
#: microphone audio received so far ends, and the microphone's chunks reach it later than the client plays.
MAX_LEAD_S = 0.2
#: GCC-PHAT's peak over the correlation's standard deviation that means the reference is in the microphone:
#: 20-80 for an echo at -6..-40 dB over 1 s (other speech: 15 at most, seldom).
PEAK_RATIO = 20.0
#: Echo path taps fitted: 64 ms from just before the delay found (a room's early reflections; the reverb
#: tail after it is left, 15 dB or more under the echo in sox's reverb).
TAPS_S = 0.064
PRE_TAPS = 32  # taps before the delay found: its peak may sit a sample or two early
_SEGMENT = 2048  # the least-squares fit's segments (Hann window, 50 % overlap: 75 % fits no better, at twice the cost)
_REGULARISATION = 1e-5  # of the reference's mean power, per frequency: bins it barely excites stay near 0
#: Reference quieter than this (RMS, -50 dBFS) has nothing to find.
SILENT_RMS = 10 ** (-50 / 20)


def find_echo(near: np.ndarray, far: np.ndarray, max_lag: int, max_lead: int = 0) -> tuple[int, float]:
    """GCC-PHAT of ``near`` (microphone) against ``far`` (reference), same length: the lag (samples,
    ``-max_lead`` to ``max_lag``) at which ``far`` best explains ``near``, and the correlation peak over its
    standard deviation (PEAK_RATIO and more: an echo)."""
    size = 1 << (2 * len(near) - 1).bit_length()
    spectrum = np.fft.rfft(near, size) * np.conj(np.fft.rfft(far, size))
    circular = np.fft.irfft(spectrum / (np.abs(spectrum) + 1e-9), size)
    correlation = np.concatenate([circular[size - max_lead :], circular[:max_lag]]) if max_lead else circular[:max_lag]
    index = int(np.argmax(np.abs(correlation)))
    return index - max_lead, float(np.abs(correlation[index]) / (np.std(correlation) + 1e-12))


def fit_echo_path(near: np.ndarray, far: np.ndarray, taps: int) -> np.ndarray:
    """The filter ``h`` (``taps`` long) that best maps ``far`` onto ``near`` (same length, ``far`` already
    shifted by the echo's delay): per frequency, the cross-spectrum over the reference's power, averaged over
    Hann-windowed segments."""
    segment = min(_SEGMENT, 1 << (len(near).bit_length() - 1))
    hop = max(1, segment // 2)
    window = np.hanning(segment).astype(np.float32)
    size = 2 * segment
    segments = np.lib.stride_tricks.sliding_window_view
    x = np.fft.rfft(segments(far[: len(near)], segment)[::hop] * window, size, axis=1)
    d = np.fft.rfft(segments(near, segment)[::hop] * window, size, axis=1)
    power = np.sum(np.abs(x) ** 2, axis=0)
    cross = np.sum(np.conj(x) * d, axis=0)
    response = cross / (power + _REGULARISATION * np.mean(power) + 1e-12)
    h = np.fft.irfft(response, size)[: min(taps, size)]
    fade = min(32, len(h))
    h[-fade:] *= np.linspace(1, 0, fade)  # no step at the filter's end
    return h.astype(np.float32)


@dataclass(frozen=True)
class EchoRemoved:
    """The microphone with the echo fitted and subtracted."""

    residual: np.ndarray  # the microphone less the echo, over the window asked for
    delay_ms: float  # the echo path's delay found
    peak_ratio: float  # how clearly (find_echo)
    level_db: float  # the residual's power over the microphone's, in the span's LEVEL_WINDOW_S where it is highest


#: A phone's jitter buffer moves the echo a jump at a time (it holds the delay, then drops or repeats audio),
#: within +-15 ms of its delay: the echo path is followed block by block within this much of the delay found,
#: which may itself be one of those extremes.
JITTER_S = 0.035
#: The buffer jumps at any 20 ms frame: a 100 ms block that a jump split left half of a loud block's echo, which
#: alone set the loudest second's level at -4.5 dB; 50 ms blocks leave -11 dB (40 ms ones tell shifts apart less
#: well on speech: -8 dB).
JITTER_BLOCK_S = 0.05
#: A block's echo moves only when that leaves its residual this much lower (a share of its power): the user's
#: speech, which the reference does not explain, moves none.
JITTER_GAIN = 0.85
#: A block whose echo has less than this share of the window's mean power keeps the shift before it.
QUIET_BLOCK = 0.1
#: The residual's level is reported for the span's LEVEL_WINDOW_S (every LEVEL_HOP_S) where it is highest: is
#: more than the echo heard anywhere in it? Over a whole utterance, one that the echo started (the VAD hears a
#: loud echo as speech) and the user joined a second later stayed under OVER_ECHO_LEVEL_DB for seconds, its
#: words taken for the echo's; and a "yeah" early in a long one would be missed at its final.
LEVEL_WINDOW_S = 1.0
LEVEL_HOP_S = 0.25


def remove_echo(near: np.ndarray, far: np.ndarray, rate: int, span: tuple[int, int]) -> EchoRemoved | None:
    """Fits the echo of ``far`` in ``near`` (the same window of the mic timeline; ``far`` may go on past its
    end, for an echo that seems to come early) and subtracts it; ``span`` (indices into the window) is the
    part returned, and whose level is reported (``loudest_level_db``). None when the reference is
    silent there or not found."""
    start, end = span
    heard = far[: len(near)]
    if end - start < rate // 10 or np.sqrt(np.mean(heard**2)) < SILENT_RMS:
        return None
    lag, ratio = find_echo(near, heard, min(int(MAX_DELAY_S * rate), len(near)), int(MAX_LEAD_S * rate))
    if ratio < PEAK_RATIO:
        return None
    shift = lag - PRE_TAPS  # the reference moved later by this much (earlier, when negative)
    padded = np.concatenate([np.zeros(max(0, shift), np.float32), far, np.zeros(len(near), np.float32)])
    aligned = padded[max(0, -shift) : max(0, -shift) + len(near)]
    taps = int(TAPS_S * rate)
    residuals = [_followed_residual(near, aligned, h, rate) for h in _starting_paths(near, aligned, taps, rate)]
    residual = min(residuals, key=_energy)
    part = residual[start:end]
    level = loudest_level_db(part, near[start:end], rate)
    return EchoRemoved(part.astype(np.float32), lag * 1000 / rate, ratio, float(level))


#: Besides the path fitted on the whole window, the one fitted on the FIT_PART_S part of it (every half part)
#: that it explains best starts a fit too; the one that leaves less echo is kept. A phone's jitter buffer that
#: moved the delay during the window makes the fit on the whole an average of delays a few ms apart, which
#: explains no part well, and against which no block's shift is clearly better: the echo alone was left at
#: -3 dB. One part, most often, held one delay.
FIT_PART_S = 1.0


def _starting_paths(near: np.ndarray, aligned: np.ndarray, taps: int, rate: int) -> list[np.ndarray]:
    """The path fitted on the whole window, and on its best-explained FIT_PART_S part where it has several."""
    whole = fit_echo_path(near, aligned, taps)
    part = int(FIT_PART_S * rate)
    if len(near) < 2 * part:
        return [whole]
    best: tuple[float, np.ndarray] | None = None
    for start in range(0, len(near) - part + 1, part // 2):
        heard = near[start : start + part]
        power = _energy(heard)
        if power < SILENT_RMS**2 * part:
            continue
        h = fit_echo_path(heard, aligned[start : start + part], taps)
        before = min(start, taps)  # the reference that rings into the part
        left = _energy(heard - _filtered(aligned[start - before : start + part], h)[before:]) / power
        if best is None or left < best[0]:
            best = (left, h)
    return [whole] if best is None else [whole, best[1]]


def _followed_residual(near: np.ndarray, aligned: np.ndarray, h: np.ndarray, rate: int) -> np.ndarray:
    """``near`` less the echo of ``aligned`` through ``h``, the path then followed through a jitter buffer."""
    estimate = _filtered(aligned, h)
    for _ in range(2):  # shifts found with the path fitted on the jittered whole, then once more on the correction
        shifts = jitter_shifts(near, estimate, rate)
        if not any(shifts):
            break
        aligned = shifted(aligned, shifts, rate)
        estimate = _filtered(aligned, fit_echo_path(near, aligned, len(h)))
    return near - estimate


def _filtered(signal: np.ndarray, h: np.ndarray) -> np.ndarray:
    """``signal`` through the filter ``h``, as long as ``signal`` (an FFT convolution: ``h`` is 1024 taps)."""
    size = 1 << (len(signal) + len(h) - 2).bit_length()
    out = np.fft.irfft(np.fft.rfft(signal, size) * np.fft.rfft(h, size), size)[: len(signal)]
    return out.astype(np.float32)


def _energy(samples: np.ndarray) -> float:
    return float(np.sum(np.square(samples, dtype=np.float64)))


def loudest_level_db(residual: np.ndarray, near: np.ndarray, rate: int) -> float:
    """The residual's power over the microphone's in the LEVEL_WINDOW_S where it is highest (dB)."""
    window, hop = min(len(near), int(LEVEL_WINDOW_S * rate)), int(LEVEL_HOP_S * rate)
    left = np.concatenate([[0.0], np.cumsum(np.square(residual, dtype=np.float64))])
    heard = np.concatenate([[0.0], np.cumsum(np.square(near, dtype=np.float64))])
    starts = np.unique(np.append(np.arange(0, len(near) - window + 1, hop), len(near) - window))
    ratios = (left[starts + window] - left[starts] + 1e-20) / (heard[starts + window] - heard[starts] + 1e-20)
    return float(10 * np.log10(ratios.max()))


def jitter_shifts(near: np.ndarray, estimate: np.ndarray, rate: int) -> list[int]:
    """For each JITTER_BLOCK_S block of ``near``, the shift (samples, within JITTER_S) of the echo ``estimate``
    that leaves the least residual there: the block before's (the buffer holds its delay), unless another leaves
    JITTER_GAIN of its residual or less in a block where the echo is loud enough to tell."""
    block, limit = int(JITTER_BLOCK_S * rate), int(JITTER_S * rate)
    padded = np.concatenate([np.zeros(limit), estimate, np.zeros(limit)])
    energy = np.concatenate([[0.0], np.cumsum(padded**2)])  # of padded[:i]
    audible = QUIET_BLOCK * np.mean(estimate.astype(np.float64) ** 2) * block
    shifts, shift = [], 0
    for start in range(0, len(near), block):
        part = near[start : start + block].astype(np.float64)
        if energy[start + limit + len(part)] - energy[start + limit] >= audible * len(part) / block:
            dots = np.correlate(padded[start : start + len(part) + 2 * limit], part, "valid")  # k: shift limit - k
            offsets = start + np.arange(len(dots))
            left = np.dot(part, part) - 2 * dots + energy[offsets + len(part)] - energy[offsets]  # residual power
            best = int(np.argmin(left))
            if left[best] < JITTER_GAIN * left[limit - shift]:
                shift = limit - best
        shifts.append(shift)
    return shifts


def shifted(signal: np.ndarray, shifts: list[int], rate: int) -> np.ndarray:
    """``signal`` with each JITTER_BLOCK_S block taken ``shifts[i]`` samples later (earlier, when negative)."""
    block, limit = int(JITTER_BLOCK_S * rate), int(JITTER_S * rate)
    padded = np.concatenate([np.zeros(limit, np.float32), signal, np.zeros(limit, np.float32)])
    out = np.empty(len(signal), np.float32)
    for i, shift in enumerate(shifts):
        start, end = i * block, min(len(signal), (i + 1) * block)
        out[start:end] = padded[limit + start - shift : limit + end - shift]
    return out


class ReferenceStream:
    """One run of contiguous agent audio at one rate, resampled to the mic rate without seams."""

    def __init__(self, in_rate: int, out_rate: int, at_sample: int) -> None:
        self.in_rate = in_rate
        self._resampler = soxr.ResampleStream(in_rate, out_rate, 1, dtype="float32", quality="HQ")
        self._out_rate = out_rate
        self._start = at_sample
        self._in_total = 0
        self.write_at = at_sample  # where its next output sample goes on the mic timeline

    def next_at(self) -> int:
        """Where the next contiguous chunk would start, on the mic timeline."""
        return self._start + round(self._in_total * self._out_rate / self.in_rate)

    def push(self, samples: np.ndarray, *, last: bool = False) -> tuple[int, np.ndarray]:
        self._in_total += len(samples)
        out = self._resampler.resample_chunk(samples, last=last)
        at = self.write_at
        self.write_at += len(out)
        return at, out


# Two play() chunks are one stream (resampled without a seam) when the second starts within a sample of
# where the first ended.
CONTIGUOUS_SAMPLES = 1


#: Samples a track allocates ahead, and forgets at once: a copy every 2 s of 16 kHz audio.
SPARE_SAMPLES = 32_000


class _Track:
    """Float samples on the mic timeline, from ``base`` on (what is older has been forgotten)."""

    def __init__(self) -> None:
        self.base = 0
        self.data = np.zeros(0, np.float32)

    def add(self, at: int, samples: np.ndarray) -> None:
        if at < self.base:
            samples, at = samples[self.base - at :], self.base
        if not len(samples):
            return
        end = at - self.base + len(samples)
        if end > len(self.data):
            grown = np.zeros(end + SPARE_SAMPLES, np.float32)
            grown[: len(self.data)] = self.data
            self.data = grown
        self.data[at - self.base : end] += samples

    def read(self, start: int, end: int) -> np.ndarray:
        out = np.zeros(end - start, np.float32)
        lo, hi = max(start, self.base), min(end, self.base + len(self.data))
        if hi > lo:
            out[lo - start : hi - start] = self.data[lo - self.base : hi - self.base]
        return out

    def clear_from(self, at: int) -> None:
        if at - self.base < len(self.data):
            self.data[max(0, at - self.base) :] = 0

    def forget_before(self, at: int) -> None:
        drop = at - self.base
        if drop >= SPARE_SAMPLES:  # in steps: one copy per SPARE_SAMPLES
            self.data = self.data[drop:].copy()
            self.base = at


class ReferenceTrack:
    """The agent's audio on the mic timeline, at the mic rate: each chunk placed from the mic sample where the
    client starts playing it, a contiguous run of chunks resampled without seams, overlapping audio mixed.
    Shared by the echo canceller (which reads it frame by frame) and the EchoTimeline (which keeps it)."""

    def __init__(self, rate: int) -> None:
        self.rate = rate
        self._track = _Track()
        self._stream: ReferenceStream | None = None

    def play(self, pcm: bytes, sample_rate: int, at_sample: int) -> None:
        samples = pcm16_to_float(pcm)
        if sample_rate == self.rate:
            self.flush()
            self._track.add(at_sample, samples)
            return
        stream = self._stream
        if stream is None or stream.in_rate != sample_rate or abs(stream.next_at() - at_sample) > CONTIGUOUS_SAMPLES:
            self.flush()
            stream = self._stream = ReferenceStream(sample_rate, self.rate, at_sample)
        self._track.add(*stream.push(samples))

    def flush(self) -> None:
        """Ends the run in progress: what the resampler holds back goes onto the track."""
        if self._stream is not None:
            self._track.add(*self._stream.push(np.zeros(0, np.float32), last=True))
            self._stream = None

    def flush_if_dry(self, end: int) -> None:
        """Flushes the run in progress if it has written nothing up to ``end`` yet: no more audio came for it."""
        if self._stream is not None and self._stream.write_at < end:
            self.flush()

    def stop_playing(self, at: int) -> None:
        """The client stopped playing at mic sample ``at``: the reference from there on goes."""
        self.flush()
        self._track.clear_from(at)

    def read(self, start: int, end: int) -> np.ndarray:
        return self._track.read(start, end)

    def forget_before(self, at: int) -> None:
        self._track.forget_before(at)

    @property
    def kept_samples(self) -> int:
        return self._track.data.size


class EchoTimeline:
    """A session's last HISTORY_S of microphone audio and of the agent's audio, on the mic's timeline.

    ``heard(pcm)``: the next microphone chunk (raw: before any echo cancellation). ``play(pcm, rate, at)``:
    agent audio the client plays from mic sample ``at``. ``stop_playing()``: the client flushed what it had
    not played yet (an interruption). ``over_echo(start, end)``: the utterance between those mic samples,
    with the agent's echo removed (``remove_echo``), when there was an echo to remove.
    """

    HISTORY_S = 8.0  # about 0.5 MB per track at 16 kHz
    #: Audio before the utterance that the echo path is fitted on too: the echo alone, most often.
    LEAD_S = 1.5

    def __init__(self, rate: int) -> None:
        self.rate = rate
        self.position = 0  # mic samples heard
        self._mic = _Track()
        self._reference = ReferenceTrack(rate)

    def heard(self, pcm: bytes) -> None:
        self._mic.add(self.position, pcm16_to_float(pcm))
        self.position += len(pcm) // 2
        keep_from = self.position - int(self.HISTORY_S * self.rate)
        self._mic.forget_before(keep_from)
        self._reference.forget_before(keep_from)

    def play(self, pcm: bytes, sample_rate: int, at_sample: int) -> None:
        self._reference.play(pcm, sample_rate, at_sample)

    def stop_playing(self) -> None:
        self._reference.stop_playing(self.position)

    @property
    def kept_samples(self) -> int:
        """Samples held, microphone and reference together (history, and what is allocated ahead)."""
        return self._mic.data.size + self._reference.kept_samples

    def over_echo(self, start: int, end: int) -> EchoRemoved | None:
        """The microphone from ``start`` to ``end`` with the agent's echo removed, fitted on that and the
        LEAD_S before it; None when the agent's audio is not found in it."""
        end = min(end, self.position)
        start = max(start, self._mic.base, end - int(self.HISTORY_S * self.rate) + int(self.LEAD_S * self.rate))
        window_start = max(self._mic.base, start - int(self.LEAD_S * self.rate))
        near = self._mic.read(window_start, end)
        far = self._reference.read(window_start, end + int(MAX_LEAD_S * self.rate) + PRE_TAPS)
        return remove_echo(near, far, self.rate, (start - window_start, end - window_start))
