"""S3 router and names: a table of requests → endpoints (path- and vhost-style), the
errors of unroutable requests, and a property: the router raises nothing but S3Errors."""

from __future__ import annotations

from typing import Any
from urllib.parse import parse_qsl, urlsplit

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from grange.api.s3 import errors as s3err
from grange.api.s3 import names
from grange.api.s3.router import (
    FIELDS,
    IMPLEMENTED,
    KEYWORDS,
    RULES,
    Authorization,
    Endpoint,
    Route,
    route,
)

ROOT = ".s3.localhost"
COPY = {"X-Amz-Copy-Source": "/src/key"}


def _route(method: str, target: str, host: str | None = None, root: str | None = ROOT,
           headers: dict[str, str] | None = None) -> Route:
    path, _, qs = target.partition("?")
    return route(method, path, parse_qsl(qs, keep_blank_values=True), host, root, headers=headers)


# (method, target, host, headers, endpoint, bucket, key, expected params subset)
Case = tuple[str, str, str | None, dict[str, str] | None, Endpoint, str | None, str | None, dict[str, Any]]

CASES: list[Case] = [
    # ---- service
    ("GET", "/", None, None, Endpoint.ListBuckets, None, None, {}),
    ("GET", "/", "s3.localhost", None, Endpoint.ListBuckets, None, None, {}),
    ("GET", "/?x-id=ListBuckets", "s3.localhost:3900", None, Endpoint.ListBuckets, None, None, {}),
    ("GET", "/?max-buckets=10&prefix=a", None, None, Endpoint.ListBuckets, None, None,
     {"max_buckets": 10, "prefix": "a"}),
    ("OPTIONS", "/", None, None, Endpoint.Options, None, None, {}),
    ("OPTIONS", "/b/some/key?uploads", None, None, Endpoint.Options, "b", None, {}),
    # ---- handled bucket endpoints, path-style
    ("PUT", "/b", None, None, Endpoint.CreateBucket, "b", None, {}),
    ("PUT", "/b/", None, None, Endpoint.CreateBucket, "b", None, {}),
    ("HEAD", "/b", None, None, Endpoint.HeadBucket, "b", None, {}),
    ("DELETE", "/b", None, None, Endpoint.DeleteBucket, "b", None, {}),
    ("GET", "/b?location", None, None, Endpoint.GetBucketLocation, "b", None, {}),
    ("GET", "/b?versioning", None, None, Endpoint.GetBucketVersioning, "b", None, {}),
    ("GET", "/b", None, None, Endpoint.ListObjects, "b", None, {"prefix": None, "max_keys": None}),
    ("GET", "/b?prefix=a%2Fb&delimiter=%2F&marker=m&max-keys=10&encoding-type=url", None, None,
     Endpoint.ListObjects, "b", None,
     {"prefix": "a/b", "delimiter": "/", "marker": "m", "max_keys": 10, "encoding_type": "url"}),
    ("GET", "/b?prefix=a+b", None, None, Endpoint.ListObjects, "b", None, {"prefix": "a b"}),
    ("GET", "/b?list-type=2", None, None, Endpoint.ListObjectsV2, "b", None, {"list_type": "2"}),
    ("GET", "/b?list-type=2&continuation-token=abc%3D&start-after=x&fetch-owner=true&max-keys=5&prefix=",
     None, None, Endpoint.ListObjectsV2, "b", None,
     {"continuation_token": "abc=", "start_after": "x", "fetch_owner": True, "max_keys": 5, "prefix": None}),
    ("GET", "/b?list-type=2&fetch-owner=False", None, None, Endpoint.ListObjectsV2, "b", None,
     {"fetch_owner": False}),
    ("GET", "/b?uploads", None, None, Endpoint.ListMultipartUploads, "b", None, {"max_uploads": None}),
    ("GET", "/b?uploads&key-marker=k&upload-id-marker=u&max-uploads=3&delimiter=/", None, None,
     Endpoint.ListMultipartUploads, "b", None,
     {"key_marker": "k", "upload_id_marker": "u", "max_uploads": 3, "delimiter": "/"}),
    ("POST", "/b?delete", None, None, Endpoint.DeleteObjects, "b", None, {}),
    ("POST", "/b/?delete=", None, None, Endpoint.DeleteObjects, "b", None, {}),
    ("GET", "/b?website", None, None, Endpoint.GetBucketWebsite, "b", None, {}),
    ("PUT", "/b?website", None, None, Endpoint.PutBucketWebsite, "b", None, {}),
    ("DELETE", "/b?website", None, None, Endpoint.DeleteBucketWebsite, "b", None, {}),
    ("GET", "/b?cors", None, None, Endpoint.GetBucketCors, "b", None, {}),
    ("PUT", "/b?cors", None, None, Endpoint.PutBucketCors, "b", None, {}),
    ("DELETE", "/b?cors", None, None, Endpoint.DeleteBucketCors, "b", None, {}),
    ("GET", "/b?lifecycle", None, None, Endpoint.GetBucketLifecycleConfiguration, "b", None, {}),
    ("PUT", "/b?lifecycle", None, None, Endpoint.PutBucketLifecycleConfiguration, "b", None, {}),
    ("DELETE", "/b?lifecycle", None, None, Endpoint.DeleteBucketLifecycle, "b", None, {}),
    ("GET", "/b?acl", None, None, Endpoint.GetBucketAcl, "b", None, {}),
    ("POST", "/b", None, None, Endpoint.PostObject, "b", None, {}),
    # ---- handled object endpoints
    ("HEAD", "/b/k", None, None, Endpoint.HeadObject, "b", "k", {"part_number": None}),
    ("HEAD", "/b/k?partNumber=2&versionId=v", None, None, Endpoint.HeadObject, "b", "k",
     {"part_number": 2, "version_id": "v"}),
    ("GET", "/b/k", None, None, Endpoint.GetObject, "b", "k", {"version_id": None, "part_number": None}),
    ("GET", "/b/k?versionId=3/L4kqtJlcpXroDTDmpUMLUo", None, None, Endpoint.GetObject, "b", "k",
     {"version_id": "3/L4kqtJlcpXroDTDmpUMLUo"}),
    ("GET", "/b/k?partNumber=1", None, None, Endpoint.GetObject, "b", "k", {"part_number": 1}),
    ("PUT", "/b/k", None, None, Endpoint.PutObject, "b", "k", {}),
    ("PUT", "/b/k", None, COPY, Endpoint.CopyObject, "b", "k", {}),
    ("PUT", "/b/k", None, {"x-amz-copy-source": "src/k"}, Endpoint.CopyObject, "b", "k", {}),
    ("PUT", "/b/k?partNumber=3&uploadId=u1", None, None, Endpoint.UploadPart, "b", "k",
     {"part_number": 3, "upload_id": "u1"}),
    ("PUT", "/b/k?partNumber=3&uploadId=u1", None, COPY, Endpoint.UploadPartCopy, "b", "k",
     {"part_number": 3, "upload_id": "u1"}),
    ("DELETE", "/b/k", None, None, Endpoint.DeleteObject, "b", "k", {"version_id": None}),
    ("DELETE", "/b/k?versionId=v", None, None, Endpoint.DeleteObject, "b", "k", {"version_id": "v"}),
    ("POST", "/b/k?uploads", None, None, Endpoint.CreateMultipartUpload, "b", "k", {}),
    ("POST", "/b/k?uploadId=VXBsb2Fk", None, None, Endpoint.CompleteMultipartUpload, "b", "k",
     {"upload_id": "VXBsb2Fk"}),
    ("DELETE", "/b/k?uploadId=u", None, None, Endpoint.AbortMultipartUpload, "b", "k", {"upload_id": "u"}),
    ("GET", "/b/k?uploadId=u&max-parts=10&part-number-marker=2", None, None, Endpoint.ListParts, "b", "k",
     {"upload_id": "u", "max_parts": 10, "part_number_marker": 2}),
    # ---- routed but not implemented (501)
    ("PUT", "/b?versioning", None, None, Endpoint.PutBucketVersioning, "b", None, {}),
    ("GET", "/b?versions&key-marker=k&version-id-marker=v&max-keys=3", None, None,
     Endpoint.ListObjectVersions, "b", None, {"key_marker": "k", "version_id_marker": "v", "max_keys": 3}),
    ("GET", "/b?object-lock", None, None, Endpoint.GetObjectLockConfiguration, "b", None, {}),
    ("PUT", "/b?object-lock", None, None, Endpoint.PutObjectLockConfiguration, "b", None, {}),
    ("GET", "/b/k?retention&versionId=v", None, None, Endpoint.GetObjectRetention, "b", "k", {"version_id": "v"}),
    ("PUT", "/b/k?legal-hold", None, None, Endpoint.PutObjectLegalHold, "b", "k", {}),
    ("GET", "/b?policy", None, None, Endpoint.GetBucketPolicy, "b", None, {}),
    ("PUT", "/b?policy", None, None, Endpoint.PutBucketPolicy, "b", None, {}),
    ("DELETE", "/b?policy", None, None, Endpoint.DeleteBucketPolicy, "b", None, {}),
    ("GET", "/b?policyStatus", None, None, Endpoint.GetBucketPolicyStatus, "b", None, {}),
    ("PUT", "/b?acl", None, None, Endpoint.PutBucketAcl, "b", None, {}),
    ("GET", "/b/k?acl", None, None, Endpoint.GetObjectAcl, "b", "k", {}),
    ("PUT", "/b/k?tagging", None, None, Endpoint.PutObjectTagging, "b", "k", {}),
    ("DELETE", "/b/k?tagging&versionId=v", None, None, Endpoint.DeleteObjectTagging, "b", "k", {"version_id": "v"}),
    ("GET", "/b?tagging", None, None, Endpoint.GetBucketTagging, "b", None, {}),
    ("GET", "/b?encryption", None, None, Endpoint.GetBucketEncryption, "b", None, {}),
    ("DELETE", "/b?replication", None, None, Endpoint.DeleteBucketReplication, "b", None, {}),
    ("PUT", "/b?notification", None, None, Endpoint.PutBucketNotificationConfiguration, "b", None, {}),
    ("GET", "/b?analytics&id=list1", None, None, Endpoint.GetBucketAnalyticsConfiguration, "b", None,
     {"id": "list1"}),
    ("GET", "/b?analytics", None, None, Endpoint.ListBucketAnalyticsConfigurations, "b", None,
     {"continuation_token": None}),
    ("DELETE", "/b?metrics&id=m", None, None, Endpoint.DeleteBucketMetricsConfiguration, "b", None, {"id": "m"}),
    ("GET", "/b?intelligent-tiering", None, None, Endpoint.ListBucketIntelligentTieringConfigurations, "b",
     None, {}),
    ("PUT", "/b?inventory&id=i", None, None, Endpoint.PutBucketInventoryConfiguration, "b", None, {"id": "i"}),
    ("GET", "/b/quotes/Nelson?torrent", None, None, Endpoint.GetObjectTorrent, "b", "quotes/Nelson", {}),
    ("POST", "/b/k?restore", None, None, Endpoint.RestoreObject, "b", "k", {}),
    ("POST", "/b/k?select&select-type=2", None, None, Endpoint.SelectObjectContent, "b", "k",
     {"select_type": "2"}),
    ("GET", "/b?publicAccessBlock", None, None, Endpoint.GetPublicAccessBlock, "b", None, {}),
    ("DELETE", "/b?ownershipControls", None, None, Endpoint.DeleteBucketOwnershipControls, "b", None, {}),
    ("GET", "/b?accelerate", None, None, Endpoint.GetBucketAccelerateConfiguration, "b", None, {}),
    ("PUT", "/b?logging", None, None, Endpoint.PutBucketLogging, "b", None, {}),
    ("GET", "/b?requestPayment", None, None, Endpoint.GetBucketRequestPayment, "b", None, {}),
    # ---- tricky keys (path-style)
    ("GET", "/b/a/b/c", None, None, Endpoint.GetObject, "b", "a/b/c", {}),
    ("GET", "/b/a%2Fb", None, None, Endpoint.GetObject, "b", "a/b", {}),
    ("GET", "/b/a%20b", None, None, Endpoint.GetObject, "b", "a b", {}),
    ("GET", "/b/a+b", None, None, Endpoint.GetObject, "b", "a+b", {}),
    ("GET", "/b/%2B", None, None, Endpoint.GetObject, "b", "+", {}),
    ("GET", "/b/%C3%A9t%C3%A9/%E2%9C%93%F0%9F%98%80", None, None, Endpoint.GetObject, "b", "été/✓😀", {}),
    ("GET", "/b/%26%2B%3F%25%C3%A9/something", None, None, Endpoint.GetObject, "b", "&+?%é/something", {}),
    ("GET", "/b/a%25", None, None, Endpoint.GetObject, "b", "a%", {}),
    ("GET", "/b/a%zz", None, None, Endpoint.GetObject, "b", "a%zz", {}),
    ("GET", "/b/dir/", None, None, Endpoint.GetObject, "b", "dir/", {}),
    ("GET", "/b//k", None, None, Endpoint.GetObject, "b", "/k", {}),
    ("GET", "/b/a//b", None, None, Endpoint.GetObject, "b", "a//b", {}),
    ("GET", "//b/k", None, None, Endpoint.GetObject, "b", "k", {}),
    ("GET", "/b/", None, None, Endpoint.ListObjects, "b", None, {}),
    ("PUT", "/b/%00%01%7F", None, None, Endpoint.PutObject, "b", "\x00\x01\x7f", {}),
    # ---- vhost-style
    ("GET", "/", "b.s3.localhost", None, Endpoint.ListObjects, "b", None, {}),
    ("GET", "", "b.s3.localhost", None, Endpoint.ListObjects, "b", None, {}),
    ("GET", "/k", "b.s3.localhost:3900", None, Endpoint.GetObject, "b", "k", {}),
    ("GET", "/a/b%20c", "my.dotted.bucket.s3.localhost", None, Endpoint.GetObject, "my.dotted.bucket",
     "a/b c", {}),
    ("PUT", "/", "b.s3.localhost", None, Endpoint.CreateBucket, "b", None, {}),
    ("GET", "//k", "b.s3.localhost", None, Endpoint.GetObject, "b", "/k", {}),
    ("GET", "/b2/k", "b.s3.localhost", None, Endpoint.GetObject, "b", "b2/k", {}),
    ("GET", "/?list-type=2", "B.S3.LocalHost", None, Endpoint.ListObjectsV2, "b", None, {}),
    ("GET", "/?location", "b.s3.localhost.", None, Endpoint.GetBucketLocation, "b", None, {}),
    ("OPTIONS", "/k", "b.s3.localhost", None, Endpoint.Options, "b", None, {}),
    ("PUT", "/k?partNumber=1&uploadId=u", "b.s3.localhost", COPY, Endpoint.UploadPartCopy, "b", "k",
     {"part_number": 1}),
    ("GET", "/b/k", "other.example.com", None, Endpoint.GetObject, "b", "k", {}),
    ("GET", "/b/k", "[::1]:3900", None, Endpoint.GetObject, "b", "k", {}),
    ("GET", "/b/k", "s3.localhost", None, Endpoint.GetObject, "b", "k", {}),
    ("GET", "/b/k", "evil-s3.localhost", None, Endpoint.GetObject, "b", "k", {}),
]


@pytest.mark.parametrize("case", CASES, ids=[f"{c[0]} {c[2] or ''}{c[1]}" for c in CASES])
def test_route_table(case: Case) -> None:
    method, target, host, headers, endpoint, bucket, key, params = case
    r = _route(method, target, host, headers=headers)
    assert (r.endpoint, r.bucket, r.key) == (endpoint, bucket, key)
    for name, value in params.items():
        assert r.params[name] == value, name
    assert r.implemented == (endpoint in IMPLEMENTED)


def test_vhost_needs_root_domain_configured() -> None:
    r = _route("GET", "/b/k", "x.s3.localhost", root=None)
    assert (r.endpoint, r.bucket, r.key) == (Endpoint.GetObject, "b", "k")
    r = _route("GET", "/k", "x.s3.localhost", root="s3.localhost")  # leading dot optional
    assert (r.bucket, r.key) == ("x", "k")


ERROR_CASES: list[tuple[str, str, type[s3err.S3Error]]] = [
    ("PATCH", "/b", s3err.MethodNotAllowed),
    ("get", "/b", s3err.MethodNotAllowed),
    ("DELETE", "/", s3err.MethodNotAllowed),
    ("PUT", "/", s3err.MethodNotAllowed),
    ("HEAD", "/", s3err.MethodNotAllowed),
    ("POST", "/b?website", s3err.MethodNotAllowed),
    ("GET", "/b/k?website", s3err.InvalidRequest),
    ("GET", "/?acl", s3err.InvalidRequest),
    ("GET", "/b?delete", s3err.MethodNotAllowed),
    ("POST", "/b/k", s3err.InvalidRequest),
    ("POST", "/b/k?uploadId=", s3err.InvalidRequest),
    ("GET", "/b?acl&policy", s3err.InvalidRequest),
    ("GET", "/b?prefix=a&prefix=b", s3err.InvalidRequest),
    ("GET", "/b?max-keys=abc", s3err.InvalidArgument),
    ("GET", "/b?max-keys=-1", s3err.InvalidArgument),
    ("GET", "/b?max-keys=%2B1", s3err.InvalidArgument),
    ("GET", "/b?max-keys=99999999999999999999999", s3err.InvalidArgument),
    ("GET", "/b?list-type=3", s3err.InvalidArgument),
    ("GET", "/b?list-type=2&encoding-type=xml", s3err.InvalidArgument),
    ("GET", "/b?list-type=2&fetch-owner=maybe", s3err.InvalidArgument),
    ("PUT", "/b/k?partNumber=1", s3err.InvalidRequest),
    ("PUT", "/b/k?partNumber=x&uploadId=u", s3err.InvalidArgument),
    ("PUT", "/b?analytics", s3err.InvalidRequest),
    ("POST", "/b/k?select", s3err.InvalidRequest),
    ("GET", "/b/%FF%FE", s3err.InvalidRequest),
    ("GET", "/b/" + "a" * 1025, s3err.KeyTooLongError),
    ("GET", "/b/" + "%C3%A9" * 513, s3err.KeyTooLongError),
]


@pytest.mark.parametrize("method,target,error", ERROR_CASES, ids=[f"{m} {t[:40]}" for m, t, _ in ERROR_CASES])
def test_unroutable_requests_raise_s3_errors(method: str, target: str, error: type[s3err.S3Error]) -> None:
    with pytest.raises(error) as info:
        _route(method, target)
    assert type(info.value) is error


def test_key_of_exactly_1024_bytes_is_accepted() -> None:
    assert _route("PUT", "/b/" + "a" * 1024).key == "a" * 1024
    assert _route("PUT", "/b/" + "%C3%A9" * 512).key == "é" * 512


def test_method_not_allowed_names_method_and_resource_type() -> None:
    with pytest.raises(s3err.MethodNotAllowed) as info:
        _route("DELETE", "/")
    assert info.value.fields == {"Method": "DELETE", "ResourceType": "SERVICE"}
    assert info.value.status == 405


def test_unused_and_override_parameters_are_reported() -> None:
    r = _route("GET", "/b/k?x-id=GetObject&response-content-type=text%2Fplain&response-expires=0&prefix=p")
    assert r.endpoint is Endpoint.GetObject
    assert dict(r.overrides) == {"response-content-type": "text/plain", "response-expires": "0"}
    assert set(r.unused) == {"x-id", "prefix"}
    r = _route("PUT", "/b/k?uploadId=u&response-content-type=x")
    assert r.endpoint is Endpoint.PutObject  # as in Garage: uploadId alone does not make UploadPart
    assert dict(r.overrides) == {} and set(r.unused) == {"uploadId", "response-content-type"}


def test_authorization_of_endpoints() -> None:
    assert _route("GET", "/").authorization is Authorization.NONE
    assert _route("OPTIONS", "/b").authorization is Authorization.NONE
    assert _route("GET", "/b/k").authorization is Authorization.READ
    assert _route("GET", "/b?list-type=2").authorization is Authorization.READ
    assert _route("PUT", "/b/k").authorization is Authorization.WRITE
    assert _route("POST", "/b?delete").authorization is Authorization.WRITE
    assert _route("PUT", "/b?lifecycle").authorization is Authorization.WRITE
    assert _route("DELETE", "/b").authorization is Authorization.OWNER
    assert _route("PUT", "/b?cors").authorization is Authorization.OWNER
    assert _route("GET", "/b?website").authorization is Authorization.OWNER


def test_endpoint_inventory_matches_garage() -> None:
    """93 routed names, 33 handled (31 S3 operations + PostObject + OPTIONS), 60 answering 501."""
    assert len(Endpoint) == 93
    assert len(IMPLEMENTED) == 33
    assert len([e for e in Endpoint if not e.implemented]) == 60
    routed = {r.endpoint for r in RULES} | {Endpoint.Options}
    assert routed == set(Endpoint)
    assert len(KEYWORDS) == 30
    for e in Endpoint:
        assert e.value == e.name


def test_table_has_no_shadowed_rules() -> None:
    """A rule after an unconditional one for the same (method, keyword, scope) could never match."""
    seen_unconditional: set[tuple[str, str, object]] = set()
    for r in RULES:
        target = (r.method, r.keyword, r.scope)
        assert target not in seen_unconditional, r
        if r.requires is None and r.header is None:
            seen_unconditional.add(target)


# ---------------------------------------------------------------------- names
def test_host_to_bucket_follows_garage() -> None:
    assert names.host_to_bucket("john.doe.garage.tld", ".garage.tld") == "john.doe"
    assert names.host_to_bucket("john.doe.garage.tld", "garage.tld") == "john.doe"
    assert names.host_to_bucket("john.doe.com", "garage.tld") is None
    assert names.host_to_bucket("garage.tld", ".garage.tld") is None
    assert names.host_to_bucket("not-garage.tld", "garage.tld") is None
    assert names.host_to_bucket(".garage.tld", "garage.tld") is None
    assert names.host_to_bucket("x.garage.tld", "") is None


def test_authority_to_host() -> None:
    assert names.authority_to_host("[::1]:3902") == "[::1]"
    assert names.authority_to_host("[::1]") == "[::1]"
    assert names.authority_to_host("Garage.TLD:65200") == "garage.tld"
    assert names.authority_to_host("127.0.0.1") == "127.0.0.1"
    for bad in ("", "[", "[hello", "[::1]x"):
        with pytest.raises(s3err.InvalidRequest):
            names.authority_to_host(bad)


def test_bucket_and_key_name_checks() -> None:
    names.check_bucket_name("my-bucket.1")
    assert names.valid_bucket_name("abc") and not names.valid_bucket_name("ab")
    for bad in ("ab", "UPPER", "-abc", "a..b", "192.168.1.1", "xn--abc", "a_b", "x" * 64):
        with pytest.raises(s3err.InvalidBucketName) as info:
            names.check_bucket_name(bad)
        assert info.value.fields["BucketName"] == bad
    names.check_bucket_name("xn--abc", allow_punycode=True)
    names.check_object_key("k" * 1024)
    with pytest.raises(s3err.KeyTooLongError) as kinfo:
        names.check_object_key("€" * 342)  # 1026 bytes
    assert kinfo.value.fields == {"Size": "1026", "MaxSizeAllowed": "1024"}
    with pytest.raises(s3err.InvalidRequest):
        names.check_object_key("\ud800")


# ---------------------------------------------------------------------- property
_methods = st.sampled_from(["GET", "HEAD", "PUT", "POST", "DELETE", "OPTIONS", "PATCH", ""]) | st.text(max_size=8)
_segments = st.sampled_from(["", "b", "%2F", "%", "%FF", "%C3%A9", "+", " ", "//", "é", "\ud800", "\x00"]) | st.text(
    max_size=12)
_paths = st.lists(_segments, max_size=6).map(lambda parts: "/" + "/".join(parts)) | st.text(max_size=40)
_names = st.sampled_from(sorted(KEYWORDS | FIELDS | {"response-content-type", "x-id"})) | st.text(max_size=10)
_values = st.sampled_from(["", "2", "url", "true", "-1", "abc", "99999999999999999999999"]) | st.text(max_size=10)
_hosts = st.none() | st.sampled_from(["b.s3.localhost", "s3.localhost", "[::1]:80", "", "[", ":", "."]) | st.text(
    max_size=20)


@settings(max_examples=600, deadline=None)
@given(method=_methods, path=_paths, query=st.lists(st.tuples(_names, _values), max_size=5), host=_hosts,
       copy=st.booleans())
def test_router_raises_only_s3_errors(method: str, path: str, query: list[tuple[str, str]], host: str | None,
                                      copy: bool) -> None:
    try:
        r = route(method, path, query, host, ROOT, headers=COPY if copy else None)
    except s3err.S3Error as e:
        assert 400 <= e.status < 600
        return
    assert isinstance(r.endpoint, Endpoint)
    if r.endpoint is Endpoint.ListBuckets:
        assert r.bucket is None and r.key is None
    elif r.endpoint is not Endpoint.Options:
        assert r.bucket is not None
    assert r.key is None or (r.key != "" and len(r.key.encode()) <= names.MAX_KEY_BYTES)


# ---------------------------------------------------------------------- a real client's URLs
BOTO_CASES: list[tuple[str, dict[str, Any], Endpoint, str | None]] = [
    ("list_buckets", {}, Endpoint.ListBuckets, None),
    ("create_bucket", {"Bucket": "bkt"}, Endpoint.CreateBucket, None),
    ("head_bucket", {"Bucket": "bkt"}, Endpoint.HeadBucket, None),
    ("delete_bucket", {"Bucket": "bkt"}, Endpoint.DeleteBucket, None),
    ("get_bucket_location", {"Bucket": "bkt"}, Endpoint.GetBucketLocation, None),
    ("get_bucket_versioning", {"Bucket": "bkt"}, Endpoint.GetBucketVersioning, None),
    ("list_objects", {"Bucket": "bkt", "Prefix": "a b/"}, Endpoint.ListObjects, None),
    ("list_objects_v2", {"Bucket": "bkt", "StartAfter": "x+y"}, Endpoint.ListObjectsV2, None),
    ("list_multipart_uploads", {"Bucket": "bkt"}, Endpoint.ListMultipartUploads, None),
    ("delete_objects", {"Bucket": "bkt", "Delete": {"Objects": [{"Key": "k"}]}}, Endpoint.DeleteObjects, None),
    ("get_bucket_website", {"Bucket": "bkt"}, Endpoint.GetBucketWebsite, None),
    ("delete_bucket_cors", {"Bucket": "bkt"}, Endpoint.DeleteBucketCors, None),
    ("get_bucket_lifecycle_configuration", {"Bucket": "bkt"}, Endpoint.GetBucketLifecycleConfiguration, None),
    ("get_bucket_acl", {"Bucket": "bkt"}, Endpoint.GetBucketAcl, None),
    ("head_object", {"Bucket": "bkt", "Key": "dir/a b+c%.txt"}, Endpoint.HeadObject, "dir/a b+c%.txt"),
    ("get_object", {"Bucket": "bkt", "Key": "é/✓ ?#&="}, Endpoint.GetObject, "é/✓ ?#&="),
    ("put_object", {"Bucket": "bkt", "Key": "/lead//double/", "Body": b"x"}, Endpoint.PutObject, "/lead//double/"),
    ("copy_object", {"Bucket": "bkt", "Key": "k", "CopySource": "src/a b"}, Endpoint.CopyObject, "k"),
    ("delete_object", {"Bucket": "bkt", "Key": "k~!*'()"}, Endpoint.DeleteObject, "k~!*'()"),
    ("create_multipart_upload", {"Bucket": "bkt", "Key": "k"}, Endpoint.CreateMultipartUpload, "k"),
    ("upload_part", {"Bucket": "bkt", "Key": "k", "PartNumber": 2, "UploadId": "u+/=", "Body": b"x"},
     Endpoint.UploadPart, "k"),
    ("upload_part_copy", {"Bucket": "bkt", "Key": "k", "PartNumber": 2, "UploadId": "u", "CopySource": "s/k"},
     Endpoint.UploadPartCopy, "k"),
    ("complete_multipart_upload", {"Bucket": "bkt", "Key": "k", "UploadId": "u",
                                   "MultipartUpload": {"Parts": [{"PartNumber": 1, "ETag": "e"}]}},
     Endpoint.CompleteMultipartUpload, "k"),
    ("abort_multipart_upload", {"Bucket": "bkt", "Key": "k", "UploadId": "u"}, Endpoint.AbortMultipartUpload, "k"),
    ("list_parts", {"Bucket": "bkt", "Key": "k", "UploadId": "u", "MaxParts": 5}, Endpoint.ListParts, "k"),
    ("put_bucket_versioning", {"Bucket": "bkt", "VersioningConfiguration": {"Status": "Enabled"}},
     Endpoint.PutBucketVersioning, None),
    ("get_object_tagging", {"Bucket": "bkt", "Key": "k"}, Endpoint.GetObjectTagging, "k"),
    ("list_object_versions", {"Bucket": "bkt"}, Endpoint.ListObjectVersions, None),
    ("get_bucket_policy", {"Bucket": "bkt"}, Endpoint.GetBucketPolicy, None),
]


@pytest.mark.parametrize("style", ["path", "virtual"])
def test_botocore_requests_route_to_the_right_endpoint(style: str) -> None:
    """botocore builds the URLs (both addressing styles); our router must find the operation.

    (botocore only uses vhost-style for names that are valid DNS labels of 3+ characters,
    and never for GetBucketLocation.)
    """
    botocore_session = pytest.importorskip("botocore.session")
    from botocore.awsrequest import AWSResponse
    from botocore.config import Config

    class _Raw:
        def stream(self, **_: Any) -> Any:
            yield b""

    routes: list[Route] = []
    url_hosts: list[str] = []

    def send(request: Any, **_: Any) -> AWSResponse:
        url = urlsplit(request.url)
        url_hosts.append(url.netloc)
        routes.append(route(request.method, url.path, parse_qsl(url.query, keep_blank_values=True), url.netloc,
                            ROOT, headers=dict(request.headers)))
        return AWSResponse(request.url, 200, {}, _Raw())

    client = botocore_session.get_session().create_client(
        "s3", region_name="garage", endpoint_url="http://s3.localhost:3900", aws_access_key_id="GK1",
        aws_secret_access_key="s", config=Config(s3={"addressing_style": style}))
    client.meta.events.register("before-send.s3.*", send)
    for operation, kwargs, endpoint, key in BOTO_CASES:
        routes.clear()
        try:
            getattr(client, operation)(**kwargs)
        except Exception:  # noqa: BLE001 - an empty 200 answer may not parse; the routing is what we check
            pass
        assert routes, operation
        r = routes[0]
        assert (r.endpoint, r.key) == (endpoint, key), operation
        assert r.bucket == (None if endpoint is Endpoint.ListBuckets else "bkt"), operation
    vhosted = [h for h in url_hosts if h.startswith("bkt.")]
    assert len(vhosted) > (len(BOTO_CASES) // 2 if style == "virtual" else -1)
    assert style == "virtual" or not vhosted
