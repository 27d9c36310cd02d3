"""One conversation: its ASR stream, its turns, barge-in and backend failures.

The session forwards the client's audio to one ASR stream and the ASR's
events back to the client. A final transcript (or typed text) starts an agent
turn; speech that starts while a turn is thinking or speaking interrupts it.
A backend that fails gives the client an error event and the session goes on:
the ASR stream reconnects with backoff, and the next turn tries the LLM and
TTS again.
"""

from __future__ import annotations

import asyncio
import bisect
import collections
import contextlib
import logging
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass

import grpc
from opentelemetry import context as otel_context
from opentelemetry import trace
from prometheus_client import Counter, Gauge

from gateway.config import GatewayConfig
from gateway.history import History, estimate_tokens
from gateway.latency import LatencyPlan, recognition_config, same_words
from gateway.llm import ChatClient
from gateway.preemption import HeldEvents, Preemption
from gateway.turn import AgentTurn, Emit, TtsFailure, TurnTiming
from voice_agent.audio import ASR_INPUT_RATES, TTS_OUTPUT_RATES, check_format, check_pcm16_chunk
from voice_agent.call_status import ServerStatus
from voice_agent.errors import DRAINED_KEY, DeadlineExceeded, Draining, InvalidArgument, ServiceError
from voice_agent.metrics import COMMON_ERROR_CODES, init_labels, latency_histogram
from voice_agent.telemetry import trace_headers, trace_id_of, tracer, wall_ns
from voice_agent.v1 import asr_pb2, asr_pb2_grpc, gateway_pb2, tts_pb2, tts_pb2_grpc

log = logging.getLogger(__name__)

# Audio held while the ASR stream reconnects (100 ms chunks: ~5 s); newer audio is dropped past it.
AUDIO_BACKLOG = 50
RECONNECT_BACKOFF_S = (0.25, 0.5, 1.0, 2.0, 5.0)
# How often a session checks its time limits and the drain.
GUARD_INTERVAL_S = 0.1

ACTIVE_SESSIONS = Gauge("voice_gateway_active_sessions", "Conversations open now.")
TURNS = Counter(
    "voice_gateway_turns_total",
    "Agent turns, by how they ended: completed, interrupted, failed, cancelled.",
    ["outcome"],
)
INTERRUPTIONS = Counter("voice_gateway_interruptions_total", "Agent turns the user interrupted.")
BACKEND_ERRORS = Counter(
    "voice_gateway_backend_errors_total", "Backend failures seen by sessions.", ["backend", "code"]
)
PREEMPTIONS = Counter(
    "voice_gateway_preemptive_turns_total",
    "Replies started on a pause's transcript, by what became of them: kept (the final matched) or discarded.",
    ["outcome"],
)
LLM_TOKENS = Counter("voice_gateway_llm_tokens_total", "Content tokens streamed from the LLM.")
STAGE_SECONDS = latency_histogram("voice_gateway_stage_seconds", "Stages of completed turns.", ("stage",))
E2E_SECONDS = latency_histogram(
    "voice_gateway_e2e_seconds", "End of the user's speech to the first agent audio sent, at the gateway."
)
STAGES = ("vad_wait", "asr", "llm_ttft", "tts_ttfa", "overhead")
init_labels(TURNS, *((outcome,) for outcome in ("completed", "interrupted", "failed", "cancelled")))
init_labels(PREEMPTIONS, ("kept",), ("discarded",))
init_labels(STAGE_SECONDS, *((stage,) for stage in STAGES))
init_labels(BACKEND_ERRORS, *((backend, code) for backend in ("asr", "tts", "llm") for code in COMMON_ERROR_CODES))


@dataclass(frozen=True)
class Backends:
    asr: asr_pb2_grpc.AsrStub
    tts: tts_pb2_grpc.TtsStub
    llm: ChatClient
    #: Fresh, unpooled connections, for turns with the warm paths off (the latency baseline).
    new_tts_channel: Callable[[], grpc.aio.Channel]
    new_llm: Callable[[], ChatClient]


def session_settings(request: gateway_pb2.ConverseRequest, history_tokens: int) -> gateway_pb2.SessionConfig:
    """Validates the stream's first message; raises InvalidArgument naming the problem."""
    if request.WhichOneof("request") != "config":
        raise InvalidArgument("the first message of a Converse stream must be a SessionConfig (field 'config')")
    config = request.config
    if estimate_tokens(config.system_prompt) > history_tokens:
        # It is always sent whole: past the history's budget it would crowd out the conversation,
        # or overflow the LLM's context and fail every turn.
        raise InvalidArgument(
            f"the system prompt (~{estimate_tokens(config.system_prompt)} tokens) is over the history budget"
            f" of {history_tokens} tokens"
        )
    if not config.HasField("input_audio"):
        raise InvalidArgument("SessionConfig.input_audio is required: give the encoding and sample_rate_hz")
    check_format(config.input_audio, ASR_INPUT_RATES)
    rate = config.output_sample_rate_hz
    if rate and rate not in TTS_OUTPUT_RATES:
        raise InvalidArgument(
            f"unsupported output rate {rate} Hz: use 0 or one of {', '.join(map(str, TTS_OUTPUT_RATES))}"
        )
    return config


class AudioClock:
    """When the gateway received each point of the audio it sent to the ASR stream, so that
    the ASR's offsets (ms of audio since that stream began) become times on the gateway's clock."""

    def __init__(self, sample_rate: int, keep: int = 600) -> None:
        self._bytes_per_ms = sample_rate * 2 / 1000
        self._ends: collections.deque[float] = collections.deque(maxlen=keep)  # offset (ms) after each chunk
        self._received: collections.deque[float] = collections.deque(maxlen=keep)
        self._offset_ms = 0.0

    def restart(self) -> None:
        """A new ASR stream counts its offsets from zero."""
        self._ends.clear()
        self._received.clear()
        self._offset_ms = 0.0

    def sent(self, pcm: bytes, received_at: float) -> None:
        self._offset_ms += len(pcm) / self._bytes_per_ms
        self._ends.append(self._offset_ms)
        self._received.append(received_at)

    def at(self, offset_ms: float) -> float | None:
        """The perf_counter time the sample at ``offset_ms`` was captured, if it is still remembered;
        a chunk arrives when its last sample was captured, so earlier samples are dated back."""
        index = bisect.bisect_left(self._ends, offset_ms)
        if index == len(self._ends) or (index == 0 and offset_ms < self._ends[0] - 1000):
            return None
        return self._received[index] - (self._ends[index] - offset_ms) / 1000


class Session:
    def __init__(
        self,
        config: GatewayConfig,
        settings: gateway_pb2.SessionConfig,
        backends: Backends,
        emit: Emit,
        *,
        draining: asyncio.Event | None = None,
    ) -> None:
        self._config = config
        self._draining = draining or asyncio.Event()
        self._started_at = self._last_message_at = time.monotonic()
        self._settings = settings
        self._backends = backends
        self._emit = emit
        self._history = History(settings.system_prompt or config.system_prompt, config.history_tokens)
        self._barge_in = settings.barge_in if settings.HasField("barge_in") else config.barge_in
        self._plan = LatencyPlan.for_mode(config.latency_mode, config.min_silence_ms).with_options(settings.latency)
        self._tts_config = tts_pb2.SynthesisConfig(
            voice=settings.voice or config.voice,
            sample_rate_hz=settings.output_sample_rate_hz,
            first_phrase_words=self._plan.first_phrase_words(config.first_phrase_words),
        )
        self._preemption: Preemption | None = None
        # ASR requests waiting to be sent, with when their audio arrived.
        self._outgoing: asyncio.Queue[tuple[asr_pb2.RecognizeRequest, float] | None] = asyncio.Queue(AUDIO_BACKLOG)
        self._asr_writer: asyncio.Task[None] | None = None  # writes _outgoing to the ASR call of the moment
        self._clock = AudioClock(settings.input_audio.sample_rate_hz)
        self._turn: AgentTurn | None = None
        self._turn_task: asyncio.Task[None] | None = None
        self._turn_ids = 0
        self._in_speech = False
        self._awaiting_final = False
        self._speech_ended_at: float | None = None
        self._speech_end_at: float | None = None
        self._vad_wait_ms = 0.0
        self._barge_in_timer: asyncio.Task[None] | None = None
        self._closing = False
        self._turn_ended_at = 0.0
        # Each turn is a trace of its own, linked to the Converse stream's span (a trace per session).
        self._session_span = trace.get_current_span().get_span_context()
        self._next_turn_span: trace.Span | None = None  # opened when the user starts speaking

    async def run(self, requests: AsyncIterator[gateway_pb2.ConverseRequest]) -> None:
        """Serves the conversation until the client ends it, then finishes the turn in flight;
        or until a limit or the gateway's drain ends it with the guard's error."""
        ACTIVE_SESSIONS.inc()
        asr = asyncio.create_task(self._asr_loop())
        reader = asyncio.create_task(self._read(requests))
        guard = asyncio.create_task(self._guard())
        try:
            await asyncio.wait([reader, guard], return_when=asyncio.FIRST_COMPLETED)
            if guard.done():
                guard.result()  # raises: the session ends with its status
            guard.cancel()
            reader.result()
            self._closing = True
            self._end_audio()  # the ASR flushes the utterance in progress
            await asyncio.wait([asr], timeout=self._config.backend_timeout_s)
            if self._turn_task is not None:  # a final transcript may just have started one
                await asyncio.wait([self._turn_task], timeout=self._config.backend_timeout_s)
        finally:
            self._closing = True
            for task in (reader, guard, asr):
                task.cancel()
            self.close()
            ACTIVE_SESSIONS.dec()

    def close(self) -> None:
        self._discard_preemption()
        self._stop_asr_writer()
        for task in (self._turn_task, self._barge_in_timer):
            if task is not None:
                task.cancel()
        self._end_next_turn_span("abandoned")

    async def _read(self, requests: AsyncIterator[gateway_pb2.ConverseRequest]) -> None:
        async for request in requests:
            self._last_message_at = time.monotonic()
            kind = request.WhichOneof("request")
            if kind == "audio":
                self._on_audio(request.audio)
            elif kind == "text":
                self._on_text(request.text)
            elif kind == "end":
                return
            else:
                what = "a second SessionConfig" if kind == "config" else "a message with no audio, text or end"
                raise InvalidArgument(f"expected audio, text or end after the SessionConfig, got {what}")

    async def _guard(self) -> None:
        """Ends the session, with a status that says why, past its length or idle limit, or when
        the gateway drains; each waits for a moment when no turn is in flight, so nothing is cut."""
        config = self._config
        while True:
            await asyncio.sleep(GUARD_INTERVAL_S)
            now = time.monotonic()
            if not self._at_rest():
                # A turn may run past the length limit, but not by more than a turn's deadline.
                if now - self._started_at > config.max_session_s + config.backend_timeout_s:
                    raise DeadlineExceeded(f"the conversation reached its limit of {config.max_session_s:g} s")
                continue
            if self._draining.is_set():
                raise Draining("the gateway is shutting down; connect again to go on (another replica will answer)")
            if now - self._started_at > config.max_session_s:
                raise DeadlineExceeded(f"the conversation reached its limit of {config.max_session_s:g} s")
            if now - max(self._last_message_at, self._turn_ended_at) > config.idle_timeout_s:
                raise DeadlineExceeded(f"no message from the client for {config.idle_timeout_s:g} s")

    def _at_rest(self) -> bool:
        """Neither the user nor the agent is mid-turn: ending the session here loses nothing."""
        return not (self._in_speech or self._awaiting_final or self._agent_active())

    def _on_text(self, text: str) -> None:
        text = text.strip()
        if len(text) > self._config.max_text_chars:
            # The session survives a bad message: the client hears why, and nothing else changes.
            message = f"typed text of {len(text)} characters is over the limit of {self._config.max_text_chars}"
            self._emit(
                gateway_pb2.ConverseResponse(
                    error=gateway_pb2.ErrorEvent(code="INVALID_ARGUMENT", message=message, backend="gateway")
                )
            )
            return
        if text:
            now = time.perf_counter()
            self._start_turn(text, TurnTiming(final_at=now), self._open_turn_span(now))

    # ---- audio in, ASR events out

    def _end_audio(self) -> None:
        if self._outgoing.full():
            self._outgoing.get_nowait()
        self._outgoing.put_nowait(None)

    def _on_audio(self, pcm: bytes) -> None:
        check_pcm16_chunk(pcm, self._settings.input_audio.sample_rate_hz, self._config.max_chunk_ms)
        with contextlib.suppress(asyncio.QueueFull):  # ASR down for long: drop, rather than grow without bound
            self._outgoing.put_nowait((asr_pb2.RecognizeRequest(audio=pcm), time.perf_counter()))

    async def _asr_requests(self) -> AsyncIterator[asr_pb2.RecognizeRequest]:
        self._asr_writer = asyncio.current_task()  # grpc's task that writes them: _asr_loop stops it
        self._clock.restart()
        config = recognition_config(self._settings, self._plan, self._config.incomplete_silence_ms)
        yield asr_pb2.RecognizeRequest(config=config)
        while (item := await self._outgoing.get()) is not None:
            request, received_at = item
            if request.audio:
                self._clock.sent(request.audio, received_at)
            yield request

    async def _asr_loop(self) -> None:
        failures = 0
        while True:
            call = self._backends.asr.Recognize(self._asr_requests())
            status = ServerStatus(call)  # the ASR's own status, even if it ends the stream mid-write
            try:
                async for event in call:
                    failures = 0
                    self._on_asr_event(event)
                return  # the ASR finished after our half-close
            except grpc.aio.AioRpcError as raised:
                error = status.of(raised)
                self._stop_asr_writer()
                if self._closing:
                    return
                if _drained(error):  # the ASR shut down between utterances: nothing lost, go to another at once
                    log.info("session: the ASR stream was drained; reconnecting")
                    failures = 0
                    continue
                self._report("asr", error.code().name, f"speech recognition failed: {error.details()}")
                await asyncio.sleep(RECONNECT_BACKOFF_S[min(failures, len(RECONNECT_BACKOFF_S) - 1)])
                failures += 1

    def _stop_asr_writer(self) -> None:
        """Stops the failed call's request task. grpc's cancel() does not, once the call has ended: it
        would wait on the audio queue and take the first chunk from the next call, which would lose it."""
        if self._asr_writer is not None:
            self._asr_writer.cancel()
            self._asr_writer = None

    def _on_asr_event(self, event: asr_pb2.RecognizeResponse) -> None:
        kind = event.WhichOneof("event")
        if kind == "speech_started":
            self._in_speech = True
            self._discard_preemption()
            self._on_speech_started(event.speech_started)
            self._emit(gateway_pb2.ConverseResponse(speech_started=event.speech_started))
            self._maybe_barge_in()
        elif kind == "speech_ended":
            self._in_speech = False
            self._awaiting_final = True
            self._speech_ended_at = time.perf_counter()
            ended = event.speech_ended
            self._speech_end_at = self._clock.at(ended.offset_ms)
            self._vad_wait_ms = float(ended.decision_offset_ms - ended.offset_ms)
            self._emit(gateway_pb2.ConverseResponse(speech_ended=ended))
        elif kind == "paused":
            self._on_paused(event.paused)
        elif kind == "resumed":
            self._discard_preemption()  # the user went on: the reply to the pause is out of date
        elif kind == "interim":
            self._emit(gateway_pb2.ConverseResponse(interim_transcript=event.interim))
        elif kind == "final":
            self._awaiting_final = False
            self._emit(gateway_pb2.ConverseResponse(final_transcript=event.final))
            self._on_final(event.final)

    def _on_speech_started(self, started: asr_pb2.SpeechStarted) -> None:
        """The user's turn begins: its trace opens, and the ASR is told which trace the utterance joins."""
        self._end_next_turn_span("abandoned")  # an utterance that never got its final (the ASR reconnected)
        span = self._open_turn_span(self._clock.at(started.offset_ms) or time.perf_counter())
        self._next_turn_span = span
        if span.is_recording():
            context = asr_pb2.TraceContext(utterance_id=started.utterance_id, headers=trace_headers(span))
            with contextlib.suppress(asyncio.QueueFull):
                self._outgoing.put_nowait((asr_pb2.RecognizeRequest(trace_context=context), 0.0))

    def _on_final(self, final: asr_pb2.Transcript) -> None:
        span, self._next_turn_span = self._next_turn_span, None
        preemption, self._preemption = self._preemption, None
        text = final.text.strip()
        if not text:
            self._discard(preemption)
            if span is not None:
                span.set_attribute("turn.outcome", "no_speech")
                span.end()
            return
        timing = TurnTiming(
            final_at=time.perf_counter(),
            speech_ended_at=self._speech_ended_at,
            speech_end_at=self._speech_end_at,
            vad_wait_ms=self._vad_wait_ms,
        )
        if preemption is not None and same_words(preemption.text, text):
            self._keep(preemption, text, timing)
            return
        self._discard(preemption)
        self._start_turn(text, timing, span or self._open_turn_span(timing.final_at))

    # ---- preemptive generation: the reply starts on a pause's transcript

    def _on_paused(self, paused: asr_pb2.SpeechPaused) -> None:
        text = paused.transcript.text.strip()
        if not (self._plan.preemptive_generation and text) or self._agent_active():
            return
        self._discard_preemption()  # an earlier pause's, if the resumed event was lost
        if self._next_turn_span is None:  # the ASR reconnected mid-utterance
            self._next_turn_span = self._open_turn_span(time.perf_counter())
        events = HeldEvents(self._emit)
        kept = asyncio.Event()
        messages = [*self._history.messages(), {"role": "user", "content": text}]
        timing = TurnTiming(final_at=time.perf_counter())  # until the final's timing replaces it
        turn, cleanup = self._new_turn(self._turn_ids + 1, messages, timing, self._next_turn_span, events.put, kept)
        task = asyncio.create_task(self._run_turn(turn, cleanup, kept))
        self._preemption = Preemption(text, turn, events, kept, task)

    def _keep(self, preemption: Preemption, text: str, timing: TurnTiming) -> None:
        """The final transcript says what the pause's did: the reply under way is the turn."""
        self._interrupt()
        self._history.add_user(text)
        self._turn_ids = preemption.turn.turn_id
        turn = preemption.turn
        turn.preemptive = True
        turn.span.set_attribute("turn_id", turn.turn_id)
        turn.timing.final_at = timing.final_at
        turn.timing.speech_ended_at = timing.speech_ended_at
        turn.timing.speech_end_at = timing.speech_end_at
        turn.timing.vad_wait_ms = timing.vad_wait_ms
        self._turn, self._turn_task = turn, preemption.task
        PREEMPTIONS.labels("kept").inc()
        preemption.events.release()  # its text so far, in order, before any of its audio
        preemption.kept.set()

    def _discard_preemption(self) -> None:
        preemption, self._preemption = self._preemption, None
        self._discard(preemption)

    @staticmethod
    def _discard(preemption: Preemption | None) -> None:
        """Cancels a reply to a pause that turned out not to be the end: none of it reached the client."""
        if preemption is not None:
            preemption.task.cancel()
            PREEMPTIONS.labels("discarded").inc()

    def _open_turn_span(self, started_at: float) -> trace.Span:
        links = [trace.Link(self._session_span)] if self._session_span.is_valid else None
        return tracer.start_span(
            "voice.turn",
            otel_context.Context(),  # a new trace: a conversation can last far longer than a trace view
            links=links,
            start_time=wall_ns(started_at),
            attributes={"tts.voice": self._tts_config.voice, "llm.model": self._backends.llm.settings.model},
        )

    def _end_next_turn_span(self, outcome: str) -> None:
        if self._next_turn_span is not None:
            self._next_turn_span.set_attribute("turn.outcome", outcome)
            self._next_turn_span.end()
            self._next_turn_span = None

    # ---- turns and barge-in

    def _agent_active(self) -> bool:
        return self._turn_task is not None and not self._turn_task.done()

    def _maybe_barge_in(self) -> None:
        if not (self._barge_in and self._agent_active()):
            return
        wait_ms = self._config.barge_in_min_speech_ms
        if wait_ms == 0:
            self._interrupt()
        elif self._barge_in_timer is None or self._barge_in_timer.done():
            self._barge_in_timer = asyncio.create_task(self._interrupt_if_still_speaking(wait_ms / 1000))

    async def _interrupt_if_still_speaking(self, wait_s: float) -> None:
        await asyncio.sleep(wait_s)
        if self._in_speech:
            self._interrupt()

    def _interrupt(self) -> None:
        turn, task = self._turn, self._turn_task
        if turn is None or task is None or task.done():
            return
        task.cancel()  # no audio of this turn is sent after this line
        heard = turn.heard_text()
        self._history.add_agent(heard)
        INTERRUPTIONS.inc()
        self._end_turn(turn, "interrupted")
        self._emit(
            gateway_pb2.ConverseResponse(interruption=gateway_pb2.Interruption(turn_id=turn.turn_id, heard_text=heard))
        )
        self._emit(gateway_pb2.ConverseResponse(turn_metrics=turn.metrics(interrupted=True)))

    def _start_turn(self, user_text: str, timing: TurnTiming, span: trace.Span) -> None:
        self._discard_preemption()  # typed text while the user paused: the pause's reply is moot
        self._interrupt()  # a new user turn replaces one still in flight
        self._history.add_user(user_text)
        self._turn_ids += 1
        span.set_attribute("turn_id", self._turn_ids)
        self._turn, cleanup = self._new_turn(self._turn_ids, self._history.messages(), timing, span, self._emit)
        self._turn_task = asyncio.create_task(self._run_turn(self._turn, cleanup))

    def _new_turn(
        self,
        turn_id: int,
        messages: list[dict[str, str]],
        timing: TurnTiming,
        span: trace.Span,
        emit: Emit,
        hold: asyncio.Event | None = None,
    ) -> tuple[AgentTurn, Callable[[], Awaitable[None]]]:
        """An agent turn on the session's backends, and what closes its own connections after it."""
        llm, tts = self._backends.llm, self._backends.tts
        cleanup = _nothing
        if not self._plan.warm_paths:
            # The baseline's cold paths: new connections per turn, and a prompt prefix that changes every
            # turn (as a timestamp or a turn counter up front does), so the LLM's prefix cache misses.
            channel, llm = self._backends.new_tts_channel(), self._backends.new_llm()
            tts = tts_pb2_grpc.TtsStub(channel)
            system = {"role": "system", "content": f"Turn {turn_id} at {time.time():.3f}.\n{messages[0]['content']}"}
            messages = [system, *messages[1:]]

            async def cleanup() -> None:
                await llm.close()
                await channel.close()

        turn = AgentTurn(
            turn_id,
            messages,
            llm,
            tts,
            self._tts_config,
            timing,
            emit,
            lead_ms=self._config.audio_lead_ms,
            tts_timeout_s=self._config.backend_timeout_s,
            span=span,
            hold=hold,
        )
        return turn, cleanup

    async def _run_turn(
        self, turn: AgentTurn, cleanup: Callable[[], Awaitable[None]], kept: asyncio.Event | None = None
    ) -> None:
        """Runs a turn and records how it ended. A preemptive turn (``kept`` given) counts only once
        it is kept: cancelled before that, it leaves no trace in the conversation."""
        failure: tuple[str, str, str] | None = None  # backend, status code, message
        try:
            await turn.run()
        except asyncio.CancelledError:
            if kept is None or kept.is_set():
                self._end_turn(turn, "cancelled")  # the session closed mid-turn; an interruption ended it already
            raise
        except ServiceError as error:
            failure = ("llm", error.code.name, str(error))
        except TtsFailure as error:
            failure = ("tts", error.code.name, f"speech synthesis failed: {error}")
        except Exception as error:  # a bug: this turn fails, the conversation goes on
            log.exception("session: turn %d failed", turn.turn_id)
            failure = ("gateway", "INTERNAL", f"the turn failed: {type(error).__name__}")
        finally:
            await asyncio.shield(cleanup())
        if kept is not None:
            await kept.wait()
        if failure is not None:
            backend, code, message = failure
            self._report(backend, code, message, turn.turn_id)
            self._history.add_agent(turn.heard_text())
            self._end_turn(turn, "failed", message)
            return
        self._history.add_agent(turn.reply.text)
        self._observe(turn)
        self._end_turn(turn, "completed")
        self._emit(gateway_pb2.ConverseResponse(turn_metrics=turn.metrics(interrupted=False)))

    def _end_turn(self, turn: AgentTurn, outcome: str, error: str | None = None) -> None:
        self._turn_ended_at = time.monotonic()
        if turn.end(outcome, error):
            TURNS.labels(outcome).inc()
            LLM_TOKENS.inc(turn.reply.tokens)

    @staticmethod
    def _observe(turn: AgentTurn) -> None:
        """A completed turn's stages into the histograms; the end-to-end one links to its trace."""
        stages = turn.stage_ms()
        for stage in STAGES:
            value = stages[f"{stage}_ms"]
            if value > 0 or (stage == "overhead" and stages["e2e_ms"] > 0):
                STAGE_SECONDS.labels(stage).observe(max(value, 0.0) / 1000)
        if stages["e2e_ms"] > 0:
            trace_id = trace_id_of(turn.span)
            E2E_SECONDS.observe(stages["e2e_ms"] / 1000, exemplar={"trace_id": trace_id} if trace_id else None)

    def _report(self, backend: str, code: str, message: str, turn_id: int = 0) -> None:
        BACKEND_ERRORS.labels(backend, code).inc()
        log.warning("session: %s failed (%s): %s", backend, code, message)
        error = gateway_pb2.ErrorEvent(code=code, message=message, backend=backend, turn_id=turn_id)
        self._emit(gateway_pb2.ConverseResponse(error=error))


def _drained(error: grpc.aio.AioRpcError) -> bool:
    return any(key == DRAINED_KEY for key, _ in error.trailing_metadata() or ())


async def _nothing() -> None:
    return None
