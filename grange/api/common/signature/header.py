"""SigV4 in the Authorization header.

Theory of operation: the client sends

    Authorization: AWS4-HMAC-SHA256 Credential=AKID/20130524/garage/s3/aws4_request,
                   SignedHeaders=host;range;x-amz-content-sha256;x-amz-date, Signature=<64 hex>
    x-amz-date: 20130524T000000Z            (or a Date header, RFC 1123)
    x-amz-content-sha256: <hex sha256 | UNSIGNED-PAYLOAD | STREAMING-...>

`prepare_header_auth` parses the header (commas and/or whitespace between the three
parameters, in any order, as SDKs differ), takes the request time from `x-amz-date` or else
`Date`, checks it against the injected clock (`now_s`, Unix seconds) within `max_skew_s`,
checks the scope and the signed-header rules (`checks.py`), reads the payload mode from
`x-amz-content-sha256` (required, as on S3), and builds the canonical request(s). The
`PreparedAuth` it returns names the access key; `PreparedAuth.verify(secret)` finishes.
"""

from __future__ import annotations

import datetime as _dt
import email.utils
import re
from collections.abc import Iterable, Mapping
from typing import cast

from .canonical import (
    ALGORITHM,
    CredentialScope,
    HeadersInput,
    format_amz_date,
    normalize_headers,
    parse_amz_date,
    parse_content_sha256,
)
from .checks import (
    DEFAULT_MAX_SKEW_S,
    canonical_candidates,
    check_clock,
    check_scope,
    check_signed_headers,
    parse_decoded_content_length,
    parse_signed_headers,
    parse_trailer_names,
)
from .errors import AccessDenied, AuthorizationHeaderMalformed, InvalidRequest
from .request import PreparedAuth

__all__ = ["ParsedAuthorization", "parse_authorization_header", "prepare_header_auth"]

_MALFORMED = "The authorization header is malformed;"
_EQUALS_RE = re.compile(r"\s*=\s*")
_SEPARATORS_RE = re.compile(r"[,\s]+")


class ParsedAuthorization:
    """The three parameters of an `AWS4-HMAC-SHA256` Authorization header."""

    __slots__ = ("credential", "signature", "signed_headers")

    def __init__(self, credential: CredentialScope, signed_headers: tuple[str, ...], signature: str) -> None:
        self.credential = credential
        self.signed_headers = signed_headers
        self.signature = signature


def parse_authorization_header(value: str) -> ParsedAuthorization:
    value = value.strip()
    algorithm, _, rest = value.partition(" ")
    if algorithm != ALGORITHM:
        raise InvalidRequest(
            f"The authorization mechanism you have provided is not supported. Please use {ALGORITHM}."
        )
    params: dict[str, str] = {}
    for part in _SEPARATORS_RE.split(_EQUALS_RE.sub("=", rest.strip())):
        if not part:
            continue
        key, sep, val = part.partition("=")
        if not sep or key in params:
            raise AuthorizationHeaderMalformed()
        params[key] = val
    try:
        credential_s, signed_s, signature = (
            params["Credential"],
            params["SignedHeaders"],
            params["Signature"],
        )
    except KeyError:
        raise AuthorizationHeaderMalformed() from None
    credential = CredentialScope.parse(credential_s)
    if credential is None:
        raise AuthorizationHeaderMalformed(
            f"{_MALFORMED} the Credential is mal-formed; expecting "
            '"<YOUR-AKID>/YYYYMMDD/REGION/SERVICE/aws4_request".'
        )
    if not signature:
        raise AuthorizationHeaderMalformed()
    signed = parse_signed_headers(signed_s, error=AuthorizationHeaderMalformed, prefix=_MALFORMED)
    return ParsedAuthorization(credential, signed, signature)


def _request_time(headers: dict[str, list[str]]) -> tuple[_dt.datetime, str]:
    """The request time and its `YYYYMMDDTHHMMSSZ` form, from x-amz-date or else Date."""
    invalid = AccessDenied("AWS authentication requires a valid Date or x-amz-date header")
    if amz := headers.get("x-amz-date"):
        moment = parse_amz_date(amz[0])
        if moment is None:
            raise invalid
        return moment, amz[0].strip()
    if date := headers.get("date"):
        try:
            moment = email.utils.parsedate_to_datetime(date[0])
        except (TypeError, ValueError, IndexError):
            raise invalid from None
        if moment.tzinfo is None:
            moment = moment.replace(tzinfo=_dt.UTC)
        return moment, format_amz_date(moment)
    raise invalid


def prepare_header_auth(
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
    """Parse and check a header-signed request; `verify(secret)` on the result finishes.

    `headers` is a (multi-)dict or pairs; pass `normalized=True` with the output of
    `normalize_headers` to skip renormalising.
    """
    hdrs = (
        cast("dict[str, list[str]]", headers)
        if normalized
        else normalize_headers(cast(HeadersInput, headers))
    )
    auth_values = hdrs.get("authorization", [])
    if len(auth_values) != 1:
        raise AuthorizationHeaderMalformed()
    auth = parse_authorization_header(auth_values[0])

    moment, amz_date = _request_time(hdrs)
    check_clock(moment, now_s, max_skew_s)
    check_scope(
        auth.credential, amz_date, region, service, error=AuthorizationHeaderMalformed, prefix=_MALFORMED
    )
    content_sha256 = hdrs.get("x-amz-content-sha256")
    if not content_sha256:
        raise InvalidRequest("Missing required header for this request: x-amz-content-sha256")
    check_signed_headers(hdrs, auth.signed_headers)
    payload_hash = content_sha256[0]
    mode, expected = parse_content_sha256(payload_hash)

    query_list = list(query)
    return PreparedAuth(
        credential=auth.credential,
        presigned=False,
        amz_date=amz_date,
        signature=auth.signature,
        signed_headers=auth.signed_headers,
        canonical_requests=canonical_candidates(
            method.upper(), raw_path, query_list, hdrs, auth.signed_headers, payload_hash, service
        ),
        payload_mode=mode,
        content_sha256=expected,
        trailer_names=parse_trailer_names(hdrs),
        decoded_content_length=parse_decoded_content_length(hdrs),
    )
