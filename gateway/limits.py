"""What ends a conversation that its client does not end: its length, its idleness, the gateway's drain.
One copy for every front: a Realtime socket watches its Limits before its conversation starts, then hands
them to it (what one message may carry, typed text, is LimitSettings.typed_text_error's).

Each waits for a moment of rest (no turn in flight, on either side), so that nothing is cut; only a
turn that runs past the length limit by more than a turn's deadline is cut.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable

from gateway.config import LimitSettings
from voice_agent.errors import DeadlineExceeded, Draining

# How often a conversation checks its limits and the drain.
GUARD_INTERVAL_S = 0.1


class Limits:
    def __init__(self, settings: LimitSettings, turn_deadline_s: float, draining: asyncio.Event) -> None:
        """``turn_deadline_s``: how far a turn in flight may run past max_session_s before it is cut."""
        self._max_session_s = settings.max_session_s
        self._idle_timeout_s = settings.idle_timeout_s
        self._turn_deadline_s = turn_deadline_s
        self._draining = draining
        self._started_at = self._last_activity_at = time.monotonic()

    def activity(self) -> None:
        """A message from the client, or the end of a turn: the idle time starts again."""
        self._last_activity_at = time.monotonic()

    async def guard(self, busy: Callable[[], bool]) -> None:
        """Raises, with a status that says why, once a limit is reached (see the module's docstring)."""
        while True:
            await asyncio.sleep(GUARD_INTERVAL_S)
            self.check(busy=busy())

    def check(self, *, busy: bool) -> None:
        """Raises once a limit is reached; ``busy``: a turn is in flight (only a turn far past the length
        limit is cut)."""
        age = time.monotonic() - self._started_at
        too_long = f"the conversation reached its limit of {self._max_session_s:g} s"
        if busy:
            if age > self._max_session_s + self._turn_deadline_s:
                raise DeadlineExceeded(too_long)
            return
        if self._draining.is_set():
            raise Draining("the gateway is shutting down; connect again to go on (another replica will answer)")
        if age > self._max_session_s:
            raise DeadlineExceeded(too_long)
        if time.monotonic() - self._last_activity_at > self._idle_timeout_s:
            raise DeadlineExceeded(f"no message from the client for {self._idle_timeout_s:g} s")
