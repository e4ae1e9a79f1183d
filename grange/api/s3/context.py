"""What an S3 endpoint handler receives: a parsed, authenticated, authorized request.

Handlers are `async def handler(req: S3Request) -> web.StreamResponse` registered in
`grange/api/s3/handlers.py`. By the time one runs:
- the route is known (`req.route`: endpoint, bucket name, key, parsed query params);
- the signature verified (`req.key`: the access key entry, `req.verified`);
- the bucket resolved and the key's permission for the endpoint checked (`req.bucket_id`,
  `req.bucket`) — except for endpoints without a bucket (ListBuckets) and CreateBucket;
- the body is available as `req.body()`: an async iterator of decoded bytes that verifies,
  while streaming, the signed payload hash or aws-chunked signatures, `Content-MD5` and the
  `x-amz-checksum-*` headers/trailers, raising the S3 error at the end if one does not match
  (so a handler must not make data visible before it consumed the whole body).
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from aiohttp import web

if TYPE_CHECKING:
    from grange.api.s3.body import RequestBody
    from grange.api.s3.router import Route
    from grange.model.bucket_table import Bucket
    from grange.model.helpers import Helper
    from grange.model.key_table import Key
    from grange.model.model import Model
    from grange.util.config import Config


def common_headers(request_id: str) -> dict[str, str]:
    return {"x-amz-request-id": request_id, "Server": "Grange"}


@dataclass
class S3Request:
    http: web.BaseRequest
    route: Route
    request_id: str
    model: Model
    helper: Helper
    config: Config
    key: Key | None = None
    verified: Any = None
    bucket_id: bytes | None = None
    bucket: Bucket | None = None
    body_reader: RequestBody | None = field(default=None, repr=False)

    @property
    def headers(self) -> Any:
        return self.http.headers

    @property
    def key_id(self) -> str:
        assert self.key is not None
        return self.key.key_id

    def common_headers(self) -> dict[str, str]:
        """Headers of every answer; a handler that prepares a streamed answer adds them itself."""
        return common_headers(self.request_id)

    def param(self, name: str) -> Any:
        return self.route.params.get(name)

    def body(self) -> AsyncIterator[bytes]:
        assert self.body_reader is not None
        return self.body_reader.chunks()

    async def read_body(self, limit: int) -> bytes:
        """The whole (small) body, e.g. XML; raises EntityTooLarge above `limit`."""
        assert self.body_reader is not None
        return await self.body_reader.read_all(limit)
