"""The gRPC servicer of the gateway, and its process entry point."""

from __future__ import annotations

import asyncio
import json
import logging
from collections.abc import AsyncIterator, Sequence

import grpc

from gateway.auth import Authenticator
from gateway.config import GatewayConfig
from gateway.latency import LatencyPlan
from gateway.llm import ChatClient
from gateway.session import Backends, Session, session_settings
from voice_agent import telemetry
from voice_agent.errors import RETRY_AFTER_KEY, InvalidArgument, Unauthenticated, quoted
from voice_agent.server import EventStream, StreamAdmission, run
from voice_agent.v1 import asr_pb2_grpc, gateway_pb2, gateway_pb2_grpc, tts_pb2, tts_pb2_grpc

log = logging.getLogger("gateway")

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


class GatewayService(gateway_pb2_grpc.GatewayServicer):
    service_name = gateway_pb2.DESCRIPTOR.services_by_name["Gateway"].full_name

    def __init__(self, config: GatewayConfig) -> None:
        self.config = config
        self.admission = StreamAdmission(
            "gateway",
            config.max_streams,
            per_caller_limit=config.max_sessions_per_caller,
            retry_after_ms=config.retry_after_ms,
            last_event=last_event,
        )
        self._channels: list[grpc.aio.Channel] = []
        self._backends: Backends | None = None
        self._voices: set[str] = set()  # the TTS's, as last listed
        # Read at start: a missing or empty key file stops the gateway rather than leave it open.
        self._auth = Authenticator.from_files(
            config.api_keys_file, config.jwks_file, issuer=config.jwt_issuer, audience=config.jwt_audience
        )
        if self._auth is None:
            log.warning(
                "authentication is off: set --api-keys-file or --jwks-file (or put Envoy's JWT filter in front)"
            )

    def register(self, server: grpc.aio.Server) -> None:
        gateway_pb2_grpc.add_GatewayServicer_to_server(self, server)

    async def load(self) -> None:
        """Opens one pooled, persistent channel per backend; they connect lazily and reconnect."""
        asr, tts = (
            self.config.backend_channel(
                address, options=BACKEND_CHANNEL_OPTIONS, interceptors=telemetry.client_interceptors()
            )
            for address in (self.config.asr_address, self.config.tts_address)
        )
        self._channels = [asr, tts]
        self._backends = Backends(
            asr=asr_pb2_grpc.AsrStub(asr),
            tts=tts_pb2_grpc.TtsStub(tts),
            llm=ChatClient(self.config.llm_settings()),
            new_tts_channel=lambda: self.config.backend_channel(
                self.config.tts_address, options=BACKEND_CHANNEL_OPTIONS, interceptors=telemetry.client_interceptors()
            ),
            new_llm=lambda: ChatClient(self.config.llm_settings()),
        )
        if self.config.latency_mode == "fast":
            # Not awaited: the gateway serves at once, whether or not the LLM is up yet.
            self._warm_up = asyncio.create_task(self._backends.llm.warm_up(self.config.system_prompt))
        plan = LatencyPlan.for_mode(self.config.latency_mode, self.config.min_silence_ms)
        log.info("latency mode %s: %s", self.config.latency_mode, plan.describe())
        log.info(
            "backends: asr %s, tts %s (%s), llm %s (%s)",
            self.config.asr_address,
            self.config.tts_address,
            _backend_transport(self.config),
            self.config.llm_base_url,
            self.config.llm_model,
        )

    async def _check_voice(self, voice: str) -> None:
        """An unknown voice fails the session at once, not each of its turns later."""
        if not voice or voice in self._voices:
            return
        assert self._backends is not None
        try:
            reply = await self._backends.tts.ListVoices(tts_pb2.ListVoicesRequest(), timeout=2.0)
        except grpc.aio.AioRpcError:
            return  # the TTS is away: its turns will say so
        self._voices = set(reply.voices)
        if voice not in self._voices:
            voices = ", ".join(reply.voices)
            raise InvalidArgument(f"unknown voice {quoted(voice)}: the TTS ({reply.engine}) has {voices}")

    async def close(self) -> None:
        if self._backends is not None:
            await self._backends.llm.close()
        for channel in self._channels:
            await channel.close()

    async def Converse(  # noqa: N802 - the gRPC method name
        self, request_iterator: AsyncIterator[gateway_pb2.ConverseRequest], context: grpc.aio.ServicerContext
    ) -> AsyncIterator[gateway_pb2.ConverseResponse]:
        caller = None
        if self._auth is not None:
            try:
                caller = self._auth.authenticate(context.invocation_metadata()).name
            except Unauthenticated as error:  # before any work, and before a session slot is taken
                await self.admission.end(context, error)
            log.debug("converse from %s", caller)
        async with self.admission.stream(context, caller):
            assert self._backends is not None  # admission waits for load()
            requests = aiter(request_iterator)
            first = await anext(requests, None)
            if first is None:
                raise InvalidArgument("the stream ended before its SessionConfig")
            events: EventStream[gateway_pb2.ConverseResponse] = EventStream()
            settings = session_settings(first, self.config.history_tokens)
            await self._check_voice(settings.voice)
            session = Session(self.config, settings, self._backends, events.put, draining=self.admission.draining)
            runner = asyncio.create_task(events.close_after(session.run(requests)))
            try:
                async for event in events:
                    yield event
            finally:
                runner.cancel()
                session.close()


def last_event(code: grpc.StatusCode, message: str, trailing: dict[str, str]) -> gateway_pb2.ConverseResponse:
    """The error event a session gets just before the status that ends it (see ErrorEvent in gateway.proto)."""
    error = gateway_pb2.ErrorEvent(code=code.name, message=message, backend="gateway")
    if (hint := trailing.get(RETRY_AFTER_KEY, "")).isdigit():
        error.retry_after_ms = int(hint)
    return gateway_pb2.ConverseResponse(error=error)


def _backend_transport(config: GatewayConfig) -> str:
    if not config.backend_tls_ca_file:
        return "plaintext"
    return "mTLS" if config.backend_tls_cert_file else "TLS"


def main(argv: Sequence[str] | None = None) -> None:
    config = GatewayConfig.from_args(argv, prog="python -m gateway")
    run(config, GatewayService(config))
