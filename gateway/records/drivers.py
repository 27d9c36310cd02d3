"""The two SQL drivers under SqlRecordStore: SQLite through aiosqlite, PostgreSQL through asyncpg."""

from __future__ import annotations

import asyncio
import contextlib
import re
from collections.abc import AsyncIterator, Sequence
from pathlib import Path
from typing import Any

import aiosqlite
import asyncpg

from gateway.records.sql import MIGRATION_LOCK_ID, Migration, now_ms

CREATE_MIGRATIONS_TABLE = (
    "CREATE TABLE IF NOT EXISTS schema_migrations"
    " (version INTEGER PRIMARY KEY, name TEXT NOT NULL, applied_at_ms BIGINT NOT NULL)"
)
RECORD_MIGRATION = "INSERT INTO schema_migrations (version, name, applied_at_ms) VALUES ($1, $2, $3)"
POSTGRES_PARAMETER = re.compile(r"\$(\d+)")


def statements(sql: str) -> list[str]:
    """A migration's statements: its lines without ``--`` comments, split at each ';'."""
    code = "\n".join(line for line in sql.splitlines() if not line.lstrip().startswith("--"))
    return [statement.strip() for statement in code.split(";") if statement.strip()]


class SqliteDatabase:
    """One connection (aiosqlite runs it on its own thread); WAL, so that other processes' readers never
    wait on the writer. One operation at a time: a transaction (BEGIN ... COMMIT, several awaits) never has
    another coroutine's statement inside it."""

    def __init__(self, connection: aiosqlite.Connection) -> None:
        self.connection = connection
        self._turn = asyncio.Lock()

    @classmethod
    async def connect(cls, path: Path) -> SqliteDatabase:
        path.parent.mkdir(parents=True, exist_ok=True)
        connection = await aiosqlite.connect(path, isolation_level=None)  # autocommit; BEGIN where needed
        await connection.execute("PRAGMA journal_mode=WAL")
        await connection.execute("PRAGMA busy_timeout=5000")
        return cls(connection)

    async def fetch(self, query: str, *args: Any) -> list[Sequence[Any]]:
        async with self._turn:
            return await self._fetch(query, *args)

    async def execute(self, query: str, *args: Any) -> int:
        async with self._turn:
            return await self._execute(query, *args)

    async def execute_many(self, query: str, rows: list[tuple[Any, ...]]) -> None:
        async with self._turn, self._transaction("BEGIN"):
            await self.connection.executemany(_numbered(query), rows)

    async def migrate(self, pending: list[Migration]) -> list[int]:
        async with self._turn:
            await self.connection.execute(CREATE_MIGRATIONS_TABLE)
            async with self._transaction("BEGIN IMMEDIATE"):  # a second process waits here (busy_timeout)
                applied = {row[0] for row in await self._fetch("SELECT version FROM schema_migrations")}
                done = []
                for migration in pending:
                    if migration.version in applied:
                        continue
                    for statement in statements(migration.sql):
                        await self.connection.execute(statement)
                    await self._execute(RECORD_MIGRATION, migration.version, migration.name, now_ms())
                    done.append(migration.version)
            return done

    async def _fetch(self, query: str, *args: Any) -> list[Sequence[Any]]:
        async with self.connection.execute(_numbered(query), args) as cursor:
            return list(await cursor.fetchall())

    async def _execute(self, query: str, *args: Any) -> int:
        async with self.connection.execute(_numbered(query), args) as cursor:
            return cursor.rowcount

    @contextlib.asynccontextmanager
    async def _transaction(self, begin: str) -> AsyncIterator[None]:
        await self.connection.execute(begin)
        try:
            yield
        except BaseException:
            await self.connection.execute("ROLLBACK")
            raise
        await self.connection.execute("COMMIT")

    async def close(self) -> None:
        await self.connection.close()


class PostgresDatabase:
    """A small asyncpg pool."""

    def __init__(self, pool: asyncpg.Pool) -> None:
        self.pool = pool

    @classmethod
    async def connect(cls, url: str) -> PostgresDatabase:
        pool = await asyncpg.create_pool(url, min_size=1, max_size=8, command_timeout=30)
        return cls(pool)

    async def fetch(self, query: str, *args: Any) -> list[Sequence[Any]]:
        return list(await self.pool.fetch(query, *args))

    async def execute(self, query: str, *args: Any) -> int:
        status = await self.pool.execute(query, *args)  # "DELETE 1", "INSERT 0 1", "UPDATE 2"
        last = status.rsplit(" ", 1)[-1]
        return int(last) if last.isdigit() else 0

    async def execute_many(self, query: str, rows: list[tuple[Any, ...]]) -> None:
        await self.pool.executemany(query, rows)  # one transaction

    async def migrate(self, pending: list[Migration]) -> list[int]:
        async with self.pool.acquire() as connection, connection.transaction():
            await connection.execute("SELECT pg_advisory_xact_lock($1)", MIGRATION_LOCK_ID)
            await connection.execute(CREATE_MIGRATIONS_TABLE)
            applied = {row[0] for row in await connection.fetch("SELECT version FROM schema_migrations")}
            done = []
            for migration in pending:
                if migration.version in applied:
                    continue
                await connection.execute(migration.sql)
                await connection.execute(RECORD_MIGRATION, migration.version, migration.name, now_ms())
                done.append(migration.version)
            return done

    async def close(self) -> None:
        await self.pool.close()


def _numbered(query: str) -> str:
    return POSTGRES_PARAMETER.sub(r"?\1", query)
