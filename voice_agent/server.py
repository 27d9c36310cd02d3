"""gRPC server scaffolding, written once for every service.

``run`` gives a service: logging, the Prometheus endpoint, the standard health
service (NOT_SERVING until the model has loaded), server reflection, stream
admission with bounded concurrency, and graceful shutdown on SIGTERM/SIGINT.
"""

from __future__ import annotations

import asyncio
import collections
import contextlib
import dataclasses
import logging
import random
import signal
import time
from collections.abc import AsyncIterable, AsyncIterator, Awaitable, Callable, Coroutine
from typing import Any, ClassVar, Generic, Protocol, TypeVar

import grpc
from google.protobuf.message import DecodeError
from grpc_health.v1 import health, health_pb2, health_pb2_grpc
from grpc_reflection.v1alpha import reflection

from voice_agent import metrics, telemetry, tls
from voice_agent.config import ServerConfig
from voice_agent.errors import (
    RETRY_AFTER_KEY,
    InvalidArgument,
    Metadata,
    ResourceExhausted,
    ServiceError,
    Unavailable,
)
from voice_agent.handlers import wrap_handler
from voice_agent.inference import InferencePool
from voice_agent.logs import setup_logging

log = logging.getLogger(__name__)

EventT = TypeVar("EventT")
#: Makes the response sent just before a status that ends a stream: the status's code, its
#: message and its trailing metadata (e.g. the retry hint).
LastEvent = Callable[[grpc.StatusCode, str, dict[str, str]], object]

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
    """Admits streams up to a limit (and a per-caller quota), once the service is ready, and maps errors.

    Use ``async with admission.stream(context):`` around a gRPC handler's body (``slot`` around any
    other front's). Refusals
    past a limit carry a retry hint (``retry-after-ms``) in their trailing metadata.
    On shutdown, ``drain`` refuses new streams and sets ``draining``, which long
    streams watch to end themselves where nothing is lost; ``end_remaining``
    then ends the rest with UNAVAILABLE and a message that says why.

    ``last_event``, where the method's responses can carry an error, makes the
    response that precedes every status that ends a stream here (see ``_fail``).
    """

    def __init__(
        self,
        label: str,
        limit: int,
        *,
        per_caller_limit: int = 0,
        retry_after_ms: int = 1000,
        last_event: LastEvent | None = None,
    ) -> None:
        self.label = label
        self.last_event = last_event
        self.limit = limit
        self.per_caller_limit = per_caller_limit  # 0: no quota
        self.retry_after_ms = retry_after_ms
        self.ready = False
        self.active = 0
        self.draining = asyncio.Event()
        self._by_caller: collections.Counter[str] = collections.Counter()
        self._tasks: set[asyncio.Task[object]] = set()
        self._ending = False
        self._idle = asyncio.Event()
        # Streams whose status is being sent (the last event, then the abort): their slot is already free,
        # but the server must not stop before they are done, or the client gets grpc's "Cancelling all calls".
        self._failing = 0
        self._failed = asyncio.Event()
        self._failed.set()
        metrics.init_service_metrics(label)

    @contextlib.asynccontextmanager
    async def slot(self, caller: str | None = None) -> AsyncIterator[None]:
        """A stream's place, for any front (gRPC or not): raises ServiceError when it is refused (draining,
        not ready, a limit: ResourceExhausted with the retry hint), and Unavailable when ``end_remaining``
        ends the stream; counts it meanwhile, also per caller."""
        self._admit(caller)
        self.active += 1
        self._idle.clear()
        if caller is not None:
            self._by_caller[caller] += 1
        metrics.ACTIVE_STREAMS.labels(self.label).inc()
        metrics.STREAMS.labels(self.label).inc()
        task = asyncio.current_task()
        if task is not None:
            self._tasks.add(task)
        try:
            yield
        except asyncio.CancelledError:
            if self._ending and task is not None and task.uncancel() == 0:  # ours, not the client's
                raise Unavailable(
                    f"{self.label} shut down before this stream ended (its drain time ran out); connect again",
                    trailing_metadata=((RETRY_AFTER_KEY, "0"),),
                ) from None
            metrics.ERRORS.labels(self.label, grpc.StatusCode.CANCELLED.name).inc()
            raise
        finally:
            self._tasks.discard(task)  # type: ignore[arg-type]
            self.active -= 1
            if not self.active:
                self._idle.set()
            if caller is not None:
                self._by_caller[caller] -= 1
                if not self._by_caller[caller]:
                    del self._by_caller[caller]
            metrics.ACTIVE_STREAMS.labels(self.label).dec()

    @contextlib.asynccontextmanager
    async def stream(self, context: grpc.aio.ServicerContext, caller: str | None = None) -> AsyncIterator[None]:
        """``slot`` for a gRPC handler: every error ends the call with its status (``_fail``)."""
        try:
            async with self.slot(caller):
                try:
                    yield
                except grpc.aio.AbortError:
                    raise
                except ServiceError as exc:
                    await self._fail(context, exc.code, str(exc), exc.trailing_metadata)
                except Exception as exc:  # a bug or a model failure: say so, and keep serving others
                    log.exception("%s stream failed", self.label)
                    await self._fail(
                        context, grpc.StatusCode.INTERNAL, f"{self.label} failed: {type(exc).__name__}: {exc}"
                    )
        except ServiceError as exc:  # refused, or ended by end_remaining
            await self._fail(context, exc.code, str(exc), exc.trailing_metadata)

    def _admit(self, caller: str | None) -> None:
        if self.draining.is_set():
            raise Unavailable(f"{self.label} is shutting down; connect again (to another replica)")
        if not self.ready:
            raise Unavailable(f"{self.label} is loading its model; retry shortly")
        if self.active >= self.limit:
            self._refuse(f"{self.label} is serving its limit of {self.limit} streams")
        if caller is not None and self.per_caller_limit and self._by_caller[caller] >= self.per_caller_limit:
            self._refuse(f"this credential already has its quota of {self.per_caller_limit} streams open")

    def _refuse(self, message: str) -> None:
        # Jitter spreads the retries of many refused clients instead of sending them back together.
        retry_after_ms = int(self.retry_after_ms * random.uniform(1.0, 1.5))
        raise ResourceExhausted(
            f"{message}; retry in {retry_after_ms} ms", trailing_metadata=((RETRY_AFTER_KEY, str(retry_after_ms)),)
        )

    def count_error(self, code: grpc.StatusCode, message: str) -> None:
        """A stream that a front other than gRPC ended with an error: counted and logged as ``_fail`` does."""
        metrics.ERRORS.labels(self.label, code.name).inc()
        log.info("%s stream ended: %s %s", self.label, code.name, message)

    def drain(self) -> None:
        """New streams get UNAVAILABLE from now on; streams that watch ``draining`` end where nothing is lost."""
        self.draining.set()

    async def wait_idle(self, timeout_s: float) -> bool:
        """Waits until no stream is left, up to the timeout; True if none is."""
        if self.active:
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._idle.wait(), timeout_s)
        return not self.active

    def end_remaining(self) -> None:
        """Ends every stream still open, each with UNAVAILABLE saying that the server shut down."""
        self._ending = True
        for task in list(self._tasks):
            task.cancel()

    async def end(self, context: grpc.aio.ServicerContext, error: ServiceError) -> None:
        """Ends a stream with ``error`` before it is admitted (a failed authentication)."""
        await self._fail(context, error.code, str(error), error.trailing_metadata)

    async def _fail(
        self, context: grpc.aio.ServicerContext, code: grpc.StatusCode, message: str, trailing: Metadata = ()
    ) -> None:
        self.count_error(code, message)
        self._failing += 1
        self._failed.clear()
        try:
            if self.last_event is not None:
                # grpc/grpc#36066: a client still writing when the stream ends may get a made-up
                # INTERNAL instead of this status; a response sent before it arrives either way.
                # Bounded: a client that stopped reading must not hold the status back.
                try:
                    await asyncio.wait_for(context.write(self.last_event(code, message, dict(trailing))), 1.0)
                except Exception as error:  # the client is gone or stuck: the status below is all there is to do
                    log.debug("%s: the last event was not sent: %s", self.label, error)
            await context.abort(code, message, trailing_metadata=trailing)
        finally:
            self._failing -= 1
            if not self._failing:
                self._failed.set()

    async def wait_statuses_sent(self, timeout_s: float) -> None:
        """Waits, up to the timeout, until every stream being ended has been sent its status."""
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self._failed.wait(), timeout_s)


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
RequestT = TypeVar("RequestT")


@dataclasses.dataclass
class Started:
    """A stream's work, begun by its opener (see ``serve_stream``)."""

    #: Feeds and finishes the stream: when it returns the stream ends, when it raises it fails.
    work: Coroutine[Any, Any, object]
    #: Frees what the stream holds (model work in flight); runs however the call ends.
    close: Callable[[], None]
    #: Runs beside the work until the call ends, e.g. to end the stream on a drain.
    watch: Coroutine[Any, Any, object] | None = None


#: Opens a stream: gets its first request, the requests after it, and the events to put its responses in.
Opener = Callable[[RequestT, AsyncIterator[RequestT], EventStream[EventT]], Awaitable[Started]]


async def serve_stream(
    admission: StreamAdmission,
    context: Context,
    requests: AsyncIterable[RequestT],
    open_stream: Opener[RequestT, EventT],
    *,
    missing: str,
    caller: str | None = None,
) -> AsyncIterator[EventT]:
    """A streaming method's skeleton, written once: admission, the first request (none: INVALID_ARGUMENT
    ``missing``), ``open_stream``, then the stream's events until its work ends. Errors map to
    statuses in the admission; the work is stopped and the stream closed however the call ends."""
    async with admission.stream(context, caller):
        rest = aiter(requests)
        first = await anext(rest, None)
        if first is None:
            raise InvalidArgument(missing)
        events: EventStream[EventT] = EventStream()
        started = await open_stream(first, rest, events)
        tasks = [asyncio.create_task(events.close_after(started.work))]
        if started.watch is not None:
            tasks.append(asyncio.create_task(started.watch))
        try:
            async for event in events:
                yield event
        finally:
            for task in tasks:
                task.cancel()
            started.close()


async def single(request: RequestT) -> AsyncIterator[RequestT]:
    """A unary method's request as the stream ``serve_stream`` reads."""
    yield request


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
        parse = handler.request_deserializer

        def deserialize(data: bytes) -> object:
            try:
                return parse(data)
            except DecodeError as error:
                return MalformedRequest(error)

        streaming = handler.request_streaming

        async def check(request: object, context: Context) -> object:
            if streaming:
                return _checked(request)  # type: ignore[arg-type]
            if isinstance(request, MalformedRequest):
                await context.abort(grpc.StatusCode.INVALID_ARGUMENT, str(request.as_error()))
            return request

        return wrap_handler(handler, check, request_deserializer=deserialize)


def connection_age_options(max_age_s: float) -> list[tuple[str, int]]:
    if max_age_s <= 0:
        return []
    # A day of grace: a conversation's stream is never cut by the reconnect request.
    return [("grpc.max_connection_age_ms", int(max_age_s * 1000)), ("grpc.max_connection_age_grace_ms", 86_400_000)]


def transport_interceptors(config: ServerConfig) -> list[grpc.aio.ServerInterceptor]:
    """With a plaintext health port beside a TLS port, plaintext calls may only check health."""
    return [tls.PlaintextHealthOnly()] if config.health_port else []


def bind(server: grpc.aio.Server, config: ServerConfig, label: str) -> None:
    """Binds the gRPC port: TLS (mTLS with a client CA) when a certificate is configured, else
    plaintext; and the plaintext health port, if any. Unreadable credentials stop the process."""
    try:
        if config.tls_cert_file:
            credentials = tls.server_credentials(config.tls_cert_file, config.tls_key_file, config.tls_client_ca_file)
            bound = server.add_secure_port(config.address, credentials)
        else:
            bound = server.add_insecure_port(config.address)
    except ValueError as error:
        raise SystemExit(f"{label}: {error}") from error
    if bound == 0:
        raise SystemExit(f"{label}: cannot bind {config.address}")
    health_address = f"{config.host}:{config.health_port}"
    if config.health_port and server.add_insecure_port(health_address) == 0:
        raise SystemExit(f"{label}: cannot bind {health_address}")


async def serve(config: ServerConfig, service: Service) -> None:
    """Serves until SIGTERM or SIGINT, then drains for ``shutdown_grace_s``."""
    admission, label = service.admission, service.admission.label
    metrics.start_metrics_server(config.host, config.metrics_port)
    telemetry.setup_tracing(f"voice-{label}")
    server = grpc.aio.server(
        # The plaintext health port's guard first (a refused call does no work), then tracing:
        # a malformed request still leaves a span with its error.
        interceptors=[*transport_interceptors(config), *telemetry.server_interceptors(), MalformedRequestInterceptor()],
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
    bind(server, config, label)
    await server.start()
    log.info(
        "%s listening on %s, %s%s (metrics on :%s)",
        label,
        config.address,
        config.tls_mode,
        f", plaintext health checks on :{config.health_port}" if config.health_port else "",
        config.metrics_port or "off",
    )

    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    metrics.track_event_loop(label, loop)
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

    await _drain(server, health_servicer, admission, config.shutdown_grace_s)
    load.cancel()
    await service.close()
    telemetry.shutdown_tracing()
    log.info("%s stopped", label)


async def _drain(
    server: grpc.aio.Server, health_servicer: health.aio.HealthServicer, admission: StreamAdmission, grace_s: float
) -> None:
    """Graceful shutdown: NOT_SERVING and no new streams at once; the streams in flight get
    ``grace_s`` to finish (long ones end themselves where nothing is lost); the rest are ended
    with a status that says why. Then the server stops."""
    log.info("%s shutting down: draining %d streams for up to %.1f s", admission.label, admission.active, grace_s)
    admission.drain()
    await health_servicer.enter_graceful_shutdown()
    if not await admission.wait_idle(grace_s):
        log.warning("%s: %d streams still open after %.1f s; ending them", admission.label, admission.active, grace_s)
        admission.end_remaining()
        await admission.wait_idle(2.0)
    await admission.wait_statuses_sent(2.0)
    await server.stop(1.0)


def run(config: ServerConfig, service: Service) -> None:
    setup_logging(config.log_level, config.log_format)
    asyncio.run(serve(config, service))
