"""Helpers shared by the tests: real service processes and spoken test material."""

from __future__ import annotations

import contextlib
import functools
from collections.abc import Iterator
from pathlib import Path

import grpc
import pytest

from voice_agent.call_status import ServerStatus
from voice_ops.samples import SpokenSample, speak
from voice_ops.stack import ServiceProcess, free_port
from voice_ops.stack import start_on_free_ports as start_service

__all__ = ["ServiceProcess", "free_port", "running", "spoken", "start_service", "stream_error"]


@contextlib.contextmanager
def running(
    name: str, log: Path, *args: str, clean_exit: bool = True, credentials: grpc.ChannelCredentials | None = None
) -> Iterator[ServiceProcess]:
    """A real service for the block; with ``clean_exit``, it must end with 0 on SIGTERM.
    ``credentials``: it serves TLS, and its health is checked with them."""
    server = start_service(name, log, *args, credentials=credentials)
    try:
        yield server
    finally:
        code = server.stop()
        assert code == 0 or not clean_exit, log.read_text()[-5000:]


@functools.cache
def spoken(text: str, sample_rate: int = 16_000, lead_ms: int = 500, tail_ms: int = 1000) -> SpokenSample:
    """espeak-ng speech with known silences, made once per test session."""
    return speak(text, sample_rate=sample_rate, lead_ms=lead_ms, tail_ms=tail_ms)


async def stream_error(call: grpc.aio.Call, into: list | None = None) -> grpc.aio.AioRpcError:
    """The status a call that streams its responses must fail with, as the server sent it: a client write in flight
    as the server ends the stream makes grpc.aio report INTERNAL instead (grpc/grpc#36066), which
    our own clients undo with ``ServerStatus``. ``into`` collects the events read before the end."""
    status = ServerStatus(call)
    with pytest.raises(grpc.aio.AioRpcError) as caught:
        async for event in call:
            if into is not None:
                into.append(event)
    return status.of(caught.value)
