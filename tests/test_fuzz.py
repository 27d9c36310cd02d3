"""Property-based fuzzing (Hypothesis) of every service's inputs, against the real server processes.

Hypothesis writes what clients send: configs with random and extreme values (sample rates,
encodings, thresholds, speeds, voices, languages, prompts), messages in the wrong order or
missing, audio chunks empty, odd, over a second or over the 256 KiB message limit, text with
odd Unicode, and raw bytes that are no valid request (invalid UTF-8 in string fields, unknown
fields, wrong wire types, truncated or mutated messages). The properties:

- every call ends within ``CALL_TIMEOUT_S`` (a call that runs past it is a hang);
- with OK or a status docs/security.md documents for bad input (INVALID_ARGUMENT,
  RESOURCE_EXHAUSTED), never UNKNOWN or INTERNAL; the gateway's error events only
  INVALID_ARGUMENT (the TTS refusing a session's voice, the gateway a typed text);
- afterwards the service still answers a health check and a small valid request, and has
  released every stream (its ``voice_active_streams`` gauge is back to 0);
- at the end every server process is alive and logged no unhandled exception.

The sync gRPC API, with a deadline on every call: a fuzzer needs no event loop, and a deadline
that expires is exactly the hang it looks for. Examples are derandomized (the same ones on
every run, as CI needs) and kept small: short texts (synthesis is the cost), little audio, and
a gateway of its own whose replies are a few tokens long (a turn lasts as long as its audio).
"""

from __future__ import annotations

import functools
import itertools
import random
import re
import time
import urllib.request
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any

import grpc
import pytest
from conftest import gateway_args
from google.protobuf import message_factory
from google.protobuf.descriptor import FieldDescriptor
from grpc_health.v1 import health_pb2, health_pb2_grpc
from hypothesis import HealthCheck, event, given, settings
from hypothesis import strategies as st
from support import ServiceProcess, running, spoken

from services.tts.text import PhraseSegmenter
from voice_agent.audio import TTS_OUTPUT_RATES
from voice_agent.contract import INTERIM_INTERVAL_RANGE_MS, MAX_SILENCE_MS
from voice_agent.v1 import asr_pb2, audio_pb2, gateway_pb2, tts_pb2, tts_pb2_grpc

# A call still running after this is a hang: each example is a few seconds of work at most.
CALL_TIMEOUT_S = 30.0
# What bad input may get (docs/security.md): the services' own checks, and gRPC's message limit.
DOCUMENTED = {grpc.StatusCode.OK, grpc.StatusCode.INVALID_ARGUMENT, grpc.StatusCode.RESOURCE_EXHAUSTED}
# An error event in a fuzzed conversation: the TTS refusing the session's voice, the gateway a typed text.
DOCUMENTED_EVENT_CODES = {"INVALID_ARGUMENT"}
# Over the servers' 256 KiB receive limit.
OVERSIZED = 300 * 1024
PIPER_VOICE = "en_US-joe-medium"  # the embedded Piper model's one voice

ASR_RECOGNIZE = "/voice_agent.v1.Asr/Recognize"
TTS_SYNTHESIZE = "/voice_agent.v1.Tts/Synthesize"
TTS_SYNTHESIZE_STREAM = "/voice_agent.v1.Tts/SynthesizeStream"
GATEWAY_CONVERSE = "/voice_agent.v1.Gateway/Converse"


def fuzz(max_examples: int) -> settings:
    # Derandomized and without an example database: the same examples on every run and machine.
    return settings(
        max_examples=max_examples,
        deadline=None,
        derandomize=True,
        database=None,
        print_blob=False,
        suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large, HealthCheck.large_base_example],
    )


# ---- calls: raw bytes out, so that typed and malformed requests take the same path


@dataclass
class Outcome:
    code: grpc.StatusCode
    details: str
    responses: list[Any]

    def check(self, what: object) -> None:
        # Nothing in these examples runs into a server's deadline: this is the call's own, a hang.
        assert self.code != grpc.StatusCode.DEADLINE_EXCEEDED, (
            f"hang: not ended after {CALL_TIMEOUT_S} s ({self.details[:200]!r}): {what!r:.500}"
        )
        assert self.code in DOCUMENTED, f"{self.code.name} {self.details[:500]!r} for {what!r:.1000}"
        # The client refusing the server's status trailer (over its 16 KiB metadata limit): a status
        # message that echoes a long client string, which turns INVALID_ARGUMENT into this.
        assert "metadata" not in self.details, f"{self.code.name} {self.details[:500]!r} for {what!r:.1000}"
        # What the examples reached (pytest --hypothesis-show-statistics): not all refused at the first check.
        event(f"{self.code.name} {' '.join(self.details.split()[:4])}" if self.details else "OK")


def _identity(data: bytes) -> bytes:
    return data


def _collect(responses: Iterator[Any]) -> Outcome:
    received: list[Any] = []
    try:
        for response in responses:
            received.append(response)
    except grpc.RpcError as error:
        return Outcome(error.code(), error.details() or "", received)  # type: ignore[attr-defined]
    return Outcome(grpc.StatusCode.OK, "", received)


def call_stream(channel: grpc.Channel, method: str, requests: list[bytes], parse: Callable[[bytes], Any]) -> Outcome:
    rpc = channel.stream_stream(method, request_serializer=_identity, response_deserializer=parse)
    return _collect(rpc(iter(requests), timeout=CALL_TIMEOUT_S))


def call_unary_stream(channel: grpc.Channel, method: str, request: bytes, parse: Callable[[bytes], Any]) -> Outcome:
    rpc = channel.unary_stream(method, request_serializer=_identity, response_deserializer=parse)
    return _collect(rpc(request, timeout=CALL_TIMEOUT_S))


def serialized(messages: list[Any]) -> list[bytes]:
    return [m if isinstance(m, bytes) else m.SerializeToString() for m in messages]


# ---- the servers under test, and what shows that one still works


@dataclass
class Target:
    server: ServiceProcess
    label: str  # the service label of its metrics
    channel: grpc.Channel
    probe: Callable[[grpc.Channel], None]  # a small valid request; raises if it fails
    log_start: int  # the log's size before the fuzzing: later lines are checked at the end

    def active_streams(self) -> float:
        url = f"http://127.0.0.1:{self.server.metrics_port}/metrics"
        with urllib.request.urlopen(url, timeout=5) as reply:
            text = reply.read().decode()
        match = re.search(rf'^voice_active_streams\{{service="{self.label}"\}} (\S+)$', text, re.MULTILINE)
        assert match, f"no voice_active_streams for {self.label}"
        return float(match.group(1))

    def assert_working(self) -> None:
        assert self.server.process.poll() is None, f"{self.label} exited:\n{self.server.log.read_text()[-3000:]}"
        reply = health_pb2_grpc.HealthStub(self.channel).Check(health_pb2.HealthCheckRequest(), timeout=5)
        assert reply.status == health_pb2.HealthCheckResponse.SERVING
        self.probe(self.channel)

    def assert_streams_released(self, within_s: float = 10.0) -> None:
        # The handler's cleanup runs just after the client sees the status: give it a moment.
        deadline = time.monotonic() + within_s
        while (active := self.active_streams()) and time.monotonic() < deadline:
            time.sleep(0.02)
        assert active == 0, f"{self.label} still serves {active} streams {within_s} s after the last call ended"


def _pcm16(sample_rate: int) -> audio_pb2.AudioFormat:
    return audio_pb2.AudioFormat(encoding=audio_pb2.AUDIO_ENCODING_PCM16LE, sample_rate_hz=sample_rate)


def _probe_asr(channel: grpc.Channel) -> None:
    requests = [
        asr_pb2.RecognizeRequest(config=asr_pb2.RecognitionConfig(audio=_pcm16(16_000))),
        asr_pb2.RecognizeRequest(audio=b"\0" * 3200),
    ]
    outcome = call_stream(channel, ASR_RECOGNIZE, serialized(requests), asr_pb2.RecognizeResponse.FromString)
    assert outcome.code == grpc.StatusCode.OK, outcome


def _probe_tts(channel: grpc.Channel) -> None:
    request = tts_pb2.SynthesizeRequest(text="Hi.").SerializeToString()
    outcome = call_unary_stream(channel, TTS_SYNTHESIZE, request, tts_pb2.SynthesizeResponse.FromString)
    assert outcome.code == grpc.StatusCode.OK and outcome.responses, outcome


def _probe_gateway(channel: grpc.Channel) -> None:
    requests = [
        gateway_pb2.ConverseRequest(config=gateway_pb2.SessionConfig(input_audio=_pcm16(16_000))),
        gateway_pb2.ConverseRequest(end=gateway_pb2.ConverseRequest.EndSession()),
    ]
    outcome = call_stream(channel, GATEWAY_CONVERSE, serialized(requests), gateway_pb2.ConverseResponse.FromString)
    assert outcome.code == grpc.StatusCode.OK, outcome


def _target(server: ServiceProcess, label: str, probe: Callable[[grpc.Channel], None]) -> Iterator[Target]:
    with grpc.insecure_channel(server.address) as channel:
        yield Target(server, label, channel, probe, server.log.stat().st_size)


@pytest.fixture(scope="module")
def asr(asr_server: ServiceProcess) -> Iterator[Target]:
    yield from _target(asr_server, "asr", _probe_asr)


@pytest.fixture(scope="module")
def piper(piper_server: ServiceProcess) -> Iterator[Target]:
    yield from _target(piper_server, "tts", _probe_tts)


@pytest.fixture(scope="module")
def gateway(
    tmp_path_factory: pytest.TempPathFactory,
    asr_server: ServiceProcess,
    piper_server: ServiceProcess,
    llm_server: ServiceProcess,
) -> Iterator[Target]:
    """A gateway of its own, with replies of a few tokens: a typed turn lasts as long as its
    reply's audio plays, and the session's gateway would spend seconds on each."""
    log = tmp_path_factory.mktemp("fuzz-gateway") / "gateway.log"
    args = [*gateway_args(asr_server, piper_server, llm_server), "--llm-max-tokens", "3"]
    with running("gateway", log, *args) as server:
        yield from _target(server, "gateway", _probe_gateway)


# ---- strategies: values, then messages, then whole streams

UINT32_MAX = 2**32 - 1
uint32s = st.one_of(
    st.sampled_from([0, 1, 2, 7, 255, 65_535, 2**31 - 1, 2**31, UINT32_MAX]), st.integers(0, UINT32_MAX)
)
int32s = st.integers(-(2**31), 2**31 - 1)
float32s = st.floats(width=32)  # NaN, infinities, subnormals and -0.0 included


def mostly(valid: st.SearchStrategy[Any], wild: st.SearchStrategy[Any], odds: int) -> st.SearchStrategy[Any]:
    """``valid``, but ``wild`` one time in ``odds``."""
    # Valid at 0: Hypothesis shrinks towards it, so a failure shrinks to valid values where it can.
    return st.integers(0, odds - 1).flatmap(lambda n: wild if n == odds - 1 else valid)


@dataclass(frozen=True)
class Values:
    """A config field's valid values and its wild ones; ``optional``: it may be unset too."""

    valid: st.SearchStrategy[Any]
    wild: st.SearchStrategy[Any]
    optional: bool = False


def _message(cls: Callable[..., Any], **fields: Any) -> Any:
    """A message with the fields that are not None (None: unset, for optional fields)."""
    return cls(**{name: value for name, value in fields.items() if value is not None})


def _any_value(field: FieldDescriptor) -> st.SearchStrategy[Any]:
    if field.type == FieldDescriptor.TYPE_MESSAGE:
        return configs(message_factory.GetMessageClass(field.message_type), tame=False)
    by_type = {
        FieldDescriptor.TYPE_BOOL: st.booleans(),
        FieldDescriptor.TYPE_UINT32: uint32s,
        FieldDescriptor.TYPE_INT32: int32s,
        FieldDescriptor.TYPE_ENUM: int32s,
        FieldDescriptor.TYPE_FLOAT: float32s,
        FieldDescriptor.TYPE_DOUBLE: st.floats(),
        FieldDescriptor.TYPE_STRING: odd_texts,
        FieldDescriptor.TYPE_BYTES: st.binary(max_size=64),
    }
    return by_type.get(field.type, st.nothing())


def configs(cls: Any, *, tame: bool | None = None, **fields: Values) -> st.SearchStrategy[Any]:
    """Config messages: half of them valid in every field (a config that is always wrong
    somewhere only ever tests the first check, never what comes after it), the other half
    with each field wild one time in three. ``tame``: only the valid ones, or only the others.

    Fields not in ``fields`` (one added to the proto later, too) stay unset in valid configs
    and take any value of their type in the others."""
    for field in cls.DESCRIPTOR.fields:
        if field.name not in fields and not field.is_repeated:
            fields[field.name] = Values(st.none(), _any_value(field), optional=True)

    def build(valid_only: bool) -> st.SearchStrategy[Any]:
        strategies = {}
        for name, values in fields.items():
            strategy = values.valid if valid_only else mostly(values.valid, values.wild, odds=3)
            strategies[name] = st.none() | strategy if values.optional else strategy
        return st.builds(lambda **drawn: _message(cls, **drawn), **strategies)

    return build(tame) if tame is not None else st.one_of(build(True), build(False))


ODD_TEXTS = [
    "",
    " ",
    "\n\t\r",
    "\x00",
    "\x07\x1b[31m",
    "😀👍🏽",
    "e\u0301\u0301\u0301",
    "\u202etxet",
    "\ufeff\u200b",
    "Z\u0338\u0321a\u0337l\u0336g\u0335o",
    "你好。",
    "Привет, мир!",
    "مرحبا",
    "Dr. e.g. 3.5 i.e.",
    "...",
    "—,—;—",
    "\U0010ffff\U000e0001",
    "\uffff\ufffe",
    "%s%n{0}",
    "<speak>hi</speak>",
]
odd_texts = st.one_of(st.text(max_size=12), st.sampled_from(ODD_TEXTS))
SHORT_SENTENCES = ["Hi.", "Take a breath.", "Good start, now slow down."]


# Microphone rates the ASR and the gateway take (any integer from 8 to 48 kHz), and some they refuse.
INPUT_RATES = st.one_of(
    st.sampled_from([8_000, 11_025, 16_000, 22_050, 24_000, 44_100, 48_000]), st.integers(8_000, 48_000)
)
WILD_INPUT_RATES = st.one_of(st.sampled_from([0, 1, 7_999, 48_001, 96_000]), uint32s)


def audio_formats() -> Values:
    """An AudioFormat field: PCM16 at a microphone rate, or anything, or none."""
    fields = {
        "encoding": Values(st.just(audio_pb2.AUDIO_ENCODING_PCM16LE), st.one_of(st.sampled_from([0, 2, -1]), int32s)),
        "sample_rate_hz": Values(INPUT_RATES, WILD_INPUT_RATES),
    }
    wild = st.one_of(st.none(), configs(audio_pb2.AudioFormat, tame=False, **fields))
    return Values(configs(audio_pb2.AudioFormat, tame=True, **fields), wild)


@functools.cache
def speech_chunks() -> list[bytes]:
    """Real speech in 200 ms chunks, so that some examples get utterances and transcripts."""
    return spoken("Hello, how are you today?", lead_ms=100, tail_ms=300).audio.chunks(200)


def noise(samples: int, seed: int) -> bytes:
    return random.Random(seed).randbytes(2 * samples)


small_audio_chunks = st.one_of(
    st.binary(max_size=64),  # tiny, odd and even
    # Empty, odd, one sample, 1 s at 16 kHz (2 s at 8 kHz), 1 s at 48 kHz, and just over.
    st.sampled_from([0, 1, 3, 320, 3_201, 16_000, 32_000, 32_002, 96_000, 96_002]).map(lambda n: b"\0" * n),
    st.builds(noise, st.integers(1, 8_000), st.integers(0, UINT32_MAX)),
    st.integers(0, 63).map(lambda i: speech_chunks()[i % len(speech_chunks())]),
)
audio_chunks = st.one_of(small_audio_chunks, st.just(b"\0" * OVERSIZED))
# An utterance, or the start of one: enough speech for the VAD, a transcript and (at the gateway) a turn.
speech_runs = st.integers(3, 12).map(lambda n: speech_chunks()[:n])

# ---- protobuf's wire format, for requests that no client library would send


def _varint(value: int) -> bytes:
    out = bytearray()
    while True:
        byte, value = value & 0x7F, value >> 7
        out.append(byte | (0x80 if value else 0))
        if not value:
            return bytes(out)


def _field(number: int, wire_type: int, payload: bytes | int) -> bytes:
    key = _varint(number << 3 | wire_type)
    if isinstance(payload, int):  # wire type 0
        return key + _varint(payload)
    if wire_type == 2:
        return key + _varint(len(payload)) + payload
    return key + payload  # fixed64 (1) or fixed32 (5)


INVALID_UTF8 = [b"\xff", b"\xc3\x28", b"\xed\xa0\x80", b"\xf4\x90\x80\x80", b"\xc0\xaf", b"ok\x80", b"\xe2\x82"]
field_numbers = st.one_of(st.integers(1, 12), st.integers(1, 2**29 - 1))
wire_fields = st.one_of(
    st.builds(lambda n, v: _field(n, 0, v), field_numbers, st.integers(0, 2**64 - 1)),
    st.builds(lambda n, v: _field(n, 1, v), field_numbers, st.binary(min_size=8, max_size=8)),
    st.builds(lambda n, v: _field(n, 5, v), field_numbers, st.binary(min_size=4, max_size=4)),
    st.builds(
        lambda n, v: _field(n, 2, v), field_numbers, st.one_of(st.binary(max_size=32), st.sampled_from(INVALID_UTF8))
    ),
)
# Fields in fields: real and unknown fields, wrong wire types, nested messages of junk.
wire_messages = st.recursive(
    st.lists(wire_fields, max_size=4).map(b"".join),
    lambda inner: st.lists(
        st.one_of(wire_fields, st.builds(lambda n, m: _field(n, 2, m), field_numbers, inner)), max_size=4
    ).map(b"".join),
    max_leaves=10,
)


def invalid_utf8_in(paths: list[tuple[int, ...]]) -> st.SearchStrategy[bytes]:
    """A request whose string field at ``path`` (field numbers, outermost first) is not UTF-8."""

    def build(path: tuple[int, ...], junk: bytes) -> bytes:
        for number in reversed(path):
            junk = _field(number, 2, junk)
        return junk

    return st.builds(build, st.sampled_from(paths), st.sampled_from(INVALID_UTF8))


def _mutate(data: bytes, position: int, byte: int, how: str) -> bytes:
    if not data:
        return bytes([byte])
    index = position % len(data)
    if how == "truncate":
        return data[:index]
    if how == "flip":
        return data[:index] + bytes([data[index] ^ (byte or 1)]) + data[index + 1 :]
    return data + _field(999, 0, byte)  # an unknown field after the real ones


def raw_requests(valid: st.SearchStrategy[Any], string_paths: list[tuple[int, ...]]) -> st.SearchStrategy[bytes]:
    mutated = st.builds(
        _mutate,
        valid.map(lambda m: m.SerializeToString()),
        st.integers(0, 2**16),
        st.integers(0, 255),
        st.sampled_from(["truncate", "flip", "unknown field"]),
    )
    return st.one_of(st.binary(max_size=64), wire_messages, invalid_utf8_in(string_paths), mutated)


def raw_streams(first: Any, later: st.SearchStrategy[bytes]) -> st.SearchStrategy[list[bytes]]:
    """Raw messages, after a valid first message or without one."""
    opening = st.sampled_from([[], [first.SerializeToString()]])
    return st.builds(lambda head, tail: head + tail, opening, st.lists(later, max_size=4))


def streams(
    first: st.SearchStrategy[Any], later: st.SearchStrategy[Any], runs: st.SearchStrategy[list[Any]] | None = None
) -> st.SearchStrategy[list[Any]]:
    """Mostly a first message then later ones (single messages, or ``runs`` of them: an
    utterance's audio); else any messages in any order, or none."""
    pieces = later.map(lambda message: [message]) if runs is None else st.one_of(later.map(lambda m: [m]), runs)
    in_order = st.builds(
        lambda head, tail: [head, *itertools.chain.from_iterable(tail)], first, st.lists(pieces, min_size=1, max_size=6)
    )
    return mostly(in_order, st.lists(st.one_of(first, later), max_size=4), odds=4)


# ---- ASR messages

recognition_configs = configs(
    asr_pb2.RecognitionConfig,
    audio=audio_formats(),
    language=Values(
        st.sampled_from(["", "en"]), st.one_of(odd_texts, st.sampled_from(["de", "xx", "EN", "en-US", "q" * 20_000]))
    ),
    vad_threshold=Values(st.floats(0.0625, 0.9375, width=32), float32s, optional=True),
    min_silence_ms=Values(st.integers(0, MAX_SILENCE_MS), uint32s, optional=True),
    speech_pad_ms=Values(st.integers(0, 1000), uint32s, optional=True),
    interim_results=Values(st.booleans(), st.booleans(), optional=True),
    interim_interval_ms=Values(st.integers(*INTERIM_INTERVAL_RANGE_MS), uint32s, optional=True),
)
TRACEPARENT = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01"
trace_contexts = st.builds(
    lambda utterance_id, headers: asr_pb2.TraceContext(utterance_id=utterance_id, headers=headers),
    st.one_of(st.integers(0, 3), uint32s),
    st.dictionaries(
        st.one_of(st.sampled_from(["traceparent", "tracestate", "baggage"]), st.text(max_size=8)),
        st.one_of(st.just(TRACEPARENT), st.just(f"00-{'0' * 32}-{'0' * 16}-00"), st.text(max_size=60)),
        max_size=3,
    ),
)
asr_configs = recognition_configs.map(lambda c: asr_pb2.RecognizeRequest(config=c))
asr_later = mostly(
    audio_chunks.map(lambda a: asr_pb2.RecognizeRequest(audio=a)),
    st.one_of(
        asr_configs,
        trace_contexts.map(lambda t: asr_pb2.RecognizeRequest(trace_context=t)),
        st.just(asr_pb2.RecognizeRequest()),
    ),
    odds=6,
)
ASR_STRINGS = [(1, 2), (3, 2, 1), (3, 2, 2)]  # config.language, trace_context.headers' keys and values

# ---- TTS messages

synthesis_configs = configs(
    tts_pb2.SynthesisConfig,
    voice=Values(
        st.sampled_from(["", PIPER_VOICE]),
        st.one_of(odd_texts, st.sampled_from(["af_heart", PIPER_VOICE.upper(), PIPER_VOICE + " ", "v" * 20_000])),
    ),
    sample_rate_hz=Values(st.sampled_from((0, *TTS_OUTPUT_RATES)), st.one_of(st.sampled_from([1, 11_025]), uint32s)),
    speed=Values(st.one_of(st.just(0.0), st.floats(0.5, 2.0, width=32)), float32s),
    first_phrase_words=Values(st.integers(1, 50), uint32s, optional=True),
    engine=Values(
        st.sampled_from(["", "piper"]), st.one_of(odd_texts, st.sampled_from(["kokoro", "Piper", "e" * 20_000]))
    ),
)
# Long texts that cost no synthesis: over the 5000-character limit, or nothing speakable in it.
LONG_TEXTS = ["x" * 5001, "word " * 1001, "😀. " * 1600, ". " * 2500, "\n" * 5000, "," * 5000, "y" * OVERSIZED]
tts_texts = mostly(st.one_of(odd_texts, st.sampled_from(SHORT_SENTENCES)), st.sampled_from(LONG_TEXTS), odds=6)
synthesize_requests = st.builds(tts_pb2.SynthesizeRequest, config=synthesis_configs, text=tts_texts)
tts_stream_configs = synthesis_configs.map(lambda c: tts_pb2.SynthesizeStreamRequest(config=c))
tts_stream_later = mostly(
    st.one_of(
        tts_texts.map(lambda t: tts_pb2.SynthesizeStreamRequest(text=t)),
        st.just(tts_pb2.SynthesizeStreamRequest(flush=tts_pb2.SynthesizeStreamRequest.Flush())),
        st.just(tts_pb2.SynthesizeStreamRequest(end=tts_pb2.SynthesizeStreamRequest.End())),
    ),
    st.one_of(tts_stream_configs, st.just(tts_pb2.SynthesizeStreamRequest())),  # both end the stream
    odds=6,
)
TTS_STRINGS = [(2,), (1, 1), (1, 5)]  # text, config.voice, config.engine (both requests number them alike)

# ---- gateway messages

session_fields = {
    # A long prompt that fits the LLM's context costs seconds of prefill on CPU: only short ones,
    # and one over the message limit. (One over the LLM's context has a test of its own below.)
    "system_prompt": Values(st.one_of(st.just(""), odd_texts), st.sampled_from(["Be brief. " * 20, "p" * OVERSIZED])),
    "voice": Values(
        st.sampled_from(["", PIPER_VOICE]), st.one_of(odd_texts, st.sampled_from(["nobody", "v" * 20_000]))
    ),
    "input_audio": audio_formats(),
    "output_sample_rate_hz": Values(
        st.sampled_from((0, *TTS_OUTPUT_RATES)), st.one_of(st.sampled_from([1, 11_025]), uint32s)
    ),
    "barge_in": Values(st.booleans(), st.booleans(), optional=True),
}
session_configs = configs(gateway_pb2.SessionConfig, **session_fields)
# Blank text starts no turn; every other text is a turn (LLM, TTS, and its audio's playing time).
gateway_texts = mostly(
    st.one_of(st.just("Hi."), st.text(min_size=1, max_size=12)),
    st.sampled_from(["", " ", "\n\t", "x" * 200_000, "y" * OVERSIZED]),
    odds=3,
)
converse_configs = session_configs.map(lambda c: gateway_pb2.ConverseRequest(config=c))
converse_later = mostly(
    st.one_of(
        audio_chunks.map(lambda a: gateway_pb2.ConverseRequest(audio=a)),
        gateway_texts.map(lambda t: gateway_pb2.ConverseRequest(text=t)),
    ),
    st.one_of(
        st.just(gateway_pb2.ConverseRequest(end=gateway_pb2.ConverseRequest.EndSession())),
        converse_configs,  # these two end the session with INVALID_ARGUMENT
        st.just(gateway_pb2.ConverseRequest()),
    ),
    odds=6,
)
converse_speech = speech_runs.map(lambda run: [gateway_pb2.ConverseRequest(audio=a) for a in run])
GATEWAY_STRINGS = [(3,), (1, 1), (1, 2)]  # text, config.system_prompt, config.voice


# ---- the ASR


@fuzz(40)
@given(
    requests=streams(
        asr_configs, asr_later, speech_runs.map(lambda run: [asr_pb2.RecognizeRequest(audio=a) for a in run])
    )
)
def test_recognize_ends_every_stream_with_a_documented_status(asr: Target, requests: list[Any]) -> None:
    outcome = call_stream(asr.channel, ASR_RECOGNIZE, serialized(requests), asr_pb2.RecognizeResponse.FromString)
    outcome.check(requests)
    for kind in {r.WhichOneof("event") for r in outcome.responses}:
        event(f"got {kind}")
    asr.assert_working()
    asr.assert_streams_released()


@fuzz(30)
@given(
    requests=raw_streams(
        asr_pb2.RecognizeRequest(config=asr_pb2.RecognitionConfig(audio=_pcm16(16_000))),
        raw_requests(st.one_of(asr_configs, asr_later), ASR_STRINGS),
    )
)
def test_recognize_refuses_malformed_bytes(asr: Target, requests: list[bytes]) -> None:
    call_stream(asr.channel, ASR_RECOGNIZE, requests, asr_pb2.RecognizeResponse.FromString).check(requests)
    asr.assert_working()
    asr.assert_streams_released()


# ---- the TTS (Piper: the fast engine; Kokoro's voices below)


@fuzz(30)
@given(request=synthesize_requests)
def test_synthesize_ends_with_a_documented_status(piper: Target, request: tts_pb2.SynthesizeRequest) -> None:
    data = request.SerializeToString()
    call_unary_stream(piper.channel, TTS_SYNTHESIZE, data, tts_pb2.SynthesizeResponse.FromString).check(request)
    piper.assert_working()
    piper.assert_streams_released()


@fuzz(25)
@given(requests=streams(tts_stream_configs, tts_stream_later))
def test_synthesize_stream_ends_with_a_documented_status(piper: Target, requests: list[Any]) -> None:
    outcome = call_stream(
        piper.channel, TTS_SYNTHESIZE_STREAM, serialized(requests), tts_pb2.SynthesizeResponse.FromString
    )
    outcome.check(requests)
    piper.assert_working()
    piper.assert_streams_released()


@fuzz(30)
@given(
    request=raw_requests(synthesize_requests, TTS_STRINGS),
    stream=raw_streams(
        tts_pb2.SynthesizeStreamRequest(config=tts_pb2.SynthesisConfig()),
        raw_requests(st.one_of(tts_stream_configs, tts_stream_later), TTS_STRINGS),
    ),
)
def test_tts_refuses_malformed_bytes(piper: Target, request: bytes, stream: list[bytes]) -> None:
    parse = tts_pb2.SynthesizeResponse.FromString
    call_unary_stream(piper.channel, TTS_SYNTHESIZE, request, parse).check(request)
    call_stream(piper.channel, TTS_SYNTHESIZE_STREAM, stream, parse).check(stream)
    piper.assert_working()
    piper.assert_streams_released()


def test_a_text_of_thousands_of_sentences_does_not_stall_the_service(piper: Target) -> None:
    """The phrase segmenter once took time cubic in such a text (minutes of a blocked event
    loop for 5000 characters): now the first audio comes at once and the service stays responsive."""
    rpc = piper.channel.unary_stream(TTS_SYNTHESIZE, request_serializer=_identity, response_deserializer=_identity)
    started = time.perf_counter()
    call = rpc(tts_pb2.SynthesizeRequest(text="ab. " * 1250).SerializeToString(), timeout=CALL_TIMEOUT_S)
    try:
        next(call)
        assert time.perf_counter() - started < 10
        reply = health_pb2_grpc.HealthStub(piper.channel).Check(health_pb2.HealthCheckRequest(), timeout=5)
        assert reply.status == health_pb2.HealthCheckResponse.SERVING
    finally:
        call.cancel()
    piper.assert_working()
    piper.assert_streams_released()


@fuzz(40)
@given(
    pattern=st.lists(
        st.sampled_from(["ab", "a", "Dr", "3", " ", ". ", ".", "!", "?", ",", ";", "\n", "😀", "…", "e.g", "\u200b"]),
        min_size=1,
        max_size=8,
    ),
    length=st.integers(1, 5000),
)
def test_segmenting_any_text_is_fast_and_its_phrases_cover_it(pattern: list[str], length: int) -> None:
    text = ("".join(pattern) * length)[:length]
    started = time.perf_counter()
    segmenter = PhraseSegmenter(4, 300)
    phrases = segmenter.push(text) + segmenter.flush()
    assert time.perf_counter() - started < 2.0, f"{len(text)} characters took {time.perf_counter() - started:.1f} s"
    assert [p.index for p in phrases] == list(range(len(phrases)))
    assert all(p.text == text[p.start : p.end] for p in phrases)
    assert all(a.end == b.start for a, b in itertools.pairwise(phrases))
    assert not phrases or phrases[0].start == 0


@pytest.mark.parametrize("tts_server", ["kokoro"], indirect=True)
def test_kokoro_speaks_its_voices_and_refuses_any_other(tts_server: ServiceProcess) -> None:
    with grpc.insecure_channel(tts_server.address) as channel:
        voices = list(tts_pb2_grpc.TtsStub(channel).ListVoices(tts_pb2.ListVoicesRequest(), timeout=10).voices)
        near_misses = st.builds(
            lambda voice, change: change(voice),
            st.sampled_from(voices),
            st.sampled_from([str.upper, lambda v: v + " ", lambda v: v[:-1], lambda v: "\u200b" + v]),
        )

        @fuzz(8)
        @given(voice=st.one_of(st.sampled_from(voices), near_misses, odd_texts))
        def check(voice: str) -> None:
            request = tts_pb2.SynthesizeRequest(config=tts_pb2.SynthesisConfig(voice=voice), text="Hi.")
            parse = tts_pb2.SynthesizeResponse.FromString
            outcome = call_unary_stream(channel, TTS_SYNTHESIZE, request.SerializeToString(), parse)
            if voice in voices or not voice:
                assert outcome.code == grpc.StatusCode.OK and outcome.responses, outcome
            else:
                assert outcome.code == grpc.StatusCode.INVALID_ARGUMENT, outcome
                assert "unknown voice" in outcome.details

        check()


# ---- the gateway


def _check_conversation(outcome: Outcome, requests: object) -> None:
    outcome.check(requests)
    for kind in {r.WhichOneof("event") for r in outcome.responses}:
        event(f"got {kind}")
    errors = [r.error for r in outcome.responses if r.WhichOneof("event") == "error"]
    for error in errors:
        event(f"error event {error.code} from {error.backend}")
    assert all(e.code in DOCUMENTED_EVENT_CODES and "metadata" not in e.message for e in errors), errors


@fuzz(30)
@given(requests=streams(converse_configs, converse_later, converse_speech))
def test_converse_ends_every_stream_with_a_documented_status(
    gateway: Target, asr: Target, piper: Target, requests: list[Any]
) -> None:
    parse = gateway_pb2.ConverseResponse.FromString
    _check_conversation(call_stream(gateway.channel, GATEWAY_CONVERSE, serialized(requests), parse), requests)
    gateway.assert_working()
    for target in (gateway, asr, piper):  # a session's backend streams end with it
        target.assert_streams_released()


# Sessions that start (16 kHz input, like the speech; a valid output rate), with odd voices,
# prompts and barge-in settings, then typed turns, speech and audio chunks: the turns' paths.
conversations = st.builds(
    lambda config, pieces, end: [
        gateway_pb2.ConverseRequest(config=config),
        *itertools.chain.from_iterable(pieces),
        *([gateway_pb2.ConverseRequest(end=gateway_pb2.ConverseRequest.EndSession())] if end else []),
    ],
    configs(
        gateway_pb2.SessionConfig,
        system_prompt=session_fields["system_prompt"],
        voice=session_fields["voice"],
        input_audio=Values(st.just(_pcm16(16_000)), st.just(_pcm16(16_000))),
        output_sample_rate_hz=Values(st.sampled_from((0, *TTS_OUTPUT_RATES)), st.sampled_from(TTS_OUTPUT_RATES)),
        barge_in=session_fields["barge_in"],
    ),
    st.lists(
        st.one_of(
            gateway_texts.map(lambda t: [gateway_pb2.ConverseRequest(text=t)]),
            converse_speech,
            small_audio_chunks.map(lambda a: [gateway_pb2.ConverseRequest(audio=a)]),
        ),
        min_size=1,
        max_size=3,
    ),
    st.booleans(),
)


@fuzz(12)
@given(requests=conversations)
def test_conversations_with_odd_sessions_end_with_a_documented_status(
    gateway: Target, asr: Target, piper: Target, requests: list[Any]
) -> None:
    parse = gateway_pb2.ConverseResponse.FromString
    _check_conversation(call_stream(gateway.channel, GATEWAY_CONVERSE, serialized(requests), parse), requests)
    gateway.assert_working()
    for target in (gateway, asr, piper):
        target.assert_streams_released()


@fuzz(30)
@given(
    requests=raw_streams(
        gateway_pb2.ConverseRequest(config=gateway_pb2.SessionConfig(input_audio=_pcm16(16_000))),
        raw_requests(st.one_of(converse_configs, converse_later), GATEWAY_STRINGS),
    )
)
def test_converse_refuses_malformed_bytes(gateway: Target, asr: Target, piper: Target, requests: list[bytes]) -> None:
    parse = gateway_pb2.ConverseResponse.FromString
    _check_conversation(call_stream(gateway.channel, GATEWAY_CONVERSE, requests, parse), requests)
    gateway.assert_working()
    for target in (gateway, asr, piper):
        target.assert_streams_released()


def test_a_prompt_over_the_llm_context_is_an_error_and_harms_no_later_turn(gateway: Target) -> None:
    """A system prompt over the history budget is refused at once; one within the budget by the
    gateway's estimate but over the embedded LLM's 2048-token context ("p " is a token per 2
    characters) fails its turn with an llm error event, and the next conversation is fine."""
    parse = gateway_pb2.ConverseResponse.FromString
    end = gateway_pb2.ConverseRequest(end=gateway_pb2.ConverseRequest.EndSession())
    huge = gateway_pb2.SessionConfig(input_audio=_pcm16(16_000), system_prompt="p " * 100_000)
    refused = call_stream(
        gateway.channel, GATEWAY_CONVERSE, serialized([gateway_pb2.ConverseRequest(config=huge)]), parse
    )
    assert refused.code == grpc.StatusCode.INVALID_ARGUMENT, refused
    for _ in range(3):
        config = gateway_pb2.SessionConfig(input_audio=_pcm16(16_000), system_prompt="p " * 2200)
        over = [gateway_pb2.ConverseRequest(config=config), gateway_pb2.ConverseRequest(text="Hi."), end]
        outcome = call_stream(gateway.channel, GATEWAY_CONVERSE, serialized(over), parse)
        assert outcome.code == grpc.StatusCode.OK, outcome
        errors = [r.error for r in outcome.responses if r.WhichOneof("event") == "error"]
        assert [e.backend for e in errors] == ["llm"], [r.WhichOneof("event") for r in outcome.responses]
        # Another conversation, right after: a turn like any other.
        config = gateway_pb2.SessionConfig(input_audio=_pcm16(16_000))
        normal = [gateway_pb2.ConverseRequest(config=config), gateway_pb2.ConverseRequest(text="Hi."), end]
        outcome = call_stream(gateway.channel, GATEWAY_CONVERSE, serialized(normal), parse)
        assert outcome.code == grpc.StatusCode.OK, outcome
        assert not [r.error for r in outcome.responses if r.WhichOneof("event") == "error"], outcome.responses


# ---- afterwards


# Where a log record starts (the services' text log format): its timestamp.
LOG_RECORD = re.compile(r"^(?=\d{4}-\d\d-\d\d \d\d:\d\d:\d\d)", re.MULTILINE)


def test_every_server_is_alive_and_logged_no_unhandled_error(
    asr: Target, piper: Target, gateway: Target, llm_server: ServiceProcess
) -> None:
    assert llm_server.process.poll() is None, llm_server.log.read_text()[-3000:]
    for target in (asr, piper, gateway):
        target.assert_working()
        with open(target.server.log, "rb") as log:
            log.seek(target.log_start)
            records = LOG_RECORD.split(log.read().decode(errors="replace"))
        # Known noise, not ours: OpenTelemetry's gRPC server interceptor keeps its span current across
        # a stream's yields, and a stream the client cancels is closed in another context
        # (open-telemetry/opentelemetry-python-contrib#2357); it logs this and carries on.
        unhandled = [r for r in records if "Traceback" in r and "Failed to detach context" not in r.split("\n")[0]]
        assert not unhandled, f"{target.label}:\n" + "\n".join(unhandled)[-5000:]
