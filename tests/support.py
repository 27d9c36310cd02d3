"""Helpers shared by the tests: real service processes and spoken test material."""

from __future__ import annotations

import functools

from voice_agent.samples import SpokenSample, speak
from voice_agent.stack import ServiceProcess, free_port
from voice_agent.stack import start_on_free_ports as start_service

__all__ = ["ServiceProcess", "free_port", "spoken", "start_service"]


@functools.cache
def spoken(text: str, sample_rate: int = 16_000, lead_ms: int = 500, tail_ms: int = 1000) -> SpokenSample:
    """espeak-ng speech with known silences, made once per test session."""
    return speak(text, sample_rate=sample_rate, lead_ms=lead_ms, tail_ms=tail_ms)
