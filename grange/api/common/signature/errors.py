"""Errors raised while authenticating an S3 request or decoding its body.

Theory of operation: every exception in this module means "the peer sent something we refuse"
(a bad signature, a malformed header, a truncated body). None of them is our bug. Each class
is named after the S3 error code it becomes and carries that code and the HTTP status as
class attributes, so the HTTP layer maps any `SignatureError` to S3 XML in one place:

    except SignatureError as e:
        return s3_error_xml(code=e.code, status=e.status, message=e.message, **e.extra)

`extra` holds the additional XML elements AWS puts in some errors (`Region`,
`AWSAccessKeyId`, `StringToSign`, `CanonicalRequest`, `RequestTime`, `ServerTime`...); keys are
the XML element names. Default messages are AWS's wording where known.

The aws-chunked decoder raises one peer-error type, `AwsChunkedError`; its concrete classes
also inherit the S3 error they answer as (`ChunkSignatureMismatch` is a
`SignatureDoesNotMatch`, `ChunkedBodyIncomplete` an `IncompleteBody`, `ChunkedFramingError`
an `InvalidRequest`), so catching either the decoder's type or `SignatureError` works.
"""

from __future__ import annotations

from typing import ClassVar

__all__ = [
    "AccessDenied",
    "AuthorizationHeaderMalformed",
    "AuthorizationQueryParametersError",
    "AwsChunkedError",
    "BadDigest",
    "ChunkSignatureMismatch",
    "ChunkTooLarge",
    "ChunkedBodyIncomplete",
    "ChunkedFramingError",
    "ExpiredToken",
    "IncompleteBody",
    "InvalidAccessKeyId",
    "InvalidArgument",
    "InvalidDigest",
    "InvalidRequest",
    "MissingSecurityHeader",
    "RequestExpired",
    "RequestNotYetValid",
    "RequestTimeTooSkewed",
    "SignatureDoesNotMatch",
    "SignatureError",
    "XAmzContentSHA256Mismatch",
]


class SignatureError(Exception):
    """Base of every authentication / body-integrity error; `code` is the S3 error code."""

    code: ClassVar[str] = "AccessDenied"
    status: ClassVar[int] = 403
    default_message: ClassVar[str] = "Access Denied"

    def __init__(self, message: str | None = None, **extra: str) -> None:
        self.message: str = message if message is not None else self.default_message
        self.extra: dict[str, str] = dict(extra)
        super().__init__(self.message)

    def __repr__(self) -> str:
        return f"{type(self).__name__}({self.message!r})"


class AccessDenied(SignatureError):
    code = "AccessDenied"
    status = 403
    default_message = "Access Denied"


class RequestExpired(AccessDenied):
    """A presigned URL used after `X-Amz-Date + X-Amz-Expires` (S3 answers AccessDenied)."""

    default_message = "Request has expired"


class RequestNotYetValid(AccessDenied):
    """A presigned URL whose `X-Amz-Date` is further in the future than the allowed skew."""

    default_message = "Request is not valid yet"


class InvalidAccessKeyId(SignatureError):
    code = "InvalidAccessKeyId"
    status = 403
    default_message = "The AWS Access Key Id you provided does not exist in our records."


class SignatureDoesNotMatch(SignatureError):
    code = "SignatureDoesNotMatch"
    status = 403
    default_message = (
        "The request signature we calculated does not match the signature you provided. "
        "Check your key and signing method."
    )


class RequestTimeTooSkewed(SignatureError):
    code = "RequestTimeTooSkewed"
    status = 403
    default_message = "The difference between the request time and the current time is too large."


class ExpiredToken(SignatureError):
    code = "ExpiredToken"
    status = 400
    default_message = "The provided token has expired."


class AuthorizationHeaderMalformed(SignatureError):
    code = "AuthorizationHeaderMalformed"
    status = 400
    default_message = (
        "The authorization header is malformed; the authorization header requires three "
        "components: Credential, SignedHeaders, and Signature."
    )


class AuthorizationQueryParametersError(SignatureError):
    code = "AuthorizationQueryParametersError"
    status = 400
    default_message = (
        "Query-string authentication version 4 requires the X-Amz-Algorithm, X-Amz-Credential, "
        "X-Amz-Signature, X-Amz-Date, X-Amz-SignedHeaders, and X-Amz-Expires parameters."
    )


class MissingSecurityHeader(SignatureError):
    code = "MissingSecurityHeader"
    status = 400
    default_message = "Your request was missing a required header."


class InvalidRequest(SignatureError):
    code = "InvalidRequest"
    status = 400
    default_message = "Invalid Request"


class InvalidArgument(SignatureError):
    code = "InvalidArgument"
    status = 400
    default_message = "Invalid Argument"


class XAmzContentSHA256Mismatch(SignatureError):
    code = "XAmzContentSHA256Mismatch"
    status = 400
    default_message = "The provided 'x-amz-content-sha256' header does not match what was computed."


class BadDigest(SignatureError):
    code = "BadDigest"
    status = 400
    default_message = "The Content-MD5 you specified did not match what we received."


class InvalidDigest(SignatureError):
    code = "InvalidDigest"
    status = 400
    default_message = "The Content-MD5 you specified was invalid."


class IncompleteBody(SignatureError):
    code = "IncompleteBody"
    status = 400
    default_message = "The request body terminated unexpectedly"


# ---- the aws-chunked decoder's one peer-error type ----


class AwsChunkedError(SignatureError):
    """The peer sent an aws-chunked body we refuse. Never raised directly: see subclasses.

    Defines no `code`/`status` of its own, so a subclass's second base (the S3 error it
    answers as) provides them through the MRO.
    """


class ChunkSignatureMismatch(AwsChunkedError, SignatureDoesNotMatch):
    """A chunk or trailer signature does not verify."""


class ChunkedBodyIncomplete(AwsChunkedError, IncompleteBody):
    """The body ended before the final chunk (and trailers) were complete."""


class ChunkedFramingError(AwsChunkedError, InvalidRequest):
    """Malformed framing: bad chunk header, missing CRLF, bad trailer line, data after the end."""


class ChunkTooLarge(ChunkedFramingError):
    """A signed chunk announced a size above the decoder's `max_chunk_size`."""
