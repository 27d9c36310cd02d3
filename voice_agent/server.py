"""gRPC server scaffolding, written once for every service.

``run`` gives a service: logging, the Prometheus endpoint, the standard health
service (NOT_SERVING until the model has loaded), server reflection, stream
admission with bounded concurrency, and graceful shutdown on SIGTERM/SIGINT.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import signal
import time
from collections.abc import AsyncIterable, AsyncIterator, Awaitable, Callable
from typing import ClassVar, Generic, Protocol, TypeVar

import grpc
from google.protobuf.message import DecodeError
from grpc_health.v1 import health, health_pb2, health_pb2_grpc
from grpc_reflection.v1alpha import reflection

from voice_agent import metrics, telemetry
from voice_agent.config import ServerConfig
from voice_agent.errors import InvalidArgument, ServiceError
from voice_agent.inference import InferencePool
from voice_agent.logs import setup_logging

log = logging.getLogger(__name__)

EventT = TypeVar("EventT")

# Large enough for a second of 48 kHz PCM16 plus framing, small enough that a
# client cannot make the server buffer much: bigger messages get RESOURCE_EXHAUSTED.
MAX_MESSAGE_BYTES = 256 * 1024


class Service(Protocol):
    """What ``run`` needs from a service."""

    #: Fully qualified gRPC service name, e.g. ``voice_agent.v1.Asr``.
    service_name: str
    #: Admits the service's streams; its label names the service in logs and metrics.
    admission: StreamAdmission

    def register(self, server: grpc.aio.Server) -> None: ...

    async def load(self) -> None:
        """Loads models; the server already answers health checks meanwhile."""

    async def close(self) -> None: ...


class StreamAdmission:
    """Admits streams up to a limit, once the service is ready, and maps errors.

    Use ``async with admission.stream(context):`` around a handler's body.
    """

    def __init__(self, label: str, limit: int) -> None:
        self.label = label
        self.limit = limit
        self.ready = False
        self.active = 0
        metrics.init_service_metrics(label)

    @contextlib.asynccontextmanager
    async def stream(self, context: grpc.aio.ServicerContext) -> AsyncIterator[None]:
        if not self.ready:
            await self._fail(context, grpc.StatusCode.UNAVAILABLE, f"{self.label} is loading its model; retry shortly")
        if self.active >= self.limit:
            await self._fail(
                context,
                grpc.StatusCode.RESOURCE_EXHAUSTED,
                f"{self.label} is serving its limit of {self.limit} streams",
            )
        self.active += 1
        metrics.ACTIVE_STREAMS.labels(self.label).inc()
        metrics.STREAMS.labels(self.label).inc()
        try:
            yield
        except grpc.aio.AbortError:
            raise
        except ServiceError as exc:
            await self._fail(context, exc.code, str(exc))
        except Exception as exc:  # a bug or a model failure: say so, and keep serving others
            log.exception("%s stream failed", self.label)
            await self._fail(context, grpc.StatusCode.INTERNAL, f"{self.label} failed: {type(exc).__name__}: {exc}")
        except asyncio.CancelledError:
            metrics.ERRORS.labels(self.label, grpc.StatusCode.CANCELLED.name).inc()
            raise
        finally:
            self.active -= 1
            metrics.ACTIVE_STREAMS.labels(self.label).dec()

    async def _fail(self, context: grpc.aio.ServicerContext, code: grpc.StatusCode, message: str) -> None:
        metrics.ERRORS.labels(self.label, code.name).inc()
        log.info("%s stream ended: %s %s", self.label, code.name, message)
        await context.abort(code, message)


class ModelService:
    """Base of a service whose streams share one loaded model through a bounded
    inference pool: admission, the pool, and closing it."""

    label: ClassVar[str]

    def __init__(self, config: ServerConfig, workers: int) -> None:
        self.config = config
        self.admission = StreamAdmission(self.label, config.max_streams)
        self.pool = InferencePool(workers, self.label)

    async def close(self) -> None:
        self.pool.shutdown()


class EventStream(Generic[EventT]):
    """Events that background tasks produce for a handler to yield, in order.

    ``put`` queues an event, ``fail`` ends the stream with an error (raised in
    the handler after the events before it), ``close`` ends it normally.
    """

    _END = object()

    def __init__(self) -> None:
        self._queue: asyncio.Queue[object] = asyncio.Queue()

    def put(self, event: EventT) -> None:
        self._queue.put_nowait(event)

    def fail(self, error: BaseException) -> None:
        self._queue.put_nowait(error)

    def close(self) -> None:
        self._queue.put_nowait(self._END)

    async def close_after(self, work: Awaitable[object]) -> None:
        """Awaits ``work``, then ends the stream: normally, or with the error it raised
        (a bug or a model failure ends the stream rather than leaving it hanging)."""
        try:
            await work
        except Exception as error:
            self.fail(error)
            return
        self.close()

    async def __aiter__(self) -> AsyncIterator[EventT]:
        while (item := await self._queue.get()) is not self._END:
            if isinstance(item, BaseException):
                raise item
            yield item  # type: ignore[misc]


Context = grpc.aio.ServicerContext


class MalformedRequest:
    """Stands in for a request whose bytes are no valid protobuf message."""

    def __init__(self, error: DecodeError) -> None:
        self.error = error

    def as_error(self) -> InvalidArgument:
        return InvalidArgument(f"a message is not a valid request of this method: {self.error}")


async def _checked(requests: AsyncIterable[object]) -> AsyncIterator[object]:
    async for request in requests:
        if isinstance(request, MalformedRequest):
            raise request.as_error()
        yield request


class MalformedRequestInterceptor(grpc.aio.ServerInterceptor):
    """Bytes that do not parse as the method's request get INVALID_ARGUMENT.

    grpc reports a failed parse as UNKNOWN; here the parse never raises, and
    the handler meets a MalformedRequest instead: a unary method aborts at
    once, and a stream raises InvalidArgument where the bad message arrives,
    after the work on the messages before it.
    """

    async def intercept_service(
        self,
        continuation: Callable[[grpc.HandlerCallDetails], Awaitable[grpc.RpcMethodHandler]],
        handler_call_details: grpc.HandlerCallDetails,
    ) -> grpc.RpcMethodHandler:
        handler = await continuation(handler_call_details)
        if handler is None or handler.request_deserializer is None:
            return handler
        parse, serialize = handler.request_deserializer, handler.response_serializer

        def deserialize(data: bytes) -> object:
            try:
                return parse(data)
            except DecodeError as error:
                return MalformedRequest(error)

        # grpc tells generator handlers from coroutine ones by their function type,
        # so each shape gets a wrapper of its own kind.
        if handler.request_streaming and handler.response_streaming:
            stream_stream = handler.stream_stream

            async def checked_stream_stream(requests: AsyncIterable[object], context: Context) -> AsyncIterator[object]:
                async for response in stream_stream(_checked(requests), context):
                    yield response

            return grpc.stream_stream_rpc_method_handler(checked_stream_stream, deserialize, serialize)
        if handler.request_streaming:
            stream_unary = handler.stream_unary

            async def checked_stream_unary(requests: AsyncIterable[object], context: Context) -> object:
                return await stream_unary(_checked(requests), context)

            return grpc.stream_unary_rpc_method_handler(checked_stream_unary, deserialize, serialize)
        if handler.response_streaming:
            unary_stream = handler.unary_stream

            async def checked_unary_stream(request: object, context: Context) -> AsyncIterator[object]:
                if isinstance(request, MalformedRequest):
                    await context.abort(grpc.StatusCode.INVALID_ARGUMENT, str(request.as_error()))
                async for response in unary_stream(request, context):
                    yield response

            return grpc.unary_stream_rpc_method_handler(checked_unary_stream, deserialize, serialize)
        unary_unary = handler.unary_unary

        async def checked_unary_unary(request: object, context: Context) -> object:
            if isinstance(request, MalformedRequest):
                await context.abort(grpc.StatusCode.INVALID_ARGUMENT, str(request.as_error()))
            return await unary_unary(request, context)

        return grpc.unary_unary_rpc_method_handler(checked_unary_unary, deserialize, serialize)


def connection_age_options(max_age_s: float) -> list[tuple[str, int]]:
    if max_age_s <= 0:
        return []
    # A day of grace: a conversation's stream is never cut by the reconnect request.
    return [("grpc.max_connection_age_ms", int(max_age_s * 1000)), ("grpc.max_connection_age_grace_ms", 86_400_000)]


async def serve(config: ServerConfig, service: Service) -> None:
    """Serves until SIGTERM or SIGINT, then drains for ``shutdown_grace_s``."""
    admission, label = service.admission, service.admission.label
    metrics.start_metrics_server(config.host, config.metrics_port)
    telemetry.setup_tracing(f"voice-{label}")
    server = grpc.aio.server(
        # Tracing first: a malformed request still leaves a span with its error.
        interceptors=[*telemetry.server_interceptors(), MalformedRequestInterceptor()],
        options=[
            ("grpc.max_receive_message_length", MAX_MESSAGE_BYTES),
            ("grpc.so_reuseport", 0),
            # Proxies (Envoy) and clients may PING every 10 s to find dead peers, also between
            # turns; grpc-core's default would end the connection (too_many_pings) under 5 min.
            ("grpc.http2.min_ping_interval_without_data_ms", 10_000),
            ("grpc.keepalive_permit_without_calls", 1),
            *connection_age_options(config.max_connection_age_s),
        ],
    )
    health_servicer = health.aio.HealthServicer()
    health_pb2_grpc.add_HealthServicer_to_server(health_servicer, server)
    service.register(server)
    reflection.enable_server_reflection(
        (service.service_name, health_pb2.DESCRIPTOR.services_by_name["Health"].full_name, reflection.SERVICE_NAME),
        server,
    )
    for name in ("", service.service_name):
        await health_servicer.set(name, health_pb2.HealthCheckResponse.NOT_SERVING)
    if server.add_insecure_port(config.address) == 0:
        raise SystemExit(f"{label}: cannot bind {config.address}")
    await server.start()
    log.info("%s listening on %s (metrics on :%s)", label, config.address, config.metrics_port or "off")

    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)

    started = time.perf_counter()
    load = asyncio.create_task(service.load())
    await asyncio.wait([load, asyncio.create_task(stop.wait())], return_when=asyncio.FIRST_COMPLETED)
    if load.done():
        load.result()  # a failed load ends the process with its error
        admission.ready = True
        for name in ("", service.service_name):
            await health_servicer.set(name, health_pb2.HealthCheckResponse.SERVING)
        log.info("%s ready in %.2f s", label, time.perf_counter() - started)
        await stop.wait()

    log.info("%s shutting down: draining %d streams for up to %.1f s", label, admission.active, config.shutdown_grace_s)
    await health_servicer.enter_graceful_shutdown()
    load.cancel()
    await server.stop(config.shutdown_grace_s)
    await service.close()
    telemetry.shutdown_tracing()
    log.info("%s stopped", label)


def run(config: ServerConfig, service: Service) -> None:
    setup_logging(config.log_level, config.log_format)
    asyncio.run(serve(config, service))
