"""Preemptive generation: a reply started on a pause's transcript, before the user's turn has surely ended.

The conversation keeps it if the final transcript says the same words, and discards it otherwise (or
when the user speaks on). Until it is kept, its events are held here: nothing of a discarded reply ever
reaches the client.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from dataclasses import dataclass
from enum import StrEnum

from gateway.events import Emit, Event
from gateway.latency import same_words
from gateway.turn import AgentTurn


class PreemptionOutcome(StrEnum):
    """What became of a reply started on a pause's transcript: voice_gateway_preemptive_turns_total's label."""

    KEPT = "kept"  # the final transcript said the same words
    DISCARDED = "discarded"


#: Starts a reply to ``text`` whose events go to the given emit and whose audio waits for ``kept``.
Launch = Callable[[str, Emit, asyncio.Event], tuple[AgentTurn, "asyncio.Task[None]"]]


class HeldEvents:
    """A preemptive turn's events: held until the turn is kept, then sent in order; dropped if not."""

    def __init__(self, emit: Emit) -> None:
        self._emit = emit
        self._held: list[Event] | None = []

    def put(self, event: Event) -> None:
        if self._held is None:
            self._emit(event)
        else:
            self._held.append(event)

    def release(self) -> None:
        held, self._held = self._held or [], None
        for event in held:
            self._emit(event)


@dataclass
class Preemption:
    """A reply started on a pause's transcript, before the end of the user's turn."""

    text: str
    turn: AgentTurn
    events: HeldEvents
    kept: asyncio.Event
    task: asyncio.Task[None]


class Preemptor:
    """The one reply in flight on a pause's transcript, if any, and what becomes of it."""

    def __init__(self, launch: Launch, emit: Emit, on_outcome: Callable[[PreemptionOutcome], None]) -> None:
        self._launch = launch
        self._emit = emit
        self._on_outcome = on_outcome  # kept or discarded: the observer counts them
        self._current: Preemption | None = None

    def start(self, text: str) -> None:
        self.discard()  # an earlier pause's, if the resumed event was lost
        events, kept = HeldEvents(self._emit), asyncio.Event()
        turn, task = self._launch(text, events.put, kept)
        self._current = Preemption(text, turn, events, kept, task)

    def take(self, final_text: str) -> Preemption | None:
        """The reply under way, if the final transcript says what the pause's did; else none (discarded)."""
        preemption, self._current = self._current, None
        if preemption is not None and same_words(preemption.text, final_text):
            return preemption
        self._cancel(preemption)
        return None

    def keep(self, preemption: Preemption) -> None:
        """The reply is the turn: its text so far goes out, in order, before any of its audio."""
        self._on_outcome(PreemptionOutcome.KEPT)
        preemption.events.release()
        preemption.kept.set()

    def discard(self) -> None:
        preemption, self._current = self._current, None
        self._cancel(preemption)

    def _cancel(self, preemption: Preemption | None) -> None:
        if preemption is not None:
            preemption.task.cancel()  # none of it reached the client
            self._on_outcome(PreemptionOutcome.DISCARDED)
