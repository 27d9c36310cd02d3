"""The gateway process: one lifecycle for both fronts, and ``python -m gateway``.

``GatewayApp`` holds what the fronts share: the settings, one admission (``max_streams`` and the
per-caller quota count the sessions of both), the credentials, the backends and the voice check. It is
the process's service for voice_agent/server.py's ``run``: ``load`` opens the backends and the HTTP
front, the drain (SIGTERM) ends the sessions of both fronts at a moment of rest, ``close`` closes them.
The fronts are adapters over the conversation core (gateway/conversation.py): gRPC ``Converse``
(gateway/serving.py) and the Realtime WebSocket API with the browser page (gateway/realtime/serving.py).
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Sequence

import grpc

from gateway import backends
from gateway.auth import Authenticator
from gateway.config import GatewayConfig
from gateway.realtime.serving import HttpServer
from gateway.records.access import ConversationAccess
from gateway.records.retention import run_retention
from gateway.records.serving import ConversationsService
from gateway.records.sessions import Records
from gateway.records.store import RecordingStore, RecordStore, open_record_store, open_recording_store, redacted
from gateway.records.writer import STORE_UP
from gateway.serving import ConverseService, last_event
from voice_agent.errors import InvalidArgument, quoted
from voice_agent.server import StreamAdmission, run
from voice_agent.v1 import conversations_pb2_grpc, gateway_pb2, gateway_pb2_grpc, tts_pb2

log = logging.getLogger("gateway")

RECORDS_FLUSH_S = 10.0  # at least this long at shutdown for the record writes still buffered


class GatewayApp:
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
        # Read at start: a missing or empty key file stops the gateway rather than leave it open.
        auth = config.auth
        self.auth = Authenticator.from_files(
            auth.api_keys_file,
            auth.jwks_file,
            admin_api_keys_file=auth.admin_api_keys_file,
            issuer=auth.jwt_issuer,
            audience=auth.jwt_audience,
            role_claim=auth.jwt_role_claim,
        )
        if self.auth is None:
            log.warning(
                "authentication is off: set --api-keys-file or --jwks-file (or put Envoy's JWT filter in front)"
            )
        self._backends: backends.Backends | None = None
        self._channels: list[grpc.aio.Channel] = []
        self._voices: set[str] = set()  # the TTS's voices and voice aliases, as last listed
        self.converse = ConverseService(self)
        # The records (gateway/records/): the stores the URLs name, opened by load(); None until then.
        self.record_store: RecordStore = open_record_store(config.records.records_url)
        self.recording_store: RecordingStore | None = (
            open_recording_store(config.records.recordings_url) if config.records.recordings_url else None
        )
        self.conversations: ConversationAccess | None = None
        self.conversations_service = ConversationsService(self)
        # What the conversations write: through one bounded writer, retried while the store is down.
        self.records = Records(config, self.record_store, self.recording_store, llm=lambda: self.backends.new_llm())
        self._records_tasks: list[asyncio.Task[None]] = []
        self.http = HttpServer(self) if config.http_port else None

    @property
    def backends(self) -> backends.Backends:
        assert self._backends is not None  # admission waits for load()
        return self._backends

    def register(self, server: grpc.aio.Server) -> None:
        gateway_pb2_grpc.add_GatewayServicer_to_server(self.converse, server)
        conversations_pb2_grpc.add_ConversationsServicer_to_server(self.conversations_service, server)

    async def load(self) -> None:
        """Opens one pooled, persistent channel per backend (they connect lazily and reconnect), then the
        HTTP front; the gRPC front is served by ``run``."""
        config = self.config
        self._backends, self._channels = backends.connect(config.backends)
        if config.latency.latency_mode == "fast":
            # Not awaited: the gateway serves at once, whether or not the LLM is up yet.
            self._warm_up = asyncio.create_task(self._backends.llm.warm_up(config.persona.system_prompt))
        log.info("latency mode %s: %s", config.latency.latency_mode, config.latency.plan().describe())
        log.info(
            "backends: asr %s, tts %s (%s), llm %s (%s)",
            config.backends.asr_address,
            config.backends.tts_address,
            config.backends.transport,
            config.backends.llm_base_url,
            config.backends.llm_model,
        )
        self._records_tasks.append(asyncio.create_task(self._open_records()))
        self.records.start()
        if self.http is not None:
            await self.http.start()

    async def _open_records(self) -> None:
        """Opens the stores (migrating the records' schema), retrying while they are down: the gateway serves
        meanwhile. Then the retention sweep, if a period is set."""
        records = self.config.records
        delay_s = 1.0
        while True:
            try:
                await self.record_store.open()
                if self.recording_store is not None:
                    await self.recording_store.open()
                break
            except Exception as error:  # any driver's: the store is down, misnamed or refuses us
                STORE_UP.set(0)  # VoiceRecordStoreDown: as for a failed write
                log.warning(
                    "records: cannot open %s (%s: %s); retrying",
                    redacted(records.records_url),
                    type(error).__name__,
                    error,
                )
                await asyncio.sleep(delay_s)
                delay_s = min(delay_s * 2, 30.0)
        STORE_UP.set(1)
        self.conversations = ConversationAccess(self.record_store, self.recording_store)
        log.info("records: %s, recordings: %s", redacted(records.records_url), records.recordings_url or "off")
        if records.retention_days > 0:
            self._records_tasks.append(
                asyncio.create_task(run_retention(self.conversations, records.retention_days * 86_400))
            )

    async def check_voice(self, voice: str) -> None:
        """An unknown voice fails the session at once, not each of its turns later."""
        if not voice or voice in self._voices:
            return
        try:
            reply = await self.backends.tts.ListVoices(tts_pb2.ListVoicesRequest(), timeout=2.0)
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
        if self.http is not None:
            await self.http.close()
        # Every record, recording and summary of the conversations the drain ended, before the stores and the
        # backends close.
        if not await self.records.close(max(RECORDS_FLUSH_S, self.config.shutdown_grace_s)):
            log.error("records: the stores did not take every write before shutdown")
        if self._backends is not None:
            await self._backends.llm.close()
        for channel in self._channels:
            await channel.close()
        for task in self._records_tasks:
            task.cancel()
        await asyncio.gather(*self._records_tasks, return_exceptions=True)
        await self.record_store.close()
        if self.recording_store is not None:
            await self.recording_store.close()


def main(argv: Sequence[str] | None = None) -> None:
    config = GatewayConfig.from_args(argv, prog="python -m gateway")
    run(config, GatewayApp(config))
