"""Audio formats, written once: PCM16 conversion, validation, resampling, WAV I/O.

Audio on the wire is PCM16 little-endian mono. Inside a process it is float32
in [-1, 1]. Resampling uses libsoxr (the ``soxr`` package).
"""

from __future__ import annotations

import wave
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import soxr

from voice_agent.errors import InvalidArgument
from voice_agent.v1 import audio_pb2

PCM16_SAMPLE_BYTES = 2
ASR_SAMPLE_RATE = 16_000
ASR_INPUT_RATES = (8_000, 16_000, 24_000, 48_000)
TTS_OUTPUT_RATES = (8_000, 16_000, 22_050, 24_000, 44_100, 48_000)


def pcm16_to_float(data: bytes) -> np.ndarray:
    return np.frombuffer(data, dtype="<i2").astype(np.float32) / 32768.0


def float_to_pcm16(samples: np.ndarray) -> bytes:
    return (np.clip(samples, -1.0, 1.0) * 32767.0).astype("<i2").tobytes()


def samples_to_ms(samples: int, sample_rate: int) -> int:
    return samples * 1000 // sample_rate


def check_format(fmt: audio_pb2.AudioFormat, allowed_rates: tuple[int, ...]) -> int:
    """Validates a stream's declared format; returns its sample rate."""
    if fmt.encoding != audio_pb2.AUDIO_ENCODING_PCM16LE:
        name = (
            audio_pb2.AudioEncoding.Name(fmt.encoding)
            if fmt.encoding in audio_pb2.AudioEncoding.values()
            else fmt.encoding
        )
        raise InvalidArgument(f"unsupported audio encoding {name}: only AUDIO_ENCODING_PCM16LE is accepted")
    if fmt.sample_rate_hz not in allowed_rates:
        raise InvalidArgument(
            f"unsupported sample rate {fmt.sample_rate_hz} Hz: use one of {', '.join(map(str, allowed_rates))}"
        )
    return fmt.sample_rate_hz


def check_pcm16_chunk(data: bytes, sample_rate: int, max_ms: int) -> None:
    """Raises InvalidArgument for a chunk that cannot be PCM16 or is too long."""
    if len(data) % PCM16_SAMPLE_BYTES:
        raise InvalidArgument(f"audio chunk has an odd byte count ({len(data)}): PCM16 needs 2 bytes per sample")
    samples = len(data) // PCM16_SAMPLE_BYTES
    if samples * 1000 > max_ms * sample_rate:
        raise InvalidArgument(
            f"audio chunk holds {samples * 1000 / sample_rate:.1f} ms of audio: at most {max_ms} ms per message"
        )


class StreamResampler:
    """Streaming resampler; a pass-through when the rates match.

    libsoxr holds back a few ms of output for its filter; ``flush`` releases
    it at the end of the stream. Output sample k stays aligned with input
    time k / out_rate, so offsets computed on the output are exact.
    """

    def __init__(self, in_rate: int, out_rate: int) -> None:
        self._stream = None if in_rate == out_rate else soxr.ResampleStream(in_rate, out_rate, 1, dtype="float32")

    def process(self, samples: np.ndarray) -> np.ndarray:
        return samples if self._stream is None else self._stream.resample_chunk(samples)

    def flush(self) -> np.ndarray:
        if self._stream is None:
            return np.zeros(0, dtype=np.float32)
        return self._stream.resample_chunk(np.zeros(0, dtype=np.float32), last=True)


def resample(samples: np.ndarray, in_rate: int, out_rate: int) -> np.ndarray:
    return samples if in_rate == out_rate else soxr.resample(samples, in_rate, out_rate).astype(np.float32)


@dataclass
class Pcm16Audio:
    """Mono PCM16 audio and its rate."""

    data: bytes
    sample_rate: int

    @property
    def duration_ms(self) -> int:
        return samples_to_ms(len(self.data) // PCM16_SAMPLE_BYTES, self.sample_rate)

    def resampled(self, sample_rate: int) -> Pcm16Audio:
        if sample_rate == self.sample_rate:
            return self
        samples = resample(pcm16_to_float(self.data), self.sample_rate, sample_rate)
        return Pcm16Audio(float_to_pcm16(samples), sample_rate)

    def chunks(self, chunk_ms: int, *, pad: bool = False) -> list[bytes]:
        """``chunk_ms`` pieces; with ``pad``, the short last one is filled with silence,
        as a microphone's fixed-size buffers are."""
        step = self.sample_rate * chunk_ms // 1000 * PCM16_SAMPLE_BYTES
        data = self.data + b"\0" * (-len(self.data) % step) if pad else self.data
        return [data[i : i + step] for i in range(0, len(data), step)]


def read_wav(path: str | Path) -> Pcm16Audio:
    """Reads a 16-bit WAV; stereo is mixed down to mono."""
    with wave.open(str(path), "rb") as wav:
        if wav.getsampwidth() != PCM16_SAMPLE_BYTES:
            raise ValueError(f"{path}: {8 * wav.getsampwidth()}-bit samples; only 16-bit PCM WAV is supported")
        frames = wav.readframes(wav.getnframes())
        channels, rate = wav.getnchannels(), wav.getframerate()
    if channels > 1:
        mixed = np.frombuffer(frames, dtype="<i2").reshape(-1, channels).mean(axis=1)
        frames = mixed.astype("<i2").tobytes()
    return Pcm16Audio(frames, rate)


def write_wav(path: str | Path, audio: Pcm16Audio) -> None:
    with wave.open(str(path), "wb") as wav:
        wav.setnchannels(1)
        wav.setsampwidth(PCM16_SAMPLE_BYTES)
        wav.setframerate(audio.sample_rate)
        wav.writeframes(audio.data)
