import numpy as np
import pytest
import soundfile

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

pytestmark = pytest.mark.unit  # no model, no service: make test-unit


def test_pcm16_round_trip() -> None:
    samples = np.array([0.0, 0.5, -0.5, 0.999], dtype=np.float32)
    assert np.allclose(pcm16_to_float(float_to_pcm16(samples)), samples, atol=1e-4)


def test_chunk_checks_name_the_problem() -> None:
    check_pcm16_chunk(b"\0" * 32_000, 16_000, 1000)
    with pytest.raises(InvalidArgument, match="odd byte count"):
        check_pcm16_chunk(b"\0" * 3, 16_000, 1000)
    with pytest.raises(InvalidArgument, match=r"1000\.1 ms"):
        check_pcm16_chunk(b"\0" * 32_002, 16_000, 1000)


@pytest.mark.parametrize("rate", [8_000, 11_025, 22_050, 44_100, 48_000])
def test_any_input_rate_in_range_is_taken(rate: int) -> None:
    pcm = audio_pb2.AUDIO_ENCODING_PCM16LE
    assert check_format(audio_pb2.AudioFormat(encoding=pcm, sample_rate_hz=rate)) == rate


@pytest.mark.parametrize("rate", [0, 7_999, 48_001, 96_000])
def test_input_rates_out_of_range_are_refused_naming_the_range(rate: int) -> None:
    pcm = audio_pb2.AUDIO_ENCODING_PCM16LE
    with pytest.raises(InvalidArgument, match=rf"sample rate {rate} Hz: use any integer rate from 8000 to 48000 Hz"):
        check_format(audio_pb2.AudioFormat(encoding=pcm, sample_rate_hz=rate))


def test_format_checks_name_the_encoding() -> None:
    with pytest.raises(InvalidArgument, match="encoding"):
        check_format(audio_pb2.AudioFormat(sample_rate_hz=16_000))


@pytest.mark.parametrize("rate", [8_000, 22_050, 24_000, 44_100, 48_000])
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


def _tone(rate: int, seconds: float = 0.5, channels: int = 1) -> np.ndarray:
    """A 440 Hz tone at half scale; a second channel (if any) is silent, so that the mono mix is at a quarter."""
    t = np.arange(int(rate * seconds)) / rate
    tone = 0.5 * np.sin(2 * np.pi * 440 * t)
    return tone if channels == 1 else np.stack([tone, np.zeros_like(tone)], axis=1)


# People's files: each written by libsndfile as a recorder or an editor would.
PEOPLES_WAVS = {
    "44.1 kHz 24-bit stereo": (44_100, "PCM_24", 2),
    "22.05 kHz float32": (22_050, "FLOAT", 1),
    "8 kHz 16-bit": (8_000, "PCM_16", 1),
    "48 kHz 32-bit int": (48_000, "PCM_32", 1),
    "16 kHz float64 stereo": (16_000, "DOUBLE", 2),
}


@pytest.mark.parametrize("case", PEOPLES_WAVS, ids=list(PEOPLES_WAVS))
def test_read_wav_takes_peoples_files(tmp_path, case: str) -> None:
    rate, subtype, channels = PEOPLES_WAVS[case]
    samples = _tone(rate, channels=channels)
    soundfile.write(tmp_path / "in.wav", samples, rate, subtype=subtype, format="WAV")
    audio = read_wav(tmp_path / "in.wav")
    assert audio.sample_rate == rate
    assert audio.duration_ms == 500
    mono = samples if channels == 1 else samples.mean(axis=1)
    assert np.allclose(pcm16_to_float(audio.data), mono, atol=1 / 16_000), "the same tone, mixed down to mono"


def test_read_wav_takes_wave_format_extensible(tmp_path) -> None:
    """24-bit and float files often come as WAVE_FORMAT_EXTENSIBLE (65534), which the wave module refuses."""
    soundfile.write(tmp_path / "in.wav", _tone(44_100, channels=2), 44_100, subtype="PCM_24", format="WAVEX")
    with open(tmp_path / "in.wav", "rb") as file:
        assert int.from_bytes(file.read(22)[20:22], "little") == 0xFFFE  # the format tag, as the file had
    assert read_wav(tmp_path / "in.wav").sample_rate == 44_100


def test_read_wav_keeps_16_bit_samples_exactly(tmp_path) -> None:
    pcm = np.array([-32768, -1, 0, 1, 12345, 32767], dtype="<i2")
    soundfile.write(tmp_path / "in.wav", pcm, 16_000, subtype="PCM_16")
    assert read_wav(tmp_path / "in.wav").data == pcm.tobytes()


BAD_FILES = {
    "not audio": (lambda path: path.write_text("hello, I am not a WAV\n"), r"not a WAV file"),
    "empty": (lambda path: path.write_bytes(b""), r"not a WAV file"),
    "FLAC": (lambda path: soundfile.write(path, _tone(16_000), 16_000, format="FLAC"), r"a FLAC file, not a WAV"),
    "G.711 mu-law WAV": (
        lambda path: soundfile.write(path, _tone(8_000), 8_000, subtype="ULAW", format="WAV"),
        r"WAV of ULAW .*samples: use 16-, 24- or 32-bit integer or float PCM",
    ),
    "96 kHz": (
        lambda path: soundfile.write(path, _tone(96_000), 96_000, subtype="PCM_24"),
        r"WAV at 96000 Hz: use 8000 to 48000 Hz",
    ),
    "6 kHz": (lambda path: soundfile.write(path, _tone(6_000), 6_000), r"WAV at 6000 Hz: use 8000 to 48000 Hz"),
}


@pytest.mark.parametrize("case", BAD_FILES, ids=list(BAD_FILES))
def test_read_wav_refuses_what_it_cannot_take_in_one_line(tmp_path, case: str) -> None:
    write, message = BAD_FILES[case]
    path = tmp_path / "in.wav"
    write(path)
    with pytest.raises(ValueError, match=message) as refused:
        read_wav(path)
    assert str(path) in str(refused.value) and "\n" not in str(refused.value)


def test_read_wav_of_a_missing_file_says_so(tmp_path) -> None:
    with pytest.raises(FileNotFoundError):
        read_wav(tmp_path / "nowhere.wav")
