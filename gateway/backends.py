"""The gateway's backends: one pooled channel per ASR and TTS address and one LLM client per process,
and the paths a turn takes to them: warm (those, kept open) or cold (the latency baseline's).
"""

from __future__ import annotations

import json
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass

import grpc

from gateway.config import BackendSettings
from gateway.llm import ChatClient
from voice_agent import telemetry
from voice_agent.v1 import asr_pb2_grpc, tts_pb2_grpc

# grpc backs off up to 120 s between reconnects to a backend that went away; a
# voice session cannot wait that long, so a returning backend is retried at
# least every second. Calls still fail fast (UNAVAILABLE) while it is down.
#
# Round-robin: an address that resolves to several pods (a headless Service)
# gets each new stream on the next pod, instead of all of them on the first.
BACKEND_CHANNEL_OPTIONS = [
    ("grpc.initial_reconnect_backoff_ms", 100),
    ("grpc.min_reconnect_backoff_ms", 100),
    ("grpc.max_reconnect_backoff_ms", 1000),
    # A backend that hangs (a stopped process, a half-open connection) stops answering PINGs: its
    # streams fail UNAVAILABLE within ~25 s and the session reconnects, instead of waiting forever.
    # Twice the servers' minimum PING interval (10 s): closer, timer jitter counts as abuse (GOAWAY).
    ("grpc.keepalive_time_ms", 20_000),
    ("grpc.keepalive_timeout_ms", 5_000),
    ("grpc.keepalive_permit_without_calls", 1),
    ("grpc.service_config", json.dumps({"loadBalancingConfig": [{"round_robin": {}}]})),
]


@dataclass(frozen=True)
class Backends:
    asr: asr_pb2_grpc.AsrStub
    tts: tts_pb2_grpc.TtsStub
    llm: ChatClient
    #: Fresh, unpooled connections, for turns with the warm paths off (the latency baseline).
    new_tts_channel: Callable[[], grpc.aio.Channel]
    new_llm: Callable[[], ChatClient]


def connect(settings: BackendSettings) -> tuple[Backends, list[grpc.aio.Channel]]:
    """The backends of ``settings``, and the channels to close at shutdown. Channels connect lazily and
    reconnect on their own: the gateway serves whether or not its backends are up yet."""

    def channel(address: str) -> grpc.aio.Channel:
        return settings.channel(address, options=BACKEND_CHANNEL_OPTIONS, interceptors=telemetry.client_interceptors())

    asr, tts = channel(settings.asr_address), channel(settings.tts_address)
    backends = Backends(
        asr=asr_pb2_grpc.AsrStub(asr),
        tts=tts_pb2_grpc.TtsStub(tts),
        llm=ChatClient(settings.llm_settings()),
        new_tts_channel=lambda: channel(settings.tts_address),
        new_llm=lambda: ChatClient(settings.llm_settings()),
    )
    return backends, [asr, tts]


@dataclass(frozen=True)
class TurnPaths:
    """What one turn talks to, and what closes it after the turn."""

    llm: ChatClient
    tts: tts_pb2_grpc.TtsStub
    messages: list[dict[str, str]]
    close: Callable[[], Awaitable[None]]


def warm_paths(backends: Backends) -> Callable[[int, list[dict[str, str]]], TurnPaths]:
    """Every turn on the pooled connections, with the history as it is (the LLM's prefix cache hits)."""

    def open_paths(turn_id: int, messages: list[dict[str, str]]) -> TurnPaths:
        return TurnPaths(backends.llm, backends.tts, messages, _nothing)

    return open_paths


def cold_paths(backends: Backends) -> Callable[[int, list[dict[str, str]]], TurnPaths]:
    """The latency baseline's: new connections per turn, and a prompt prefix that changes every turn (as
    a timestamp or a turn counter up front does), so that the LLM's prefix cache misses."""

    def open_paths(turn_id: int, messages: list[dict[str, str]]) -> TurnPaths:
        channel, llm = backends.new_tts_channel(), backends.new_llm()
        system = {"role": "system", "content": f"Turn {turn_id} at {time.time():.3f}.\n{messages[0]['content']}"}

        async def close() -> None:
            await llm.close()
            await channel.close()

        return TurnPaths(llm, tts_pb2_grpc.TtsStub(channel), [system, *messages[1:]], close)

    return open_paths


async def _nothing() -> None:
    return None
