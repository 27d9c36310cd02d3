"""One conversation: the user's turns in, the agent's turns out, barge-in, history and limits.

The core of the gateway, whatever the front: it takes typed inputs (gateway/events.py) and emits typed
events. The user's side (the ASR stream, the user's turn) is the Listener's; this reacts to what it
reports. A final transcript (or typed text) starts an agent turn; speech that starts while a turn is
thinking or speaking holds its audio while gateway/turn_taking decides whether it interrupts it (words
with intent) or not (a backchannel, noise, the agent's echo: the audio resumes where it stopped); with
that decision off, it interrupts at once. A backend that fails gives the client an error event and the
conversation goes on: the Listener reconnects to the ASR, and the next turn tries the LLM and TTS again.
"""

from __future__ import annotations

import asyncio
import logging
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
    InterruptionDecision,
    Respond,
    TextIn,
    Transcript,
)
from gateway.history import History
from gateway.limits import Limits
from gateway.listening import Listener, OverEcho
from gateway.observer import ConversationObserver
from gateway.preemption import Preemption, Preemptor
from gateway.session_settings import SessionSettings
from gateway.turn import AgentTurn, TtsFailure, TurnOutcome, TurnTiming
from gateway.turn_taking import OVER_ECHO_CHECK_MS, Decision, InterruptionDecider, Kind, is_echo
from voice_agent.errors import ServiceError
from voice_agent.telemetry import trace_headers

log = logging.getLogger(__name__)


class Conversation:
    def __init__(
        self,
        config: GatewayConfig,
        settings: SessionSettings,
        backends: Backends,
        emit: Emit,
        *,
        draining: asyncio.Event | None = None,
    ) -> None:
        self._config = config
        self._settings = settings
        self._emit = emit = self._watch_output(emit)
        self._limits = Limits(config.limits, config.backends.backend_timeout_s, draining or asyncio.Event())
        self._history = History(settings.system_prompt, config.limits.history_tokens)
        self._paths: Callable[[int, list[dict[str, str]]], TurnPaths] = (
            warm_paths(backends) if settings.plan.warm_paths else cold_paths(backends)
        )
        self._observer = ConversationObserver(settings.voice, backends.llm.settings.model)
        self._listener = Listener(
            backends.asr,
            settings.recognition,
            self,
            emit,
            max_chunk_ms=config.limits.max_chunk_ms,
            echo_cancellation=settings.turn_taking.echo_cancellation,
            speech_over_echo=self._deciding_enabled() and settings.turn_taking.echo_rejection,
        )
        self._preemptor = Preemptor(self._launch_preemptive, emit, self._observer.preemption)
        self._turn: AgentTurn | None = None
        self._turn_task: asyncio.Task[None] | None = None
        self._turn_ids = 0
        self._barge_in_timer: asyncio.Task[None] | None = None
        # Speech over the agent being decided: the decider, the turn whose audio it holds, its speech start.
        self._decider: InterruptionDecider | None = None
        self._held: AgentTurn | None = None
        self._decision_started_at = 0.0
        self._backchannels: list[str] = []  # said over the agent: join the history after its reply
        self._echo_checks: set[asyncio.Task[None]] = set()  # utterances taken for echo, heard again
        self._over_echo_check: asyncio.Task[None] | None = None  # the utterance in progress's
        self._over_echo_checked_ms = 0.0  # of its speech, when it was last heard again
        self._over_echo_words: str | None = None  # what the user said over the echo, when that interrupted
        self._last_turn: AgentTurn | None = None  # the latest turn, whose words an echo would repeat
        self._interrupted_by_speech = False  # the utterance in progress was decided an interruption

    def _watch_output(self, emit: Emit) -> Emit:
        """``emit``, telling the Listener what the client plays: the agent's audio (the echo canceller's
        reference), and when an interruption stops it."""

        def send(event: Event) -> None:
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
        listening = asyncio.create_task(self._listener.run())
        reader = asyncio.create_task(self._read(inputs))
        guard = asyncio.create_task(self._limits.guard(lambda: self._listener.user_active or self._agent_active()))
        try:
            await asyncio.wait([reader, guard], return_when=asyncio.FIRST_COMPLETED)
            if guard.done():
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

    def close(self) -> None:
        self._preemptor.discard()
        self._listener.close()
        for task in (self._turn_task, self._barge_in_timer, *self._echo_checks):
            if task is not None:
                task.cancel()

    async def _read(self, inputs: AsyncIterator[Input]) -> None:
        async for item in inputs:
            self._limits.activity()
            if isinstance(item, AudioIn):
                self._listener.audio(item.pcm)
            elif isinstance(item, TextIn):
                self._on_text(item.text, respond=item.respond)
            elif isinstance(item, Commit):
                self._listener.commit()
            elif isinstance(item, Respond):
                self._respond()
            elif isinstance(item, CancelReply):
                self._interrupt()
            elif isinstance(item, EndOfInput):
                return

    def _on_text(self, text: str, *, respond: bool) -> None:
        text = text.strip()
        if (problem := self._config.limits.typed_text_error(text)) is not None:
            # The conversation survives a bad message: the client hears why, and nothing else changes.
            self._emit(Error("INVALID_ARGUMENT", problem))
            return
        if text and not respond:
            self._history.add_user(text)
        elif text:
            now = time.perf_counter()
            self._start_turn(text, TurnTiming(final_at=now), self._observer.open_turn_span(now))

    def _respond(self) -> None:
        """A reply to the history as it is, when the client asks for one."""
        if self._agent_active():
            self._emit(Error("FAILED_PRECONDITION", "a reply is already in progress: cancel it first"))
            return
        now = time.perf_counter()
        self._start_turn(None, TurnTiming(final_at=now), self._observer.open_turn_span(now))

    # ---- what the Listener reports of the user's turn (UserTurnHooks)

    def on_speech_started(self, utterance_id: int, started_at: float) -> None:
        self._preemptor.discard()  # the user went on: a reply to the pause is out of date
        self._over_echo_words = None  # an utterance whose final never came (the ASR reconnected) left them
        span = self._observer.user_started(started_at)
        if span.is_recording():
            self._listener.join_trace(utterance_id, trace_headers(span))
        if self._deciding():
            self._begin_decision(started_at)
        else:
            self._maybe_barge_in()

    def on_interim(self, text: str) -> None:
        self._heard(text)

    def _heard(self, text: str) -> None:
        """An interim or pause transcript of speech over the agent."""
        if self._decider is not None and text:
            speech_ms = (time.perf_counter() - self._decision_started_at) * 1000
            decision = self._decider.heard(text, self._agent_words(), speech_ms)
            self._act(decision)
            if decision.kind is Kind.ECHO and not decision.final:
                self._check_over_echo(speech_ms)

    def is_echo(self, text: str) -> bool:
        if self._over_echo_words is not None:
            return True  # the echo's transcript, where the words over it were the user's: see on_turn_ended
        if not text or not self._settings.turn_taking.echo_rejection or self._interrupted_by_speech:
            return False
        if self._decider is not None:
            return self._decider.classify(text, self._agent_words()) is Kind.ECHO
        return self._echo_of_agent(text)

    def on_paused(self, text: str) -> None:
        self._heard(text)
        if self._settings.plan.preemptive_generation and text and not self._agent_active():  # off without auto replies
            self._preemptor.start(text)

    def on_resumed(self) -> None:
        self._preemptor.discard()  # the user went on: the reply to the pause is out of date

    def on_turn_ended(self, text: str, timing: TurnTiming) -> None:
        interrupted, self._interrupted_by_speech = self._interrupted_by_speech, False
        words_over_echo, self._over_echo_words = self._over_echo_words, None
        if words_over_echo is not None:  # the transcript was the echo's; the user's words are what it hid
            text = words_over_echo
            self._emit(Transcript(utterance_id=self._listener.utterance_id, text=text, final=True))
        if self._decider is not None:
            decision = self._decider.ended(text, self._agent_words())
            if decision.kind is Kind.ECHO:
                self._check_echo_after(decision)
            else:
                self._act(decision)
            if not decision.interrupts:
                self._observer.no_speech(self._observer.take_user_span(), decision.kind.value)  # type: ignore[union-attr]
                self._preemptor.discard()
                return
        elif text and not interrupted and self._echo_of_agent(text):
            self._observer.echo_rejected()
            self._observer.no_speech(self._observer.take_user_span(), "echo")
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

    # ---- turns and barge-in

    def _agent_active(self) -> bool:
        return self._turn_task is not None and not self._turn_task.done()

    # ---- deciding speech over the agent (gateway/turn_taking)

    def _deciding_enabled(self) -> bool:
        return self._settings.barge_in and self._settings.turn_taking.interruption_decision

    def _deciding(self) -> bool:
        return self._deciding_enabled() and self._agent_active()

    def _begin_decision(self, started_at: float) -> None:
        """Holds the agent's audio, cancelling nothing, until the speech's words decide."""
        if self._held is not None:
            self._held.resume_audio()  # an earlier utterance never got its final (the ASR reconnected)
        self._held = self._turn
        if self._held is not None:
            self._held.hold_audio()
        self._decider = InterruptionDecider(self._settings.turn_taking.techniques)
        self._decision_started_at = started_at
        self._over_echo_check, self._over_echo_checked_ms = None, 0.0

    def _act(self, decision: Decision) -> None:
        """What the decider said: interrupt now, let the audio go on (a provisional backchannel or echo:
        the words so far), or, once final, report it and record a backchannel."""
        if decision.pending:
            return
        held = self._held
        if not decision.final and held is not None:
            held.resume_audio()
            return
        self._decider, self._held = None, None
        self._conclude(decision, held, self._decision_started_at)

    # Speech over the agent that its transcript takes for the agent's echo is heard again with the echo removed
    # (the Listener's words_over_echo): an interruption said as the echo starts is often missing from the
    # transcript of the two together. While the utterance goes on, every OVER_ECHO_CHECK_MS of it; once more
    # when its final transcript reads as echo.

    def _check_over_echo(self, speech_ms: float) -> None:
        """During an utterance whose interims read as echo: the words over the echo, if any, interrupt."""
        running = self._over_echo_check is not None and not self._over_echo_check.done()
        if running or speech_ms < self._over_echo_checked_ms + OVER_ECHO_CHECK_MS:
            return
        self._over_echo_checked_ms = speech_ms
        decider, agent_words = self._decider, self._agent_words()

        async def check() -> None:
            words = await self._words_over_echo(agent_words)
            if words and self._decider is decider:  # still deciding this utterance
                self._over_echo_words = words
                self._act(Decision(Kind.INTERRUPTION, final=True, text=words))

        self._over_echo_check = self._spawn(check())

    def _check_echo_after(self, echo: Decision) -> None:
        """An utterance whose final transcript was the agent's echo: the agent's audio goes on while it is
        heard again; the words over the echo, if any, interrupt then and are the user's turn."""
        held, started_at = self._held, self._decision_started_at
        self._decider, self._held = None, None
        if held is not None:
            held.resume_audio()
        agent_words, utterance_id = self._agent_words(), self._listener.utterance_id

        async def check() -> None:
            words = await self._words_over_echo(agent_words)
            decision = Decision(Kind.INTERRUPTION, final=True, text=words) if words else echo
            self._conclude(decision, held, started_at, during_utterance=False)
            if words:
                self._user_turn_over_echo(words, utterance_id)

        self._spawn(check())

    async def _words_over_echo(self, agent_words: str) -> str:
        """The user's words over the echo in the last utterance, if they interrupt; else ""."""
        heard = await self._listener.words_over_echo(self._config.backends.backend_timeout_s)
        outcome, words = heard.outcome, heard.words
        if words:
            decision = InterruptionDecider(self._settings.turn_taking.techniques).ended(words, agent_words)
            outcome, words = (
                (OverEcho.INTERRUPTION, words) if decision.interrupts else (OverEcho.NOT_AN_INTERRUPTION, "")
            )
        self._observer.heard_over_echo(outcome)
        return words

    def _spawn(self, work: Awaitable[None]) -> asyncio.Task[None]:
        task = asyncio.ensure_future(work)
        self._echo_checks.add(task)
        task.add_done_callback(self._echo_checks.discard)
        return task

    def _user_turn_over_echo(self, text: str, utterance_id: int) -> None:
        """The words said over the echo are the user's turn, as a final transcript's would be."""
        now = time.perf_counter()
        self._emit(Transcript(utterance_id=utterance_id, text=text, final=True))
        if self._settings.respond_automatically:
            self._start_turn(text, TurnTiming(final_at=now), self._observer.open_turn_span(now))
        else:
            self._history.add_user(text)

    def _conclude(
        self, decision: Decision, held: AgentTurn | None, started_at: float, *, during_utterance: bool = True
    ) -> None:
        """A final decision on speech over the agent: report it; interrupt, or resume the held audio (and
        record a backchannel)."""
        assert decision.kind is not None
        decision_ms = (time.perf_counter() - started_at) * 1000
        turn_id = held.turn_id if held is not None else self._turn_ids
        self._emit(InterruptionDecision(turn_id, decision.kind.value, decision_ms, decision.text))
        if decision.kind is Kind.INTERRUPTION:
            self._interrupted_by_speech = during_utterance  # its final transcript is the user's turn
            self._observer.interruption_decided(decision.kind, decision_ms, resumed=False)
            self._interrupt()
            if held is not None:
                held.resume_audio()  # a cancelled turn sends nothing more
            return
        resumed = held is not None and self._turn is held and self._agent_active()
        self._observer.interruption_decided(decision.kind, decision_ms, resumed=resumed)
        if held is not None:
            held.resume_audio()
        if decision.kind is Kind.BACKCHANNEL:
            if self._agent_active():
                self._backchannels.append(decision.text)  # after the reply it was said over
            else:
                self._history.add_user(decision.text)

    def _listen_over_agent(self, agent_active: bool) -> None:
        """Frequent interims only while an agent turn runs: the words of speech over it decide, soon; the
        user's own turns keep the ASR's interval, and the CPU its shorter transcriptions would take."""
        if self._settings.barge_in and self._settings.turn_taking.interruption_decision:
            self._listener.interims_every(self._config.turn_taking.decision_interim_ms if agent_active else 0)

    def _agent_words(self) -> str:
        """What the agent said lately (its reply before this one, and this one so far): what an echo repeats."""
        turn = self._held or self._turn
        earlier = self._last_turn.text if self._last_turn is not None and self._last_turn is not turn else ""
        return f"{earlier} {turn.heard_text() if turn is not None else ''}"

    def _echo_of_agent(self, text: str) -> bool:
        """A final outside any decision (the agent had stopped, or barge-in is off) that repeats the agent's
        words while it speaks or within echo_window_ms after its audio ended."""
        if not self._settings.turn_taking.echo_rejection:
            return False
        turn = self._turn if self._agent_active() else self._last_turn
        if turn is None:
            return False
        ended_ms = (time.perf_counter() - turn.playback_end) * 1000
        if not self._agent_active() and ended_ms > self._config.turn_taking.echo_window_ms:
            return False
        return is_echo(text, turn.heard_text())

    def _add_agent(self, text: str) -> None:
        """The agent's words into the history, then the backchannels said over them."""
        self._history.add_agent(text)
        for said in self._backchannels:
            self._history.add_user(said)
        self._backchannels.clear()

    def _maybe_barge_in(self) -> None:
        if not (self._settings.barge_in and self._agent_active()):
            return
        wait_ms = self._config.turn_taking.barge_in_min_speech_ms
        if wait_ms == 0:
            self._interrupt()
        elif self._barge_in_timer is None or self._barge_in_timer.done():
            self._barge_in_timer = asyncio.create_task(self._interrupt_if_still_speaking(wait_ms / 1000))

    async def _interrupt_if_still_speaking(self, wait_s: float) -> None:
        await asyncio.sleep(wait_s)
        if self._listener.in_speech:
            self._interrupt()

    def _interrupt(self) -> None:
        turn, task = self._turn, self._turn_task
        if turn is None or task is None or task.done():
            return
        task.cancel()  # no audio of this turn is sent after this line
        heard = turn.heard_text()
        self._add_agent(heard)
        self._end_turn(turn, TurnOutcome.INTERRUPTED)
        self._emit(Interruption(turn.turn_id, heard))
        self._emit(turn.metrics(interrupted=True))

    def _start_turn(self, user_text: str | None, timing: TurnTiming, span: trace.Span) -> None:
        """An agent turn: to ``user_text``, or (None) to the history as it is."""
        self._preemptor.discard()  # typed text while the user paused: the pause's reply is moot
        self._interrupt()  # a new user turn replaces one still in flight
        if user_text is not None:
            self._history.add_user(user_text)
        self._turn_ids += 1
        span.set_attribute("turn_id", self._turn_ids)
        self._turn, close = self._new_turn(self._turn_ids, self._history.messages(), timing, span, self._emit)
        self._last_turn = self._turn
        self._turn_task = asyncio.create_task(self._run_turn(self._turn, close))
        self._listen_over_agent(True)

    def _launch_preemptive(self, text: str, emit: Emit, kept: asyncio.Event) -> tuple[AgentTurn, asyncio.Task[None]]:
        """A reply to a pause's transcript: its events held, its audio waiting for ``kept``."""
        messages = [*self._history.messages(), {"role": "user", "content": text}]
        timing = TurnTiming(final_at=time.perf_counter())  # until the final's timing replaces it
        span = self._observer.user_span(timing.final_at)
        turn, close = self._new_turn(self._turn_ids + 1, messages, timing, span, emit, kept)
        return turn, asyncio.create_task(self._run_turn(turn, close, kept))

    def _keep(self, preemption: Preemption, text: str, timing: TurnTiming) -> None:
        """The final transcript says what the pause's did: the reply under way is the turn."""
        self._interrupt()
        self._history.add_user(text)
        turn = preemption.turn
        self._turn_ids = turn.turn_id
        turn.preemptive = True
        turn.span.set_attribute("turn_id", turn.turn_id)
        turn.timing.final_at = timing.final_at
        turn.timing.end_decided_at = timing.end_decided_at
        turn.timing.speech_end_at = timing.speech_end_at
        turn.timing.vad_wait_ms = timing.vad_wait_ms
        self._turn, self._turn_task = turn, preemption.task
        self._last_turn = turn
        self._preemptor.keep(preemption)
        self._listen_over_agent(True)

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
        except ServiceError as error:
            failure = ("llm", error.code.name, str(error))
        except TtsFailure as error:
            failure = ("tts", error.code.name, f"speech synthesis failed: {error}")
        except Exception as error:  # a bug: this turn fails, the conversation goes on
            log.exception("session: turn %d failed", turn.turn_id)
            failure = ("gateway", "INTERNAL", f"the turn failed: {type(error).__name__}")
        finally:
            await asyncio.shield(close())
        if kept is not None:
            await kept.wait()
        if failure is not None:
            backend, code, message = failure
            self._report(backend, code, message, turn.turn_id)
            self._add_agent(turn.heard_text())
            self._end_turn(turn, TurnOutcome.FAILED, message)
            return
        self._add_agent(turn.text)
        self._end_turn(turn, TurnOutcome.COMPLETED)
        self._emit(turn.metrics(interrupted=False))

    def _end_turn(self, turn: AgentTurn, outcome: TurnOutcome, error: str | None = None) -> None:
        self._limits.activity()
        if turn is self._turn:
            self._listen_over_agent(False)
        if turn.end(outcome, error):
            self._observer.turn_ended(turn, outcome)

    def _report(self, backend: str, code: str, message: str, turn_id: int = 0) -> None:
        self._observer.backend_failed(backend, code, message)
        self._emit(Error(code, message, backend, turn_id))
