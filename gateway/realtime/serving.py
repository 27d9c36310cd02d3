"""The gateway's HTTP port: the OpenAI Realtime-compatible WebSocket API, the browser page, /healthz.

``GET /v1/realtime`` upgrades to a WebSocket that holds one conversation, as a ``Converse`` stream
does: the same credentials (gateway/auth.py), the same admission (one ``StreamAdmission``, so that
``max_streams`` and the per-caller quota count both fronts), the same conversation core, limits,
drain, metrics and traces (gateway/app.py holds them). protocol.py reads the client's events and
server_events.py writes the server's; this module does the I/O.

Close codes: 1000 a session limit (length, idleness) after an ``error`` event; 1001 the gateway
shuts down (after an ``error`` event); 1008 bad credentials where the refusal could not be an HTTP
401; 1009 a frame over ``http_max_frame_bytes``; 1011 a bug; 1013 a capacity limit or a gateway
not ready yet (after an ``error`` event with ``retry_after_ms``).
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import json
import logging
import weakref
from collections.abc import AsyncIterator
from pathlib import Path
from typing import TYPE_CHECKING, Any

import grpc
from aiohttp import WSCloseCode, WSMsgType, web

from gateway import events
from gateway.auth import ANONYMOUS, Authenticator
from gateway.conversation import Conversation
from gateway.limits import GUARD_INTERVAL_S, Limits
from gateway.realtime import protocol, server_events
from gateway.records.ids import new_conversation_id
from gateway.records.serving import ConversationsHttp
from gateway.records.sessions import Resumed
from gateway.session_settings import SessionSettings, settings_for
from voice_agent.errors import (
    RETRY_AFTER_KEY,
    DeadlineExceeded,
    InvalidArgument,
    ResourceExhausted,
    ServiceError,
    Unauthenticated,
    Unavailable,
)

if TYPE_CHECKING:
    from gateway.app import GatewayApp

log = logging.getLogger(__name__)

WEB_DIR = Path(__file__).resolve().parent.parent / "web"
#: The browser's form of credentials: a WebSocket subprotocol, as OpenAI's browser clients send it.
KEY_PROTOCOL_PREFIX = "openai-insecure-api-key."
CLOSE_REASON_BYTES = 123  # a close frame's reason, at most
#: ``GET /v1/realtime?resume=ID``: resume the caller's dropped conversation (docs/conversations.md#resume).
RESUME_PARAMETER = "resume"
HTTP_STATUS = {grpc.StatusCode.NOT_FOUND: 404, grpc.StatusCode.INVALID_ARGUMENT: 400, grpc.StatusCode.UNAVAILABLE: 503}


class Closing(Exception):
    """Ends a socket: the error event to send, then the close code and reason."""

    def __init__(self, code: int, reason: str, event: dict[str, Any] | None = None) -> None:
        super().__init__(reason)
        self.code = code
        self.reason = reason
        self.event = event


class HttpServer:
    """The aiohttp app on ``http_port``: started by GatewayApp.load(), stopped by its close()."""

    def __init__(self, gateway: GatewayApp) -> None:
        self.gateway = gateway
        self.sockets: weakref.WeakSet[web.WebSocketResponse] = weakref.WeakSet()
        self.app = web.Application()
        self.app.router.add_get("/healthz", self.healthz)
        self.app.router.add_get("/v1/realtime", self.realtime)
        ConversationsHttp(gateway).add_routes(self.app)  # /v1/conversations (gateway/records/serving.py)
        self.app.router.add_get("/", self.index)
        if WEB_DIR.is_dir():
            self.app.router.add_static("/", WEB_DIR)
        self._runner: web.AppRunner | None = None

    async def start(self) -> None:
        config = self.gateway.config
        self._runner = web.AppRunner(self.app, handle_signals=False, access_log=None)
        await self._runner.setup()
        site = web.TCPSite(self._runner, config.host, config.http_port, shutdown_timeout=1.0)
        try:
            await site.start()
        except OSError as error:
            await self._runner.cleanup()
            raise SystemExit(f"gateway: cannot bind HTTP port {config.host}:{config.http_port}: {error}") from error
        log.info("Realtime WebSocket API on ws://%s:%d/v1/realtime, browser page on /", config.host, config.http_port)

    async def close(self) -> None:
        for socket in list(self.sockets):
            with contextlib.suppress(Exception):
                await socket.close(code=WSCloseCode.GOING_AWAY, message=b"the gateway is shutting down")
        if self._runner is not None:
            await self._runner.cleanup()

    async def healthz(self, request: web.Request) -> web.Response:
        admission = self.gateway.admission
        if admission.ready and not admission.draining.is_set():
            return web.Response(text="ok\n")
        return web.Response(status=503, text="draining\n" if admission.draining.is_set() else "loading\n")

    async def index(self, request: web.Request) -> web.StreamResponse:
        page = WEB_DIR / "index.html"
        if not page.is_file():
            raise web.HTTPNotFound()
        return web.FileResponse(page)

    async def realtime(self, request: web.Request) -> web.StreamResponse:
        gateway = self.gateway
        try:
            caller = authenticate(gateway.auth, request)
        except Unauthenticated as error:  # before the upgrade, and before a session slot is taken
            gateway.admission.count_error(error.code, str(error))
            body = server_events.error_event(str(error), code="invalid_api_key")
            return web.json_response(body, status=401, headers={"WWW-Authenticate": "Bearer"})
        resume = request.query.get(RESUME_PARAMETER, "")
        caller_name = caller or ANONYMOUS.name
        resumed = None
        try:  # before the upgrade, as a refusal of credentials is: an HTTP status and the error's JSON
            resumed = await gateway.records.resume(resume, caller_name) if resume else None
        except ServiceError as error:
            gateway.admission.count_error(error.code, str(error))
            status = HTTP_STATUS.get(error.code, 500)
            return web.json_response(server_events.error_event(str(error), code=error.code.name), status=status)
        offered = {p.strip() for p in request.headers.get("Sec-WebSocket-Protocol", "").split(",")}
        socket = web.WebSocketResponse(
            protocols=("realtime",) if "realtime" in offered else (),
            max_msg_size=gateway.config.limits.http_max_frame_bytes,
            heartbeat=30.0,
        )
        await socket.prepare(request)
        self.sockets.add(socket)
        session = Session(gateway, socket, request.query.get("model", "voice-agent"), caller_name, resumed)
        try:
            async with gateway.admission.slot(caller):
                await session.run()
        except ServiceError as error:  # refused, or ended by the drain's end
            await session.close_for(error)
        except Closing as closing:
            await session.close_with(closing)
        except Exception as error:  # a bug: this socket ends, the gateway goes on
            log.exception("realtime session failed")
            gateway.admission.count_error(grpc.StatusCode.INTERNAL, str(error))
            event = server_events.error_event(f"the gateway failed: {type(error).__name__}", kind="server_error")
            await session.close_with(Closing(WSCloseCode.INTERNAL_ERROR, "internal error", event))
        finally:
            await session.stop()
        return socket


def authenticate(auth: Authenticator | None, request: web.Request) -> str | None:
    """The caller's name (None: auth is off); raises Unauthenticated."""
    if auth is None:
        return None
    metadata = [("authorization", value) for value in request.headers.getall("Authorization", [])]
    if not metadata:
        for offered in request.headers.get("Sec-WebSocket-Protocol", "").split(","):
            if offered.strip().startswith(KEY_PROTOCOL_PREFIX):
                metadata = [("authorization", "Bearer " + offered.strip()[len(KEY_PROTOCOL_PREFIX) :])]
    if not metadata:
        raise Unauthenticated(
            "missing credentials: send 'Authorization: Bearer <key>' or the subprotocol 'openai-insecure-api-key.<key>'"
        )
    return auth.authenticate(metadata).name


class Session:
    """One socket: its session, its conversation (started on the first input), its events."""

    def __init__(
        self,
        gateway: GatewayApp,
        socket: web.WebSocketResponse,
        model: str,
        caller: str = ANONYMOUS.name,
        resumed: Resumed | None = None,
    ) -> None:
        self.gateway = gateway
        self.config = gateway.config
        self.socket = socket
        self.model = model
        self.caller = caller
        self.resumed = resumed
        # The session's id is its conversation's: to resume it by (?resume=ID).
        self.session_id = resumed.record.conversation_id if resumed is not None else new_conversation_id()
        self.choices = protocol.initial_choices()
        if resumed is not None:  # the choices it began with, at the Realtime API's one audio rate
            self.choices = dataclasses.replace(
                resumed.session.choices,
                input_sample_rate=protocol.SAMPLE_RATE,
                output_sample_rate=protocol.SAMPLE_RATE,
            )
        self.settings: SessionSettings = settings_for(self.choices, self.config)
        self.translator = server_events.Translator(conversation_id=self.session_id)
        self.conversation: Conversation | None = None
        self._conversation_task: asyncio.Task[None] | None = None
        self.inputs: asyncio.Queue[events.Input | None] = asyncio.Queue()
        self.outbox: asyncio.Queue[dict[str, Any] | None] = asyncio.Queue()
        self._event_ids = 0
        self.memory = ""
        self._tasks: list[asyncio.Task[Any]] = []
        self._writer = asyncio.create_task(self._write())
        # One Limits from the socket's opening: watched here until the conversation starts, then by it.
        self.limits = Limits(self.config.limits, self.config.backends.backend_timeout_s, gateway.admission.draining)

    # ---- the loop

    async def run(self) -> None:
        """Until the client goes, or a limit or the drain ends the conversation (raised)."""
        if self.resumed is None:  # what the coach knows of the caller's earlier conversations
            records = self.gateway.records
            self.memory = await records.memory_for(self.caller, records.session(self.choices, record=None, memory=None))
        self.send({"type": "session.created", "session": self._session()})
        reader = asyncio.create_task(self._read())
        unstarted = asyncio.create_task(self._watch_unstarted())
        self._tasks += [reader, unstarted]
        await asyncio.wait([reader, unstarted], return_when=asyncio.FIRST_COMPLETED)
        if not reader.done():
            unstarted.result()  # raises the drain or the idle limit; else the conversation started
            assert self._conversation_task is not None
            await asyncio.wait([reader, self._conversation_task], return_when=asyncio.FIRST_COMPLETED)
            if not reader.done():
                self._conversation_task.result()  # raises the limit or the drain that ended it
                return
        reader.result()  # raises Closing on a frame over the limit; else the client went away

    async def _watch_unstarted(self) -> None:
        """Before the conversation starts, its limits (the drain, idleness) are watched here; then by the
        conversation. Returns when it starts."""
        while self.conversation is None:
            self.limits.check(busy=False)
            await asyncio.sleep(GUARD_INTERVAL_S)

    async def _read(self) -> None:
        async for message in self.socket:
            if message.type == WSMsgType.TEXT:
                await self._handle(message.data)
            elif message.type == WSMsgType.BINARY:
                self.send(server_events.error_event("binary frames are not events: send JSON text frames"))
            elif message.type == WSMsgType.ERROR:
                if self.socket.close_code == WSCloseCode.MESSAGE_TOO_BIG:
                    limit = self.config.limits.http_max_frame_bytes
                    raise Closing(WSCloseCode.MESSAGE_TOO_BIG, f"a frame is over the limit of {limit} bytes")
                return

    async def _handle(self, frame: str) -> None:
        self.limits.activity()
        try:
            event = protocol.parse(frame)
            await self._apply(event)
        except protocol.ClientError as error:
            self.send(server_events.error_event(str(error), event_id=error.event_id, param=error.param))
        except InvalidArgument as error:
            self.send(server_events.error_event(str(error), event_id=_event_id(frame)))

    async def _apply(self, event: protocol.ClientEvent) -> None:
        action = event.action
        if isinstance(action, protocol.SessionUpdate):
            await self._update(action, event.event_id)
            return
        if isinstance(action, protocol.ClearAudio):
            # The audio appended so far is already with the ASR (server VAD): there is nothing to take back.
            self.send({"type": "input_audio_buffer.cleared"})
            return
        if isinstance(action, protocol.TruncateItem):  # conversation.item.truncated comes from the core
            try:
                self.inputs.put_nowait(self.translator.truncation(action.item_id, action.audio_end_ms))
            except protocol.ClientError as error:
                error.event_id = event.event_id
                raise
            return
        self._start()
        if isinstance(action, protocol.CreateItem):
            text = action.text_in.text
            if (problem := self.config.limits.typed_text_error(text.strip())) is not None:
                raise protocol.ClientError(problem, event_id=event.event_id, param="item.content")
            for message in self.translator.user_text(action.item_id, text):
                self.send(message)
            self.inputs.put_nowait(action.text_in)
        elif isinstance(action, events.AudioIn):
            chunk = self.settings.input_sample_rate * 2 * self.config.limits.max_chunk_ms // 1000
            for start in range(0, len(action.pcm), chunk):
                piece = action.pcm[start : start + chunk]
                self.inputs.put_nowait(events.AudioIn(piece))
        elif isinstance(action, events.CancelReply):
            if not self.translator.responding:
                raise protocol.ClientError("no response is in progress to cancel", event_id=event.event_id)
            self.translator.cancel_requested()
            self.inputs.put_nowait(action)
        else:
            self.inputs.put_nowait(action)  # type: ignore[arg-type]

    async def _update(self, update: protocol.SessionUpdate, event_id: str | None) -> None:
        choices = update.apply(self.choices)
        if self.conversation is not None:
            changed = protocol.changed_fields(self.choices, choices)
            if changed:
                raise protocol.ClientError(
                    f"{', '.join(changed)} cannot change once the conversation has started", event_id=event_id
                )
        else:
            settings = settings_for(choices, self.config)  # InvalidArgument names the problem
            await self.gateway.check_voice(settings.voice if choices.voice else "")
            self.choices, self.settings = choices, settings
        self.send({"type": "session.updated", "session": self._session()})

    def _start(self) -> None:
        """The conversation, on the first input: with the session as the client set it up so far."""
        if self.conversation is not None:
            return
        records, settings, resumption = self.gateway.records, self.settings, None
        if self.resumed is not None:
            settings = dataclasses.replace(settings, system_prompt=self.resumed.record.header.persona)
            recorder, resumption = records.resumed(self.resumed), self.resumed.resumption
        else:
            session = records.session(self.choices, record=None, memory=None)
            settings = dataclasses.replace(settings, system_prompt=settings.system_prompt + self.memory)
            recorder = records.begin(self.session_id, self.caller, session, settings.system_prompt)
        self.conversation = Conversation(
            self.config,
            settings,
            self.gateway.backends,
            self._emit,
            limits=self.limits,
            conversation_id=self.session_id,
            recorder=recorder,
            resumption=resumption,
        )
        run = records.serving_run(self.session_id, self.conversation.run(self._inputs()))
        self._conversation_task = asyncio.create_task(run)
        self._tasks.append(self._conversation_task)

    async def _inputs(self) -> AsyncIterator[events.Input]:
        while (item := await self.inputs.get()) is not None:
            yield item

    def _emit(self, event: events.Event) -> None:
        for message in self.translator.translate(event):
            self.send(message)

    def _session(self) -> dict[str, Any]:
        return server_events.session_object(self.session_id, self.model, self.choices, self.settings)

    # ---- sending and closing

    def send(self, message: dict[str, Any]) -> None:
        self._event_ids += 1
        self.outbox.put_nowait({"event_id": f"event_{self._event_ids}", **message})

    async def _write(self) -> None:
        while (message := await self.outbox.get()) is not None:
            if self.socket.closed:
                continue
            try:
                await self.socket.send_str(json.dumps(message))
            except (ConnectionError, RuntimeError):  # the client is gone
                continue

    async def close_for(self, error: ServiceError) -> None:
        """Ends the socket with a status's error: its event, then the close code that fits it."""
        self.gateway.admission.count_error(error.code, str(error))
        trailing = dict(error.trailing_metadata)
        hint = trailing.get(RETRY_AFTER_KEY)
        retry_after_ms = int(hint) if hint and hint.isdigit() else None
        if isinstance(error, Unavailable) and self.gateway.admission.draining.is_set():
            code, kind = WSCloseCode.GOING_AWAY, "server_error"  # the drain, or its end
        elif isinstance(error, ResourceExhausted | Unavailable):
            code, kind = WSCloseCode.TRY_AGAIN_LATER, "server_error"
        elif isinstance(error, DeadlineExceeded):
            code, kind = WSCloseCode.OK, "session_expired"
        else:
            code, kind = WSCloseCode.POLICY_VIOLATION, "invalid_request_error"
        event = server_events.error_event(str(error), kind=kind, code=error.code.name, retry_after_ms=retry_after_ms)
        await self.close_with(Closing(code, str(error), event))

    async def close_with(self, closing: Closing) -> None:
        if closing.event is not None:
            self.send(closing.event)
        await self._flush()
        reason = closing.reason.encode()[:CLOSE_REASON_BYTES]
        with contextlib.suppress(Exception):
            await asyncio.wait_for(self.socket.close(code=closing.code, message=reason), 2.0)

    async def _flush(self) -> None:
        self.outbox.put_nowait(None)
        with contextlib.suppress(Exception):
            await asyncio.wait_for(asyncio.shield(self._writer), 2.0)

    async def stop(self) -> None:
        """Whatever ended the socket: its conversation and tasks stop, and it closes. A client that closed the
        socket itself (1000) ended the conversation; any other end (a dropped connection) leaves it resumable."""
        if self.conversation is not None:
            if self.socket.close_code == WSCloseCode.OK:
                self.conversation.end_by_client()
            self.conversation.close()
        for task in self._tasks:
            task.cancel()
        for task in self._tasks:
            with contextlib.suppress(BaseException):
                await task
        if not self._writer.done():
            await self._flush()
        self._writer.cancel()
        if not self.socket.closed:
            with contextlib.suppress(Exception):
                await asyncio.wait_for(self.socket.close(), 2.0)


def _event_id(frame: str) -> str | None:
    with contextlib.suppress(ValueError, RecursionError, AttributeError):
        value = json.loads(frame).get("event_id")
        return value if isinstance(value, str) else None
    return None
