"""``memory://``: a RecordStore in this process only, lost on exit (the gateway's default outside the
embedded stack: resume works within the process, nothing is kept). The same behaviour as the SQL stores,
tested by the same suite (tests/test_records_store.py)."""

from __future__ import annotations

import copy
import dataclasses
from typing import Any

from gateway.records.model import Header, Item, Record, Status
from gateway.records.sql import UPDATABLE, now_ms


class MemoryRecordStore:
    def __init__(self) -> None:
        self._records: dict[str, Record] = {}
        self._items: dict[str, dict[str, Item]] = {}

    async def open(self) -> None:
        pass

    async def close(self) -> None:
        pass

    async def start(self, header: Header) -> None:
        if header.conversation_id not in self._records:
            self._records[header.conversation_id] = Record(copy.deepcopy(header), updated_at_ms=now_ms())
            self._items[header.conversation_id] = {}

    async def add_items(self, conversation_id: str, items: list[Item]) -> None:
        if items and conversation_id not in self._items:
            raise KeyError(f"no conversation {conversation_id}: start() it first")
        for item in items:
            self._items[conversation_id][item.item_id] = copy.deepcopy(item)

    async def update(self, conversation_id: str, **fields: Any) -> None:
        unknown = set(fields) - set(UPDATABLE)
        if unknown:
            raise TypeError(f"update() cannot set {', '.join(sorted(unknown))}")
        record = self._records.get(conversation_id)
        if record is None:
            return
        for name, value in fields.items():
            if value is not None:
                setattr(record, name, Status(value) if name == "status" else value)
        record.updated_at_ms = now_ms()

    async def get(self, conversation_id: str) -> Record | None:
        record = self._records.get(conversation_id)
        if record is None:
            return None
        items = sorted(self._items[conversation_id].values(), key=lambda i: (i.start_ms, i.item_id))
        return dataclasses.replace(copy.deepcopy(record), items=copy.deepcopy(items))

    async def list(self, caller: str | None, *, limit: int, before_ms: int = 0, before_id: str = "") -> list[Record]:
        def key(record: Record) -> tuple[int, str]:
            return record.header.started_at_ms, record.conversation_id

        chosen = [
            r
            for r in self._records.values()
            if (caller is None or r.header.caller == caller) and (not before_ms or key(r) < (before_ms, before_id))
        ]
        return [copy.deepcopy(r) for r in sorted(chosen, key=key, reverse=True)[:limit]]

    async def delete(self, conversation_id: str) -> bool:
        self._items.pop(conversation_id, None)
        return self._records.pop(conversation_id, None) is not None

    async def started_before(self, cutoff_ms: int, *, limit: int) -> list[str]:
        old = sorted(
            (r.header.started_at_ms, cid) for cid, r in self._records.items() if r.header.started_at_ms < cutoff_ms
        )
        return [cid for _, cid in old[:limit]]

    async def summaries(self, caller: str, *, limit: int) -> list[str]:
        mine = [r for r in await self.list(caller, limit=len(self._records)) if r.summary]
        return [r.summary for r in mine[:limit]]
