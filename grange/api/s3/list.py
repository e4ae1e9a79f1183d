"""ListObjects (v1) and ListObjectsV2 (Garage `api/s3/list.rs`).

All objects of a bucket share one partition, so a listing is ordered range reads of the
object table with read quorum (design §8, §10): from the cursor, `PAGE` entries at a time,
keeping only objects with content. With a delimiter, keys that contain it after the prefix
fold into one common prefix, and the cursor jumps past every key under that prefix. The
result stops at `max-keys` entries (contents + common prefixes).

Cursors: v1 `marker` and v2 `start-after` are exclusive; the v2 continuation token is an
opaque base64url of the next key to read (inclusive).
"""

from __future__ import annotations

import base64
import binascii

from aiohttp import web

from grange.api.s3 import errors as s3err
from grange.api.s3 import xml
from grange.api.s3.bucket import owner_of
from grange.api.s3.context import S3Request
from grange.db import prefix_end
from grange.model.s3.object_table import Complete, DeleteMarker

MAX_KEYS_DEFAULT = 1000
PAGE = 1000


async def list_keys(req: S3Request, prefix: str, delimiter: str | None, start: bytes, max_keys: int,
                    fetch_owner: bool) -> tuple[list[xml.ObjectInfo], list[str], bytes | None, str | None]:
    """(contents, common prefixes, next key to read or None if complete, last returned name)."""
    assert req.bucket_id is not None
    end = prefix_end(prefix.encode()) if prefix else None
    owner = owner_of(req) if fetch_owner else None
    contents: list[xml.ObjectInfo] = []
    prefixes: list[str] = []
    cursor: bytes | None = max(start, prefix.encode())
    last_name: str | None = None
    while cursor is not None and len(contents) + len(prefixes) < max_keys:
        batch = await req.model.object_table.get_range(req.bucket_id, cursor, filter="data", limit=PAGE, end=end)
        if not batch:
            return contents, prefixes, None, last_name
        for obj in batch:
            kb = obj.key.encode()
            if kb < cursor:
                continue
            if len(contents) + len(prefixes) >= max_keys:
                return contents, prefixes, kb, last_name
            rest = obj.key[len(prefix):]
            if delimiter and delimiter in rest:
                cp = prefix + rest[: rest.index(delimiter) + len(delimiter)]
                prefixes.append(cp)
                last_name = cp
                cursor = prefix_end(cp.encode())
                break  # re-read from past the common prefix
            last = obj.last_data()
            assert last is not None and isinstance(last.state, Complete)
            data = last.state.data
            assert not isinstance(data, DeleteMarker)
            contents.append(xml.ObjectInfo(obj.key, last.timestamp, data.meta.etag, data.meta.size, owner))
            last_name = obj.key
            cursor = kb + b"\x00"
        else:
            if len(batch) < PAGE:
                return contents, prefixes, None, last_name
    return contents, prefixes, cursor, last_name


def _max_keys(req: S3Request) -> int:
    mk = req.param("max_keys")
    return MAX_KEYS_DEFAULT if mk is None else min(int(mk), MAX_KEYS_DEFAULT)


async def _more(req: S3Request, prefix: str, nxt: bytes | None) -> bool:
    """Whether anything is left from `nxt` on (the page ended exactly at max-keys)."""
    if nxt is None:
        return False
    rest, _, _, _ = await list_keys(req, prefix, None, nxt, 1, False)
    return bool(rest)


async def handle_list_objects(req: S3Request) -> web.Response:
    assert req.route.bucket is not None
    prefix = req.param("prefix") or ""
    delimiter = req.param("delimiter") or None
    marker = req.param("marker")
    max_keys = _max_keys(req)
    start = marker.encode() + b"\x00" if marker else b""
    contents, prefixes, nxt, last = await list_keys(req, prefix, delimiter, start, max_keys, True)
    truncated = await _more(req, prefix, nxt)
    body = xml.list_objects_result(
        bucket=req.route.bucket, prefix=prefix, marker=marker, next_marker=last if truncated and delimiter else None,
        max_keys=max_keys, delimiter=delimiter, url_encoded=req.param("encoding_type") == "url",
        is_truncated=truncated, contents=contents, common_prefixes=prefixes)
    return web.Response(body=body, content_type="application/xml")


def encode_token(key: bytes) -> str:
    return base64.urlsafe_b64encode(key).decode().rstrip("=")


def decode_token(token: str) -> bytes:
    try:
        return base64.urlsafe_b64decode(token + "=" * (-len(token) % 4))
    except (binascii.Error, ValueError):
        raise s3err.InvalidArgument("The continuation token provided is incorrect") from None


async def handle_list_objects_v2(req: S3Request) -> web.Response:
    assert req.route.bucket is not None
    prefix = req.param("prefix") or ""
    delimiter = req.param("delimiter") or None
    token = req.param("continuation_token")
    start_after = req.param("start_after")
    max_keys = _max_keys(req)
    if token:
        start = decode_token(token)
    elif start_after:
        start = start_after.encode() + b"\x00"
    else:
        start = b""
    contents, prefixes, nxt, _ = await list_keys(req, prefix, delimiter, start, max_keys,
                                                 bool(req.param("fetch_owner")))
    truncated = await _more(req, prefix, nxt)
    body = xml.list_objects_v2_result(
        bucket=req.route.bucket, prefix=prefix, continuation_token=token,
        next_continuation_token=encode_token(nxt) if truncated and nxt is not None else None,
        start_after=start_after, max_keys=max_keys, delimiter=delimiter,
        url_encoded=req.param("encoding_type") == "url", is_truncated=truncated,
        contents=contents, common_prefixes=prefixes)
    return web.Response(body=body, content_type="application/xml")
