"""The RecordingStore backends, a folder and S3-compatible object storage, and the WAV export.

A recording is a run of numbered segments under its key (docs/conversations.md): each segment is written
whole, once (a rewrite of the same number replaces it), so a kill -9 loses at most the segment being
written. ``wav_chunks`` turns the segments into one stereo WAV file, streamed.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import re
import struct
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

from gateway.records.model import (
    RECORDING_CHANNELS,
    RECORDING_FRAME_BYTES,
    RECORDING_SAMPLE_BYTES,
    RECORDING_SAMPLE_RATE_HZ,
)

SEGMENT_SUFFIX = ".pcm"
SEGMENT_DIGITS = 8  # the name's width: names sort as numbers do
MAX_SEGMENT_NUMBER = 10**SEGMENT_DIGITS - 1
S3_DELETE_BATCH = 1000  # DeleteObjects takes at most this many keys
#: What a recording key may be (a conversation id is one): never a path, a dot file or a query.
KEY_PATTERN = re.compile(r"[A-Za-z0-9][A-Za-z0-9_-]{0,127}")


def segment_name(number: int) -> str:
    if not 0 <= number <= MAX_SEGMENT_NUMBER:
        raise ValueError(f"a segment number is in 0..{MAX_SEGMENT_NUMBER}, got {number}")
    return f"{number:0{SEGMENT_DIGITS}d}{SEGMENT_SUFFIX}"


def segment_number(name: str) -> int | None:
    stem = name.removesuffix(SEGMENT_SUFFIX)
    if name.endswith(SEGMENT_SUFFIX) and len(stem) == SEGMENT_DIGITS and stem.isdigit():
        return int(stem)
    return None


def checked_key(key: str) -> str:
    """A recording key is a safe name (KEY_PATTERN): never a path of its own."""
    if KEY_PATTERN.fullmatch(key) is None:
        raise ValueError(f"not a recording key: {key[:40]!r}")
    return key


class FolderRecordingStore:
    """``file:///DIR``: DIR/KEY/NNNNNNNN.pcm, each written to a temporary name and renamed into place."""

    def __init__(self, root: Path) -> None:
        self.root = root

    async def open(self) -> None:
        await asyncio.to_thread(self.root.mkdir, parents=True, exist_ok=True)

    async def close(self) -> None:
        pass

    async def put_segment(self, key: str, number: int, data: bytes) -> None:
        await asyncio.to_thread(self._put, self.root / checked_key(key), segment_name(number), data)

    async def list_segments(self, key: str) -> list[tuple[int, int]]:
        return await asyncio.to_thread(self._list, self.root / checked_key(key))

    async def get_segment(self, key: str, number: int) -> bytes:
        return await asyncio.to_thread((self.root / checked_key(key) / segment_name(number)).read_bytes)

    async def segments(self, key: str) -> AsyncIterator[bytes]:
        for number, _ in await self.list_segments(key):
            yield await self.get_segment(key, number)

    async def delete(self, key: str) -> None:
        await asyncio.to_thread(self._delete, self.root / checked_key(key))

    @staticmethod
    def _put(folder: Path, name: str, data: bytes) -> None:
        folder.mkdir(parents=True, exist_ok=True)
        partial = folder / f".{name}.{os.getpid()}.partial"
        partial.write_bytes(data)
        os.replace(partial, folder / name)  # atomic: a reader sees the old segment or the new, whole

    @staticmethod
    def _list(folder: Path) -> list[tuple[int, int]]:
        if not folder.is_dir():
            return []
        found = ((segment_number(path.name), path) for path in folder.iterdir())
        return sorted((number, path.stat().st_size) for number, path in found if number is not None)

    @staticmethod
    def _delete(folder: Path) -> None:
        if not folder.is_dir():
            return
        for path in folder.iterdir():
            path.unlink(missing_ok=True)
        with contextlib.suppress(OSError):  # a writer raced a new segment in: the next delete takes it
            folder.rmdir()


class S3RecordingStore:
    """``s3://BUCKET/PREFIX``: objects PREFIX/KEY/NNNNNNNN.pcm, through aioboto3.

    The endpoint, region and credentials come from the usual AWS settings (AWS_ENDPOINT_URL,
    AWS_REGION, AWS_ACCESS_KEY_ID, AWS_SECRET_ACCESS_KEY, a profile, an instance role); a custom
    endpoint (MinIO, Garage, moto, R2...) is addressed path-style.
    """

    def __init__(self, bucket: str, prefix: str, *, endpoint_url: str = "") -> None:
        self.bucket = bucket
        self.prefix = prefix.strip("/")
        self.endpoint_url = endpoint_url or os.environ.get("AWS_ENDPOINT_URL_S3") or os.environ.get("AWS_ENDPOINT_URL")
        self._stack = contextlib.AsyncExitStack()
        self._client: Any = None

    async def open(self) -> None:
        import aioboto3  # the gateway's extra: only an s3:// URL needs it
        from botocore.config import Config

        if self._client is not None:
            return
        config = Config(
            s3={"addressing_style": "path"} if self.endpoint_url else {},
            retries={"max_attempts": 3, "mode": "standard"},
            connect_timeout=5,
            read_timeout=30,
        )
        client = aioboto3.Session().client("s3", endpoint_url=self.endpoint_url or None, config=config)
        self._client = await self._stack.enter_async_context(client)

    async def close(self) -> None:
        self._client = None
        await self._stack.aclose()

    @property
    def client(self) -> Any:
        if self._client is None:
            raise RuntimeError("the recording store is not open")
        return self._client

    def _folder(self, key: str) -> str:
        return f"{self.prefix}/{checked_key(key)}/" if self.prefix else f"{checked_key(key)}/"

    async def put_segment(self, key: str, number: int, data: bytes) -> None:
        await self.client.put_object(Bucket=self.bucket, Key=self._folder(key) + segment_name(number), Body=data)

    async def list_segments(self, key: str) -> list[tuple[int, int]]:
        folder = self._folder(key)
        found = []
        async for item in self._objects(folder):
            number = segment_number(item["Key"][len(folder) :])
            if number is not None:
                found.append((number, int(item["Size"])))
        return sorted(found)

    async def get_segment(self, key: str, number: int) -> bytes:
        reply = await self.client.get_object(Bucket=self.bucket, Key=self._folder(key) + segment_name(number))
        async with reply["Body"] as body:
            return await body.read()

    async def segments(self, key: str) -> AsyncIterator[bytes]:
        for number, _ in await self.list_segments(key):
            yield await self.get_segment(key, number)

    async def delete(self, key: str) -> None:
        names = [item["Key"] async for item in self._objects(self._folder(key))]
        for start in range(0, len(names), S3_DELETE_BATCH):
            batch = [{"Key": name} for name in names[start : start + S3_DELETE_BATCH]]
            await self.client.delete_objects(Bucket=self.bucket, Delete={"Objects": batch, "Quiet": True})

    async def _objects(self, folder: str) -> AsyncIterator[dict[str, Any]]:
        paginator = self.client.get_paginator("list_objects_v2")
        async for page in paginator.paginate(Bucket=self.bucket, Prefix=folder):
            for item in page.get("Contents", ()):
                yield item


def wav_header(data_bytes: int) -> bytes:
    """A canonical 44-byte PCM WAV header for the recording's format and this much audio."""
    byte_rate = RECORDING_SAMPLE_RATE_HZ * RECORDING_FRAME_BYTES
    return (
        b"RIFF"
        + struct.pack("<I", 36 + data_bytes)
        + b"WAVE"
        + b"fmt "
        + struct.pack(
            "<IHHIIHH",
            16,
            1,  # PCM
            RECORDING_CHANNELS,
            RECORDING_SAMPLE_RATE_HZ,
            byte_rate,
            RECORDING_FRAME_BYTES,
            RECORDING_SAMPLE_BYTES * 8,
        )
        + b"data"
        + struct.pack("<I", data_bytes)
    )


#: Segment n of a recording covers [n * SEGMENT_MS, (n + 1) * SEGMENT_MS) of the conversation clock
#: (gateway/records/recorder.py writes them): a missing segment, or a short one's rest, is silence.
SEGMENT_MS = 2000
SEGMENT_BYTES = RECORDING_SAMPLE_RATE_HZ * SEGMENT_MS // 1000 * RECORDING_FRAME_BYTES


async def wav_chunks(store: Any, key: str) -> AsyncIterator[bytes]:
    """The recording as one stereo WAV file, in pieces: the header, then each segment in its place on the
    timeline, silence before a segment where one is missing or short (a segment cut short of a whole frame
    loses its tail, so that the channels never swap). Only the segments there when it starts: a
    conversation still recording exports what it has so far."""
    listed = sorted(await store.list_segments(key))
    whole = [(number, min(size - size % RECORDING_FRAME_BYTES, SEGMENT_BYTES)) for number, size in listed]
    total = listed[-1][0] * SEGMENT_BYTES + whole[-1][1] if listed else 0
    yield wav_header(total)
    position = 0
    for number, size in whole:
        if number * SEGMENT_BYTES > position:
            yield bytes(number * SEGMENT_BYTES - position)  # silence: nobody spoke, or a segment was dropped
            position = number * SEGMENT_BYTES
        if size:
            data = await store.get_segment(key, number)
            yield data[:size].ljust(size, b"\0")
            position += size
