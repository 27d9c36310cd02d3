"""One agent turn: LLM tokens go to TTS as they arrive, and audio goes to the client.

Audio is paced: the gateway keeps at most ``lead_ms`` of agent audio ahead of
the client's playback, so that a barge-in stops what the user hears within
that lead, and ``heard_text`` is what was actually played. A turn ends when
its audio has played out at the client, not when the last chunk is sent, so
that speech over the last words still interrupts it. Cancelling the turn
closes the LLM's HTTP stream (the server stops generating) and the TTS stream
(the service stops synthesizing).
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import AsyncIterator
from dataclasses import dataclass
from enum import StrEnum

import grpc
from opentelemetry import trace

from gateway.events import AgentAudio, AgentText, Emit, TurnMetrics
from gateway.llm import ChatClient, Reply
from gateway.persona import DEFAULT_SYSTEM_PROMPT, FALLBACK_REPLY
from gateway.reply_text import SpokenReply, labels_in, speakable
from voice_agent.call_status import ServerStatus
from voice_agent.errors import ServiceError
from voice_agent.telemetry import tracer
from voice_agent.v1 import tts_pb2, tts_pb2_grpc

log = logging.getLogger(__name__)


class TurnOutcome(StrEnum):
    """How an agent turn ended: the span's turn.outcome, and voice_gateway_turns_total's label."""

    COMPLETED = "completed"
    INTERRUPTED = "interrupted"  # the user barged in, or the client cancelled the reply
    FAILED = "failed"  # a backend failed; the conversation goes on
    CANCELLED = "cancelled"  # the session closed mid-turn


class EmptyRecovery(StrEnum):
    """How a turn whose LLM reply had nothing to say recovered: voice_gateway_empty_replies_total's label."""

    RETRY = "retry"  # asked again with the built-in persona
    FALLBACK = "fallback"  # the fallback line was said


@dataclass
class TurnTiming:
    """Clock readings (perf_counter) that the turn's metrics come from."""

    final_at: float  # the user's final transcript (or typed text) reached the gateway
    end_decided_at: float | None = None  # the ASR's end-of-turn decision reached the gateway
    speech_end_at: float | None = None  # the user's speech ended, by the gateway's clock of the audio it received
    vad_wait_ms: float = 0.0
    tts_first_text_at: float | None = None
    tts_first_audio_at: float | None = None
    first_audio_sent_at: float | None = None

    def user_side_from(self, other: TurnTiming) -> None:
        """The user's side of ``other`` (a kept preemptive turn's final transcript), keeping the agent's."""
        self.final_at, self.end_decided_at = other.final_at, other.end_decided_at
        self.speech_end_at, self.vad_wait_ms = other.speech_end_at, other.vad_wait_ms


class TtsFailure(Exception):
    """The TTS stream failed; carries the gRPC status."""

    def __init__(self, code: grpc.StatusCode, message: str) -> None:
        super().__init__(message)
        self.code = code


class AgentTurn:
    def __init__(
        self,
        turn_id: int,
        messages: list[dict[str, str]],
        llm: ChatClient,
        tts: tts_pb2_grpc.TtsStub,
        tts_config: tts_pb2.SynthesisConfig,
        timing: TurnTiming,
        emit: Emit,
        *,
        lead_ms: int,
        tts_timeout_s: float,
        span: trace.Span,
        hold: asyncio.Event | None = None,
    ) -> None:
        """``messages`` is what the LLM sees; with ``hold``, no audio is sent before it is set
        (a preemptive turn, started before the user's turn has surely ended)."""
        self.turn_id = turn_id
        self.timing = timing
        self.span = span  # voice.turn: the root of the turn's trace, opened when the user began
        self.outcome: TurnOutcome | None = None  # once it has ended
        self.reply = Reply()  # the LLM's reply (the one spoken, after a retry)
        self.spoken = SpokenReply(labels_in(messages[0]["content"]) if messages else ())
        self.empty_recovery: EmptyRecovery | None = None  # the LLM gave nothing to say: what made the reply
        self.preemptive = False  # started before the final transcript, and kept
        self._messages = messages
        self._hold = hold
        self._llm = llm
        self._tts = tts
        self._tts_config = tts_config
        self._emit = emit
        self._lead_s = lead_ms / 1000
        self._tts_timeout_s = tts_timeout_s
        self._sequence = 0
        self._playback_end = 0.0  # when the audio sent so far ends playing at the client
        self._played: list[tuple[float, int]] = []  # (play start, text end) per chunk sent
        self._phrases: list[_Phrase] = []  # where each phrase of the reply lies in its audio
        self._audio_ms = 0.0  # of audio sent so far
        self._sending = asyncio.Event()  # cleared: audio is held (an interruption being decided), not sent
        self._sending.set()

    async def run(self) -> None:
        with trace.use_span(self.span, end_on_exit=False):
            await self._run()

    async def _run(self) -> None:
        fragments: asyncio.Queue[str | None] = asyncio.Queue()
        tts_span = tracer.start_span("tts.synthesize", attributes={"tts.voice": self._tts_config.voice})
        with trace.use_span(tts_span, end_on_exit=False):  # the call carries this span's context to the TTS
            call = self._tts.SynthesizeStream(self._tts_requests(fragments))
        audio = asyncio.create_task(self._forward_audio(call, ServerStatus(call)))
        text = asyncio.create_task(self._forward_text(fragments))
        try:
            # Whichever fails first fails the turn at once: a dead TTS does not wait out the LLM's reply.
            done, _ = await asyncio.wait([text, audio], return_when=asyncio.FIRST_EXCEPTION)
            for task in (text, audio):
                if task in done:
                    task.result()
            await audio
            # The client plays up to the lead behind what was sent: until it has played it all, the
            # user can still barge in, and the turn must still be interruptible (and heard_text true).
            await asyncio.sleep(max(0.0, self._playback_end - time.perf_counter()))
        finally:
            text.cancel()
            audio.cancel()
            call.cancel()
            # Ends the request stream too: grpc's cancel() does nothing to a call that has already failed
            # (a TTS that died), and its task feeding the requests would wait on this queue for ever.
            fragments.put_nowait(None)
            tts_span.set_attributes({"tts_ttfa_ms": self.stage_ms()["tts_ttfa_ms"], "tts.chunks": self._sequence})
            tts_span.end()

    async def _forward_text(self, fragments: asyncio.Queue[str | None]) -> None:
        """The reply's words to the client as text, and to the TTS stream. A reply with nothing to say is
        never a silent success: it is asked for once more with the built-in persona, then a fallback is said."""
        await self._forward_reply(self._messages, fragments)
        if not speakable(self.spoken.text):
            self.empty_recovery = EmptyRecovery.RETRY
            self.spoken = SpokenReply(labels_in(DEFAULT_SYSTEM_PROMPT))
            self.reply = Reply()
            await self._forward_reply(_with_persona(self._messages, DEFAULT_SYSTEM_PROMPT), fragments)
        if not speakable(self.spoken.text):
            self.empty_recovery = EmptyRecovery.FALLBACK
            self._forward(self.spoken.say(FALLBACK_REPLY), fragments)
        if self.empty_recovery:
            log.warning("turn %d: the LLM gave nothing to say; recovered by %s", self.turn_id, self.empty_recovery)
        fragments.put_nowait(None)

    async def _forward_reply(self, messages: list[dict[str, str]], fragments: asyncio.Queue[str | None]) -> None:
        async for delta in self._llm.stream(messages, self.reply):
            self._forward(self.spoken.feed(delta), fragments)
            if self.spoken.ended:
                return  # another speaker's line follows: closing the stream stops the generation
        self._forward(self.spoken.finish(), fragments)

    def _forward(self, text: str, fragments: asyncio.Queue[str | None]) -> None:
        if not text:
            return
        self._emit(AgentText(self.turn_id, text))
        if self.timing.tts_first_text_at is None:
            self.timing.tts_first_text_at = time.perf_counter()
        fragments.put_nowait(text)

    def hold_audio(self) -> None:
        """Stops sending audio (the client plays what it has, up to the lead), cancelling nothing."""
        self._sending.clear()

    def resume_audio(self) -> None:
        """Sends again from where it stopped: nothing is lost, and no gap if the client's lead lasted."""
        self._sending.set()

    @property
    def holding(self) -> bool:
        return not self._sending.is_set()

    @property
    def playback_end(self) -> float:
        """When the audio sent so far ends playing at the client (perf_counter)."""
        return self._playback_end

    @property
    def text(self) -> str:
        """The reply as spoken: the LLM's, less labels, or the fallback."""
        return self.spoken.text

    @property
    def audio_sent_ms(self) -> float:
        return self._audio_ms

    def played_text(self, audio_end_ms: float) -> str:
        """The reply's text spoken by its first ``audio_end_ms`` of audio (the client's measure of what it
        played): whole phrases, and of the phrase it stopped in the share of its characters that share of
        its audio speaks, to the end of the word in progress (a word cut off was heard, in part)."""
        text, end = self.spoken.text, 0
        for phrase in self._phrases:
            if phrase.start_ms >= audio_end_ms:
                break
            if phrase.end_ms <= audio_end_ms:
                end = max(end, phrase.text_end)
                continue
            share = (audio_end_ms - phrase.start_ms) / max(phrase.end_ms - phrase.start_ms, 1e-9)
            cut = phrase.text_start + round(share * (phrase.text_end - phrase.text_start))
            while 0 < cut < phrase.text_end and not text[cut - 1 : cut].isspace() and not text[cut : cut + 1].isspace():
                cut += 1  # to the end of the word it stopped in
            end = max(end, cut)
        return text[:end].strip()

    def heard_text(self) -> str:
        """The reply up to the end of the last chunk that has started playing."""
        now = time.perf_counter()
        heard_end = max((end for start, end in self._played if start <= now), default=0)
        return self.spoken.text[:heard_end]

    def stage_ms(self) -> dict[str, float]:
        """The turn's timings under the names of docs/architecture.md, as the gateway measures them; 0 where unknown.

        ``e2e_ms`` here runs from the end of the user's speech in the audio the gateway
        received to the first agent audio it sent: the client's figure less the network."""
        t = self.timing
        stages = {
            "vad_wait_ms": t.vad_wait_ms,
            "asr_ms": _ms(t.end_decided_at, t.final_at),
            "llm_ttft_ms": self.reply.ttft_ms or 0.0,
            "tts_ttfa_ms": _ms(t.tts_first_text_at, t.tts_first_audio_at),
        }
        e2e_ms = _ms(t.speech_end_at, t.first_audio_sent_at)
        overhead_ms = e2e_ms - sum(stages.values()) if e2e_ms else 0.0
        return {**stages, "e2e_ms": e2e_ms, "overhead_ms": overhead_ms}

    def metrics(self, *, interrupted: bool) -> TurnMetrics:
        stages = self.stage_ms()
        return TurnMetrics(
            turn_id=self.turn_id,
            vad_wait_ms=stages["vad_wait_ms"],
            asr_ms=stages["asr_ms"],
            llm_ttft_ms=stages["llm_ttft_ms"],
            tts_ttfa_ms=stages["tts_ttfa_ms"],
            gateway_first_audio_ms=_ms(self.timing.final_at, self.timing.first_audio_sent_at),
            llm_tokens=self.reply.tokens,
            interrupted=interrupted,
            preemptive=self.preemptive,
        )

    def end(self, outcome: TurnOutcome, error: str | None = None) -> bool:
        """Records how the turn ended and closes its root span with its timings; False if it had ended."""
        if self.outcome is not None:
            return False
        self.outcome = outcome
        self.span.set_attributes(
            {**self.stage_ms(), "turn_id": self.turn_id, "turn.outcome": outcome.value, "llm.tokens": self.reply.tokens}
        )
        if error is not None:
            self.span.set_status(trace.Status(trace.StatusCode.ERROR, error))
        self.span.end()
        return True

    async def _tts_requests(
        self, fragments: asyncio.Queue[str | None]
    ) -> AsyncIterator[tts_pb2.SynthesizeStreamRequest]:
        yield tts_pb2.SynthesizeStreamRequest(config=self._tts_config)
        while (fragment := await fragments.get()) is not None:
            yield tts_pb2.SynthesizeStreamRequest(text=fragment)
        yield tts_pb2.SynthesizeStreamRequest(end=tts_pb2.SynthesizeStreamRequest.End())

    async def _forward_audio(self, call: grpc.aio.StreamStreamCall, status: ServerStatus) -> None:
        chunks = aiter(call)
        try:
            while True:
                # A deadline per chunk, not per stream: a stream lasts as long as its audio plays
                # (it is read at playback pace), but a TTS that hangs fails the turn.
                async with asyncio.timeout(self._tts_timeout_s):
                    response = await anext(chunks, None)
                if response is None:
                    return
                await self._send(response.audio)
        except TimeoutError as error:
            raise TtsFailure(grpc.StatusCode.DEADLINE_EXCEEDED, f"no audio for {self._tts_timeout_s:g} s") from error
        except grpc.aio.AioRpcError as raised:
            error = status.of(raised)  # the TTS's own status, even if it ended the stream mid-write
            raise TtsFailure(error.code(), error.details() or error.code().name) from raised

    async def _send(self, chunk: tts_pb2.TtsAudioChunk) -> None:
        if self.timing.tts_first_audio_at is None:
            self.timing.tts_first_audio_at = time.perf_counter()
        if self._hold is not None:
            await self._hold.wait()  # a preemptive turn's audio waits until the turn is kept
        now = time.perf_counter()
        # Keep at most the lead ahead of playback: wait, then send.
        if self._playback_end - now > self._lead_s:
            await asyncio.sleep(self._playback_end - now - self._lead_s)
            now = time.perf_counter()
        if not self._sending.is_set():
            await self._sending.wait()  # held while an interruption is decided
            now = time.perf_counter()
        play_start = max(now, self._playback_end)
        self._playback_end = play_start + len(chunk.audio) / 2 / chunk.sample_rate_hz
        self._played.append((play_start, chunk.text_end))
        self._place(chunk)
        if self.timing.first_audio_sent_at is None:
            self.timing.first_audio_sent_at = now
        audio = AgentAudio(
            turn_id=self.turn_id,
            sequence_number=self._sequence,
            audio=chunk.audio,
            sample_rate_hz=chunk.sample_rate_hz,
            text_start=chunk.text_start,
            text_end=chunk.text_end,
        )
        self._sequence += 1
        self._emit(audio)

    def _place(self, chunk: tts_pb2.TtsAudioChunk) -> None:
        duration_ms = len(chunk.audio) / 2 / chunk.sample_rate_hz * 1000
        last = self._phrases[-1] if self._phrases else None
        if last is not None and (last.text_start, last.text_end) == (chunk.text_start, chunk.text_end):
            last.end_ms += duration_ms
        else:
            end_ms = self._audio_ms + duration_ms
            self._phrases.append(_Phrase(chunk.text_start, chunk.text_end, self._audio_ms, end_ms))
        self._audio_ms += duration_ms


@dataclass
class _Phrase:
    """A span of the reply's text (its TTS chunks share it) and where its audio lies, in ms from the
    turn's first audio."""

    text_start: int
    text_end: int
    start_ms: float
    end_ms: float


def turn_failure(error: Exception, turn_id: int) -> tuple[str, str, str]:
    """What failed a turn, for the client: (backend, status code name, message)."""
    if isinstance(error, ServiceError):
        return "llm", error.code.name, str(error)
    if isinstance(error, TtsFailure):
        return "tts", error.code.name, f"speech synthesis failed: {error}"
    log.error("session: turn %d failed", turn_id, exc_info=error)  # a bug
    return "gateway", "INTERNAL", f"the turn failed: {type(error).__name__}"


def _with_persona(messages: list[dict[str, str]], persona: str) -> list[dict[str, str]]:
    """``messages`` with ``persona`` as the system prompt."""
    rest = messages[1:] if messages and messages[0]["role"] == "system" else messages
    return [{"role": "system", "content": persona}, *rest]


def _ms(start: float | None, end: float | None) -> float:
    return (end - start) * 1000 if start is not None and end is not None else 0.0
