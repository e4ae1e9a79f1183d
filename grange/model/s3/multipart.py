"""Multipart uploads on top of the tables and blocks (Garage `api/s3/multipart.rs`, model side).

Theory of operation
-------------------
An upload is two entries under one fresh 32-byte uuid, the upload id:

- a version of the object entry in state `Uploading(multipart=True, headers)`, stamped after
  every version the object already has (`next_timestamp`: the object merge drops whatever
  precedes the last complete version, so an older stamp would make the upload vanish). It is
  what ListMultipartUploads lists, and what completion and abort turn into `Complete` or
  `Aborted`;
- a `multipart_upload` entry holding the parts: (part number, timestamp) → MpuPart(version,
  etag, size). The mpu entry is written first: an interrupted creation leaves at worst an
  empty mpu entry nobody can reach, never a listed upload that cannot be aborted.

Each part is its own version (fresh uuid), so re-uploading part N never overwrites data in
place. `store_part` writes, in order: (1) the mpu entry gets (N, ts) → MpuPart(version) with
no etag, which makes the version the upload's (deleting the upload deletes it); (2) the part's
blocks, each with its version entry and block ref (as `objects._put_blocks`, but a block may
also be an existing one that is referenced instead of stored again: UploadPartCopy); (3) the
mpu part gets its etag (md5 of the part) and size: the part is finished. If anything fails
after (1), the part version is marked deleted (best effort; otherwise the upload's deletion
collects it). A part number's *newest finished* entry is the part: ListParts and completion
agree on that, so a failed re-upload does not hide the previous good one.

Completion checks the client's list (ascending part numbers, each one a finished part with
that ETag, every part but the last at least `MIN_PART_SIZE`), then writes:
(1) the final version entry under the upload id, listing the chosen parts' blocks keyed
(i, offset within part) for the i-th listed part, i from 1 (Garage renumbers the parts; GET
`partNumber=i` then reads the i-th part); (2) a block ref per block for the upload id;
(3) the object version `Complete(FirstBlock(meta, first block))` — only now is the object
visible; (4) the mpu entry deleted, which deletes the part versions and so their block refs;
the blocks stay, held by the refs of (2). ETag: md5 of the concatenated binary part md5s,
then ``-<number of parts>`` (AWS's rule).

Abort writes the upload's object version `Aborted`; the object table's reaction deletes its
version entry and its mpu entry, which deletes the part versions and their block refs.

Errors are model exceptions (`MultipartError` subclasses named after the S3 codes); the API
layer maps them to S3 answers.

Known limits (shared with Garage):
- a part written while the upload is being aborted may land after the mpu entry was deleted
  (a deleted mpu entry forgets its parts): its version and block refs are then orphaned
  until a version/block-ref repair;
- a completion that fails after writing the final version entry, retried with a different
  list of parts, merges both lists' blocks into that entry (the version uuid is the upload
  id): a client must retry with the same list;
- per-part checksums are not kept (MpuPart has no field for them), so a completed upload
  carries no composite ``x-amz-checksum-*`` value.
"""

from __future__ import annotations

import asyncio
import hashlib
import logging
from collections.abc import AsyncIterator, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING

from grange.model.s3.block_ref_table import BlockRef
from grange.model.s3.mpu_table import MpuPart, MultipartUpload
from grange.model.s3.object_table import (
    Aborted,
    Complete,
    FirstBlock,
    InlineData,
    Object,
    ObjectMeta,
    ObjectVersion,
    Uploading,
)
from grange.model.s3.objects import PUT_BLOCKS_IN_FLIGHT, new_uuid, now_ms, rechunk
from grange.model.s3.version_table import Version, VersionBlock
from grange.table.crdt import Bool, CrdtMap, Lww
from grange.util.aio import first_error, run_all

if TYPE_CHECKING:
    from grange.model.model import Model

log = logging.getLogger("grange.model.multipart")

#: AWS: every part but the last must hold at least 5 MiB. Read at call time, so in-process
#: tests may monkeypatch it (or pass `min_part_size`).
MIN_PART_SIZE = 5 * 1024 * 1024
#: AWS: part numbers go from 1 to 10,000.
PART_NUMBER_MAX = 10_000
UPLOAD_ID_LEN = 32


# ---------------------------------------------------------------------- errors
class MultipartError(Exception):
    """A client's mistake about an upload; the class name is the S3 error code."""

    expected = True


class NoSuchUpload(MultipartError):
    pass


class InvalidPart(MultipartError):
    pass


class InvalidPartOrder(MultipartError):
    pass


class EntityTooSmall(MultipartError):
    pass


# ---------------------------------------------------------------------- records
@dataclass(frozen=True, slots=True)
class Upload:
    """An upload in progress: its object entry, its `Uploading` version, its mpu entry."""

    object: Object
    version: ObjectVersion
    mpu: MultipartUpload

    @property
    def upload_id(self) -> bytes:
        return self.version.uuid

    @property
    def headers(self) -> tuple[tuple[str, str], ...]:
        assert isinstance(self.version.state, Uploading)
        return self.version.state.headers


@dataclass(frozen=True, slots=True)
class Piece:
    """A piece of a part's data, stored as one block; `stored` is the hash of an existing
    block holding exactly `data`, referenced instead of being stored again."""

    data: bytes
    stored: bytes | None = None


@dataclass(frozen=True, slots=True)
class PartResult:
    version: bytes
    etag: str
    size: int
    timestamp: int


@dataclass(frozen=True, slots=True)
class ListedPart:
    number: int
    timestamp: int
    etag: str
    size: int
    version: bytes


@dataclass(frozen=True, slots=True)
class CompleteResult:
    etag: str
    size: int
    timestamp: int


# ---------------------------------------------------------------------- pure helpers
def decode_upload_id(text: str) -> bytes:
    """The uuid of a hex upload id; anything else names no upload."""
    try:
        raw = bytes.fromhex(text)
    except ValueError:
        raise NoSuchUpload(f"Invalid upload id {text!r}") from None
    if len(raw) != UPLOAD_ID_LEN:
        raise NoSuchUpload(f"Invalid upload id {text!r}")
    return raw


def next_timestamp(obj: Object | None) -> int:
    """A stamp for a new version of `obj`: now, but after every version it has (Garage
    `next_timestamp`), so that the new version sorts last even under clock skew."""
    now = now_ms()
    if obj is None or not obj.versions:
        return now
    return max(now, max(v.timestamp for v in obj.versions) + 1)


def finished_parts(mpu: MultipartUpload) -> list[ListedPart]:
    """Each part number's newest finished entry, by part number."""
    out: dict[int, ListedPart] = {}
    for (number, ts), p in mpu.parts.items():  # sorted by (number, ts): newer overwrite older
        if p.etag is not None and p.size is not None:
            out[number] = ListedPart(number, ts, p.etag, p.size, p.version)
    return [out[n] for n in sorted(out)]


def _part_timestamp(mpu: MultipartUpload, number: int) -> int:
    """A stamp for a new entry of part `number`, after every existing one of that number."""
    now = now_ms()
    stamps = [ts for (n, ts), _ in mpu.parts.items() if n == number]
    return max(now, max(stamps) + 1) if stamps else now


def _mpu_delta(upload: Upload, key: tuple[int, int], part: MpuPart) -> MultipartUpload:
    mpu = upload.mpu
    return MultipartUpload(mpu.upload_id, mpu.timestamp, Bool(False), CrdtMap.from_items([(key, part)]),
                           mpu.bucket_id, mpu.key)


# ---------------------------------------------------------------------- reads
async def get_upload(model: Model, bucket_id: bytes, key: str, upload_id: bytes) -> Upload:
    """The upload `upload_id` of this object, in progress; else NoSuchUpload."""
    obj, mpu = await run_all(model.object_table.get(bucket_id, key), model.mpu_table.get(upload_id))
    if obj is None or mpu is None or mpu.deleted.get():
        raise NoSuchUpload()
    for v in obj.versions:
        if v.uuid == upload_id and v.is_uploading(multipart=True):
            return Upload(obj, v, mpu)
    raise NoSuchUpload()


# ---------------------------------------------------------------------- writes
async def create_upload(model: Model, bucket_id: bytes, key: str, headers: tuple[tuple[str, str], ...]) -> Upload:
    """Start an upload: its mpu entry, then its `Uploading` object version."""
    existing = await model.object_table.get(bucket_id, key)
    upload_id, ts = new_uuid(), next_timestamp(existing)
    mpu = MultipartUpload.new(upload_id, ts, bucket_id, key)
    await model.mpu_table.insert(mpu)
    version = ObjectVersion(upload_id, ts, Uploading(True, headers))
    obj = Object(bucket_id, key, (version,))
    await model.object_table.insert(obj)
    return Upload(obj, version, mpu)


async def put_part(model: Model, bucket_id: bytes, key: str, upload_id: bytes, part_number: int,
                   body: AsyncIterator[bytes]) -> PartResult:
    """UploadPart: the body cut into `block_size` blocks, stored as part `part_number`.

    The upload is looked up while the first block is read (as Garage does)."""
    blocks = rechunk(body, model.config.block_size)
    upload, first = await run_all(get_upload(model, bucket_id, key, upload_id), anext(blocks, b""))

    async def pieces() -> AsyncIterator[Piece]:
        if first:
            yield Piece(first)
        async for block in blocks:
            yield Piece(block)

    return await store_part(model, upload, part_number, pieces())


async def store_part(model: Model, upload: Upload, part_number: int, pieces: AsyncIterator[Piece]) -> PartResult:
    """Store `pieces` as a new entry of part `part_number` (see the module docstring)."""
    assert 1 <= part_number <= PART_NUMBER_MAX
    version = new_uuid()
    mpu_key = (part_number, _part_timestamp(upload.mpu, part_number))
    bucket_id, key = upload.object.bucket_id, upload.object.key
    await model.mpu_table.insert(_mpu_delta(upload, mpu_key, MpuPart(version)))
    try:
        size, etag = await _put_pieces(model, version, bucket_id, key, part_number, pieces)
        await model.mpu_table.insert(_mpu_delta(upload, mpu_key, MpuPart(version, etag, size)))
    except BaseException:
        await asyncio.shield(_forget_version(model, version, bucket_id, key))
        raise
    return PartResult(version, etag, size, mpu_key[1])


async def _forget_version(model: Model, uuid: bytes, bucket_id: bytes, key: str) -> None:
    try:
        await model.version_table.insert(Version.deleted_version(uuid, bucket_id, key))
    except Exception as e:  # the upload's deletion will collect it anyway
        log.warning("[%s] could not mark the version of a failed part deleted (%s): %s",
                    model.id[:8], uuid.hex()[:16], e)


def _digest(md5: hashlib._Hash, piece: Piece) -> bytes:  # type: ignore[name-defined]
    md5.update(piece.data)
    return piece.stored if piece.stored is not None else hashlib.blake2b(piece.data, digest_size=32).digest()


async def _put_pieces(model: Model, uuid: bytes, bucket_id: bytes, key: str, part_number: int,
                      pieces: AsyncIterator[Piece]) -> tuple[int, str]:
    """Store the pieces of one version, keyed (part_number, offset); returns (size, md5 hex).

    Pipelined like `objects._put_blocks`: hashing in a thread, then the block write (new data
    only), the version entry (one more block) and the block ref in parallel, at most
    `PUT_BLOCKS_IN_FLIGHT` pieces in flight while the next one is read."""
    md5 = hashlib.md5()
    slots = asyncio.Semaphore(PUT_BLOCKS_IN_FLIGHT)
    offset = 0

    async def one(piece: Piece, h: bytes, off: int) -> None:
        try:
            blocks = CrdtMap.from_items([((part_number, off), VersionBlock(h, len(piece.data)))])
            writes = [
                model.version_table.insert(Version(uuid, Bool(False), blocks, CrdtMap(), bucket_id, key)),
                model.block_ref_table.insert(BlockRef(h, uuid, Bool(False))),
            ]
            if piece.stored is None:
                writes.append(model.blocks.rpc_put_block(h, piece.data))
            await run_all(*writes)
        finally:
            slots.release()

    try:
        async with asyncio.TaskGroup() as tg:
            async for piece in pieces:
                if not piece.data:
                    continue
                h = await asyncio.to_thread(_digest, md5, piece)  # md5 in order: one piece at a time
                await slots.acquire()
                tg.create_task(one(piece, h, offset))
                offset += len(piece.data)
    except BaseExceptionGroup as eg:
        raise first_error(eg) from None
    return offset, md5.hexdigest()


async def block_pieces(model: Model, version: Version, start: int, end: int) -> AsyncIterator[Piece]:
    """Bytes [start, end) of a stored version as pieces: whole blocks carry their hash (to be
    referenced, not stored again), the cut blocks at the edges are new data. The next block
    is fetched while the current one is processed. Every block is read: the part's md5
    (its ETag) needs all of its bytes."""
    plan: list[tuple[bytes, int, int, int]] = []  # (hash, block size, slice start, slice end)
    pos = 0
    for _, b in version.blocks.items():  # sorted by (part number, offset): object order
        b0, b1 = pos, pos + b.size
        if b1 > start and b0 < end:
            plan.append((b.hash, b.size, max(start, b0) - b0, min(end, b1) - b0))
        pos = b1
    nxt: asyncio.Future[bytes] | None = None
    try:
        for i, (h, size, s0, s1) in enumerate(plan):
            cur = nxt if nxt is not None else asyncio.ensure_future(model.blocks.rpc_get_block(h))
            nxt = asyncio.ensure_future(model.blocks.rpc_get_block(plan[i + 1][0])) if i + 1 < len(plan) else None
            data = await cur
            if (s0, s1) == (0, size) and len(data) == size:
                yield Piece(data, h)
            else:
                yield Piece(data[s0:s1])
    finally:
        if nxt is not None and not nxt.done():
            nxt.cancel()


async def complete_upload(model: Model, bucket_id: bytes, key: str, upload_id: bytes,
                          requested: Sequence[tuple[int, str]], min_part_size: int | None = None) -> CompleteResult:
    """CompleteMultipartUpload with the client's (part number, ETag) list (see the module
    docstring for the checks and the order of the writes)."""
    upload = await get_upload(model, bucket_id, key, upload_id)
    if not requested:
        raise InvalidPart("A CompleteMultipartUpload request must list at least one part")
    numbers = [n for n, _ in requested]
    if any(a >= b for a, b in zip(numbers, numbers[1:], strict=False)):
        raise InvalidPartOrder()
    have = {p.number: p for p in finished_parts(upload.mpu)}
    chosen: list[ListedPart] = []
    for number, etag in requested:
        part = have.get(number)
        if part is None or part.etag.lower() != etag.strip('"').lower():
            raise InvalidPart(f"Part {number} was not uploaded, or its ETag is not {etag!r}")
        chosen.append(part)
    minimum = MIN_PART_SIZE if min_part_size is None else min_part_size
    for part in chosen[:-1]:
        if part.size < minimum:
            raise EntityTooSmall(f"Part {part.number} has {part.size} bytes; every part but the last "
                                 f"must have at least {minimum}")

    versions: list[Version | None] = await run_all(*(model.version_table.get(p.version) for p in chosen))
    blocks: list[tuple[tuple[int, int], VersionBlock]] = []
    for i, (part, version) in enumerate(zip(chosen, versions, strict=True), start=1):
        if version is None or version.deleted.get():
            raise InvalidPart(f"Part {part.number} is gone")
        if sum(b.size for _, b in version.blocks.items()) != part.size:
            raise InvalidPart(f"Part {part.number} is incomplete")
        blocks.extend(((i, off), b) for (_, off), b in version.blocks.items())

    ts = upload.version.timestamp
    size = sum(p.size for p in chosen)
    etag = hashlib.md5(b"".join(bytes.fromhex(p.etag) for p in chosen)).hexdigest() + f"-{len(chosen)}"
    meta = ObjectMeta(upload.headers, size, etag)
    data: FirstBlock | InlineData
    if blocks:
        part_etags = CrdtMap.from_items([(i, Lww(ts, p.etag)) for i, p in enumerate(chosen, start=1)])
        final = Version(upload_id, Bool(False), CrdtMap.from_items(blocks), part_etags, bucket_id, key)
        await model.version_table.insert(final)
        hashes = dict.fromkeys(b.hash for _, b in final.blocks.items())
        await model.block_ref_table.insert_many(BlockRef(h, upload_id, Bool(False)) for h in hashes)
        data = FirstBlock(meta, final.blocks.items()[0][1].hash)
    else:  # only empty parts: nothing to reference
        data = InlineData(meta, b"")
    await model.object_table.insert(Object(bucket_id, key, (ObjectVersion(upload_id, ts, Complete(data)),)))
    try:
        await model.mpu_table.insert(MultipartUpload.deleted_upload(upload_id, bucket_id, key))
    except Exception as e:  # the object is complete: answer success, the parts leak until a repair
        log.warning("[%s] upload %s completed but its part list could not be deleted: %s",
                    model.id[:8], upload_id.hex()[:16], e)
    return CompleteResult(etag, size, ts)


async def abort_upload(model: Model, bucket_id: bytes, key: str, upload_id: bytes) -> None:
    """Write the upload's object version Aborted; the reactions delete everything it holds.

    Only the object version is needed (not the mpu entry), so an upload whose creation was
    interrupted between its two writes can still be aborted."""
    obj = await model.object_table.get(bucket_id, key)
    for v in obj.versions if obj is not None else ():
        if v.uuid == upload_id and v.is_uploading(multipart=True):
            await model.object_table.insert(Object(bucket_id, key, (ObjectVersion(v.uuid, v.timestamp, Aborted()),)))
            return
    raise NoSuchUpload()
