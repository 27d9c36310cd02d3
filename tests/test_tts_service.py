"""The TTS service end to end: real server processes per engine (Kokoro, Piper), real
models, and the real ASR service to check what was said."""

from __future__ import annotations

import asyncio
import itertools
import urllib.request

import grpc
import numpy as np
import pytest
from grpc_health.v1 import health_pb2, health_pb2_grpc
from support import ServiceProcess, stream_error

from services.tts.config import TtsConfig
from services.tts.engines import REALTIME_VOICES, TtsEngine
from services.tts.engines.kokoro import REALTIME_VOICE_CHOICES, realtime_voice_aliases
from services.tts.protocol import settings_from_config
from voice_agent.audio import Pcm16Audio
from voice_agent.client.asr import recognize
from voice_agent.client.tts import synthesize, synthesize_stream, words
from voice_agent.errors import InvalidArgument
from voice_agent.v1 import tts_pb2, tts_pb2_grpc
from voice_ops.samples import word_error_rate

COACHING = [
    "Take a deep breath before you start speaking.",
    "Your opening should tell the audience why this matters.",
    "Try to slow down when you reach the main point.",
    "That was much clearer than your first attempt.",
    "Pause for a moment after each important idea.",
    "Make eye contact with one person at a time.",
    "Keep your answer short and finish with a clear example.",
    "Tell me how you would handle a difficult question.",
    "Practice the first minute until it feels natural.",
    "You sound confident when you smile while talking.",
]
THREE_SENTENCES = (
    "Good start on the opening. Now tell me about the project you led last year. "
    "Focus on what you changed and why it mattered to your team."
)
SILENCE_16K = b"\0" * 9600  # 300 ms


def engine_of(server: ServiceProcess) -> str:
    return server.engine  # type: ignore[attr-defined]


async def test_round_trip_through_the_real_asr(tts_channel: grpc.aio.Channel, asr_channel: grpc.aio.Channel) -> None:
    heard_all = []
    for sentence in COACHING:
        speech = (await synthesize(tts_channel, sentence, sample_rate_hz=16_000)).audio()
        assert speech.sample_rate == 16_000
        padded = Pcm16Audio(SILENCE_16K + speech.data + SILENCE_16K * 3, 16_000)
        heard = (await recognize(asr_channel, padded, realtime=False)).text
        # Whisper tiny mishears a word now and then (Piper's synthesis is randomised: its noise
        # scale), so one sentence may lose a word; a broken voice loses far more.
        assert word_error_rate(sentence, heard) <= 0.25, (sentence, heard)
        heard_all.append(heard)
    assert word_error_rate(" ".join(COACHING), " ".join(heard_all)) <= 0.05, heard_all


async def test_first_audio_comes_before_the_last_phrase_is_synthesized(tts_channel: grpc.aio.Channel) -> None:
    result = await synthesize(tts_channel, THREE_SENTENCES)
    chunks = [chunk for _, chunk in result.chunks]
    assert len(result.phrases) >= 3
    first, last = chunks[0], chunks[-1]
    last_phrase_started_ms = last.timing.stream_elapsed_ms - last.timing.synthesis_ms
    assert first.timing.stream_elapsed_ms < last_phrase_started_ms
    # and the client had it first too
    first_arrival = result.chunks[0][0]
    last_phrase_arrival = next(t for t, c in result.chunks if c.phrase_index == last.phrase_index)
    assert first_arrival < last_phrase_arrival


async def test_word_by_word_fragments_come_out_phrase_by_phrase(tts_channel: grpc.aio.Channel) -> None:
    result = await synthesize_stream(tts_channel, words(THREE_SENTENCES), interval_s=0.01)
    chunks = [chunk for _, chunk in result.chunks]
    assert [c.sequence_number for c in chunks] == list(range(len(chunks)))
    indexes = [c.phrase_index for c in chunks]
    assert indexes == sorted(indexes) and len(set(indexes)) >= 3
    spans = result.phrases
    assert spans[0][0] == 0 and spans[-1][1] == len(THREE_SENTENCES)
    assert all(a[1] == b[0] for a, b in itertools.pairwise(spans)), spans
    assert all(
        c.phrase_end == (i + 1 == len(chunks) or chunks[i + 1].phrase_index != c.phrase_index)
        for i, c in enumerate(chunks)
    )
    first_phrase = THREE_SENTENCES[spans[0][0] : spans[0][1]]
    assert len(first_phrase.split()) <= 4, first_phrase


async def test_flush_speaks_the_text_so_far(tts_channel: grpc.aio.Channel) -> None:
    stub = tts_pb2_grpc.TtsStub(tts_channel)
    flushed = asyncio.Event()

    async def requests():
        yield tts_pb2.SynthesizeStreamRequest(config=tts_pb2.SynthesisConfig(first_phrase_words=20))
        yield tts_pb2.SynthesizeStreamRequest(text="Welcome back")
        yield tts_pb2.SynthesizeStreamRequest(flush=tts_pb2.SynthesizeStreamRequest.Flush())
        await flushed.wait()  # no more text until the flushed phrase is heard
        yield tts_pb2.SynthesizeStreamRequest(text=" to practice")

    chunks = []
    async for response in stub.SynthesizeStream(requests()):
        chunks.append(response.audio)
        flushed.set()
    assert [(c.text_start, c.text_end) for c in chunks if c.phrase_offset_ms == 0] == [(0, 12), (12, 24)]


def _phrases_total(server: ServiceProcess) -> float:
    with urllib.request.urlopen(f"http://127.0.0.1:{server.metrics_port}/metrics", timeout=5) as reply:
        text = reply.read().decode()
    return sum(float(line.split()[-1]) for line in text.splitlines() if line.startswith("voice_tts_phrases_total{"))


async def test_cancelling_stops_synthesis_within_one_phrase(
    tts_server: ServiceProcess, tts_channel: grpc.aio.Channel
) -> None:
    text = " ".join(COACHING * 2)
    before = _phrases_total(tts_server)
    stub = tts_pb2_grpc.TtsStub(tts_channel)

    async def requests():
        yield tts_pb2.SynthesizeStreamRequest(config=tts_pb2.SynthesisConfig())
        for fragment in words(text):
            yield tts_pb2.SynthesizeStreamRequest(text=fragment)
        await asyncio.sleep(60)  # keep the stream open: the client, not the text, ends it

    call = stub.SynthesizeStream(requests())
    async for _ in call:
        break
    call.cancel()
    at_cancel = _phrases_total(tts_server)
    await asyncio.sleep(2.5)
    after = _phrases_total(tts_server)
    assert after - at_cancel <= 1, (before, at_cancel, after)
    assert after - before < len(COACHING)  # far from the 20 sentences sent


# ---- text handling and bad input


@pytest.mark.parametrize("text", ["", "   \n\t ", "😀👍", "\x00\x07"])
async def test_nothing_to_say_is_ok_with_no_audio(tts_channel: grpc.aio.Channel, text: str) -> None:
    assert (await synthesize(tts_channel, text)).chunks == []
    assert (await synthesize_stream(tts_channel, [text])).chunks == []


@pytest.mark.parametrize(
    "text",
    [
        "In 2024 we grew 35% to $1.2M, i.e. 3x the plan.",
        "Dr. Smith, Ph.D., met Mr. Jones at 10:30 a.m. on St. Patrick's Day.",
        "Great job 😀👏🏽! Keep going 🚀",
        "Tab\there, bell\x07, null\x00 and a line\nbreak.",
        "Привет, как дела? 你好。 Bonjour à tous.",
    ],
)
async def test_awkward_text_does_not_crash(tts_channel: grpc.aio.Channel, text: str) -> None:
    result = await synthesize(tts_channel, text)
    assert result.audio().duration_ms > 300


async def test_output_rate_and_list_voices(tts_server: ServiceProcess, tts_channel: grpc.aio.Channel) -> None:
    stub = tts_pb2_grpc.TtsStub(tts_channel)
    voices = await stub.ListVoices(tts_pb2.ListVoicesRequest())
    assert voices.engine == engine_of(tts_server)
    assert voices.default_voice in voices.voices
    assert voices.sample_rate_hz == {"kokoro": 24_000, "piper": 22_050}[voices.engine]
    native = await synthesize(tts_channel, "Hello there.")
    assert {c.sample_rate_hz for _, c in native.chunks} == {voices.sample_rate_hz}
    resampled = await synthesize(tts_channel, "Hello there.", sample_rate_hz=16_000, voice=voices.voices[-1])
    assert {c.sample_rate_hz for _, c in resampled.chunks} == {16_000}
    reply = await health_pb2_grpc.HealthStub(tts_channel).Check(health_pb2.HealthCheckRequest())
    assert reply.status == health_pb2.HealthCheckResponse.SERVING


async def test_realtime_voice_names_speak_with_the_engines_voices(tts_channel: grpc.aio.Channel) -> None:
    listed = await tts_pb2_grpc.TtsStub(tts_channel).ListVoices(tts_pb2.ListVoicesRequest())
    assert set(listed.voice_aliases) == set(REALTIME_VOICES)
    assert set(listed.voice_aliases.values()) <= set(listed.voices)
    for name in ("ash", "coral"):  # the Agents SDK's default, and a female voice
        result = await synthesize(tts_channel, "Hello there.", voice=name)
        assert result.audio().duration_ms > 300, name


BAD_CONFIGS = {
    "unknown voice": ({"voice": "nobody"}, "unknown voice 'nobody'"),
    "bad rate": ({"sample_rate_hz": 11_025}, "11025"),
    "too fast": ({"speed": 3.0}, "speed"),
    "first phrase of no words": ({"first_phrase_words": 0}, "first_phrase_words"),
    "other engine": ({"engine": "festival"}, "this server runs"),
}


@pytest.mark.parametrize("case", BAD_CONFIGS, ids=list(BAD_CONFIGS))
async def test_bad_configs_get_invalid_argument(tts_channel: grpc.aio.Channel, case: str) -> None:
    config, message = BAD_CONFIGS[case]
    stub = tts_pb2_grpc.TtsStub(tts_channel)
    request = tts_pb2.SynthesizeRequest(config=tts_pb2.SynthesisConfig(**config), text="Hello.")
    error = await stream_error(stub.Synthesize(request))
    assert error.code() == grpc.StatusCode.INVALID_ARGUMENT and message in error.details()
    if case == "unknown voice":  # the message lists the valid voices, and the Realtime API's names
        listed = await stub.ListVoices(tts_pb2.ListVoicesRequest())
        assert all(voice in error.details() for voice in [*listed.voices, *listed.voice_aliases])


async def test_text_over_the_limit_gets_invalid_argument(tts_channel: grpc.aio.Channel) -> None:
    stub = tts_pb2_grpc.TtsStub(tts_channel)
    error = await stream_error(stub.Synthesize(tts_pb2.SynthesizeRequest(text="a" * 5001)))
    assert error.code() == grpc.StatusCode.INVALID_ARGUMENT and "5000" in error.details()

    async def requests():
        yield tts_pb2.SynthesizeStreamRequest(config=tts_pb2.SynthesisConfig())
        for _ in range(6):
            yield tts_pb2.SynthesizeStreamRequest(text="word " * 200)

    error = await stream_error(stub.SynthesizeStream(requests()))
    assert error.code() == grpc.StatusCode.INVALID_ARGUMENT and "over the limit" in error.details()


BAD_STREAMS = {
    "no config first": [tts_pb2.SynthesizeStreamRequest(text="Hello.")],
    "no messages": [],
    "second config": [
        tts_pb2.SynthesizeStreamRequest(config=tts_pb2.SynthesisConfig()),
        tts_pb2.SynthesizeStreamRequest(config=tts_pb2.SynthesisConfig()),
    ],
    "unknown field only": [
        tts_pb2.SynthesizeStreamRequest(config=tts_pb2.SynthesisConfig()),
        tts_pb2.SynthesizeStreamRequest.FromString(b"\xf8\x06\x01"),
    ],
}


@pytest.mark.parametrize("case", BAD_STREAMS, ids=list(BAD_STREAMS))
async def test_bad_streams_get_invalid_argument(tts_channel: grpc.aio.Channel, case: str) -> None:
    async def requests():
        for request in BAD_STREAMS[case]:
            yield request

    error = await stream_error(tts_pb2_grpc.TtsStub(tts_channel).SynthesizeStream(requests()))
    assert error.code() == grpc.StatusCode.INVALID_ARGUMENT


async def test_garbage_bytes_get_invalid_argument(tts_channel: grpc.aio.Channel) -> None:
    raw = tts_channel.unary_stream(
        "/voice_agent.v1.Tts/Synthesize", request_serializer=lambda b: b, response_deserializer=lambda b: b
    )
    error = await stream_error(raw(b"\xff\xfe\xfd not a protobuf", timeout=10))
    assert error.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert (await synthesize(tts_channel, "Still here.")).chunks


# ---- the Realtime API's voice names, in-process: services/tts/protocol.py and the engines' tables


class _TwoVoices(TtsEngine):
    name = "two"
    sample_rate = 24_000

    def __init__(self) -> None:
        self.voices, self.default_voice = ["deep", "light"], "deep"
        self.voice_aliases = dict.fromkeys(REALTIME_VOICES, "deep") | {"coral": "light"}

    def synthesize(self, text: str, voice: str, speed: float) -> np.ndarray:
        return np.zeros(0, dtype=np.float32)


@pytest.mark.parametrize(("asked", "voice"), [("ash", "deep"), ("coral", "light"), ("light", "light"), ("", "deep")])
def test_a_realtime_voice_name_resolves_to_the_engines_voice(asked: str, voice: str) -> None:
    settings = settings_from_config(tts_pb2.SynthesisConfig(voice=asked), _TwoVoices(), TtsConfig())
    assert settings.voice == voice


def test_a_name_neither_voice_nor_alias_is_refused_listing_both() -> None:
    with pytest.raises(InvalidArgument) as refused:
        settings_from_config(tts_pb2.SynthesisConfig(voice="Ash"), _TwoVoices(), TtsConfig())
    message = str(refused.value)
    assert message.startswith("unknown voice 'Ash'")
    assert all(name in message for name in ["deep", "light", *REALTIME_VOICES])


def test_kokoros_table_maps_every_realtime_voice_name() -> None:
    assert tuple(REALTIME_VOICE_CHOICES) == REALTIME_VOICES
    embedded = ["jf_alpha", "jf_gongitsune", "jf_nezumi", "jf_tebukuro", "jm_kumo"]
    aliases = realtime_voice_aliases(embedded, "jm_kumo")
    assert {aliases[name] for name in ("ash", "ballad", "echo", "verse", "cedar")} == {"jm_kumo"}
    assert all(aliases[name].startswith("jf_") for name in ("coral", "sage", "shimmer", "marin"))
    english = realtime_voice_aliases(["af_alloy", "af_heart", "am_echo", "am_michael", *embedded], "af_heart")
    assert (english["alloy"], english["ash"], english["coral"], english["echo"]) == (
        "af_alloy",
        "am_michael",
        "af_heart",
        "am_echo",
    )
    assert set(realtime_voice_aliases(["other"], "other").values()) == {"other"}  # a voices file of its own
