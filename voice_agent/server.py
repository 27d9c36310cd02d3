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
from collections.abc import AsyncIterable, AsyncIterator
from typing import Generic, Protocol, TypeVar

import grpc
from google.protobuf.message import DecodeError
from grpc_health.v1 import health, health_pb2, health_pb2_grpc
from grpc_reflection.v1alpha import reflection

from voice_agent import metrics
from voice_agent.config import ServerConfig
from voice_agent.errors import InvalidArgument, ServiceError
from voice_agent.logs import setup_logging

log = logging.getLogger(__name__)

RequestT = TypeVar("RequestT")
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

    async def __aiter__(self) -> AsyncIterator[EventT]:
        while (item := await self._queue.get()) is not self._END:
            if isinstance(item, BaseException):
                raise item
            yield item  # type: ignore[misc]


async def parsed(requests: AsyncIterable[RequestT], message: str) -> AsyncIterator[RequestT]:
    """The request stream, with bytes that are no valid ``message`` turned into INVALID_ARGUMENT
    (grpc would report the parse error as UNKNOWN)."""
    iterator = aiter(requests)
    while True:
        try:
            request = await anext(iterator)
        except StopAsyncIteration:
            return
        except DecodeError as error:
            raise InvalidArgument(f"a message is not a valid {message}: {error}") from error
        yield request


async def serve(config: ServerConfig, service: Service) -> None:
    """Serves until SIGTERM or SIGINT, then drains for ``shutdown_grace_s``."""
    admission, label = service.admission, service.admission.label
    metrics.start_metrics_server(config.host, config.metrics_port)
    server = grpc.aio.server(
        options=[
            ("grpc.max_receive_message_length", MAX_MESSAGE_BYTES),
            ("grpc.so_reuseport", 0),
        ]
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
    log.info("%s stopped", label)


def run(config: ServerConfig, service: Service) -> None:
    setup_logging(config.log_level, config.log_format)
    asyncio.run(serve(config, service))
