"""The gRPC servicer of the TTS service, and its process entry point."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator, Sequence

import grpc

from services.tts.config import TtsConfig
from services.tts.engines import TtsEngine, load_engine
from services.tts.protocol import check_text_length, settings_from_config
from services.tts.stream import SynthesisStream
from voice_agent.errors import InvalidArgument
from voice_agent.server import EventStream, ModelService, Started, run, serve_stream, single
from voice_agent.v1 import tts_pb2, tts_pb2_grpc

log = logging.getLogger("services.tts")

WARMUP_TEXT = "Hello, let's get started."
NO_CONFIG = "the first message of a SynthesizeStream must be a SynthesisConfig"


class TtsService(ModelService, tts_pb2_grpc.TtsServicer):
    service_name = tts_pb2.DESCRIPTOR.services_by_name["Tts"].full_name
    label = "tts"

    def __init__(self, config: TtsConfig) -> None:
        super().__init__(config, config.workers)
        self.config: TtsConfig = config
        self._engine: TtsEngine | None = None

    def register(self, server: grpc.aio.Server) -> None:
        tts_pb2_grpc.add_TtsServicer_to_server(self, server)

    async def load(self) -> None:
        self._engine = await asyncio.to_thread(load_engine, self.config)
        if self.config.voice and self._engine.resolve_voice(self.config.voice) is None:
            raise SystemExit(
                f"VOICE_TTS_VOICE={self.config.voice!r} is not one of {self._engine.voices}"
                f" nor a Realtime API voice name ({', '.join(self._engine.voice_aliases)})"
            )
        if self.config.warmup:
            await asyncio.to_thread(self._engine.synthesize, WARMUP_TEXT, self._engine.default_voice, 1.0)

    def _stream(
        self, config: tts_pb2.SynthesisConfig, events: EventStream[tts_pb2.SynthesizeResponse]
    ) -> SynthesisStream:
        assert self._engine is not None  # admission waits for load()
        return SynthesisStream(
            settings_from_config(config, self._engine, self.config),
            self._engine,
            self.pool,
            max_phrase_chars=self.config.max_phrase_chars,
            max_text_chars=self.config.max_text_chars,
            chunk_ms=self.config.chunk_ms,
            emit=events.put,
        )

    async def Synthesize(  # noqa: N802 - the gRPC method name
        self, request: tts_pb2.SynthesizeRequest, context: grpc.aio.ServicerContext
    ) -> AsyncIterator[tts_pb2.SynthesizeResponse]:
        async for event in serve_stream(self.admission, context, single(request), self._open_text, missing=""):
            yield event

    async def _open_text(
        self,
        request: tts_pb2.SynthesizeRequest,
        _: AsyncIterator[tts_pb2.SynthesizeRequest],
        events: EventStream[tts_pb2.SynthesizeResponse],
    ) -> Started:
        check_text_length(len(request.text), self.config.max_text_chars)
        stream = self._stream(request.config, events)
        stream.add_text(request.text)
        return Started(stream.finish(), stream.close)

    async def SynthesizeStream(  # noqa: N802 - the gRPC method name
        self,
        request_iterator: AsyncIterator[tts_pb2.SynthesizeStreamRequest],
        context: grpc.aio.ServicerContext,
    ) -> AsyncIterator[tts_pb2.SynthesizeResponse]:
        opened = serve_stream(self.admission, context, request_iterator, self._open_stream, missing=NO_CONFIG)
        async for event in opened:
            yield event

    async def _open_stream(
        self,
        first: tts_pb2.SynthesizeStreamRequest,
        requests: AsyncIterator[tts_pb2.SynthesizeStreamRequest],
        events: EventStream[tts_pb2.SynthesizeResponse],
    ) -> Started:
        if first.WhichOneof("request") != "config":
            raise InvalidArgument(NO_CONFIG)
        stream = self._stream(first.config, events)
        return Started(_feed(requests, stream), stream.close)

    async def ListVoices(  # noqa: N802 - the gRPC method name
        self, request: tts_pb2.ListVoicesRequest, context: grpc.aio.ServicerContext
    ) -> tts_pb2.ListVoicesResponse:
        if self._engine is None:
            await context.abort(grpc.StatusCode.UNAVAILABLE, "tts is loading its model; retry shortly")
        assert self._engine is not None
        return tts_pb2.ListVoicesResponse(
            engine=self._engine.name,
            voices=self._engine.voices,
            default_voice=self._engine.resolve_voice(self.config.voice) or self._engine.default_voice,
            sample_rate_hz=self._engine.sample_rate,
            voice_aliases=self._engine.voice_aliases,
        )


async def _feed(requests: AsyncIterator[tts_pb2.SynthesizeStreamRequest], stream: SynthesisStream) -> None:
    """Feeds fragments to the stream until an end marker or a half-close, then finishes it.

    Bad input ends the stream at once with its error, after the audio already
    sent: unlike a user's speech, text the client got wrong is not worth more
    synthesis (a text over the limit could otherwise cost minutes of it)."""
    async for request in requests:
        kind = request.WhichOneof("request")
        if kind == "text":
            stream.add_text(request.text)
        elif kind == "flush":
            stream.flush()
        elif kind == "end":
            break
        else:
            what = "a second SynthesisConfig" if kind == "config" else "a message with no text, flush or end"
            raise InvalidArgument(f"expected text, flush or end after the SynthesisConfig, got {what}")
    await stream.finish()


def main(argv: Sequence[str] | None = None) -> None:
    config = TtsConfig.from_args(argv, prog="python -m services.tts")
    run(config, TtsService(config))
