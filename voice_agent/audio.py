"""Audio formats, written once: PCM16 conversion, validation, resampling, WAV I/O.

Audio on the wire is PCM16 little-endian mono. Inside a process it is float32
in [-1, 1]. Resampling uses libsoxr (the ``soxr`` package); WAV files are read
with libsndfile (the ``soundfile`` package), whatever their sample format.
"""

from __future__ import annotations

import wave
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
import soxr

from voice_agent.contract import MAX_INPUT_RATE_HZ, MIN_INPUT_RATE_HZ
from voice_agent.errors import InvalidArgument
from voice_agent.v1 import audio_pb2

if TYPE_CHECKING:
    import soundfile

PCM16_SAMPLE_BYTES = 2
ASR_SAMPLE_RATE = 16_000
TTS_OUTPUT_RATES = (8_000, 16_000, 22_050, 24_000, 44_100, 48_000)


def pcm16_to_float(data: bytes) -> np.ndarray:
    return np.frombuffer(data, dtype="<i2").astype(np.float32) / 32768.0


def float_to_pcm16(samples: np.ndarray) -> bytes:
    return (np.clip(samples, -1.0, 1.0) * 32767.0).astype("<i2").tobytes()


def samples_to_ms(samples: int, sample_rate: int) -> int:
    return samples * 1000 // sample_rate


def check_input_rate(sample_rate: int) -> int:
    """Raises InvalidArgument for a microphone rate outside MIN_INPUT_RATE_HZ..MAX_INPUT_RATE_HZ."""
    if not MIN_INPUT_RATE_HZ <= sample_rate <= MAX_INPUT_RATE_HZ:
        raise InvalidArgument(
            f"unsupported sample rate {sample_rate} Hz: use any integer rate from {MIN_INPUT_RATE_HZ} to"
            f" {MAX_INPUT_RATE_HZ} Hz"
        )
    return sample_rate


def check_format(fmt: audio_pb2.AudioFormat) -> int:
    """Validates a stream's declared microphone format; returns its sample rate."""
    if fmt.encoding != audio_pb2.AUDIO_ENCODING_PCM16LE:
        name = (
            audio_pb2.AudioEncoding.Name(fmt.encoding)
            if fmt.encoding in audio_pb2.AudioEncoding.values()
            else fmt.encoding
        )
        raise InvalidArgument(f"unsupported audio encoding {name}: only AUDIO_ENCODING_PCM16LE is accepted")
    return check_input_rate(fmt.sample_rate_hz)


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


# What read_wav takes: WAV (WAVEX: WAVE_FORMAT_EXTENSIBLE, which 24-bit and float files often are) holding
# integer or float linear PCM. Compressed WAV (ADPCM, G.711, MP3) is refused with its name, not guessed at.
WAV_FORMATS = ("WAV", "WAVEX")
WAV_SUBTYPES = ("PCM_U8", "PCM_16", "PCM_24", "PCM_32", "FLOAT", "DOUBLE")


def read_wav(path: str | Path) -> Pcm16Audio:
    """Reads a WAV as people's files come: 8 to 48 kHz, 8-, 16-, 24- or 32-bit integer or 32/64-bit float
    samples, mono or stereo (mixed down to mono). Raises ValueError naming what it cannot take."""
    import soundfile  # here: only the CLI, tests and benchmarks read files; no server loads libsndfile

    with open(path, "rb") as file:  # a missing file: FileNotFoundError, not libsndfile's "System error"
        try:
            wav = soundfile.SoundFile(file)
        except soundfile.LibsndfileError as error:
            raise ValueError(f"{path}: not a WAV file ({error.error_string.rstrip('.')})") from None
        with wav:
            _check_wav(path, wav)
            samples = wav.read(dtype="float32", always_2d=True)
    return Pcm16Audio(_to_pcm16(samples.mean(axis=1)), wav.samplerate)


def _check_wav(path: str | Path, wav: soundfile.SoundFile) -> None:
    if wav.format not in WAV_FORMATS:
        raise ValueError(f"{path}: a {wav.format} file, not a WAV")
    if wav.subtype not in WAV_SUBTYPES:
        raise ValueError(
            f"{path}: WAV of {wav.subtype} ({wav.subtype_info}) samples: use 16-, 24- or 32-bit integer or float PCM"
        )
    if not MIN_INPUT_RATE_HZ <= wav.samplerate <= MAX_INPUT_RATE_HZ:
        raise ValueError(f"{path}: WAV at {wav.samplerate} Hz: use {MIN_INPUT_RATE_HZ} to {MAX_INPUT_RATE_HZ} Hz")


def _to_pcm16(samples: np.ndarray) -> bytes:
    # Scaled by 32768 and rounded (libsndfile's own scale), so that a 16-bit file comes back bit for bit.
    return np.clip(np.round(samples * 32768.0), -32768, 32767).astype("<i2").tobytes()


def write_wav(path: str | Path, audio: Pcm16Audio) -> None:
    """Writes 16-bit PCM mono."""
    with wave.open(str(path), "wb") as wav:
        wav.setnchannels(1)
        wav.setsampwidth(PCM16_SAMPLE_BYTES)
        wav.setframerate(audio.sample_rate)
        wav.writeframes(audio.data)
