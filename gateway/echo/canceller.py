"""Server-side acoustic echo cancellation (issue 17): the agent's own voice, played by the client's speaker
and picked up again by its microphone, removed from the microphone audio before VAD and ASR.

The gateway knows what the client plays: each agent audio chunk, from the mic-timeline sample at which the
client starts playing it. ``EchoCanceller.play`` places that reference on the microphone's timeline
(resampled to the mic rate), and ``EchoCanceller.process`` cleans the next microphone chunk against it; where
the agent is silent the reference is zeros. The echo path's own delay (the client's output and input buffers,
the room: 50-300 ms) is found by the canceller; ``delay_hint_ms`` can tell it a known one.

The canceller is WebRTC's AEC3, through LiveKit's Python SDK (``livekit.rtc.AudioProcessingModule``): it won
the comparison with speexdsp's echo canceller and with no cancellation (benchmarks/aec.py,
docs/performance/echo-cancellation.md). Its calls are synchronous FFI calls into the
native library on the calling thread (no event loop needed), on 10 ms frames; about 0.1 ms of CPU per 10 ms
of audio. One canceller per session, not thread-safe; cheap enough to call from the event loop.
"""

from __future__ import annotations

import logging
from typing import Any

import numpy as np

from gateway.echo.path import MAX_DELAY_S, PEAK_RATIO, SILENT_RMS, ReferenceTrack, find_echo
from voice_agent.audio import PCM16_SAMPLE_BYTES, pcm16_to_float

log = logging.getLogger(__name__)

FRAME_MS = 10  # AEC3 processes 10 ms frames only
#: Mic rates the canceller takes (AEC3 runs natively at 8, 16, 32 and 48 kHz, and resamples 24 kHz itself).
MIC_RATES = (8_000, 16_000, 24_000, 32_000, 48_000)


class EchoCancellerUnavailable(RuntimeError):
    """The echo canceller's library (livekit) is not installed or its native library does not load."""


def _rtc() -> Any:
    try:
        from livekit import rtc
    except ImportError as error:  # the package, or its native liblivekit_ffi.so
        raise EchoCancellerUnavailable(
            f"echo cancellation needs the livekit package (pip install 'livekit==1.2.0'): {error}"
        ) from error
    return rtc


class EchoDetector:
    """Whether the agent's voice comes back in the microphone: GCC-PHAT of the last WINDOW_S of reference
    against the last WINDOW_S of microphone audio, at delays up to MAX_DELAY_S, every STEP_S while the
    reference is not silent (MAX_DELAY_S, PEAK_RATIO and SILENT_RMS: echo_path.py's). ON_AFTER checks in a row
    that find the echo switch it on, OFF_AFTER that do not switch it off; while the agent is silent the verdict
    stays. ``converged`` says the echo has been there for CONVERGE_S of the agent's speech: AEC3 has learnt
    its path.

    Why: a fresh AEC3 assumes an echo until it has learnt the echo path, and with no echo to learn from
    (a headset, or a client whose own echo cancellation already worked) it suppresses the user's speech over
    the agent by about 40 dB for seconds, which would swallow every barge-in. So AEC3's output is used only
    while there is an echo to cancel; otherwise the microphone audio passes untouched. Measured at 16 kHz on
    espeak speech: the phase-transform peak stands 20-80 times above the correlation's spread for an echo at
    -6 to -30 dB, dry or through a room, found 0.1-0.5 s after the reply starts (its delay, plus one step);
    speech that is not the reference reaches 15 at most, once in a while, never twice in a row."""

    WINDOW_S = 1.0
    STEP_S = 0.1
    ON_AFTER = 2
    OFF_AFTER = 10  # an echo path seldom goes mid-reply; a check that misses it under double talk is common
    # Before this much of the agent's speech with its echo, AEC3 still cuts the user's words over the echo by
    # ~40 dB (at 0.3 s into the first reply) where after it keeps them within 2 dB (at 1.5 s): until then
    # the raw audio goes on, its echo left to the transcript's echo rejection.
    CONVERGE_S = 1.0

    def __init__(self, rate: int) -> None:
        self._window = int(rate * self.WINDOW_S)
        self._max_lag = int(rate * MAX_DELAY_S)
        self._step = int(rate * self.STEP_S)
        self._far = np.zeros(self._window, np.float32)
        self._near = np.zeros(self._window, np.float32)
        self._since = 0  # samples since the last check
        self._streak = 0  # checks in a row that disagreed with the verdict
        self._with_echo = 0  # samples of the agent's speech checked while the echo was found
        self._converge = int(rate * self.CONVERGE_S)
        self.echo = False

    @property
    def converged(self) -> bool:
        return self.echo and self._with_echo >= self._converge

    def push(self, far: bytes | bytearray, near: bytes) -> None:
        """One frame of reference and the raw microphone frame at the same position."""
        f, n = pcm16_to_float(bytes(far)), pcm16_to_float(near)
        self._far = np.concatenate([self._far[len(f) :], f])
        self._near = np.concatenate([self._near[len(n) :], n])
        self._since += len(f)
        if self._since >= self._step:
            self._since = 0
            self._check()

    def _check(self) -> None:
        if np.sqrt(np.mean(self._far**2)) < SILENT_RMS:
            return  # the agent was silent: nothing to learn; keep the verdict
        found = find_echo(self._near, self._far, self._max_lag)[1] > PEAK_RATIO
        self._streak = 0 if found == self.echo else self._streak + 1
        if self._streak >= (self.ON_AFTER if found else self.OFF_AFTER):
            self.echo, self._streak = found, 0
        if self.echo:
            self._with_echo += self._step


class EchoCanceller:
    """Removes the agent's echo from one session's microphone audio (PCM16 mono at ``mic_rate``).

    ``play(pcm, sample_rate, at_sample)``: agent audio the client plays from mic-timeline sample ``at_sample``
    (the count of mic samples passed to ``process`` before it); any rate, resampled here; overlapping audio is
    mixed; audio before the samples already processed is dropped.
    ``process(pcm)``: the next mic chunk, cleaned, the same length. Chunks of whole 10 ms frames come back
    with no delay; other lengths (an even number of bytes) are buffered, and the output then lags the input
    by the largest remainder seen (under 10 ms), constant from then on.
    """

    def __init__(
        self,
        mic_rate: int = 16_000,
        *,
        delay_hint_ms: int | None = None,
        noise_suppression: bool = False,
        high_pass_filter: bool = False,
    ) -> None:
        if mic_rate not in MIC_RATES:
            raise ValueError(f"mic_rate must be one of {MIC_RATES}, got {mic_rate}")
        longest_ms = int(MAX_DELAY_S * 1000)
        if delay_hint_ms is not None and not 0 <= delay_hint_ms <= longest_ms:
            raise ValueError(f"delay_hint_ms must be in 0..{longest_ms}")
        rtc = _rtc()
        self._frame_cls = rtc.AudioFrame
        try:
            self._apm = rtc.AudioProcessingModule(
                echo_cancellation=True,
                noise_suppression=noise_suppression,
                high_pass_filter=high_pass_filter,
                auto_gain_control=False,
            )
        except (ImportError, OSError) as error:
            raise EchoCancellerUnavailable(f"livekit's native audio processing did not load: {error}") from error
        self.mic_rate = mic_rate
        self._frame = mic_rate * FRAME_MS // 1000
        self._delay_hint = delay_hint_ms
        self._position = 0  # mic samples handed to AEC3 so far
        self._reference = ReferenceTrack(mic_rate)  # read, and forgotten, up to self._position
        self._pending = bytearray()  # mic bytes short of a whole frame
        self._cleaned = bytearray()  # cleaned bytes not yet returned
        self._lag = 0  # bytes of silence the output was started with (see process)
        self._detector = EchoDetector(mic_rate)
        self._cancelling = False  # AEC3's output is what process returns
        #: Whether the output may change between the raw audio and AEC3's now. The caller clears it while the
        #: VAD hears speech: an utterance that began on the raw audio (the echo, the user over it) and went on
        #: in AEC3's would be cut into pieces Whisper garbles, neither the agent's words nor the user's.
        self.may_switch = True

    @property
    def position(self) -> int:
        """Mic samples received by ``process`` so far."""
        return self._position + len(self._pending) // PCM16_SAMPLE_BYTES

    @property
    def echo_found(self) -> bool:
        """Whether AEC3's output is what ``process`` returns: the agent's voice was found in the microphone,
        for long enough that AEC3 has learnt its path."""
        return self._cancelling

    @property
    def lag_samples(self) -> int:
        """How far the output lags the input (0 while every chunk was whole 10 ms frames)."""
        return self._lag // PCM16_SAMPLE_BYTES

    def play(self, pcm: bytes, sample_rate: int, at_sample: int) -> None:
        self._reference.play(pcm, sample_rate, at_sample)

    def stop_playing(self) -> None:
        """The client stopped playing (an interruption flushed its buffer): the reference still to come goes.
        Left in, AEC3 would take the user's speech over that silence for double talk and suppress it."""
        self._reference.stop_playing(self._position)

    def process(self, pcm: bytes) -> bytes:
        if len(pcm) % PCM16_SAMPLE_BYTES:
            raise ValueError("PCM16 audio has an even number of bytes")
        self._pending += pcm
        frame_bytes = self._frame * PCM16_SAMPLE_BYTES
        whole = len(self._pending) // frame_bytes * frame_bytes
        if whole:
            self._cleaned += self._cancel(bytes(self._pending[:whole]))
            del self._pending[:whole]
        if len(self._cleaned) < len(pcm):  # a remainder is held back: start the output that much later
            deficit = len(pcm) - len(self._cleaned)
            self._cleaned[:0] = bytes(deficit)
            self._lag += deficit
        out = bytes(self._cleaned[: len(pcm)])
        del self._cleaned[: len(pcm)]
        return out

    def close(self) -> None:
        """Releases the native canceller now (it is also released when garbage-collected)."""
        self._apm._ffi_handle.dispose()

    def _cancel(self, mic: bytes) -> bytes:
        """``mic`` (whole frames) through AEC3, each frame after its reference frame; AEC3's output is what
        comes back only while the echo detector finds the reference in the microphone (see EchoDetector)."""
        samples = len(mic) // PCM16_SAMPLE_BYTES
        self._reference.flush_if_dry(self._position + samples)  # else the resampler would hold the last back
        reference = self._take_reference(samples)
        step = self._frame * PCM16_SAMPLE_BYTES
        cleaned = []
        for start in range(0, len(mic), step):
            far = bytearray(reference[start : start + step])
            self._apm.process_reverse_stream(self._frame_cls(far, self.mic_rate, 1, self._frame))
            if self._delay_hint is not None:
                self._apm.set_stream_delay_ms(self._delay_hint)
            raw = mic[start : start + step]
            near = bytearray(raw)
            self._apm.process_stream(self._frame_cls(near, self.mic_rate, 1, self._frame))  # in place
            self._detector.push(far, raw)
            if self.may_switch:
                self._cancelling = self._detector.converged
            cleaned.append(near if self._cancelling else raw)
        self._position += samples
        return b"".join(cleaned)

    def _take_reference(self, samples: int) -> bytes:
        end = self._position + samples
        taken = self._reference.read(self._position, end)
        self._reference.forget_before(end)
        return np.clip(taken * 32768, -32768, 32767).astype("<i2").tobytes()


def create_echo_canceller(mic_rate: int = 16_000, **options: Any) -> EchoCanceller | None:
    """An ``EchoCanceller``, or None (logged once per call) when livekit is not installed."""
    try:
        return EchoCanceller(mic_rate, **options)
    except EchoCancellerUnavailable as error:
        log.warning("no echo cancellation: %s", error)
        return None
