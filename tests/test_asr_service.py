"""The VAD+ASR service end to end: a real server process, real models, espeak-ng speech."""

from __future__ import annotations

import asyncio
import re
import urllib.request

import grpc
import pytest
from grpc_health.v1 import health_pb2, health_pb2_grpc
from grpc_reflection.v1alpha.proto_reflection_descriptor_database import ProtoReflectionDescriptorDatabase
from support import ServiceProcess, spoken, start_service, stream_error

from services.asr.protocol import settings_from_request
from voice_agent.audio import Pcm16Audio
from voice_agent.client.asr import paced_requests, recognition_config, recognize
from voice_agent.errors import InvalidArgument
from voice_agent.v1 import asr_pb2, asr_pb2_grpc, audio_pb2
from voice_ops.samples import join, word_error_rate

OFFSET_TOLERANCE_MS = 150
MAX_WER = 0.20

PRESENTATION = "I would like to practice my presentation for tomorrow morning"
MANAGER = "Could you help me prepare for a difficult conversation with my manager about my workload"
FEEDBACK = "Please give me honest feedback on my opening"
INTERVIEW = "I have a job interview next week and I feel nervous"


def assert_offsets(event_ms: int, expected_ms: int, what: str) -> None:
    assert abs(event_ms - expected_ms) <= OFFSET_TOLERANCE_MS, f"{what}: {event_ms} ms, expected {expected_ms} ms"


@pytest.mark.parametrize("realtime", [True, False], ids=["realtime", "fast"])
async def test_offsets_and_transcript(asr_channel: grpc.aio.Channel, realtime: bool) -> None:
    sample = spoken(PRESENTATION)
    result = await recognize(asr_channel, sample.audio, realtime=realtime)
    (started,) = result.of("speech_started")
    (ended,) = result.of("speech_ended")
    assert_offsets(started.speech_started.offset_ms, sample.speech_start_ms, "speech start")
    assert_offsets(ended.speech_ended.offset_ms, sample.speech_end_ms, "speech end")
    assert ended.speech_ended.reason == asr_pb2.SpeechEnded.REASON_SILENCE
    # The default silence wait is the design's 200 ms (decided on a 32 ms frame).
    assert 200 <= ended.speech_ended.decision_offset_ms - ended.speech_ended.offset_ms < 200 + 32
    (final,) = result.finals
    assert word_error_rate(PRESENTATION, final.text) <= MAX_WER, final.text
    assert (final.start_ms, final.end_ms) == (started.speech_started.offset_ms, ended.speech_ended.offset_ms)
    assert final.processing_ms >= final.inference_ms > 0


async def test_interim_transcripts_come_before_the_final(asr_channel: grpc.aio.Channel) -> None:
    sample = spoken(MANAGER)
    assert sample.speech_end_ms - sample.speech_start_ms >= 4000
    result = await recognize(asr_channel, sample.audio, realtime=True)
    kinds = [event.WhichOneof("event") for _, event in result.events]
    assert "interim" in kinds, kinds
    assert kinds.index("interim") < kinds.index("final")
    assert kinds.count("final") == 1
    assert word_error_rate(MANAGER, result.text) <= MAX_WER, result.text


async def test_interims_can_be_turned_off(asr_channel: grpc.aio.Channel) -> None:
    result = await recognize(asr_channel, spoken(MANAGER).audio, realtime=True, interim_results=False)
    assert result.of("interim") == []
    assert len(result.finals) == 1


async def test_an_update_changes_the_interim_interval_mid_stream(asr_channel: grpc.aio.Channel) -> None:
    """The gateway asks for frequent interims only while its agent speaks (RecognitionUpdate)."""
    sample = spoken(MANAGER)

    config = recognition_config(16_000, interim_interval_ms=5000)

    async def requests(*intervals_ms: int):
        async for request in paced_requests(config, sample.audio, realtime=True):
            yield request
            if request.HasField("config"):
                for interval in intervals_ms:
                    yield asr_pb2.RecognizeRequest(update=asr_pb2.RecognitionUpdate(interim_interval_ms=interval))

    async def interims(*intervals_ms: int) -> tuple[int, str]:
        call = asr_pb2_grpc.AsrStub(asr_channel).Recognize(requests(*intervals_ms), timeout=60)
        events = [event async for event in call]
        finals = [e.final.text for e in events if e.WhichOneof("event") == "final"]
        return sum(e.WhichOneof("event") == "interim" for e in events), " ".join(finals)

    (slow, _), (fast, fast_text), (back, _) = await asyncio.gather(interims(), interims(300), interims(300, 0))
    assert slow == 0, "one interim every 5 s of a 4 s utterance: none"
    assert back == 0, "0 goes back to the config's interval"
    assert fast >= 3, f"an interim about every 300 ms of 4 s of speech (best effort on 2 cores): {fast}"
    assert word_error_rate(MANAGER, fast_text) <= MAX_WER, fast_text


async def test_two_concurrent_streams_get_their_own_transcripts(asr_channel: grpc.aio.Channel) -> None:
    first, second = spoken(FEEDBACK), spoken(INTERVIEW)
    results = await asyncio.gather(
        recognize(asr_channel, first.audio, realtime=True), recognize(asr_channel, second.audio, realtime=True)
    )
    assert word_error_rate(FEEDBACK, results[0].text) <= MAX_WER, results[0].text
    assert word_error_rate(INTERVIEW, results[1].text) <= MAX_WER, results[1].text


async def test_several_utterances_in_one_stream(asr_channel: grpc.aio.Channel) -> None:
    audio, spans = join([spoken(FEEDBACK), spoken(INTERVIEW)])
    result = await recognize(asr_channel, audio, realtime=False)
    finals = result.finals
    assert [f.utterance_id for f in finals] == [1, 2]
    for final, (start_ms, end_ms), text in zip(finals, spans, [FEEDBACK, INTERVIEW], strict=True):
        assert_offsets(final.start_ms, start_ms, "start")
        assert_offsets(final.end_ms, end_ms, "end")
        assert word_error_rate(text, final.text) <= MAX_WER, final.text


# 44.1 and 22.05 kHz: as people's files come (voice-agent talk --wav sends a file at its own rate).
@pytest.mark.parametrize("rate", [8_000, 22_050, 24_000, 44_100, 48_000])
async def test_other_input_rates_are_resampled(asr_channel: grpc.aio.Channel, rate: int) -> None:
    sample = spoken(PRESENTATION, sample_rate=rate)
    result = await recognize(asr_channel, sample.audio, realtime=False)
    (started,) = result.of("speech_started")
    (ended,) = result.of("speech_ended")
    assert_offsets(started.speech_started.offset_ms, sample.speech_start_ms, "speech start")
    assert_offsets(ended.speech_ended.offset_ms, sample.speech_end_ms, "speech end")
    assert word_error_rate(PRESENTATION, result.text) <= MAX_WER, result.text


async def test_silence_gives_no_events(asr_channel: grpc.aio.Channel) -> None:
    result = await recognize(asr_channel, Pcm16Audio(b"\0" * 64_000, 16_000), realtime=False)
    assert result.events == []


async def test_speech_still_open_at_half_close_is_transcribed(asr_channel: grpc.aio.Channel) -> None:
    sample = spoken(PRESENTATION, tail_ms=0)
    result = await recognize(asr_channel, sample.audio, realtime=False)
    (ended,) = result.of("speech_ended")
    assert ended.speech_ended.reason == asr_pb2.SpeechEnded.REASON_END_OF_STREAM
    assert word_error_rate(PRESENTATION, result.text) <= MAX_WER, result.text


# ---- bad input: each case gets its documented status, and the server stays up


def _config(**overrides: object) -> asr_pb2.RecognizeRequest:
    fields: dict[str, object] = {
        "audio": audio_pb2.AudioFormat(encoding=audio_pb2.AUDIO_ENCODING_PCM16LE, sample_rate_hz=16_000)
    }
    fields.update(overrides)
    return asr_pb2.RecognizeRequest(config=asr_pb2.RecognitionConfig(**fields))


def _pcm16(sample_rate: int) -> audio_pb2.AudioFormat:
    return audio_pb2.AudioFormat(encoding=audio_pb2.AUDIO_ENCODING_PCM16LE, sample_rate_hz=sample_rate)


def _audio(n_bytes: int) -> asr_pb2.RecognizeRequest:
    return asr_pb2.RecognizeRequest(audio=b"\0" * n_bytes)


BAD_STREAMS = {
    "no messages": ([], "before its RecognitionConfig"),
    "audio first": ([_audio(320)], "first message"),
    "no audio format": ([asr_pb2.RecognizeRequest(config=asr_pb2.RecognitionConfig())], "audio is required"),
    "unsupported encoding": (
        [_config(audio=audio_pb2.AudioFormat(sample_rate_hz=16_000))],
        "unsupported audio encoding",
    ),
    "rate over 48 kHz": ([_config(audio=_pcm16(48_001))], "48001 Hz: use any integer rate from 8000 to 48000 Hz"),
    "rate under 8 kHz": ([_config(audio=_pcm16(7_999))], "7999 Hz: use any integer rate from 8000 to 48000 Hz"),
    "no rate": ([_config(audio=_pcm16(0))], "0 Hz: use any integer rate from 8000 to 48000 Hz"),
    "vad threshold too high": ([_config(vad_threshold=1.5)], "vad_threshold"),
    "vad threshold zero": ([_config(vad_threshold=0.0)], "vad_threshold"),
    "silence wait too long": ([_config(min_silence_ms=60_000)], "min_silence_ms"),
    "padding too long": ([_config(speech_pad_ms=5_000)], "speech_pad_ms"),
    "interim interval too short": ([_config(interim_interval_ms=10)], "interim_interval_ms"),
    "update's interim interval too short": (
        [_config(), asr_pb2.RecognizeRequest(update=asr_pb2.RecognitionUpdate(interim_interval_ms=50))],
        "interim_interval_ms",
    ),
    "unknown language": ([_config(language="xx")], "language 'xx'"),
    "pause too short": ([_config(speculative_transcripts=True, pause_ms=10)], "pause_ms"),
    "incomplete silence under the silence wait": (
        [_config(min_silence_ms=500, incomplete_silence_ms=300)],
        "incomplete_silence_ms",
    ),
    "reuse without speculative transcripts": (
        [_config(reuse_pause_transcript=True)],
        "reuse_pause_transcript needs speculative_transcripts",
    ),
    "adaptive without speculative transcripts": (
        [_config(adaptive_endpointing=True)],
        "adaptive_endpointing needs speculative_transcripts",
    ),
    "unknown turn detector": ([_config(turn_detector="vibes")], "turn_detector 'vibes'"),
    "odd byte count": ([_config(), _audio(321)], "odd byte count"),
    "chunk over one second": ([_config(), _audio(32_002)], "at most 1000 ms"),
    "second config": ([_config(), _audio(320), _config()], "second RecognitionConfig"),
    "unknown field only": (
        [_config(), asr_pb2.RecognizeRequest.FromString(b"\xf8\x06\x01")],
        "neither config nor audio",
    ),
}


async def _call(
    channel: grpc.aio.Channel, requests: list[asr_pb2.RecognizeRequest]
) -> tuple[list, grpc.aio.AioRpcError]:
    async def send():
        for request in requests:
            yield request

    events: list = []
    error = await stream_error(asr_pb2_grpc.AsrStub(channel).Recognize(send(), timeout=30), into=events)
    return events, error


@pytest.mark.parametrize("case", BAD_STREAMS, ids=list(BAD_STREAMS))
async def test_bad_input_gets_invalid_argument(asr_channel: grpc.aio.Channel, case: str) -> None:
    requests, message = BAD_STREAMS[case]
    _, error = await _call(asr_channel, requests)
    assert error.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert message in error.details()
    reply = await health_pb2_grpc.HealthStub(asr_channel).Check(health_pb2.HealthCheckRequest())
    assert reply.status == health_pb2.HealthCheckResponse.SERVING


@pytest.mark.parametrize("rate", [8_000, 11_025, 22_050, 44_100, 48_000])
def test_any_integer_input_rate_from_8_to_48_khz_is_taken(rate: int) -> None:
    """No model: the stream's settings alone (services/asr/protocol.py)."""
    assert settings_from_request(_config(audio=_pcm16(rate)), "en", ["en"]).sample_rate == rate


@pytest.mark.parametrize("rate", [0, 7_999, 48_001])
def test_input_rates_outside_8_to_48_khz_are_refused_naming_the_range(rate: int) -> None:
    with pytest.raises(InvalidArgument, match=f"{rate} Hz: use any integer rate from 8000 to 48000 Hz"):
        settings_from_request(_config(audio=_pcm16(rate)), "en", ["en"])


async def test_garbage_bytes_on_the_wire_are_refused(asr_channel: grpc.aio.Channel) -> None:
    raw = asr_channel.stream_stream(
        "/voice_agent.v1.Asr/Recognize", request_serializer=lambda b: b, response_deserializer=lambda b: b
    )

    async def send():
        yield b"\xff\xfe\xfd garbage, not a protobuf"

    with pytest.raises(grpc.aio.AioRpcError) as caught:
        async for _ in raw(send(), timeout=10):
            pass
    assert caught.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert "not a valid request" in caught.value.details()
    result = await recognize(asr_channel, spoken(FEEDBACK).audio, realtime=False)
    assert word_error_rate(FEEDBACK, result.text) <= MAX_WER


async def test_an_oversized_message_gets_resource_exhausted(asr_channel: grpc.aio.Channel) -> None:
    _, error = await _call(asr_channel, [_config(), _audio(300 * 1024)])
    assert error.code() == grpc.StatusCode.RESOURCE_EXHAUSTED


async def test_speech_before_bad_input_is_still_transcribed(asr_channel: grpc.aio.Channel) -> None:
    sample = spoken(PRESENTATION, tail_ms=0)
    requests = [_config(), *(asr_pb2.RecognizeRequest(audio=c) for c in sample.audio.chunks(100)), _audio(3)]
    events, error = await _call(asr_channel, requests)
    assert error.code() == grpc.StatusCode.INVALID_ARGUMENT
    finals = [e.final for e in events if e.WhichOneof("event") == "final"]
    assert len(finals) == 1 and word_error_rate(PRESENTATION, finals[0].text) <= MAX_WER


# ---- operations: health, reflection, metrics, cancellation


def _metrics(server: ServiceProcess) -> str:
    with urllib.request.urlopen(f"http://127.0.0.1:{server.metrics_port}/metrics", timeout=5) as reply:
        return reply.read().decode()


def _metric(text: str, name: str, labels: str | None = None) -> float:
    """The value of a sample, or the sum over all label sets when no labels are given."""
    label_pattern = r"(?:\{[^}]*\})?" if labels is None else re.escape(labels)
    pattern = rf"^{re.escape(name)}{label_pattern} (\S+)$"
    values = [float(m.group(1)) for m in re.finditer(pattern, text, re.MULTILINE)]
    assert values, f"{name}{labels} not found"
    return sum(values)


async def test_health_and_reflection(asr_server: ServiceProcess, asr_channel: grpc.aio.Channel) -> None:
    for service in ("", "voice_agent.v1.Asr"):
        reply = await health_pb2_grpc.HealthStub(asr_channel).Check(health_pb2.HealthCheckRequest(service=service))
        assert reply.status == health_pb2.HealthCheckResponse.SERVING
    with grpc.insecure_channel(asr_server.address) as channel:
        services = ProtoReflectionDescriptorDatabase(channel).get_services()
    assert {"voice_agent.v1.Asr", "grpc.health.v1.Health"} <= set(services)


async def test_metrics_endpoint(asr_server: ServiceProcess, asr_channel: grpc.aio.Channel) -> None:
    await recognize(asr_channel, spoken(FEEDBACK).audio, realtime=False)
    text = _metrics(asr_server)
    assert _metric(text, "voice_asr_final_latency_seconds_count") >= 1
    assert 'voice_asr_inference_seconds_bucket{kind="final",le="0.01"}' in text
    assert _metric(text, "voice_active_streams", '{service="asr"}') == 0
    assert _metric(text, "voice_errors_total", '{code="INVALID_ARGUMENT",service="asr"}') >= 0


async def test_a_cancelled_stream_stops_its_work(asr_server: ServiceProcess, asr_channel: grpc.aio.Channel) -> None:
    audio, _ = join([spoken(MANAGER)] * 4)
    config = recognition_config(16_000, interim_interval_ms=100)
    call = asr_pb2_grpc.AsrStub(asr_channel).Recognize(paced_requests(config, audio, realtime=True))
    async for event in call:
        if event.WhichOneof("event") == "interim":
            break
    call.cancel()
    await asyncio.sleep(1.0)
    text = _metrics(asr_server)
    assert _metric(text, "voice_active_streams", '{service="asr"}') == 0
    inferences = _metric(text, "voice_asr_inference_seconds_count")
    await asyncio.sleep(1.5)
    assert _metric(_metrics(asr_server), "voice_asr_inference_seconds_count") == inferences


# ---- a server with a short maximum utterance, stopped with SIGTERM


async def test_long_speech_is_cut_and_transcribed_not_dropped(tmp_path) -> None:
    server = start_service("asr", tmp_path / "asr.log", "--max-utterance-s", "2", "--no-warmup")
    try:
        async with grpc.aio.insecure_channel(server.address) as channel:
            sample = spoken(MANAGER)
            result = await recognize(channel, sample.audio, realtime=False, min_silence_ms=1000)
        reasons = [e.speech_ended.reason for e in result.of("speech_ended")]
        assert reasons[0] == asr_pb2.SpeechEnded.REASON_MAX_DURATION
        assert len(result.finals) >= 2
        assert all(f.end_ms - f.start_ms <= 2000 + 32 for f in result.finals)  # cut on a 32 ms frame
        assert word_error_rate(MANAGER, result.text) <= 0.5, result.text
    finally:
        assert server.stop() == 0, server.log.read_text()
    assert "asr stopped" in server.log.read_text()
