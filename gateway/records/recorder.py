"""The recorder: one conversation's record and recording, made from what the conversation does.

The Conversation hands it what it emits (its events), the user's audio as it arrives, the start of each
utterance and typed text; the recorder keeps only what it needs and hands its writes to the RecordWriter,
so that nothing here waits on a store. Every time is on one clock, the conversation clock: ms from the
conversation's start (``ConversationClock``, from the gateway's perf_counter, the clock of the Listener's
AudioClock and of the turns' playout).

- **Items in the order spoken.** A user item starts where the speech started (the Listener's clock of the
  audio) and ends where it ended (``SpeechEnded.at``), whenever its final transcript arrives; an agent
  item starts where its first audio plays at the client and ends where its last audio does, or where an
  interruption (or the client's Truncate) cut it, with the heard part marked. The store orders items by
  start, so a transcript that arrives after the reply it prompted still comes first.
- **The recording**: stereo PCM16 at 24 kHz, user left and agent right, on the same clock. The user's
  audio lies where it arrived (each chunk where it was captured, never overlapping the one before); the
  agent's where its playout was paced; an interruption removes what the client flushed. Silence is zeros.
  It is written in whole segments of ``SEGMENT_MS`` (segment n covers n*SEGMENT_MS onward; a missing one
  is silence) a few seconds behind the present, so that an interruption can still cut what was queued.
"""

from __future__ import annotations

import asyncio
import dataclasses
import logging
import time
from collections.abc import Callable
from dataclasses import dataclass, field

import numpy as np

from gateway import events
from gateway.records.model import RECORDING_SAMPLE_RATE_HZ, Header, Item, Role, Status
from gateway.records.recordings import SEGMENT_MS
from gateway.records.sql import now_ms
from gateway.records.writer import RecordWriter
from voice_agent.audio import float_to_pcm16, pcm16_to_float, resample

log = logging.getLogger(__name__)

#: How far behind the present the recording is written: an interruption (or a client's Truncate, which
#: follows it) may still cut agent audio queued up to the turn's lead ahead.
SETTLE_MS = 3000
FLUSH_INTERVAL_S = 1.0
SAMPLES_PER_MS = RECORDING_SAMPLE_RATE_HZ / 1000
RECENT_UTTERANCES = 16  # utterances still waiting for their final transcript


@dataclass
class ConversationClock:
    """ms on the conversation clock, from perf_counter readings: ``base_ms`` at ``origin`` (a resumed
    conversation's stream starts where the record left off)."""

    base_ms: float = 0.0
    origin: float = field(default_factory=time.perf_counter)

    def ms(self, at: float | None = None) -> float:
        return self.base_ms + ((time.perf_counter() if at is None else at) - self.origin) * 1000


@dataclass
class _Piece:
    """Audio placed on the timeline: ``pcm`` at ``rate``, from ``start_ms``."""

    start_ms: float
    pcm: bytes
    rate: int
    turn_id: int = 0
    text_end: int = 0

    @property
    def end_ms(self) -> float:
        return self.start_ms + len(self.pcm) / 2 / self.rate * 1000

    def cut(self, at_ms: float) -> _Piece | None:
        """What of it lies before ``at_ms``; None for nothing."""
        if at_ms <= self.start_ms:
            return None
        keep = int((at_ms - self.start_ms) * self.rate / 1000) * 2
        return dataclasses.replace(self, pcm=self.pcm[:keep]) if keep < len(self.pcm) else self


@dataclass
class _Utterance:
    start_ms: float
    end_ms: float | None = None


@dataclass
class _Reply:
    turn_id: int
    text: str = ""
    start_ms: float | None = None
    play_end_ms: float = 0.0
    cut_ms: float | None = None
    interrupted: bool = False
    heard_text: str | None = None
    metrics: dict[str, object] = field(default_factory=dict)
    written: bool = False

    def item(self, *, heard: bool = True) -> Item:
        start = self.start_ms if self.start_ms is not None else self.play_end_ms
        end = self.cut_ms if self.cut_ms is not None else self.play_end_ms
        return Item(
            item_id=f"a{self.turn_id}",
            role=Role.AGENT,
            text=self.text,
            start_ms=round(start),
            end_ms=round(max(start, end)),
            turn_id=self.turn_id,
            interrupted=self.interrupted,
            heard_text=self.heard_text if self.heard_text is not None else ("" if self.interrupted else self.text),
            heard=heard,
            metrics=dict(self.metrics),
        )


class Recorder:
    def __init__(
        self,
        header: Header,
        writer: RecordWriter,
        *,
        input_rate: int,
        record_audio: bool,
        clock: ConversationClock | None = None,
        resumed: bool = False,
    ) -> None:
        self.header = header
        self.conversation_id = header.conversation_id
        self.clock = clock or ConversationClock()
        self.record_audio = record_audio and writer.recordings is not None
        self._writer = writer
        self._input_rate = input_rate
        self._utterances: dict[int, _Utterance] = {}
        self._replies: dict[int, _Reply] = {}
        self._user: list[_Piece] = []
        self._agent: list[_Piece] = []
        self._user_end_ms = 0.0
        self._written_ms = float(np.ceil(self.clock.base_ms / SEGMENT_MS) * SEGMENT_MS)  # whole segments
        self._closed = False
        #: Called with the history when the stream ends (Records: the summary, with memory on).
        self.on_close: Callable[[list[dict[str, str]]], None] | None = None
        self._flusher: asyncio.Task[None] | None = None
        if not resumed:
            self._put(lambda: writer.records.start(header), "start")
            if self.record_audio:
                self._update(recording_key=self.conversation_id)
        else:
            self._update(status=Status.ACTIVE)
        if self.record_audio:
            self._flusher = asyncio.get_running_loop().create_task(self._flush_segments())

    # ---- what the conversation hands over (each cheap: no store, no audio work)

    def speech_started(self, utterance_id: int, started_at: float) -> None:
        self._utterances[utterance_id] = _Utterance(self.clock.ms(started_at))
        while len(self._utterances) > RECENT_UTTERANCES:  # speech that had no final (an echo, noise)
            del self._utterances[next(iter(self._utterances))]

    def user_audio(self, pcm: bytes) -> None:
        if not self.record_audio:
            return
        duration_ms = len(pcm) / 2 / self._input_rate * 1000
        start = max(self.clock.ms() - duration_ms, self._user_end_ms)  # captured just before it arrived
        self._user.append(_Piece(start, pcm, self._input_rate))
        self._user_end_ms = start + duration_ms

    def user_text(self, text: str) -> None:
        at = round(self.clock.ms())
        self._items(Item(item_id=f"u{at}", role=Role.USER, text=text, start_ms=at, end_ms=at))

    def observe(self, event: events.Event) -> None:
        match event:
            case events.SpeechEnded(utterance_id=utterance_id, at=at):
                utterance = self._utterances.setdefault(utterance_id, _Utterance(self.clock.ms(at)))
                utterance.end_ms = self.clock.ms(at)
            case events.Transcript(final=True):
                self._final(event)
            case events.AgentText(turn_id=turn_id, delta=delta):
                self._reply(turn_id).text += delta
            case events.AgentAudio():
                self._agent_audio(event)
            case events.Interruption(turn_id=turn_id, heard_text=heard):
                reply = self._reply(turn_id)
                reply.interrupted, reply.heard_text = True, heard
                self._cut(reply, self.clock.ms())  # the client flushes its playout now
            case events.Truncated(turn_id=turn_id, audio_end_ms=audio_end_ms, heard_text=heard):
                reply = self._reply(turn_id)
                reply.interrupted, reply.heard_text = True, heard
                self._cut(reply, (reply.start_ms or 0.0) + audio_end_ms)
                if reply.written:
                    self._items(reply.item())
            case events.InterruptionDecision(turn_id=turn_id):
                decisions = self._reply(turn_id).metrics.setdefault("decisions", [])
                decisions.append({"kind": event.kind, "decision_ms": round(event.decision_ms, 1), "text": event.text})  # type: ignore[union-attr]
            case events.TurnMetrics(turn_id=turn_id):
                reply = self._reply(turn_id)
                reply.metrics |= dataclasses.asdict(event)
                reply.written = True
                self._items(reply.item())
                self._update(last_turn_id=turn_id)
            case events.Error(turn_id=turn_id) if turn_id:
                self._reply(turn_id).metrics["error"] = {"code": event.code, "backend": event.backend}

    def _final(self, event: events.Transcript) -> None:
        if not event.text.strip():
            return
        utterance = self._utterances.pop(event.utterance_id, None)
        now = self.clock.ms()
        start = utterance.start_ms if utterance else now - (event.end_ms - event.start_ms)
        end = utterance.end_ms if utterance and utterance.end_ms is not None else now
        metrics: dict[str, object] = {"asr_processing_ms": round(event.processing_ms, 1), "reused": event.reused}
        item = Item(f"u{round(start)}", Role.USER, event.text, round(start), round(max(start, end)), metrics=metrics)
        self._items(item)

    def _reply(self, turn_id: int) -> _Reply:
        if turn_id not in self._replies:
            self._replies[turn_id] = _Reply(turn_id)
            for old in [t for t in self._replies if t < turn_id - 8]:  # a Truncate names recent turns only
                del self._replies[old]
        return self._replies[turn_id]

    def _agent_audio(self, event: events.AgentAudio) -> None:
        reply = self._reply(event.turn_id)
        start = max(self.clock.ms(), reply.play_end_ms)  # as the turn paces its playout
        if reply.start_ms is None:
            reply.start_ms = start
        piece = _Piece(start, event.audio, event.sample_rate_hz, event.turn_id, event.text_end)
        reply.play_end_ms = piece.end_ms
        if self.record_audio:
            self._agent.append(piece)

    def _cut(self, reply: _Reply, at_ms: float) -> None:
        reply.cut_ms = at_ms if reply.cut_ms is None else min(reply.cut_ms, at_ms)
        kept = []
        for piece in self._agent:
            if piece.turn_id == reply.turn_id and (piece := piece.cut(reply.cut_ms)) is None:  # type: ignore[assignment]
                continue
            kept.append(piece)
        self._agent = kept

    # ---- the end

    async def close(self, status: Status, transcript: list[dict[str, str]] | None = None) -> None:
        """The stream ended: a reply in flight is cut where its playout got to (what played before is marked
        heard; a reply none of which played, not heard), the rest of the recording and the status are
        written. ``status``: ENDED, or DETACHED where the client may resume."""
        if self._closed:
            return
        self._closed = True
        now = self.clock.ms()
        for reply in self._replies.values():
            if reply.written:
                continue
            played = [p for p in self._agent if p.turn_id == reply.turn_id and p.start_ms < now]
            self._cut(reply, now)
            reply.interrupted = True
            if reply.heard_text is None:
                reply.heard_text = reply.text[: max((p.text_end for p in played), default=0)].strip()
            if reply.text:
                self._items(reply.item(heard=bool(reply.heard_text)))
        if self._flusher is not None:
            self._flusher.cancel()
        if self.record_audio:
            end = max([self._user_end_ms, *(p.end_ms for p in self._agent)], default=self._written_ms)
            await self._write_segments(end)
        ended = {"ended_at_ms": now_ms()} if status == Status.ENDED else {}
        self._update(status=status, **ended)
        if self.on_close is not None and transcript:
            self.on_close(list(transcript))

    # ---- the recording

    async def _flush_segments(self) -> None:
        try:
            while True:
                await asyncio.sleep(FLUSH_INTERVAL_S)
                await self._write_segments(self.clock.ms() - SETTLE_MS, whole=True)
        except asyncio.CancelledError:
            pass
        except Exception:  # a bug: the recording stops, the conversation goes on
            log.exception("recorder: the recording of %s stopped", self.conversation_id)

    async def _write_segments(self, until_ms: float, *, whole: bool = False) -> None:
        """Mixes and hands over the segments from the last written up to ``until_ms`` (``whole``: only the
        segments that end before it; else the last one too, cut short)."""
        while True:
            start = self._written_ms
            end = start + SEGMENT_MS
            if (whole and end > until_ms) or start >= until_ms:
                return
            end = min(end, until_ms)
            user = [p for p in self._user if p.end_ms > start and p.start_ms < end]
            agent = [p for p in self._agent if p.end_ms > start and p.start_ms < end]
            if user or agent:  # a segment nobody spoke in is not written: a missing one is silence
                data = await asyncio.to_thread(_mix, start, end, user, agent)
                self._put_segment(round(start / SEGMENT_MS), data)
            self._written_ms = start + SEGMENT_MS
            self._user = [p for p in self._user if p.end_ms > self._written_ms]
            self._agent = [p for p in self._agent if p.end_ms > self._written_ms]

    # ---- the writes

    def _items(self, *items: Item) -> None:
        conversation_id, store = self.conversation_id, self._writer.records
        self._put(lambda: store.add_items(conversation_id, list(items)), f"items {items[0].item_id}", size=512)

    def _update(self, **fields: object) -> None:
        conversation_id, store = self.conversation_id, self._writer.records
        self._put(lambda: store.update(conversation_id, **fields), "update")  # type: ignore[arg-type]

    def _put_segment(self, number: int, data: bytes) -> None:
        recordings, key = self._writer.recordings, self.conversation_id
        assert recordings is not None
        write = lambda: recordings.put_segment(key, number, data)  # noqa: E731 - one write, retried as it is
        self._writer.put(write, what=f"segment {number}", size=len(data), audio=True)

    def _put(self, run: object, what: str, size: int = 256) -> None:
        self._writer.put(run, what=what, size=size)  # type: ignore[arg-type]


def _mix(start_ms: float, end_ms: float, user: list[_Piece], agent: list[_Piece]) -> bytes:
    """The stereo PCM16 of [start_ms, end_ms): user left, agent right, zeros where nobody spoke."""
    frames = round((end_ms - start_ms) * SAMPLES_PER_MS)
    stereo = np.zeros((frames, 2), dtype=np.float32)
    for channel, pieces in ((0, user), (1, agent)):
        for piece in pieces:
            samples = resample(pcm16_to_float(piece.pcm), piece.rate, RECORDING_SAMPLE_RATE_HZ)
            at = round((piece.start_ms - start_ms) * SAMPLES_PER_MS)
            first, last = max(at, 0), min(at + len(samples), frames)
            if first < last:
                stereo[first:last, channel] += samples[first - at : last - at]
    return float_to_pcm16(stereo.reshape(-1))
