"""Object data path on top of the tables and blocks (design §10; Garage `api/s3/put.rs`, `get.rs`).

PutObject, small (< INLINE_THRESHOLD): one quorum write of the object entry, data inline.
If any step fails, the version is written Aborted to every reachable holder before the
error is returned (Aborted wins over Complete), so a write the client saw fail does not
appear later. Known limit: a holder that received the Complete entry and crashed before the
Aborted one reached it can still spread the Complete version when it comes back.
PutObject, large: the object entry is written "uploading" first (so an interrupted upload is
known and cleaned up), then the body is cut into `block_size` blocks while the client is
still sending; for each block, hashing runs in a thread and then the block write, the
version entry (one more block) and the block ref go out in parallel, with at most
`PUT_BLOCKS_IN_FLIGHT` blocks in flight (the next block is read while the previous one is
written). Last, the object entry becomes "complete": only then is the object visible. On
any failure the version is marked aborted (best effort) and the reactions clean up its
blocks; the caller gets the error, never a half-visible object.

GetObject: one quorum read of the object entry; inline data is answered at once; otherwise
the version entry is read in parallel with the first block, and block k+1 is fetched while
block k is being sent. DeleteObject: one quorum write of a delete marker.
"""

from __future__ import annotations

import asyncio
import hashlib
import os
import time
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING

from grange.model.s3.block_ref_table import BlockRef
from grange.model.s3.object_table import (
    INLINE_THRESHOLD,
    Aborted,
    Complete,
    DeleteMarker,
    FirstBlock,
    InlineData,
    Object,
    ObjectMeta,
    ObjectVersion,
    Uploading,
)
from grange.model.s3.version_table import Version, VersionBlock
from grange.table.crdt import Bool, CrdtMap
from grange.util.aio import first_error, run_all

if TYPE_CHECKING:
    from grange.model.model import Model

PUT_BLOCKS_IN_FLIGHT = 2
INLINE_HASH_MAX = 64 * 1024


class NoSuchKey(Exception):
    expected = True


@dataclass
class PutResult:
    version: bytes
    etag: str
    size: int


def new_uuid() -> bytes:
    return os.urandom(32)


def now_ms() -> int:
    return int(time.time() * 1000)


async def rechunk(body: AsyncIterator[bytes], size: int) -> AsyncIterator[bytes]:
    """Exactly `size`-byte pieces (the last one shorter) from arbitrary chunks."""
    buf = bytearray()
    async for chunk in body:
        buf += chunk
        while len(buf) >= size:
            yield bytes(buf[:size])
            del buf[:size]
    if buf:
        yield bytes(buf)


def _hash_block(md5: hashlib._Hash, data: bytes) -> bytes:  # type: ignore[name-defined]
    md5.update(data)
    return hashlib.blake2b(data, digest_size=32).digest()


async def put_object(model: Model, bucket_id: bytes, key: str, body: AsyncIterator[bytes],
                     headers: tuple[tuple[str, str], ...] = (),
                     late_headers: Callable[[], tuple[tuple[str, str], ...]] | None = None) -> PutResult:
    """Store an object; `late_headers()` adds headers known only once the body was read
    (checksums computed over it)."""
    block_size = model.config.block_size
    blocks = rechunk(body, block_size)
    first = await anext(blocks, b"")
    md5 = hashlib.md5()
    uuid, ts = new_uuid(), now_ms()
    try:
        if len(first) < INLINE_THRESHOLD:
            md5.update(first)
            etag = md5.hexdigest()
            headers = _with_late(headers, late_headers)
            data: InlineData | FirstBlock = InlineData(ObjectMeta(headers, len(first), etag), first)
            await model.object_table.insert(Object(bucket_id, key, (ObjectVersion(uuid, ts, Complete(data)),)))
            return PutResult(uuid, etag, len(first))

        await model.object_table.insert(Object(bucket_id, key, (ObjectVersion(uuid, ts, Uploading(False, headers)),)))
        size, first_hash = await _put_blocks(model, uuid, bucket_id, key, first, blocks, md5, part_number=0)
        etag = md5.hexdigest()
        data = FirstBlock(ObjectMeta(_with_late(headers, late_headers), size, etag), first_hash)
        await model.object_table.insert(Object(bucket_id, key, (ObjectVersion(uuid, ts, Complete(data)),)))
        return PutResult(uuid, etag, size)
    except BaseException:
        # The client gets an error: the version must never become visible, even where a
        # write without quorum landed. Aborted wins over Complete in the merge, so write it
        # to every holder we can reach (those are the ones that may have the write) and
        # wait for them, shielded from the caller's cancellation.
        aborted = Object(bucket_id, key, (ObjectVersion(uuid, ts, Aborted()),))
        await asyncio.shield(model.object_table.insert_best_effort(aborted))
        raise


def _with_late(headers: tuple[tuple[str, str], ...],
               late: Callable[[], tuple[tuple[str, str], ...]] | None) -> tuple[tuple[str, str], ...]:
    return tuple(sorted((*headers, *late()))) if late is not None else headers


async def _put_blocks(model: Model, uuid: bytes, bucket_id: bytes, key: str, first: bytes,
                      rest: AsyncIterator[bytes], md5: hashlib._Hash, part_number: int) -> tuple[int, bytes]:  # type: ignore[name-defined]
    """Store the blocks of one version; returns (total size, first block hash)."""
    slots = asyncio.Semaphore(PUT_BLOCKS_IN_FLIGHT)
    offset = 0
    first_hash = b""

    async def one(data: bytes, off: int) -> None:
        try:
            h = hashes[off]
            version = Version(uuid, Bool(False), CrdtMap.from_items([((part_number, off), VersionBlock(h, len(data)))]),
                              CrdtMap(), bucket_id, key)
            await run_all(
                model.blocks.rpc_put_block(h, data),
                model.version_table.insert(version),
                model.block_ref_table.insert(BlockRef(h, uuid, Bool(False))),
            )
        finally:
            slots.release()

    hashes: dict[int, bytes] = {}
    try:
        async with asyncio.TaskGroup() as tg:
            data = first
            while data:
                # md5 in order, one block at a time; off the loop unless the block is small
                # (hashing 64 KiB takes ~0.1 ms, less than a thread hop)
                if len(data) <= INLINE_HASH_MAX:
                    h = _hash_block(md5, data)
                else:
                    h = await asyncio.to_thread(_hash_block, md5, data)
                if not first_hash:
                    first_hash = h
                hashes[offset] = h
                await slots.acquire()
                tg.create_task(one(data, offset))
                offset += len(data)
                data = await anext(rest, b"")
    except BaseExceptionGroup as eg:
        raise first_error(eg) from None
    return offset, first_hash


async def get_object(model: Model, bucket_id: bytes, key: str) -> tuple[ObjectVersion, ObjectMeta, AsyncIterator[bytes]]:
    obj = await model.object_table.get(bucket_id, key)
    last = obj.last_data() if obj is not None else None
    if last is None:
        raise NoSuchKey(key)
    assert isinstance(last.state, Complete)
    data = last.state.data
    if isinstance(data, InlineData):
        async def inline() -> AsyncIterator[bytes]:
            yield data.data

        return last, data.meta, inline()
    assert isinstance(data, FirstBlock)
    version_task = asyncio.ensure_future(model.version_table.get(last.uuid))
    first_task = asyncio.ensure_future(model.blocks.rpc_get_block(data.first_block))
    try:
        version = await version_task
    except BaseException:
        first_task.cancel()
        raise
    if version is None or version.deleted.get():
        first_task.cancel()
        raise NoSuchKey(key)
    blocks = [b.hash for _, b in version.ordered_blocks()]
    return last, data.meta, _stream_blocks(model, blocks, first_task)


async def _stream_blocks(model: Model, hashes: list[bytes], first: asyncio.Future[bytes]) -> AsyncIterator[bytes]:
    nxt: asyncio.Future[bytes] | None = first
    try:
        for i in range(len(hashes)):
            assert nxt is not None
            cur = nxt
            nxt = asyncio.ensure_future(model.blocks.rpc_get_block(hashes[i + 1])) if i + 1 < len(hashes) else None
            yield await cur
    finally:
        if nxt is not None and not nxt.done():
            nxt.cancel()


async def delete_object(model: Model, bucket_id: bytes, key: str) -> None:
    marker = ObjectVersion(new_uuid(), now_ms(), Complete(DeleteMarker()))
    await model.object_table.insert(Object(bucket_id, key, (marker,)))


async def list_objects(model: Model, bucket_id: bytes, start: str | None = None, limit: int = 1000) -> list[Object]:
    return await model.object_table.get_range(bucket_id, start, filter="data", limit=limit)
