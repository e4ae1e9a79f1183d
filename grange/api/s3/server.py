"""The S3 API server: HTTP in, route, authenticate, authorize, handle, S3 XML errors out.

One aiohttp low-level server (no aiohttp router: S3 paths are routed by `router.route`, on
the raw path). Per request:
1. route (pure) → endpoint, bucket, key, params; unimplemented endpoints answer 501;
2. SigV4: parse and check without the secret (`prepare_request`), look the key up in the
   key table, verify the signature with its secret;
3. resolve the bucket (the key's local alias first, then global aliases) and check the
   key's permission for the endpoint (read, write or owner);
4. run the handler with an `S3Request` whose body streams through the checks of `body.py`.
Every exception is answered in one place (`errors.from_exception`): S3 errors with their
code, quorum and RPC failures as 503 ServiceUnavailable, anything else as 500 (logged).
"""

from __future__ import annotations

import logging
import secrets
import time
from typing import Any

from aiohttp import web

from grange.api.common.signature import errors as sigerr
from grange.api.common.signature import parse_query_string
from grange.api.common.signature.verify import prepare_request
from grange.api.s3 import errors as s3err
from grange.api.s3.body import RequestBody
from grange.api.s3.context import S3Request, common_headers
from grange.api.s3.handlers import HANDLERS
from grange.api.s3.router import Authorization, Endpoint, route
from grange.model.helpers import Helper
from grange.model.model import Model
from grange.util.config import Config

log = logging.getLogger("grange.api.s3")

# LMDB's key limit (511 bytes) minus the 32-byte partition hash of the table key.
LMDB_OBJECT_KEY_MAX = 511 - 32
_CREATES_KEY = frozenset({Endpoint.PutObject, Endpoint.CopyObject, Endpoint.CreateMultipartUpload})


def _s3_error_of(exc: BaseException) -> s3err.S3Error:
    if isinstance(exc, sigerr.SignatureError):
        cls = s3err.ERRORS.get(exc.code)
        if cls is None:  # a code the S3 layer has no class for: keep the signature layer's answer
            cls = type(exc.code, (s3err.S3Error,), {"code": exc.code, "status": exc.status})
        err = cls(exc.message)
        err.fields.update(exc.extra)  # e.g. X-Amz-Expires, Expires, ServerTime of an expired URL
        return err
    return s3err.from_exception(exc)


def _body_left_unread(http: web.BaseRequest) -> bool:
    has_body = (http.content_length or 0) > 0 or http.headers.get("Transfer-Encoding", "").lower() == "chunked"
    return has_body and not http.content.at_eof()


class S3ApiServer:
    def __init__(self, model: Model, config: Config) -> None:
        self.model = model
        self.config = config
        self.helper = Helper(model)
        self.region = config.s3_api.s3_region
        self.root_domain = config.s3_api.root_domain
        self.tag = model.id[:8]
        self._server: web.Server | None = None
        self._listener: Any = None

    async def start(self, host: str, port: int) -> int:
        import asyncio

        self._server = web.Server(self.handle, access_log=None)
        loop = asyncio.get_running_loop()
        self._listener = await loop.create_server(self._server, host, port, reuse_address=True)
        return self._listener.sockets[0].getsockname()[1]

    async def close(self) -> None:
        if self._listener is not None:
            self._listener.close()
        if self._server is not None:
            self._server.pre_shutdown()  # close idle keep-alive connections now
            await self._server.shutdown(timeout=5)

    # ------------------------------------------------------------------ one request
    async def handle(self, http: web.BaseRequest) -> web.StreamResponse:
        request_id = secrets.token_hex(8)
        raw_path, _, raw_query = http.raw_path.partition("?")
        resource = raw_path
        t0 = time.monotonic()
        endpoint = "?"
        try:
            query = parse_query_string(raw_query)
            r = route(http.method, raw_path, query, http.headers.get("Host"), self.root_domain, headers=http.headers)
            endpoint = r.endpoint.name
            if r.endpoint is Endpoint.Options:
                return self._preflight(http)
            handler = HANDLERS.get(r.endpoint)
            if handler is None:
                raise s3err.NotImplemented(f"{r.endpoint.name} is not implemented by Grange")
            if r.key is not None and r.endpoint in _CREATES_KEY:
                self._check_key_fits(r.key)
            req = S3Request(http=http, route=r, request_id=request_id, model=self.model, helper=self.helper,
                            config=self.config)
            await self._authenticate(req, raw_path, query)
            await self._authorize(req)
            req.body_reader = RequestBody(http, req.verified)
            resp = await handler(req)
        except Exception as exc:  # the one place where errors become S3 answers
            resp = self._error(_s3_error_of(exc), resource, request_id)
        if not resp.prepared:  # a streamed answer set them itself (`S3Request.common_headers`)
            if _body_left_unread(http):
                # The client may not send (or may still be sending) a body we will not
                # read: the connection cannot carry another request.
                resp.force_close()
            resp.headers.update(common_headers(request_id))
        if log.isEnabledFor(logging.DEBUG):
            log.debug("[%s] %s %s %s → %d in %.1f ms", self.tag, http.method, raw_path, endpoint, resp.status,
                      (time.monotonic() - t0) * 1000)
        return resp

    async def _authenticate(self, req: S3Request, raw_path: str, query: list[tuple[str, str]]) -> None:
        prepared = prepare_request(req.http.method, raw_path, query, req.http.headers, region=self.region,
                                   service="s3", now_s=time.time())
        if prepared is None:
            raise s3err.AccessDenied("Anonymous access is not allowed: sign the request")
        key = await self.helper.get_internal_key(prepared.access_key_id)
        params = key.params() if key is not None else None
        if params is None:
            raise s3err.InvalidAccessKeyId()
        req.verified = prepared.verify(params.secret_key)
        req.key = key

    async def _authorize(self, req: S3Request) -> None:
        r = req.route
        if r.bucket is None or r.endpoint is Endpoint.CreateBucket:
            return
        assert req.key is not None
        bucket_id = await self.helper.resolve_bucket(r.bucket, req.key)
        need = r.authorization
        params = req.key.params()
        perm = params.authorized_buckets.get(bucket_id) if params is not None else None
        allowed = perm is not None and (
            need is Authorization.NONE
            or (need is Authorization.READ and perm.allow_read)
            or (need is Authorization.WRITE and perm.allow_write)
            or (need is Authorization.OWNER and perm.allow_owner)
        )
        if not allowed:
            raise s3err.AccessDenied("Access Denied")
        req.bucket_id = bucket_id
        req.bucket = await self.helper.get_existing_bucket(bucket_id)

    def _check_key_fits(self, key: str) -> None:
        """LMDB keys are at most 511 bytes, the table key is 32 + len(object key)."""
        if self.config.db_engine in ("lmdb", "heed") and len(key.encode()) > LMDB_OBJECT_KEY_MAX:
            raise s3err.KeyTooLongError(
                f"Your key is too long: at most {LMDB_OBJECT_KEY_MAX} bytes with db_engine = \"lmdb\" "
                "(use db_engine = \"sqlite\" for keys up to 1024 bytes)")

    # ------------------------------------------------------------------ answers
    def _error(self, err: s3err.S3Error, resource: str, request_id: str) -> web.Response:
        body = s3err.error_xml(err, resource, request_id)
        resp = web.Response(status=err.status, body=body or None,
                            content_type="application/xml" if body else None)
        for name, value in err.headers().items():
            resp.headers[name] = value
        return resp

    def _preflight(self, http: web.BaseRequest) -> web.Response:
        """CORS preflight without bucket rules yet: allow what the browser asks (Garage's
        answer for unknown buckets)."""
        resp = web.Response(status=200)
        resp.headers["Access-Control-Allow-Origin"] = http.headers.get("Origin", "*")
        resp.headers["Access-Control-Allow-Methods"] = http.headers.get("Access-Control-Request-Method", "GET")
        if "Access-Control-Request-Headers" in http.headers:
            resp.headers["Access-Control-Allow-Headers"] = http.headers["Access-Control-Request-Headers"]
        return resp
