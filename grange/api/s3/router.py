"""S3 request routing: method + path + query (+ Host, + one header) → endpoint (Garage `api/s3/router.rs`).

Theory of operation
-------------------
`route()` is a pure function; it never looks at a body, a credential or a table.

1. **Bucket and key.** With ``root_domain`` set and a Host under it, the bucket comes from
   the Host (vhost-style, see `names.vhost_bucket`) and the whole path after its first
   ``/`` is the key. Otherwise (path-style, always available) leading slashes are
   skipped, the first segment is the bucket and everything after the next ``/`` is the
   key. The key is percent-decoded as UTF-8 (invalid UTF-8 → ``InvalidRequest``); ``+``
   stays a plus (only query strings use ``+`` for space), ``%2F`` becomes ``/``. The
   bucket is taken as is (valid bucket names need no escaping). The *scope* of the
   request is ``SERVICE`` (no bucket), ``BUCKET`` (bucket, empty key) or ``OBJECT``.
2. **OPTIONS** answers `Endpoint.Options` at once, whatever the path and query (CORS
   preflight is unauthenticated and routed before anything else, as in Garage).
3. **Query.** Parameters whose name is a *subresource keyword* (``acl``, ``uploads``,
   ``delete``, ``versioning``...) select the operation; at most one may be present.
   Known *fields* (``uploadId``, ``partNumber``, ``max-keys``...) are collected: an empty
   value counts as absent and a repeated field is refused (both as in Garage). The six
   ``response-*`` overrides are kept apart; any other parameter (``x-id``, the
   ``X-Amz-*`` of presigned URLs, ``versionId`` where unused...) is ignored and listed in
   `Route.unused` for a debug log.
4. **Rules.** `RULES` is Garage's table as data: for each (method, keyword, scope) in
   order, an optional field that must be present (``uploadId`` turns a key GET into
   ListParts), an optional header that must be present (``x-amz-copy-source`` turns a PUT
   into CopyObject / UploadPartCopy: decided here, from `headers`, like Garage), and the
   parameters the endpoint takes, each required or optional, parsed as str, int or bool.
   The first matching rule wins. No match: ``MethodNotAllowed`` if the keyword and scope
   exist only under other methods (``DELETE /``, ``POST /b?website``), otherwise
   ``InvalidRequest`` (``GET /b/k?website``, ``POST /b/k`` without ``uploadId``); an HTTP
   method S3 does not know is also ``MethodNotAllowed``.
5. **Parameters** of the matched rule are parsed: a missing required one →
   ``InvalidRequest``; an unparsable or out-of-choice value (``max-keys=abc``,
   ``encoding-type=xml``, ``list-type=3``) → ``InvalidArgument``. Range checks that depend
   on the operation (part numbers 1–10000, ``max-keys`` clamping) are the handler's.

Every failure is an `S3Error`; nothing else escapes (a Hypothesis test holds us to it).

Deliberate differences from Garage v2.0, each toward what AWS does:
- ``/bucket//key`` names the key ``/key`` (Garage trims leading slashes of the key too,
  so a key starting with ``/`` could not be addressed). Slashes *before* the bucket are
  still skipped, which tolerates endpoints configured with a trailing slash.
- On the service root (``/`` without bucket) only GET is ListBuckets; Garage answers
  ListBuckets to every method.
- Unknown HTTP methods and known subresources under the wrong method answer 405
  ``MethodNotAllowed``; Garage answers 400 ``InvalidRequest``.
- ``encoding-type`` other than ``url`` is refused with ``InvalidArgument`` (Garage ignores
  it); ``fetch-owner`` accepts ``true``/``false`` in any case.

When changing this table, keep in step: `IMPLEMENTED` (what the S3 server handles, the
rest answers 501), `_READ` / `_OWNER` (permission needed), the tests' count of 93
endpoints, and the reference list in shared/reference/garage-v2.md §1.1.
"""

from __future__ import annotations

import enum
import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from types import MappingProxyType
from urllib.parse import unquote

from grange.api.s3.errors import InvalidArgument, InvalidRequest, MethodNotAllowed
from grange.api.s3.names import check_object_key, vhost_bucket


class Endpoint(enum.Enum):
    """Every S3 endpoint name Garage v2.0 routes (93); the value is the name."""

    AbortMultipartUpload = "AbortMultipartUpload"
    CompleteMultipartUpload = "CompleteMultipartUpload"
    CopyObject = "CopyObject"
    CreateBucket = "CreateBucket"
    CreateMultipartUpload = "CreateMultipartUpload"
    DeleteBucket = "DeleteBucket"
    DeleteBucketAnalyticsConfiguration = "DeleteBucketAnalyticsConfiguration"
    DeleteBucketCors = "DeleteBucketCors"
    DeleteBucketEncryption = "DeleteBucketEncryption"
    DeleteBucketIntelligentTieringConfiguration = "DeleteBucketIntelligentTieringConfiguration"
    DeleteBucketInventoryConfiguration = "DeleteBucketInventoryConfiguration"
    DeleteBucketLifecycle = "DeleteBucketLifecycle"
    DeleteBucketMetricsConfiguration = "DeleteBucketMetricsConfiguration"
    DeleteBucketOwnershipControls = "DeleteBucketOwnershipControls"
    DeleteBucketPolicy = "DeleteBucketPolicy"
    DeleteBucketReplication = "DeleteBucketReplication"
    DeleteBucketTagging = "DeleteBucketTagging"
    DeleteBucketWebsite = "DeleteBucketWebsite"
    DeleteObject = "DeleteObject"
    DeleteObjects = "DeleteObjects"
    DeleteObjectTagging = "DeleteObjectTagging"
    DeletePublicAccessBlock = "DeletePublicAccessBlock"
    GetBucketAccelerateConfiguration = "GetBucketAccelerateConfiguration"
    GetBucketAcl = "GetBucketAcl"
    GetBucketAnalyticsConfiguration = "GetBucketAnalyticsConfiguration"
    GetBucketCors = "GetBucketCors"
    GetBucketEncryption = "GetBucketEncryption"
    GetBucketIntelligentTieringConfiguration = "GetBucketIntelligentTieringConfiguration"
    GetBucketInventoryConfiguration = "GetBucketInventoryConfiguration"
    GetBucketLifecycleConfiguration = "GetBucketLifecycleConfiguration"
    GetBucketLocation = "GetBucketLocation"
    GetBucketLogging = "GetBucketLogging"
    GetBucketMetricsConfiguration = "GetBucketMetricsConfiguration"
    GetBucketNotificationConfiguration = "GetBucketNotificationConfiguration"
    GetBucketOwnershipControls = "GetBucketOwnershipControls"
    GetBucketPolicy = "GetBucketPolicy"
    GetBucketPolicyStatus = "GetBucketPolicyStatus"
    GetBucketReplication = "GetBucketReplication"
    GetBucketRequestPayment = "GetBucketRequestPayment"
    GetBucketTagging = "GetBucketTagging"
    GetBucketVersioning = "GetBucketVersioning"
    GetBucketWebsite = "GetBucketWebsite"
    GetObject = "GetObject"
    GetObjectAcl = "GetObjectAcl"
    GetObjectLegalHold = "GetObjectLegalHold"
    GetObjectLockConfiguration = "GetObjectLockConfiguration"
    GetObjectRetention = "GetObjectRetention"
    GetObjectTagging = "GetObjectTagging"
    GetObjectTorrent = "GetObjectTorrent"
    GetPublicAccessBlock = "GetPublicAccessBlock"
    HeadBucket = "HeadBucket"
    HeadObject = "HeadObject"
    ListBucketAnalyticsConfigurations = "ListBucketAnalyticsConfigurations"
    ListBucketIntelligentTieringConfigurations = "ListBucketIntelligentTieringConfigurations"
    ListBucketInventoryConfigurations = "ListBucketInventoryConfigurations"
    ListBucketMetricsConfigurations = "ListBucketMetricsConfigurations"
    ListBuckets = "ListBuckets"
    ListMultipartUploads = "ListMultipartUploads"
    ListObjects = "ListObjects"
    ListObjectsV2 = "ListObjectsV2"
    ListObjectVersions = "ListObjectVersions"
    ListParts = "ListParts"
    Options = "Options"
    PostObject = "PostObject"
    PutBucketAccelerateConfiguration = "PutBucketAccelerateConfiguration"
    PutBucketAcl = "PutBucketAcl"
    PutBucketAnalyticsConfiguration = "PutBucketAnalyticsConfiguration"
    PutBucketCors = "PutBucketCors"
    PutBucketEncryption = "PutBucketEncryption"
    PutBucketIntelligentTieringConfiguration = "PutBucketIntelligentTieringConfiguration"
    PutBucketInventoryConfiguration = "PutBucketInventoryConfiguration"
    PutBucketLifecycleConfiguration = "PutBucketLifecycleConfiguration"
    PutBucketLogging = "PutBucketLogging"
    PutBucketMetricsConfiguration = "PutBucketMetricsConfiguration"
    PutBucketNotificationConfiguration = "PutBucketNotificationConfiguration"
    PutBucketOwnershipControls = "PutBucketOwnershipControls"
    PutBucketPolicy = "PutBucketPolicy"
    PutBucketReplication = "PutBucketReplication"
    PutBucketRequestPayment = "PutBucketRequestPayment"
    PutBucketTagging = "PutBucketTagging"
    PutBucketVersioning = "PutBucketVersioning"
    PutBucketWebsite = "PutBucketWebsite"
    PutObject = "PutObject"
    PutObjectAcl = "PutObjectAcl"
    PutObjectLegalHold = "PutObjectLegalHold"
    PutObjectLockConfiguration = "PutObjectLockConfiguration"
    PutObjectRetention = "PutObjectRetention"
    PutObjectTagging = "PutObjectTagging"
    PutPublicAccessBlock = "PutPublicAccessBlock"
    RestoreObject = "RestoreObject"
    SelectObjectContent = "SelectObjectContent"
    UploadPart = "UploadPart"
    UploadPartCopy = "UploadPartCopy"

    @property
    def implemented(self) -> bool:
        """Handled by Grange's S3 server; every other endpoint answers 501 NotImplemented."""
        return self in IMPLEMENTED

    @property
    def authorization(self) -> Authorization:
        """The permission a key needs on the bucket for this endpoint (Garage `authorization_type`)."""
        if self in _NO_AUTH:
            return Authorization.NONE
        if self in _READ:
            return Authorization.READ
        if self in _OWNER:
            return Authorization.OWNER
        return Authorization.WRITE


class Authorization(enum.Enum):
    NONE = "none"  # ListBuckets (any valid key), OPTIONS (no signature at all)
    READ = "read"
    WRITE = "write"
    OWNER = "owner"


E = Endpoint

#: The endpoints Garage v2.0 handles (31 S3 operations + PostObject + OPTIONS preflight).
IMPLEMENTED: frozenset[Endpoint] = frozenset({
    E.ListBuckets, E.CreateBucket, E.HeadBucket, E.DeleteBucket, E.GetBucketLocation, E.GetBucketVersioning,
    E.ListObjects, E.ListObjectsV2, E.ListMultipartUploads, E.DeleteObjects,
    E.GetBucketWebsite, E.PutBucketWebsite, E.DeleteBucketWebsite,
    E.GetBucketCors, E.PutBucketCors, E.DeleteBucketCors,
    E.GetBucketLifecycleConfiguration, E.PutBucketLifecycleConfiguration, E.DeleteBucketLifecycle,
    E.GetBucketAcl,
    E.HeadObject, E.GetObject, E.PutObject, E.CopyObject, E.UploadPart, E.UploadPartCopy, E.DeleteObject,
    E.CreateMultipartUpload, E.CompleteMultipartUpload, E.AbortMultipartUpload, E.ListParts,
    E.PostObject, E.Options,
})

_NO_AUTH = frozenset({E.ListBuckets, E.Options})
_READ = frozenset({
    E.GetBucketAccelerateConfiguration, E.GetBucketAcl, E.GetBucketAnalyticsConfiguration,
    E.GetBucketEncryption, E.GetBucketIntelligentTieringConfiguration, E.GetBucketInventoryConfiguration,
    E.GetBucketLifecycleConfiguration, E.GetBucketLocation, E.GetBucketLogging,
    E.GetBucketMetricsConfiguration, E.GetBucketNotificationConfiguration, E.GetBucketOwnershipControls,
    E.GetBucketPolicy, E.GetBucketPolicyStatus, E.GetBucketReplication, E.GetBucketRequestPayment,
    E.GetBucketTagging, E.GetBucketVersioning, E.GetObject, E.GetObjectAcl, E.GetObjectLegalHold,
    E.GetObjectLockConfiguration, E.GetObjectRetention, E.GetObjectTagging, E.GetObjectTorrent,
    E.GetPublicAccessBlock, E.HeadBucket, E.HeadObject, E.ListBucketAnalyticsConfigurations,
    E.ListBucketIntelligentTieringConfigurations, E.ListBucketInventoryConfigurations,
    E.ListBucketMetricsConfigurations, E.ListMultipartUploads, E.ListObjects, E.ListObjectsV2,
    E.ListObjectVersions, E.ListParts, E.SelectObjectContent,
})
_OWNER = frozenset({
    E.DeleteBucket, E.GetBucketWebsite, E.PutBucketWebsite, E.DeleteBucketWebsite,
    E.GetBucketCors, E.PutBucketCors, E.DeleteBucketCors,
})


class Scope(enum.Enum):
    """What the path names; the values are AWS's ``ResourceType`` in MethodNotAllowed."""

    SERVICE = "SERVICE"  # no bucket
    BUCKET = "BUCKET"    # a bucket, empty key
    OBJECT = "OBJECT"    # a bucket and a non-empty key


SERVICE, BUCKET, OBJECT = Scope.SERVICE, Scope.BUCKET, Scope.OBJECT

ParamValue = str | int | bool | None

# Unsigned 64-bit, the parse target of Garage's numeric parameters.
_INT_MAX = 2**64 - 1
_DIGITS = re.compile(r"[0-9]{1,20}")


@dataclass(frozen=True, slots=True)
class Param:
    """One query parameter an endpoint takes: wire name, Python name, type, required."""

    query_name: str
    name: str
    kind: type
    required: bool
    choices: tuple[str, ...] = ()

    def parse(self, raw: str) -> ParamValue:
        if self.choices and raw not in self.choices:
            raise InvalidArgument(f"Invalid value for argument {self.query_name}: {raw!r}",
                                  argument_name=self.query_name, argument_value=raw)
        if self.kind is int:
            if not _DIGITS.fullmatch(raw) or int(raw) > _INT_MAX:
                raise InvalidArgument(f"Provided {self.query_name} not an integer or within integer range",
                                      argument_name=self.query_name, argument_value=raw)
            return int(raw)
        if self.kind is bool:
            low = raw.lower()
            if low not in ("true", "false"):
                raise InvalidArgument(f"Invalid value for argument {self.query_name}: {raw!r}",
                                      argument_name=self.query_name, argument_value=raw)
            return low == "true"
        return raw


# Closed value sets (AWS refuses anything else).
_CHOICES = {"encoding-type": ("url",), "list-type": ("2",), "select-type": ("2",)}


def _snake(query_name: str) -> str:
    """``uploadId`` → ``upload_id``, ``max-keys`` → ``max_keys``."""
    return re.sub(r"(?<=[a-z])([A-Z])", r"_\1", query_name).replace("-", "_").lower()


def _params(spec: str) -> tuple[Param, ...]:
    """Parse a parameter spec: space-separated ``name[!][:int|:bool]`` (``!`` = required)."""
    out = []
    for token in spec.split():
        name, _, kind = token.partition(":")
        required = name.endswith("!")
        name = name.rstrip("!")
        out.append(Param(name, _snake(name), {"": str, "int": int, "bool": bool}[kind], required,
                         _CHOICES.get(name, ())))
    return tuple(out)


@dataclass(frozen=True, slots=True)
class Rule:
    """One line of the routing table; see the module docstring, step 4."""

    method: str
    keyword: str  # subresource keyword; "" for none
    scope: Scope
    endpoint: Endpoint
    params: tuple[Param, ...] = ()
    requires: str | None = None  # a query field that must be present (and non-empty)
    header: str | None = None    # a header that must be present (lower-case name)


def _r(method: str, keyword: str, scope: Scope, endpoint: Endpoint, params: str = "", *,
       requires: str | None = None, header: str | None = None) -> Rule:
    return Rule(method, keyword, scope, endpoint, _params(params), requires, header)


_LIST_V2 = "list-type! continuation-token delimiter encoding-type fetch-owner:bool max-keys:int prefix start-after"
_LIST_V1 = "delimiter encoding-type marker max-keys:int prefix"
_LIST_MPU = "delimiter encoding-type key-marker max-uploads:int prefix upload-id-marker"
_LIST_VERSIONS = "delimiter encoding-type key-marker max-keys:int prefix version-id-marker"
_COPY = "x-amz-copy-source"

#: Garage's routing table (`router.rs` `from_get` ... `from_delete`), in matching order.
RULES: tuple[Rule, ...] = (
    # ---- service
    _r("GET", "", SERVICE, E.ListBuckets, "max-buckets:int continuation-token prefix bucket-region"),
    # ---- GET object
    _r("GET", "", OBJECT, E.ListParts, "uploadId! max-parts:int part-number-marker:int", requires="uploadId"),
    _r("GET", "", OBJECT, E.GetObject, "versionId partNumber:int"),
    _r("GET", "acl", OBJECT, E.GetObjectAcl, "versionId"),
    _r("GET", "legal-hold", OBJECT, E.GetObjectLegalHold, "versionId"),
    _r("GET", "retention", OBJECT, E.GetObjectRetention, "versionId"),
    _r("GET", "tagging", OBJECT, E.GetObjectTagging, "versionId"),
    _r("GET", "torrent", OBJECT, E.GetObjectTorrent),
    # ---- GET bucket
    _r("GET", "", BUCKET, E.ListObjectsV2, _LIST_V2, requires="list-type"),
    _r("GET", "", BUCKET, E.ListObjects, _LIST_V1),
    _r("GET", "accelerate", BUCKET, E.GetBucketAccelerateConfiguration),
    _r("GET", "acl", BUCKET, E.GetBucketAcl),
    _r("GET", "analytics", BUCKET, E.GetBucketAnalyticsConfiguration, "id!", requires="id"),
    _r("GET", "analytics", BUCKET, E.ListBucketAnalyticsConfigurations, "continuation-token"),
    _r("GET", "cors", BUCKET, E.GetBucketCors),
    _r("GET", "encryption", BUCKET, E.GetBucketEncryption),
    _r("GET", "intelligent-tiering", BUCKET, E.GetBucketIntelligentTieringConfiguration, "id!", requires="id"),
    _r("GET", "intelligent-tiering", BUCKET, E.ListBucketIntelligentTieringConfigurations, "continuation-token"),
    _r("GET", "inventory", BUCKET, E.GetBucketInventoryConfiguration, "id!", requires="id"),
    _r("GET", "inventory", BUCKET, E.ListBucketInventoryConfigurations, "continuation-token"),
    _r("GET", "lifecycle", BUCKET, E.GetBucketLifecycleConfiguration),
    _r("GET", "location", BUCKET, E.GetBucketLocation),
    _r("GET", "logging", BUCKET, E.GetBucketLogging),
    _r("GET", "metrics", BUCKET, E.GetBucketMetricsConfiguration, "id!", requires="id"),
    _r("GET", "metrics", BUCKET, E.ListBucketMetricsConfigurations, "continuation-token"),
    _r("GET", "notification", BUCKET, E.GetBucketNotificationConfiguration),
    _r("GET", "object-lock", BUCKET, E.GetObjectLockConfiguration),
    _r("GET", "ownershipControls", BUCKET, E.GetBucketOwnershipControls),
    _r("GET", "policy", BUCKET, E.GetBucketPolicy),
    _r("GET", "policyStatus", BUCKET, E.GetBucketPolicyStatus),
    _r("GET", "publicAccessBlock", BUCKET, E.GetPublicAccessBlock),
    _r("GET", "replication", BUCKET, E.GetBucketReplication),
    _r("GET", "requestPayment", BUCKET, E.GetBucketRequestPayment),
    _r("GET", "tagging", BUCKET, E.GetBucketTagging),
    _r("GET", "uploads", BUCKET, E.ListMultipartUploads, _LIST_MPU),
    _r("GET", "versioning", BUCKET, E.GetBucketVersioning),
    _r("GET", "versions", BUCKET, E.ListObjectVersions, _LIST_VERSIONS),
    _r("GET", "website", BUCKET, E.GetBucketWebsite),
    # ---- HEAD
    _r("HEAD", "", OBJECT, E.HeadObject, "partNumber:int versionId"),
    _r("HEAD", "", BUCKET, E.HeadBucket),
    # ---- POST
    _r("POST", "", OBJECT, E.CompleteMultipartUpload, "uploadId!", requires="uploadId"),
    _r("POST", "restore", OBJECT, E.RestoreObject, "versionId"),
    _r("POST", "select", OBJECT, E.SelectObjectContent, "select-type!"),
    _r("POST", "uploads", OBJECT, E.CreateMultipartUpload),
    _r("POST", "", BUCKET, E.PostObject),
    _r("POST", "delete", BUCKET, E.DeleteObjects),
    # ---- PUT object
    _r("PUT", "", OBJECT, E.UploadPartCopy, "partNumber!:int uploadId!", requires="partNumber", header=_COPY),
    _r("PUT", "", OBJECT, E.CopyObject, header=_COPY),
    _r("PUT", "", OBJECT, E.UploadPart, "partNumber!:int uploadId!", requires="partNumber"),
    _r("PUT", "", OBJECT, E.PutObject),
    _r("PUT", "acl", OBJECT, E.PutObjectAcl, "versionId"),
    _r("PUT", "legal-hold", OBJECT, E.PutObjectLegalHold, "versionId"),
    _r("PUT", "retention", OBJECT, E.PutObjectRetention, "versionId"),
    _r("PUT", "tagging", OBJECT, E.PutObjectTagging, "versionId"),
    # ---- PUT bucket
    _r("PUT", "", BUCKET, E.CreateBucket),
    _r("PUT", "accelerate", BUCKET, E.PutBucketAccelerateConfiguration),
    _r("PUT", "acl", BUCKET, E.PutBucketAcl),
    _r("PUT", "analytics", BUCKET, E.PutBucketAnalyticsConfiguration, "id!"),
    _r("PUT", "cors", BUCKET, E.PutBucketCors),
    _r("PUT", "encryption", BUCKET, E.PutBucketEncryption),
    _r("PUT", "intelligent-tiering", BUCKET, E.PutBucketIntelligentTieringConfiguration, "id!"),
    _r("PUT", "inventory", BUCKET, E.PutBucketInventoryConfiguration, "id!"),
    _r("PUT", "lifecycle", BUCKET, E.PutBucketLifecycleConfiguration),
    _r("PUT", "logging", BUCKET, E.PutBucketLogging),
    _r("PUT", "metrics", BUCKET, E.PutBucketMetricsConfiguration, "id!"),
    _r("PUT", "notification", BUCKET, E.PutBucketNotificationConfiguration),
    _r("PUT", "object-lock", BUCKET, E.PutObjectLockConfiguration),
    _r("PUT", "ownershipControls", BUCKET, E.PutBucketOwnershipControls),
    _r("PUT", "policy", BUCKET, E.PutBucketPolicy),
    _r("PUT", "publicAccessBlock", BUCKET, E.PutPublicAccessBlock),
    _r("PUT", "replication", BUCKET, E.PutBucketReplication),
    _r("PUT", "requestPayment", BUCKET, E.PutBucketRequestPayment),
    _r("PUT", "tagging", BUCKET, E.PutBucketTagging),
    _r("PUT", "versioning", BUCKET, E.PutBucketVersioning),
    _r("PUT", "website", BUCKET, E.PutBucketWebsite),
    # ---- DELETE object
    _r("DELETE", "", OBJECT, E.AbortMultipartUpload, "uploadId!", requires="uploadId"),
    _r("DELETE", "", OBJECT, E.DeleteObject, "versionId"),
    _r("DELETE", "tagging", OBJECT, E.DeleteObjectTagging, "versionId"),
    # ---- DELETE bucket
    _r("DELETE", "", BUCKET, E.DeleteBucket),
    _r("DELETE", "analytics", BUCKET, E.DeleteBucketAnalyticsConfiguration, "id!"),
    _r("DELETE", "cors", BUCKET, E.DeleteBucketCors),
    _r("DELETE", "encryption", BUCKET, E.DeleteBucketEncryption),
    _r("DELETE", "intelligent-tiering", BUCKET, E.DeleteBucketIntelligentTieringConfiguration, "id!"),
    _r("DELETE", "inventory", BUCKET, E.DeleteBucketInventoryConfiguration, "id!"),
    _r("DELETE", "lifecycle", BUCKET, E.DeleteBucketLifecycle),
    _r("DELETE", "metrics", BUCKET, E.DeleteBucketMetricsConfiguration, "id!"),
    _r("DELETE", "ownershipControls", BUCKET, E.DeleteBucketOwnershipControls),
    _r("DELETE", "policy", BUCKET, E.DeleteBucketPolicy),
    _r("DELETE", "publicAccessBlock", BUCKET, E.DeletePublicAccessBlock),
    _r("DELETE", "replication", BUCKET, E.DeleteBucketReplication),
    _r("DELETE", "tagging", BUCKET, E.DeleteBucketTagging),
    _r("DELETE", "website", BUCKET, E.DeleteBucketWebsite),
)

#: Subresource keywords and parameter fields, derived from the table.
KEYWORDS: frozenset[str] = frozenset(r.keyword for r in RULES if r.keyword)
FIELDS: frozenset[str] = frozenset(
    {p.query_name for r in RULES for p in r.params} | {r.requires for r in RULES if r.requires}
)
#: Query parameters that override headers of a GetObject / HeadObject answer.
RESPONSE_OVERRIDES: frozenset[str] = frozenset({
    "response-cache-control", "response-content-disposition", "response-content-encoding",
    "response-content-language", "response-content-type", "response-expires",
})
METHODS: frozenset[str] = frozenset({"GET", "HEAD", "PUT", "POST", "DELETE", "OPTIONS"})

_BY_TARGET: dict[tuple[str, str, Scope], tuple[Rule, ...]] = {}
for _rule in RULES:
    _k = (_rule.method, _rule.keyword, _rule.scope)
    _BY_TARGET[_k] = (*_BY_TARGET.get(_k, ()), _rule)
del _rule, _k

_EMPTY: Mapping[str, ParamValue] = MappingProxyType({})


@dataclass(frozen=True, slots=True)
class Route:
    """Where a request goes. `params` has every parameter of the endpoint (absent → None)."""

    endpoint: Endpoint
    bucket: str | None
    key: str | None
    params: Mapping[str, ParamValue] = field(default_factory=lambda: _EMPTY)
    #: ``response-*`` query overrides (GetObject/HeadObject), by query name.
    overrides: Mapping[str, str] = field(default_factory=lambda: MappingProxyType({}))
    #: Query parameters present but not used by this endpoint (worth a debug log line).
    unused: tuple[str, ...] = ()

    @property
    def implemented(self) -> bool:
        return self.endpoint.implemented

    @property
    def authorization(self) -> Authorization:
        return self.endpoint.authorization


@dataclass(slots=True)
class _Query:
    keyword: str
    fields: dict[str, str]
    overrides: dict[str, str]
    ignored: list[str]


def _parse_query(query: Iterable[tuple[str, str]]) -> _Query:
    keyword: str | None = None
    fields: dict[str, str] = {}
    overrides: dict[str, str] = {}
    ignored: list[str] = []
    for name, value in query:
        if name in KEYWORDS:
            if keyword is not None:
                raise InvalidRequest(f"Multiple keywords: '{keyword}' and '{name}'")
            keyword = name
        elif name in FIELDS:
            if value == "":
                continue  # Garage: an empty field is an absent field
            if name in fields:
                raise InvalidRequest(f"Query parameter repeated: '{name}'")
            fields[name] = value
        elif name in RESPONSE_OVERRIDES:
            if name in overrides:
                raise InvalidRequest(f"Query parameter repeated: '{name}'")
            overrides[name] = value
        else:
            ignored.append(name)
    return _Query(keyword or "", fields, overrides, ignored)


def _has_header(headers: Mapping[str, str] | None, name: str) -> bool:
    return headers is not None and any(h.lower() == name for h in headers)


def _split_path(path: str, host_bucket: str | None) -> tuple[str | None, str]:
    """(bucket, raw key) of a request path; see the module docstring, step 1."""
    if host_bucket is not None:
        return host_bucket, path[1:] if path.startswith("/") else path
    path = path.lstrip("/")
    if not path:
        return None, ""
    bucket, _, raw_key = path.partition("/")
    return bucket, raw_key


def _decode_key(raw_key: str) -> str:
    try:
        key = unquote(raw_key, encoding="utf-8", errors="strict")
    except UnicodeDecodeError as e:
        raise InvalidRequest(f"Invalid UTF-8 in object key: {e}") from e
    check_object_key(key)
    return key


def route(method: str, path: str, query: Iterable[tuple[str, str]], host: str | None = None,
          root_domain: str | None = None, *, headers: Mapping[str, str] | None = None) -> Route:
    """Route one S3 request; raises only `S3Error`s.

    `path` is the raw (percent-encoded) path without the query string; `query` the decoded
    query pairs in order; `host` the Host header (a port is ignored); `root_domain` the
    ``[s3_api] root_domain`` setting (None: vhost-style off); `headers` the request headers
    (only ``x-amz-copy-source`` is looked at, case-insensitively; without them a PUT with
    a copy source routes as PutObject / UploadPart).
    """
    if method not in METHODS:
        raise MethodNotAllowed(method=method)
    bucket, raw_key = _split_path(path, vhost_bucket(host, root_domain))
    if method == "OPTIONS":
        return Route(E.Options, bucket, None)
    key = _decode_key(raw_key) if raw_key else ""
    scope = SERVICE if bucket is None else OBJECT if key else BUCKET
    q = _parse_query(query)

    candidates = _BY_TARGET.get((method, q.keyword, scope), ())
    for rule in candidates:
        if rule.requires is not None and rule.requires not in q.fields:
            continue
        if rule.header is not None and not _has_header(headers, rule.header):
            continue
        return _build(rule, bucket, key if scope is OBJECT else None, q)

    if not candidates and any((m, q.keyword, scope) in _BY_TARGET for m in METHODS):
        raise MethodNotAllowed(method=method, resource_type=scope.value)
    what = f"`{q.keyword}`" if q.keyword else "``"
    raise InvalidRequest(f"Invalid endpoint: {method} {what} on a {scope.value.lower()}")


def _build(rule: Rule, bucket: str | None, key: str | None, q: _Query) -> Route:
    params: dict[str, ParamValue] = {}
    used: set[str] = set()
    for p in rule.params:
        raw = q.fields.get(p.query_name)
        if raw is None:
            if p.required:
                raise InvalidRequest(f"Missing argument `{p.name}` for endpoint")
            params[p.name] = None
        else:
            params[p.name] = p.parse(raw)
            used.add(p.query_name)
    overrides: Mapping[str, str] = MappingProxyType({})
    unused = [name for name in q.fields if name not in used] + q.ignored
    if rule.endpoint in (E.GetObject, E.HeadObject):
        overrides = MappingProxyType(q.overrides)
    else:
        unused += list(q.overrides)
    return Route(rule.endpoint, bucket, key, MappingProxyType(params) if params else _EMPTY, overrides,
                 tuple(unused))
