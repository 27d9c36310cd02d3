"""The two store interfaces, and the backend each URL names.

- RecordStore: the conversation records. ``sqlite:///PATH`` (the embedded default, in the stack's
  state folder) or ``postgresql://...`` (production).
- RecordingStore: the recordings. ``file:///DIR`` (the embedded default) or ``s3://BUCKET/PREFIX``
  (an S3-compatible service; the endpoint and credentials from the usual AWS settings).

Every write is idempotent (items by their item_id, recording segments by their number), so a writer
that retries after a failure never duplicates anything.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Protocol

from gateway.records.model import Header, Item, Record, Status


class RecordStore(Protocol):
    async def open(self) -> None:
        """Connects, and applies the migrations not yet applied."""

    async def close(self) -> None: ...

    async def start(self, header: Header) -> None:
        """Creates the record (a second call with the same id changes nothing)."""

    async def add_items(self, conversation_id: str, items: list[Item]) -> None:
        """Inserts or replaces items by (conversation_id, item_id)."""

    async def update(
        self,
        conversation_id: str,
        *,
        status: Status | None = None,
        last_turn_id: int | None = None,
        ended_at_ms: int | None = None,
        summary: str | None = None,
        recording_key: str | None = None,
    ) -> None:
        """Sets the given fields, and updated_at_ms to now."""

    async def get(self, conversation_id: str) -> Record | None:
        """The record with its items by start_ms; None if there is none."""

    async def list(self, caller: str | None, *, limit: int, before_ms: int = 0) -> list[Record]:
        """Newest first, without items; ``caller`` None: every caller's (the operator's view);
        ``before_ms``: only those started before it (the next page)."""

    async def delete(self, conversation_id: str) -> bool: ...

    async def started_before(self, cutoff_ms: int, *, limit: int) -> list[str]:
        """Ids of conversations started before ``cutoff_ms`` (retention)."""

    async def summaries(self, caller: str, *, limit: int) -> list[str]:
        """The caller's latest non-empty summaries, newest first (memory)."""


class RecordingStore(Protocol):
    async def open(self) -> None: ...

    async def close(self) -> None: ...

    async def put_segment(self, key: str, number: int, data: bytes) -> None:
        """Stores segment ``number`` of recording ``key`` (replacing one with that number)."""

    async def segments(self, key: str) -> AsyncIterator[bytes]:
        """The recording's segments in order."""

    async def delete(self, key: str) -> None: ...
