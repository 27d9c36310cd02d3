"""The record writer: every write to the stores goes through one bounded buffer, off the turn's path.

A conversation hands its writes (the record's start, items, updates, recording segments) to ``RecordWriter``
and goes on at once; one task writes them in order. When a store is slow or down the writes wait in the
buffer and are retried with back-off, in order, until it answers again (each write is idempotent, so a
retry never duplicates anything). The buffer is bounded by count and bytes: past either, the oldest
recording segment is dropped (``voice_gateway_record_drops_total{kind="audio"}``), never a transcript or
an update, which are small. ``flush`` (the drain, SIGTERM) waits until everything is written.
"""

from __future__ import annotations

import asyncio
import collections
import contextlib
import logging
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass

from prometheus_client import Counter, Gauge

from gateway.records.store import RecordingStore, RecordStore

log = logging.getLogger(__name__)

DROPS = Counter("voice_gateway_record_drops_total", "Record writes dropped because the buffer was full.", ["kind"])
WRITE_FAILURES = Counter("voice_gateway_record_write_failures_total", "Record writes that failed (then retried).")
STORE_UP = Gauge("voice_gateway_record_store_up", "1 while the last record write succeeded, 0 while writes fail.")
BUFFERED = Gauge("voice_gateway_record_buffered_writes", "Record writes waiting in the buffer.")
BUFFERED_BYTES = Gauge("voice_gateway_record_buffered_bytes", "Bytes of record writes waiting in the buffer.")
LAG = Gauge("voice_gateway_record_write_lag_seconds", "Age of the oldest record write waiting in the buffer.")

RETRY_FIRST_S = 0.2
WRITE_TIMEOUT_S = 10.0  # a store that hangs (a dead connection) counts as down
RETRY_MAX_S = 5.0


@dataclass(eq=False)  # compared by identity: two writes are never the same one
class Write:
    """One idempotent write; ``audio`` ones (recording segments) are the ones dropped when the buffer is full."""

    run: Callable[[], Awaitable[None]]
    size: int
    audio: bool
    what: str
    queued_at: float = 0.0


class RecordWriter:
    def __init__(
        self, records: RecordStore, recordings: RecordingStore | None, *, max_writes: int, max_bytes: int
    ) -> None:
        self.records = records
        self.recordings = recordings
        self._max_writes = max_writes
        self._max_bytes = max_bytes
        self._queue: collections.deque[Write] = collections.deque()
        self._bytes = 0
        self._ready = asyncio.Event()
        self._idle = asyncio.Event()
        self._idle.set()
        self._task: asyncio.Task[None] | None = None
        self.dropped = 0
        STORE_UP.set(1)

    def start(self) -> None:
        self._task = asyncio.create_task(self._run())

    async def close(self, timeout_s: float) -> bool:
        """Flushes (at most ``timeout_s``), then stops; False if writes were left unwritten."""
        flushed = await self.flush(timeout_s)
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
        if not flushed:
            log.error("records: %d writes were not written before the gateway stopped", len(self._queue))
        return flushed

    async def flush(self, timeout_s: float) -> bool:
        """Waits until every write so far is written; False if ``timeout_s`` passed first."""
        try:
            async with asyncio.timeout(timeout_s):
                await self._idle.wait()
            return True
        except TimeoutError:
            return False

    @property
    def pending(self) -> int:
        return len(self._queue)

    # ---- what a conversation hands over

    def put(self, run: Callable[[], Awaitable[None]], *, what: str, size: int = 256, audio: bool = False) -> None:
        self._queue.append(Write(run, size, audio, what, time.monotonic()))
        self._bytes += size
        self._bound()
        self._idle.clear()
        self._ready.set()
        self._gauges()

    def _bound(self) -> None:
        while len(self._queue) > self._max_writes or self._bytes > self._max_bytes:
            oldest_audio = next((write for write in self._queue if write.audio), None)
            if oldest_audio is None:
                return  # only transcripts and updates: they are small, and never dropped
            self._queue.remove(oldest_audio)
            self._bytes -= oldest_audio.size
            self.dropped += 1
            DROPS.labels("audio").inc()
            if self.dropped == 1 or self.dropped % 100 == 0:
                log.warning("records: buffer full, dropped %d recording segments so far", self.dropped)

    # ---- the one task that writes

    async def _run(self) -> None:
        while True:
            await self._ready.wait()
            while self._queue:
                write = self._queue[0]
                await self._write(write)
                if self._queue and self._queue[0] is write:  # it may have been dropped while being retried
                    self._queue.popleft()
                    self._bytes -= write.size
                self._gauges()
            self._ready.clear()
            self._idle.set()

    async def _write(self, write: Write) -> None:
        """Until it is written (or dropped for room while it waits): a store that is down is retried."""
        delay = RETRY_FIRST_S
        while True:
            try:
                async with asyncio.timeout(WRITE_TIMEOUT_S):
                    await write.run()
                STORE_UP.set(1)
                return
            except asyncio.CancelledError:
                raise
            except Exception as error:  # the store is down or failing: wait and retry, in order
                WRITE_FAILURES.inc()
                STORE_UP.set(0)
                name = type(error).__name__
                log.warning("records: %s failed (%s: %s); retrying in %.1f s", write.what, name, error, delay)
            await asyncio.sleep(delay)
            delay = min(delay * 2, RETRY_MAX_S)
            if not any(queued is write for queued in self._queue):
                return

    def _gauges(self) -> None:
        BUFFERED.set(len(self._queue))
        BUFFERED_BYTES.set(self._bytes)
        LAG.set(time.monotonic() - self._queue[0].queued_at if self._queue else 0.0)
