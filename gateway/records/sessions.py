"""What a conversation's stream asks of the records: a recorder for a new conversation, the resume of a
dropped one, the memory of the caller's earlier ones, and the summary written when one ends.

``Records`` is the gateway's one (GatewayApp holds it, over the stores it opened); both fronts use it.

- **Resume.** A conversation is resumable by its caller while it has not ended and its last write is
  within the resume window (a stream that drops without ending marks it DETACHED; a gateway killed
  outright leaves it ACTIVE, and the window still applies). Everything a resume needs is in the record
  store: the settings the conversation started with, and its items, from which the history is rebuilt
  as the client heard it (an interrupted reply as far as it was heard; one never delivered is left out).
  So a resume may land on another gateway process sharing the store. Another caller's id, an unknown one
  or an expired one: NOT_FOUND, alike. A stream of this process still serving the conversation (its
  connection dropped unnoticed) is closed first.
- **Memory.** A new conversation of a caller gets the latest summaries of its earlier ones (at most
  ``MEMORY_CHARS``) after its persona; when a conversation ends (or detaches), the LLM summarizes it in at
  most ``SUMMARY_TOKENS`` tokens, off the conversation's path, and the summary is kept in its record.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import logging
from collections.abc import Awaitable, Callable
from dataclasses import dataclass

from gateway.config import GatewayConfig
from gateway.llm import ChatClient, Reply
from gateway.records.ids import check_conversation_id
from gateway.records.model import Header, Record, Role, Status
from gateway.records.recorder import ConversationClock, Recorder
from gateway.records.recordings import SEGMENT_MS
from gateway.records.sql import now_ms
from gateway.records.store import RecordingStore, RecordStore
from gateway.records.writer import RecordWriter
from gateway.session_settings import SessionChoices
from voice_agent.errors import NotFound, Unavailable

log = logging.getLogger(__name__)

MEMORY_CHARS = 600  # ~150 tokens of earlier conversations in the persona
MEMORY_CONVERSATIONS = 3
SUMMARY_TOKENS = 60
SUMMARY_INPUT_CHARS = 4000  # the end of a long conversation is what a summary needs
STORE_TIMEOUT_S = 5.0
# A summary waits until no conversation is live here, since the embedded LLM serves one request at a time and
# a live conversation's next reply would queue behind it; a gateway never idle that long writes it anyway.
SUMMARY_MAX_WAIT_S = 300.0
MEMORY_PREFACE = "\n\nWhat you know from earlier sessions with this client:\n"
SUMMARY_PROMPT = (
    "Summarize this coaching session in one or two short sentences for the coach's notes: the client's goal,"
    " what was worked on, and what to follow up next time. Plain text, no labels."
)


@dataclass(frozen=True)
class SessionRecord:
    """What a stream asks of the records: its choices, and whether to record and remember."""

    choices: SessionChoices
    record: bool
    memory: bool

    def as_json(self) -> dict[str, object]:
        return {"choices": dataclasses.asdict(self.choices), "record": self.record, "memory": self.memory}

    @classmethod
    def from_json(cls, data: dict[str, object]) -> SessionRecord:
        choices = dict(data.get("choices") or {})  # type: ignore[call-overload]
        names = {f.name for f in dataclasses.fields(SessionChoices)}
        return cls(
            SessionChoices(**{k: v for k, v in choices.items() if k in names}),
            bool(data.get("record", False)),
            bool(data.get("memory", False)),
        )


@dataclass(frozen=True)
class Resumption:
    """A resumed conversation, for the Conversation: its history as heard, and where its turns got to."""

    history: list[dict[str, str]]
    last_turn_id: int


@dataclass
class Resumed:
    session: SessionRecord
    resumption: Resumption
    record: Record


class Records:
    def __init__(
        self,
        config: GatewayConfig,
        store: RecordStore,
        recordings: RecordingStore | None,
        llm: Callable[[], ChatClient] | None = None,
    ) -> None:
        records = config.records
        self.config = records
        self.store = store
        self.recordings = recordings
        self.writer = RecordWriter(
            store,
            recordings,
            max_writes=records.write_buffer_items,
            max_bytes=int(records.write_buffer_mb * 1024 * 1024),
        )
        self._llm = llm
        self._live: dict[str, Callable[[], Awaitable[None]]] = {}  # conversation id: what closes its stream
        self._summaries: set[asyncio.Task[None]] = set()
        self._idle = asyncio.Event()  # set while no conversation is live in this process
        self._idle.set()

    def start(self) -> None:
        self.writer.start()

    async def flush(self, timeout_s: float) -> bool:
        """Waits for the summaries being written and every write so far (the drain)."""
        if self._summaries:
            await asyncio.wait(list(self._summaries), timeout=timeout_s)
        return await self.writer.flush(timeout_s)

    async def close(self, timeout_s: float) -> bool:
        if self._summaries:
            await asyncio.wait(list(self._summaries), timeout=timeout_s)
        return await self.writer.close(timeout_s)

    def session(self, choices: SessionChoices, *, record: bool | None, memory: bool | None) -> SessionRecord:
        """A new conversation's: the session's record/memory switches over the gateway's."""
        return SessionRecord(
            choices,
            record=(self.config.record if record is None else record) and self.recordings is not None,
            memory=self.config.memory if memory is None else memory,
        )

    async def memory_for(self, caller: str, session: SessionRecord) -> str:
        """What the coach knows of the caller's earlier conversations, for the end of its persona ("" for
        none, memory off, or a store that does not answer in time: the conversation starts regardless)."""
        if not session.memory:
            return ""
        try:
            async with asyncio.timeout(STORE_TIMEOUT_S):
                summaries = await self.store.summaries(caller, limit=MEMORY_CONVERSATIONS)
        except Exception as error:  # the store is down: no memory this time
            log.warning("records: no memory for this conversation (%s: %s)", type(error).__name__, error)
            return ""
        notes = "\n".join(f"- {summary.strip()}" for summary in summaries if summary.strip())
        return MEMORY_PREFACE + notes[:MEMORY_CHARS] if notes else ""

    def begin(self, conversation_id: str, caller: str, session: SessionRecord, persona: str) -> Recorder:
        header = Header(conversation_id, caller, persona, session.as_json(), now_ms())
        recorder = Recorder(
            header, self.writer, input_rate=session.choices.input_sample_rate, record_audio=session.record
        )
        return self._remembering(recorder, session)

    def _remembering(self, recorder: Recorder, session: SessionRecord) -> Recorder:
        if session.memory:
            recorder.on_close = lambda transcript: self.summarize(recorder, transcript)
        return recorder

    async def resume(self, conversation_id: str, caller: str) -> Resumed:
        """The conversation to resume; NOT_FOUND for an unknown, ended or expired one, or another caller's;
        UNAVAILABLE where the store does not answer."""
        check_conversation_id(conversation_id)
        if (close_live := self._live.get(conversation_id)) is not None:
            await close_live()  # its connection dropped, and this process has not noticed yet
        await self.writer.flush(STORE_TIMEOUT_S)  # this process's writes of it first
        try:
            async with asyncio.timeout(STORE_TIMEOUT_S):
                record = await self.store.get(conversation_id)
        except Exception as error:
            raise Unavailable(f"the conversation store did not answer ({type(error).__name__}): try again") from error
        window_ms = self.config.resume_window_s * 1000
        if record is None or record.header.caller != caller:
            raise NotFound(f"no conversation {conversation_id} to resume")
        if record.status == Status.ENDED or now_ms() > record.updated_at_ms + window_ms:
            raise NotFound(
                f"conversation {conversation_id} can no longer be resumed: it ended, or its connection dropped"
                f" over {self.config.resume_window_s} s ago"
            )
        return Resumed(SessionRecord.from_json(record.header.settings), resumption_of(record), record)

    def resumed(self, resumed: Resumed) -> Recorder:
        """The recorder of a resumed conversation: its clock goes on from the conversation's start."""
        record, session = resumed.record, resumed.session
        base_ms = max(float(now_ms() - record.header.started_at_ms), max((i.end_ms for i in record.items), default=0))
        if session.record:
            base_ms = max(base_ms, float(-(-base_ms // SEGMENT_MS) * SEGMENT_MS))
        recorder = Recorder(
            record.header,
            self.writer,
            input_rate=session.choices.input_sample_rate,
            record_audio=session.record,
            clock=ConversationClock(base_ms),
            resumed=True,
        )
        return self._remembering(recorder, session)

    async def serving_run(self, conversation_id: str, run: Awaitable[None]) -> None:
        """Runs a stream's conversation, known to this process as live, so that a resume of it (its
        connection dropped, and the stream has not noticed yet) closes this one first."""
        task = asyncio.current_task()
        assert task is not None

        async def close() -> None:
            task.cancel()
            await asyncio.wait([task], timeout=STORE_TIMEOUT_S)

        self._live[conversation_id] = close
        self._idle.clear()
        try:
            await run
        finally:
            if self._live.get(conversation_id) is close:
                del self._live[conversation_id]
            if not self._live:
                self._idle.set()

    def summarize(self, recorder: Recorder, transcript: list[dict[str, str]]) -> None:
        """Writes the conversation's summary, in the background: the stream that ended does not wait."""
        if self._llm is None or not any(turn["role"] == "user" for turn in transcript):
            return
        task = asyncio.create_task(self._summarize(recorder.conversation_id, transcript))
        self._summaries.add(task)
        task.add_done_callback(self._summaries.discard)

    async def _summarize(self, conversation_id: str, transcript: list[dict[str, str]]) -> None:
        assert self._llm is not None
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self._idle.wait(), SUMMARY_MAX_WAIT_S)
        lines = "\n".join(f"{'Client' if t['role'] == 'user' else 'Coach'}: {t['content']}" for t in transcript)
        messages = [
            {"role": "system", "content": SUMMARY_PROMPT},
            {"role": "user", "content": lines[-SUMMARY_INPUT_CHARS:]},
        ]
        client = self._llm()
        try:
            reply, text = Reply(), []
            async for delta in client.stream(messages, reply):
                text.append(delta)
            summary = " ".join("".join(text).split())[: SUMMARY_TOKENS * 6]
        except Exception as error:  # no summary this time: the conversation is kept regardless
            log.warning("records: no summary of %s (%s: %s)", conversation_id, type(error).__name__, error)
            return
        finally:
            await client.close()
        if summary:
            store = self.store
            self.writer.put(lambda: store.update(conversation_id, summary=summary), what="summary")


def resumption_of(record: Record) -> Resumption:
    """The history as the client heard it: the user's words, and of each reply what was heard."""
    history: list[dict[str, str]] = []
    for item in record.items:
        if item.role == Role.USER:
            history.append({"role": "user", "content": item.text})
        elif item.heard:
            said = item.heard_text if item.interrupted else item.text
            if said.strip():
                history.append({"role": "assistant", "content": said.strip()})
    last_turn_id = max([record.last_turn_id, *(item.turn_id for item in record.items)])
    return Resumption(history, last_turn_id)
