"""The Python SDK: one conversation with the gateway's Converse stream, kept across dropped connections.

    async with await connect("127.0.0.1:50051", token=key) as session:
        await session.send_audio(pcm16, 48_000)   # any rate and length: 20 ms frames at the session's rate
        await session.end_turn()                  # push-to-talk released
        async for event in session:               # typed events (voice_agent.client.events)
            ...

On an interruption the playout is flushed and the gateway told how much of the reply was played. When the
stream ends with a retryable error the session connects again (``ReconnectPolicy``) and resumes the
conversation by its id; audio sent while disconnected is dropped, as a phone line drops it.
docs/clients.md is the guide; clients/java is the same surface in Java.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator, Sequence

import grpc

from voice_agent import tls
from voice_agent.audio import PCM16_SAMPLE_BYTES, StreamResampler, check_input_rate, float_to_pcm16, pcm16_to_float
from voice_agent.call_status import ServerStatus
from voice_agent.client import events as ev
from voice_agent.client.converse import session_config
from voice_agent.client.playout import Playout, RealTimePlayout
from voice_agent.errors import RETRY_AFTER_KEY, InvalidArgument
from voice_agent.v1 import gateway_pb2, gateway_pb2_grpc

FRAME_MS = 20
_END = object()  # the request queue's last item: EndSession, then half-close


async def connect(address: str, *, token: str | None = None, tls_ca: str = "", **options: object) -> VoiceSession:
    """Opens a session to the gateway at ``address``: TLS verified against the CA file ``tls_ca`` when set,
    plaintext otherwise. ``token``: a bearer token, JWT or API key. ``options``: ``VoiceSession``'s."""
    session = VoiceSession(tls.aio_channel(address, ca_file=tls_ca), token=token, owns_channel=True, **options)
    session.start()
    return session


def _checked_rate(sample_rate: int) -> int:
    """``sample_rate`` if the gateway takes it; a ValueError (the app's mistake) otherwise."""
    try:
        return check_input_rate(sample_rate)
    except InvalidArgument as error:
        raise ValueError(str(error)) from None


class _Framer:
    """Microphone audio of any rate and length into 20 ms PCM16 frames at the session's rate."""

    def __init__(self, rate: int) -> None:
        self.rate = rate
        self.frame_bytes = rate * FRAME_MS // 1000 * PCM16_SAMPLE_BYTES
        self._pending = b""
        self._resampler: tuple[int, StreamResampler] | None = None

    def add(self, pcm16: bytes, sample_rate: int) -> list[bytes]:
        _checked_rate(sample_rate)
        if len(pcm16) % PCM16_SAMPLE_BYTES:
            raise ValueError(f"PCM16 audio has an even number of bytes, not {len(pcm16)}")
        if sample_rate != self.rate:
            if self._resampler is None or self._resampler[0] != sample_rate:
                self._resampler = (sample_rate, StreamResampler(sample_rate, self.rate))
            pcm16 = float_to_pcm16(self._resampler[1].process(pcm16_to_float(pcm16)))
        self._pending += pcm16
        return self._take()

    def finish(self) -> list[bytes]:
        """The frames left, the last padded with silence."""
        self._pending += b"\0" * (-len(self._pending) % self.frame_bytes)
        return self._take()

    def reset(self) -> None:
        self._pending, self._resampler = b"", None

    def _take(self) -> list[bytes]:
        whole = len(self._pending) - len(self._pending) % self.frame_bytes
        frames = [self._pending[i : i + self.frame_bytes] for i in range(0, whole, self.frame_bytes)]
        self._pending = self._pending[whole:]
        return frames


class _TurnClock:
    """When each frame of this stream went out, so the end of speech (stream-audio ms) maps to a moment."""

    def __init__(self) -> None:
        self.sent: list[float] = []
        self.user_turn_ended: float | None = None
        self.answering: dict[int, float] = {}

    def speech_ended(self, offset_ms: int) -> None:
        frame = min(max(0, (offset_ms - 1) // FRAME_MS), len(self.sent) - 1)
        if frame >= 0:
            self.user_turn_ended = self.sent[frame]

    def reply_started(self, turn_id: int) -> None:
        if turn_id not in self.answering and self.user_turn_ended is not None:
            self.answering[turn_id] = self.user_turn_ended
            self.user_turn_ended = None

    def e2e_ms(self, turn_id: int, played_from: float | None) -> float | None:
        ended = self.answering.pop(turn_id, None)
        return round((played_from - ended) * 1000, 1) if ended is not None and played_from is not None else None


class VoiceSession:
    """One conversation: ``send_audio``, ``send_text``, ``end_turn``, ``close``; iterate it for its events."""

    def __init__(
        self,
        channel: grpc.aio.Channel,
        *,
        token: str | None = None,
        sample_rate: int = 16_000,
        playout: Playout | None = None,
        reconnect: ev.ReconnectPolicy | None = None,
        metadata: Sequence[tuple[str, str]] = (),
        owns_channel: bool = False,
        resume_conversation_id: str = "",
        **options: object,
    ) -> None:
        """``options``: SessionConfig's fields (system_prompt, voice, output_sample_rate_hz, barge_in, ...)."""
        self._channel, self._owns_channel = channel, owns_channel
        self._stub = gateway_pb2_grpc.GatewayStub(channel)
        self._metadata = (*metadata, *((("authorization", f"Bearer {token}"),) if token else ()))
        self._config = session_config(_checked_rate(sample_rate), **options)
        self.playout: Playout = playout if playout is not None else RealTimePlayout()
        self._policy = reconnect if reconnect is not None else ev.ReconnectPolicy()
        self._framer = _Framer(sample_rate)
        self._clock = _TurnClock()
        self._events: asyncio.Queue[ev.Event] = asyncio.Queue()
        self._requests: asyncio.Queue[object] | None = None
        self._silence: asyncio.Task[None] | None = None
        self._closing = False
        self._run: asyncio.Task[None] | None = None
        self._started = False
        self._conversation = ""  # the one the last stream was in
        self._ended = False  # Closed was iterated
        self._detaching = False  # detach(): the call is cancelled, the conversation stays resumable
        self._call: grpc.aio.StreamStreamCall | None = None
        self._playing_turn = 0  # the agent turn whose audio was played last; 0: none since the last flush
        self._closed_with: ev.Error | None = None
        self.conversation_id = resume_conversation_id

    def start(self) -> None:
        if self._run is None:
            self._run = asyncio.create_task(self._keep_connected())

    async def __aenter__(self) -> VoiceSession:
        self.start()
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        await self.close()

    def __aiter__(self) -> VoiceSession:
        return self

    async def __anext__(self) -> ev.Event:
        """The next event; the iteration stops after ``Closed``."""
        if self._ended:
            raise StopAsyncIteration
        event = await self._events.get()
        self._ended = isinstance(event, ev.Closed)
        return event

    async def send_audio(self, pcm16: bytes, sample_rate: int) -> None:
        """The user's audio: PCM16LE mono at 8000-48000 Hz, any length; it goes out in 20 ms frames."""
        self._stop_silence()
        for frame in self._framer.add(pcm16, sample_rate):
            self._send(frame)

    async def end_turn(self) -> None:
        """Push-to-talk released: the partial frame goes out padded, then silence in real time (a muted
        microphone), so the gateway hears the end of speech; until the next ``send_audio``."""
        for frame in self._framer.finish():
            self._send(frame)
        self._stop_silence()
        self._silence = asyncio.create_task(self._send_silence())

    async def send_text(self, text: str) -> None:
        """A typed user turn."""
        self._clock.user_turn_ended = time.perf_counter()
        self._send(gateway_pb2.ConverseRequest(text=text))

    def stop_playout(self) -> int:
        """Stops the reply playing now, on the app's own account (audio focus lost, a mute button): flushes the
        playout and tells the gateway how much was played, as an interruption does. Returns the ms played."""
        return self._truncate(self._playing_turn) if self._playing_turn else 0

    def _truncate(self, turn_id: int) -> int:
        played = self.playout.flush(turn_id)
        self._send(gateway_pb2.ConverseRequest(truncate=gateway_pb2.Truncate(turn_id=turn_id, audio_end_ms=played)))
        self._playing_turn = 0
        return played

    async def close(self, timeout_s: float = 30.0) -> None:
        """Ends the conversation and waits for the gateway to end the stream."""
        self._closing = True
        self._stop_silence()
        if self._requests is not None:
            self._requests.put_nowait(_END)
        if self._run is not None:
            try:
                await asyncio.wait_for(asyncio.shield(self._run), timeout_s)
            except TimeoutError:
                self._run.cancel()
        if self._owns_channel:
            await self._channel.close()

    async def detach(self, timeout_s: float = 10.0) -> None:
        """Leaves without ending the conversation, as a dropped connection does (the app goes to the background):
        the gateway keeps it resumable by ``conversation_id`` for its resume window. The session is over."""
        self._closing = self._detaching = True
        self._stop_silence()
        if self._call is not None:
            self._call.cancel()
        if self._run is not None:
            await asyncio.wait([self._run], timeout=timeout_s)
        if self._owns_channel:
            await self._channel.close()

    async def wait_closed(self) -> ev.Error | None:
        """Waits until the session is over (closed, or an error not retried); returns that error."""
        if self._run is not None:
            await asyncio.shield(self._run)
        return self._closed_with

    def _stop_silence(self) -> None:
        if self._silence is not None:
            self._silence.cancel()
            self._silence = None

    async def _send_silence(self) -> None:
        quiet, start, count = b"\0" * self._framer.frame_bytes, time.perf_counter(), 0
        while True:
            count += 1
            await asyncio.sleep(max(0.0, start + count * FRAME_MS / 1000 - time.perf_counter()))
            self._send(quiet)

    def _send(self, item: bytes | gateway_pb2.ConverseRequest) -> None:
        if self._requests is not None and not self._closing:
            self._requests.put_nowait(item)

    def _emit(self, event: ev.Event) -> None:
        self._events.put_nowait(event)

    async def _keep_connected(self) -> None:
        attempt = 0
        try:
            while (cause := await self._stream_once()) is not None and not self._closing:
                if self._started:
                    attempt = 0  # the stream had been admitted: a new run of attempts
                if cause.code == "NOT_FOUND" and self.conversation_id:
                    self.conversation_id = ""  # expired, or another replica's: a new conversation
                    number, delay = 0, 0.0
                else:
                    attempt += 1
                    if (wait := self._policy.delay_ms(attempt, cause)) is None:
                        self._closed_with = cause
                        break
                    number, delay = attempt, wait
                self._emit(ev.Reconnecting(number, delay, cause))
                await asyncio.sleep(delay / 1000)
                if self._closing:  # closed while waiting to reconnect
                    break
        finally:
            self._stop_silence()
            self._emit(ev.Closed(self._closed_with))

    async def _stream_once(self) -> ev.Error | None:
        """One Converse stream to its end: None when it ended normally, else why."""
        self._requests = requests = asyncio.Queue()
        self._framer.reset()
        self._clock.sent = []  # the audio clock starts again with each stream
        self._started = False
        config = gateway_pb2.SessionConfig()
        config.CopyFrom(self._config)
        config.resume_conversation_id = self.conversation_id
        self._call = call = self._stub.Converse(self._outgoing(requests, config), metadata=self._metadata or None)
        status = ServerStatus(call)
        last_gateway_error: ev.Error | None = None
        try:
            async for response in call:
                last_gateway_error = self._handle(response)
        except grpc.aio.AioRpcError as error:
            return None if self._detaching else last_gateway_error or self._status_error(status.of(error))
        except asyncio.CancelledError:
            if not self._detaching or not call.cancelled():
                raise  # the task itself was cancelled
            return None
        finally:
            self._requests = None
            requests.put_nowait(_END)  # the request generator ends on its own, not when it is collected
            call.cancel()
        return None

    async def _outgoing(
        self, requests: asyncio.Queue[object], config: gateway_pb2.SessionConfig
    ) -> AsyncIterator[gateway_pb2.ConverseRequest]:
        yield gateway_pb2.ConverseRequest(config=config)
        while (item := await requests.get()) is not _END:
            if isinstance(item, bytes):
                self._clock.sent.append(time.perf_counter())
                yield gateway_pb2.ConverseRequest(audio=item)
            else:
                assert isinstance(item, gateway_pb2.ConverseRequest)
                yield item
        yield gateway_pb2.ConverseRequest(end=gateway_pb2.ConverseRequest.EndSession())

    def _status_error(self, error: grpc.aio.AioRpcError) -> ev.Error:
        hint = dict(error.trailing_metadata() or ()).get(RETRY_AFTER_KEY)
        retry = int(hint) if isinstance(hint, str) and hint.strip().isdigit() else None
        failed = ev.Error(error.code().name, error.details() or error.code().name, retry, "transport")
        self._emit(failed)
        return failed

    def _handle(self, response: gateway_pb2.ConverseResponse) -> ev.Error | None:
        """Emits the event; returns it when it is the gateway's error (the stream's real status if it ends)."""
        kind = response.WhichOneof("event")
        event = getattr(response, kind) if kind else None
        if kind == "session_started":
            if self._conversation not in ("", event.conversation_id):
                self.playout.reset()  # a new conversation (the old could not be resumed): turn ids start again
                self._clock = _TurnClock()
            self.conversation_id = self._conversation = event.conversation_id
            self._started = True
            self._emit(
                ev.SessionStarted(event.conversation_id, event.resumed, event.resume_window_s, event.last_turn_id)
            )
        elif kind == "speech_started":
            self._emit(ev.SpeechStarted(event.offset_ms))
        elif kind == "speech_ended":
            self._clock.speech_ended(event.offset_ms)
            self._emit(ev.SpeechEnded(event.offset_ms))
        elif kind in ("interim_transcript", "final_transcript"):
            self._emit(ev.Transcript(event.text, kind == "final_transcript"))
        elif kind == "agent_text":
            self._emit(ev.AgentText(event.turn_id, event.delta))
        elif kind == "agent_audio":
            self._clock.reply_started(event.turn_id)
            self.playout.play(event.turn_id, event.audio, event.sample_rate_hz)
            self._playing_turn = event.turn_id
            self._emit(ev.AgentAudio(event.turn_id, event.audio, event.sample_rate_hz))
        elif kind == "interruption":
            self._emit(ev.Interrupted(event.turn_id, event.heard_text, self._truncate(event.turn_id)))
        elif kind == "interruption_decision":
            self._emit(ev.InterruptionDecision(event.turn_id, event.kind, event.text))
        elif kind == "turn_metrics":
            self._emit(self._metrics(event))
        elif kind == "error":
            retry = event.retry_after_ms if event.HasField("retry_after_ms") else None
            failed = ev.Error(event.code, event.message, retry, event.backend, event.turn_id)
            self._emit(failed)
            return failed if event.backend == "gateway" else None
        return None

    def _metrics(self, reported: gateway_pb2.TurnMetrics) -> ev.TurnMetrics:
        e2e = self._clock.e2e_ms(reported.turn_id, self.playout.started_at(reported.turn_id))
        return ev.TurnMetrics(
            reported.turn_id,
            reported.vad_wait_ms,
            reported.asr_ms,
            reported.llm_ttft_ms,
            reported.tts_ttfa_ms,
            reported.gateway_first_audio_ms,
            reported.llm_tokens,
            reported.interrupted,
            reported.preemptive,
            e2e,
        )
