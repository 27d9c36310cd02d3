"""Who may read and delete which conversation record, and the records' wire forms (proto and JSON).

A caller reads and deletes its own conversations; an operator (gateway/auth.py's role) reads and
deletes every caller's. Another caller's conversation is NOT_FOUND, exactly as an unknown one is, so
that an id tells nothing about who owns it. Both fronts (gateway/records/serving.py: gRPC and HTTP) go
through ConversationAccess; the CLI reads the JSON form.
"""

from __future__ import annotations

import json
import logging
import re
import sqlite3
from collections.abc import AsyncIterator
from typing import Any

from gateway.auth import Caller
from gateway.records import ids
from gateway.records.ids import check_conversation_id
from gateway.records.model import Item, Record
from gateway.records.recordings import wav_chunks
from gateway.records.store import RecordingStore, RecordStore
from voice_agent.errors import InvalidArgument, NotFound, ServiceError, Unavailable
from voice_agent.v1 import conversations_pb2

log = logging.getLogger(__name__)

DEFAULT_PAGE_SIZE = 50
MAX_PAGE_SIZE = 1000
PAGE_TOKEN = re.compile(rf"(\d{{1,15}})\.({ids.PATTERN.pattern})")  # the previous page's last: start ms and id
RECORDING_CHUNK_BYTES = 64 * 1024  # well under gRPC's 4 MB message limit


def store_errors() -> tuple[type[BaseException], ...]:
    """What a store that is down or failing raises: the client gets UNAVAILABLE, and may retry."""
    errors: list[type[BaseException]] = [OSError, TimeoutError, sqlite3.Error]
    try:
        import asyncpg

        errors += [asyncpg.PostgresError, asyncpg.InterfaceError]
    except ImportError:  # pragma: no cover - the gateway extra installs it
        pass
    try:
        from botocore.exceptions import BotoCoreError, ClientError

        errors += [BotoCoreError, ClientError]
    except ImportError:  # pragma: no cover
        pass
    return tuple(errors)


class ConversationAccess:
    """The four operations, each checked against its caller."""

    def __init__(self, records: RecordStore, recordings: RecordingStore | None) -> None:
        self.records = records
        self.recordings = recordings
        self.store_failures = store_errors()

    async def list(self, caller: Caller, page_size: int, page_token: str) -> tuple[list[Record], str]:
        """A page, newest first, and the token of the next ("" when this is the last)."""
        if not 0 <= page_size <= MAX_PAGE_SIZE:
            raise InvalidArgument(f"page_size must be in 1..{MAX_PAGE_SIZE} (0: {DEFAULT_PAGE_SIZE}), got {page_size}")
        size = page_size or DEFAULT_PAGE_SIZE
        before_ms, before_id = _parse_page_token(page_token)
        owner = None if caller.is_operator else caller.name
        async with self._store("list conversations"):
            page = await self.records.list(owner, limit=size + 1, before_ms=before_ms, before_id=before_id)
        if len(page) <= size:
            return page, ""
        last = page[size - 1]
        return page[:size], f"{last.header.started_at_ms}.{last.conversation_id}"

    async def get(self, caller: Caller, conversation_id: str) -> Record:
        check_conversation_id(conversation_id)
        async with self._store("read a conversation"):
            record = await self.records.get(conversation_id)
        if record is None or not (caller.is_operator or record.header.caller == caller.name):
            raise NotFound(f"no conversation {conversation_id}")
        return record

    async def recording(self, caller: Caller, conversation_id: str) -> AsyncIterator[bytes]:
        """The WAV file, in pieces of at most RECORDING_CHUNK_BYTES; NotFound before the first if there is none."""
        record = await self.get(caller, conversation_id)
        if not record.recording_key or self.recordings is None:
            raise NotFound(f"conversation {conversation_id} has no recording")
        async with self._store("list the recording's segments"):
            chunks = wav_chunks(self.recordings, record.recording_key)
            header = await anext(chunks)
        if len(header) == 44 and header[40:44] == b"\0\0\0\0":
            raise NotFound(f"conversation {conversation_id} has no recording yet")
        return self._pieces(header, chunks)

    async def delete(self, caller: Caller, conversation_id: str) -> None:
        """The recording first, then the record: a failure between the two leaves the record, to delete again."""
        record = await self.get(caller, conversation_id)
        await self.erase(record)

    async def erase(self, record: Record) -> None:
        """Deletes a record and its recording, whoever owns it (the delete above, and retention)."""
        async with self._store("delete a conversation"):
            if record.recording_key and self.recordings is not None:
                await self.recordings.delete(record.recording_key)
            await self.records.delete(record.conversation_id)

    async def _pieces(self, header: bytes, chunks: AsyncIterator[bytes]) -> AsyncIterator[bytes]:
        yield header
        async with self._store("read the recording"):
            async for chunk in chunks:
                for start in range(0, len(chunk), RECORDING_CHUNK_BYTES):
                    yield chunk[start : start + RECORDING_CHUNK_BYTES]

    def _store(self, what: str) -> _StoreCall:
        return _StoreCall(what, self.store_failures)


class _StoreCall:
    """Turns a store's failure into UNAVAILABLE, logged with its cause (which the client never sees)."""

    def __init__(self, what: str, errors: tuple[type[BaseException], ...]) -> None:
        self.what = what
        self.errors = errors

    async def __aenter__(self) -> None:
        return None

    async def __aexit__(self, kind: type[BaseException] | None, error: BaseException | None, _: Any) -> bool:
        if error is None or isinstance(error, ServiceError) or not isinstance(error, self.errors):
            return False
        log.warning("could not %s: %s: %s", self.what, type(error).__name__, error)
        raise Unavailable(f"the conversation store is unavailable: could not {self.what}; retry later") from None


def _parse_page_token(token: str) -> tuple[int, str]:
    if not token:
        return 0, ""
    match = PAGE_TOKEN.fullmatch(token)
    if match is None:
        raise InvalidArgument("page_token is not one this API gave: pass a next_page_token back as it came")
    return int(match.group(1)), match.group(2)


# ---- the wire forms


def to_message(record: Record, *, with_items: bool = True) -> conversations_pb2.Conversation:
    header = record.header
    return conversations_pb2.Conversation(
        conversation_id=header.conversation_id,
        caller=header.caller,
        persona=header.persona,
        settings_json=json.dumps(header.settings, sort_keys=True),
        started_at_ms=header.started_at_ms,
        ended_at_ms=record.ended_at_ms,
        status=record.status.value,
        summary=record.summary,
        has_recording=bool(record.recording_key),
        items=[_item_message(item) for item in record.items] if with_items else [],
    )


def _item_message(item: Item) -> conversations_pb2.ConversationItem:
    return conversations_pb2.ConversationItem(
        role=item.role.value,
        text=item.text,
        start_ms=item.start_ms,
        end_ms=item.end_ms,
        turn_id=item.turn_id,
        interrupted=item.interrupted,
        heard_text=item.heard_text,
        metrics_json=json.dumps(item.metrics, sort_keys=True),
        undelivered=not item.heard,
    )


def to_json(message: conversations_pb2.Conversation, *, with_items: bool = True) -> dict[str, Any]:
    """The JSON form of a conversation (HTTP and the CLI): the proto's fields, its JSON strings as objects;
    a list's entries go without ``items``."""
    conversation = {
        "conversation_id": message.conversation_id,
        "caller": message.caller,
        "persona": message.persona,
        "settings": json.loads(message.settings_json or "{}"),
        "started_at_ms": message.started_at_ms,
        "ended_at_ms": message.ended_at_ms,
        "status": message.status,
        "summary": message.summary,
        "has_recording": message.has_recording,
        "items": [
            {
                "role": item.role,
                "text": item.text,
                "start_ms": item.start_ms,
                "end_ms": item.end_ms,
                "turn_id": item.turn_id,
                "interrupted": item.interrupted,
                "heard_text": item.heard_text,
                "undelivered": item.undelivered,
                "metrics": json.loads(item.metrics_json or "{}"),
            }
            for item in message.items
        ],
    }
    if not with_items:
        del conversation["items"]
    return conversation
