"""The gateway's gRPC front: ``Converse``, an adapter between the protos and the conversation core's typed
inputs and events (gateway/events.py). gateway/app.py runs it beside the Realtime front."""

from __future__ import annotations

import dataclasses
import functools
import logging
from collections.abc import AsyncIterator
from dataclasses import fields
from typing import TYPE_CHECKING

import grpc

from gateway import events
from gateway.auth import ANONYMOUS
from gateway.conversation import Conversation
from gateway.records.ids import new_conversation_id
from gateway.session_settings import session_choices, settings_for
from voice_agent.errors import RETRY_AFTER_KEY, InvalidArgument, Unauthenticated
from voice_agent.server import EventStream, Started, serve_stream
from voice_agent.v1 import asr_pb2, gateway_pb2, gateway_pb2_grpc

if TYPE_CHECKING:
    from gateway.app import GatewayApp

log = logging.getLogger("gateway")


class ConverseService(gateway_pb2_grpc.GatewayServicer):
    """The gRPC front: each Converse stream one conversation, on the parts the gateway's fronts share."""

    def __init__(self, app: GatewayApp) -> None:
        self._app = app

    async def Converse(  # noqa: N802 - the gRPC method name
        self, request_iterator: AsyncIterator[gateway_pb2.ConverseRequest], context: grpc.aio.ServicerContext
    ) -> AsyncIterator[gateway_pb2.ConverseResponse]:
        app, caller = self._app, None
        if app.auth is not None:
            try:
                caller = app.auth.authenticate(context.invocation_metadata()).name
            except Unauthenticated as error:  # before any work, and before a session slot is taken
                await app.admission.end(context, error)
            log.debug("converse from %s", caller)
        missing = "the stream ended before its SessionConfig"
        open_stream = functools.partial(self._open, caller=caller or ANONYMOUS.name)
        opened = serve_stream(app.admission, context, request_iterator, open_stream, missing=missing, caller=caller)
        async for response in opened:
            yield response

    async def _open(
        self,
        first: gateway_pb2.ConverseRequest,
        requests: AsyncIterator[gateway_pb2.ConverseRequest],
        responses: EventStream[gateway_pb2.ConverseResponse],
        *,
        caller: str,
    ) -> Started:
        """A new conversation, or (``resume_conversation_id``) the caller's dropped one, with what it had."""
        app, records = self._app, self._app.records
        if first.WhichOneof("request") == "config" and first.config.resume_conversation_id:
            resumed = await records.resume(first.config.resume_conversation_id, caller)
            # The persona as it began (with the memory it was given), the settings as they were chosen.
            settings = dataclasses.replace(
                settings_for(resumed.session.choices, app.config), system_prompt=resumed.record.header.persona
            )
            conversation_id, resumption = resumed.record.conversation_id, resumed.resumption
            recorder = records.resumed(resumed)
        else:
            chosen = first.config
            session = records.session(
                session_choices(first),
                record=chosen.record if chosen.HasField("record") else None,
                memory=chosen.memory if chosen.HasField("memory") else None,
            )
            memory = await records.memory_for(caller, session)
            settings = settings_for(session.choices, app.config)
            await app.check_voice(settings.voice)
            if memory:
                settings = dataclasses.replace(settings, system_prompt=settings.system_prompt + memory)
            conversation_id, resumption = new_conversation_id(), None
            recorder = records.begin(conversation_id, caller, session, settings.system_prompt)
        conversation = Conversation(
            app.config,
            settings,
            app.backends,
            lambda event: _put(responses, to_response(event)),
            draining=app.admission.draining,
            conversation_id=conversation_id,
            recorder=recorder,
            resumption=resumption,
        )
        run = conversation.run(to_inputs(requests))
        return Started(records.serving_run(conversation_id, run), conversation.close)


async def to_inputs(requests: AsyncIterator[gateway_pb2.ConverseRequest]) -> AsyncIterator[events.Input]:
    """The messages after the SessionConfig, as the conversation's inputs; InvalidArgument on any other.
    Requests that stop without ``end`` (a half-close, a cancelled call, a dropped connection: the server
    cannot always tell them apart) leave the conversation resumable."""
    async for request in requests:
        kind = request.WhichOneof("request")
        if kind == "audio":
            yield events.AudioIn(request.audio)
        elif kind == "text":
            yield events.TextIn(request.text)
        elif kind == "truncate":
            yield events.Truncate(request.truncate.turn_id, request.truncate.audio_end_ms)
        elif kind == "end":
            yield events.EndOfInput()
            return
        else:
            what = "a second SessionConfig" if kind == "config" else "a message with no audio, text, truncate or end"
            raise InvalidArgument(f"expected audio, text, truncate or end after the SessionConfig, got {what}")


def _put(responses: EventStream[gateway_pb2.ConverseResponse], response: gateway_pb2.ConverseResponse | None) -> None:
    if response is not None:
        responses.put(response)


def to_response(event: events.Event) -> gateway_pb2.ConverseResponse | None:
    """One of the conversation's events on the wire; None for one that Converse does not send."""
    match event:
        case events.SessionStarted():
            return gateway_pb2.ConverseResponse(session_started=gateway_pb2.SessionStarted(**_fields(event)))
        case events.Truncated():
            return None  # the client's own Truncate, applied: Converse has no acknowledgement for it
        case events.SpeechStarted():
            return gateway_pb2.ConverseResponse(speech_started=asr_pb2.SpeechStarted(**_fields(event)))
        case events.SpeechEnded():
            reason = asr_pb2.SpeechEnded.Reason.Value(f"REASON_{event.reason.upper()}")
            ended = asr_pb2.SpeechEnded(**{**_fields(event, "at"), "reason": reason})
            return gateway_pb2.ConverseResponse(speech_ended=ended)
        case events.Transcript(final=final):
            transcript = asr_pb2.Transcript(**_fields(event, "final"))
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


def _fields(event: events.Event, *internal: str) -> dict[str, object]:
    """The event's fields by name, less ``internal`` ones that its message does not carry."""
    return {field.name: getattr(event, field.name) for field in fields(event) if field.name not in internal}


def last_event(code: grpc.StatusCode, message: str, trailing: dict[str, str]) -> gateway_pb2.ConverseResponse:
    """The error event a session gets just before the status that ends it (see ErrorEvent in gateway.proto)."""
    error = gateway_pb2.ErrorEvent(code=code.name, message=message, backend="gateway")
    if (hint := trailing.get(RETRY_AFTER_KEY, "")).isdigit():
        error.retry_after_ms = int(hint)
    return gateway_pb2.ConverseResponse(error=error)
