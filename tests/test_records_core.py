"""The conversation's records, scripted (tests/scripted.py: the core on FAKE backends, a unit test of the
orchestration): the recorder's items, clock and recording, resume's history, and the writer's buffer.
The same on the real stack: test_conversation_records.py."""

from __future__ import annotations

import asyncio
import io
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pytest
import soundfile
from scripted import ScriptedLlm, ScriptedReply, ScriptedSession

from gateway.config import GatewayConfig
from gateway.events import AgentAudio, CancelReply, Interruption, SessionStarted, Truncate, Truncated, TurnMetrics
from gateway.records.ids import new_conversation_id
from gateway.records.memory import MemoryRecordStore
from gateway.records.model import RECORDING_SAMPLE_RATE_HZ, Header, Item, Role, Status
from gateway.records.recordings import FolderRecordingStore, wav_chunks
from gateway.records.sessions import Records
from gateway.records.writer import DROPS, RecordWriter
from gateway.session_settings import SessionChoices
from voice_agent.errors import NotFound

pytestmark = pytest.mark.unit

REPLY = ["Take", " two", " slow", " breaths", " before", " you", " start", " your", " talk", "."]
LEVEL = 4000


async def records_on(tmp_path: Path, **settings: object) -> Records:
    config = GatewayConfig()
    config.records.record = True
    for name, value in settings.items():
        setattr(config.records, name, value)
    recordings = FolderRecordingStore(tmp_path / "recordings")
    store = MemoryRecordStore()
    await store.open()
    await recordings.open()
    records = Records(config, store, recordings)
    records.start()
    return records


def begin(records: Records, caller: str = "alice") -> ScriptedSession:
    session_record = records.session(SessionChoices(input_sample_rate=16_000), record=None, memory=False)
    recorder = records.begin(new_conversation_id(), caller, session_record, "a coach")
    return ScriptedSession(recorder=recorder)


async def interrupted_turn(session: ScriptedSession) -> int:
    """The user asks; the reply plays ~600 ms; the client cancels it and says it played 400 ms."""
    session.tts.ms_per_char, session.tts.level = 40.0, LEVEL
    session.llm.replies(REPLY)
    await session.user_says("How do I calm down before a talk?")
    turn_id = (await session.next(AgentAudio)).turn_id
    await session.settle(0.6)  # the client plays it (the lead ahead is sent, not yet played)
    session.send(CancelReply())
    await session.next(Interruption)
    session.send(Truncate(turn_id, 400))
    await session.next(Truncated)
    return turn_id


async def test_the_record_has_the_items_in_spoken_order_on_one_clock_with_the_recording(tmp_path: Path) -> None:
    records = await records_on(tmp_path)
    async with begin(records) as session:
        turn_id = await interrupted_turn(session)
        session.llm.replies(["Sure."])
        await session.user_says("And then?")
        await session.next(TurnMetrics)
        await session.end()
    assert await records.flush(5)
    record = await records.store.get(session.conversation.conversation_id)
    assert record is not None and record.status == Status.ENDED and record.header.caller == "alice"
    assert record.last_turn_id == turn_id + 1 and record.recording_key == record.conversation_id
    user, agent, user2, agent2 = record.items
    assert (user.role, user.text) == (Role.USER, "How do I calm down before a talk?")
    assert agent.role == Role.AGENT and agent.text == "".join(REPLY)
    assert agent.interrupted and agent.heard_text == "Take two slow" and agent.heard
    assert user.start_ms <= user.end_ms <= agent.start_ms < agent.end_ms <= user2.start_ms < agent2.start_ms
    assert abs((agent.end_ms - agent.start_ms) - 400) <= 25  # cut where the client stopped playing
    assert agent.metrics["interrupted"] is True and "llm_ttft_ms" in agent.metrics
    assert (user2.text, agent2.text, agent2.interrupted) == ("And then?", "Sure.", False)
    # The recording: the agent on the right where its item is, nothing past the cut; the user's silence left.
    wav = b"".join([chunk async for chunk in wav_chunks(records.recordings, record.conversation_id)])
    audio, rate = soundfile.read(io.BytesIO(wav), dtype="int16")
    assert rate == RECORDING_SAMPLE_RATE_HZ and audio.shape[1] == 2
    right = np.flatnonzero(np.abs(audio[:, 1]) > LEVEL // 2) / (rate / 1000)
    first_run = right[right < agent.end_ms + 100]
    assert abs(first_run[0] - agent.start_ms) <= 25 and abs(first_run[-1] - agent.end_ms) <= 25
    assert not (right[(right > agent.end_ms + 30) & (right < agent2.start_ms - 30)]).any()
    assert not np.abs(audio[:, 0]).any()  # the scripted microphone sends silence: true zeros


async def test_a_dropped_stream_resumes_with_its_history_and_turn_ids(tmp_path: Path) -> None:
    records = await records_on(tmp_path)
    async with begin(records) as first:
        turn_id = await interrupted_turn(first)
        await first.drop()
    conversation_id = first.conversation.conversation_id
    with pytest.raises(NotFound):
        await records.resume(conversation_id, "mallory")  # another caller: as if there were none
    resumed = await records.resume(conversation_id, "alice")
    assert resumed.record.status == Status.DETACHED
    history = [
        {"role": "user", "content": "How do I calm down before a talk?"},
        {"role": "assistant", "content": "Take two slow"},
    ]
    assert resumed.resumption.history == history and resumed.resumption.last_turn_id == turn_id
    recorder = records.resumed(resumed)
    assert recorder.clock.ms() >= first.conversation._recorder.clock.ms() - 50  # type: ignore[union-attr]
    async with ScriptedSession(recorder=recorder, resumption=resumed.resumption) as second:
        started = second.of(SessionStarted)[0]
        assert started.conversation_id == conversation_id and started.resumed and started.last_turn_id == turn_id
        assert second.history() == history
        await second.until(lambda: second.llm.warmed)  # the resumed prompt, history and all, before its turn
        assert second.llm.warmed == [[{"role": "system", "content": second.settings.system_prompt}, *history]]
        second.llm.replies(["Breathe", " out."])
        await second.user_says("What next?")
        metrics = await second.next(TurnMetrics)
        assert metrics.turn_id == turn_id + 1
        await second.end()
    await records.flush(5)
    record = await records.store.get(conversation_id)
    assert record is not None and record.status == Status.ENDED
    assert [item.text for item in record.items][-2:] == ["What next?", "Breathe out."]
    with pytest.raises(NotFound):
        await records.resume(conversation_id, "alice")  # it ended


async def test_a_reply_cut_by_the_drop_is_marked_not_heard_where_none_played(tmp_path: Path) -> None:
    records = await records_on(tmp_path)
    async with begin(records) as session:
        gate = asyncio.Event()
        session.llm.replies(ScriptedReply(["Never", " sent."], gate))
        await session.user_says("Are you there?")
        await session.until(lambda: bool(session.reply_text(1)) or len(session.llm.requests) == 1)
        await session.drop()
    await records.flush(5)
    record = await records.store.get(session.conversation.conversation_id)
    assert record is not None and record.status == Status.DETACHED
    heard = [(item.role, item.heard) for item in record.items]
    assert heard in ([(Role.USER, True)], [(Role.USER, True), (Role.AGENT, False)])
    resumed = await records.resume(record.conversation_id, "alice")
    assert resumed.resumption.history == [{"role": "user", "content": "Are you there?"}]


class FlakyStore(MemoryRecordStore):
    """FAKE: a memory store whose writes fail while ``down`` (a store that went away), for the writer's test."""

    down = True

    async def add_items(self, conversation_id: str, items: list[Item]) -> None:
        if self.down:
            raise ConnectionError("the store is down")
        await super().add_items(conversation_id, items)


class FlakyRecordings:
    """FAKE: segments in a dict, failing while ``store.down``."""

    def __init__(self, store: FlakyStore) -> None:
        self.store = store
        self.segments: dict[int, bytes] = {}

    async def put_segment(self, key: str, number: int, data: bytes) -> None:
        if self.store.down:
            raise ConnectionError("the store is down")
        self.segments[number] = data


async def test_the_writer_keeps_every_transcript_and_drops_the_oldest_audio_while_the_store_is_down() -> None:
    store = FlakyStore()
    recordings = FlakyRecordings(store)
    writer = RecordWriter(store, recordings, max_writes=12, max_bytes=10_000)  # type: ignore[arg-type]
    writer.start()
    header = Header("conv_" + "0" * 24, "alice", "a coach", {}, 0)
    await store.start(header)
    dropped_before = DROPS.labels("audio")._value.get()
    for number in range(20):
        items = [Item(f"u{number}", Role.USER, f"said {number}", number, number + 1)]
        writer.put(lambda items=items: store.add_items(header.conversation_id, items), what="items")
        writer.put(lambda n=number: recordings.put_segment("k", n, b"x" * 1000), what="segment", size=1000, audio=True)
    await asyncio.sleep(0.3)
    assert not await writer.flush(0.2)  # the store is down: nothing is written
    store.down = False
    assert await writer.flush(10)
    record = await store.get(header.conversation_id)
    assert record is not None and [item.text for item in record.items] == [f"said {n}" for n in range(20)]
    kept = sorted(recordings.segments)
    assert kept == list(range(20 - len(kept), 20)) and len(kept) < 20  # the newest audio, the oldest dropped
    assert DROPS.labels("audio")._value.get() - dropped_before == 20 - len(kept)
    await writer.close(1)


async def test_memory_summarizes_an_ended_conversation_and_gives_it_to_the_next(tmp_path: Path) -> None:
    records = await records_on(tmp_path, memory=True)
    session_record = records.session(SessionChoices(input_sample_rate=16_000), record=False, memory=None)
    assert session_record.memory and await records.memory_for("alice", session_record) == ""
    recorder = records.begin(new_conversation_id(), "alice", session_record, "a coach")
    async with ScriptedSession(recorder=recorder) as session:
        records._llm = lambda: session.llm  # the summary asks the same (scripted) LLM
        session.llm.replies(["Breathe", " slowly."], ["Sam", " wants", " to", " calm", " down", " before", " talks."])
        await session.user_says("I am Sam and I get nervous before talks.")
        await session.next(TurnMetrics)
        await session.end()
    assert await records.flush(5)
    summary_request = session.llm.requests[-1]
    assert "Summarize" in summary_request[0]["content"] and "Client: I am Sam" in summary_request[1]["content"]
    record = await records.store.get(recorder.conversation_id)
    assert record is not None and record.summary == "Sam wants to calm down before talks."
    memory = await records.memory_for("alice", session_record)
    assert memory.endswith("- Sam wants to calm down before talks.") and "earlier sessions" in memory
    assert await records.memory_for("bob", session_record) == ""  # another caller's are not its own
    off = records.session(SessionChoices(input_sample_rate=16_000), record=False, memory=False)
    assert await records.memory_for("alice", off) == ""


async def test_a_summary_waits_until_no_conversation_is_live(tmp_path: Path) -> None:
    """The embedded LLM serves one request at a time: a summary written while a conversation is live would
    hold that conversation's next reply behind it. So it waits until this gateway is idle."""
    records = await records_on(tmp_path, memory=True)
    llm = ScriptedLlm()
    llm.replies(["Sam", " prepares", " a", " talk."])
    records._llm = lambda: llm
    live_ends = asyncio.Event()
    live = asyncio.create_task(records.serving_run(new_conversation_id(), live_ends.wait()))
    await asyncio.sleep(0)
    ended = SimpleNamespace(conversation_id=new_conversation_id())
    records.summarize(ended, [{"role": "user", "content": "I give a talk on Friday."}])  # type: ignore[arg-type]
    await asyncio.sleep(0.3)
    assert llm.requests == []  # a conversation is live: the summary waits
    live_ends.set()
    await live
    assert await records.flush(5)
    assert len(llm.requests) == 1 and "Client: I give a talk" in llm.requests[0][1]["content"]
