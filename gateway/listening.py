"""The user's side of a conversation: the link to the ASR, the clock of the audio, the user's turn.

A Listener forwards the user's audio to one ASR stream (reconnecting when it fails, at once when the
ASR drained it between utterances), passes what the ASR hears on to the client as events, and reports
the user's turn to the conversation through typed hooks: speech started, interim transcripts, paused
(with its transcript), resumed, and ended with its final transcript and timing. It knows nothing of agent turns,
only the agent audio the client was sent (``played``): the reference from which its echo canceller removes the
agent's voice from the user's audio before the ASR hears it.
"""

from __future__ import annotations

import asyncio
import bisect
import collections
import contextlib
import logging
import time
from collections.abc import AsyncIterator
from typing import Protocol

import grpc

from gateway.echo.canceller import MIC_RATES, EchoCanceller, create_echo_canceller
from gateway.echo.heard import OVER_ECHO_LEVEL_DB, HeardOverEcho, OverEcho
from gateway.echo.path import EchoTimeline
from gateway.events import Emit, SpeechEnded, SpeechStarted, Transcript
from gateway.turn import TurnTiming
from voice_agent.audio import PCM16_SAMPLE_BYTES, check_pcm16_chunk, float_to_pcm16
from voice_agent.call_status import ServerStatus
from voice_agent.contract import DEFAULT_ONSET_PAD_MS
from voice_agent.errors import DRAINED_KEY
from voice_agent.v1 import asr_pb2, asr_pb2_grpc

log = logging.getLogger(__name__)

# Audio held while the ASR stream reconnects (100 ms chunks: ~5 s); newer audio is dropped past it.
AUDIO_BACKLOG = 50
RECONNECT_BACKOFF_S = (0.25, 0.5, 1.0, 2.0, 5.0)
# Agent audio queued as the echo canceller's reference ahead of the microphone audio, at most.
MAX_REFERENCE_AHEAD_S = 30


class UserTurnHooks(Protocol):
    """What the conversation hears of the user's turn. Each comes after the client's event for it."""

    def on_speech_started(self, utterance_id: int, started_at: float) -> None: ...

    def on_interim(self, text: str) -> None: ...

    def is_echo(self, text: str) -> bool:
        """Whether a transcript is the agent's own voice: the client gets no transcript event for it."""
        ...

    def holds_final(self, text: str) -> bool:
        """Whether the conversation sends this final transcript itself, later (remade without the echo)."""
        ...

    def on_paused(self, text: str) -> None: ...

    def on_resumed(self) -> None: ...

    def on_turn_ended(self, text: str, timing: TurnTiming) -> None: ...

    def on_asr_error(self, code: str, message: str) -> None: ...


class AudioClock:
    """When the gateway received each point of the audio it sent to the ASR stream, so that
    the ASR's offsets (ms of audio since that stream began) become times on the gateway's clock."""

    def __init__(self, sample_rate: int, keep: int = 600) -> None:
        self._bytes_per_ms = sample_rate * 2 / 1000
        self._ends: collections.deque[float] = collections.deque(maxlen=keep)  # offset (ms) after each chunk
        self._received: collections.deque[float] = collections.deque(maxlen=keep)
        self._offset_ms = 0.0

    def restart(self) -> None:
        """A new ASR stream counts its offsets from zero."""
        self._ends.clear()
        self._received.clear()
        self._offset_ms = 0.0

    def sent(self, pcm: bytes, received_at: float) -> None:
        self._offset_ms += len(pcm) / self._bytes_per_ms
        self._ends.append(self._offset_ms)
        self._received.append(received_at)

    def at(self, offset_ms: float) -> float | None:
        """The perf_counter time the sample at ``offset_ms`` was captured, if it is still remembered;
        a chunk arrives when its last sample was captured, so earlier samples are dated back."""
        index = bisect.bisect_left(self._ends, offset_ms)
        if index == len(self._ends) or (index == 0 and offset_ms < self._ends[0] - 1000):
            return None
        return self._received[index] - (self._ends[index] - offset_ms) / 1000


class Listener:
    def __init__(
        self,
        asr: asr_pb2_grpc.AsrStub,
        recognition: asr_pb2.RecognitionConfig,
        hooks: UserTurnHooks,
        emit: Emit,
        *,
        max_chunk_ms: int,
        echo_cancellation: bool = False,
        speech_over_echo: bool = False,
    ) -> None:
        self._asr = asr
        self._recognition = recognition
        self._hooks = hooks
        self._emit = emit
        self._max_chunk_ms = max_chunk_ms
        self._sample_rate = recognition.audio.sample_rate_hz
        self._clock = AudioClock(self._sample_rate)
        # ASR requests waiting to be sent, with when their audio arrived and the mic sample it starts at;
        # None ends the stream.
        self._outgoing: asyncio.Queue[tuple[asr_pb2.RecognizeRequest, float, int] | None] = asyncio.Queue(AUDIO_BACKLOG)
        self._writer: asyncio.Task[None] | None = None  # grpc's task writing _outgoing to the call of the moment
        self._ending = False
        self.in_speech = False
        self._awaiting_final = False
        self._end_decided_at: float | None = None  # the ASR's end-of-turn decision reached the gateway
        self._speech_end_at: float | None = None  # the speech ended, by the clock of the audio received
        self._vad_wait_ms = 0.0
        self._interim_interval_ms = 0  # asked of the ASR by a RecognitionUpdate; 0: the config's
        self._canceller = _echo_canceller(self._sample_rate) if echo_cancellation else None
        self._timeline = EchoTimeline(self._sample_rate) if speech_over_echo else None
        self._mic_samples = 0  # microphone samples received
        self._play_end = 0  # where the client's playback of the agent's audio ends, in microphone samples
        self._stream_origin: int | None = None  # the mic sample the ASR stream's offset 0 is
        self._utterance = (0, 0)  # the last utterance's speech, in mic samples (start, end)
        self.utterance_id = 0  # the last utterance's, as the ASR numbered it

    @property
    def user_active(self) -> bool:
        """The user is speaking, or has finished and the final transcript is still to come."""
        return self.in_speech or self._awaiting_final

    def audio(self, pcm: bytes) -> None:
        """Raises InvalidArgument on a chunk that is not PCM16 of at most max_chunk_ms."""
        check_pcm16_chunk(pcm, self._sample_rate, self._max_chunk_ms)
        at = self._mic_samples
        self._mic_samples += len(pcm) // 2
        if self._timeline is not None:
            self._timeline.heard(pcm)
        if self._canceller is not None:
            self._canceller.may_switch = not self.in_speech
            pcm = self._canceller.process(pcm)
        with contextlib.suppress(asyncio.QueueFull):  # ASR down for long: drop, rather than grow without bound
            self._outgoing.put_nowait((asr_pb2.RecognizeRequest(audio=pcm), time.perf_counter(), at))

    def join_trace(self, utterance_id: int, headers: dict[str, str]) -> None:
        """Tells the ASR which trace the utterance's transcription joins."""
        context = asr_pb2.TraceContext(utterance_id=utterance_id, headers=headers)
        with contextlib.suppress(asyncio.QueueFull):
            self._outgoing.put_nowait((asr_pb2.RecognizeRequest(trace_context=context), 0.0, 0))

    def played(self, pcm: bytes, sample_rate: int) -> None:
        """Agent audio sent to the client: the reference for its echo (the canceller's, and the timeline's).
        The client plays each chunk from when it arrives or when the one before it ends; the microphone audio
        received so far marks "now" (the echo path's own delay, network and device, is found from the audio)."""
        if self._canceller is None and self._timeline is None:
            return
        now = self._mic_samples
        if self._play_end - now > MAX_REFERENCE_AHEAD_S * self._sample_rate:
            return  # the client sends no microphone audio while the agent talks: nothing to clean
        start = max(now, self._play_end)
        if self._canceller is not None:
            self._canceller.play(pcm, sample_rate, start)
        if self._timeline is not None:
            self._timeline.play(pcm, sample_rate, start)
        self._play_end = start + len(pcm) // 2 * self._sample_rate // sample_rate

    def playback_stopped(self) -> None:
        """The client was told to stop playing (an interruption): no more echo to expect."""
        if self._canceller is not None:
            self._canceller.stop_playing()
        if self._timeline is not None:
            self._timeline.stop_playing()
        self._play_end = self._mic_samples

    async def words_over_echo(self, timeout_s: float, since: int | None = None) -> HeardOverEcho:
        """The last utterance (so far, if it goes on; from mic sample ``since`` on, if given), which its
        transcript took for the agent's echo, with the echo removed (gateway/echo/path.py) and transcribed
        again when more than the echo was heard in it: the user's words over the echo."""
        if self._timeline is None:
            return HeardOverEcho(OverEcho.NO_ECHO)
        start, end = self._utterance
        if self.in_speech:
            end = self._mic_samples
        onset = DEFAULT_ONSET_PAD_MS * self._sample_rate // 1000  # as much before the speech as the ASR hears
        start = max(start - onset, since or 0)
        removed = await asyncio.to_thread(self._timeline.over_echo, start, end)
        if removed is None:
            log.debug("session: speech over the agent: no echo of the agent found in it")
            return HeardOverEcho(OverEcho.NO_ECHO, until=end)
        if removed.level_db < OVER_ECHO_LEVEL_DB:
            log.debug(
                "session: speech over the agent: the echo alone (%.1f dB left once the %.0f ms echo path is removed)",
                removed.level_db,
                removed.delay_ms,
            )
            return HeardOverEcho(OverEcho.ECHO_ONLY, until=end)
        log.info(
            "session: speech over the echo (%.1f dB left once the %.0f ms echo path is removed): transcribing it",
            removed.level_db,
            removed.delay_ms,
        )
        try:
            words = await asyncio.wait_for(self._transcribe(float_to_pcm16(removed.residual)), timeout_s)
        except (TimeoutError, grpc.aio.AioRpcError) as error:
            log.warning("session: transcribing the speech over the echo failed: %s", error)
            return HeardOverEcho(OverEcho.FAILED)
        log.debug("session: speech over the echo, transcribed again: %r", words)
        return HeardOverEcho(OverEcho.WORDS if words else OverEcho.NO_WORDS, words, until=end)

    async def echo_in_utterance(self) -> bool:
        """Whether the agent's echo is in the last utterance so far (the echo path fit finds it there)."""
        if self._timeline is None:
            return False
        start, end = self._utterance
        if self.in_speech:
            end = self._mic_samples
        onset = DEFAULT_ONSET_PAD_MS * self._sample_rate // 1000
        return await asyncio.to_thread(self._timeline.over_echo, start - onset, end) is not None

    async def _transcribe(self, pcm: bytes) -> str:
        """``pcm`` through a Recognize stream of its own, at once: its final transcripts, joined."""
        config = asr_pb2.RecognitionConfig()
        config.CopyFrom(self._recognition)
        config.interim_results = False
        step = self._sample_rate // 10 * PCM16_SAMPLE_BYTES  # 100 ms, whole samples at any rate (11025 Hz too)

        async def requests() -> AsyncIterator[asr_pb2.RecognizeRequest]:
            yield asr_pb2.RecognizeRequest(config=config)
            for offset in range(0, len(pcm), step):
                yield asr_pb2.RecognizeRequest(audio=pcm[offset : offset + step])

        texts = []
        async for event in self._asr.Recognize(requests()):
            if event.WhichOneof("event") == "final" and event.final.text.strip():
                texts.append(event.final.text.strip())
        return " ".join(texts)

    def interims_every(self, interval_ms: int) -> None:
        """Asks the ASR for an interim transcript every ``interval_ms`` of speech from now on (0: the
        RecognitionConfig's interval); nothing is sent when that is already the interval."""
        if interval_ms == self._interim_interval_ms:
            return
        self._interim_interval_ms = interval_ms
        update = asr_pb2.RecognitionUpdate(interim_interval_ms=interval_ms)
        with contextlib.suppress(asyncio.QueueFull):
            self._outgoing.put_nowait((asr_pb2.RecognizeRequest(update=update), 0.0, 0))

    def commit(self) -> None:
        """Ends the utterance in progress now (push to talk): the ASR stream is half-closed, which finishes
        it (its final says end_of_stream), and run() opens the next stream for the audio after it."""
        with contextlib.suppress(asyncio.QueueFull):
            self._outgoing.put_nowait(None)

    def end(self) -> None:
        """No more audio: the ASR finishes the utterance in progress, then the stream ends."""
        self._ending = True
        if self._outgoing.full():
            self._outgoing.get_nowait()
        self._outgoing.put_nowait(None)

    def close(self) -> None:
        self._ending = True
        self._stop_writer()
        if self._canceller is not None:
            self._canceller.close()
            self._canceller = None

    async def run(self) -> None:
        """Holds an ASR stream open until end(); reports a failure and reconnects with backoff."""
        failures = 0
        while True:
            call = self._asr.Recognize(self._requests())
            status = ServerStatus(call)  # the ASR's own status, even if it ends the stream mid-write
            try:
                async for event in call:
                    failures = 0
                    self._on_asr_event(event)
                if self._ending:
                    return  # the ASR finished after our half-close
                continue  # a commit ended that stream: the next utterance gets a new one
            except grpc.aio.AioRpcError as raised:
                error = status.of(raised)
                self._stop_writer()
                if self._ending:
                    return
                if _drained(error):  # the ASR shut down between utterances: nothing lost, go to another at once
                    log.info("session: the ASR stream was drained; reconnecting")
                    failures = 0
                    continue
                self._hooks.on_asr_error(error.code().name, f"speech recognition failed: {error.details()}")
                await asyncio.sleep(RECONNECT_BACKOFF_S[min(failures, len(RECONNECT_BACKOFF_S) - 1)])
                failures += 1

    async def _requests(self) -> AsyncIterator[asr_pb2.RecognizeRequest]:
        self._writer = asyncio.current_task()  # grpc's task that writes them: run() stops it
        self._clock.restart()
        yield asr_pb2.RecognizeRequest(config=self._recognition)
        if self._interim_interval_ms:  # a new stream (reconnect, commit) keeps what was asked of the last
            update = asr_pb2.RecognitionUpdate(interim_interval_ms=self._interim_interval_ms)
            yield asr_pb2.RecognizeRequest(update=update)
        self._stream_origin = None
        while (item := await self._outgoing.get()) is not None:
            request, received_at, at = item
            if request.audio:
                if self._stream_origin is None:
                    self._stream_origin = at
                self._clock.sent(request.audio, received_at)
            yield request

    def _stop_writer(self) -> None:
        """Stops the failed call's request task. grpc's cancel() does not, once the call has ended: it
        would wait on the audio queue and take the first chunk from the next call, which would lose it."""
        if self._writer is not None:
            self._writer.cancel()
            self._writer = None

    def _on_asr_event(self, event: asr_pb2.RecognizeResponse) -> None:
        kind = event.WhichOneof("event")
        if kind == "speech_started":
            started = event.speech_started
            self.in_speech = True
            self._utterance = (self._mic_sample(started.offset_ms), self._mic_samples)
            self.utterance_id = started.utterance_id
            self._emit(SpeechStarted(started.utterance_id, started.offset_ms))
            self._hooks.on_speech_started(
                started.utterance_id, self._clock.at(started.offset_ms) or time.perf_counter()
            )
        elif kind == "speech_ended":
            self._on_speech_ended(event.speech_ended)
        elif kind == "paused":
            self._hooks.on_paused(event.paused.transcript.text.strip())
        elif kind == "resumed":
            self._hooks.on_resumed()
        elif kind == "interim":
            text = event.interim.text.strip()
            if not self._hooks.is_echo(text):
                self._emit(_transcript(event.interim, final=False))
            self._hooks.on_interim(text)
        elif kind == "final":
            self._awaiting_final = False
            text = event.final.text.strip()
            if not self._hooks.is_echo(text) and not self._hooks.holds_final(text):
                self._emit(_transcript(event.final, final=True))
            timing = TurnTiming(
                final_at=time.perf_counter(),
                end_decided_at=self._end_decided_at,
                speech_end_at=self._speech_end_at,
                vad_wait_ms=self._vad_wait_ms,
            )
            self._hooks.on_turn_ended(event.final.text.strip(), timing)

    def _on_speech_ended(self, ended: asr_pb2.SpeechEnded) -> None:
        self.in_speech = False
        self._utterance = (self._utterance[0], self._mic_sample(ended.offset_ms))
        self._awaiting_final = True
        self._end_decided_at = time.perf_counter()
        self._speech_end_at = self._clock.at(ended.offset_ms)
        self._vad_wait_ms = float(ended.decision_offset_ms - ended.offset_ms)
        reason = asr_pb2.SpeechEnded.Reason.Name(ended.reason).removeprefix("REASON_").lower()
        self._emit(
            SpeechEnded(ended.utterance_id, ended.offset_ms, ended.decision_offset_ms, reason, self._speech_end_at)
        )

    def _mic_sample(self, offset_ms: int) -> int:
        """The mic sample at the ASR stream's ``offset_ms``."""
        return (self._stream_origin or 0) + offset_ms * self._sample_rate // 1000


def _echo_canceller(sample_rate: int) -> EchoCanceller | None:
    if sample_rate not in MIC_RATES:
        log.info("session: no echo cancellation at %d Hz input (AEC3 takes %s)", sample_rate, MIC_RATES)
        return None
    return create_echo_canceller(sample_rate)


def _transcript(transcript: asr_pb2.Transcript, *, final: bool) -> Transcript:
    return Transcript(
        utterance_id=transcript.utterance_id,
        text=transcript.text,
        final=final,
        start_ms=transcript.start_ms,
        end_ms=transcript.end_ms,
        processing_ms=transcript.processing_ms,
        inference_ms=transcript.inference_ms,
        reused=transcript.reused,
    )


def _drained(error: grpc.aio.AioRpcError) -> bool:
    return any(key == DRAINED_KEY for key, _ in error.trailing_metadata() or ())
