"""Conversations that outlive the connection, against the real stack (ASR, llama.cpp + Gemma 3 270M, Piper,
gateway processes): resume after a dropped TCP connection, on another gateway process sharing the store,
refused for another caller; the records after a drain, with the recording's channels aligned; a record
store (PostgreSQL) that goes away mid-conversation and comes back. Connections are dropped by a TCP proxy
in between that aborts them, as a network that goes away does."""

from __future__ import annotations

import asyncio
import contextlib
import io
import itertools
import os
import signal
import threading
import time
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import grpc
import numpy as np
import pytest
import soundfile
from conftest import gateway_args, voice_agent
from store_servers import Postgres, postgres_server
from support import ServiceProcess, running, spoken

from gateway.records.model import RECORDING_SAMPLE_RATE_HZ, Record, Role, Status
from gateway.records.recordings import wav_chunks
from gateway.records.store import open_record_store, open_recording_store
from voice_agent.client.converse import session_config
from voice_agent.v1 import gateway_pb2, gateway_pb2_grpc
from voice_ops.samples import save

KEY_ALICE, KEY_BOB = "records-key-alice", "records-key-bob"
TURN_TIMEOUT_S = 90.0
TURN_TRIES = 3
QUESTION = "I have a job interview next week and I feel nervous"


class TcpProxy:
    """Forwards a local port to ``target``; ``drop`` aborts every connection (a network gone: RST, no
    goodbye), ``refuse`` also stops taking new ones until ``accept``."""

    def __init__(self, target: str) -> None:
        self.host, port = target.rsplit(":", 1)
        self.target_port = int(port)
        self.refusing = False
        self._transports: list[asyncio.Transport] = []
        self._server: asyncio.Server | None = None

    async def start(self) -> TcpProxy:
        self._server = await asyncio.start_server(self._serve, "127.0.0.1", 0)
        return self

    @property
    def address(self) -> str:
        assert self._server is not None
        return f"127.0.0.1:{self._server.sockets[0].getsockname()[1]}"

    def drop(self) -> None:
        for transport in self._transports:
            transport.abort()
        self._transports.clear()

    def refuse(self) -> None:
        self.refusing = True
        self.drop()

    def accept(self) -> None:
        self.refusing = False

    async def close(self) -> None:
        self.drop()
        if self._server is not None:
            self._server.close()

    async def _serve(self, client_reader: asyncio.StreamReader, client_writer: asyncio.StreamWriter) -> None:
        if self.refusing:
            client_writer.transport.abort()
            return
        try:
            server_reader, server_writer = await asyncio.open_connection(self.host, self.target_port)
        except OSError:
            client_writer.transport.abort()
            return
        self._transports += [client_writer.transport, server_writer.transport]  # type: ignore[list-item]
        await asyncio.gather(
            self._pipe(client_reader, server_writer), self._pipe(server_reader, client_writer), return_exceptions=True
        )

    @staticmethod
    async def _pipe(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            while data := await reader.read(65536):
                writer.write(data)
                await writer.drain()
        finally:
            writer.transport.abort()


@contextlib.asynccontextmanager
async def proxy(target: str) -> AsyncIterator[TcpProxy]:
    started = await TcpProxy(target).start()
    try:
        yield started
    finally:
        await started.close()


@contextlib.contextmanager
def proxy_thread(target: str) -> Iterator[TcpProxy]:
    """A TcpProxy on a loop of its own thread: it keeps forwarding while the test's loop is blocked (a
    gateway's shutdown, waited for synchronously, flushes its records through it)."""
    loop = asyncio.new_event_loop()
    thread = threading.Thread(target=loop.run_forever, daemon=True)
    thread.start()
    started = asyncio.run_coroutine_threadsafe(TcpProxy(target).start(), loop).result(10)
    try:
        yield ThreadSafe(started, loop)  # type: ignore[misc]
    finally:
        asyncio.run_coroutine_threadsafe(started.close(), loop).result(10)
        loop.call_soon_threadsafe(loop.stop)
        thread.join(10)


class ThreadSafe:
    """A TcpProxy's controls, from another thread than its loop's."""

    def __init__(self, proxy: TcpProxy, loop: asyncio.AbstractEventLoop) -> None:
        self._proxy, self._loop = proxy, loop
        self.address = proxy.address

    def refuse(self) -> None:
        self._loop.call_soon_threadsafe(self._proxy.refuse)

    def accept(self) -> None:
        self._loop.call_soon_threadsafe(self._proxy.accept)


class Stream:
    """One Converse stream, driven by hand: typed turns, and the events as they come."""

    def __init__(self, address: str, key: str, config: gateway_pb2.SessionConfig) -> None:
        self.channel = grpc.aio.insecure_channel(address)
        self.outgoing: asyncio.Queue[gateway_pb2.ConverseRequest | None] = asyncio.Queue()
        self.outgoing.put_nowait(gateway_pb2.ConverseRequest(config=config))
        stub = gateway_pb2_grpc.GatewayStub(self.channel)
        self.call = stub.Converse(self._requests(), metadata=(("authorization", f"Bearer {key}"),))
        self.events: list[tuple[float, gateway_pb2.ConverseResponse]] = []
        self.sent: dict[int, float] = {}

    async def _requests(self) -> AsyncIterator[gateway_pb2.ConverseRequest]:
        while (request := await self.outgoing.get()) is not None:
            yield request

    async def next(
        self, kind: str | tuple[str, ...], timeout_s: float = TURN_TIMEOUT_S
    ) -> gateway_pb2.ConverseResponse:
        kinds = (kind,) if isinstance(kind, str) else kind
        async with asyncio.timeout(timeout_s):
            while True:
                event = await self.call.read()
                assert event is not grpc.aio.EOF, f"the stream ended before {kind}"
                self.events.append((time.perf_counter(), event))
                if event.WhichOneof("event") in kinds:
                    return event

    async def turn(self, text: str) -> gateway_pb2.TurnMetrics:
        """A typed turn, answered. A turn the LLM failed (a stall: on this shared machine other processes
        starve it at times) is asked again, as a user would: the conversation goes on after a failed turn."""
        for _ in range(TURN_TRIES):
            self.outgoing.put_nowait(gateway_pb2.ConverseRequest(text=text))
            while True:
                event = await self.next(("turn_metrics", "error"))
                if event.HasField("error"):
                    if event.error.backend == "llm":
                        break
                    raise AssertionError(f"the turn failed: {event.error}")
                if not event.turn_metrics.interrupted:
                    return event.turn_metrics
        raise AssertionError(f"the LLM failed {TURN_TRIES} turns in a row")

    async def speak(self, pcm: bytes, rate: int, chunk_ms: int = 20) -> None:
        """Real-time microphone audio, then silence until cancelled (a microphone: the session never goes
        idle); ``sent`` keeps when each chunk went (by its offset in ms)."""
        step = rate * chunk_ms // 1000 * 2
        started = time.perf_counter()
        for number in itertools.count():
            await asyncio.sleep(max(0.0, started + number * chunk_ms / 1000 - time.perf_counter()))
            self.sent[number * chunk_ms] = time.perf_counter()
            chunk = pcm[number * step : (number + 1) * step].ljust(step, b"\0")
            self.outgoing.put_nowait(gateway_pb2.ConverseRequest(audio=chunk))

    async def end(self) -> None:
        self.outgoing.put_nowait(gateway_pb2.ConverseRequest(end=gateway_pb2.ConverseRequest.EndSession()))
        self.outgoing.put_nowait(None)
        async with asyncio.timeout(TURN_TIMEOUT_S):
            while (event := await self.call.read()) is not grpc.aio.EOF:
                self.events.append((time.perf_counter(), event))
        await self.close()

    async def close(self) -> None:
        self.call.cancel()
        await self.channel.close()


def records_args(folder: Path, records_url: str = "") -> list[str]:
    keys = folder / "keys"
    keys.write_text(f"{KEY_ALICE}\n{KEY_BOB}\n")
    return [
        "--api-keys-file",
        str(keys),
        "--records-url",
        records_url or f"sqlite:///{folder / 'conversations.db'}",
        "--recordings-url",
        f"file://{folder / 'recordings'}",
        "--record",
        "--no-memory",  # the summaries' LLM calls would compete with the turns' on two cores
    ]


@pytest.fixture(scope="module")
def records_folder(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("records")


@pytest.fixture(scope="module")
def records_gateway(
    records_folder: Path, asr_server: ServiceProcess, piper_server: ServiceProcess, llm_server: ServiceProcess
) -> Iterator[ServiceProcess]:
    args = [*gateway_args(asr_server, piper_server, llm_server), *records_args(records_folder)]
    with running("gateway", records_folder / "gateway.log", *args) as server:
        yield server


async def stored(folder: Path, conversation_id: str, until: str = "", timeout_s: float = 30.0) -> Record:
    """The record as the store has it (``until``: waiting for that status, as the writes are buffered)."""
    store = open_record_store(f"sqlite:///{folder / 'conversations.db'}")
    await store.open()
    try:
        async with asyncio.timeout(timeout_s):
            while True:
                record = await store.get(conversation_id)
                if record is not None and (not until or record.status == until):
                    return record
                await asyncio.sleep(0.2)
    finally:
        await store.close()


async def dropped_conversation(address: str) -> tuple[str, gateway_pb2.TurnMetrics]:
    """A typed turn through a proxy whose connection then drops; the conversation's id and the turn."""
    async with proxy(address) as tcp:
        stream = Stream(tcp.address, KEY_ALICE, session_config(16_000))
        started = (await stream.next("session_started")).session_started
        metrics = await stream.turn("How do I prepare for a job interview?")
        tcp.drop()
        with pytest.raises(grpc.aio.AioRpcError):
            await stream.next("turn_metrics", timeout_s=10)
        await stream.close()
    return started.conversation_id, metrics


def resumed_config(conversation_id: str) -> gateway_pb2.SessionConfig:
    config = session_config(16_000)
    config.resume_conversation_id = conversation_id
    return config


async def test_a_dropped_connection_resumes_with_the_history_intact(
    records_gateway: ServiceProcess, records_folder: Path
) -> None:
    conversation_id, first = await dropped_conversation(records_gateway.address)
    detached = await stored(records_folder, conversation_id, until=Status.DETACHED)
    assert [item.role for item in detached.items] == [Role.USER, Role.AGENT]
    stream = Stream(records_gateway.address, KEY_ALICE, resumed_config(conversation_id))
    started = (await stream.next("session_started")).session_started
    assert started.conversation_id == conversation_id and started.resumed
    assert started.last_turn_id == first.turn_id
    second = await stream.turn("And what should I wear?")
    assert second.turn_id == first.turn_id + 1  # the turn ids go on
    await stream.end()
    record = await stored(records_folder, conversation_id, until=Status.ENDED)
    users = [item.text for item in record.items if item.role == Role.USER]
    assert users == ["How do I prepare for a job interview?", "And what should I wear?"]
    agents = [item for item in record.items if item.role == Role.AGENT]
    assert [item.turn_id for item in agents] == [first.turn_id, second.turn_id] and all(a.text for a in agents)
    # The history the second reply was generated from held the first exchange: the record's items are it.
    assert record.items[0].start_ms < record.items[1].start_ms < record.items[2].start_ms


async def test_another_caller_cannot_resume_it(records_gateway: ServiceProcess) -> None:
    conversation_id, _ = await dropped_conversation(records_gateway.address)
    for key, resume in ((KEY_BOB, conversation_id), (KEY_ALICE, "conv_" + "0" * 24)):
        stream = Stream(records_gateway.address, key, resumed_config(resume))
        with pytest.raises(grpc.aio.AioRpcError) as refused:
            await stream.next("session_started", timeout_s=15)
        assert refused.value.code() == grpc.StatusCode.NOT_FOUND, refused.value.details()
        await stream.close()
    stream = Stream(records_gateway.address, KEY_ALICE, resumed_config("../etc/passwd"))
    with pytest.raises(grpc.aio.AioRpcError) as bad:
        await stream.next("session_started", timeout_s=15)
    assert bad.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    await stream.close()


async def test_a_resume_lands_on_another_gateway_process_sharing_the_store(
    records_gateway: ServiceProcess,
    records_folder: Path,
    asr_server: ServiceProcess,
    piper_server: ServiceProcess,
    llm_server: ServiceProcess,
) -> None:
    conversation_id, first = await dropped_conversation(records_gateway.address)
    await stored(records_folder, conversation_id, until=Status.DETACHED)
    args = [*gateway_args(asr_server, piper_server, llm_server), *records_args(records_folder)]
    with running("gateway", records_folder / "gateway-2.log", *args) as other:
        stream = Stream(other.address, KEY_ALICE, resumed_config(conversation_id))
        started = (await stream.next("session_started")).session_started
        assert started.resumed and started.last_turn_id == first.turn_id
        assert (await stream.turn("Thanks, anything else?")).turn_id == first.turn_id + 1
        await stream.end()
    record = await stored(records_folder, conversation_id, until=Status.ENDED)
    assert [item.turn_id for item in record.items if item.role == Role.AGENT] == [first.turn_id, first.turn_id + 1]


async def test_voice_agent_talk_resume_goes_on_with_the_conversation(
    records_gateway: ServiceProcess, records_folder: Path, tmp_path: Path
) -> None:
    save(spoken(QUESTION), tmp_path / "question.wav")
    talk = ["talk", "--wav", str(tmp_path / "question.wav"), "--out", str(tmp_path / "reply.wav")]
    talk += ["--gateway", records_gateway.address, "--token", KEY_ALICE]
    env = {**os.environ, "VOICE_STATE_DIR": str(tmp_path / "state")}
    first = await asyncio.to_thread(voice_agent, *talk, env=env)
    conversation_id = first["conversation_id"]
    assert conversation_id.startswith("conv_") and first["reply"].strip()
    second = await asyncio.to_thread(voice_agent, *talk, "--resume", conversation_id, env=env)
    assert second["conversation_id"] == conversation_id and second["reply"].strip()
    record = await stored(records_folder, conversation_id, until=Status.DETACHED)  # left resumable
    assert [item.turn_id for item in record.items if item.role == Role.AGENT] == [1, 2]


def onset_ms(channel: np.ndarray, threshold: int = 1500, rate: int = RECORDING_SAMPLE_RATE_HZ) -> float:
    loud = np.flatnonzero(np.abs(channel.astype(np.int32)) > threshold)
    assert loud.size, "silent channel"
    return float(loud[0]) / (rate / 1000)


async def test_the_records_are_complete_after_a_drain_and_the_recording_is_aligned(
    tmp_path: Path, asr_server: ServiceProcess, piper_server: ServiceProcess, llm_server: ServiceProcess
) -> None:
    sample = spoken(QUESTION)
    args = [*gateway_args(asr_server, piper_server, llm_server), *records_args(tmp_path)]
    with running("gateway", tmp_path / "gateway.log", *args) as gateway:
        stream = Stream(gateway.address, KEY_ALICE, session_config(sample.audio.sample_rate))
        conversation_id = (await stream.next("session_started")).session_started.conversation_id
        speaking = asyncio.create_task(stream.speak(sample.audio.data, sample.audio.sample_rate))
        first_audio = await stream.next("agent_audio")
        heard_at = stream.events[-1][0]
        await stream.next("turn_metrics")
        speaking.cancel()
        turn_id = first_audio.agent_audio.turn_id
        chunks = [e.agent_audio.audio for _, e in stream.events if e.agent_audio.turn_id == turn_id]
        reply = np.frombuffer(b"".join(chunks), "<i2")  # played back to back from the first chunk's arrival
        gateway.process.send_signal(signal.SIGTERM)  # the drain ends the stream at this moment of rest
        with pytest.raises(grpc.aio.AioRpcError) as drained:
            await stream.next("turn_metrics", timeout_s=30)
        assert drained.value.code() == grpc.StatusCode.UNAVAILABLE
        await stream.close()
    # The process has exited: everything it had is in the stores.
    record = await stored(tmp_path, conversation_id)
    assert record.status == Status.DETACHED  # a drained conversation may be resumed on another replica
    user, agent = record.items[:2]
    assert user.role == Role.USER and "interview" in user.text.lower()
    assert agent.turn_id == first_audio.agent_audio.turn_id
    assert user.start_ms < user.end_ms <= agent.start_ms < agent.end_ms
    recordings = open_recording_store(f"file://{tmp_path / 'recordings'}")
    await recordings.open()
    wav = b"".join([chunk async for chunk in wav_chunks(recordings, record.recording_key)])
    audio, rate = soundfile.read(io.BytesIO(wav), dtype="int16")
    assert rate == RECORDING_SAMPLE_RATE_HZ and audio.shape[0] / rate * 1000 >= agent.end_ms - 50
    # The alignment: from the user's first word to the agent's first audio, the recording's gap is the one the
    # client saw (the speech starts lead_ms into the sample; the reply's first chunk is heard on arrival).
    user_onset, agent_onset = onset_ms(audio[:, 0]), onset_ms(audio[:, 1])
    # By the client's clock: the first loud sample it sent, and the first loud sample of the reply it got
    # (the same threshold as in the recording; each chunk went out when its first sample was due).
    said = onset_ms(np.frombuffer(sample.audio.data, "<i2"), rate=sample.audio.sample_rate)
    said_at = stream.sent[0] + said / 1000
    heard = onset_ms(reply, rate=first_audio.agent_audio.sample_rate_hz)
    client_gap_ms = (heard_at - said_at) * 1000 + heard
    assert abs((agent_onset - user_onset) - client_gap_ms) <= 50, (agent_onset, user_onset, client_gap_ms)
    assert abs(agent_onset - (agent.start_ms + heard)) <= 50  # the item sits where its audio does
    assert user_onset - 300 <= user.start_ms <= user_onset + 300  # the ASR's speech start (its VAD's margins)


@pytest.fixture(scope="module")
def postgres() -> Iterator[Postgres]:
    with postgres_server() as server:
        yield server


async def test_a_record_store_that_goes_away_mid_conversation_loses_nothing_within_the_buffer(
    tmp_path: Path,
    postgres: Postgres,
    asr_server: ServiceProcess,
    piper_server: ServiceProcess,
    llm_server: ServiceProcess,
) -> None:
    with proxy_thread(f"127.0.0.1:{postgres.port}") as database:
        url = f"postgresql://postgres@{database.address}/postgres"
        args = [*gateway_args(asr_server, piper_server, llm_server), *records_args(tmp_path, url)]
        with running("gateway", tmp_path / "gateway.log", *args) as gateway:
            stream = Stream(gateway.address, KEY_ALICE, session_config(16_000))
            conversation_id = (await stream.next("session_started")).session_started.conversation_id
            await stream.turn("How do I start my talk?")
            database.refuse()  # the store goes away: the conversation goes on
            await stream.turn("And how do I end it?")
            await asyncio.sleep(1.0)
            database.accept()  # it is back: the buffered writes go in
            await stream.turn("Thank you.")
            await stream.end()
    store = open_record_store(postgres.url())
    await store.open()
    try:
        record = await store.get(conversation_id)
    finally:
        await store.close()
    assert record is not None and record.status == Status.ENDED
    assert [item.text for item in record.items if item.role == Role.USER] == [
        "How do I start my talk?",
        "And how do I end it?",
        "Thank you.",
    ]
    assert [item.turn_id for item in record.items if item.role == Role.AGENT] == [1, 2, 3]
