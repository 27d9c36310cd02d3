"""The gRPC servicer of the VAD+ASR service, and its process entry point."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator, Sequence

import grpc
import numpy as np

from services.asr.config import AsrConfig
from services.asr.protocol import settings_from_request
from services.asr.smart_turn import SmartTurn
from services.asr.stream import RecognitionStream
from services.asr.transcriber import WhisperTranscriber
from services.asr.vad import SileroVad
from voice_agent.errors import Draining, InvalidArgument, ServiceError
from voice_agent.server import EventStream, ModelService, Started, run, serve_stream
from voice_agent.v1 import asr_pb2, asr_pb2_grpc

log = logging.getLogger("services.asr")


class AsrService(ModelService, asr_pb2_grpc.AsrServicer):
    service_name = asr_pb2.DESCRIPTOR.services_by_name["Asr"].full_name
    label = "asr"

    def __init__(self, config: AsrConfig) -> None:
        super().__init__(config, config.workers)
        self.config: AsrConfig = config
        self._vad: SileroVad | None = None
        self._transcriber: WhisperTranscriber | None = None
        self._smart_turn: SmartTurn | None = None

    def register(self, server: grpc.aio.Server) -> None:
        asr_pb2_grpc.add_AsrServicer_to_server(self, server)

    async def load(self) -> None:
        await asyncio.to_thread(self._load_models)

    def _load_models(self) -> None:
        config = self.config
        self._vad = SileroVad(config.vad_model or None)
        self._transcriber = WhisperTranscriber(
            config.model or None,
            device=config.device,
            compute_type=config.compute_type,
            cpu_threads=config.cpu_threads,
            workers=config.workers,
            beam_size=config.beam_size,
            fit_window=config.encoder_window == "fit",
        )
        log.info("ASR model %s on %s (%s)", self._transcriber.model_dir, config.device, config.compute_type)
        self._smart_turn = _load_smart_turn(config)
        if config.warmup:
            self._transcriber.transcribe(np.zeros(16_000, dtype=np.float32), config.language)

    async def Recognize(  # noqa: N802 - the gRPC method name
        self, request_iterator: AsyncIterator[asr_pb2.RecognizeRequest], context: grpc.aio.ServicerContext
    ) -> AsyncIterator[asr_pb2.RecognizeResponse]:
        missing = "the stream ended before its RecognitionConfig"
        async for event in serve_stream(self.admission, context, request_iterator, self._open, missing=missing):
            yield event

    async def _open(
        self,
        first: asr_pb2.RecognizeRequest,
        requests: AsyncIterator[asr_pb2.RecognizeRequest],
        events: EventStream[asr_pb2.RecognizeResponse],
    ) -> Started:
        assert self._vad is not None and self._transcriber is not None  # admission waits for load()
        settings = settings_from_request(
            first, self.config.language, self._transcriber.languages, self.config.turn_detector
        )
        stream = RecognitionStream(
            settings,
            self._vad,
            self._transcriber,
            self.pool,
            int(self.config.max_utterance_s * 1000),
            events.put,
            onset_pad_ms=self.config.onset_pad_ms,
            smart_turn=self._smart_turn,
        )
        return Started(
            _feed(requests, stream), stream.close, _end_when_drained(self.admission.draining, stream, events)
        )


def _load_smart_turn(config: AsrConfig) -> SmartTurn | None:
    """Smart Turn (8 MB, ~0.1 s to load), for the streams that ask for it; without the pipecat-ai package
    only the text detector is offered, unless the service's own default needs the model."""
    try:
        smart_turn = SmartTurn(config.smart_turn_model or None)
    except FileNotFoundError:
        if config.turn_detector != "text":
            raise
        log.warning("Smart Turn is not installed (pipecat-ai): streams can use turn_detector 'text' only")
        return None
    if config.warmup:
        smart_turn.predict(np.zeros(16_000, dtype=np.float32))
    log.info("Smart Turn %s; default turn detector: %s", smart_turn.model_path.name, config.turn_detector)
    return smart_turn


async def _feed(requests: AsyncIterator[asr_pb2.RecognizeRequest], stream: RecognitionStream) -> None:
    """Feeds audio to the stream, then finishes it; on bad input, what was heard before it
    is still transcribed and sent before the error."""
    try:
        async for request in requests:
            kind = request.WhichOneof("request")
            if kind == "trace_context":
                stream.join_trace(request.trace_context)
            elif kind == "update":
                stream.update(request.update)
            else:
                stream.feed(_audio_of(request))
    except ServiceError:
        await stream.finish()
        raise
    await stream.finish()


async def _end_when_drained(
    draining: asyncio.Event, stream: RecognitionStream, events: EventStream[asr_pb2.RecognizeResponse]
) -> None:
    """On shutdown, ends the stream between utterances, once every final is sent (the caller reconnects)."""
    await draining.wait()
    while not stream.at_rest:  # noqa: ASYNC110 - rest follows frames and finals alike; a 50 ms poll is simplest
        await asyncio.sleep(0.05)
    events.fail(Draining("the ASR service is shutting down; every utterance so far was transcribed: connect again"))


def _audio_of(request: asr_pb2.RecognizeRequest) -> bytes:
    kind = request.WhichOneof("request")
    if kind == "audio":
        return request.audio
    what = "a second RecognitionConfig" if kind == "config" else "a message with neither config nor audio"
    raise InvalidArgument(f"expected audio after the RecognitionConfig, got {what}")


def main(argv: Sequence[str] | None = None) -> None:
    config = AsrConfig.from_args(argv, prog="python -m services.asr")
    run(config, AsrService(config))
