"""CopyObject and UploadPartCopy (Garage `api/s3/copy.rs`).

The source is named by ``x-amz-copy-source`` (``/bucket/key`` or ``bucket/key``,
percent-encoded; a ``?versionId=`` suffix is ignored: no versioning). The signing key needs
read permission on the source bucket (the router only checked write on the destination).
``x-amz-copy-source-if-match`` / ``-if-unmodified-since`` / ``-if-none-match`` /
``-if-modified-since`` are evaluated on the source's current version, in AWS's order (a
matching If-Match wins over If-Unmodified-Since; If-None-Match over If-Modified-Since);
any that fails answers 412 PreconditionFailed (never 304: this is a write).

CopyObject never copies data. The destination gets a new version (uuid, stamped after every
version the destination object has): an inline source is copied inline in one write; a
block source gets, in order, an `Uploading` object version (so an interrupted copy is known
and cleaned up), a version entry listing the very same blocks under the same (part,
offset) keys, a block ref per block for the new version, and last the `Complete` object
version with the new metadata (same size and ETag). The new refs exist before the object
write can drop an older version of the destination, so copying an object onto itself never
lets its blocks' refcounts reach zero (Garage's comment on the same race). On failure the
new version is written Aborted everywhere reachable, as `objects.put_object` does.
Metadata: ``x-amz-metadata-directive: COPY`` (default) keeps the source's stored headers,
except ``x-amz-website-redirect-location`` which comes from the request (Garage);
``REPLACE`` takes the request's metadata headers. The source's ``x-amz-checksum-*`` values
describe the same bytes and are kept in both cases. Copying an object onto itself needs
REPLACE (AWS).

UploadPartCopy stores bytes [a, b] of the source (``x-amz-copy-source-range: bytes=a-b``,
default all) as a part. Whole source blocks inside the range are referenced, not stored
again; the cut blocks at the range's edges are stored as new blocks. Every block is still
read, because the part's ETag is the md5 of its bytes (Garage does the same).
"""

from __future__ import annotations

import asyncio
import re
from collections.abc import AsyncIterator
from dataclasses import dataclass
from urllib.parse import unquote

from aiohttp import web

from grange.api.s3 import errors as s3err
from grange.api.s3 import xml
from grange.api.s3.context import S3Request
from grange.api.s3.get import check_conditions
from grange.api.s3.multipart import model_errors, part_number_of, upload_id_of
from grange.api.s3.put import metadata_headers
from grange.model.s3 import multipart as mpu
from grange.model.s3.block_ref_table import BlockRef
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
from grange.model.s3.objects import new_uuid
from grange.model.s3.version_table import Version
from grange.table.crdt import Bool
from grange.util.aio import run_all

XML = "application/xml"
SELF_COPY_MESSAGE = ("This copy request is illegal because it is trying to copy an object to itself without "
                     "changing the object's metadata, storage class, website redirect location or encryption "
                     "attributes.")
_KEPT_ON_REPLACE = ("x-amz-checksum-", "x-grange-")  # describe the bytes, not the caller's metadata
_REDIRECT = "x-amz-website-redirect-location"
_RANGE = re.compile(r"bytes=(\d+)-(\d+)")


@dataclass(frozen=True, slots=True)
class Source:
    bucket_id: bytes
    key: str
    object: Object
    version: ObjectVersion
    data: InlineData | FirstBlock

    @property
    def meta(self) -> ObjectMeta:
        return self.data.meta


# ---------------------------------------------------------------------- the source
def parse_copy_source(value: str) -> tuple[str, str]:
    """``x-amz-copy-source`` → (bucket, key). The query part (``?versionId=``) is cut before
    percent-decoding, so an encoded ``%3F`` stays in the key."""
    path = value.split("?", 1)[0]
    try:
        decoded = unquote(path, errors="strict")
    except UnicodeDecodeError:
        raise s3err.InvalidArgument("Invalid copy source: not UTF-8", argument_name="x-amz-copy-source") from None
    bucket, sep, key = decoded.lstrip("/").partition("/")
    if not bucket or not sep or not key:
        raise s3err.InvalidArgument("Invalid copy source: expected /bucket/key",
                                    argument_name="x-amz-copy-source", argument_value=value)
    return bucket, key


async def find_source(req: S3Request) -> Source:
    assert req.key is not None
    bucket, key = parse_copy_source(req.headers.get("x-amz-copy-source", ""))
    bucket_id = await req.helper.resolve_bucket(bucket, req.key)
    params = req.key.params()
    perm = params.authorized_buckets.get(bucket_id) if params is not None else None
    if perm is None or not perm.allow_read:
        raise s3err.AccessDenied(f"Reading from bucket {bucket!r} is not allowed for this key")
    obj = await req.model.object_table.get(bucket_id, key)
    last = obj.last_data() if obj is not None else None
    if obj is None or last is None:
        raise s3err.NoSuchKey(key=key)
    assert isinstance(last.state, Complete) and isinstance(last.state.data, InlineData | FirstBlock)
    return Source(bucket_id, key, obj, last, last.state.data)


def check_copy_conditions(req: S3Request, src: Source) -> None:
    """The ``x-amz-copy-source-if-*`` headers against the source: a failure is 412."""
    check_conditions(req, src.meta.etag, src.version.timestamp, prefix="x-amz-copy-source-", not_modified=False)


async def _source_version(req: S3Request, src: Source) -> Version:
    version = await req.model.version_table.get(src.version.uuid)
    if version is None or version.deleted.get():
        raise s3err.NoSuchKey(key=src.key)
    return version


# ---------------------------------------------------------------------- CopyObject
def copied_headers(req: S3Request, src: Source) -> tuple[tuple[str, str], ...]:
    directive = req.headers.get("x-amz-metadata-directive", "COPY").strip().upper()
    if directive not in ("COPY", "REPLACE"):
        raise s3err.InvalidArgument(f"Unknown metadata directive {directive!r}",
                                    argument_name="x-amz-metadata-directive", argument_value=directive)
    assert req.bucket_id is not None
    if directive == "COPY" and (src.bucket_id, src.key) == (req.bucket_id, req.route.key):
        raise s3err.InvalidRequest(SELF_COPY_MESSAGE)
    asked = metadata_headers(req)
    if directive == "REPLACE":
        kept = [(n, v) for n, v in src.meta.headers if n.startswith(_KEPT_ON_REPLACE)]
        return tuple(sorted(kept + asked))
    kept = [(n, v) for n, v in src.meta.headers if n != _REDIRECT]
    return tuple(sorted(kept + [(n, v) for n, v in asked if n == _REDIRECT]))


async def handle_copy_object(req: S3Request) -> web.Response:
    assert req.bucket_id is not None and req.route.key is not None
    src = await find_source(req)
    check_copy_conditions(req, src)
    headers = copied_headers(req, src)
    bucket_id, key = req.bucket_id, req.route.key
    same = (src.bucket_id, src.key) == (bucket_id, key)
    dest = src.object if same else await req.model.object_table.get(bucket_id, key)
    uuid, ts = new_uuid(), mpu.next_timestamp(dest)
    meta = ObjectMeta(headers, src.meta.size, src.meta.etag)
    if isinstance(src.data, InlineData):
        version = ObjectVersion(uuid, ts, Complete(InlineData(meta, src.data.data)))
        await req.model.object_table.insert(Object(bucket_id, key, (version,)))
    else:
        await _copy_blocks(req, src, await _source_version(req, src), uuid, ts, meta, src.data.first_block)
    body = xml.copy_object_result(src.meta.etag, ts)
    return web.Response(body=body, content_type=XML, headers={
        "x-amz-version-id": uuid.hex(), "x-amz-copy-source-version-id": src.version.uuid.hex()})


async def _copy_blocks(req: S3Request, src: Source, source: Version, uuid: bytes, ts: int, meta: ObjectMeta,
                       first_block: bytes) -> None:
    assert req.bucket_id is not None and req.route.key is not None
    model, bucket_id, key = req.model, req.bucket_id, req.route.key
    await model.object_table.insert(Object(bucket_id, key, (ObjectVersion(uuid, ts, Uploading(False, meta.headers)),)))
    try:
        await model.version_table.insert(Version(uuid, Bool(False), source.blocks, source.part_etags, bucket_id, key))
        hashes = dict.fromkeys(b.hash for _, b in source.blocks.items())
        await model.block_ref_table.insert_many(BlockRef(h, uuid, Bool(False)) for h in hashes)
        done = ObjectVersion(uuid, ts, Complete(FirstBlock(meta, first_block)))
        await model.object_table.insert(Object(bucket_id, key, (done,)))
    except BaseException:
        aborted = Object(bucket_id, key, (ObjectVersion(uuid, ts, Aborted()),))
        await asyncio.shield(model.object_table.insert_best_effort(aborted))
        raise


# ---------------------------------------------------------------------- UploadPartCopy
def parse_copy_range(value: str | None, size: int) -> tuple[int, int]:
    """(start, end exclusive) of ``bytes=first-last`` (both required, as AWS); the whole
    object without the header. Outside the object → InvalidRange (Garage)."""
    if value is None:
        return 0, size
    m = _RANGE.fullmatch(value.strip())
    if m is None:
        raise s3err.InvalidArgument("The x-amz-copy-source-range value must be of the form bytes=first-last "
                                    "where first and last are the zero-based offsets of the first and last "
                                    "bytes to copy", argument_name="x-amz-copy-source-range",
                                    argument_value=value)
    first, last = int(m.group(1)), int(m.group(2))
    if first > last or last >= size:
        raise s3err.InvalidRange(actual_object_size=size, range_requested=value)
    return first, last + 1


async def handle_upload_part_copy(req: S3Request) -> web.Response:
    assert req.bucket_id is not None and req.route.key is not None
    part_number = part_number_of(req)
    upload_id = upload_id_of(req)
    with model_errors():
        src, upload = await run_all(find_source(req),
                                    mpu.get_upload(req.model, req.bucket_id, req.route.key, upload_id))
    check_copy_conditions(req, src)
    start, end = parse_copy_range(req.headers.get("x-amz-copy-source-range"), src.meta.size)
    if isinstance(src.data, InlineData):
        data = src.data.data[start:end]

        async def inline() -> AsyncIterator[mpu.Piece]:
            yield mpu.Piece(data)

        pieces = inline()
    else:
        pieces = mpu.block_pieces(req.model, await _source_version(req, src), start, end)
    with model_errors():
        res = await mpu.store_part(req.model, upload, part_number, pieces)
    body = xml.copy_part_result(res.etag, src.version.timestamp)
    return web.Response(body=body, content_type=XML,
                        headers={"x-amz-copy-source-version-id": src.version.uuid.hex()})
