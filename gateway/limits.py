"""What ends a conversation that its client does not end: its length, its idleness, the gateway's drain;
and what one message may carry (typed text). One copy for every front.

Each limit waits for a moment of rest (no turn in flight, on either side), so that nothing is cut; only a
turn that runs past the length limit by more than a turn's deadline is cut.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable

from gateway.config import GatewayConfig
from voice_agent.errors import DeadlineExceeded, Draining, InvalidArgument

# How often a conversation checks its limits and the drain.
GUARD_INTERVAL_S = 0.1


class Limits:
    def __init__(self, config: GatewayConfig, draining: asyncio.Event) -> None:
        self._config = config
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
        config = self._config
        age = time.monotonic() - self._started_at
        if busy:
            if age > config.max_session_s + config.backend_timeout_s:
                raise DeadlineExceeded(f"the conversation reached its limit of {config.max_session_s:g} s")
            return
        if self._draining.is_set():
            raise Draining("the gateway is shutting down; connect again to go on (another replica will answer)")
        if age > config.max_session_s:
            raise DeadlineExceeded(f"the conversation reached its limit of {config.max_session_s:g} s")
        if time.monotonic() - self._last_activity_at > config.idle_timeout_s:
            raise DeadlineExceeded(f"no message from the client for {config.idle_timeout_s:g} s")

    def check_text(self, text: str) -> None:
        """Typed text one message may carry; raises InvalidArgument (the conversation goes on)."""
        if len(text) > self._config.max_text_chars:
            limit = self._config.max_text_chars
            raise InvalidArgument(f"typed text of {len(text)} characters is over the limit of {limit}")
