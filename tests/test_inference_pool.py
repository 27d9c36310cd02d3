"""Orchestration of the inference pool with plain functions standing in for a model."""

import asyncio
import threading

import pytest

from voice_agent.inference import InferencePool

pytestmark = pytest.mark.unit  # no model, no service: make test-unit


async def test_higher_priority_jumps_the_queue() -> None:
    pool = InferencePool(1, "test-priority")
    gate = threading.Event()
    order: list[str] = []

    def job(name: str) -> str:
        if name == "blocker":
            gate.wait(5)
        order.append(name)
        return name

    blocker = asyncio.create_task(pool.run(1, job, "blocker"))
    await asyncio.sleep(0.05)
    interim = asyncio.create_task(pool.run(1, job, "interim"))
    await asyncio.sleep(0.01)
    final = asyncio.create_task(pool.run(0, job, "final"))
    await asyncio.sleep(0.01)
    gate.set()
    assert await asyncio.gather(blocker, interim, final) == ["blocker", "interim", "final"]
    assert order == ["blocker", "final", "interim"]
    pool.shutdown()


async def test_a_cancelled_waiting_job_never_runs() -> None:
    pool = InferencePool(1, "test-cancel")
    gate = threading.Event()
    ran: list[str] = []

    def job(name: str) -> None:
        if name == "blocker":
            gate.wait(5)
        ran.append(name)

    blocker = asyncio.create_task(pool.run(0, job, "blocker"))
    await asyncio.sleep(0.05)
    waiting = asyncio.create_task(pool.run(0, job, "cancelled"))
    await asyncio.sleep(0.01)
    waiting.cancel()
    gate.set()
    await blocker
    await pool.run(0, job, "after")
    assert ran == ["blocker", "after"]
    assert pool.idle
    pool.shutdown()
