"""The OpenAI Realtime-compatible WebSocket API (gateway/realtime), against the real stack.

Turns go through the official ``openai`` SDK's realtime client, as any client of the API would
talk; bad input and the close codes through a raw WebSocket (``websockets``), which sends what the
SDK never would. Then a Hypothesis fuzz of the JSON front: its parser in-process, and random
frames against a live socket, after which the session and the gateway still answer.
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import json
import signal
import urllib.request
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import grpc
import pytest
import websockets
from agents.realtime import RealtimeAgent, RealtimeModelConfig, RealtimeRunner, RealtimeSession
from conftest import gateway_args
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from openai import AsyncOpenAI
from support import ServiceProcess, running, spoken
from websockets.sync.client import connect as connect_sync

from gateway.realtime import protocol
from voice_agent.v1 import audio_pb2, gateway_pb2, gateway_pb2_grpc

KEY = "realtime-test-key"
RATE = protocol.SAMPLE_RATE
CHUNK_BYTES = RATE * 2 // 10  # 100 ms
TURN_TIMEOUT_S = 90.0


def http_port(server: ServiceProcess) -> int:
    assert server.settings is not None
    return server.settings.http_port  # type: ignore[attr-defined]


@pytest.fixture(scope="module")
def realtime_gateway(
    tmp_path_factory: pytest.TempPathFactory,
    asr_server: ServiceProcess,
    piper_server: ServiceProcess,
    llm_server: ServiceProcess,
) -> Iterator[ServiceProcess]:
    """A gateway with API keys on, its HTTP port free (start_service picks one)."""
    directory = tmp_path_factory.mktemp("realtime")
    keys = directory / "keys"
    keys.write_text(f"{KEY}\n")
    args = [*gateway_args(asr_server, piper_server, llm_server), "--api-keys-file", str(keys)]
    with running("gateway", directory / "gateway.log", *args) as server:
        yield server


def client(server: ServiceProcess, key: str = KEY) -> AsyncOpenAI:
    return AsyncOpenAI(base_url=f"http://127.0.0.1:{http_port(server)}/v1", api_key=key)


async def send_audio(connection: Any, pcm: bytes, pace_s: float = 0.02) -> None:
    for start in range(0, len(pcm), CHUNK_BYTES):
        await connection.input_audio_buffer.append(audio=base64.b64encode(pcm[start : start + CHUNK_BYTES]).decode())
        await asyncio.sleep(pace_s)


async def until(connection: Any, kind: str, seen: list[Any], timeout_s: float = TURN_TIMEOUT_S) -> Any:
    """Reads events into ``seen`` until one of type ``kind``; returns it."""
    async with asyncio.timeout(timeout_s):
        async for event in connection:
            seen.append(event)
            if event.type == kind:
                return event
    raise AssertionError(f"the socket closed before {kind}: {[e.type for e in seen]}")


def of(seen: list[Any], kind: str) -> list[Any]:
    return [event for event in seen if event.type == kind]


def reply_audio(seen: list[Any]) -> bytes:
    return b"".join(base64.b64decode(event.delta) for event in of(seen, "response.output_audio.delta"))


# ---- turns through the official SDK


async def test_spoken_turn(realtime_gateway: ServiceProcess) -> None:
    sample = spoken("What time does the meeting start tomorrow?", sample_rate=RATE)
    async with client(realtime_gateway).realtime.connect(model="voice-agent") as connection:
        seen: list[Any] = []
        created = await until(connection, "session.created", seen)
        assert created.session.audio.input.format.rate == RATE
        await send_audio(connection, sample.audio.data)
        done = await until(connection, "response.done", seen)
    kinds = [event.type for event in seen]
    for kind in (
        "input_audio_buffer.speech_started",
        "input_audio_buffer.speech_stopped",
        "input_audio_buffer.committed",
        "conversation.item.input_audio_transcription.completed",
        "response.created",
        "response.output_audio_transcript.delta",
        "response.output_audio.done",
        "response.output_audio_transcript.done",
    ):
        assert kind in kinds, kind
    transcript = of(seen, "conversation.item.input_audio_transcription.completed")[0].transcript.lower()
    assert "meeting" in transcript
    assert done.response.status == "completed"
    reply = of(seen, "response.output_audio_transcript.done")[0].transcript
    assert reply.strip()
    assert len(reply_audio(seen)) > RATE * 2 // 4  # over 250 ms of speech
    metadata = done.response.metadata
    for name in ("vad_wait_ms", "asr_ms", "llm_ttft_ms", "tts_ttfa_ms", "gateway_first_audio_ms", "e2e_ms"):
        assert float(metadata[name]) >= 0, name
    assert int(metadata["llm_tokens"]) > 0


async def typed_turn(connection: Any, text: str) -> None:
    await connection.conversation.item.create(
        item={"type": "message", "role": "user", "content": [{"type": "input_text", "text": text}]}
    )
    await connection.response.create()


async def test_typed_turn(realtime_gateway: ServiceProcess) -> None:
    async with client(realtime_gateway).realtime.connect(model="voice-agent") as connection:
        seen: list[Any] = []
        await until(connection, "session.created", seen)
        detection = {"type": "server_vad", "silence_duration_ms": 300, "interrupt_response": True}
        await connection.session.update(session={"type": "realtime", "audio": {"input": {"turn_detection": detection}}})
        updated = await until(connection, "session.updated", seen)
        assert updated.session.audio.input.turn_detection.silence_duration_ms == 300
        await typed_turn(connection, "How do I prepare for an interview?")
        done = await until(connection, "response.done", seen)
    assert done.response.status == "completed"
    added = of(seen, "conversation.item.added")
    assert added[0].item.role == "user" and added[0].item.content[0].text == "How do I prepare for an interview?"
    assert of(seen, "response.output_audio_transcript.done")[0].transcript.strip()
    assert reply_audio(seen)
    assert (
        done.response.output[0].content[0].transcript == of(seen, "response.output_audio_transcript.done")[0].transcript
    )


async def test_response_cancel(realtime_gateway: ServiceProcess) -> None:
    async with client(realtime_gateway).realtime.connect(model="voice-agent") as connection:
        seen: list[Any] = []
        await until(connection, "session.created", seen)
        await typed_turn(connection, "Tell me a long story about a lighthouse keeper.")
        await until(connection, "response.output_audio.delta", seen)
        await connection.response.cancel()
        done = await until(connection, "response.done", seen)
    assert done.response.status == "cancelled"
    assert done.response.status_details.reason == "client_cancelled"


async def test_truncate_keeps_what_was_played(realtime_gateway: ServiceProcess) -> None:
    async with client(realtime_gateway).realtime.connect(model="voice-agent") as connection:
        seen: list[Any] = []
        created = await until(connection, "session.created", seen)
        assert created.session.id.startswith("conv_")
        await typed_turn(connection, "Tell me a long story about a lighthouse keeper.")
        delta = await until(connection, "response.output_audio.delta", seen)
        await connection.response.cancel()
        done = await until(connection, "response.done", seen)
        assert done.response.conversation_id == created.session.id
        played_ms = len(reply_audio(seen)) // 2 * 1000 // RATE
        await connection.conversation.item.truncate(item_id=delta.item_id, content_index=0, audio_end_ms=played_ms)
        truncated = await until(connection, "conversation.item.truncated", seen)
        assert (truncated.item_id, truncated.audio_end_ms) == (delta.item_id, played_ms)
        await connection.send({"type": "conversation.item.truncate", "event_id": "far", "item_id": delta.item_id,
                               "content_index": 0, "audio_end_ms": played_ms + 60_000})  # fmt: skip
        error = await until(connection, "error", seen)
        assert error.error.param == "audio_end_ms" and error.error.event_id == "far"


async def test_barge_in(realtime_gateway: ServiceProcess) -> None:
    interruption = spoken("Wait, stop, I have a question.", sample_rate=RATE, lead_ms=0)
    async with client(realtime_gateway).realtime.connect(model="voice-agent") as connection:
        seen: list[Any] = []
        await until(connection, "session.created", seen)
        await typed_turn(connection, "Tell me a long story about a lighthouse keeper.")
        await until(connection, "response.output_audio.delta", seen)
        talking = asyncio.create_task(send_audio(connection, interruption.audio.data))
        done = await until(connection, "response.done", seen)
        await talking
    started = [e.type for e in seen].index("input_audio_buffer.speech_started")
    assert started < [e.type for e in seen].index("response.done")
    assert done.response.status == "cancelled"
    assert done.response.status_details.reason == "turn_detected"


async def test_wrong_key_is_refused(realtime_gateway: ServiceProcess) -> None:
    with pytest.raises(websockets.InvalidStatus) as refused:
        async with client(realtime_gateway, key="not-a-key").realtime.connect(model="voice-agent"):
            pass
    assert refused.value.response.status_code == 401


# ---- the Realtime API's voice names, and the OpenAI Agents SDK's realtime runner


@pytest.mark.parametrize("voice", ["ash", "coral"])
async def test_realtime_voice_names_hold_a_turn_without_error(realtime_gateway: ServiceProcess, voice: str) -> None:
    async with client(realtime_gateway).realtime.connect(model="voice-agent") as connection:
        seen: list[Any] = []
        await until(connection, "session.created", seen)
        await connection.session.update(session={"type": "realtime", "audio": {"output": {"voice": voice}}})
        updated = await until(connection, "session.updated", seen)
        assert updated.session.audio.output.voice == voice  # what the client asked for, not the engine's name
        await typed_turn(connection, "How do I prepare for an interview?")
        done = await until(connection, "response.done", seen)
    assert not of(seen, "error"), of(seen, "error")
    assert done.response.status == "completed"
    assert len(reply_audio(seen)) > RATE * 2 // 4


async def test_unknown_voice_error_lists_voices_and_realtime_names(raw: websockets.ClientConnection) -> None:
    update = {"type": "session.update", "event_id": "v", "session": {"audio": {"output": {"voice": "nobody"}}}}
    await raw.send(json.dumps(update))
    error = (await next_of(raw, "error"))["error"]
    assert error["message"].startswith("unknown voice 'nobody'") and error["event_id"] == "v"
    assert all(name in error["message"] for name in ("en_US-joe-medium", "ash", "coral", "cedar"))


async def test_agents_sdk_realtime_runner_holds_a_turn_with_its_defaults(realtime_gateway: ServiceProcess) -> None:
    """The Agents SDK as its users start it: its default session (voice 'ash', semantic_vad, input
    transcription, tracing 'auto'), spoken audio in, and not one error event in the whole session."""
    agent = RealtimeAgent(name="coach", instructions="You are a friendly speaking coach. Answer in one sentence.")
    model_config: RealtimeModelConfig = {
        "url": f"ws://127.0.0.1:{http_port(realtime_gateway)}/v1/realtime",
        "api_key": KEY,
    }
    speech = spoken("What time does the meeting start tomorrow?", sample_rate=RATE).audio.data
    seen: list[Any] = []
    async with await RealtimeRunner(starting_agent=agent).run(model_config=model_config) as session:
        talking = asyncio.create_task(_talk(session, speech))
        await _events_until(session, "agent_end", seen, TURN_TIMEOUT_S)
        await talking
        with contextlib.suppress(TimeoutError):  # anything the session still says, an error above all
            await _events_until(session, "never", seen, 1.0)
    assert not of(seen, "error"), [event.error for event in of(seen, "error")]
    assert len(b"".join(event.audio.data for event in of(seen, "audio"))) > RATE * 2 // 4
    history = of(seen, "history_updated")[-1].history
    assert "meeting" in _transcripts(history, "user").lower(), history
    assert _transcripts(history, "assistant").strip(), history


def _transcripts(history: list[Any], role: str) -> str:
    """The transcripts of the audio parts of ``role``'s messages in the SDK's history."""
    parts = [part for item in history if getattr(item, "role", None) == role for part in item.content]
    return " ".join(getattr(part, "transcript", None) or "" for part in parts)


async def _talk(session: RealtimeSession, pcm: bytes) -> None:
    for start in range(0, len(pcm), CHUNK_BYTES):
        await session.send_audio(pcm[start : start + CHUNK_BYTES])
        await asyncio.sleep(0.02)


async def _events_until(session: RealtimeSession, kind: str, seen: list[Any], timeout_s: float) -> None:
    async with asyncio.timeout(timeout_s):
        async for event in session:
            seen.append(event)
            if event.type == kind:
                return


# ---- the raw socket: bad input, the browser's credentials, close codes


def url(server: ServiceProcess) -> str:
    return f"ws://127.0.0.1:{http_port(server)}/v1/realtime?model=voice-agent"


@pytest.fixture
async def raw(realtime_gateway: ServiceProcess) -> AsyncIterator[websockets.ClientConnection]:
    async with websockets.connect(
        url(realtime_gateway), additional_headers={"Authorization": f"Bearer {KEY}"}, max_size=None
    ) as socket:
        assert json.loads(await socket.recv())["type"] == "session.created"
        yield socket


async def next_of(socket: websockets.ClientConnection, kind: str, timeout_s: float = 10.0) -> dict[str, Any]:
    async with asyncio.timeout(timeout_s):
        while True:
            event = json.loads(await socket.recv())
            if event["type"] == kind:
                return event


async def test_a_dropped_socket_resumes_its_conversation(realtime_gateway: ServiceProcess) -> None:
    headers = {"Authorization": f"Bearer {KEY}"}
    async with websockets.connect(url(realtime_gateway), additional_headers=headers, max_size=None) as socket:
        conversation_id = (await next_of(socket, "session.created"))["session"]["id"]
        item = {"type": "message", "role": "user", "content": [{"type": "input_text", "text": "Hi, I am Sam."}]}
        await socket.send(json.dumps({"type": "conversation.item.create", "item": item}))
        await socket.send(json.dumps({"type": "response.create"}))
        first = await next_of(socket, "response.done", TURN_TIMEOUT_S)
        socket.transport.abort()  # the network goes away: no close frame
    resumed_url = f"{url(realtime_gateway)}&resume={conversation_id}"
    async with websockets.connect(resumed_url, additional_headers=headers, max_size=None) as socket:
        created = await next_of(socket, "session.created")
        assert created["session"]["id"] == conversation_id
        await socket.send(json.dumps({"type": "response.create"}))  # a reply to the history as it is
        second = await next_of(socket, "response.done", TURN_TIMEOUT_S)
        assert second["response"]["conversation_id"] == conversation_id
        assert int(second["response"]["metadata"]["turn_id"]) == int(first["response"]["metadata"]["turn_id"]) + 1
    with pytest.raises(websockets.InvalidStatus) as refused:  # closed with 1000: it ended
        async with websockets.connect(resumed_url, additional_headers=headers):
            pass
    assert refused.value.response.status_code == 404


def truncate_frame(event_id: str, *, content_index: int) -> str:
    return json.dumps(
        {
            "type": "conversation.item.truncate",
            "event_id": event_id,
            "item_id": "item_unknown",
            "content_index": content_index,
            "audio_end_ms": 5,
        }
    )


BAD_FRAMES = [
    ("not json {", None, "not JSON"),
    (json.dumps({"type": "conversation.item.delete", "event_id": "e1"}), "e1", "unknown or unsupported"),
    (json.dumps({"type": "input_audio_buffer.append", "audio": 5, "event_id": "e2"}), "e2", "must be a string"),
    (json.dumps({"type": "input_audio_buffer.append", "audio": "@@not base64@@", "event_id": "e3"}), "e3", "base64"),
    (
        json.dumps(
            {
                "type": "session.update",
                "event_id": "e4",
                "session": {"type": "realtime", "audio": {"input": {"format": {"type": "audio/pcmu"}}}},
            }
        ),
        "e4",
        "unsupported audio format",
    ),
    (
        json.dumps(
            {
                "type": "session.update",
                "event_id": "e5",
                "session": {"audio": {"output": {"format": {"type": "audio/pcm", "rate": 16000}}}},
            }
        ),
        "e5",
        "unsupported audio format",
    ),
    (json.dumps({"type": "response.cancel", "event_id": "e6"}), "e6", "no response"),
    (json.dumps([1, 2]), None, "JSON object"),
    (truncate_frame("e7", content_index=0), "e7", "no assistant item"),
    (truncate_frame("e8", content_index=1), "e8", "content_index must be 0"),
]


async def test_bad_input_gets_error_events(raw: websockets.ClientConnection) -> None:
    for frame, event_id, words in BAD_FRAMES:
        await raw.send(frame)
        error = (await next_of(raw, "error"))["error"]
        assert error["type"] == "invalid_request_error"
        assert words in error["message"], (frame, error)
        assert error["event_id"] == event_id
    # The session goes on (its conversation started with the response.cancel): it still takes an update.
    await raw.send(json.dumps({"type": "session.update", "session": {"type": "realtime"}}))
    assert (await next_of(raw, "session.updated"))["session"]["audio"]["input"]["format"]["rate"] == RATE


async def test_session_update_after_start_names_what_cannot_change(raw: websockets.ClientConnection) -> None:
    silence = base64.b64encode(b"\0" * CHUNK_BYTES).decode()
    await raw.send(json.dumps({"type": "input_audio_buffer.append", "audio": silence}))  # starts the conversation
    update = {"type": "session.update", "event_id": "late", "session": {"instructions": "Now be a pirate."}}
    await raw.send(json.dumps(update))
    error = (await next_of(raw, "error"))["error"]
    assert "instructions" in error["message"] and error["event_id"] == "late"


async def test_oversized_frame_closes_1009(raw: websockets.ClientConnection) -> None:
    await raw.send("x" * (2 << 20))
    with pytest.raises(websockets.ConnectionClosed):
        async with asyncio.timeout(10):
            while True:
                await raw.recv()
    assert raw.close_code == 1009


async def test_browser_credentials_and_pages(realtime_gateway: ServiceProcess) -> None:
    protocols = ["realtime", f"openai-insecure-api-key.{KEY}"]
    async with websockets.connect(url(realtime_gateway), subprotocols=protocols) as socket:  # type: ignore[arg-type]
        assert socket.subprotocol == "realtime"
        assert json.loads(await socket.recv())["type"] == "session.created"
    with pytest.raises(websockets.InvalidStatus) as refused:
        async with websockets.connect(url(realtime_gateway), subprotocols=["realtime", "openai-insecure-api-key.no"]):  # type: ignore[list-item]
            pass
    assert refused.value.response.status_code == 401
    base = f"http://127.0.0.1:{http_port(realtime_gateway)}"
    assert await asyncio.to_thread(fetch, f"{base}/healthz") == (200, b"ok\n")
    status, page = await asyncio.to_thread(fetch, f"{base}/")
    assert status == 200 and b"<html" in page.lower()


def fetch(address: str) -> tuple[int, bytes]:
    with urllib.request.urlopen(address, timeout=5) as reply:
        return reply.status, reply.read()


# ---- one admission for both fronts, and the drain


async def test_limits_are_shared_with_converse_and_drain_closes_1001(
    tmp_path: Path, asr_server: ServiceProcess, piper_server: ServiceProcess, llm_server: ServiceProcess
) -> None:
    args = [*gateway_args(asr_server, piper_server, llm_server), "--max-streams", "1", "--shutdown-grace-s", "5"]
    server = running("gateway", tmp_path / "gateway.log", *args)
    with server as gateway:
        async with websockets.connect(url(gateway)) as socket:
            assert json.loads(await socket.recv())["type"] == "session.created"
            # The socket holds the one conversation: Converse is refused.
            async with grpc.aio.insecure_channel(gateway.address) as channel:
                stub = gateway_pb2_grpc.GatewayStub(channel)
                config = gateway_pb2.SessionConfig(
                    input_audio=audio_pb2.AudioFormat(encoding=audio_pb2.AUDIO_ENCODING_PCM16LE, sample_rate_hz=16_000)
                )
                call = stub.Converse(iter([gateway_pb2.ConverseRequest(config=config)]))
                with pytest.raises(grpc.aio.AioRpcError) as refused:
                    async for _ in call:
                        pass
                assert refused.value.code() == grpc.StatusCode.RESOURCE_EXHAUSTED
            # A second socket is refused too: an error with the retry hint, then 1013.
            async with websockets.connect(url(gateway)) as second:
                error = json.loads(await second.recv())
                assert error["type"] == "error" and error["error"]["retry_after_ms"] > 0
                with pytest.raises(websockets.ConnectionClosed):
                    await second.recv()
                assert second.close_code == 1013
            # The drain: an error event, then 1001 with a reason.
            gateway.process.send_signal(signal.SIGTERM)
            error = await next_of(socket, "error")
            assert "shutting down" in error["error"]["message"]
            with pytest.raises(websockets.ConnectionClosed):
                await socket.recv()
            assert socket.close_code == 1001 and "shutting down" in (socket.close_reason or "")


# ---- fuzzing the JSON front

FUZZ = settings(
    deadline=None,
    derandomize=True,
    database=None,
    print_blob=False,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large, HealthCheck.function_scoped_fixture],
)
KINDS = [*protocol._READERS, "session.created", "nonsense", ""]
json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(max_size=20),
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=12), inner, max_size=4),
    max_leaves=12,
)
events_like = st.fixed_dictionaries(
    {"type": st.sampled_from(KINDS)},
    optional={
        "event_id": json_values,
        "audio": st.text(max_size=40) | json_values,
        "session": json_values
        | st.fixed_dictionaries(
            {},
            optional={
                "type": json_values,
                "instructions": json_values,
                "audio": st.fixed_dictionaries(
                    {},
                    optional={
                        "input": st.dictionaries(st.sampled_from(["format", "turn_detection"]), json_values),
                        "output": st.dictionaries(st.sampled_from(["format", "voice"]), json_values),
                    },
                ),
            },
        ),
        "item": json_values,
    },
)
frames = st.one_of(st.text(max_size=80), events_like.map(json.dumps), json_values.map(json.dumps))


@pytest.mark.unit
@FUZZ
@given(frame=frames)
def test_parser_fuzz(frame: str) -> None:
    try:
        parsed = protocol.parse(frame)
    except protocol.ClientError as error:
        assert str(error)
        return
    assert parsed.type in protocol._READERS


@settings(FUZZ, max_examples=3)
@given(batch=st.lists(frames, min_size=100, max_size=100))
def test_live_socket_fuzz(realtime_gateway: ServiceProcess, batch: list[str]) -> None:
    """A hundred random frames a socket, three sockets: each session survives, and so does the gateway."""
    headers = {"Authorization": f"Bearer {KEY}"}
    with connect_sync(url(realtime_gateway), additional_headers=headers, max_size=None) as socket:
        for frame in batch:
            socket.send(frame)
        socket.send(json.dumps({"type": "session.update", "event_id": "alive", "session": {}}))
        while True:
            event = json.loads(socket.recv(timeout=30))
            if event["type"] == "session.updated" or (event.get("error") or {}).get("event_id") == "alive":
                break
    with urllib.request.urlopen(f"http://127.0.0.1:{http_port(realtime_gateway)}/healthz", timeout=5) as reply:
        assert reply.status == 200
