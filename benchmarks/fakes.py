"""FAKE backends that answer at once, on loopback, for the gateway benchmark only
(benchmarks/gateway.py and its test). They measure nothing and model nothing: they
let the gateway's own cost be measured without ASR, LLM or TTS work beside it. The
services and their tests never use them.

- ``asr``: a fake Recognize. Audio whose first sample is ``SPEECH`` is speech, and a chunk
  whose first sample is ``END`` is the last of an utterance: on that chunk the fake sends
  speech_started (if not sent yet), speech_ended and the final transcript ``FAKE_TRANSCRIPT``
  at once. Anything else is silence.
- ``tts``: a fake SynthesizeStream: one ``CHUNK_MS`` chunk of silence per text fragment, at once.
- ``llm``: a fake OpenAI-compatible ``/v1/chat/completions`` (streaming or not) that returns
  ``REPLY_TOKENS`` at once, and ``/v1/models`` for readiness.

``python -m benchmarks.fakes --host 127.0.0.1 --port PORT {asr,tts,llm}``
"""

from __future__ import annotations

import argparse
import functools
import json
import os
import time
from collections.abc import AsyncIterator, Sequence

import grpc
import numpy as np

from voice_agent.config import ServerConfig
from voice_agent.server import StreamAdmission, run
from voice_agent.v1 import asr_pb2, asr_pb2_grpc, tts_pb2, tts_pb2_grpc

SPEECH = 1000
END = 2000
FAKE_TRANSCRIPT = "fake transcript"
REPLY_TOKENS = ("Sure", ",", " let's", " try", " that", ".")
CHUNK_MS = 40
TTS_RATE = 22_050
UNLIMITED = 1_000_000
KINDS = ("asr", "tts", "llm")


def marker_chunk(value: int, ms: int, sample_rate: int) -> bytes:
    """PCM16 audio whose samples are all ``value``: SPEECH, END, or 0 (silence)."""
    return np.full(sample_rate * ms // 1000, value, dtype="<i2").tobytes()


@functools.cache
def _silence(sample_rate: int) -> bytes:
    return marker_chunk(0, CHUNK_MS, sample_rate)


class FakeAsr(asr_pb2_grpc.AsrServicer):
    service_name = asr_pb2.DESCRIPTOR.services_by_name["Asr"].full_name

    def __init__(self) -> None:
        self.admission = StreamAdmission("fake-asr", UNLIMITED)

    def register(self, server: grpc.aio.Server) -> None:
        asr_pb2_grpc.add_AsrServicer_to_server(self, server)

    async def load(self) -> None:
        pass

    async def close(self) -> None:
        pass

    async def Recognize(  # noqa: N802 - the gRPC method name
        self, request_iterator: AsyncIterator[asr_pb2.RecognizeRequest], context: grpc.aio.ServicerContext
    ) -> AsyncIterator[asr_pb2.RecognizeResponse]:
        bytes_per_ms = 16_000 * 2 / 1000
        offset_ms = 0.0
        utterance = 0
        speech_start: int | None = None
        async for request in request_iterator:
            kind = request.WhichOneof("request")
            if kind == "config":
                bytes_per_ms = (request.config.audio.sample_rate_hz or 16_000) * 2 / 1000
                continue
            if kind != "audio":
                continue
            start = int(offset_ms)
            offset_ms += len(request.audio) / bytes_per_ms
            first = int.from_bytes(request.audio[:2], "little", signed=True)
            if first not in (SPEECH, END):
                continue
            if speech_start is None:
                utterance += 1
                speech_start = start
                yield asr_pb2.RecognizeResponse(
                    speech_started=asr_pb2.SpeechStarted(utterance_id=utterance, offset_ms=start)
                )
            if first == END:
                end = int(offset_ms)
                ended = asr_pb2.SpeechEnded(
                    utterance_id=utterance,
                    offset_ms=end,
                    decision_offset_ms=end,
                    reason=asr_pb2.SpeechEnded.REASON_SILENCE,
                )
                yield asr_pb2.RecognizeResponse(speech_ended=ended)
                final = asr_pb2.Transcript(
                    utterance_id=utterance, text=FAKE_TRANSCRIPT, start_ms=speech_start, end_ms=end
                )
                yield asr_pb2.RecognizeResponse(final=final)
                speech_start = None


class FakeTts(tts_pb2_grpc.TtsServicer):
    service_name = tts_pb2.DESCRIPTOR.services_by_name["Tts"].full_name

    def __init__(self) -> None:
        self.admission = StreamAdmission("fake-tts", UNLIMITED)

    def register(self, server: grpc.aio.Server) -> None:
        tts_pb2_grpc.add_TtsServicer_to_server(self, server)

    async def load(self) -> None:
        pass

    async def close(self) -> None:
        pass

    @staticmethod
    def _chunk(rate: int, sequence: int, start: int, end: int) -> tts_pb2.SynthesizeResponse:
        chunk = tts_pb2.TtsAudioChunk(
            audio=_silence(rate),
            sample_rate_hz=rate,
            sequence_number=sequence,
            phrase_index=sequence,
            text_start=start,
            text_end=end,
            phrase_duration_ms=CHUNK_MS,
            phrase_end=True,
        )
        return tts_pb2.SynthesizeResponse(audio=chunk)

    async def SynthesizeStream(  # noqa: N802 - the gRPC method name
        self, request_iterator: AsyncIterator[tts_pb2.SynthesizeStreamRequest], context: grpc.aio.ServicerContext
    ) -> AsyncIterator[tts_pb2.SynthesizeResponse]:
        rate, position, sequence = TTS_RATE, 0, 0
        async for request in request_iterator:
            kind = request.WhichOneof("request")
            if kind == "config":
                rate = request.config.sample_rate_hz or TTS_RATE
            elif kind == "text" and request.text:
                yield self._chunk(rate, sequence, position, position + len(request.text))
                position += len(request.text)
                sequence += 1
            elif kind == "end":
                return

    async def Synthesize(  # noqa: N802 - the gRPC method name
        self, request: tts_pb2.SynthesizeRequest, context: grpc.aio.ServicerContext
    ) -> AsyncIterator[tts_pb2.SynthesizeResponse]:
        if request.text.strip():
            yield self._chunk(request.config.sample_rate_hz or TTS_RATE, 0, 0, len(request.text))

    async def ListVoices(  # noqa: N802 - the gRPC method name
        self, request: tts_pb2.ListVoicesRequest, context: grpc.aio.ServicerContext
    ) -> tts_pb2.ListVoicesResponse:
        return tts_pb2.ListVoicesResponse(engine="fake", voices=["fake"], default_voice="fake", sample_rate_hz=TTS_RATE)


def _completion_chunk(model: str, content: str | None, finish: str | None = None) -> str:
    delta = {"content": content} if content is not None else {}
    chunk = {
        "id": "chatcmpl-fake",
        "object": "chat.completion.chunk",
        "created": int(time.time()),
        "model": model,
        "choices": [{"index": 0, "delta": delta, "finish_reason": finish}],
    }
    return f"data: {json.dumps(chunk)}\n\n"


def fake_llm_app() -> object:
    from starlette.applications import Starlette
    from starlette.requests import Request
    from starlette.responses import JSONResponse, Response, StreamingResponse
    from starlette.routing import Route

    async def models(request: Request) -> Response:
        return JSONResponse({"object": "list", "data": [{"id": "fake", "object": "model", "owned_by": "fake"}]})

    async def chat(request: Request) -> Response:
        body = await request.json()
        model = body.get("model", "fake")
        if not body.get("stream"):
            message = {"role": "assistant", "content": "".join(REPLY_TOKENS)}
            return JSONResponse(
                {
                    "id": "chatcmpl-fake",
                    "object": "chat.completion",
                    "created": int(time.time()),
                    "model": model,
                    "choices": [{"index": 0, "message": message, "finish_reason": "stop"}],
                    "usage": {"prompt_tokens": 1, "completion_tokens": len(REPLY_TOKENS), "total_tokens": 7},
                }
            )

        async def events() -> AsyncIterator[str]:
            for token in REPLY_TOKENS:
                yield _completion_chunk(model, token)
            yield _completion_chunk(model, None, "stop")
            yield "data: [DONE]\n\n"

        return StreamingResponse(events(), media_type="text/event-stream")

    return Starlette(routes=[Route("/v1/models", models), Route("/v1/chat/completions", chat, methods=["POST"])])


def main(argv: Sequence[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.fakes", description=__doc__)
    parser.add_argument("kind", choices=KINDS)
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--metrics-port", type=int, help="accepted, as voice_ops.stack passes it; no metrics")
    args = parser.parse_args(argv)
    os.environ.pop("OTEL_EXPORTER_OTLP_ENDPOINT", None)  # the fakes stay out of traces
    if args.kind == "llm":
        import uvicorn

        uvicorn.run(fake_llm_app(), host=args.host, port=args.port, log_level="warning", access_log=False)
        return
    config = ServerConfig(host=args.host, port=args.port, log_level="WARNING", max_streams=UNLIMITED)
    run(config, FakeAsr() if args.kind == "asr" else FakeTts())


if __name__ == "__main__":
    main()
