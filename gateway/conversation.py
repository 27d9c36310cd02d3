"""One conversation: the orchestrator of its turns, the user's and the agent's, with its history and limits.

The core of the gateway, whatever the front: it takes typed inputs (gateway/events.py) and emits typed
events. The user's side (the ASR stream, the user's turn) is the Listener's (gateway/listening.py), and
speech over the agent is SpeechOverAgent's (gateway/overlap.py): this reacts to what they report. A final
transcript (or typed text) starts an agent turn (gateway/turn.py), or keeps the one a pause's transcript
started (gateway/preemption.py). A backend that fails gives the client an error event and the
conversation goes on: the Listener reconnects to the ASR, and the next turn tries the LLM and TTS again.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator, Awaitable, Callable

from opentelemetry import trace

from gateway.backends import Backends, TurnPaths, cold_paths, warm_paths
from gateway.config import GatewayConfig
from gateway.events import (
    AgentAudio,
    AudioIn,
    CancelReply,
    Commit,
    Emit,
    EndOfInput,
    Error,
    Event,
    Input,
    Interruption,
    Respond,
    SessionStarted,
    TextIn,
    Truncate,
    Truncated,
)
from gateway.history import History
from gateway.limits import Limits
from gateway.listening import Listener
from gateway.observer import ConversationObserver
from gateway.overlap import SpeechOverAgent
from gateway.preemption import Preemption, Preemptor
from gateway.records.ids import new_conversation_id
from gateway.records.model import Status
from gateway.records.recorder import Recorder
from gateway.records.sessions import Resumption
from gateway.session_settings import SessionSettings
from gateway.turn import AgentTurn, TurnOutcome, TurnTiming, turn_failure
from voice_agent.errors import Draining
from voice_agent.telemetry import trace_headers

#: Turns a Truncate may still name; and how far past the audio sent a client's count may run (rounding).
RECENT_TURNS = 8
TRUNCATE_SLACK_MS = 20


class Conversation:
    def __init__(
        self,
        config: GatewayConfig,
        settings: SessionSettings,
        backends: Backends,
        emit: Emit,
        *,
        draining: asyncio.Event | None = None,
        limits: Limits | None = None,
        conversation_id: str | None = None,
        recorder: Recorder | None = None,
        resumption: Resumption | None = None,
    ) -> None:
        """``limits``: the front's, when it watched the session before the conversation began (its length
        and idleness count from then); else the conversation's own, watching ``draining``.
        ``conversation_id``: the front's, when it told its client before the conversation began; ``recorder``
        keeps its record (gateway/records/recorder.py); ``resumption``: the conversation resumed."""
        self.conversation_id = conversation_id or new_conversation_id()
        self._recorder = recorder
        self._resumption = resumption
        self._ended_by_client = False
        self._config = config
        self._settings = settings
        self._emit = emit = self._watch_output(emit)
        self._limits = limits or Limits(config.limits, config.backends.backend_timeout_s, draining or asyncio.Event())
        self._history = History(settings.system_prompt, config.limits.history_tokens)
        if resumption is not None:
            self._history.turns = list(resumption.history)
        self._paths: Callable[[int, list[dict[str, str]]], TurnPaths] = (
            warm_paths(backends) if settings.plan.warm_paths else cold_paths(backends)
        )
        self._llm = backends.llm
        self._warming: asyncio.Task[bool] | None = None
        self._observer = ConversationObserver(settings.voice, backends.llm.settings.model)
        self._listener = Listener(
            backends.asr,
            settings.recognition,
            self,
            emit,
            max_chunk_ms=config.limits.max_chunk_ms,
            echo_cancellation=settings.turn_taking.echo_cancellation,
            speech_over_echo=settings.decides_speech_over_agent and settings.turn_taking.echo_rejection,
        )
        self._overlap = SpeechOverAgent(config, settings, self._listener, self._observer, emit, self)
        self._preemptor = Preemptor(self._launch_preemptive, emit, self._observer.preemption)
        self._turn: AgentTurn | None = None
        self._turn_task: asyncio.Task[None] | None = None
        self._turn_ids = 0
        self._last_turn: AgentTurn | None = None  # the latest turn, whose words an echo would repeat
        self._turns: dict[int, AgentTurn] = {}  # the recent ones, by id, for Truncate
        if resumption is not None:
            self._turn_ids = resumption.last_turn_id  # the client knows the earlier ones: ids go on

    def _watch_output(self, emit: Emit) -> Emit:
        """``emit``, telling the Listener what the client plays: the agent's audio (the echo canceller's
        reference), and when an interruption stops it."""

        def send(event: Event) -> None:
            if self._recorder is not None:
                self._recorder.observe(event)
            if isinstance(event, AgentAudio):
                self._listener.played(event.audio, event.sample_rate_hz)
            elif isinstance(event, Interruption):
                self._listener.playback_stopped()
            emit(event)

        return send

    async def run(self, inputs: AsyncIterator[Input]) -> None:
        """Serves the conversation until the client ends it, then finishes the turn in flight;
        or until a limit or the gateway's drain ends it with the guard's error."""
        self._observer.opened()
        resumed = self._resumption is not None
        last_turn_id = self._resumption.last_turn_id if self._resumption is not None else 0
        window_s = self._config.records.resume_window_s
        self._emit(SessionStarted(self.conversation_id, resumed, window_s, last_turn_id))
        self._warm_prompt()
        listening = asyncio.create_task(self._listener.run())
        reader = asyncio.create_task(self._read(inputs))
        guard = asyncio.create_task(self._limits.guard(lambda: self._listener.user_active or self._agent_active()))
        try:
            await asyncio.wait([reader, guard], return_when=asyncio.FIRST_COMPLETED)
            if guard.done():
                self._ended_by_client = not isinstance(guard.exception(), Draining)  # a limit ends it for good
                guard.result()  # raises: the conversation ends with its status
            guard.cancel()
            reader.result()
            self._listener.end()  # the ASR flushes the utterance in progress
            await asyncio.wait([listening], timeout=self._config.backends.backend_timeout_s)
            if self._turn_task is not None:  # a final transcript may just have started one
                await asyncio.wait([self._turn_task], timeout=self._config.backends.backend_timeout_s)
        finally:
            for task in (reader, guard, listening):
                task.cancel()
            self.close()
            self._observer.closed()
            if self._recorder is not None:
                status = Status.ENDED if self._ended_by_client else Status.DETACHED
                await asyncio.shield(self._recorder.close(status, self._history.turns))

    def _warm_prompt(self) -> None:
        """A prompt the LLM has not seen (a persona of the session's own, the caller's memory, a resumed
        history) is prefilled now, while the user speaks, not in the first turn's time to first token. The
        built-in persona was warmed once, when the gateway started (GatewayApp.load)."""
        new_prefix = self._resumption is not None or self._settings.system_prompt != self._config.persona.system_prompt
        if new_prefix:
            self._warm_history()

    def _warm_history(self) -> None:
        if self._settings.plan.warm_paths:
            if self._warming is not None:
                self._warming.cancel()
            self._warming = asyncio.create_task(self._llm.warm(self._history.messages()))

    def end_by_client(self) -> None:
        """The client ended the conversation (a front that sees the end other than as EndOfInput): it is not
        resumable."""
        self._ended_by_client = True

    def close(self) -> None:
        if self._warming is not None:
            self._warming.cancel()
        self._preemptor.discard()
        self._listener.close()
        self._overlap.close()
        if self._turn_task is not None:
            self._turn_task.cancel()

    async def _read(self, inputs: AsyncIterator[Input]) -> None:
        async for item in inputs:
            self._limits.activity()
            if isinstance(item, AudioIn):
                self._listener.audio(item.pcm)
                if self._recorder is not None:
                    self._recorder.user_audio(item.pcm)
            elif isinstance(item, TextIn):
                self._on_text(item.text, respond=item.respond)
            elif isinstance(item, Commit):
                self._listener.commit()
            elif isinstance(item, Respond):
                self._respond()
            elif isinstance(item, CancelReply):
                self.interrupt()
            elif isinstance(item, Truncate):
                self._truncate(item.turn_id, item.audio_end_ms)
            elif isinstance(item, EndOfInput):
                self._ended_by_client = True  # not resumable: inputs that just stop (a drop) leave it so
                return

    def _on_text(self, text: str, *, respond: bool) -> None:
        text = text.strip()
        if (problem := self._config.limits.typed_text_error(text)) is not None:
            # The conversation survives a bad message: the client hears why, and nothing else changes.
            self._emit(Error("INVALID_ARGUMENT", problem))
            return
        if text and self._recorder is not None:
            self._recorder.user_text(text)
        if text and not respond:
            self._history.add_user(text)
        elif text:
            self._start_turn_now(text)

    def _respond(self) -> None:
        """A reply to the history as it is, when the client asks for one."""
        if self._agent_active():
            self._emit(Error("FAILED_PRECONDITION", "a reply is already in progress: cancel it first"))
            return
        self._start_turn_now(None)

    # ---- what the Listener reports of the user's turn (UserTurnHooks)

    def on_speech_started(self, utterance_id: int, started_at: float) -> None:
        self._preemptor.discard()  # the user went on: a reply to the pause is out of date
        if self._recorder is not None:
            self._recorder.speech_started(utterance_id, started_at)
        span = self._observer.user_started(started_at)
        if span.is_recording():
            self._listener.join_trace(utterance_id, trace_headers(span))
        self._overlap.speech_started(started_at)

    def on_interim(self, text: str) -> None:
        self._overlap.heard(text)

    def is_echo(self, text: str) -> bool:
        return self._overlap.is_echo(text)

    def holds_final(self, text: str) -> bool:
        return self._overlap.remakes_final(text)

    def on_paused(self, text: str) -> None:
        self._overlap.heard(text)
        if self._settings.plan.preemptive_generation and text and not self._agent_active():  # off without auto replies
            self._preemptor.start(text)

    def on_resumed(self) -> None:
        self._preemptor.discard()  # the user went on: the reply to the pause is out of date

    def on_turn_ended(self, text: str, timing: TurnTiming) -> None:
        text, not_a_turn = self._overlap.final(text)
        if not_a_turn is not None:  # a backchannel, noise or the agent's echo
            self._observer.no_speech(self._observer.take_user_span(), not_a_turn)
            self._preemptor.discard()
            return
        span = self._observer.take_user_span()
        preemption = self._preemptor.take(text)
        if not text:
            self._observer.no_speech(span, "no_speech")
        elif not self._settings.respond_automatically:
            self._history.add_user(text)  # the client asks for the reply (Respond)
            self._observer.no_speech(span, "no_reply")
        elif preemption is not None:
            self._keep(preemption, text, timing)
        else:
            self._start_turn(text, timing, span or self._observer.open_turn_span(timing.final_at))

    def on_asr_error(self, code: str, message: str) -> None:
        self._report("asr", code, message)

    # ---- what speech over the agent needs of the conversation (OverlapHooks)

    def agent_turn(self) -> AgentTurn | None:
        return self._turn if self._agent_active() else None

    def last_turn(self) -> AgentTurn | None:
        return self._last_turn

    def user_turn(self, text: str) -> None:
        if self._settings.respond_automatically:
            self._start_turn_now(text)
        else:
            self._history.add_user(text)

    def add_user(self, text: str) -> None:
        self._history.add_user(text)

    # ---- agent turns

    def _agent_active(self) -> bool:
        return self._turn_task is not None and not self._turn_task.done()

    def _add_agent(self, turn: AgentTurn, text: str) -> None:
        """The agent's words into the history, then the backchannels said over them."""
        self._history.add_agent(text, turn.turn_id)
        for said in self._overlap.take_backchannels():
            self._history.add_user(said)
        if self._history.trim(room_for_next=True):  # now, not in the next turn: prefilled while the user speaks
            self._warm_history()

    def interrupt(self) -> None:
        """Cancels the turn in flight; the history keeps what of it was heard."""
        turn, task = self._turn, self._turn_task
        if turn is None or task is None or task.done():
            return
        task.cancel()  # no audio of this turn is sent after this line
        heard = turn.heard_text()
        self._add_agent(turn, heard)
        self._end_turn(turn, TurnOutcome.INTERRUPTED)
        self._emit(Interruption(turn.turn_id, heard))
        self._emit(turn.metrics(interrupted=True))

    def _truncate(self, turn_id: int, audio_end_ms: int) -> None:
        """The client played ``audio_end_ms`` of turn ``turn_id``'s reply: the history keeps the text of that
        much. A turn still in flight is interrupted first: audio the client no longer plays is never heard."""
        turn = self._turns.get(turn_id)
        if turn is None:
            known = f"turns {min(self._turns)}..{max(self._turns)}" if self._turns else "none yet"
            self._emit(Error("INVALID_ARGUMENT", f"no agent turn {turn_id} to truncate (recent: {known})"))
            return
        if audio_end_ms > turn.audio_sent_ms + TRUNCATE_SLACK_MS:
            self._emit(
                Error(
                    "INVALID_ARGUMENT",
                    f"audio_end_ms {audio_end_ms} is past the {turn.audio_sent_ms:.0f} ms of audio turn {turn_id} sent",
                )
            )
            return
        if turn is self._turn and self._agent_active():
            self.interrupt()
        heard = turn.played_text(audio_end_ms)
        self._history.replace_agent(turn_id, heard)
        self._emit(Truncated(turn_id, audio_end_ms, heard))

    def _start_turn_now(self, user_text: str | None) -> None:
        """A turn timed from now: to typed text, the client's Respond, or words said over the echo."""
        now = time.perf_counter()
        self._start_turn(user_text, TurnTiming(final_at=now), self._observer.open_turn_span(now))

    def _start_turn(self, user_text: str | None, timing: TurnTiming, span: trace.Span) -> None:
        """An agent turn: to ``user_text``, or (None) to the history as it is."""
        self._preemptor.discard()  # typed text while the user paused: the pause's reply is moot
        self.interrupt()  # a new user turn replaces one still in flight
        if user_text is not None:
            self._history.add_user(user_text)
        self._turn_ids += 1
        span.set_attribute("turn_id", self._turn_ids)
        self._turn, close = self._new_turn(self._turn_ids, self._history.messages(), timing, span, self._emit)
        self._last_turn = self._turn
        self._remember(self._turn)
        self._turn_task = asyncio.create_task(self._run_turn(self._turn, close))
        self._overlap.turn_active(True)

    def _launch_preemptive(self, text: str, emit: Emit, kept: asyncio.Event) -> tuple[AgentTurn, asyncio.Task[None]]:
        """A reply to a pause's transcript: its events held, its audio waiting for ``kept``."""
        messages = [*self._history.messages(), {"role": "user", "content": text}]
        timing = TurnTiming(final_at=time.perf_counter())  # until the final's timing replaces it
        span = self._observer.user_span(timing.final_at)
        turn, close = self._new_turn(self._turn_ids + 1, messages, timing, span, emit, kept)
        return turn, asyncio.create_task(self._run_turn(turn, close, kept))

    def _keep(self, preemption: Preemption, text: str, timing: TurnTiming) -> None:
        """The final transcript says what the pause's did: the reply under way is the turn."""
        self.interrupt()
        self._history.add_user(text)
        turn = preemption.turn
        self._turn_ids = turn.turn_id
        turn.preemptive = True
        turn.span.set_attribute("turn_id", turn.turn_id)
        turn.timing.user_side_from(timing)
        self._turn, self._turn_task = turn, preemption.task
        self._last_turn = turn
        self._remember(turn)
        self._preemptor.keep(preemption)
        self._overlap.turn_active(True)

    def _remember(self, turn: AgentTurn) -> None:
        """The recent turns a client may still truncate (a truncation comes just after an interruption)."""
        self._turns[turn.turn_id] = turn
        while len(self._turns) > RECENT_TURNS:
            del self._turns[min(self._turns)]

    def _new_turn(
        self,
        turn_id: int,
        messages: list[dict[str, str]],
        timing: TurnTiming,
        span: trace.Span,
        emit: Emit,
        hold: asyncio.Event | None = None,
    ) -> tuple[AgentTurn, Callable[[], Awaitable[None]]]:
        """An agent turn on the conversation's paths to the backends, and what closes them after it."""
        paths = self._paths(turn_id, messages)
        turn = AgentTurn(
            turn_id,
            paths.messages,
            paths.llm,
            paths.tts,
            self._settings.synthesis,
            timing,
            emit,
            lead_ms=self._config.turn_taking.audio_lead_ms,
            tts_timeout_s=self._config.backends.backend_timeout_s,
            span=span,
            hold=hold,
        )
        return turn, paths.close

    async def _run_turn(
        self, turn: AgentTurn, close: Callable[[], Awaitable[None]], kept: asyncio.Event | None = None
    ) -> None:
        """Runs a turn and records how it ended. A preemptive turn (``kept`` given) counts only once
        it is kept: cancelled before that, it leaves no trace in the conversation."""
        failure: tuple[str, str, str] | None = None  # backend, status code, message
        try:
            await turn.run()
        except asyncio.CancelledError:
            if kept is None or kept.is_set():
                self._end_turn(
                    turn, TurnOutcome.CANCELLED
                )  # the session closed mid-turn; an interruption ended it already
            raise
        except Exception as error:  # the turn fails, the conversation goes on
            failure = turn_failure(error, turn.turn_id)
        finally:
            await asyncio.shield(close())
        if kept is not None:
            await kept.wait()
        if failure is not None:
            backend, code, message = failure
            self._report(backend, code, message, turn.turn_id)
            self._add_agent(turn, turn.heard_text())
            self._end_turn(turn, TurnOutcome.FAILED, message)
            return
        self._add_agent(turn, turn.text)
        self._end_turn(turn, TurnOutcome.COMPLETED)
        self._emit(turn.metrics(interrupted=False))

    def _end_turn(self, turn: AgentTurn, outcome: TurnOutcome, error: str | None = None) -> None:
        self._limits.activity()
        if turn is self._turn:
            self._overlap.turn_active(False)
        if turn.end(outcome, error):
            self._observer.turn_ended(turn, outcome)

    def _report(self, backend: str, code: str, message: str, turn_id: int = 0) -> None:
        self._observer.backend_failed(backend, code, message)
        self._emit(Error(code, message, backend, turn_id))
