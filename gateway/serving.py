"""The gRPC servicer of the gateway, and its process entry point."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator, Sequence
from dataclasses import fields

import grpc

from gateway import backends, events
from gateway.auth import Authenticator
from gateway.config import GatewayConfig
from gateway.conversation import Conversation
from gateway.realtime.serving import Gateway as RealtimeGateway
from gateway.realtime.serving import HttpServer
from gateway.session_settings import session_settings
from voice_agent.errors import RETRY_AFTER_KEY, InvalidArgument, Unauthenticated, quoted
from voice_agent.server import EventStream, Started, StreamAdmission, run, serve_stream
from voice_agent.v1 import asr_pb2, gateway_pb2, gateway_pb2_grpc, tts_pb2

log = logging.getLogger("gateway")


class GatewayService(gateway_pb2_grpc.GatewayServicer):
    service_name = gateway_pb2.DESCRIPTOR.services_by_name["Gateway"].full_name

    def __init__(self, config: GatewayConfig) -> None:
        self.config = config
        self.admission = StreamAdmission(
            "gateway",
            config.max_streams,
            per_caller_limit=config.limits.max_sessions_per_caller,
            retry_after_ms=config.limits.retry_after_ms,
            last_event=last_event,
        )
        self._channels: list[grpc.aio.Channel] = []
        self._backends: backends.Backends | None = None
        self._voices: set[str] = set()  # the TTS's voices and voice aliases, as last listed
        self._http: HttpServer | None = None
        # Read at start: a missing or empty key file stops the gateway rather than leave it open.
        auth = config.auth
        self._auth = Authenticator.from_files(
            auth.api_keys_file, auth.jwks_file, issuer=auth.jwt_issuer, audience=auth.jwt_audience
        )
        if self._auth is None:
            log.warning(
                "authentication is off: set --api-keys-file or --jwks-file (or put Envoy's JWT filter in front)"
            )

    def register(self, server: grpc.aio.Server) -> None:
        gateway_pb2_grpc.add_GatewayServicer_to_server(self, server)

    async def load(self) -> None:
        """Opens one pooled, persistent channel per backend; they connect lazily and reconnect."""
        self._backends, self._channels = backends.connect(self.config.backends)
        if self.config.latency.latency_mode == "fast":
            # Not awaited: the gateway serves at once, whether or not the LLM is up yet.
            self._warm_up = asyncio.create_task(self._backends.llm.warm_up(self.config.persona.system_prompt))
        log.info("latency mode %s: %s", self.config.latency.latency_mode, self.config.latency.plan().describe())
        log.info(
            "backends: asr %s, tts %s (%s), llm %s (%s)",
            self.config.backends.asr_address,
            self.config.backends.tts_address,
            self.config.backends.transport,
            self.config.backends.llm_base_url,
            self.config.backends.llm_model,
        )
        if self.config.http_port:
            self._http = HttpServer(
                RealtimeGateway(self.config, self.admission, self._auth, self._loaded_backends, self._check_voice)
            )
            await self._http.start()

    def _loaded_backends(self) -> backends.Backends:
        assert self._backends is not None  # admission waits for load()
        return self._backends

    async def _check_voice(self, voice: str) -> None:
        """An unknown voice fails the session at once, not each of its turns later."""
        if not voice or voice in self._voices:
            return
        assert self._backends is not None
        try:
            reply = await self._backends.tts.ListVoices(tts_pb2.ListVoicesRequest(), timeout=2.0)
        except grpc.aio.AioRpcError:
            return  # the TTS is away: its turns will say so
        # A Realtime API voice name (the Agents SDK's default 'ash') is as good as a voice: the TTS maps it.
        self._voices = set(reply.voices) | set(reply.voice_aliases)
        if voice not in self._voices:
            voices, aliases = ", ".join(reply.voices), ", ".join(sorted(reply.voice_aliases))
            raise InvalidArgument(
                f"unknown voice {quoted(voice)}: the TTS ({reply.engine}) has {voices}"
                + (f"; or a Realtime API voice name, one of {aliases}" if aliases else "")
            )

    async def close(self) -> None:
        if self._http is not None:
            await self._http.close()
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
        missing = "the stream ended before its SessionConfig"
        opened = serve_stream(self.admission, context, request_iterator, self._open, missing=missing, caller=caller)
        async for response in opened:
            yield response

    async def _open(
        self,
        first: gateway_pb2.ConverseRequest,
        requests: AsyncIterator[gateway_pb2.ConverseRequest],
        responses: EventStream[gateway_pb2.ConverseResponse],
    ) -> Started:
        assert self._backends is not None  # admission waits for load()
        settings = session_settings(first, self.config)
        await self._check_voice(settings.voice)
        conversation = Conversation(
            self.config,
            settings,
            self._backends,
            lambda event: responses.put(to_response(event)),
            draining=self.admission.draining,
        )
        return Started(conversation.run(to_inputs(requests)), conversation.close)


async def to_inputs(requests: AsyncIterator[gateway_pb2.ConverseRequest]) -> AsyncIterator[events.Input]:
    """The messages after the SessionConfig, as the conversation's inputs; InvalidArgument on any other."""
    async for request in requests:
        kind = request.WhichOneof("request")
        if kind == "audio":
            yield events.AudioIn(request.audio)
        elif kind == "text":
            yield events.TextIn(request.text)
        elif kind == "end":
            yield events.EndOfInput()
            return
        else:
            what = "a second SessionConfig" if kind == "config" else "a message with no audio, text or end"
            raise InvalidArgument(f"expected audio, text or end after the SessionConfig, got {what}")


def to_response(event: events.Event) -> gateway_pb2.ConverseResponse:
    """One of the conversation's events on the wire."""
    match event:
        case events.SpeechStarted():
            return gateway_pb2.ConverseResponse(speech_started=asr_pb2.SpeechStarted(**_fields(event)))
        case events.SpeechEnded():
            reason = asr_pb2.SpeechEnded.Reason.Value(f"REASON_{event.reason.upper()}")
            ended = asr_pb2.SpeechEnded(**{**_fields(event), "reason": reason})
            return gateway_pb2.ConverseResponse(speech_ended=ended)
        case events.Transcript(final=final):
            transcript = asr_pb2.Transcript(**{k: v for k, v in _fields(event).items() if k != "final"})
            if final:
                return gateway_pb2.ConverseResponse(final_transcript=transcript)
            return gateway_pb2.ConverseResponse(interim_transcript=transcript)
        case events.AgentText():
            return gateway_pb2.ConverseResponse(agent_text=gateway_pb2.AgentText(**_fields(event)))
        case events.AgentAudio():
            return gateway_pb2.ConverseResponse(agent_audio=gateway_pb2.AgentAudio(**_fields(event)))
        case events.Interruption():
            return gateway_pb2.ConverseResponse(interruption=gateway_pb2.Interruption(**_fields(event)))
        case events.InterruptionDecision():
            decision = gateway_pb2.InterruptionDecision(**_fields(event))
            return gateway_pb2.ConverseResponse(interruption_decision=decision)
        case events.TurnMetrics():
            return gateway_pb2.ConverseResponse(turn_metrics=gateway_pb2.TurnMetrics(**_fields(event)))
        case events.Error():
            return gateway_pb2.ConverseResponse(error=gateway_pb2.ErrorEvent(**_fields(event)))
    raise TypeError(f"not a conversation event: {event!r}")


def _fields(event: events.Event) -> dict[str, object]:
    return {field.name: getattr(event, field.name) for field in fields(event)}


def last_event(code: grpc.StatusCode, message: str, trailing: dict[str, str]) -> gateway_pb2.ConverseResponse:
    """The error event a session gets just before the status that ends it (see ErrorEvent in gateway.proto)."""
    error = gateway_pb2.ErrorEvent(code=code.name, message=message, backend="gateway")
    if (hint := trailing.get(RETRY_AFTER_KEY, "")).isdigit():
        error.retry_after_ms = int(hint)
    return gateway_pb2.ConverseResponse(error=error)


def main(argv: Sequence[str] | None = None) -> None:
    config = GatewayConfig.from_args(argv, prog="python -m gateway")
    run(config, GatewayService(config))
