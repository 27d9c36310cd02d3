"""The stores against real servers: one RecordStore suite on SQLite and on PostgreSQL 15, one
RecordingStore suite on a folder and on S3 (moto's standalone server), and the WAV export."""

from __future__ import annotations

import asyncio
import io
import itertools
import json
import os
import subprocess
import sys
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import asyncpg
import numpy as np
import pytest
import soundfile
from store_servers import MotoS3, Postgres, create_bucket, moto_s3_server, postgres_server

from gateway.records.access import ConversationAccess
from gateway.records.migrate import URL_VARIABLE
from gateway.records.model import RECORDING_FRAME_BYTES, RECORDING_SAMPLE_RATE_HZ, Header, Item, Role, Status
from gateway.records.recordings import SEGMENT_BYTES, wav_chunks
from gateway.records.retention import run_retention, sweep, sweep_interval_s
from gateway.records.sql import migrations
from gateway.records.store import RecordingStore, RecordStore, open_record_store, open_recording_store, redacted

_databases = itertools.count()


@pytest.fixture(scope="session")
def postgres() -> Iterator[Postgres]:
    with postgres_server() as server:
        yield server


@pytest.fixture(scope="session")
def moto_s3() -> Iterator[MotoS3]:
    with moto_s3_server() as server:
        yield server


async def fresh_database(postgres: Postgres) -> str:
    """A new empty database on the session's server: each test starts from no schema."""
    name = f"records_{next(_databases)}"
    connection = await asyncpg.connect(postgres.url())
    try:
        await connection.execute(f"CREATE DATABASE {name}")
    finally:
        await connection.close()
    return postgres.url(name)


async def url_of(kind: str, request: pytest.FixtureRequest, tmp_path: Path) -> str:
    if kind == "memory":
        return "memory://"
    if kind == "sqlite":
        return f"sqlite://{tmp_path / 'records.db'}"
    return await fresh_database(request.getfixturevalue("postgres"))


@pytest.fixture(params=["sqlite", "postgresql", "memory"])
async def record_url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    return await url_of(request.param, request, tmp_path)


@pytest.fixture(params=["sqlite", "postgresql"])
async def sql_url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    return await url_of(request.param, request, tmp_path)


@pytest.fixture
async def records(record_url: str) -> AsyncIterator[RecordStore]:
    store = open_record_store(record_url)
    await store.open()
    try:
        yield store
    finally:
        await store.close()


@pytest.fixture(params=["file", "s3"])
async def recordings(request: pytest.FixtureRequest, tmp_path: Path) -> AsyncIterator[RecordingStore]:
    if request.param == "file":
        store = open_recording_store(f"file://{tmp_path / 'recordings'}")
    else:
        s3: MotoS3 = request.getfixturevalue("moto_s3")
        bucket = f"recordings-{tmp_path.name.lower().replace('_', '-')}"[:63]
        create_bucket(s3, bucket)
        monkeypatch = request.getfixturevalue("monkeypatch")
        for name, value in s3.env.items():
            monkeypatch.setenv(name, value)
        store = open_recording_store(f"s3://{bucket}/voice/recordings")
    await store.open()
    try:
        yield store
    finally:
        await store.close()


def header(conversation_id: str, caller: str = "jwt:alice", started_at_ms: int = 1_000) -> Header:
    return Header(conversation_id, caller, "coach", {"voice": "af_heart", "latency_mode": "fast"}, started_at_ms)


def item(item_id: str, role: Role, start_ms: int, text: str = "hello", **extra: object) -> Item:
    return Item(item_id, role, text, start_ms, start_ms + 500, **extra)  # type: ignore[arg-type]


async def test_a_record_round_trips_with_its_items_in_speech_order(records: RecordStore) -> None:
    await records.start(header("c1"))
    agent = item(
        "a1", Role.AGENT, 900, "Tell me about a time you led.", turn_id=1, interrupted=True,
        heard_text="Tell me", metrics={"e2e_ms": 410.5, "decision": "end_of_turn"},
    )  # fmt: skip
    await records.add_items("c1", [agent, item("u1", Role.USER, 100, "I want to practise interviews")])
    await records.update("c1", status=Status.ENDED, ended_at_ms=9_000, last_turn_id=1, summary="Interviews.")

    record = await records.get("c1")
    assert record is not None
    assert record.header == header("c1")
    assert (record.status, record.ended_at_ms, record.last_turn_id, record.summary) == (
        Status.ENDED, 9_000, 1, "Interviews."
    )  # fmt: skip
    assert record.updated_at_ms > 0
    assert [i.item_id for i in record.items] == ["u1", "a1"]  # by start_ms, not by arrival
    assert record.items[1] == agent
    assert await records.get("missing") is None


async def test_writes_are_idempotent(records: RecordStore) -> None:
    await records.start(header("c1"))
    await records.start(Header("c1", "jwt:mallory", "other", {}, 5))  # a retried start changes nothing
    first = item("u1", Role.USER, 100, "draft")
    await records.add_items("c1", [first, item("a1", Role.AGENT, 600)])
    await records.add_items("c1", [item("u1", Role.USER, 100, "final"), item("a1", Role.AGENT, 600)])

    record = await records.get("c1")
    assert record is not None
    assert record.header.caller == "jwt:alice"
    assert [(i.item_id, i.text) for i in record.items] == [("u1", "final"), ("a1", "hello")]


async def test_list_pages_newest_first_per_caller_without_skipping_ties(records: RecordStore) -> None:
    starts = {"c1": 1_000, "c2": 2_000, "c3": 2_000, "c4": 3_000}
    for cid, started in starts.items():
        await records.start(header(cid, started_at_ms=started))
    await records.start(header("b1", caller="key:bob", started_at_ms=2_500))

    seen, before = [], (0, "")
    while page := await records.list("jwt:alice", limit=2, before_ms=before[0], before_id=before[1]):
        seen += [r.conversation_id for r in page]
        before = (page[-1].header.started_at_ms, page[-1].conversation_id)
    assert seen == ["c4", "c3", "c2", "c1"]
    assert [r.conversation_id for r in await records.list(None, limit=10)] == ["c4", "b1", "c3", "c2", "c1"]
    assert all(not r.items for r in await records.list(None, limit=10))


async def test_delete_retention_and_summaries(records: RecordStore) -> None:
    for n, started in enumerate([1_000, 2_000, 3_000]):
        await records.start(header(f"c{n}", started_at_ms=started))
        await records.add_items(f"c{n}", [item("u1", Role.USER, 0)])
    await records.update("c1", summary="Goals: STAR stories.")
    await records.update("c2", summary="Goals: salary talk.")

    assert await records.summaries("jwt:alice", limit=5) == ["Goals: salary talk.", "Goals: STAR stories."]
    assert await records.summaries("key:bob", limit=5) == []
    assert await records.started_before(2_500, limit=10) == ["c0", "c1"]
    assert await records.delete("c0") is True
    assert await records.delete("c0") is False
    assert await records.get("c0") is None
    assert await records.started_before(2_500, limit=10) == ["c1"]


async def test_migrations_apply_once_and_record_their_versions(sql_url: str) -> None:
    store = open_record_store(sql_url)
    try:
        assert await store.migrate() == [m.version for m in migrations()]  # type: ignore[attr-defined]
        assert await store.migrate() == []  # type: ignore[attr-defined]
        await store.open()  # opening a migrated store applies nothing and works
        await store.start(header("c1"))
    finally:
        await store.close()


def test_urls_name_their_backend_and_bad_ones_are_refused() -> None:
    for bad in ("mysql://db/x", "sqlite://relative.db", "s3:///no-bucket", "file://relative", ""):
        with pytest.raises(ValueError):
            open_record_store(bad) if not bad.startswith(("s3", "file")) else open_recording_store(bad)
    with pytest.raises(ValueError, match=r"\*\*\*") as refused:
        open_record_store("mysql://u:secret@db/x")
    assert "secret" not in str(refused.value)
    assert redacted("postgresql://u:pw@h:5432/d") == "postgresql://u:***@h:5432/d"


def test_the_migrate_command_migrates_a_database(postgres: Postgres) -> None:
    url = postgres.url()
    env_python = [sys.executable, "-m", "voice_ops.cli", "conversations", "migrate", "--url", url, "--json"]
    first = subprocess.run(env_python, capture_output=True, text=True, timeout=60, check=True)
    second = subprocess.run(env_python, capture_output=True, text=True, timeout=60, check=True)
    assert '"applied": [1' in first.stdout
    assert '"applied": []' in second.stdout
    job = [sys.executable, "-m", "gateway.records.migrate"]  # what the chart's hook Job runs
    done = subprocess.run(job, capture_output=True, text=True, timeout=60, env={**os.environ, URL_VARIABLE: url})
    assert json.loads(done.stdout) == {"url": url, "applied": []}
    refused = subprocess.run([*job, "--url", "postgresql://postgres@127.0.0.1:1/x"], capture_output=True, text=True)
    assert refused.returncode == 1 and "error" in json.loads(refused.stdout)


# ---- recordings


def stereo(frames: int, left: int, right: int) -> bytes:
    pcm = np.empty((frames, 2), np.int16)
    pcm[:, 0], pcm[:, 1] = left, right
    return pcm.tobytes()


async def test_segments_are_kept_in_order_and_replaced_by_number(recordings: RecordingStore) -> None:
    await recordings.put_segment("conv1", 1, b"\x01\x00\x02\x00" * 3)
    await recordings.put_segment("conv1", 0, b"\x00" * 8)
    await recordings.put_segment("conv1", 1, b"\x03\x00\x04\x00" * 2)  # a retried write replaces
    await recordings.put_segment("conv2", 0, b"\x09" * 4)

    assert await recordings.list_segments("conv1") == [(0, 8), (1, 8)]
    assert [s async for s in recordings.segments("conv1")] == [b"\x00" * 8, b"\x03\x00\x04\x00" * 2]
    await recordings.delete("conv1")
    assert await recordings.list_segments("conv1") == []
    assert await recordings.list_segments("conv2") == [(0, 4)]
    await recordings.delete("never-written")  # nothing to do, no error


async def test_the_wav_export_is_stereo_user_left_agent_right(recordings: RecordingStore) -> None:
    """Segments are fixed windows of the conversation clock (SEGMENT_MS): one missing is silence, and so is
    the rest of one cut short."""
    frames = SEGMENT_BYTES // RECORDING_FRAME_BYTES
    user, agent = stereo(frames // 2, 1000, 0), stereo(frames, 0, -2000)
    await recordings.put_segment("conv1", 0, user)  # half a window: the rest is silence
    await recordings.put_segment("conv1", 2, agent + b"\x07\x00")  # the last cut mid-frame; 1 is missing

    wav = b"".join([chunk async for chunk in wav_chunks(recordings, "conv1")])
    audio, rate = soundfile.read(io.BytesIO(wav), dtype="int16")
    assert rate == RECORDING_SAMPLE_RATE_HZ
    assert audio.shape == (3 * frames, 2)
    assert len(wav) == 44 + 3 * frames * RECORDING_FRAME_BYTES
    assert (audio[: frames // 2, 0] == 1000).all() and (audio[: frames // 2, 1] == 0).all()  # the user, left
    assert (audio[frames // 2 : 2 * frames] == 0).all()  # true silence between
    assert (audio[2 * frames :, 0] == 0).all() and (audio[2 * frames :, 1] == -2000).all()  # the agent, right


async def test_bad_recording_keys_are_refused(recordings: RecordingStore) -> None:
    for key in ("../etc", "a/b", "", ".hidden", "x" * 200):
        with pytest.raises(ValueError):
            await recordings.put_segment(key, 0, b"\0\0\0\0")
    with pytest.raises(ValueError):
        await recordings.put_segment("conv1", -1, b"")


# ---- retention


async def test_retention_deletes_old_conversations_with_their_recordings(
    records: RecordStore, recordings: RecordingStore
) -> None:
    access = ConversationAccess(records, recordings)
    now = 10_000_000
    for n, age_ms in enumerate([5_000_000, 3_000_000, 10]):
        cid = f"conv_{n:024x}"
        await records.start(header(cid, started_at_ms=now - age_ms))
        await records.update(cid, recording_key=cid)
        await recordings.put_segment(cid, 0, stereo(10, 1, 2))

    assert await sweep(access, retention_s=2_000, now_ms=now) == 2  # older than 2000 s: the first two
    assert [r.conversation_id for r in await records.list(None, limit=10)] == [f"conv_{2:024x}"]
    assert await recordings.list_segments(f"conv_{0:024x}") == []
    assert await recordings.list_segments(f"conv_{2:024x}") == [(0, 40)]
    assert await sweep(access, retention_s=2_000, now_ms=now) == 0


async def test_the_retention_task_sweeps_until_cancelled(records: RecordStore) -> None:
    await records.start(header("conv_" + "0" * 24, started_at_ms=1))  # 1970: older than any period
    task = asyncio.create_task(run_retention(ConversationAccess(records, None), retention_s=5.0))
    for _ in range(100):
        if not await records.list(None, limit=1):
            break
        await asyncio.sleep(0.05)
    assert await records.list(None, limit=1) == []
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    assert sweep_interval_s(5.0) == 1.0 and sweep_interval_s(90 * 86_400) == 3600.0


async def test_concurrent_writes_of_many_conversations_all_land(records: RecordStore) -> None:
    """The writer, the API's deletes and retention write at once: each batch is whole, none is lost."""
    ids = [f"conv_{n:024x}" for n in range(20)]

    async def write(cid: str) -> None:
        await records.start(header(cid))
        await records.add_items(cid, [item(f"u{n}", Role.USER, n * 100) for n in range(10)])
        await records.update(cid, status=Status.ENDED)

    await asyncio.gather(*(write(cid) for cid in ids))
    for cid in ids:
        record = await records.get(cid)
        assert record is not None and len(record.items) == 10 and record.status == Status.ENDED
