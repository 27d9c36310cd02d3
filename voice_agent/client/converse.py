"""Client of the gateway's Converse stream: open a session, send audio, iterate events.

``Conversation`` keeps a session open with a live microphone (speech, or
silence between turns, at real-time pace) as a phone would; ``talk`` is one
turn in a session of its own. ``TurnResult.metrics`` measures
``e2e_ms`` on the client's clock: from when the last sample of the user's
speech was sent (the ASR's speech-end offset, mapped to the wall-clock time
that sample went out) to the first agent audio chunk received.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import AsyncIterator, Callable, Sequence
from dataclasses import dataclass, field

import grpc

from voice_agent import tls
from voice_agent.audio import PCM16_SAMPLE_BYTES, Pcm16Audio
from voice_agent.call_status import ServerStatus, is_failed_write
from voice_agent.errors import RETRY_AFTER_KEY
from voice_agent.v1 import audio_pb2, gateway_pb2, gateway_pb2_grpc

CHUNK_MS = 100
STAGES = ("vad_wait_ms", "asr_ms", "llm_ttft_ms", "tts_ttfa_ms")


def connect(address: str, *, tls_ca: str = "") -> grpc.aio.Channel:
    """A channel to the gateway for ``Conversation``: TLS verified against the CA file ``tls_ca``
    (a gateway that serves TLS itself) when it is set, plaintext otherwise (the embedded stack)."""
    return tls.aio_channel(address, ca_file=tls_ca)


def session_config(sample_rate: int, **options: object) -> gateway_pb2.SessionConfig:
    audio = audio_pb2.AudioFormat(encoding=audio_pb2.AUDIO_ENCODING_PCM16LE, sample_rate_hz=sample_rate)
    return gateway_pb2.SessionConfig(input_audio=audio, **options)  # type: ignore[arg-type]


@dataclass
class TurnResult:
    """One user turn and the agent's answer, with the events as they arrived (perf_counter)."""

    events: list[tuple[float, gateway_pb2.ConverseResponse]] = field(default_factory=list)
    sent_at_ms: dict[int, float] = field(default_factory=dict)  # audio offset (ms) -> when it was sent
    conversation_id: str = ""  # SessionStarted's: to resume the conversation with (``resume=``)

    def of(self, kind: str) -> list[tuple[float, gateway_pb2.ConverseResponse]]:
        return [(t, e) for t, e in self.events if e.WhichOneof("event") == kind]

    @property
    def transcript(self) -> str:
        return " ".join(e.final_transcript.text for _, e in self.of("final_transcript") if e.final_transcript.text)

    @property
    def reply(self) -> str:
        return "".join(e.agent_text.delta for _, e in self.of("agent_text"))

    def reply_audio(self) -> Pcm16Audio:
        """Every agent audio chunk received, of every turn."""
        return _joined([e.agent_audio for _, e in self.of("agent_audio")])

    @property
    def errors(self) -> list[gateway_pb2.ErrorEvent]:
        return [e.error for _, e in self.of("error")]

    def answer(self) -> gateway_pb2.TurnMetrics | None:
        """The metrics of the agent turn that answered (not one that was interrupted)."""
        answers = [e.turn_metrics for _, e in self.of("turn_metrics") if not e.turn_metrics.interrupted]
        return answers[-1] if answers else None

    def reply_of(self, turn_id: int) -> str:
        return "".join(e.agent_text.delta for _, e in self.of("agent_text") if e.agent_text.turn_id == turn_id)

    def audio_of(self, turn_id: int) -> Pcm16Audio:
        """The agent audio of one turn (of an interrupted one, what was sent before the cut)."""
        return _joined([e.agent_audio for _, e in self.of("agent_audio") if e.agent_audio.turn_id == turn_id])

    def metrics(self) -> dict[str, float]:
        """The answering turn's timing names; e2e_ms and overhead_ms from the client's clock."""
        reported = self.answer()
        if reported is None:
            return {}
        result = {stage: round(getattr(reported, stage), 1) for stage in STAGES}
        audio = [t for t, e in self.of("agent_audio") if e.agent_audio.turn_id == reported.turn_id]
        ended = [(t, e) for t, e in self.of("speech_ended") if audio and t < audio[0]]
        if ended and audio:
            # When the chunk carrying the last sample of speech was sent.
            offset = ended[-1][1].speech_ended.offset_ms
            sent = self.sent_at_ms.get(offset // CHUNK_MS * CHUNK_MS)
            if sent is not None:
                result["e2e_ms"] = round((audio[0] - sent) * 1000, 1)
                result["overhead_ms"] = round(result["e2e_ms"] - sum(result[s] for s in STAGES), 1)
        result["gateway_first_audio_ms"] = round(reported.gateway_first_audio_ms, 1)
        return result


def _joined(chunks: list[gateway_pb2.AgentAudio]) -> Pcm16Audio:
    return Pcm16Audio(b"".join(c.audio for c in chunks), chunks[0].sample_rate_hz if chunks else 24_000)


class Conversation:
    """One Converse session with a live microphone: audio goes out in real time,
    silence when the user is not speaking, as a phone sends it.

    ``async with Conversation(channel) as conversation:`` then ``await
    conversation.speak(audio)`` per user turn; ``connect`` opens the channel
    (TLS with a CA file).
    """

    def __init__(
        self,
        channel: grpc.aio.Channel,
        *,
        sample_rate: int = 16_000,
        metadata: Sequence[tuple[str, str]] = (),
        **options: object,
    ) -> None:
        """``metadata`` goes with the stream: a bearer token, or a ``traceparent`` to join a trace."""
        self._stub = gateway_pb2_grpc.GatewayStub(channel)
        self._metadata = tuple(metadata)
        self._config = session_config(sample_rate, **options)
        self._silence = b"\0" * (sample_rate * CHUNK_MS // 1000 * PCM16_SAMPLE_BYTES)
        self._outgoing: asyncio.Queue[bytes | gateway_pb2.ConverseRequest] = asyncio.Queue()
        self._ending = False
        self._detaching = False
        self._arrived = asyncio.Condition()
        self.events: list[tuple[float, gateway_pb2.ConverseResponse]] = []
        self.sent_at_ms: dict[int, float] = {}

    async def __aenter__(self) -> Conversation:
        self._call = self._stub.Converse(self._requests(), metadata=self._metadata or None)
        self._status = ServerStatus(self._call)
        self._reader = asyncio.create_task(self._read())
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        if self._detaching:
            self._call.cancel()  # no EndSession: the conversation stays resumable for the gateway's window
            with contextlib.suppress(asyncio.CancelledError, grpc.aio.AioRpcError):
                await self._reader
            return
        self._ending = True
        try:
            await asyncio.wait_for(self._reader, 60)
        finally:
            self._call.cancel()

    def detach(self) -> None:
        """Leave without ending the conversation (as a dropped connection does): it can be resumed, by its
        id, within the gateway's resume window."""
        self._detaching = True

    async def speak(
        self, audio: Pcm16Audio, *, barge_in: Pcm16Audio | None = None, max_wait_s: float = 60.0
    ) -> TurnResult:
        """Says ``audio`` (and, once the agent starts talking, ``barge_in`` over it); returns
        the events until the agent's turn (or turns, with a barge-in) ended, or a backend failed."""
        start = len(self.events)
        self._say(audio)
        if barge_in is not None:
            await self._wait(lambda: self._count(start, "agent_audio") > 0 or self._failed(start), max_wait_s)
            if not self._failed(start):
                self._say(barge_in)
        await self._wait(lambda: self._answered(start) or self._failed(start), max_wait_s)
        return TurnResult(self.events[start:], self.sent_at_ms)

    async def type(self, text: str, max_wait_s: float = 60.0) -> TurnResult:
        start = len(self.events)
        self._outgoing.put_nowait(gateway_pb2.ConverseRequest(text=text))
        await self._wait(lambda: self._answered(start) or self._failed(start), max_wait_s)
        return TurnResult(self.events[start:], self.sent_at_ms)

    @property
    def started(self) -> gateway_pb2.SessionStarted | None:
        """The stream's first event: the conversation's id, and whether it resumed an earlier one."""
        return next((e.session_started for _, e in self.events if e.HasField("session_started")), None)

    @property
    def conversation_id(self) -> str:
        return self.started.conversation_id if self.started is not None else ""

    def truncate(self, turn_id: int, audio_end_ms: int) -> None:
        """Tells the gateway how much of a turn's reply audio was played (after an interruption flushed
        the playout): the history keeps that much of the reply."""
        truncate = gateway_pb2.Truncate(turn_id=turn_id, audio_end_ms=audio_end_ms)
        self._outgoing.put_nowait(gateway_pb2.ConverseRequest(truncate=truncate))

    async def ended(self, timeout_s: float = 60.0) -> None:
        """Waits for the gateway to end the stream (a limit, a drain); raises its status if not OK."""
        await asyncio.wait_for(asyncio.shield(self._reader), timeout_s)

    def _say(self, audio: Pcm16Audio) -> None:
        """Queues ``audio`` as full microphone buffers: a short last chunk is padded with
        silence, so that every chunk is CHUNK_MS long and the client's audio clock (which
        maps the ASR's offsets to send times) stays exact."""
        for chunk in audio.chunks(CHUNK_MS, pad=True):
            self._outgoing.put_nowait(chunk)

    def _count(self, start: int, kind: str) -> int:
        return sum(1 for _, event in self.events[start:] if event.WhichOneof("event") == kind)

    def _answered(self, start: int) -> bool:
        """An agent turn ended without being interrupted (a barge-in's interrupted turn does not count)."""
        return any(
            e.WhichOneof("event") == "turn_metrics" and not e.turn_metrics.interrupted for _, e in self.events[start:]
        )

    def _failed(self, start: int) -> bool:
        return any(e.WhichOneof("event") == "error" and e.error.backend != "asr" for _, e in self.events[start:])

    async def _wait(self, done: Callable[[], bool], timeout_s: float) -> None:
        async with self._arrived:
            await asyncio.wait_for(self._arrived.wait_for(lambda: done() or self._reader.done()), timeout_s)

    async def _read(self) -> None:
        try:
            async for event in self._call:
                async with self._arrived:
                    self.events.append((time.perf_counter(), event))
                    self._arrived.notify_all()
        except grpc.aio.AioRpcError as error:
            # A write raced the server's end of the stream: report the status the server sent
            # (UNAUTHENTICATED, RESOURCE_EXHAUSTED with its retry hint, ...), not grpc.aio's INTERNAL.
            sent = self._status.of(error)
            if sent is error and is_failed_write(error):
                sent = self._told(error)
            if sent is not error:
                raise sent from error
            raise
        finally:
            async with self._arrived:
                self._arrived.notify_all()

    def _told(self, error: grpc.aio.AioRpcError) -> grpc.aio.AioRpcError:
        """The status the gateway's last event names: it sends its status as an error event before
        ending a session, for clients that only get grpc.aio's INTERNAL. ``error`` where it sent none."""
        last = self.events[-1][1].error if self.events and self.events[-1][1].HasField("error") else None
        if last is None or last.backend != "gateway" or last.code not in grpc.StatusCode.__members__:
            return error
        hint = ((RETRY_AFTER_KEY, str(last.retry_after_ms)),) if last.HasField("retry_after_ms") else ()
        return grpc.aio.AioRpcError(
            grpc.StatusCode[last.code], grpc.aio.Metadata(), grpc.aio.Metadata(*hint), last.message
        )

    async def _requests(self) -> AsyncIterator[gateway_pb2.ConverseRequest]:
        yield gateway_pb2.ConverseRequest(config=self._config)
        started = time.perf_counter()
        offset_ms = 0
        while not self._ending:
            try:
                item = self._outgoing.get_nowait()
            except asyncio.QueueEmpty:
                item = self._silence
            if isinstance(item, gateway_pb2.ConverseRequest):
                yield item
                continue
            await asyncio.sleep(max(0.0, started + offset_ms / 1000 - time.perf_counter()))
            self.sent_at_ms[offset_ms] = time.perf_counter()
            offset_ms += CHUNK_MS
            yield gateway_pb2.ConverseRequest(audio=item)
        yield gateway_pb2.ConverseRequest(end=gateway_pb2.ConverseRequest.EndSession())


async def talk(
    channel: grpc.aio.Channel,
    audio: Pcm16Audio,
    *,
    barge_in_audio: Pcm16Audio | None = None,
    keep: bool = False,
    **options: object,
) -> TurnResult:
    """One spoken turn in a session of its own, at real-time pace (``resume_conversation_id=ID``: in the
    caller's dropped conversation ID, which goes on). ``keep``: the conversation is left resumable, not ended."""
    async with Conversation(channel, sample_rate=audio.sample_rate, **options) as conversation:
        result = await conversation.speak(audio, barge_in=barge_in_audio)
        result.conversation_id = conversation.conversation_id
        if keep:
            conversation.detach()
        return result
