"""Multipart upload endpoints (Garage `api/s3/multipart.rs`, and `list.rs` for the listings).

CreateMultipartUpload, UploadPart, CompleteMultipartUpload, AbortMultipartUpload, ListParts
and ListMultipartUploads. The handlers parse and check the request, call the model
(`grange.model.s3.multipart`, whose module docstring explains the entries and the order of
the writes) and write the answer; model errors become S3 errors in `model_errors`.

ListMultipartUploads walks the object table like ListObjects (`list.py`), with the filter
"uploading" (objects that have a multipart upload in progress). Order: by key, and within a
key by upload id (Garage: "S3 logic requires lexicographically sorted upload ids"). A
common prefix is listed at its own position and covers every key under it, so a key marker
that is a common prefix resumes after all of them. Markers: `key-marker` alone resumes after
that key; with `upload-id-marker` it resumes within that key after that upload id
(``include``: with the key itself, Garage's extension). When the page is full and more
remains, NextKeyMarker / NextUploadIdMarker name the last entry returned.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

from aiohttp import web

from grange.api.s3 import errors as s3err
from grange.api.s3 import xml
from grange.api.s3.bucket import owner_of
from grange.api.s3.context import S3Request
from grange.api.s3.put import checksum_headers, metadata_headers
from grange.model.s3 import multipart as mpu
from grange.model.s3.object_table import Object

XML = "application/xml"
MAX_UPLOADS_DEFAULT = 1000
MAX_PARTS_DEFAULT = 1000
PAGE = 1000

_S3_ERRORS: dict[type[mpu.MultipartError], type[s3err.S3Error]] = {
    mpu.NoSuchUpload: s3err.NoSuchUpload,
    mpu.InvalidPart: s3err.InvalidPart,
    mpu.InvalidPartOrder: s3err.InvalidPartOrder,
    mpu.EntityTooSmall: s3err.EntityTooSmall,
}


@contextmanager
def model_errors() -> Iterator[None]:
    """Turn the model's multipart errors into their S3 errors (messages kept)."""
    try:
        yield
    except mpu.MultipartError as e:
        raise _S3_ERRORS[type(e)](str(e) or None) from None


def part_number_of(req: S3Request) -> int:
    n = req.param("part_number")
    if n is None or not 1 <= n <= mpu.PART_NUMBER_MAX:
        raise s3err.InvalidArgument(f"Part number must be an integer between 1 and {mpu.PART_NUMBER_MAX}, "
                                    "inclusive", argument_name="partNumber", argument_value=n)
    return int(n)


def upload_id_of(req: S3Request) -> bytes:
    try:
        return mpu.decode_upload_id(req.param("upload_id") or "")
    except mpu.NoSuchUpload as e:
        raise s3err.NoSuchUpload(str(e)) from None


def _location(req: S3Request, bucket: str, key: str) -> str:
    root = req.config.s3_api.root_domain
    if root:
        return f"https://{bucket}.{root.lstrip('.')}/{key}"
    return f"/{bucket}/{key}"


# ---------------------------------------------------------------------- create, upload, complete, abort
async def handle_create_multipart_upload(req: S3Request) -> web.Response:
    assert req.bucket_id is not None and req.route.bucket is not None and req.route.key is not None
    upload = await mpu.create_upload(req.model, req.bucket_id, req.route.key, tuple(metadata_headers(req)))
    body = xml.initiate_multipart_upload_result(req.route.bucket, req.route.key, upload.upload_id.hex())
    return web.Response(body=body, content_type=XML)


async def handle_upload_part(req: S3Request) -> web.Response:
    assert req.bucket_id is not None and req.route.key is not None
    part_number = part_number_of(req)
    upload_id = upload_id_of(req)
    if req.http.content_length is None and "x-amz-decoded-content-length" not in req.headers \
            and req.headers.get("Transfer-Encoding", "").lower() != "chunked":
        raise s3err.MissingContentLength("You must provide the Content-Length HTTP header.")
    with model_errors():
        res = await mpu.put_part(req.model, req.bucket_id, req.route.key, upload_id, part_number, req.body())
    headers = {"ETag": f'"{res.etag}"', **dict(checksum_headers(req))}
    return web.Response(status=200, headers=headers)


async def handle_complete_multipart_upload(req: S3Request) -> web.Response:
    assert req.bucket_id is not None and req.route.bucket is not None and req.route.key is not None
    upload_id = upload_id_of(req)
    parts = xml.parse_complete_multipart_upload(await req.read_body(xml.MAX_COMPLETE_MULTIPART_BODY))
    with model_errors():
        res = await mpu.complete_upload(req.model, req.bucket_id, req.route.key, upload_id,
                                        [(p.part_number, p.etag) for p in parts])
    body = xml.complete_multipart_upload_result(
        location=_location(req, req.route.bucket, req.route.key), bucket=req.route.bucket, key=req.route.key,
        etag=res.etag)
    return web.Response(body=body, content_type=XML)


async def handle_abort_multipart_upload(req: S3Request) -> web.Response:
    assert req.bucket_id is not None and req.route.key is not None
    upload_id = upload_id_of(req)
    with model_errors():
        await mpu.abort_upload(req.model, req.bucket_id, req.route.key, upload_id)
    return web.Response(status=204)


# ---------------------------------------------------------------------- listings
def _page_size(value: int | None, default: int) -> int:
    return default if value is None else max(1, min(int(value), default))


async def handle_list_parts(req: S3Request) -> web.Response:
    assert req.bucket_id is not None and req.route.bucket is not None and req.route.key is not None
    upload_id = upload_id_of(req)
    max_parts = _page_size(req.param("max_parts"), MAX_PARTS_DEFAULT)
    marker = req.param("part_number_marker")
    with model_errors():
        upload = await mpu.get_upload(req.model, req.bucket_id, req.route.key, upload_id)
    parts = [p for p in mpu.finished_parts(upload.mpu) if marker is None or p.number > marker]
    truncated = len(parts) > max_parts
    parts = parts[:max_parts]
    body = xml.list_parts_result(
        bucket=req.route.bucket, key=req.route.key, upload_id=upload_id.hex(), part_number_marker=marker,
        next_part_number_marker=parts[-1].number if truncated else None, max_parts=max_parts,
        is_truncated=truncated, owner=owner_of(req),
        parts=[xml.PartInfo(p.number, p.timestamp, p.etag, p.size) for p in parts])
    return web.Response(body=body, content_type=XML)


def _successor(b: bytes) -> bytes | None:
    """The smallest byte string after every string that starts with `b` (None: no such)."""
    p = bytearray(b)
    while p:
        if p[-1] < 0xFF:
            p[-1] += 1
            return bytes(p)
        p.pop()
    return None


class _Page:
    """Accumulates uploads and common prefixes up to `limit`; `full` once one more was offered."""

    def __init__(self, limit: int) -> None:
        self.limit = limit
        self.uploads: list[xml.UploadInfo] = []
        self.prefixes: list[str] = []
        self.truncated = False
        self.last: tuple[str, str | None] | None = None  # (key or prefix, upload id or None)

    def offer_upload(self, info: xml.UploadInfo) -> bool:
        if len(self.uploads) + len(self.prefixes) >= self.limit:
            self.truncated = True
            return False
        self.uploads.append(info)
        self.last = (info.key, info.upload_id)
        return True

    def offer_prefix(self, prefix: str) -> bool:
        if len(self.uploads) + len(self.prefixes) >= self.limit:
            self.truncated = True
            return False
        self.prefixes.append(prefix)
        self.last = (prefix, None)
        return True


async def handle_list_multipart_uploads(req: S3Request) -> web.Response:
    assert req.bucket_id is not None and req.route.bucket is not None
    prefix = req.param("prefix") or ""
    delimiter = req.param("delimiter") or None
    key_marker = req.param("key_marker") or None
    upload_id_marker = req.param("upload_id_marker") or None
    max_uploads = _page_size(req.param("max_uploads"), MAX_UPLOADS_DEFAULT)
    owner = owner_of(req)

    # Where to start: (first key to read, key whose uploads start after an id, that id).
    after_key: str | None = None
    after_upload = ""
    if key_marker is not None and upload_id_marker is not None:
        cursor: bytes | None = key_marker.encode()
        if upload_id_marker != "include":
            after_key, after_upload = key_marker, upload_id_marker.lower()
    elif key_marker is not None:
        cursor = key_marker.encode() + b"\x00"
    else:
        cursor = b""
    cursor = max(cursor or b"", prefix.encode())
    end = _successor(prefix.encode()) if prefix else None
    page = _Page(max_uploads)

    while cursor is not None and not page.truncated:
        batch: list[Object] = await req.model.object_table.get_range(req.bucket_id, cursor, filter="uploading",
                                                                     limit=PAGE, end=end)
        for obj in batch:
            kb = obj.key.encode()
            if kb < cursor:
                continue
            rest = obj.key[len(prefix):]
            if delimiter and delimiter in rest:
                cp = prefix + rest[: rest.index(delimiter) + len(delimiter)]
                # A prefix at or before the key marker was listed on an earlier page.
                if (key_marker is None or cp.encode() > key_marker.encode()) and not page.offer_prefix(cp):
                    break
                cursor = _successor(cp.encode())
                break  # read again from past the common prefix
            uploads = sorted((v for v in obj.versions if v.is_uploading(multipart=True)), key=lambda v: v.uuid)
            for v in uploads:
                if obj.key == after_key and v.uuid.hex() <= after_upload:
                    continue
                if not page.offer_upload(xml.UploadInfo(obj.key, v.uuid.hex(), v.timestamp, owner)):
                    break
            if page.truncated:
                break
            cursor = kb + b"\x00"
        else:
            if len(batch) < PAGE:
                cursor = None

    next_key = next_upload = None
    if page.truncated and page.last is not None:
        next_key, next_upload = page.last
    body = xml.list_multipart_uploads_result(
        bucket=req.route.bucket, prefix=prefix, key_marker=key_marker, upload_id_marker=upload_id_marker,
        next_key_marker=next_key, next_upload_id_marker=next_upload, delimiter=delimiter,
        max_uploads=max_uploads, url_encoded=req.param("encoding_type") == "url", is_truncated=page.truncated,
        uploads=page.uploads, common_prefixes=page.prefixes)
    return web.Response(body=body, content_type=XML)
