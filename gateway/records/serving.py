"""The conversation records' two fronts: the gRPC ``Conversations`` service on the gateway's gRPC port,
and ``/v1/conversations`` on its HTTP port. Both authenticate as Converse and the Realtime API do
(gateway/auth.py) and go through ConversationAccess (gateway/records/access.py).

HTTP: ``GET /v1/conversations[?page_size=N&page_token=T]``, ``GET /v1/conversations/{id}``,
``GET /v1/conversations/{id}/recording.wav``, ``DELETE /v1/conversations/{id}`` (204). An error is
``{"error": {"code": "NOT_FOUND", "message": ...}}`` with the HTTP status that fits its gRPC code.
"""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator
from typing import TYPE_CHECKING, Any

import grpc
from aiohttp import web

from gateway.auth import ANONYMOUS, Caller
from gateway.records.access import ConversationAccess, to_json, to_message
from voice_agent.errors import InvalidArgument, ServiceError, Unauthenticated, Unavailable
from voice_agent.v1 import conversations_pb2, conversations_pb2_grpc

if TYPE_CHECKING:
    from gateway.app import GatewayApp

HTTP_STATUS = {
    grpc.StatusCode.INVALID_ARGUMENT: 400,
    grpc.StatusCode.UNAUTHENTICATED: 401,
    grpc.StatusCode.NOT_FOUND: 404,
    grpc.StatusCode.UNAVAILABLE: 503,
}
log = logging.getLogger(__name__)


def access_of(gateway: GatewayApp) -> ConversationAccess:
    if gateway.conversations is None:
        raise Unavailable("the conversation records are not open yet: retry shortly")
    return gateway.conversations


def authenticated(gateway: GatewayApp, metadata: Any) -> Caller:
    """The caller (ANONYMOUS with auth off); raises Unauthenticated."""
    return ANONYMOUS if gateway.auth is None else gateway.auth.authenticate(metadata)


class ConversationsService(conversations_pb2_grpc.ConversationsServicer):
    def __init__(self, gateway: GatewayApp) -> None:
        self.gateway = gateway

    def _caller(self, context: grpc.aio.ServicerContext) -> Caller:
        return authenticated(self.gateway, context.invocation_metadata())

    async def ListConversations(  # noqa: N802 - the gRPC method name
        self, request: conversations_pb2.ListConversationsRequest, context: grpc.aio.ServicerContext
    ) -> conversations_pb2.ListConversationsResponse:
        try:
            caller = self._caller(context)
            page, token = await access_of(self.gateway).list(caller, request.page_size, request.page_token)
        except ServiceError as error:
            await context.abort(error.code, str(error))
        messages = [to_message(record, with_items=False) for record in page]
        return conversations_pb2.ListConversationsResponse(conversations=messages, next_page_token=token)

    async def GetConversation(  # noqa: N802 - the gRPC method name
        self, request: conversations_pb2.GetConversationRequest, context: grpc.aio.ServicerContext
    ) -> conversations_pb2.Conversation:
        try:
            record = await access_of(self.gateway).get(self._caller(context), request.conversation_id)
        except ServiceError as error:
            await context.abort(error.code, str(error))
        return to_message(record)

    async def GetRecording(  # noqa: N802 - the gRPC method name
        self, request: conversations_pb2.GetRecordingRequest, context: grpc.aio.ServicerContext
    ) -> AsyncIterator[conversations_pb2.RecordingChunk]:
        try:
            chunks = await access_of(self.gateway).recording(self._caller(context), request.conversation_id)
            async for chunk in chunks:
                yield conversations_pb2.RecordingChunk(data=chunk)
        except ServiceError as error:
            await context.abort(error.code, str(error))

    async def DeleteConversation(  # noqa: N802 - the gRPC method name
        self, request: conversations_pb2.DeleteConversationRequest, context: grpc.aio.ServicerContext
    ) -> conversations_pb2.DeleteConversationResponse:
        try:
            await access_of(self.gateway).delete(self._caller(context), request.conversation_id)
        except ServiceError as error:
            await context.abort(error.code, str(error))
        return conversations_pb2.DeleteConversationResponse()


class ConversationsHttp:
    """The HTTP routes, added to the gateway's aiohttp app (gateway/realtime/serving.py)."""

    def __init__(self, gateway: GatewayApp) -> None:
        self.gateway = gateway

    def add_routes(self, app: web.Application) -> None:
        app.router.add_get("/v1/conversations", self.list)
        app.router.add_get("/v1/conversations/{conversation_id}", self.get)
        app.router.add_get("/v1/conversations/{conversation_id}/recording.wav", self.recording)
        app.router.add_delete("/v1/conversations/{conversation_id}", self.delete)

    def _caller(self, request: web.Request) -> Caller:
        return authenticated(self.gateway, [("authorization", v) for v in request.headers.getall("Authorization", [])])

    async def list(self, request: web.Request) -> web.StreamResponse:
        try:
            size = request.query.get("page_size", "0")
            if not size.isdigit() or len(size) > 6:
                raise InvalidArgument(f"page_size must be a whole number, got {size[:20]!r}")
            caller = self._caller(request)
            page, token = await access_of(self.gateway).list(caller, int(size), request.query.get("page_token", ""))
        except ServiceError as error:
            return error_response(error)
        conversations = [to_json(to_message(record, with_items=False), with_items=False) for record in page]
        return web.json_response({"conversations": conversations, "next_page_token": token})

    async def get(self, request: web.Request) -> web.StreamResponse:
        try:
            caller = self._caller(request)
            record = await access_of(self.gateway).get(caller, request.match_info["conversation_id"])
        except ServiceError as error:
            return error_response(error)
        return web.json_response(to_json(to_message(record)))

    async def recording(self, request: web.Request) -> web.StreamResponse:
        conversation_id = request.match_info["conversation_id"]
        try:
            chunks = await access_of(self.gateway).recording(self._caller(request), conversation_id)
            header = await anext(chunks)
        except ServiceError as error:
            return error_response(error)
        response = web.StreamResponse(
            headers={
                "Content-Type": "audio/wav",
                "Content-Disposition": f'attachment; filename="{conversation_id}.wav"',
            }
        )
        response.content_length = int.from_bytes(header[4:8], "little") + 8  # the RIFF size says the file's
        await response.prepare(request)
        await response.write(header)
        try:
            async for chunk in chunks:
                await response.write(chunk)
        except ServiceError as error:  # the status is sent: the file can only end short of its length
            log.warning("recording of %s cut short: %s", conversation_id, error)
            if request.transport is not None:
                request.transport.close()
            return response
        await response.write_eof()
        return response

    async def delete(self, request: web.Request) -> web.StreamResponse:
        try:
            await access_of(self.gateway).delete(self._caller(request), request.match_info["conversation_id"])
        except ServiceError as error:
            return error_response(error)
        return web.Response(status=204)


def error_response(error: ServiceError) -> web.Response:
    status = HTTP_STATUS.get(error.code, 500)
    headers = {"WWW-Authenticate": "Bearer"} if isinstance(error, Unauthenticated) else None
    body = {"error": {"code": error.code.name, "message": str(error)}}
    return web.json_response(body, status=status, headers=headers)
