"""A bounded, prioritised worker pool that runs model inference off the event loop.

One loaded model is shared by all streams of a process; the pool bounds how
many inferences run at once. A waiting job that is cancelled never runs, so a
client that goes away costs no more compute than the job already running.
Lower priority numbers run first: a final transcript jumps the queue ahead of
interim ones.
"""

from __future__ import annotations

import asyncio
import functools
import heapq
import itertools
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from typing import TypeVar

from prometheus_client import Gauge

T = TypeVar("T")

QUEUE_DEPTH = Gauge("voice_inference_queue_depth", "Inference jobs waiting for a worker.", ["service"])
BUSY_WORKERS = Gauge("voice_inference_busy_workers", "Inference workers running a job.", ["service"])


class InferencePool:
    def __init__(self, workers: int, label: str) -> None:
        if workers < 1:
            raise ValueError("an inference pool needs at least one worker")
        self._executor = ThreadPoolExecutor(max_workers=workers, thread_name_prefix=f"{label}-inference")
        self._free = workers
        self._waiting: list[tuple[int, int, asyncio.Future[None]]] = []
        self._order = itertools.count()
        self._queue_depth = QUEUE_DEPTH.labels(label)
        self._busy = BUSY_WORKERS.labels(label)

    @property
    def idle(self) -> bool:
        """True when a job submitted now would start at once."""
        return self._free > 0 and not self._waiting

    async def run(self, priority: int, fn: Callable[..., T], *args: object) -> T:
        await self._acquire(priority)
        self._busy.inc()
        try:
            loop = asyncio.get_running_loop()
            return await loop.run_in_executor(self._executor, functools.partial(fn, *args))
        finally:
            self._busy.dec()
            self._release()

    async def _acquire(self, priority: int) -> None:
        if self.idle:
            self._free -= 1
            return
        waiter = asyncio.get_running_loop().create_future()
        heapq.heappush(self._waiting, (priority, next(self._order), waiter))
        self._queue_depth.inc()
        try:
            await waiter
        except asyncio.CancelledError:
            if waiter.done() and not waiter.cancelled():
                self._release()  # the slot was handed to us just as we were cancelled
            raise
        finally:
            self._queue_depth.dec()

    def _release(self) -> None:
        while self._waiting:
            _, _, waiter = heapq.heappop(self._waiting)
            if not waiter.done():  # skip waiters cancelled while queued
                waiter.set_result(None)
                return
        self._free += 1

    def shutdown(self) -> None:
        self._executor.shutdown(wait=False, cancel_futures=True)
