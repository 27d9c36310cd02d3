"""One wrapper for gRPC method handlers of all four shapes, for the servers' interceptors."""

from __future__ import annotations

from collections.abc import AsyncIterable, AsyncIterator, Awaitable, Callable
from typing import Any

import grpc

#: Runs before a handler: gets its request (a unary method's message, a request-streaming method's
#: iterator) and the context; returns what the handler gets instead, or aborts the call.
Prepare = Callable[[Any, grpc.aio.ServicerContext], Awaitable[Any]]


def wrap_handler(
    handler: grpc.RpcMethodHandler,
    prepare: Prepare,
    *,
    request_deserializer: Callable[[bytes], Any] | None = None,
) -> grpc.RpcMethodHandler:
    """``handler`` with ``prepare`` run first (and ``request_deserializer``, if given, instead of its own).

    grpc tells generator handlers from coroutine ones by their function type,
    so each of the four shapes gets a wrapper of its own kind."""
    parse = request_deserializer or handler.request_deserializer
    serialize = handler.response_serializer
    if handler.request_streaming and handler.response_streaming:
        stream_stream = handler.stream_stream

        async def wrapped_stream_stream(requests: AsyncIterable[Any], context: Any) -> AsyncIterator[Any]:
            async for response in stream_stream(await prepare(requests, context), context):
                yield response

        return grpc.stream_stream_rpc_method_handler(wrapped_stream_stream, parse, serialize)
    if handler.request_streaming:
        stream_unary = handler.stream_unary

        async def wrapped_stream_unary(requests: AsyncIterable[Any], context: Any) -> Any:
            return await stream_unary(await prepare(requests, context), context)

        return grpc.stream_unary_rpc_method_handler(wrapped_stream_unary, parse, serialize)
    if handler.response_streaming:
        unary_stream = handler.unary_stream

        async def wrapped_unary_stream(request: Any, context: Any) -> AsyncIterator[Any]:
            async for response in unary_stream(await prepare(request, context), context):
                yield response

        return grpc.unary_stream_rpc_method_handler(wrapped_unary_stream, parse, serialize)
    unary_unary = handler.unary_unary

    async def wrapped_unary_unary(request: Any, context: Any) -> Any:
        return await unary_unary(await prepare(request, context), context)

    return grpc.unary_unary_rpc_method_handler(wrapped_unary_unary, parse, serialize)
