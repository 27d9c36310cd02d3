"""Speech over the agent: what the user says while an agent turn thinks or speaks, and what it means.

One object per conversation (``SpeechOverAgent``) owns it all: it holds the agent's audio at the speech's
start (cancelling nothing), feeds the transcripts to gateway/turn_taking's decider, and acts on the
decision: an interruption cancels the turn (through the conversation's hooks), a backchannel, noise or
the agent's echo lets the held audio go on where it stopped. With the decision off (barge-in only), speech
over the agent interrupts at once, or after ``barge_in_min_speech_ms`` of it.

Before the final, the held audio goes on only when that is sure (issue 24: a sentence said over the echo
played on, and was decided after the reply had ended): the words so far are acknowledgements alone ("yeah",
"right, right"; two other words may be a sentence's start, "I think"), or the signal shows the agent's echo
and nothing more (``OverEcho.ECHO_ONLY``).

The signal: an utterance over the agent not yet decided is heard again with the echo removed (the Listener's
``words_over_echo``: the echo path fitted on it), at its first interim, every OVER_ECHO_CHECK_MS while it goes
on (at each interim while it showed the echo alone), and at a final that reads as echo:

- words said over the echo interrupt, and are the user's turn;
- the echo and nothing more: the utterance is the echo whatever its transcript says (through a phone's
  loudspeaker and a room, Whisper writes the echo as words the agent never said);
- no echo of the agent at all: words that interrupt do so at once, without the WORDS_MIN_MS wait that guards
  against Whisper's first guesses at the echo.

Until a check has shown no echo, words that would interrupt without a leading intent wait for a check to confirm
them (started at once): over the echo an interim holds the echo's words, alone or mixed with the user's. The audio
is held meanwhile. A leading intent ("Wait, stop.") interrupts at once: the wait played a headset user the lead.

The echo never becomes the user's words: the final of an utterance that interrupted the agent with its echo
in the microphone is remade from the echo-removed audio before it is the user's turn (the ASR's transcript of
the two together goes to no one; nor do the words of the check that interrupted, which heard only the start).

It knows the agent's turns only as the conversation reports them (``OverlapHooks``), and changes the
conversation only through those hooks: interrupting the turn in flight, starting a user turn, adding a
backchannel to the history.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Awaitable
from dataclasses import replace
from typing import Protocol

from gateway.config import GatewayConfig
from gateway.echo.heard import HeardOverEcho, OverEcho
from gateway.events import Emit, InterruptionDecision, Transcript
from gateway.listening import Listener
from gateway.observer import ConversationObserver
from gateway.session_settings import SessionSettings
from gateway.turn import AgentTurn
from gateway.turn_taking import (
    ACKNOWLEDGED_CHECK_MS,
    OVER_ECHO_CHECK_MS,
    PREFACE_GRACE_MS,
    Decision,
    InterruptionDecider,
    Kind,
    decide_over_echo,
    is_echo,
    only_acknowledgements,
    only_prefaces,
    without_echo_phrases,
)

log = logging.getLogger(__name__)


class OverlapHooks(Protocol):
    """What speech over the agent needs of the conversation."""

    def agent_turn(self) -> AgentTurn | None:
        """The agent turn in flight (thinking or speaking); None when the agent is silent."""
        ...

    def last_turn(self) -> AgentTurn | None:
        """The latest agent turn, in flight or ended: the words an echo repeats."""
        ...

    def interrupt(self) -> None:
        """Cancels the turn in flight: its heard part goes to the history."""
        ...

    def user_turn(self, text: str) -> None:
        """``text`` is the user's turn (words said over the echo), as a final transcript's would be."""
        ...

    def add_user(self, text: str) -> None:
        """``text`` joins the history as the user's, starting no turn (a backchannel)."""
        ...


class SpeechOverAgent:
    def __init__(
        self,
        config: GatewayConfig,
        settings: SessionSettings,
        listener: Listener,
        observer: ConversationObserver,
        emit: Emit,
        hooks: OverlapHooks,
    ) -> None:
        self._config = config
        self._settings = settings
        self._listener = listener
        self._observer = observer
        self._emit = emit
        self._hooks = hooks
        # The utterance being decided: its decider, the turn whose audio it holds, when its speech started.
        self._decider: InterruptionDecider | None = None
        self._held: AgentTurn | None = None
        self._started_at = 0.0
        self._interrupted = False  # the utterance in progress was decided an interruption
        self._backchannels: list[str] = []  # said over the agent: join the history after its reply
        self._tasks: set[asyncio.Task[None]] = set()  # the echo checks and the barge-in timer
        self._over_echo_check: asyncio.Task[None] | None = None  # the utterance in progress's
        self._over_echo_checked_ms = 0.0  # of its speech, when it was last heard again
        self._over_echo_words: str | None = None  # what the user said over the echo, when that interrupted
        self._echo_alone = False  # the utterance in progress's last check found the agent's echo and nothing more
        self._no_echo = False  # ... or found no echo of the agent at all
        self._echo_found = False  # the agent's echo was found in the utterance in progress
        self._signal_failed = False  # ... or a check of it failed: its words decide alone
        # An acknowledgement that a check heard over the echo ("Okay, sure."): the utterance is that backchannel,
        # whatever its transcript says, unless a later check hears more after it. Later checks hear only the
        # audio after ``_heard_until`` (a mic sample): the VAD hears the loud echo after a backchannel as more of
        # the utterance, and the residual of all of it, the echo's leftovers with it, grows into words.
        self._acknowledged: str | None = None
        self._heard_until: int | None = None
        self._last_words = ""  # its latest interim

    def close(self) -> None:
        for task in self._tasks:
            task.cancel()

    # ---- what the Listener heard, passed on by the conversation

    def speech_started(self, started_at: float) -> None:
        self._over_echo_words = None  # an utterance whose final never came (the ASR reconnected) left them
        if self._settings.decides_speech_over_agent and self._hooks.agent_turn() is not None:
            self._begin(started_at)
        else:
            self._maybe_barge_in()

    def heard(self, text: str) -> None:
        """An interim or pause transcript of speech over the agent."""
        if self._decider is not None and text:
            speech_ms = self._speech_ms()
            self._last_words = text
            if self._acknowledged is not None:  # the signal heard an acknowledgement: the words decide nothing
                due = speech_ms >= self._over_echo_checked_ms + ACKNOWLEDGED_CHECK_MS
                self._check_over_echo(speech_ms, at_once=due)
                return
            if self._echo_alone:  # the signal showed the echo alone: its words, however misheard, decide nothing
                self._check_over_echo(speech_ms, at_once=True)  # until the next check, at once: the user may go on
                return
            checking = self._over_echo_check is not None and not self._over_echo_check.done()
            decision = self._decider.heard(
                text, self.agent_words(), speech_ms, settle=not checking, signal_decides=self._signal_decides()
            )
            if not decision.final and self._no_echo:
                decision = self._without_echo(text) or decision
            self._act(decision)
            if not decision.final:
                self._check_over_echo(speech_ms, at_once=decision.interrupts)  # the signal is to confirm it

    def _speech_ms(self) -> float:
        """How long the utterance being decided has lasted."""
        return (time.perf_counter() - self._started_at) * 1000

    def _signal_decides(self) -> bool:
        """Whether words that would interrupt wait for the signal's check to confirm them: unless a check showed
        no echo of the agent in the microphone, or could not tell. Over the echo, an interim holds the echo's
        words, or the user's mixed with them ("That is a phone." for "yeah" over "That is normal."); the audio
        is held meanwhile, so the user hears no more of the agent for the wait (a leading intent does not wait:
        InterruptionDecider.heard)."""
        return self._settings.turn_taking.echo_rejection and not (self._no_echo or self._signal_failed)

    def is_echo(self, text: str) -> bool:
        """Whether a transcript is the agent's own voice (the client gets no transcript of it)."""
        if self._over_echo_words is not None or self._echo_alone or self._acknowledged is not None:
            return True  # the echo's transcript (the words over it, if any, were the user's: see final())
        if not text or not self._settings.turn_taking.echo_rejection or self._interrupted:
            return False
        if self._decider is not None:
            return self._decider.classify(text, self.agent_words()) is Kind.ECHO
        return self._echo_of_agent(text)

    def remakes_final(self, text: str) -> bool:
        """Whether this final transcript is heard again with the agent's echo removed before it is anyone's
        words (``final``): an utterance that interrupted the agent with its echo in the microphone (its final
        is remade), or one still undecided that may hold the echo (it is decided on what is left)."""
        return self._remakes_interruption(text) or self._decides_without_echo(text)

    def _remakes_interruption(self, text: str) -> bool:
        return bool(text) and self._interrupted and self._echo_found

    def _decides_without_echo(self, text: str) -> bool:
        """An undecided utterance over the agent whose words alone would be the user's (an interruption or a
        backchannel) while no check has shown the microphone free of the agent's echo: through a phone's
        loudspeaker Whisper writes a fragment of the echo as words the agent never said ("I'll curse you.",
        a user turn), or mixes them into a backchannel ("Ask the vet." for "yeah")."""
        if self._decider is None or self._echo_alone or self._no_echo or self._over_echo_words is not None:
            return False
        if self._acknowledged is not None:
            return False  # decided by the signal: see final()
        if not (text and self._settings.turn_taking.echo_rejection):
            return False
        return self._decider.classify(text, self.agent_words()) in (Kind.INTERRUPTION, Kind.BACKCHANNEL)

    def final(self, text: str) -> tuple[str, str | None]:
        """The utterance's final transcript: the user's words (those over the echo, where the transcript was
        the echo's), and why it is no user turn (backchannel, noise, echo, or heard again: decided later),
        or None when it is one."""
        remake, decide_later = self._remakes_interruption(text), self._decides_without_echo(text)
        interrupted, self._interrupted = self._interrupted, False
        words_over_echo, self._over_echo_words = self._over_echo_words, None
        echo_alone, self._echo_alone = self._echo_alone, False
        acknowledged, self._acknowledged, self._heard_until = self._acknowledged, None, None
        self._echo_found = False
        if remake:  # the whole utterance: a check that interrupted heard only its start ("But I think my")
            said_so_far = words_over_echo if words_over_echo is not None else text
            self._spawn(self._heard_again(said_so_far, self._listener.utterance_id), "heard-again")
            return text, "heard_again"
        if decide_later:
            self._decide_without_echo(text)
            return text, "heard_again"
        if words_over_echo is not None:  # the transcript was the echo's; the user's words are what it hid
            text = words_over_echo
            self._emit(Transcript(utterance_id=self._listener.utterance_id, text=text, final=True))
        if self._decider is not None:
            if acknowledged is not None:  # by the signal: the user's acknowledgement, the rest the echo's
                text = acknowledged
                self._emit(Transcript(utterance_id=self._listener.utterance_id, text=text, final=True))
                decision = Decision(Kind.BACKCHANNEL, final=True, text=text)
            elif echo_alone:  # by the signal, whatever the words: heard again in full before it is decided
                decision = Decision(Kind.ECHO, final=True, text=text)
            else:
                decision = self._decider.ended(text, self.agent_words())
            if decision.kind is Kind.ECHO:
                self._check_echo_after(decision)
            else:
                self._act(decision)
            return text, None if decision.interrupts else decision.kind.value  # type: ignore[union-attr]
        if text and not interrupted and self._echo_of_agent(text):
            self._observer.echo_rejected()
            return text, "echo"
        return text, None

    # ---- what the conversation tells of its turns

    def turn_active(self, active: bool) -> None:
        """An agent turn started or ended: frequent interims only while one runs (the words of speech over
        it decide, soon); the user's own turns keep the ASR's interval, and the CPU its shorter
        transcriptions would take."""
        if self._settings.decides_speech_over_agent:
            self._listener.interims_every(self._config.turn_taking.decision_interim_ms if active else 0)

    def take_backchannels(self) -> list[str]:
        """What the user said over the reply that just ended, for the history after it."""
        said, self._backchannels = self._backchannels, []
        return said

    def agent_words(self) -> str:
        """What the agent said lately (its reply before this one, and this one as far as it was sent to be
        spoken): what an echo repeats. Not only what the client has played of it: Whisper guesses at a word of
        the echo from the words around it ("Open with the sh-" for the echo of "Open with a short"), and the
        words about to be played make those guesses the agent's."""
        last = self._hooks.last_turn()
        turn = self._held or self._hooks.agent_turn() or last
        earlier = last.text if last is not None and last is not turn else ""
        return f"{earlier} {turn.text if turn is not None else ''}"

    # ---- barge-in, undecided

    def _maybe_barge_in(self) -> None:
        if not (self._settings.barge_in and self._hooks.agent_turn() is not None):
            return
        wait_ms = self._config.turn_taking.barge_in_min_speech_ms
        if wait_ms == 0:
            self._hooks.interrupt()
        elif not any(task.get_name() == "barge-in" for task in self._tasks):
            self._spawn(self._interrupt_if_still_speaking(wait_ms / 1000), "barge-in")

    async def _interrupt_if_still_speaking(self, wait_s: float) -> None:
        await asyncio.sleep(wait_s)
        if self._listener.in_speech:
            self._hooks.interrupt()

    # ---- deciding

    def _begin(self, started_at: float) -> None:
        """Holds the agent's audio, cancelling nothing, until the speech's words decide."""
        if self._held is not None:
            self._held.resume_audio()  # an earlier utterance never got its final (the ASR reconnected)
        self._held = self._hooks.agent_turn()
        if self._held is not None:
            self._held.hold_audio()
        self._decider = InterruptionDecider(self._settings.turn_taking.techniques)
        self._started_at = started_at
        self._over_echo_check, self._over_echo_checked_ms = None, -OVER_ECHO_CHECK_MS  # the first check: at once
        self._echo_alone = self._no_echo = self._echo_found = self._signal_failed = False
        self._acknowledged = self._heard_until = None

    def _act(self, decision: Decision) -> None:
        """What the decider said: interrupt now; let the audio go on on a provisional decision that is sure
        (acknowledgements alone; the echo only once the signal shows it: ``_check_over_echo``); or, once
        final, report it and record a backchannel."""
        if decision.pending:
            return
        held = self._held
        if not decision.final:
            if _acknowledges(decision):
                self._resume_held(f"{decision.text!r} is an acknowledgement")
            return
        self._decider, self._held = None, None
        self._conclude(decision, held, self._started_at)

    def _conclude(
        self, decision: Decision, held: AgentTurn | None, started_at: float, *, during_utterance: bool = True
    ) -> None:
        """A final decision on speech over the agent: report it; interrupt, or resume the held audio (and
        record a backchannel)."""
        assert decision.kind is not None
        decision_ms = (time.perf_counter() - started_at) * 1000
        last = self._hooks.last_turn()
        turn_id = held.turn_id if held is not None else last.turn_id if last is not None else 0
        self._emit(InterruptionDecision(turn_id, decision.kind.value, decision_ms, decision.text))
        in_flight = self._hooks.agent_turn()
        if decision.kind is Kind.INTERRUPTION:
            self._interrupted = during_utterance  # its final transcript is the user's turn
            unknown = not (self._echo_found or self._no_echo)  # no check has heard the echo, or its absence
            if during_utterance and unknown and self._settings.turn_taking.echo_rejection:
                self._probe_echo()
            self._observer.interruption_decided(decision.kind, decision_ms, resumed=False)
            self._hooks.interrupt()
            if held is not None:
                held.resume_audio()  # a cancelled turn sends nothing more
            return
        resumed = held is not None and in_flight is held
        self._observer.interruption_decided(decision.kind, decision_ms, resumed=resumed)
        if held is not None and held is not self._held:  # (a later utterance holds it now: it stays held)
            if decision.kind is Kind.BACKCHANNEL and only_prefaces(decision.text):
                self._spawn(self._resume_unless_held_again(held), "preface-grace")
            else:
                held.resume_audio()
        if decision.kind is Kind.BACKCHANNEL:
            if in_flight is not None:
                self._backchannels.append(decision.text)  # after the reply it was said over
            else:
                self._hooks.add_user(decision.text)

    async def _resume_unless_held_again(self, held: AgentTurn) -> None:
        """After a backchannel of prefaces alone ("Oh."): the held audio goes on after PREFACE_GRACE_MS,
        unless more speech has begun over it by then (the sentence the preface opened), which holds it on."""
        await asyncio.sleep(PREFACE_GRACE_MS / 1000)
        if held is not self._held:
            held.resume_audio()

    def _echo_of_agent(self, text: str) -> bool:
        """A final outside any decision (the agent had stopped, or barge-in is off) that repeats the agent's
        words while it speaks or within echo_window_ms after its audio ended."""
        if not self._settings.turn_taking.echo_rejection:
            return False
        speaking = self._hooks.agent_turn()
        turn = speaking or self._hooks.last_turn()
        if turn is None:
            return False
        ended_ms = (time.perf_counter() - turn.playback_end) * 1000
        if speaking is None and ended_ms > self._config.turn_taking.echo_window_ms:
            return False
        return is_echo(text, turn.heard_text())

    # ---- speech over the echo
    # Speech over the agent that its transcript takes for the agent's echo is heard again with the echo removed
    # (the Listener's words_over_echo): an interruption said as the echo starts is often missing from the
    # transcript of the two together. While the utterance goes on, every OVER_ECHO_CHECK_MS of it; once more
    # when its final transcript reads as echo.

    def _check_over_echo(self, speech_ms: float, *, at_once: bool = False) -> None:
        """During an utterance over the agent not yet decided (its words read as echo, or as anything: through
        a phone's loudspeaker Whisper writes the echo as words the agent never said): the words over the echo,
        if any, interrupt; the agent's echo with nothing more lets the held audio go on, and makes the
        utterance the echo whatever its transcript says (``_echo_alone``), until a later check finds more."""
        running = self._over_echo_check is not None and not self._over_echo_check.done()
        if running or (speech_ms < self._over_echo_checked_ms + OVER_ECHO_CHECK_MS and not at_once):
            return
        self._over_echo_checked_ms = speech_ms
        decider, agent_words, since = self._decider, self.agent_words(), self._heard_until
        if (self._echo_alone or self._acknowledged is not None) and self._held is not None:
            # The audio went on; the user may have begun (again) over it since (the same utterance to the VAD):
            # held while this check decides, within the client's lead, so that no gap is heard.
            self._held.hold_audio()

        async def check() -> None:
            heard, said = await self._heard_over_echo(agent_words, since, interim=True)
            if self._decider is not decider:
                return  # that utterance is decided
            if self._acknowledged is not None and heard.outcome is not OverEcho.NO_ECHO:
                self._after_acknowledgement(heard, said)
                return
            self._acknowledged = self._heard_until = None  # no echo after it: the words decide from here on
            outcome = heard.outcome
            self._echo_alone = outcome is OverEcho.ECHO_ONLY
            self._no_echo = outcome is OverEcho.NO_ECHO
            self._echo_found |= not self._no_echo
            if said is not None and said.interrupts:
                self._over_echo_words = said.text
                self._act(Decision(Kind.INTERRUPTION, final=True, text=said.text))
            elif said is not None and _acknowledges(said):
                self._acknowledged, self._heard_until = said.text, heard.until
                self._resume_held(f"the signal shows {said.text!r} over the echo, an acknowledgement")
            elif self._echo_alone:
                self._resume_held("the signal shows the echo alone")
            elif self._no_echo and (decision := self._without_echo(self._last_words)) is not None:
                self._act(decision)
            elif outcome is OverEcho.FAILED and self._decider is not None:  # the words decide, as without the signal
                self._signal_failed = True
                self._act(self._decider.heard(self._last_words, agent_words, self._speech_ms()))

        self._over_echo_check = self._spawn(check(), "over-echo")

    def _after_acknowledgement(self, heard: HeardOverEcho, said: Decision | None) -> None:
        """A check of what followed an acknowledgement heard over the echo: words that interrupt do; another
        acknowledgement or the echo alone let the audio go on; more than the echo but no words yet, it stays
        held (the next check hears them from the same point)."""
        if said is not None and said.interrupts:
            self._over_echo_words = f"{self._acknowledged} {said.text}"
            self._act(Decision(Kind.INTERRUPTION, final=True, text=self._over_echo_words))
            return
        if said is not None and _acknowledges(said):
            self._acknowledged = f"{self._acknowledged} {said.text}"
        if heard.outcome in (OverEcho.ECHO_ONLY, OverEcho.NOT_AN_INTERRUPTION):
            self._heard_until = heard.until
            self._resume_held("the signal shows nothing more than the echo after an acknowledgement")
        elif heard.outcome is OverEcho.FAILED:  # nothing known against the acknowledgement
            self._resume_held("the check after an acknowledgement failed")

    def _resume_held(self, why: str) -> None:
        if self._held is not None:
            log.debug("session: the held audio goes on: %s", why)
            self._held.resume_audio()  # sure enough to play on

    async def _heard_again(self, text: str, utterance_id: int) -> None:
        """The user's turn from the last utterance with the agent's echo removed (its words, if it left any;
        else ``text``: the transcript as it was, or the words a check heard over the echo), sent as its final
        transcript."""
        heard = await self._listener.words_over_echo(self._config.backends.backend_timeout_s)
        said = text
        if heard.outcome is OverEcho.WORDS and heard.words:
            said = without_echo_phrases(heard.words, self.agent_words())[0] or heard.words
        self._emit(Transcript(utterance_id=utterance_id, text=said, final=True))
        self._hooks.user_turn(said)

    def _decide_without_echo(self, text: str) -> None:
        """An undecided utterance's final that the words alone would make the user's, the agent's echo maybe
        in it: the audio stays held while it is heard again with the echo removed, and what is left decides
        (the echo and nothing more: echo; no echo found, or the check failed: the transcript as it was)."""
        decider, held, started_at = self._decider, self._held, self._started_at
        assert decider is not None
        self._decider, self._held = None, None
        agent_words, utterance_id = self.agent_words(), self._listener.utterance_id

        async def decide() -> None:
            heard = await self._listener.words_over_echo(self._config.backends.backend_timeout_s)
            said = text
            if heard.outcome is OverEcho.ECHO_ONLY:
                decision = Decision(Kind.ECHO, final=True, text=text)
            elif heard.outcome is OverEcho.NO_WORDS:
                decision = Decision(Kind.NOISE, final=True, text="")
            elif heard.outcome is OverEcho.WORDS:
                decision = decide_over_echo(heard.words, agent_words, self._settings.turn_taking.techniques)
                said = decision.text
            else:  # no echo found, or the check failed: the transcript as it was
                decision = decider.ended(text, agent_words)
            self._observer.heard_over_echo(_counted(heard.outcome, decision))
            self._conclude(decision, held, started_at, during_utterance=False)
            if decision.kind in (Kind.INTERRUPTION, Kind.BACKCHANNEL):
                self._emit(Transcript(utterance_id=utterance_id, text=said, final=True))
            if decision.interrupts:
                self._hooks.user_turn(said)

        self._spawn(decide(), "decide-without-echo")

    def _probe_echo(self) -> None:
        """An utterance decided an interruption before any check heard it: is the agent's echo in it? (Then
        its final is remade without the echo: ``remakes_final``.)"""
        utterance_id = self._listener.utterance_id

        async def probe() -> None:
            found = await self._listener.echo_in_utterance()
            if self._listener.utterance_id == utterance_id and self._interrupted:
                self._echo_found |= found

        self._spawn(probe(), "echo-probe")

    def _without_echo(self, text: str) -> Decision | None:
        """With no echo of the agent in the microphone, words that would interrupt once WORDS_MIN_MS had passed
        (the wait is for Whisper's first guesses at the echo, and there is none) interrupt now."""
        if self._decider is None:
            return None
        if self._decider.classify(text, self.agent_words(), interim=True) is not Kind.INTERRUPTION:
            return None
        return Decision(Kind.INTERRUPTION, final=True, text=text)

    def _check_echo_after(self, echo: Decision) -> None:
        """An utterance whose final transcript was the agent's echo: the agent's audio goes on while it is
        heard again; the words over the echo, if any, interrupt then and are the user's turn."""
        held, started_at = self._held, self._started_at
        self._decider, self._held = None, None
        if held is not None:
            held.resume_audio()
        agent_words, utterance_id = self.agent_words(), self._listener.utterance_id

        async def check() -> None:
            _, said = await self._heard_over_echo(agent_words)
            words = said.text if said is not None and said.interrupts else ""
            decision = Decision(Kind.INTERRUPTION, final=True, text=words) if words else echo
            self._conclude(decision, held, started_at, during_utterance=False)
            if words:
                self._emit(Transcript(utterance_id=utterance_id, text=words, final=True))
                self._hooks.user_turn(words)

        self._spawn(check(), "echo-after")

    async def _heard_over_echo(
        self, agent_words: str, since: int | None = None, *, interim: bool = False
    ) -> tuple[HeardOverEcho, Decision | None]:
        """What the last utterance held besides the echo (from mic sample ``since``, if given), its outcome
        labelled by what its words were; and those words' decision (``decide_over_echo``; ``interim``: while the
        utterance goes on), if it had any."""
        heard = await self._listener.words_over_echo(self._config.backends.backend_timeout_s, since)
        said = None
        if heard.words:
            techniques = self._settings.turn_taking.techniques
            said = decide_over_echo(heard.words, agent_words, techniques, interim=interim)
            heard = replace(heard, outcome=_counted(heard.outcome, said))
        self._observer.heard_over_echo(heard.outcome)
        return heard, said

    def _spawn(self, work: Awaitable[None], name: str) -> asyncio.Task[None]:
        task = asyncio.ensure_future(work)
        task.set_name(name)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)
        return task


def _acknowledges(said: Decision) -> bool:
    """Whether words over the agent are an acknowledgement alone ("Okay, sure."), sure enough to play on. Not
    prefaces alone: "Oh, ..." is as often a sentence's start."""
    return said.kind is Kind.BACKCHANNEL and only_acknowledgements(said.text) and not only_prefaces(said.text)


def _counted(outcome: OverEcho, decision: Decision) -> OverEcho:
    """How a check is counted in voice_gateway_speech_over_echo_total: the user's words by what they were."""
    if outcome is not OverEcho.WORDS:
        return outcome
    return OverEcho.INTERRUPTION if decision.interrupts else OverEcho.NOT_AN_INTERRUPTION
