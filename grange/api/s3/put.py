"""PutObject (Garage `api/s3/put.rs`): metadata headers kept, body streamed into blocks.

Stored with the object: Content-Type, Cache-Control, Content-Disposition, Content-Encoding,
Content-Language, Expires, every `x-amz-meta-*`, `x-amz-website-redirect-location`, and
the `x-amz-checksum-*` values computed over the body (returned with `x-amz-checksum-mode:
ENABLED`). Everything else (ACLs, storage class, tagging, SSE-S3 headers) is dropped, as in
Garage.
"""

from __future__ import annotations

from aiohttp import web

from grange.api.s3 import errors as s3err
from grange.api.s3.context import S3Request
from grange.model.s3 import objects

STORED_HEADERS = ("content-type", "cache-control", "content-disposition", "content-encoding",
                  "content-language", "expires")
METADATA_SIZE_MAX = 2048  # AWS: user metadata ≤ 2 KB
PUT_OBJECT_SIZE_MAX = 5 * 1024**3  # AWS: a single PUT is at most 5 GiB (multipart beyond)


def metadata_headers(req: S3Request) -> list[tuple[str, str]]:
    out: list[tuple[str, str]] = []
    meta_size = 0
    for name, value in req.headers.items():
        low = name.lower()
        if low in STORED_HEADERS:
            if low == "content-encoding":
                value = ",".join(v for v in (x.strip() for x in value.split(",")) if v and v != "aws-chunked")
                if not value:
                    continue
            out.append((low, value))
        elif low.startswith("x-amz-meta-"):
            meta_size += len(low) + len(value)
            out.append((low, value))
        elif low == "x-amz-website-redirect-location":
            if not value.startswith(("/", "http://", "https://")):
                raise s3err.InvalidArgument("x-amz-website-redirect-location must start with /, http:// or https://")
            out.append((low, value))
    if meta_size > METADATA_SIZE_MAX:
        raise s3err.MetadataTooLarge("Your metadata headers exceed the maximum allowed metadata size.")
    return sorted(out)


def checksum_headers(req: S3Request) -> list[tuple[str, str]]:
    assert req.body_reader is not None
    return sorted((f"x-amz-checksum-{algo}", v) for algo, v in req.body_reader.checksums.items())


async def handle_put_object(req: S3Request) -> web.Response:
    assert req.bucket_id is not None and req.route.key is not None
    if req.http.content_length is None and "x-amz-decoded-content-length" not in req.headers \
            and req.headers.get("Transfer-Encoding", "").lower() != "chunked":
        raise s3err.MissingContentLength("You must provide the Content-Length HTTP header.")
    declared = req.headers.get("x-amz-decoded-content-length") or req.http.content_length
    if declared is not None and int(declared) > PUT_OBJECT_SIZE_MAX:
        raise s3err.EntityTooLarge("Your proposed upload exceeds the maximum allowed size",
                                   proposed_size=str(declared), max_size_allowed=str(PUT_OBJECT_SIZE_MAX))
    headers = metadata_headers(req)
    res = await objects.put_object(req.model, req.bucket_id, req.route.key, req.body(), tuple(headers),
                                   late_headers=lambda: tuple(checksum_headers(req)))
    out = {"ETag": f'"{res.etag}"'}
    for name, value in checksum_headers(req):
        out[name] = value
    return web.Response(status=200, headers=out)
