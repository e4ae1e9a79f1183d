"""S3 errors: one class per AWS error code, mapped to XML at the edge (Garage `api/s3/error.rs`).

Theory of operation
-------------------
Every S3 error a handler can answer is a subclass of `S3Error` whose *class name is the AWS
error code* (``NoSuchKey``, ``MalformedXML``...), with the HTTP status and AWS's default
wording as class attributes. Handlers raise them with an optional specific message and
optional extra fields; the HTTP edge turns any exception into an `S3Error` with
`from_exception` (the one place where lower layers' errors meet S3 codes: quorum failures
and timeouts become ``503 ServiceUnavailable`` as in Garage's `common_error.rs`, anything
unexpected ``500 InternalError``), then answers `err.status`, `err.headers()` and
`error_xml(err, resource, request_id)`.

Extra fields are given as snake_case keyword arguments and rendered as the CamelCase XML
elements AWS uses after ``<Message>``: ``NoSuchBucket(bucket_name="b")`` gives
``<BucketName>b</BucketName>``, ``InvalidRange(actual_object_size=10)`` gives
``<ActualObjectSize>10</ActualObjectSize>``.

``NotModified`` (304) is modelled as an error because handlers leave through it the same
way, but it carries no body (`has_body` is False): the edge sends only its headers.

Note: the class ``NotImplemented`` shadows the builtin constant of the same name for whoever
imports it by name; use it qualified (``s3err.NotImplemented``) where the builtin matters.
"""

from __future__ import annotations

import logging
import re
from typing import Any, ClassVar
from xml.sax.saxutils import escape

log = logging.getLogger("grange.api.s3")

FieldValue = str | int | None

#: Every S3Error subclass by AWS code, filled by `S3Error.__init_subclass__`.
ERRORS: dict[str, type[S3Error]] = {}


def _camel(name: str) -> str:
    """``bucket_name`` → ``BucketName`` (the AWS spelling of extra error fields)."""
    return "".join(part[:1].upper() + part[1:] for part in name.split("_"))


class S3Error(Exception):
    """An S3 error answer: `code` (= class name), `status`, `message` and extra fields.

    Guarantees: `code`, `status` and `message` are always set; `fields` keeps the order in
    which extras were given and holds only non-None values, as strings.
    """

    code: ClassVar[str] = "InternalError"
    status: ClassVar[int] = 500
    default_message: ClassVar[str] = "We encountered an internal error. Please try again."
    #: False for answers that must not carry a body (304).
    has_body: ClassVar[bool] = True
    #: An expected failure: the client's doing, not a bug of ours (no traceback in logs).
    expected: ClassVar[bool] = True

    def __init_subclass__(cls, **kwargs: Any) -> None:
        super().__init_subclass__(**kwargs)
        if "code" not in cls.__dict__:
            cls.code = cls.__name__
        ERRORS[cls.code] = cls

    def __init__(self, message: str | None = None, /, *, resource: str | None = None,
                 **fields: FieldValue) -> None:
        self.message = message if message is not None else self.default_message
        self.resource = resource
        self.fields: dict[str, str] = {_camel(k): str(v) for k, v in fields.items() if v is not None}
        super().__init__(self.message)

    def headers(self) -> dict[str, str]:
        """HTTP headers this error adds to the answer (besides Content-Type)."""
        return {}

    def __repr__(self) -> str:
        return f"{type(self).__name__}({self.message!r}, status={self.status}, fields={self.fields!r})"


# ---------------------------------------------------------------------- 3xx
class NotModified(S3Error):
    status = 304
    default_message = "Not Modified"
    has_body = False

    def __init__(self, message: str | None = None, /, *, etag: str | None = None,
                 last_modified: str | None = None, **fields: FieldValue) -> None:
        super().__init__(message, **fields)
        self.etag = etag
        self.last_modified = last_modified

    def headers(self) -> dict[str, str]:
        h: dict[str, str] = {}
        if self.etag is not None:
            h["ETag"] = self.etag
        if self.last_modified is not None:
            h["Last-Modified"] = self.last_modified
        return h


# ---------------------------------------------------------------------- 400
class AuthorizationHeaderMalformed(S3Error):
    status = 400
    default_message = "The authorization header that you provided is not valid."


class BadDigest(S3Error):
    status = 400
    default_message = "The Content-MD5 you specified did not match what we received."


class EntityTooSmall(S3Error):
    status = 400
    default_message = "Your proposed upload is smaller than the minimum allowed object size."


class EntityTooLarge(S3Error):
    status = 400
    default_message = "Your proposed upload exceeds the maximum allowed object size."


class IncompleteBody(S3Error):
    status = 400
    default_message = "You did not provide the number of bytes specified by the Content-Length HTTP header."


class InvalidArgument(S3Error):
    status = 400
    default_message = "Invalid Argument"


class InvalidBucketName(S3Error):
    status = 400
    default_message = "The specified bucket is not valid."


class InvalidDigest(S3Error):
    status = 400
    default_message = "The Content-MD5 you specified is not valid."


class InvalidEncryptionAlgorithmError(S3Error):
    status = 400
    default_message = "The encryption request that you specified is not valid."


class InvalidLocationConstraint(S3Error):
    status = 400
    default_message = "The specified location constraint is not valid."


class InvalidPart(S3Error):
    status = 400
    default_message = ("One or more of the specified parts could not be found. The part might not have been "
                       "uploaded, or the specified entity tag might not have matched the part's entity tag.")


class InvalidPartOrder(S3Error):
    status = 400
    default_message = ("The list of parts was not in ascending order. The parts list must be specified in "
                       "order by part number.")


class InvalidRequest(S3Error):
    status = 400
    default_message = "Invalid Request"


class InvalidStorageClass(S3Error):
    status = 400
    default_message = "The storage class you specified is not valid."


class InvalidTag(S3Error):
    status = 400
    default_message = "The tag provided was not a valid tag."


class InvalidURI(S3Error):
    status = 400
    default_message = "Couldn't parse the specified URI."


class KeyTooLongError(S3Error):
    status = 400
    default_message = "Your key is too long."


class MalformedPOSTRequest(S3Error):
    status = 400
    default_message = "The body of your POST request is not well-formed multipart/form-data."


class MalformedXML(S3Error):
    status = 400
    default_message = ("The XML you provided was not well-formed or did not validate against our "
                       "published schema.")


class MaxMessageLengthExceeded(S3Error):
    status = 400
    default_message = "Your request was too big."


class MetadataTooLarge(S3Error):
    status = 400
    default_message = "Your metadata headers exceed the maximum allowed metadata size."


class MissingRequestBodyError(S3Error):
    status = 400
    default_message = "Request Body is empty"


class RequestTimeout(S3Error):
    status = 400
    default_message = ("Your socket connection to the server was not read from or written to within "
                       "the timeout period.")


class TooManyBuckets(S3Error):
    status = 400
    default_message = "You have attempted to create more buckets than allowed."


class XAmzContentSHA256Mismatch(S3Error):
    status = 400
    default_message = "The provided 'x-amz-content-sha256' header does not match what was computed."


# ---------------------------------------------------------------------- 403
class AccessDenied(S3Error):
    status = 403
    default_message = "Access Denied"


class InvalidAccessKeyId(S3Error):
    status = 403
    default_message = "The AWS access key Id you provided does not exist in our records."


class InvalidObjectState(S3Error):
    status = 403
    default_message = "The operation is not valid for the current state of the object."


class RequestTimeTooSkewed(S3Error):
    status = 403
    default_message = "The difference between the request time and the current time is too large."


class SignatureDoesNotMatch(S3Error):
    status = 403
    default_message = ("The request signature we calculated does not match the signature you provided. "
                       "Check your key and signing method.")


# ---------------------------------------------------------------------- 404
class NoSuchBucket(S3Error):
    status = 404
    default_message = "The specified bucket does not exist"


class NoSuchKey(S3Error):
    status = 404
    default_message = "The specified key does not exist."


class NoSuchUpload(S3Error):
    status = 404
    default_message = ("The specified upload does not exist. The upload ID may be invalid, or the upload "
                       "may have been aborted or completed.")


class NoSuchCORSConfiguration(S3Error):
    status = 404
    default_message = "The CORS configuration does not exist"


class NoSuchLifecycleConfiguration(S3Error):
    status = 404
    default_message = "The lifecycle configuration does not exist"


class NoSuchWebsiteConfiguration(S3Error):
    status = 404
    default_message = "The specified bucket does not have a website configuration"


# ---------------------------------------------------------------------- 405, 409, 411, 412, 416
class MethodNotAllowed(S3Error):
    status = 405
    default_message = "The specified method is not allowed against this resource."


class BucketAlreadyExists(S3Error):
    status = 409
    default_message = ("The requested bucket name is not available. The bucket namespace is shared by all "
                       "users of the system. Please select a different name and try again.")


class BucketAlreadyOwnedByYou(S3Error):
    status = 409
    default_message = "Your previous request to create the named bucket succeeded and you already own it."


class BucketNotEmpty(S3Error):
    status = 409
    default_message = "The bucket you tried to delete is not empty"


class MissingContentLength(S3Error):
    status = 411
    default_message = "You must provide the Content-Length HTTP header."


class PreconditionFailed(S3Error):
    status = 412
    default_message = "At least one of the preconditions you specified did not hold."


class InvalidRange(S3Error):
    """416, with the object's size: in the body (``ActualObjectSize``) and ``Content-Range``."""

    status = 416
    default_message = "The requested range is not satisfiable"

    def __init__(self, message: str | None = None, /, *, actual_object_size: int,
                 range_requested: str | None = None, **fields: FieldValue) -> None:
        super().__init__(message, range_requested=range_requested, actual_object_size=actual_object_size,
                         **fields)
        self.actual_object_size = actual_object_size

    def headers(self) -> dict[str, str]:
        return {"Content-Range": f"bytes */{self.actual_object_size}"}


# ---------------------------------------------------------------------- 5xx
class InternalError(S3Error):
    status = 500
    default_message = "We encountered an internal error. Please try again."
    expected = False


class NotImplemented(S3Error):  # noqa: A001 - the AWS code; use qualified (see module docstring)
    status = 501
    default_message = "A header you provided implies functionality that is not implemented."


class ServiceUnavailable(S3Error):
    status = 503
    default_message = "Service is unable to handle request."


class SlowDown(S3Error):
    status = 503
    default_message = "Please reduce your request rate."


# ---------------------------------------------------------------------- edge mapping
def from_exception(exc: BaseException) -> S3Error:
    """The S3 answer for any exception a handler let out; the one mapping place.

    `S3Error`s pass through; RPC failures (quorum not reached, node unreachable, remote
    failure) and timeouts become ``ServiceUnavailable`` (Garage maps `Quorum`, `Timeout`
    and `RemoteError` to 503); the model's bucket/key helper errors get their S3 codes;
    anything else is our bug: ``InternalError`` with a generic message (the details go to
    the log, not to the client).
    """
    if isinstance(exc, S3Error):
        return exc
    # Lower layers are imported here, not at module level, so that this module stays
    # importable on its own by the pure parts (router, xml) and their tests.
    from grange.model import helpers
    from grange.model.s3 import objects
    from grange.net.errors import RpcError

    if isinstance(exc, RpcError | TimeoutError):
        return ServiceUnavailable(f"Service is unable to handle request: {exc}")
    if isinstance(exc, helpers.NoSuchBucket):
        return NoSuchBucket(str(exc))
    if isinstance(exc, helpers.InvalidBucketName):
        return InvalidBucketName(str(exc))
    if isinstance(exc, helpers.BucketAlreadyExists):
        return BucketAlreadyExists()
    if isinstance(exc, helpers.BucketNotEmpty):
        return BucketNotEmpty()
    if isinstance(exc, helpers.NoSuchAccessKey):
        return InvalidAccessKeyId()
    if isinstance(exc, helpers.HelperError):
        return InvalidRequest(str(exc))
    if isinstance(exc, objects.NoSuchKey):
        return NoSuchKey()
    log.error("internal error answered as 500: %r", exc, exc_info=exc)
    return InternalError()


# ---------------------------------------------------------------------- XML body
# XML 1.0 cannot carry these even as character references (error messages may quote a
# client's bytes): they are replaced by U+FFFD in error bodies.
_XML_FORBIDDEN = re.compile("[\x00-\x08\x0b\x0c\x0e-\x1f\ud800-\udfff\ufffe\uffff]")


def _text(value: str) -> str:
    return escape(_XML_FORBIDDEN.sub("\ufffd", value), {"\r": "&#13;"})


def error_xml(err: S3Error, resource: str | None = None, request_id: str | None = None, *,
              region: str | None = None) -> bytes:
    """The S3 XML error document: Code, Message, the error's fields, Resource, Region, RequestId.

    `resource` defaults to the error's own `resource`. Returns b"" for errors without a
    body (`NotModified`).
    """
    if not err.has_body:
        return b""
    parts = ['<?xml version="1.0" encoding="UTF-8"?><Error>',
             f"<Code>{_text(err.code)}</Code>", f"<Message>{_text(err.message)}</Message>"]
    parts += [f"<{name}>{_text(value)}</{name}>" for name, value in err.fields.items()]
    res = resource if resource is not None else err.resource
    if res is not None:
        parts.append(f"<Resource>{_text(res)}</Resource>")
    if region is not None:
        parts.append(f"<Region>{_text(region)}</Region>")
    if request_id is not None:
        parts.append(f"<RequestId>{_text(request_id)}</RequestId>")
    parts.append("</Error>")
    return "".join(parts).encode("utf-8")
