import numpy as np
import pytest

from voice_agent.audio import (
    Pcm16Audio,
    StreamResampler,
    check_format,
    check_pcm16_chunk,
    float_to_pcm16,
    pcm16_to_float,
    read_wav,
    write_wav,
)
from voice_agent.errors import InvalidArgument
from voice_agent.v1 import audio_pb2


def test_pcm16_round_trip() -> None:
    samples = np.array([0.0, 0.5, -0.5, 0.999], dtype=np.float32)
    assert np.allclose(pcm16_to_float(float_to_pcm16(samples)), samples, atol=1e-4)


def test_chunk_checks_name_the_problem() -> None:
    check_pcm16_chunk(b"\0" * 32_000, 16_000, 1000)
    with pytest.raises(InvalidArgument, match="odd byte count"):
        check_pcm16_chunk(b"\0" * 3, 16_000, 1000)
    with pytest.raises(InvalidArgument, match=r"1000\.1 ms"):
        check_pcm16_chunk(b"\0" * 32_002, 16_000, 1000)


def test_format_checks() -> None:
    pcm = audio_pb2.AUDIO_ENCODING_PCM16LE
    assert check_format(audio_pb2.AudioFormat(encoding=pcm, sample_rate_hz=48_000), (16_000, 48_000)) == 48_000
    with pytest.raises(InvalidArgument, match="44100"):
        check_format(audio_pb2.AudioFormat(encoding=pcm, sample_rate_hz=44_100), (16_000, 48_000))
    with pytest.raises(InvalidArgument, match="encoding"):
        check_format(audio_pb2.AudioFormat(sample_rate_hz=16_000), (16_000,))


@pytest.mark.parametrize("rate", [8_000, 24_000, 48_000])
def test_streaming_resampler_keeps_time_and_pitch(rate: int) -> None:
    seconds, tone = 2, 440.0
    t = np.arange(rate * seconds) / rate
    signal = (0.5 * np.sin(2 * np.pi * tone * t)).astype(np.float32)
    resampler = StreamResampler(rate, 16_000)
    pieces = [resampler.process(chunk) for chunk in np.array_split(signal, 37)]
    out = np.concatenate([*pieces, resampler.flush()])
    assert abs(len(out) - 16_000 * seconds) <= 2
    spectrum = np.abs(np.fft.rfft(out))
    assert abs(np.argmax(spectrum) * 16_000 / len(out) - tone) < 2


def test_wav_round_trip(tmp_path) -> None:
    audio = Pcm16Audio(float_to_pcm16(np.linspace(-0.5, 0.5, 800, dtype=np.float32)), 8_000)
    write_wav(tmp_path / "a.wav", audio)
    assert read_wav(tmp_path / "a.wav") == audio
    assert audio.duration_ms == 100
    assert [len(c) for c in audio.chunks(30)] == [480, 480, 480, 160]
    assert [len(c) for c in audio.chunks(30, pad=True)] == [480] * 4
