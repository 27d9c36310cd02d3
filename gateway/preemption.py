"""Preemptive generation: a reply started on a pause's transcript, before the user's turn has surely ended.

The session keeps it if the final transcript says the same words, and discards it otherwise (or when
the user speaks on). Until it is kept, its events are held here: nothing of a discarded reply ever
reaches the client.
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass

from gateway.turn import AgentTurn, Emit
from voice_agent.v1 import gateway_pb2


class HeldEvents:
    """A preemptive turn's events: held until the turn is kept, then sent in order; dropped if not."""

    def __init__(self, emit: Emit) -> None:
        self._emit = emit
        self._held: list[gateway_pb2.ConverseResponse] | None = []

    def put(self, event: gateway_pb2.ConverseResponse) -> None:
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
