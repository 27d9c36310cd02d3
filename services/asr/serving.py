"""The gRPC servicer of the VAD+ASR service, and its process entry point."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator, Sequence

import grpc
import numpy as np

from services.asr.config import AsrConfig
from services.asr.protocol import settings_from_request
from services.asr.stream import RecognitionStream
from services.asr.transcriber import WhisperTranscriber
from services.asr.vad import SileroVad
from voice_agent.errors import InvalidArgument, ServiceError
from voice_agent.inference import InferencePool
from voice_agent.server import StreamAdmission, parsed, run
from voice_agent.v1 import asr_pb2, asr_pb2_grpc

log = logging.getLogger("services.asr")

_END = object()  # queued after the last event of a stream


class AsrService(asr_pb2_grpc.AsrServicer):
    service_name = asr_pb2.DESCRIPTOR.services_by_name["Asr"].full_name

    def __init__(self, config: AsrConfig) -> None:
        self.config = config
        self.admission = StreamAdmission("asr", config.max_streams)
        self._pool = InferencePool(config.workers, "asr")
        self._vad: SileroVad | None = None
        self._transcriber: WhisperTranscriber | None = None

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
        if config.warmup:
            self._transcriber.transcribe(np.zeros(16_000, dtype=np.float32), config.language)

    async def close(self) -> None:
        self._pool.shutdown()

    async def Recognize(  # noqa: N802 - the gRPC method name
        self, request_iterator: AsyncIterator[asr_pb2.RecognizeRequest], context: grpc.aio.ServicerContext
    ) -> AsyncIterator[asr_pb2.RecognizeResponse]:
        async with self.admission.stream(context):
            assert self._vad is not None and self._transcriber is not None  # admission waits for load()
            requests = parsed(request_iterator, "RecognizeRequest")
            first = await anext(requests, None)
            if first is None:
                raise InvalidArgument("the stream ended before its RecognitionConfig")
            settings = settings_from_request(first, self.config.language, self._transcriber.languages)
            events: asyncio.Queue[object] = asyncio.Queue()
            stream = RecognitionStream(
                settings,
                self._vad,
                self._transcriber,
                self._pool,
                int(self.config.max_utterance_s * 1000),
                events.put_nowait,
            )
            reader = asyncio.create_task(self._read(requests, stream, events))
            try:
                while (event := await events.get()) is not _END:
                    if isinstance(event, Exception):
                        raise event
                    yield event
            finally:
                reader.cancel()
                stream.close()

    @staticmethod
    async def _read(
        requests: AsyncIterator[asr_pb2.RecognizeRequest], stream: RecognitionStream, events: asyncio.Queue[object]
    ) -> None:
        """Feeds audio to the stream; on bad input, still delivers what was heard before it."""
        try:
            async for request in requests:
                kind = request.WhichOneof("request")
                if kind != "audio":
                    what = (
                        "a second RecognitionConfig" if kind == "config" else "a message with neither config nor audio"
                    )
                    raise InvalidArgument(f"expected audio after the RecognitionConfig, got {what}")
                stream.feed(request.audio)
        except ServiceError as error:
            await stream.finish()
            events.put_nowait(error)
            return
        except Exception as error:  # a bug: end the stream with it rather than hang
            log.exception("Recognize stream failed")
            events.put_nowait(error)
            return
        await stream.finish()
        events.put_nowait(_END)


def main(argv: Sequence[str] | None = None) -> None:
    config = AsrConfig.from_args(argv, prog="python -m services.asr")
    run(config, AsrService(config))
