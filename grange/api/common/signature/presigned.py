"""SigV4 in the query string (presigned URLs): verification, and `presign()` to make them.

Theory of operation: a presigned URL carries the authorization in six query parameters,

    X-Amz-Algorithm=AWS4-HMAC-SHA256  X-Amz-Credential=AKID/YYYYMMDD/region/s3/aws4_request
    X-Amz-Date=YYYYMMDDTHHMMSSZ  X-Amz-Expires=<1..604800 s>  X-Amz-SignedHeaders=host[;...]
    X-Amz-Signature=<64 hex>

The canonical request covers every query parameter except `X-Amz-Signature`, and its hashed
payload is `UNSIGNED-PAYLOAD` unless the URL carries `X-Amz-Content-Sha256` (the body is then
checked against it, as for header auth). The URL is valid from `X-Amz-Date` (with the same
clock skew allowance as header auth) until `X-Amz-Date + X-Amz-Expires`; after that S3 answers
AccessDenied "Request has expired". Streaming (aws-chunked) payloads need header auth.

Other `X-Amz-*` query parameters stand in for headers the URL's user cannot set (Garage copies
them into the request headers); they are returned in `query_headers`, and one that is also a
signed header with a different value is refused.

`presign()` builds URLs the way botocore's `S3SigV4QueryAuth` does (same parameter order and
encoding), so tools and tests can make URLs without an SDK.
"""

from __future__ import annotations

import datetime as _dt
import time
from collections.abc import Iterable, Mapping
from typing import cast
from urllib.parse import parse_qs, quote, urlsplit, urlunsplit

from .canonical import (
    ALGORITHM,
    UNSIGNED_PAYLOAD,
    CredentialScope,
    HeadersInput,
    build_canonical_request,
    canonical_uri,
    format_amz_date,
    normalize_headers,
    parse_amz_date,
    parse_content_sha256,
    scope_string,
    sign,
    signing_key,
    string_to_sign,
)
from .checks import (
    DEFAULT_MAX_SKEW_S,
    canonical_candidates,
    check_scope,
    check_signed_headers,
    parse_signed_headers,
)
from .errors import (
    AuthorizationQueryParametersError,
    InvalidRequest,
    RequestExpired,
    RequestNotYetValid,
)
from .request import PreparedAuth

__all__ = [
    "MAX_EXPIRES_S",
    "is_presigned",
    "prepare_presigned_auth",
    "presign",
]

MAX_EXPIRES_S = 7 * 24 * 3600  # AWS: "X-Amz-Expires must be less than a week"
_PREFIX = "Error parsing the X-Amz-Credential parameter;"
_AUTH_PARAMS = (
    "x-amz-algorithm",
    "x-amz-credential",
    "x-amz-date",
    "x-amz-expires",
    "x-amz-signedheaders",
    "x-amz-signature",
)
# botocore's SIGNED_HEADERS_BLACKLIST: headers never signed because proxies change them.
_NEVER_SIGNED = frozenset(
    [
        "authorization",
        "baggage",
        "connection",
        "expect",
        "keep-alive",
        "proxy-authenticate",
        "proxy-authorization",
        "te",
        "traceparent",
        "tracestate",
        "trailer",
        "transfer-encoding",
        "upgrade",
        "user-agent",
        "x-amzn-trace-id",
    ]
)


def is_presigned(query: Iterable[tuple[str, str]]) -> bool:
    """Whether the query string carries SigV4 query authentication."""
    return any(name.lower() in ("x-amz-algorithm", "x-amz-credential") for name, _ in query)


def prepare_presigned_auth(
    method: str,
    raw_path: str,
    query: Iterable[tuple[str, str]],
    headers: HeadersInput | Mapping[str, list[str]],
    *,
    region: str,
    service: str = "s3",
    now_s: float,
    max_skew_s: float = DEFAULT_MAX_SKEW_S,
    normalized: bool = False,
) -> PreparedAuth:
    """Parse and check a presigned request; `verify(secret)` on the result finishes."""
    hdrs = (
        cast("dict[str, list[str]]", headers)
        if normalized
        else normalize_headers(cast(HeadersInput, headers))
    )
    query_list = list(query)

    auth: dict[str, str] = {}
    signature_index = -1
    for index, (name, value) in enumerate(query_list):
        lname = name.lower()
        if lname in _AUTH_PARAMS:
            if lname in auth:
                raise AuthorizationQueryParametersError(f"{name} is given more than once")
            auth[lname] = value
            if lname == "x-amz-signature":
                signature_index = index
    if len(auth) != len(_AUTH_PARAMS):
        raise AuthorizationQueryParametersError()

    if auth["x-amz-algorithm"] != ALGORITHM:
        raise AuthorizationQueryParametersError(f'X-Amz-Algorithm only supports "{ALGORITHM}"')
    credential = CredentialScope.parse(auth["x-amz-credential"])
    if credential is None:
        raise AuthorizationQueryParametersError(
            f"{_PREFIX} the Credential is mal-formed; expecting "
            '"<YOUR-AKID>/YYYYMMDD/REGION/SERVICE/aws4_request".'
        )
    moment = parse_amz_date(auth["x-amz-date"])
    if moment is None:
        raise AuthorizationQueryParametersError(
            "X-Amz-Date must be in the ISO8601 Long Format \"yyyyMMdd'T'HHmmss'Z'\""
        )
    amz_date = auth["x-amz-date"].strip()
    expires_s = _parse_expires(auth["x-amz-expires"])
    signed = parse_signed_headers(
        auth["x-amz-signedheaders"], error=AuthorizationQueryParametersError, prefix=_PREFIX
    )
    if not auth["x-amz-signature"]:
        raise AuthorizationQueryParametersError()

    start_s = moment.timestamp()
    if now_s > start_s + expires_s:
        raise RequestExpired(
            **{
                "X-Amz-Expires": str(expires_s),
                "Expires": _iso8601(start_s + expires_s),
                "ServerTime": _iso8601(now_s),
            }
        )
    if start_s - now_s > max_skew_s:
        raise RequestNotYetValid(**{"X-Amz-Date": amz_date, "ServerTime": _iso8601(now_s)})
    check_scope(
        credential, amz_date, region, service, error=AuthorizationQueryParametersError, prefix=_PREFIX
    )
    check_signed_headers(hdrs, signed)

    query_headers: list[tuple[str, str]] = []
    payload_hash = UNSIGNED_PAYLOAD
    for name, value in query_list:
        lname = name.lower()
        if not lname.startswith("x-amz-") or lname in _AUTH_PARAMS:
            continue
        if lname == "x-amz-content-sha256":
            payload_hash = value
        if lname in signed and lname in hdrs and hdrs[lname] != [value]:
            raise InvalidRequest(f"Conflicting values for {lname} in query parameters and request headers")
        query_headers.append((lname, value))
    mode, expected = parse_content_sha256(payload_hash)
    if mode.is_streaming:
        raise InvalidRequest("Streaming payloads cannot be used with presigned URLs")

    canon_query = [pair for i, pair in enumerate(query_list) if i != signature_index]
    return PreparedAuth(
        credential=credential,
        presigned=True,
        amz_date=amz_date,
        signature=auth["x-amz-signature"],
        signed_headers=signed,
        canonical_requests=canonical_candidates(
            method.upper(), raw_path, canon_query, hdrs, signed, payload_hash, service
        ),
        payload_mode=mode,
        content_sha256=expected,
        trailer_names=(),
        decoded_content_length=None,
        query_headers=tuple(query_headers),
    )


def _parse_expires(value: str) -> int:
    text = value.strip()
    if not text.isascii() or not text.lstrip("-").isdigit() or len(text) > 19:
        raise AuthorizationQueryParametersError("X-Amz-Expires should be a number")
    expires = int(text)
    if expires < 0:
        raise AuthorizationQueryParametersError("X-Amz-Expires must be non-negative")
    if expires < 1:
        raise AuthorizationQueryParametersError("X-Amz-Expires must be at least 1 second")
    if expires > MAX_EXPIRES_S:
        raise AuthorizationQueryParametersError(
            "X-Amz-Expires must be less than a week (in seconds) that is 604800"
        )
    return expires


def _iso8601(unix_s: float) -> str:
    return _dt.datetime.fromtimestamp(int(unix_s), _dt.UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


# ---- making presigned URLs ----


def _percent_encode(text: str) -> str:
    return quote(text, safe="-_.~")


def _host_from_url(scheme: str, hostname: str | None, port: int | None) -> str:
    host = (hostname or "").lower()
    if ":" in host:  # IPv6 literal
        host = f"[{host}]"
    if port is not None and port != {"http": 80, "https": 443}.get(scheme):
        host = f"{host}:{port}"
    return host


def presign(
    method: str,
    url: str,
    access_key_id: str,
    secret_key: str,
    *,
    region: str,
    service: str = "s3",
    expires_s: int = 3600,
    now_s: float | None = None,
    headers: Mapping[str, str] | None = None,
) -> str:
    """A presigned URL for `method url`, as botocore's `generate_presigned_url` makes it.

    `url` has a percent-encoded path (as an SDK sends it) and may have a query. `headers` are
    extra headers the user of the URL will send and that are signed (`host` always is). The
    URL's existing query keeps one value per name, as in botocore.
    """
    if not 1 <= expires_s <= MAX_EXPIRES_S:
        raise ValueError(f"expires_s must be within 1..{MAX_EXPIRES_S}")
    parts = urlsplit(url)
    amz_date = format_amz_date(time.time() if now_s is None else now_s)
    scope = scope_string(amz_date[:8], region, service)

    sign_headers = {"host": [_host_from_url(parts.scheme, parts.hostname, parts.port)]}
    for name, value in (headers or {}).items():
        if name.lower() not in _NEVER_SIGNED:
            sign_headers[name.lower()] = [value]
    signed = tuple(sorted(sign_headers))

    existing = {k: v[0] for k, v in parse_qs(parts.query, keep_blank_values=True).items()}
    auth_params = [
        ("X-Amz-Algorithm", ALGORITHM),
        ("X-Amz-Credential", f"{access_key_id}/{scope}"),
        ("X-Amz-Date", amz_date),
        ("X-Amz-Expires", str(expires_s)),
        ("X-Amz-SignedHeaders", ";".join(signed)),
    ]
    pairs = [*existing.items(), *auth_params]
    path = canonical_uri(parts.path, double_encode=False) if service == "s3" else (parts.path or "/")
    canon = build_canonical_request(
        method, path, pairs, sign_headers, signed, UNSIGNED_PAYLOAD, service=service
    )
    signature = sign(
        signing_key(secret_key, amz_date[:8], region, service), string_to_sign(amz_date, scope, canon)
    )
    query = "&".join(f"{_percent_encode(k)}={_percent_encode(v)}" for k, v in pairs)
    return urlunsplit(
        (parts.scheme, parts.netloc, path, f"{query}&X-Amz-Signature={signature}", parts.fragment)
    )
