"""AWS Signature Version 4 for the S3 and K2V APIs, in small pure pieces (Garage's
`src/api/common/signature/`).

Theory of operation, per request, in the HTTP layer:

1. `prepare_request(method, raw_path, query, headers, region=..., now_s=...)` picks presigned
   or header auth and checks all that needs no secret (`PreparedAuth`, or None if anonymous);
2. `prepared.verify(secret)` checks the signature (`VerifiedRequest`); `verify_request(...,
   secret_for)` does 1 and 2 with a synchronous key lookup;
3. the body: `PayloadMode.SHA256` -> `verified.content_sha256_check()`; streaming modes ->
   `verified.chunked_decoder()` (sans-IO: feed / next_event / eof); checksums ->
   `parse_request_checksums` + `ChecksumCalculator` + `RequestChecksums.verify`.

Every refusal is a `SignatureError` subclass whose `code`/`status` are the S3 error's.

Modules: `canonical` (encoding, canonical request, string to sign, signing key), `header`,
`presigned` (also `presign()`), `checks` (rules shared by both), `request` (PreparedAuth,
VerifiedRequest), `verify` (entry points), `streaming` (aws-chunked decoder), `checksum`,
`errors`. They import only the standard library, optional C checksum libraries and each other.
"""

from __future__ import annotations

from .canonical import (
    PayloadMode,
    canonical_query_string,
    canonical_uri,
    normalize_headers,
    parse_query_string,
    signing_key,
    uri_encode,
)
from .checksum import (
    ChecksumAlgorithm,
    ChecksumCalculator,
    RequestChecksums,
    combine_full_object_crc,
    combine_part_checksums,
    parse_checksum_algorithm,
    parse_request_checksums,
    trailer_checksum_algorithm,
)
from .errors import (
    AccessDenied,
    AuthorizationHeaderMalformed,
    AuthorizationQueryParametersError,
    AwsChunkedError,
    BadDigest,
    IncompleteBody,
    InvalidAccessKeyId,
    InvalidArgument,
    InvalidDigest,
    InvalidRequest,
    RequestExpired,
    RequestTimeTooSkewed,
    SignatureDoesNotMatch,
    SignatureError,
    XAmzContentSHA256Mismatch,
)
from .header import prepare_header_auth
from .presigned import prepare_presigned_auth, presign
from .request import ContentSha256Check, PreparedAuth, VerifiedRequest
from .streaming import AwsChunkedDecoder, Data, End, NeedData, Trailers, strip_aws_chunked
from .verify import prepare_request, verify_request

__all__ = [
    "AccessDenied",
    "AuthorizationHeaderMalformed",
    "AuthorizationQueryParametersError",
    "AwsChunkedDecoder",
    "AwsChunkedError",
    "BadDigest",
    "ChecksumAlgorithm",
    "ChecksumCalculator",
    "ContentSha256Check",
    "Data",
    "End",
    "IncompleteBody",
    "InvalidAccessKeyId",
    "InvalidArgument",
    "InvalidDigest",
    "InvalidRequest",
    "NeedData",
    "PayloadMode",
    "PreparedAuth",
    "RequestChecksums",
    "RequestExpired",
    "RequestTimeTooSkewed",
    "SignatureDoesNotMatch",
    "SignatureError",
    "Trailers",
    "VerifiedRequest",
    "XAmzContentSHA256Mismatch",
    "canonical_query_string",
    "canonical_uri",
    "combine_full_object_crc",
    "combine_part_checksums",
    "normalize_headers",
    "parse_checksum_algorithm",
    "parse_query_string",
    "parse_request_checksums",
    "prepare_header_auth",
    "prepare_presigned_auth",
    "prepare_request",
    "presign",
    "signing_key",
    "strip_aws_chunked",
    "trailer_checksum_algorithm",
    "uri_encode",
    "verify_request",
]
