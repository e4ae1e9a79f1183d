"""The outcome of SigV4 authentication: a request parsed and checked, then verified.

Theory of operation: authentication is split in two steps so that the key lookup, which may
need I/O in the caller, stays outside this package:

1. `prepare_header_auth` / `prepare_presigned_auth` (or `prepare_request`, which picks one)
   parse and check everything that needs no secret: the Authorization header or `X-Amz-*`
   query, the clock, the credential scope, signed-header rules, the payload mode. They return
   a `PreparedAuth` naming the access key id.
2. `PreparedAuth.verify(secret)` derives the signing key, recomputes the signature and compares
   it in constant time. It returns a `VerifiedRequest` carrying what the body pipeline needs:
   the payload mode, the expected body sha256, and for aws-chunked bodies the seed signature,
   signing key, scope and date (`VerifiedRequest.chunked_decoder()` builds the decoder).

`verify_request(..., secret_for)` in `verify.py` chains both for callers with a synchronous
key lookup.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass

from .canonical import (
    CredentialScope,
    PayloadMode,
    signatures_equal,
    signing_key,
    string_to_sign,
)
from .canonical import sign as _sign
from .errors import InvalidAccessKeyId, SignatureDoesNotMatch, XAmzContentSHA256Mismatch
from .streaming import DEFAULT_MAX_CHUNK_SIZE, AwsChunkedDecoder

__all__ = ["ContentSha256Check", "PreparedAuth", "VerifiedRequest"]


@dataclass(frozen=True, slots=True)
class VerifiedRequest:
    """A request whose signature verified. Body integrity is still the HTTP layer's to check:

    - `PayloadMode.SHA256`: hash the body and compare with `content_sha256`
      (`content_sha256_check()` does it incrementally);
    - streaming modes: decode the body with `chunked_decoder()`, compare `decoded_length` with
      `decoded_content_length`, check trailer checksums (`checksum.py`);
    - `PayloadMode.UNSIGNED`: nothing beyond the `Content-MD5` / `x-amz-checksum-*` headers.
    """

    access_key_id: str
    payload_mode: PayloadMode
    content_sha256: bytes | None  # the 32 bytes announced, in PayloadMode.SHA256
    signature: str  # the request's signature: the seed of a chunk signature chain
    signing_key: bytes
    scope: str  # YYYYMMDD/region/service/aws4_request
    amz_date: str  # YYYYMMDDTHHMMSSZ, as in the string to sign
    region: str
    service: str
    presigned: bool
    signed_headers: tuple[str, ...]
    trailer_names: tuple[str, ...]  # from x-amz-trailer, lower case
    decoded_content_length: int | None  # from x-amz-decoded-content-length
    # Presigned only: X-Amz-* query parameters other than the auth ones (lower-case names),
    # which stand in for request headers (Garage copies them into the headers).
    query_headers: tuple[tuple[str, str], ...] = ()

    def content_sha256_check(self) -> ContentSha256Check | None:
        """An incremental body check for `PayloadMode.SHA256`, None for the other modes."""
        if self.content_sha256 is None:
            return None
        return ContentSha256Check(self.content_sha256)

    def chunked_decoder(self, *, max_chunk_size: int = DEFAULT_MAX_CHUNK_SIZE) -> AwsChunkedDecoder | None:
        """The aws-chunked decoder for this body, None if the body is not aws-chunked."""
        if not self.payload_mode.is_streaming:
            return None
        return AwsChunkedDecoder(
            self.payload_mode,
            self.signature,
            self.signing_key,
            self.scope,
            self.amz_date,
            self.trailer_names,
            max_chunk_size=max_chunk_size,
        )


class ContentSha256Check:
    """Hash a body as it streams and compare it with `x-amz-content-sha256` at the end."""

    def __init__(self, expected: bytes) -> None:
        self._expected = expected
        self._hash = hashlib.sha256()

    def update(self, data: bytes | memoryview) -> None:
        self._hash.update(data)

    def verify(self) -> None:
        """Raise `XAmzContentSHA256Mismatch` unless the body hashed to the announced value."""
        computed = self._hash.digest()
        if computed != self._expected:
            raise XAmzContentSHA256Mismatch(
                ClientComputedContentSHA256=self._expected.hex(),
                S3ComputedContentSHA256=computed.hex(),
            )


@dataclass(frozen=True, slots=True)
class PreparedAuth:
    """A parsed and checked SigV4 request, waiting for its secret key."""

    credential: CredentialScope
    presigned: bool
    amz_date: str
    signature: str
    signed_headers: tuple[str, ...]
    # Canonical requests to try, first the normalised one; the second (S3 only, when it
    # differs) uses the path exactly as sent, for clients that sign it unnormalised.
    canonical_requests: tuple[str, ...]
    payload_mode: PayloadMode
    content_sha256: bytes | None
    trailer_names: tuple[str, ...]
    decoded_content_length: int | None
    query_headers: tuple[tuple[str, str], ...] = ()

    @property
    def access_key_id(self) -> str:
        return self.credential.access_key_id

    @property
    def scope(self) -> str:
        return self.credential.scope

    def verify(self, secret: str | None) -> VerifiedRequest:
        """Check the signature with the key's secret (None: the key does not exist)."""
        cred = self.credential
        if secret is None:
            raise InvalidAccessKeyId(AWSAccessKeyId=cred.access_key_id)
        key = signing_key(secret, cred.date, cred.region, cred.service)
        first_sts = ""
        for canon in self.canonical_requests:
            sts = string_to_sign(self.amz_date, cred.scope, canon)
            first_sts = first_sts or sts
            if signatures_equal(_sign(key, sts), self.signature):
                break
        else:
            raise SignatureDoesNotMatch(
                AWSAccessKeyId=cred.access_key_id,
                StringToSign=first_sts,
                SignatureProvided=self.signature,
                CanonicalRequest=self.canonical_requests[0],
            )
        return VerifiedRequest(
            access_key_id=cred.access_key_id,
            payload_mode=self.payload_mode,
            content_sha256=self.content_sha256,
            signature=self.signature.strip().lower(),
            signing_key=key,
            scope=cred.scope,
            amz_date=self.amz_date,
            region=cred.region,
            service=cred.service,
            presigned=self.presigned,
            signed_headers=self.signed_headers,
            trailer_names=self.trailer_names,
            decoded_content_length=self.decoded_content_length,
            query_headers=self.query_headers,
        )
