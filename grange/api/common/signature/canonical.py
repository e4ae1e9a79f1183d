"""SigV4 building blocks: encoding, canonical request, string to sign, signing key, scope.

Theory of operation (AWS Signature Version 4, as S3 and its SDKs apply it):

    CanonicalRequest = Method "\\n" CanonicalURI "\\n" CanonicalQuery "\\n"
                       CanonicalHeaders "\\n" SignedHeaders "\\n" HashedPayload
    StringToSign     = "AWS4-HMAC-SHA256\\n" AmzDate "\\n" Scope "\\n" hex(sha256(CanonicalRequest))
    SigningKey       = HMAC(HMAC(HMAC(HMAC("AWS4" + secret, YYYYMMDD), region), service), "aws4_request")
    Signature        = hex(HMAC(SigningKey, StringToSign))
    Scope            = YYYYMMDD "/" region "/" service "/aws4_request"

- URI encoding uses the RFC 3986 unreserved set (``A-Z a-z 0-9 - . _ ~``), every other byte of
  the UTF-8 form as ``%XX`` with upper-case hex.
- CanonicalURI: for S3 the path is *not* double-encoded. We take the raw path as sent, split it
  on ``/``, percent-decode each segment and re-encode it (``%2F`` inside a segment stays
  ``%2F``), so ``/test$file.text`` and ``/test%24file.text`` both canonicalise to
  ``/test%24file.text`` as in AWS's own example. Other services (K2V) double-encode: the raw
  path is encoded once more with ``/`` kept, as botocore's generic SigV4 and Garage do, and no
  dot-segment normalisation is applied (Garage's choice, so every K2V key stays addressable).
- CanonicalQuery: every (name, value) pair encoded, sorted by encoded name then encoded value,
  joined with ``&`` (``name=`` for an empty value). Presigned requests leave out
  ``X-Amz-Signature``; the caller filters it.
- CanonicalHeaders: for each signed header name (lower case, in the order the client listed
  them), ``name:value`` where repeated headers are joined with ``,`` and each value has its
  whitespace runs collapsed to one space and is trimmed (botocore's ``' '.join(v.split())``).
- HashedPayload is the ``x-amz-content-sha256`` value as sent (header auth) or
  ``UNSIGNED-PAYLOAD`` (presigned).

Everything here is a pure function of its arguments; the signing key derivation is memoised
in a small LRU (four HMACs per request saved; keys change at most daily).

When changing this module, keep in step: `header.py` and `presigned.py` (their checks follow
the order AWS applies), `streaming.py` (chunk string to sign reuses `AMZ_DATE_FORMAT` and the
scope string), and the vectors in `tests/test_sigv4.py`.
"""

from __future__ import annotations

import datetime as _dt
import hashlib
import hmac
import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from enum import Enum
from functools import lru_cache
from typing import Protocol
from urllib.parse import unquote_to_bytes

from .errors import InvalidArgument

__all__ = [
    "ALGORITHM",
    "AMZ_DATE_FORMAT",
    "EMPTY_SHA256_HEX",
    "STREAMING_SIGNED",
    "STREAMING_SIGNED_TRAILER",
    "STREAMING_UNSIGNED_TRAILER",
    "UNSIGNED_PAYLOAD",
    "CredentialScope",
    "HeadersInput",
    "PayloadMode",
    "build_canonical_request",
    "canonical_header_value",
    "canonical_headers",
    "canonical_query_string",
    "canonical_request",
    "canonical_uri",
    "format_amz_date",
    "normalize_headers",
    "parse_amz_date",
    "parse_content_sha256",
    "parse_query_string",
    "sign",
    "signing_key",
    "string_to_sign",
    "uri_encode",
]

ALGORITHM = "AWS4-HMAC-SHA256"
TERMINAL = "aws4_request"
AMZ_DATE_FORMAT = "%Y%m%dT%H%M%SZ"
EMPTY_SHA256_HEX = hashlib.sha256(b"").hexdigest()

UNSIGNED_PAYLOAD = "UNSIGNED-PAYLOAD"
STREAMING_SIGNED = "STREAMING-AWS4-HMAC-SHA256-PAYLOAD"
STREAMING_SIGNED_TRAILER = "STREAMING-AWS4-HMAC-SHA256-PAYLOAD-TRAILER"
STREAMING_UNSIGNED_TRAILER = "STREAMING-UNSIGNED-PAYLOAD-TRAILER"

# Signing keys are derived per (secret, day, region, service): a handful per active key.
SIGNING_KEY_CACHE_SIZE = 1024

_UNRESERVED = frozenset(b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-._~")
_ENCODE_TABLE = tuple(chr(b) if b in _UNRESERVED else f"%{b:02X}" for b in range(256))
_ENCODE_TABLE_KEEP_SLASH = tuple("/" if b == 0x2F else s for b, s in enumerate(_ENCODE_TABLE))
_AMZ_DATE_RE = re.compile(r"(\d{4})(\d{2})(\d{2})T(\d{2})(\d{2})(\d{2})Z")
_SHA256_HEX_RE = re.compile(r"[0-9a-fA-F]{64}")


def to_utf8(text: str) -> bytes:
    """UTF-8 bytes of `text`, keeping bytes that a lenient decoder smuggled as surrogates."""
    try:
        return text.encode("utf-8")
    except UnicodeEncodeError:
        try:
            return text.encode("utf-8", "surrogateescape")
        except UnicodeEncodeError:
            return text.encode("utf-8", "surrogatepass")


def uri_encode_bytes(data: bytes, *, encode_slash: bool = True) -> str:
    table = _ENCODE_TABLE if encode_slash else _ENCODE_TABLE_KEEP_SLASH
    return "".join([table[b] for b in data])


def uri_encode(text: str, *, encode_slash: bool = True) -> str:
    """AWS URI encoding of `text` (its UTF-8 bytes); `/` kept when `encode_slash` is false."""
    return uri_encode_bytes(to_utf8(text), encode_slash=encode_slash)


def canonical_uri(raw_path: str, *, double_encode: bool = False) -> str:
    """Canonical URI of a request path as sent on the wire (still percent-encoded).

    S3 (`double_encode=False`): each segment is decoded then re-encoded. Other services
    (`double_encode=True`): the raw path is encoded again, keeping `/`.
    """
    if not raw_path:
        return "/"
    if double_encode:
        return uri_encode(raw_path, encode_slash=False)
    return "/".join(uri_encode_bytes(unquote_to_bytes(segment)) for segment in raw_path.split("/"))


def parse_query_string(raw_query: str) -> list[tuple[str, str]]:
    """Decode a raw query string into (name, value) pairs, in order, keeping blank values.

    `+` means a space (form encoding, as Garage and yarl decode it); bytes that are not UTF-8
    survive as surrogates so that re-encoding gives them back.
    """
    pairs: list[tuple[str, str]] = []
    if not raw_query:
        return pairs
    for part in raw_query.split("&"):
        if not part:
            continue
        name, _, value = part.partition("=")
        pairs.append((_form_decode(name), _form_decode(value)))
    return pairs


def _form_decode(text: str) -> str:
    return unquote_to_bytes(text.replace("+", " ")).decode("utf-8", "surrogateescape")


def canonical_query_string(query: Iterable[tuple[str, str]]) -> str:
    """Canonical query of decoded (name, value) pairs: encoded, sorted by name then value."""
    encoded = sorted((uri_encode(name), uri_encode(value)) for name, value in query)
    return "&".join(f"{name}={value}" for name, value in encoded)


class _MultiDictLike(Protocol):
    def items(self) -> Iterable[tuple[str, str]]: ...


HeadersInput = _MultiDictLike | Mapping[str, str] | Iterable[tuple[str, str]]


def normalize_headers(headers: HeadersInput) -> dict[str, list[str]]:
    """Lower-case name -> every value in arrival order, from a (multi-)dict or a list of pairs.

    A multi-dict (aiohttp's `CIMultiDictProxy`) yields repeated headers through `items()`.
    """
    items = headers.items() if hasattr(headers, "items") else headers
    out: dict[str, list[str]] = {}
    for name, value in items:
        out.setdefault(name.lower(), []).append(value)
    return out


def canonical_header_value(values: Iterable[str]) -> str:
    return ",".join(" ".join(value.split()) for value in values)


def canonical_headers(headers: Mapping[str, list[str]], signed_headers: Iterable[str]) -> str:
    """`name:value\\n` for every signed header (names lower case, as listed by the client).

    A signed header absent from the request canonicalises with an empty value, which can only
    verify if the client signed it empty; callers may refuse it earlier.
    """
    return "".join(f"{name}:{canonical_header_value(headers.get(name, ()))}\n" for name in signed_headers)


def canonical_request(
    method: str,
    canon_uri: str,
    canon_query: str,
    canon_headers: str,
    signed_headers: Iterable[str],
    payload_hash: str,
) -> str:
    """Assemble the canonical request; `canon_headers` ends with a newline per header."""
    return "\n".join([method, canon_uri, canon_query, canon_headers, ";".join(signed_headers), payload_hash])


def build_canonical_request(
    method: str,
    raw_path: str,
    query: Iterable[tuple[str, str]],
    headers: Mapping[str, list[str]],
    signed_headers: Iterable[str],
    payload_hash: str,
    *,
    service: str = "s3",
) -> str:
    """Canonical request from request parts; `headers` as returned by `normalize_headers`."""
    signed = list(signed_headers)
    return canonical_request(
        method.upper(),
        canonical_uri(raw_path, double_encode=service != "s3"),
        canonical_query_string(query),
        canonical_headers(headers, signed),
        signed,
        payload_hash,
    )


def string_to_sign(amz_date: str, scope: str, canon_request: str) -> str:
    digest = hashlib.sha256(to_utf8(canon_request)).hexdigest()
    return f"{ALGORITHM}\n{amz_date}\n{scope}\n{digest}"


def _hmac(key: bytes, msg: str) -> bytes:
    return hmac.new(key, to_utf8(msg), hashlib.sha256).digest()


@lru_cache(maxsize=SIGNING_KEY_CACHE_SIZE)
def signing_key(secret: str, date: str, region: str, service: str) -> bytes:
    """SigV4 signing key for a secret on a day (`YYYYMMDD`), memoised."""
    k_date = _hmac(to_utf8("AWS4" + secret), date)
    k_region = _hmac(k_date, region)
    k_service = _hmac(k_region, service)
    return _hmac(k_service, TERMINAL)


def sign(key: bytes, to_sign: str) -> str:
    """Hex HMAC-SHA256 signature of a string to sign."""
    return hmac.new(key, to_utf8(to_sign), hashlib.sha256).hexdigest()


def signatures_equal(expected_hex: str, given: str) -> bool:
    """Constant-time comparison of a computed hex signature with what the client sent."""
    return hmac.compare_digest(expected_hex.encode("ascii"), to_utf8(given.strip().lower()))


# ---- credential scope and dates ----


@dataclass(frozen=True, slots=True)
class CredentialScope:
    """`AKID/YYYYMMDD/region/service/aws4_request`, as in `Credential=` or `X-Amz-Credential`."""

    access_key_id: str
    date: str
    region: str
    service: str
    terminal: str

    @property
    def scope(self) -> str:
        return f"{self.date}/{self.region}/{self.service}/{self.terminal}"

    @classmethod
    def parse(cls, credential: str) -> CredentialScope | None:
        """None when the credential does not have the five `/`-separated parts."""
        parts = credential.strip().rsplit("/", 4)
        if len(parts) != 5 or not all(parts):
            return None
        return cls(*parts)


def scope_string(date: str, region: str, service: str) -> str:
    return f"{date}/{region}/{service}/{TERMINAL}"


def parse_amz_date(text: str) -> _dt.datetime | None:
    """Parse `YYYYMMDDTHHMMSSZ` (UTC); None when malformed."""
    match = _AMZ_DATE_RE.fullmatch(text.strip())
    if match is None:
        return None
    try:
        year, month, day, hour, minute, second = (int(g) for g in match.groups())
        return _dt.datetime(year, month, day, hour, minute, second, tzinfo=_dt.UTC)
    except ValueError:
        return None


def format_amz_date(moment: _dt.datetime | float) -> str:
    """`YYYYMMDDTHHMMSSZ` of an aware datetime or a Unix time in seconds."""
    if not isinstance(moment, _dt.datetime):
        moment = _dt.datetime.fromtimestamp(moment, _dt.UTC)
    return moment.astimezone(_dt.UTC).strftime(AMZ_DATE_FORMAT)


# ---- x-amz-content-sha256 ----


class PayloadMode(Enum):
    """How the body is covered by the signature (the `x-amz-content-sha256` value)."""

    SHA256 = "sha256"  # a hex digest: the HTTP layer checks the body against it
    UNSIGNED = UNSIGNED_PAYLOAD
    STREAMING_SIGNED = STREAMING_SIGNED
    STREAMING_SIGNED_TRAILER = STREAMING_SIGNED_TRAILER
    STREAMING_UNSIGNED_TRAILER = STREAMING_UNSIGNED_TRAILER

    @property
    def is_streaming(self) -> bool:
        """The body is aws-chunked and must go through `AwsChunkedDecoder`."""
        return self.value.startswith("STREAMING-")

    @property
    def has_trailer(self) -> bool:
        return self.value.endswith("-TRAILER")

    @property
    def signed_chunks(self) -> bool:
        return self in (PayloadMode.STREAMING_SIGNED, PayloadMode.STREAMING_SIGNED_TRAILER)


_SUPPORTED_CONTENT_SHA256 = (
    "x-amz-content-sha256 must be UNSIGNED-PAYLOAD, STREAMING-UNSIGNED-PAYLOAD-TRAILER, "
    "STREAMING-AWS4-HMAC-SHA256-PAYLOAD, STREAMING-AWS4-HMAC-SHA256-PAYLOAD-TRAILER "
    "or a valid sha256 value."
)


def parse_content_sha256(value: str) -> tuple[PayloadMode, bytes | None]:
    """Payload mode and, for a hex digest, the 32 expected bytes. Unknown values are refused."""
    value = value.strip()
    if _SHA256_HEX_RE.fullmatch(value):
        return PayloadMode.SHA256, bytes.fromhex(value)
    try:
        mode = PayloadMode(value)
    except ValueError:
        mode = None
    if mode is None or mode is PayloadMode.SHA256:
        raise InvalidArgument(
            _SUPPORTED_CONTENT_SHA256, ArgumentName="x-amz-content-sha256", ArgumentValue=value
        )
    return mode, None
