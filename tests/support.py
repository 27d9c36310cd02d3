"""Helpers shared by the tests: real service processes and spoken test material."""

from __future__ import annotations

import functools
from pathlib import Path

from voice_agent.samples import SpokenSample, speak
from voice_agent.stack import ServiceProcess, free_port, launch, service

__all__ = ["ServiceProcess", "free_port", "spoken", "start_service"]


def start_service(name: str, log: Path, *args: str, timeout_s: float = 120.0) -> ServiceProcess:
    """A real service on free loopback ports, healthy."""
    started = launch(service(name), log, *args, port=free_port(), metrics_port=free_port())
    try:
        started.wait_until_serving(timeout_s)
    except (RuntimeError, TimeoutError):
        started.stop()
        raise
    return started


@functools.cache
def spoken(text: str, sample_rate: int = 16_000, lead_ms: int = 500, tail_ms: int = 1000) -> SpokenSample:
    """espeak-ng speech with known silences, made once per test session."""
    return speak(text, sample_rate=sample_rate, lead_ms=lead_ms, tail_ms=tail_ms)
