"""GetObject and HeadObject (Garage `api/s3/get.rs`).

One quorum read of the object entry; inline data is answered at once. Otherwise the
version entry is read, and the blocks covering the requested range are streamed with the
next block prefetched while the current one is sent. Conditional headers are evaluated in
RFC 7232 order (If-Match, If-Unmodified-Since, If-None-Match, If-Modified-Since); `Range`
(one range: `a-b`, `a-`, `-n`) and `partNumber` select bytes; `response-*` query
parameters override the stored headers.
"""

from __future__ import annotations

import asyncio
import email.utils
import logging
from collections.abc import AsyncIterator
from dataclasses import dataclass

from aiohttp import ClientConnectionResetError, web

from grange.api.s3 import errors as s3err
from grange.api.s3.context import S3Request
from grange.model.s3.object_table import Complete, FirstBlock, InlineData, ObjectMeta, ObjectVersion
from grange.model.s3.version_table import Version

log = logging.getLogger("grange.api.s3")

STORED_HEADER_OVERRIDES = {
    "response-content-type": "Content-Type",
    "response-content-language": "Content-Language",
    "response-expires": "Expires",
    "response-cache-control": "Cache-Control",
    "response-content-disposition": "Content-Disposition",
    "response-content-encoding": "Content-Encoding",
}


def http_date(ms: int) -> str:
    return email.utils.formatdate(ms / 1000, usegmt=True)


def _parse_http_date(value: str) -> float | None:
    try:
        return email.utils.parsedate_to_datetime(value).timestamp()
    except (TypeError, ValueError, IndexError):
        return None


def _etag_matches(header: str, etag: str) -> bool:
    tags = [t.strip() for t in header.split(",")]
    return "*" in tags or f'"{etag}"' in tags or etag in tags


def check_conditions(req: S3Request, etag: str, last_modified_ms: int, *, prefix: str = "",
                     not_modified: bool = True) -> None:
    """Conditional headers in RFC 7232 order; unparsable dates are ignored.

    GetObject/HeadObject: `If-*`, a match on If-None-Match / If-Modified-Since is 304.
    Copies: `prefix="x-amz-copy-source-"` and `not_modified=False` (those are 412 there).
    """
    h = req.headers
    mtime = last_modified_ms // 1000

    def unchanged(condition: str) -> s3err.S3Error:
        if not_modified:
            return s3err.NotModified(etag=f'"{etag}"', last_modified=http_date(last_modified_ms))
        return s3err.PreconditionFailed(condition=condition)

    if (name := prefix + "If-Match") in h:
        if not _etag_matches(h[name], etag):
            raise s3err.PreconditionFailed(condition=name)
    elif (name := prefix + "If-Unmodified-Since") in h:
        t = _parse_http_date(h[name])
        if t is not None and mtime > t:
            raise s3err.PreconditionFailed(condition=name)
    if (name := prefix + "If-None-Match") in h:
        if _etag_matches(h[name], etag):
            raise unchanged(name)
    elif (name := prefix + "If-Modified-Since") in h:
        t = _parse_http_date(h[name])
        if t is not None and mtime <= t:
            raise unchanged(name)


def parse_range(header: str | None, size: int) -> tuple[int, int] | None:
    """(start, end exclusive) of a single `bytes=` range, None for the whole object.

    Unsatisfiable → InvalidRange (416); a header that is not one byte range is ignored,
    as S3 does.
    """
    if header is None:
        return None
    unit, _, spec = header.strip().partition("=")
    if unit.strip().lower() != "bytes" or "," in spec:
        return None
    first, sep, last = spec.strip().partition("-")
    if not sep:
        return None
    try:
        if first == "":
            n = int(last)
            if n <= 0:
                raise s3err.InvalidRange(actual_object_size=size, range_requested=header)
            return (max(0, size - n), size) if size else _unsatisfiable(header, size)
        start = int(first)
        end = int(last) + 1 if last else size
    except ValueError:
        return None
    if start >= size or end <= start:
        return _unsatisfiable(header, size)
    return start, min(end, size)


def _unsatisfiable(header: str, size: int) -> tuple[int, int]:
    raise s3err.InvalidRange(actual_object_size=size, range_requested=header)


@dataclass
class Found:
    version: ObjectVersion
    meta: ObjectMeta
    data: InlineData | FirstBlock


async def find_object(req: S3Request) -> Found:
    assert req.bucket_id is not None and req.route.key is not None
    obj = await req.model.object_table.get(req.bucket_id, req.route.key)
    last = obj.last_data() if obj is not None else None
    if last is None:
        raise s3err.NoSuchKey(key=req.route.key)
    assert isinstance(last.state, Complete)
    data = last.state.data
    assert isinstance(data, InlineData | FirstBlock)
    return Found(last, data.meta, data)


def object_headers(req: S3Request, f: Found) -> dict[str, str]:
    out = {
        "ETag": f'"{f.meta.etag}"',
        "Last-Modified": http_date(f.version.timestamp),
        "Accept-Ranges": "bytes",
        "Content-Type": "binary/octet-stream",
    }
    checksum_mode = req.headers.get("x-amz-checksum-mode", "").upper() == "ENABLED"
    for name, value in f.meta.headers:
        if name.startswith("x-amz-checksum-") and not checksum_mode:
            continue
        if name.startswith("x-grange-"):
            continue
        out[_canonical_header(name)] = value
    for q, h in STORED_HEADER_OVERRIDES.items():
        if q in req.route.overrides:
            out[h] = req.route.overrides[q]
    return out


def _canonical_header(name: str) -> str:
    if name.startswith("x-amz-"):
        return name
    return "-".join(p.capitalize() for p in name.split("-"))


def parts_of(version: Version) -> dict[int, list[tuple[int, bytes, int]]]:
    """part number → [(offset within part, block hash, size)] in order."""
    parts: dict[int, list[tuple[int, bytes, int]]] = {}
    for (part, offset), b in version.blocks.items():
        parts.setdefault(part, []).append((offset, b.hash, b.size))
    return parts


async def handle_get_object(req: S3Request, head: bool = False) -> web.StreamResponse:
    f = await find_object(req)
    check_conditions(req, f.meta.etag, f.version.timestamp)
    headers = object_headers(req, f)
    size = f.meta.size
    part_number = req.param("part_number")
    version: Version | None = None
    if isinstance(f.data, FirstBlock) and (part_number is not None or not head):
        version = await req.model.version_table.get(f.version.uuid)
        if version is None or version.deleted.get():
            raise s3err.NoSuchKey(key=req.route.key)
    # the byte window [start, end) of the object that is answered
    start, end, status = 0, size, 200
    if part_number is not None:
        if not 1 <= part_number <= 10000:
            raise s3err.InvalidArgument("Part number must be an integer between 1 and 10000, inclusive")
        if version is None:  # inline or single-part object: part 1 is everything
            if part_number != 1:
                raise s3err.InvalidPart(f"There is no part {part_number}")
        else:
            parts = parts_of(version)
            numbers = sorted(parts)
            if part_number > len(numbers) and not (numbers == [0] and part_number == 1):
                raise s3err.InvalidPart(f"There is no part {part_number}")
            if numbers != [0]:
                before = sum(s for n in numbers[: part_number - 1] for _, _, s in parts[n])
                start, end = before, before + sum(s for _, _, s in parts[numbers[part_number - 1]])
                headers["x-amz-mp-parts-count"] = str(len(numbers))
        if (start, end) != (0, size):
            status = 206
            headers["Content-Range"] = f"bytes {start}-{end - 1}/{size}"
    else:
        rng = parse_range(req.headers.get("Range"), size)
        if rng is not None:
            start, end = rng
            status = 206
            headers["Content-Range"] = f"bytes {start}-{end - 1}/{size}"
    headers["Content-Length"] = str(end - start)
    if (start, end) != (0, size):  # a stored checksum covers the whole object only
        for name in [h for h in headers if h.startswith("x-amz-checksum-")]:
            del headers[name]
    if head:
        return web.Response(status=status, headers=headers)
    resp = web.StreamResponse(status=status, headers={**headers, **req.common_headers()})
    resp.content_length = end - start
    await resp.prepare(req.http)
    try:
        if isinstance(f.data, InlineData):
            await resp.write(f.data.data[start:end])
        else:
            assert version is not None
            async for chunk in stream_range(req, version, start, end):
                await resp.write(chunk)
        await resp.write_eof()
    except (ConnectionError, ClientConnectionResetError):
        # the client stopped reading (closed early, or only wanted the headers): nothing
        # to answer any more, and nothing went wrong on our side
        log.debug("GET %s: client went away after %s", req.route.key, resp.headers.get("Content-Range", "headers"))
    return resp


async def stream_range(req: S3Request, version: Version, start: int, end: int) -> AsyncIterator[bytes]:
    """Bytes [start, end) of a version, block by block, the next block prefetched."""
    plan: list[tuple[bytes, int, int]] = []  # (hash, slice start, slice end) per needed block
    pos = 0
    for part in sorted(parts_of(version).items()):
        for _, h, size in part[1]:
            b0, b1 = pos, pos + size
            if b1 > start and b0 < end:
                plan.append((h, max(start, b0) - b0, min(end, b1) - b0))
            pos = b1
    blocks = req.model.blocks
    nxt: asyncio.Future[bytes] | None = None
    try:
        for i, (h, s0, s1) in enumerate(plan):
            cur = nxt if nxt is not None else asyncio.ensure_future(blocks.rpc_get_block(h))
            nxt = asyncio.ensure_future(blocks.rpc_get_block(plan[i + 1][0])) if i + 1 < len(plan) else None
            data = await cur
            yield data[s0:s1] if (s0, s1) != (0, len(data)) else data
    finally:
        if nxt is not None and not nxt.done():
            nxt.cancel()


async def handle_head_object(req: S3Request) -> web.StreamResponse:
    return await handle_get_object(req, head=True)
