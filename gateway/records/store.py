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
from pathlib import Path
from typing import Protocol
from urllib.parse import parse_qs, unquote, urlsplit

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

    async def list(self, caller: str | None, *, limit: int, before_ms: int = 0, before_id: str = "") -> list[Record]:
        """Newest first (by start, then by id), without items; ``caller`` None: every caller's (the
        operator's view); ``before_ms``/``before_id``: the start and id of the previous page's last (the
        next page: those after it in this order)."""

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

    async def list_segments(self, key: str) -> list[tuple[int, int]]:
        """(number, bytes) of each stored segment, by number; [] for an unknown key."""

    async def get_segment(self, key: str, number: int) -> bytes: ...

    def segments(self, key: str) -> AsyncIterator[bytes]:
        """The recording's segments in order."""

    async def delete(self, key: str) -> None:
        """Deletes every segment (an unknown key: nothing to do)."""


def open_record_store(url: str) -> RecordStore:
    """The RecordStore a URL names, not yet open: ``sqlite:///ABSOLUTE/PATH``, ``postgresql://...``
    (``postgres://`` too) or ``memory://`` (this process only). Raises ValueError for any other."""
    from gateway.records.sql import SqlRecordStore

    if url == "memory://":
        from gateway.records.memory import MemoryRecordStore

        return MemoryRecordStore()
    if url.startswith("sqlite://"):
        path = _absolute_path(url, "sqlite://")
        from gateway.records.drivers import SqliteDatabase

        return SqlRecordStore(url, lambda: SqliteDatabase.connect(path))
    if url.startswith(("postgresql://", "postgres://")):
        from gateway.records.drivers import PostgresDatabase

        return SqlRecordStore(url, lambda: PostgresDatabase.connect(url))
    raise ValueError(f"a record store URL is sqlite:///PATH or postgresql://..., got {redacted(url)!r}")


def open_recording_store(url: str) -> RecordingStore:
    """The RecordingStore a URL names, not yet open: ``file:///ABSOLUTE/DIR`` or ``s3://BUCKET[/PREFIX]``
    (the endpoint and credentials from the AWS settings; ``?endpoint=URL`` overrides the endpoint)."""
    from gateway.records.recordings import FolderRecordingStore, S3RecordingStore

    if url.startswith("file://"):
        return FolderRecordingStore(_absolute_path(url, "file://"))
    if url.startswith("s3://"):
        parts = urlsplit(url)
        if not parts.netloc:
            raise ValueError(f"an S3 URL names its bucket: s3://BUCKET/PREFIX, got {url!r}")
        endpoint = parse_qs(parts.query).get("endpoint", [""])[0]
        return S3RecordingStore(parts.netloc, parts.path, endpoint_url=endpoint)
    raise ValueError(f"a recording store URL is file:///DIR or s3://BUCKET/PREFIX, got {redacted(url)!r}")


def redacted(url: str) -> str:
    """The URL without its password, for logs and errors."""
    parts = urlsplit(url)
    if parts.password is None:
        return url
    netloc = parts.netloc.replace(f":{parts.password}@", ":***@")
    return parts._replace(netloc=netloc).geturl()


def _absolute_path(url: str, scheme: str) -> Path:
    path = Path(unquote(url[len(scheme) :].split("?", 1)[0]))
    if not path.is_absolute():
        raise ValueError(f"{scheme}/ URLs take an absolute path ({scheme}/var/lib/...), got {url!r}")
    return path
