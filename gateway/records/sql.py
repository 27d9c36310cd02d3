"""The RecordStore on SQL: SQLite (aiosqlite) and PostgreSQL (asyncpg), one set of queries for both.

The schema comes from the numbered files in migrations/ (portable SQL), applied in order on open and by
``voice-agent conversations migrate``; ``schema_migrations`` says which ran. Queries are written with
PostgreSQL's ``$1`` parameters; SQLite reads them as ``?1`` (its numbered form).
"""

from __future__ import annotations

import json
import re
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol

from gateway.records.model import Header, Item, Record, Role, Status

MIGRATIONS_DIR = Path(__file__).resolve().parent / "migrations"
MIGRATION_NAME = re.compile(r"^(\d{4})_[a-z0-9_]+\.sql$")
# Two replicas opening one PostgreSQL at once: the second waits for the first's migrations.
MIGRATION_LOCK_ID = 2_5_0_0_1

CONVERSATION_COLUMNS = (
    "conversation_id, caller, persona, settings_json, started_at_ms, status, updated_at_ms, ended_at_ms,"
    " last_turn_id, summary, recording_key"
)
ITEM_COLUMNS = "item_id, role, text, start_ms, end_ms, turn_id, interrupted, heard_text, heard, metrics_json"
UPDATABLE = ("status", "last_turn_id", "ended_at_ms", "summary", "recording_key")


@dataclass(frozen=True)
class Migration:
    version: int
    name: str
    sql: str


def migrations(folder: Path = MIGRATIONS_DIR) -> list[Migration]:
    """The numbered SQL files, in order; a gap or a duplicate number is a packaging bug."""
    found = []
    for path in sorted(folder.glob("*.sql")):
        match = MIGRATION_NAME.match(path.name)
        if match is None:
            raise ValueError(f"{path.name}: a migration is named NNNN_words.sql")
        found.append(Migration(int(match.group(1)), path.stem, path.read_text()))
    if [m.version for m in found] != list(range(1, len(found) + 1)):
        raise ValueError(f"the migrations in {folder} must be numbered 1, 2, ... without gaps")
    return found


def now_ms() -> int:
    return int(time.time() * 1000)


class Database(Protocol):
    """What SqlRecordStore needs of a driver."""

    async def fetch(self, query: str, *args: Any) -> list[Sequence[Any]]: ...

    async def execute(self, query: str, *args: Any) -> int:
        """Runs one statement; the number of rows it changed."""

    async def execute_many(self, query: str, rows: list[tuple[Any, ...]]) -> None: ...

    async def migrate(self, pending: list[Migration]) -> list[int]:
        """Applies each migration not yet applied, each in one transaction; the versions it applied."""

    async def close(self) -> None: ...


class SqlRecordStore:
    """A RecordStore over a Database; ``connect`` makes the Database on open."""

    def __init__(self, url: str, connect: Any) -> None:
        self.url = url
        self._connect = connect
        self._db: Database | None = None

    @property
    def db(self) -> Database:
        if self._db is None:
            raise RuntimeError("the record store is not open")
        return self._db

    async def open(self) -> None:
        if self._db is None:
            self._db = await self._connect()
            await self._db.migrate(migrations())

    async def migrate(self) -> list[int]:
        """The versions applied now (the CLI's ``migrate``): connects, migrates, and stays open."""
        if self._db is None:
            self._db = await self._connect()
        return await self._db.migrate(migrations())

    async def close(self) -> None:
        if self._db is not None:
            db, self._db = self._db, None
            await db.close()

    async def start(self, header: Header) -> None:
        await self.db.execute(
            f"INSERT INTO conversations ({CONVERSATION_COLUMNS}) VALUES ($1, $2, $3, $4, $5, $6, $7, 0, 0, '', '')"
            " ON CONFLICT (conversation_id) DO NOTHING",
            header.conversation_id,
            header.caller,
            header.persona,
            json.dumps(header.settings, sort_keys=True),
            header.started_at_ms,
            Status.ACTIVE.value,
            now_ms(),
        )

    async def add_items(self, conversation_id: str, items: list[Item]) -> None:
        if not items:
            return
        updates = ", ".join(f"{c} = excluded.{c}" for c in ITEM_COLUMNS.split(", ")[1:])
        await self.db.execute_many(
            f"INSERT INTO items (conversation_id, {ITEM_COLUMNS})"
            " VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11)"
            f" ON CONFLICT (conversation_id, item_id) DO UPDATE SET {updates}",
            [_item_row(conversation_id, item) for item in items],
        )

    async def update(self, conversation_id: str, **fields: Any) -> None:
        unknown = set(fields) - set(UPDATABLE)
        if unknown:
            raise TypeError(f"update() cannot set {', '.join(sorted(unknown))}")
        given = {name: value for name, value in fields.items() if value is not None}
        if "status" in given:
            given["status"] = Status(given["status"]).value
        given["updated_at_ms"] = now_ms()
        assignments = ", ".join(f"{name} = ${n}" for n, name in enumerate(given, start=2))
        await self.db.execute(
            f"UPDATE conversations SET {assignments} WHERE conversation_id = $1", conversation_id, *given.values()
        )

    async def get(self, conversation_id: str) -> Record | None:
        rows = await self.db.fetch(
            f"SELECT {CONVERSATION_COLUMNS} FROM conversations WHERE conversation_id = $1", conversation_id
        )
        if not rows:
            return None
        record = _record(rows[0])
        items = await self.db.fetch(
            f"SELECT {ITEM_COLUMNS} FROM items WHERE conversation_id = $1 ORDER BY start_ms, item_id", conversation_id
        )
        record.items = [_item(row) for row in items]
        return record

    async def list(self, caller: str | None, *, limit: int, before_ms: int = 0, before_id: str = "") -> list[Record]:
        """Newest first; ``before_ms``/``before_id``: the last of the previous page (ties on the start are
        ordered by id, so that a page never skips one)."""
        conditions, args = [], []
        if caller is not None:
            args.append(caller)
            conditions.append(f"caller = ${len(args)}")
        if before_ms:
            args += [before_ms, before_id]
            b, i = len(args) - 1, len(args)
            conditions.append(f"(started_at_ms < ${b} OR (started_at_ms = ${b} AND conversation_id < ${i}))")
        where = f" WHERE {' AND '.join(conditions)}" if conditions else ""
        args.append(limit)
        rows = await self.db.fetch(
            f"SELECT {CONVERSATION_COLUMNS} FROM conversations{where}"
            f" ORDER BY started_at_ms DESC, conversation_id DESC LIMIT ${len(args)}",
            *args,
        )
        return [_record(row) for row in rows]

    async def delete(self, conversation_id: str) -> bool:
        # Items first: SQLite enforces the foreign key only with a pragma; this order works without it.
        await self.db.execute("DELETE FROM items WHERE conversation_id = $1", conversation_id)
        return await self.db.execute("DELETE FROM conversations WHERE conversation_id = $1", conversation_id) > 0

    async def started_before(self, cutoff_ms: int, *, limit: int) -> list[str]:
        rows = await self.db.fetch(
            "SELECT conversation_id FROM conversations WHERE started_at_ms < $1"
            " ORDER BY started_at_ms, conversation_id LIMIT $2",
            cutoff_ms,
            limit,
        )
        return [row[0] for row in rows]

    async def summaries(self, caller: str, *, limit: int) -> list[str]:
        rows = await self.db.fetch(
            "SELECT summary FROM conversations WHERE caller = $1 AND summary <> ''"
            " ORDER BY started_at_ms DESC, conversation_id DESC LIMIT $2",
            caller,
            limit,
        )
        return [row[0] for row in rows]


def _item_row(conversation_id: str, item: Item) -> tuple[Any, ...]:
    return (
        conversation_id,
        item.item_id,
        Role(item.role).value,
        item.text,
        item.start_ms,
        item.end_ms,
        item.turn_id,
        item.interrupted,
        item.heard_text,
        item.heard,
        json.dumps(item.metrics, sort_keys=True),
    )


def _record(row: Sequence[Any]) -> Record:
    cid, caller, persona, settings, started, status, updated, ended, last_turn, summary, recording = row
    header = Header(cid, caller, persona, json.loads(settings), int(started))
    return Record(
        header,
        status=Status(status),
        updated_at_ms=int(updated),
        ended_at_ms=int(ended),
        last_turn_id=int(last_turn),
        summary=summary,
        recording_key=recording,
    )


def _item(row: Sequence[Any]) -> Item:
    item_id, role, text, start, end, turn, interrupted, heard_text, heard, metrics = row
    return Item(
        item_id,
        Role(role),
        text,
        int(start),
        int(end),
        turn_id=int(turn),
        interrupted=bool(interrupted),
        heard_text=heard_text,
        heard=bool(heard),
        metrics=json.loads(metrics),
    )
