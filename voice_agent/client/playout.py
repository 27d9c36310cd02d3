"""Where the agent's reply is played, and how much of it the user heard when an interruption flushed it.

The SDK queues each reply chunk as it arrives; on an interruption it flushes the playout and reports the
played part to the gateway (``ConverseRequest.truncate``), which keeps only that much in the history.
``RealTimePlayout`` plays on the wall clock: a headless client, tests, and the model for a device playout.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import Protocol

from voice_agent.audio import PCM16_SAMPLE_BYTES


class Playout(Protocol):
    def play(self, turn_id: int, pcm16: bytes, sample_rate: int) -> None:
        """Queues a chunk of ``turn_id``'s reply after everything already queued."""

    def flush(self, turn_id: int) -> int:
        """Stops now and drops what is queued; returns the ms of ``turn_id`` that had played."""

    def started_at(self, turn_id: int) -> float | None:
        """``time.perf_counter()`` when ``turn_id``'s first sample played (or will, if queued); None: never."""

    def reset(self) -> None:
        """A new conversation began (the old one could not be resumed): forget its turns, whose ids start again."""


@dataclass
class _Span:
    """One turn's audio on the playout's clock (perf_counter seconds)."""

    start: float
    end: float
    flushed_at: float = float("inf")

    def played_ms(self, now: float) -> int:
        return max(0, int((min(now, self.end, self.flushed_at) - self.start) * 1000))


class RealTimePlayout:
    """Plays each chunk right after the one before it (now, if nothing plays), at real time, on no device."""

    def __init__(self) -> None:
        self._turns: dict[int, _Span] = {}
        self._queued_until = 0.0

    def play(self, turn_id: int, pcm16: bytes, sample_rate: int) -> None:
        now = time.perf_counter()
        span = self._turns.get(turn_id)
        if span is not None and span.flushed_at != float("inf"):
            return  # an interrupted turn's late chunks are not played
        start = max(now, self._queued_until)
        if span is None:
            span = self._turns[turn_id] = _Span(start, start)
        self._queued_until = start + len(pcm16) / PCM16_SAMPLE_BYTES / sample_rate
        span.end = self._queued_until

    def flush(self, turn_id: int) -> int:
        now = time.perf_counter()
        for span in self._turns.values():
            span.flushed_at = min(span.flushed_at, now)
            span.end = min(span.end, now)
        self._queued_until = now
        span = self._turns.setdefault(turn_id, _Span(now, now, now))
        return span.played_ms(now)

    def played_ms(self, turn_id: int) -> int:
        span = self._turns.get(turn_id)
        return span.played_ms(time.perf_counter()) if span else 0

    def started_at(self, turn_id: int) -> float | None:
        span = self._turns.get(turn_id)
        return span.start if span is not None and span.end > span.start else None

    def reset(self) -> None:
        self._turns.clear()

    @property
    def playing(self) -> bool:
        return self._queued_until > time.perf_counter()
