"""A scripted session: the conversation core (gateway/conversation.py, the Listener, turns, preemption,
turn-taking) driven event by event, with FAKE backends that a test scripts (a unit test of the core's
orchestration only: the real ASR, LLM and TTS are exercised in test_gateway.py and the other end-to-end
tests). In the manner of LiveKit's fake session and Pipecat's run_test:

    async with ScriptedSession() as session:
        session.llm.replies(["Take", " a breath."])
        await session.user_says("How do I start?")
        metrics = await session.next(TurnMetrics)

- ``ScriptedAsr`` stands for the ASR service: the test says what it hears (speech started, interims, a
  pause, the end of speech and the final transcript) on the Recognize stream of the moment, at the offset
  of the audio it has received; it can fail that stream (the Listener then reconnects).
- ``ScriptedLlm`` streams scripted replies, each optionally held at a gate the test opens; it records
  every request (the messages) and whether its stream was read to the end.
- ``ScriptedTts`` answers each text fragment with a chunk of silence as long as the text (ms per
  character), at once: the agent's audio is then paced by the turn itself, as against the real TTS; with
  ``noise=True``, a chunk of noise instead (an agent voice whose echo can be found in the microphone).

A session's user sends microphone audio (silence) in real time in the background, as a phone does, so
that the ASR's offsets map to times as they would; with ``ScriptedSession(echo_db=...)`` the microphone also
hears the agent's audio as the client plays it (from its arrival, 100 ms later, that many dB down): the
echo, as a signal, for the gateway's echo path fit (the ASR still says only what the test scripts).

Everything runs in real time with short audio:
a scenario takes a fraction of a second.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import time
from collections.abc import AsyncIterator, Callable, Iterable
from typing import Any, TypeVar

import grpc
import numpy as np

from gateway import events
from gateway.backends import Backends
from gateway.config import GatewayConfig
from gateway.conversation import Conversation
from gateway.llm import LlmSettings, Reply
from gateway.records.recorder import Recorder
from gateway.records.sessions import Resumption
from gateway.session_settings import SessionChoices, SessionSettings, settings_for
from voice_agent.v1 import asr_pb2, tts_pb2

RATE = 16_000
CHUNK_MS = 20
ECHO_DELAY_MS = 100
E = TypeVar("E")


class ScriptedRecognizeCall:
    """One Recognize stream: reads the Listener's requests, yields what the test scripts."""

    def __init__(self, requests: AsyncIterator[asr_pb2.RecognizeRequest], ends_on_half_close: bool = True) -> None:
        self.ends_on_half_close = ends_on_half_close
        self.received_ms = 0.0
        self.config: asr_pb2.RecognitionConfig | None = None
        self.updates: list[asr_pb2.RecognitionUpdate] = []
        self.half_closed = False
        self._events: asyncio.Queue[asr_pb2.RecognizeResponse | grpc.aio.AioRpcError | None] = asyncio.Queue()
        self._reader = asyncio.ensure_future(self._read(requests))

    async def _read(self, requests: AsyncIterator[asr_pb2.RecognizeRequest]) -> None:
        async for request in requests:
            kind = request.WhichOneof("request")
            if kind == "config":
                self.config = request.config
            elif kind == "audio":
                self.received_ms += len(request.audio) / (2 * RATE / 1000)
            elif kind == "update":
                self.updates.append(request.update)
        self.half_closed = True
        if self.ends_on_half_close:  # as the ASR does once the client half-closed it, with nothing to say
            self.push(None)

    @property
    def one_shot(self) -> bool:
        """A words-over-echo transcription's stream: it asks for no interims."""
        return self.config is not None and self.config.HasField("interim_results") and not self.config.interim_results

    def push(self, event: asr_pb2.RecognizeResponse | grpc.aio.AioRpcError | None) -> None:
        self._events.put_nowait(event)

    def __aiter__(self) -> AsyncIterator[asr_pb2.RecognizeResponse]:
        return self._responses()

    async def _responses(self) -> AsyncIterator[asr_pb2.RecognizeResponse]:
        try:
            while (event := await self._events.get()) is not None:
                if isinstance(event, grpc.aio.AioRpcError):
                    raise event
                yield event
        finally:
            self._reader.cancel()

    def add_done_callback(self, callback: Callable[[Any], None]) -> None:
        pass  # ServerStatus's: the fake's errors are the server's own

    def cancel(self) -> None:
        self._events.put_nowait(None)


class ScriptedAsr:
    """The ASR service's stub (``Recognize``), scripted: utterances are numbered as the ASR numbers them."""

    def __init__(self) -> None:
        self.calls: list[ScriptedRecognizeCall] = []
        self.utterance_id = 0
        # False: a stream the client half-closed stays open until the test pushes its final and its end (the
        # ASR transcribes what it was sent first), as a words-over-echo transcription needs.
        self.ends_on_half_close = True
        self._opened = asyncio.Event()

    def Recognize(self, requests: AsyncIterator[asr_pb2.RecognizeRequest]) -> ScriptedRecognizeCall:  # noqa: N802
        call = ScriptedRecognizeCall(requests, self.ends_on_half_close)
        self.calls.append(call)
        self._opened.set()
        return call

    @property
    def call(self) -> ScriptedRecognizeCall:
        """The session's stream of the moment (not a words-over-echo transcription's: no interims asked)."""
        return next(c for c in reversed(self.calls) if not c.one_shot)

    async def stream_opened(self, count: int, timeout_s: float = 2.0) -> None:
        async with asyncio.timeout(timeout_s):
            while len(self.calls) < count:
                self._opened.clear()
                await self._opened.wait()

    def _offset(self) -> int:
        return int(self.call.received_ms)

    def speech_started(self) -> int:
        self.utterance_id += 1
        started = asr_pb2.SpeechStarted(utterance_id=self.utterance_id, offset_ms=self._offset())
        self.call.push(asr_pb2.RecognizeResponse(speech_started=started))
        return self.utterance_id

    def interim(self, text: str) -> None:
        transcript = asr_pb2.Transcript(utterance_id=self.utterance_id, text=text)
        self.call.push(asr_pb2.RecognizeResponse(interim=transcript))

    def paused(self, text: str) -> None:
        transcript = asr_pb2.Transcript(utterance_id=self.utterance_id, text=text)
        paused = asr_pb2.SpeechPaused(utterance_id=self.utterance_id, offset_ms=self._offset(), transcript=transcript)
        self.call.push(asr_pb2.RecognizeResponse(paused=paused))

    def resumed(self) -> None:
        resumed = asr_pb2.SpeechResumed(utterance_id=self.utterance_id, offset_ms=self._offset())
        self.call.push(asr_pb2.RecognizeResponse(resumed=resumed))

    def speech_ended(self, silence_ms: int = 200) -> None:
        offset = max(0, self._offset() - silence_ms)
        ended = asr_pb2.SpeechEnded(utterance_id=self.utterance_id, offset_ms=offset, decision_offset_ms=offset + 200)
        self.call.push(asr_pb2.RecognizeResponse(speech_ended=ended))

    def final(self, text: str) -> None:
        transcript = asr_pb2.Transcript(utterance_id=self.utterance_id, text=text)
        self.call.push(asr_pb2.RecognizeResponse(final=transcript))

    def fail(self, code: grpc.StatusCode = grpc.StatusCode.UNAVAILABLE, details: str = "the ASR went away") -> None:
        self.call.push(grpc.aio.AioRpcError(code, grpc.aio.Metadata(), grpc.aio.Metadata(), details))


@dataclasses.dataclass
class ScriptedReply:
    deltas: list[str]
    gate: asyncio.Event | None = None  # the reply waits here before its first token, if given


class ScriptedLlm:
    """The LLM client (ChatClient's ``stream``), scripted reply by reply; the last one repeats."""

    settings = LlmSettings("scripted://llm", "scripted", "none", 60, 0.0, (), 5.0)

    def __init__(self) -> None:
        self._replies: list[ScriptedReply] = [ScriptedReply(["Take", " a", " breath."])]
        self.requests: list[list[dict[str, str]]] = []
        self.warmed: list[list[dict[str, str]]] = []  # the prefixes warmed (ChatClient.warm)
        self.finished = 0  # streams read to their end

    def replies(self, *replies: Iterable[str] | ScriptedReply) -> None:
        self._replies = [r if isinstance(r, ScriptedReply) else ScriptedReply(list(r)) for r in replies]

    async def stream(self, messages: list[dict[str, str]], reply: Reply) -> AsyncIterator[str]:
        self.requests.append(messages)
        script = self._replies[min(len(self.requests), len(self._replies)) - 1]
        if script.gate is not None:
            await script.gate.wait()
        for delta in script.deltas:
            await asyncio.sleep(0)  # a token at a time: other tasks run between them, as with a server
            if reply.ttft_ms is None:
                reply.ttft_ms = (time.perf_counter() - reply.started) * 1000
            reply.text += delta
            reply.tokens += 1
            yield delta
        self.finished += 1

    async def warm(self, prefix: list[dict[str, str]]) -> bool:
        self.warmed.append(prefix)
        return True

    async def close(self) -> None:
        pass


class ScriptedSynthesizeCall:
    def __init__(
        self,
        requests: AsyncIterator[tts_pb2.SynthesizeStreamRequest],
        ms_per_char: float,
        noise: bool = False,
        level: int = 0,
    ) -> None:
        self._requests = requests
        self._ms_per_char = ms_per_char
        self._noise = np.random.default_rng(0) if noise else None
        self._sample = level.to_bytes(2, "little", signed=True)
        self.cancelled = False

    def __aiter__(self) -> AsyncIterator[tts_pb2.SynthesizeResponse]:
        return self._responses()

    async def _responses(self) -> AsyncIterator[tts_pb2.SynthesizeResponse]:
        position = 0
        async for request in self._requests:
            if request.WhichOneof("request") != "text" or not request.text:
                continue
            samples = int(len(request.text) * self._ms_per_char * RATE / 1000)
            audio = self._sample * samples
            if self._noise is not None:
                audio = (self._noise.normal(0, 3000, samples).clip(-32767, 32767)).astype("<i2").tobytes()
            chunk = tts_pb2.TtsAudioChunk(
                audio=audio,
                sample_rate_hz=RATE,
                text_start=position,
                text_end=position + len(request.text),
            )
            position += len(request.text)
            yield tts_pb2.SynthesizeResponse(audio=chunk)

    def cancel(self) -> None:
        self.cancelled = True

    def add_done_callback(self, callback: Callable[[Any], None]) -> None:
        pass


class ScriptedTts:
    """The TTS service's stub (``SynthesizeStream``): silence as long as the text, ``ms_per_char`` a character
    (``level``: a constant sample value instead, to find the agent's audio in a recording)."""

    def __init__(self, ms_per_char: float = 5.0, noise: bool = False) -> None:
        self.ms_per_char = ms_per_char
        self.noise = noise
        self.level = 0
        self.calls: list[ScriptedSynthesizeCall] = []

    def SynthesizeStream(  # noqa: N802
        self, requests: AsyncIterator[tts_pb2.SynthesizeStreamRequest]
    ) -> ScriptedSynthesizeCall:
        call = ScriptedSynthesizeCall(requests, self.ms_per_char, self.noise, self.level)
        self.calls.append(call)
        return call


class ScriptedSession:
    """A Conversation on scripted backends, its inputs and its events in the test's hands."""

    def __init__(
        self,
        config: GatewayConfig | None = None,
        *,
        echo_db: float | None = None,
        recorder: Recorder | None = None,
        resumption: Resumption | None = None,
        **choices: Any,
    ) -> None:
        self.config = config or GatewayConfig()
        self.settings: SessionSettings = settings_for(SessionChoices(input_sample_rate=RATE, **choices), self.config)
        self.asr, self.llm, self.tts = ScriptedAsr(), ScriptedLlm(), ScriptedTts(noise=echo_db is not None)
        self._echo_gain = None if echo_db is None else 10 ** (echo_db / 20)
        self._mic = np.zeros(0, np.float32)
        self._mic_at = 0  # microphone samples sent
        self.events: list[events.Event] = []
        self.draining = asyncio.Event()
        self._inputs: asyncio.Queue[events.Input] = asyncio.Queue()
        self._read = 0  # events consumed by next()
        backends = Backends(
            asr=self.asr,  # type: ignore[arg-type]
            tts=self.tts,  # type: ignore[arg-type]
            llm=self.llm,  # type: ignore[arg-type]
            new_tts_channel=lambda: None,  # type: ignore[arg-type,return-value]
            new_llm=lambda: self.llm,  # type: ignore[arg-type,return-value]
        )
        self.conversation = Conversation(
            self.config,
            self.settings,
            backends,
            self._emit,
            draining=self.draining,
            conversation_id=recorder.conversation_id if recorder is not None else None,
            recorder=recorder,
            resumption=resumption,
        )

    async def __aenter__(self) -> ScriptedSession:
        self.task = asyncio.create_task(self.conversation.run(self._input_stream()))
        self._microphone = asyncio.create_task(self._speak_silence())
        await self.asr.stream_opened(1)
        await self.until(lambda: self.asr.call.received_ms >= 2 * CHUNK_MS)  # audio flows: offsets mean something
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        self._microphone.cancel()
        self.task.cancel()
        with contextlib.suppress(asyncio.CancelledError, Exception):
            await self.task

    async def end(self, timeout_s: float = 5.0) -> None:
        """The client ends the session: the conversation finishes what is in flight, then returns."""
        self._microphone.cancel()
        self._inputs.put_nowait(events.EndOfInput())
        async with asyncio.timeout(timeout_s):
            await self.task

    async def drop(self) -> None:
        """The connection drops: the front cancels the conversation, as a stream that breaks does."""
        self._microphone.cancel()
        self.task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await self.task

    # ---- the user

    async def _speak_silence(self) -> None:
        frame = RATE * CHUNK_MS // 1000
        started = time.perf_counter()
        sent = 0
        echo = self._mic = np.zeros(RATE * 60, np.float32)  # the microphone's first minute: the agent's echo
        played, play_at = 0, 0  # AgentAudio events placed so far; where the client's playback is (samples)
        while True:
            if self._echo_gain is not None:
                for event in self.of(events.AgentAudio)[played:]:
                    samples = np.frombuffer(event.audio, "<i2").astype(np.float32) * self._echo_gain
                    play_at = max(play_at, sent * frame)
                    at = play_at + ECHO_DELAY_MS * RATE // 1000
                    echo[at : at + len(samples)] += samples[: max(0, len(echo) - at)]
                    play_at += len(samples)
                played = len(self.of(events.AgentAudio))
            piece = echo[sent * frame : (sent + 1) * frame] if (sent + 1) * frame <= len(echo) else np.zeros(frame)
            chunk = piece.clip(-32767, 32767).astype("<i2").tobytes()
            self._inputs.put_nowait(events.AudioIn(chunk))
            sent += 1
            self._mic_at = sent * frame
            await asyncio.sleep(max(0.0, started + sent * CHUNK_MS / 1000 - time.perf_counter()))

    async def _input_stream(self) -> AsyncIterator[events.Input]:
        while not isinstance(item := await self._inputs.get(), events.EndOfInput):
            yield item
        yield item

    def voice(self, seconds: float, rms: float = 3000.0) -> None:
        """A voice in the microphone from now on for ``seconds`` (noise, independent of the agent's): the user
        speaking, as a signal (the ASR still says only what the test scripts)."""
        at, length = self._mic_at, int(seconds * RATE)
        self._mic[at : at + length] += np.random.default_rng(1).normal(0, rms, length)[: len(self._mic) - at]

    def send(self, item: events.Input) -> None:
        self._inputs.put_nowait(item)

    async def user_says(self, text: str, *, interims: Iterable[str] = ()) -> None:
        """An utterance, as the ASR hears it: started, interims, ended, final."""
        self.asr.speech_started()
        for interim in interims:
            await self.settle()
            self.asr.interim(interim)
        await self.settle()
        self.asr.speech_ended()
        self.asr.final(text)
        await self.settle()

    # ---- what the client got

    def _emit(self, event: events.Event) -> None:
        self.events.append(event)

    def of(self, kind: type[E]) -> list[E]:
        return [event for event in self.events if isinstance(event, kind)]

    async def until(self, condition: Callable[[], bool], timeout_s: float = 3.0) -> None:
        async with asyncio.timeout(timeout_s):
            while not condition():
                if self.task.done():
                    self.task.result()  # the conversation ended: say why
                    raise AssertionError("the conversation ended")
                await asyncio.sleep(0.005)

    async def next(self, kind: type[E], timeout_s: float = 3.0) -> E:
        """The next event of ``kind`` after those next() already returned (of any kind)."""

        def found() -> bool:
            return any(isinstance(event, kind) for event in self.events[self._read :])

        await self.until(found, timeout_s)
        index = next(i for i in range(self._read, len(self.events)) if isinstance(self.events[i], kind))
        self._read = index + 1
        return self.events[index]  # type: ignore[return-value]

    async def settle(self, seconds: float = 0.03) -> None:
        """Lets the core react (the ASR's events go through the Listener's task)."""
        await asyncio.sleep(seconds)

    def reply_text(self, turn_id: int) -> str:
        return "".join(e.delta for e in self.of(events.AgentText) if e.turn_id == turn_id)

    def audio_sequence(self, turn_id: int) -> list[int]:
        return [e.sequence_number for e in self.of(events.AgentAudio) if e.turn_id == turn_id]

    def history(self) -> list[dict[str, str]]:
        """What the LLM would be sent now, less the system prompt."""
        return self.conversation._history.messages()[1:]
