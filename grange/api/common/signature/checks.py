"""Checks shared by header and presigned SigV4 authentication.

Theory of operation: both forms carry the same information (credential scope, date, signed
headers, signature) in different places, and S3 applies the same rules to both, in this order:
the date parses and is close enough to our clock; the credential scope names our region and
service and the request's day; `host` is signed, and so is every `x-amz-*` header present;
every signed header is present. Only the error class and message prefix differ
(`AuthorizationHeaderMalformed` "The authorization header is malformed; ..." for headers,
`AuthorizationQueryParametersError` "Error parsing the X-Amz-Credential parameter; ..." for
query strings), so each helper takes them as arguments.
"""

from __future__ import annotations

import datetime as _dt
from collections.abc import Iterable, Mapping

from .canonical import TERMINAL, CredentialScope, build_canonical_request, format_amz_date
from .errors import AccessDenied, InvalidArgument, RequestTimeTooSkewed, SignatureDoesNotMatch, SignatureError

__all__ = [
    "DEFAULT_MAX_SKEW_S",
    "canonical_candidates",
    "check_clock",
    "check_scope",
    "check_signed_headers",
    "parse_decoded_content_length",
    "parse_signed_headers",
    "parse_trailer_names",
]

# AWS refuses requests whose time is more than 15 minutes away from its clock.
DEFAULT_MAX_SKEW_S = 15 * 60


def check_clock(request_time: _dt.datetime, now_s: float, max_skew_s: float) -> None:
    if abs(request_time.timestamp() - now_s) > max_skew_s:
        raise RequestTimeTooSkewed(
            RequestTime=format_amz_date(request_time),
            ServerTime=format_amz_date(now_s),
            MaxAllowedSkewMilliseconds=str(int(max_skew_s * 1000)),
        )


def check_scope(
    cred: CredentialScope,
    amz_date: str,
    region: str,
    service: str,
    *,
    error: type[SignatureError],
    prefix: str,
) -> None:
    """The credential must be for the request's day, our region, our service, aws4_request."""
    if cred.date != amz_date[:8]:
        raise error(
            f'Invalid credential date "{cred.date}". This date is not the same as '
            f'X-Amz-Date: "{amz_date[:8]}".'
        )
    if cred.region != region:
        raise error(f"{prefix} the region '{cred.region}' is wrong; expecting '{region}'", Region=region)
    if cred.service != service:
        raise error(f'{prefix} incorrect service "{cred.service}". This endpoint belongs to "{service}".')
    if cred.terminal != TERMINAL:
        raise error(f'{prefix} incorrect terminal "{cred.terminal}". This endpoint uses "{TERMINAL}".')


def parse_signed_headers(value: str, *, error: type[SignatureError], prefix: str) -> tuple[str, ...]:
    names = tuple(name.strip().lower() for name in value.split(";"))
    if not value.strip() or not all(names):
        raise error(f"{prefix} the SignedHeaders list is malformed")
    if "host" not in names:
        raise error(f"{prefix} the SignedHeaders list must include host")
    return names


def check_signed_headers(headers: Mapping[str, list[str]], signed: Iterable[str]) -> None:
    """Every `x-amz-*` header present must be signed, and every signed header present."""
    signed_set = set(signed)
    not_signed = sorted(n for n in headers if n.startswith("x-amz-") and n not in signed_set)
    if not_signed:
        raise AccessDenied(
            "There were headers present in the request which were not signed",
            HeadersNotSigned=", ".join(not_signed),
        )
    if any(name not in headers for name in signed_set):
        # AWS answers SignatureDoesNotMatch: the client signed something we did not receive.
        raise SignatureDoesNotMatch()


def canonical_candidates(
    method: str,
    raw_path: str,
    query: list[tuple[str, str]],
    headers: Mapping[str, list[str]],
    signed: tuple[str, ...],
    payload_hash: str,
    service: str,
) -> tuple[str, ...]:
    """The normalised canonical request, plus (S3) the one with the path exactly as sent."""
    first = build_canonical_request(method, raw_path, query, headers, signed, payload_hash, service=service)
    if service != "s3":
        return (first,)
    method_line, uri_line, rest = first.split("\n", 2)
    if uri_line == (raw_path or "/"):
        return (first,)
    return (first, f"{method_line}\n{raw_path}\n{rest}")


def parse_trailer_names(headers: Mapping[str, list[str]]) -> tuple[str, ...]:
    """Names announced in `x-amz-trailer` (comma-separated, possibly repeated), lower case."""
    names: list[str] = []
    for value in headers.get("x-amz-trailer", ()):
        names.extend(n.strip().lower() for n in value.split(",") if n.strip())
    return tuple(dict.fromkeys(names))


def parse_decoded_content_length(headers: Mapping[str, list[str]]) -> int | None:
    values = headers.get("x-amz-decoded-content-length")
    if not values:
        return None
    value = values[0].strip()
    if len(values) > 1 or not value.isascii() or not value.isdigit() or len(value) > 19:
        raise InvalidArgument(
            "Invalid x-amz-decoded-content-length",
            ArgumentName="x-amz-decoded-content-length",
            ArgumentValue=",".join(values),
        )
    return int(value)
