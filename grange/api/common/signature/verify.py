"""Entry points: pick header or query authentication for a request, then verify it.

Theory of operation: a request with `X-Amz-Algorithm` or `X-Amz-Credential` in its query is
presigned, whatever its headers say (a browser may add an unrelated Authorization header;
Garage checks the query first for that reason). Otherwise an Authorization header means header
auth. Otherwise the request is anonymous: `prepare_request` returns None and the caller decides
(Garage refuses anonymous S3 requests; the web endpoint and CORS preflights need no auth).

`prepare_request` needs no secret, so an async caller can look the key up between the two
steps:

    prepared = prepare_request(method, raw_path, query, headers, region=region, now_s=time.time())
    if prepared is None: ...anonymous...
    secret = await keys.secret_for(prepared.access_key_id)   # None if unknown or deleted
    verified = prepared.verify(secret)

`verify_request` does both with a synchronous `secret_for`.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable

from .canonical import HeadersInput, normalize_headers
from .checks import DEFAULT_MAX_SKEW_S
from .header import prepare_header_auth
from .presigned import is_presigned, prepare_presigned_auth
from .request import PreparedAuth, VerifiedRequest

__all__ = ["prepare_request", "verify_request"]


def prepare_request(
    method: str,
    raw_path: str,
    query: Iterable[tuple[str, str]],
    headers: HeadersInput,
    *,
    region: str,
    service: str = "s3",
    now_s: float,
    max_skew_s: float = DEFAULT_MAX_SKEW_S,
) -> PreparedAuth | None:
    """Parse and check the request's SigV4 authentication; None for an anonymous request.

    `raw_path` is the path as sent (percent-encoded, without the query); `query` the decoded
    (name, value) pairs in order; `headers` a (multi-)dict or (name, value) pairs; `now_s` the
    current Unix time in seconds.
    """
    query_list = list(query)
    hdrs = normalize_headers(headers)
    if is_presigned(query_list):
        prepare = prepare_presigned_auth
    elif "authorization" in hdrs:
        prepare = prepare_header_auth
    else:
        return None
    return prepare(
        method,
        raw_path,
        query_list,
        hdrs,
        region=region,
        service=service,
        now_s=now_s,
        max_skew_s=max_skew_s,
        normalized=True,
    )


def verify_request(
    method: str,
    raw_path: str,
    query: Iterable[tuple[str, str]],
    headers: HeadersInput,
    secret_for: Callable[[str], str | None],
    *,
    region: str,
    service: str = "s3",
    now_s: float,
    max_skew_s: float = DEFAULT_MAX_SKEW_S,
) -> VerifiedRequest | None:
    """`prepare_request` then `verify` with `secret_for(access_key_id)`; None if anonymous."""
    prepared = prepare_request(
        method, raw_path, query, headers, region=region, service=service, now_s=now_s, max_skew_s=max_skew_s
    )
    if prepared is None:
        return None
    return prepared.verify(secret_for(prepared.access_key_id))
