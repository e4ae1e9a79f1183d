"""SigV4 verification: AWS's published vectors, botocore-signed requests, and every refusal.

The vectors are the examples of the AWS S3 API reference ("Signature Calculations for the
Authorization Header: Transferring Payload in a Single Chunk", "... in Multiple Chunks",
"... Including Trailing Headers", "Authenticating Requests: Using Query Parameters"), all with
key AKIAIOSFODNN7EXAMPLE, region us-east-1, time 20130524T000000Z. botocore then plays the
client for random requests (a Hypothesis round trip) and any one-byte change must be refused.
"""

from __future__ import annotations

import calendar
import datetime as dt
import hashlib
import time
from urllib.parse import quote, urlsplit

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from grange.api.common.signature import (
    AccessDenied,
    AuthorizationHeaderMalformed,
    AuthorizationQueryParametersError,
    InvalidAccessKeyId,
    InvalidArgument,
    InvalidRequest,
    PayloadMode,
    RequestExpired,
    RequestTimeTooSkewed,
    SignatureDoesNotMatch,
    SignatureError,
    XAmzContentSHA256Mismatch,
    canonical_query_string,
    canonical_uri,
    parse_query_string,
    prepare_header_auth,
    prepare_request,
    presign,
    verify_request,
)
from grange.api.common.signature.canonical import EMPTY_SHA256_HEX, parse_amz_date, signing_key
from grange.api.common.signature.errors import RequestNotYetValid

AK = "AKIAIOSFODNN7EXAMPLE"
SK = "wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY"
REGION = "us-east-1"
T0 = calendar.timegm((2013, 5, 24, 0, 0, 0))  # 20130524T000000Z
AMZ_DATE = "20130524T000000Z"
HOST = "examplebucket.s3.amazonaws.com"
WELCOME_SHA256 = "44ce7dd67c959e0d3524ffac1771dfbba87d2b6b4b4e99e42034a8b803f8b072"


def secret_for(key_id: str) -> str | None:
    return {AK: SK}.get(key_id)


def auth_header(signed: str, signature: str) -> str:
    credential = f"{AK}/20130524/{REGION}/s3/aws4_request"
    return f"AWS4-HMAC-SHA256 Credential={credential},SignedHeaders={signed},Signature={signature}"


def verify(method, path, query, headers, *, region=REGION, now_s=T0, service="s3"):
    return verify_request(
        method, path, query, headers, secret_for, region=region, service=service, now_s=now_s
    )


# ---- AWS published vectors ----

GET_OBJECT = (
    "GET",
    "/test.txt",
    [],
    [
        ("host", HOST),
        ("range", "bytes=0-9"),
        ("x-amz-content-sha256", EMPTY_SHA256_HEX),
        ("x-amz-date", AMZ_DATE),
        (
            "authorization",
            auth_header(
                "host;range;x-amz-content-sha256;x-amz-date",
                "f0e8bdb87c964420e857bd35b5d6ed310bd44f0170aba48dd91039c6036bdb41",
            ),
        ),
    ],
)


def test_aws_vector_get_object_with_range() -> None:
    verified = verify(*GET_OBJECT)
    assert verified is not None
    assert verified.access_key_id == AK
    assert verified.payload_mode is PayloadMode.SHA256
    assert verified.content_sha256 == hashlib.sha256(b"").digest()
    assert verified.scope == "20130524/us-east-1/s3/aws4_request"
    assert not verified.presigned


@pytest.mark.parametrize("raw_path", ["/test$file.text", "/test%24file.text"])
def test_aws_vector_put_object_dollar_in_key(raw_path: str) -> None:
    headers = {
        "Host": HOST,
        "Date": "Fri, 24 May 2013 00:00:00 GMT",
        "x-amz-date": AMZ_DATE,
        "x-amz-storage-class": "REDUCED_REDUNDANCY",
        "x-amz-content-sha256": WELCOME_SHA256,
        "Authorization": auth_header(
            "date;host;x-amz-content-sha256;x-amz-date;x-amz-storage-class",
            "98ad721746da40c64f1a55b78f14c238d841ea1380cd77a1b5971af0ece108bd",
        ),
    }
    verified = verify("PUT", raw_path, [], headers)
    check = verified.content_sha256_check()
    check.update(b"Welcome to ")
    check.update(b"Amazon S3.")
    check.verify()
    bad = verified.content_sha256_check()
    bad.update(b"Welcome to Amazon S3!")
    with pytest.raises(XAmzContentSHA256Mismatch) as err:
        bad.verify()
    assert err.value.status == 400 and err.value.code == "XAmzContentSHA256Mismatch"


def test_aws_vector_get_bucket_lifecycle() -> None:
    headers = {
        "Host": HOST,
        "x-amz-date": AMZ_DATE,
        "x-amz-content-sha256": EMPTY_SHA256_HEX,
        "Authorization": auth_header(
            "host;x-amz-content-sha256;x-amz-date",
            "fea454ca298b7da1c68078a5d1bdbfbbe0d65c699e0f91ac7a200a0136783543",
        ),
    }
    assert verify("GET", "/", parse_query_string("lifecycle"), headers) is not None


def test_aws_vector_list_objects() -> None:
    headers = {
        "Host": HOST,
        "x-amz-date": AMZ_DATE,
        "x-amz-content-sha256": EMPTY_SHA256_HEX,
        "Authorization": auth_header(
            "host;x-amz-content-sha256;x-amz-date",
            "34b48302e7b5fa45bde8084f4b7868a86f0a534bc59db6670ed5711ef69dc6f7",
        ),
    }
    # order in the URL does not matter: the canonical query is sorted
    assert verify("GET", "/", [("prefix", "J"), ("max-keys", "2")], headers) is not None


def _streaming_headers(content_sha256: str, extra: dict[str, str], signed: str, signature: str):
    return {
        "Host": "s3.amazonaws.com",
        "x-amz-date": AMZ_DATE,
        "x-amz-storage-class": "REDUCED_REDUNDANCY",
        "x-amz-content-sha256": content_sha256,
        "Content-Encoding": "aws-chunked",
        "x-amz-decoded-content-length": "66560",
        **extra,
        "Authorization": auth_header(signed, signature),
    }


def test_aws_vector_streaming_seed_signature() -> None:
    headers = _streaming_headers(
        "STREAMING-AWS4-HMAC-SHA256-PAYLOAD",
        {"Content-Length": "66824"},
        "content-encoding;content-length;host;x-amz-content-sha256;x-amz-date;"
        "x-amz-decoded-content-length;x-amz-storage-class",
        "4f232c4386841ef735655705268965c44a0e4690baa4adea153f7db9fa80a0a9",
    )
    verified = verify("PUT", "/examplebucket/chunkObject.txt", [], headers)
    assert verified.payload_mode is PayloadMode.STREAMING_SIGNED
    assert verified.signature == "4f232c4386841ef735655705268965c44a0e4690baa4adea153f7db9fa80a0a9"
    assert verified.decoded_content_length == 66560
    assert verified.amz_date == AMZ_DATE
    assert verified.signing_key == signing_key(SK, "20130524", REGION, "s3")
    assert verified.chunked_decoder() is not None


def test_aws_vector_streaming_trailer_seed_signature() -> None:
    headers = _streaming_headers(
        "STREAMING-AWS4-HMAC-SHA256-PAYLOAD-TRAILER",
        {"x-amz-trailer": "x-amz-checksum-crc32c"},
        "content-encoding;host;x-amz-content-sha256;x-amz-date;x-amz-decoded-content-length;"
        "x-amz-storage-class;x-amz-trailer",
        "106e2a8a18243abcf37539882f36619c00e2dfc72633413f02d3b74544bfeb8e",
    )
    verified = verify("PUT", "/examplebucket/chunkObject.txt", [], headers)
    assert verified.payload_mode is PayloadMode.STREAMING_SIGNED_TRAILER
    assert verified.trailer_names == ("x-amz-checksum-crc32c",)


PRESIGNED_QUERY = [
    ("X-Amz-Algorithm", "AWS4-HMAC-SHA256"),
    ("X-Amz-Credential", f"{AK}/20130524/us-east-1/s3/aws4_request"),
    ("X-Amz-Date", AMZ_DATE),
    ("X-Amz-Expires", "86400"),
    ("X-Amz-SignedHeaders", "host"),
    ("X-Amz-Signature", "aeeed9bbccd4d02ee5c0109b86d86835f995330da4c265957d157751f604d404"),
]


def test_aws_vector_presigned_get() -> None:
    verified = verify("GET", "/test.txt", PRESIGNED_QUERY, {"Host": HOST}, now_s=T0 + 3600)
    assert verified.presigned
    assert verified.payload_mode is PayloadMode.UNSIGNED
    assert verified.content_sha256_check() is None
    assert verified.chunked_decoder() is None


def test_presign_reproduces_aws_vector() -> None:
    url = presign("GET", f"https://{HOST}/test.txt", AK, SK, region=REGION, expires_s=86400, now_s=T0)
    parts = urlsplit(url)
    assert parts.path == "/test.txt"
    assert parse_query_string(parts.query) == PRESIGNED_QUERY


# ---- refusals ----


def _with(headers, **changes):
    out = dict(headers)
    out.update({k.replace("_", "-"): v for k, v in changes.items()})
    return out


GET_HEADERS = dict(GET_OBJECT[3])


def test_bad_signature_is_signature_does_not_match_with_details() -> None:
    headers = _with(GET_HEADERS, range="bytes=0-10")
    with pytest.raises(SignatureDoesNotMatch) as err:
        verify("GET", "/test.txt", [], headers)
    assert err.value.status == 403 and err.value.code == "SignatureDoesNotMatch"
    assert err.value.extra["AWSAccessKeyId"] == AK
    assert "range:bytes=0-10" in err.value.extra["CanonicalRequest"]
    assert err.value.extra["StringToSign"].startswith("AWS4-HMAC-SHA256\n20130524T000000Z\n")


def test_unknown_access_key() -> None:
    with pytest.raises(InvalidAccessKeyId) as err:
        verify_request("GET", "/test.txt", [], GET_HEADERS, lambda _k: None, region=REGION, now_s=T0)
    assert err.value.status == 403 and err.value.extra["AWSAccessKeyId"] == AK


@pytest.mark.parametrize("offset_s", [-901, 901, 86400])
def test_clock_skew_beyond_15_minutes(offset_s: int) -> None:
    with pytest.raises(RequestTimeTooSkewed) as err:
        verify(*GET_OBJECT, now_s=T0 + offset_s)
    assert err.value.status == 403
    assert err.value.extra["RequestTime"] == AMZ_DATE


@pytest.mark.parametrize("offset_s", [-900, 0, 900])
def test_clock_skew_within_15_minutes(offset_s: int) -> None:
    assert verify(*GET_OBJECT, now_s=T0 + offset_s) is not None


def test_wrong_region_names_ours() -> None:
    with pytest.raises(AuthorizationHeaderMalformed) as err:
        verify(*GET_OBJECT, region="garage")
    assert err.value.status == 400
    assert err.value.message == (
        "The authorization header is malformed; the region 'us-east-1' is wrong; expecting 'garage'"
    )
    assert err.value.extra["Region"] == "garage"


def test_wrong_service() -> None:
    with pytest.raises(AuthorizationHeaderMalformed, match='incorrect service "s3"'):
        verify(*GET_OBJECT, service="k2v")


def test_credential_date_must_match_request_date() -> None:
    headers = _with(GET_HEADERS, x_amz_date="20130525T000000Z")
    with pytest.raises(AuthorizationHeaderMalformed, match="Invalid credential date"):
        verify("GET", "/test.txt", [], headers, now_s=T0 + 86400)


def test_host_must_be_signed() -> None:
    headers = _with(GET_HEADERS, authorization=auth_header("range;x-amz-content-sha256;x-amz-date", "0" * 64))
    with pytest.raises(AuthorizationHeaderMalformed, match="host"):
        verify("GET", "/test.txt", [], headers)


def test_unsigned_amz_header_is_refused() -> None:
    headers = _with(GET_HEADERS, x_amz_meta_extra="1")
    with pytest.raises(AccessDenied) as err:
        verify("GET", "/test.txt", [], headers)
    assert err.value.extra["HeadersNotSigned"] == "x-amz-meta-extra"


def test_signed_header_missing_is_signature_does_not_match() -> None:
    headers = {k: v for k, v in GET_HEADERS.items() if k != "range"}
    with pytest.raises(SignatureDoesNotMatch):
        verify("GET", "/test.txt", [], headers)


def test_missing_content_sha256() -> None:
    headers = {k: v for k, v in GET_HEADERS.items() if k != "x-amz-content-sha256"}
    with pytest.raises(InvalidRequest, match="x-amz-content-sha256"):
        verify("GET", "/test.txt", [], headers)


def test_invalid_content_sha256() -> None:
    headers = _with(GET_HEADERS, x_amz_content_sha256="STREAMING-AWS4-ECDSA-P256-SHA256-PAYLOAD")
    with pytest.raises(InvalidArgument) as err:
        verify("GET", "/test.txt", [], headers)
    assert err.value.extra["ArgumentName"] == "x-amz-content-sha256"


def test_missing_date() -> None:
    headers = {k: v for k, v in GET_HEADERS.items() if k != "x-amz-date"}
    with pytest.raises(AccessDenied, match="valid Date or x-amz-date"):
        verify("GET", "/test.txt", [], headers)


@pytest.mark.parametrize(
    "authorization",
    [
        "AWS AKIAIOSFODNN7EXAMPLE:frJIUN8DYpKDtOLCwo//yllqDzg=",
        "Bearer xyz",
    ],
)
def test_other_auth_schemes_are_refused(authorization: str) -> None:
    with pytest.raises(InvalidRequest, match="Please use AWS4-HMAC-SHA256"):
        verify("GET", "/test.txt", [], _with(GET_HEADERS, authorization=authorization))


@pytest.mark.parametrize(
    "authorization",
    [
        "AWS4-HMAC-SHA256 Credential=AKIAIOSFODNN7EXAMPLE/20130524/us-east-1/s3/aws4_request",
        "AWS4-HMAC-SHA256 SignedHeaders=host, Signature=00",
        "AWS4-HMAC-SHA256 Credential=AK/20130524/us-east-1, SignedHeaders=host, Signature=00",
        "AWS4-HMAC-SHA256 Credential, SignedHeaders=host, Signature=00",
        "AWS4-HMAC-SHA256 Credential=a/b/c/d/e, Credential=a/b/c/d/e, SignedHeaders=host, Signature=0",
        "AWS4-HMAC-SHA256 Credential=AKIAIOSFODNN7EXAMPLE/20130524/us-east-1/s3/aws4_request, "
        "SignedHeaders=host;;range, Signature=00",
    ],
)
def test_malformed_authorization_header(authorization: str) -> None:
    with pytest.raises(AuthorizationHeaderMalformed):
        verify("GET", "/test.txt", [], _with(GET_HEADERS, authorization=authorization))


@pytest.mark.parametrize(
    "template",
    [
        "AWS4-HMAC-SHA256 Credential={c}, SignedHeaders={h}, Signature={s}",  # botocore
        "AWS4-HMAC-SHA256 Credential={c},SignedHeaders={h},Signature={s}",  # AWS docs, Go SDK
        "AWS4-HMAC-SHA256 Credential={c} SignedHeaders={h} Signature={s}",
        "AWS4-HMAC-SHA256  Signature={s},  Credential = {c},SignedHeaders={h} ",
    ],
)
def test_authorization_header_separators_tolerated(template: str) -> None:
    value = template.format(
        c=f"{AK}/20130524/us-east-1/s3/aws4_request",
        h="host;range;x-amz-content-sha256;x-amz-date",
        s="f0e8bdb87c964420e857bd35b5d6ed310bd44f0170aba48dd91039c6036bdb41",
    )
    assert verify("GET", "/test.txt", [], _with(GET_HEADERS, authorization=value)) is not None


def test_anonymous_request_is_none() -> None:
    assert verify("GET", "/test.txt", [], {"Host": HOST}) is None
    assert prepare_request("GET", "/", [], [("host", HOST)], region=REGION, now_s=T0) is None


def test_prepare_then_verify_allows_async_key_lookup() -> None:
    prepared = prepare_header_auth("GET", "/test.txt", [], GET_HEADERS, region=REGION, now_s=T0)
    assert prepared.access_key_id == AK
    assert prepared.verify(SK).access_key_id == AK
    with pytest.raises(SignatureDoesNotMatch):
        prepared.verify("not-the-secret")


# ---- presigned refusals ----


def _presigned(**changes: str) -> list[tuple[str, str]]:
    return [(name, changes.get(name.replace("-", "_"), value)) for name, value in PRESIGNED_QUERY]


def test_presigned_expired() -> None:
    with pytest.raises(RequestExpired) as err:
        verify("GET", "/test.txt", PRESIGNED_QUERY, {"Host": HOST}, now_s=T0 + 86401)
    assert err.value.code == "AccessDenied" and err.value.status == 403
    assert err.value.message == "Request has expired"


def test_presigned_not_yet_valid() -> None:
    with pytest.raises(RequestNotYetValid):
        verify("GET", "/test.txt", PRESIGNED_QUERY, {"Host": HOST}, now_s=T0 - 3600)


@pytest.mark.parametrize(
    ("expires", "message"),
    [("604801", "less than a week"), ("0", "at least 1"), ("-1", "non-negative"), ("1h", "number")],
)
def test_presigned_expires_bounds(expires: str, message: str) -> None:
    with pytest.raises(AuthorizationQueryParametersError, match=message) as err:
        verify("GET", "/test.txt", _presigned(X_Amz_Expires=expires), {"Host": HOST}, now_s=T0)
    assert err.value.status == 400


def test_presigned_week_is_allowed_but_signature_must_match() -> None:
    with pytest.raises(SignatureDoesNotMatch):
        verify("GET", "/test.txt", _presigned(X_Amz_Expires="604800"), {"Host": HOST}, now_s=T0)


def test_presigned_missing_parameter() -> None:
    query = [(k, v) for k, v in PRESIGNED_QUERY if k != "X-Amz-SignedHeaders"]
    with pytest.raises(AuthorizationQueryParametersError, match="requires the X-Amz-Algorithm"):
        verify("GET", "/test.txt", query, {"Host": HOST}, now_s=T0)


def test_presigned_wrong_region_and_algorithm() -> None:
    with pytest.raises(AuthorizationQueryParametersError, match="the region 'us-east-1' is wrong"):
        verify("GET", "/test.txt", PRESIGNED_QUERY, {"Host": HOST}, now_s=T0, region="garage")
    with pytest.raises(AuthorizationQueryParametersError, match="X-Amz-Algorithm"):
        verify("GET", "/test.txt", _presigned(X_Amz_Algorithm="AWS4-HMAC-SHA1"), {"Host": HOST}, now_s=T0)


def test_presigned_takes_precedence_over_authorization_header() -> None:
    headers = {"Host": HOST, "Authorization": "Basic dXNlcjpwYXNz"}
    assert verify("GET", "/test.txt", PRESIGNED_QUERY, headers, now_s=T0).presigned


def test_presigned_changed_query_fails() -> None:
    query = [*PRESIGNED_QUERY, ("response-content-type", "text/html")]
    with pytest.raises(SignatureDoesNotMatch):
        verify("GET", "/test.txt", query, {"Host": HOST}, now_s=T0)


# ---- canonical pieces ----


@pytest.mark.parametrize(
    ("raw", "canonical"),
    [
        ("", "/"),
        ("/", "/"),
        ("/a b", "/a%20b"),
        ("/bucket/a%2Fb/c", "/bucket/a%2Fb/c"),
        ("/bucket/%7e~%41", "/bucket/~~A"),
        ("/b/caf%C3%A9/%e2%82%ac", "/b/caf%C3%A9/%E2%82%AC"),
        ("/b/a+b=c&d", "/b/a%2Bb%3Dc%26d"),
        ("/b/%FF", "/b/%FF"),
        ("/b//x/", "/b//x/"),
    ],
)
def test_canonical_uri_s3(raw: str, canonical: str) -> None:
    assert canonical_uri(raw) == canonical


def test_canonical_uri_double_encoded_for_other_services() -> None:
    assert canonical_uri("/bucket/a%20b/c", double_encode=True) == "/bucket/a%2520b/c"


def test_canonical_query_sorted_by_name_then_value() -> None:
    query = [("b", "2"), ("a-b", "x"), ("a", "z"), ("a", "y"), ("empty", ""), ("k", "a b/+")]
    assert canonical_query_string(query) == "a=y&a=z&a-b=x&b=2&empty=&k=a%20b%2F%2B"


def test_parse_query_string() -> None:
    assert parse_query_string("a=1&b&c=x+y%2B%20&&d=%FF") == [
        ("a", "1"),
        ("b", ""),
        ("c", "x y+ "),
        ("d", "\udcff"),
    ]
    assert canonical_query_string(parse_query_string("d=%FF")) == "d=%FF"


def test_parse_amz_date_strict() -> None:
    assert parse_amz_date(AMZ_DATE) == dt.datetime(2013, 5, 24, tzinfo=dt.UTC)
    for bad in ["20130524T000000", "2013-05-24T00:00:00Z", "20131324T000000Z", ""]:
        assert parse_amz_date(bad) is None


def test_all_errors_carry_s3_code_and_status() -> None:
    for cls in SignatureError.__subclasses__():
        assert isinstance(cls.code, str) and cls.status in (400, 403)


# ---- botocore as the client ----

try:
    from botocore.auth import S3SigV4Auth, S3SigV4QueryAuth, SigV4Auth
    from botocore.awsrequest import AWSRequest
    from botocore.credentials import Credentials
except ImportError:  # botocore is a test dependency; without it these tests are skipped
    AWSRequest = None  # type: ignore[assignment,misc]

needs_botocore = pytest.mark.skipif(AWSRequest is None, reason="botocore is not installed")

GK = "GK31c2f218a2e44f485b94239e"
GSECRET = "b892c0665f0ada8a4755dae98baa3b133590e11dae3bcc1f9d769d67f16c3835"
CREDS = Credentials(GK, GSECRET) if AWSRequest is not None else None


def garage_secret(key_id: str) -> str | None:
    return GSECRET if key_id == GK else None


def _url(host: str, key: str, query: list[tuple[str, str]]) -> str:
    path = "/" + quote(key, safe="/~")  # as botocore's serializer builds S3 paths
    qs = "&".join(f"{quote(k, safe='-_.~')}={quote(v, safe='-_.~')}" for k, v in query)
    return f"http://{host}{path}" + (f"?{qs}" if qs else "")


def _server_view(request: AWSRequest):
    """What the HTTP layer hands us: raw path, decoded query pairs, headers."""
    parts = urlsplit(request.url)
    headers = [(k, v if isinstance(v, str) else v.decode()) for k, v in request.headers.items()]
    if not any(k.lower() == "host" for k, _ in headers):
        headers.append(("Host", parts.netloc))
    return parts.path, parse_query_string(parts.query), headers


def botocore_sign(method, key, query, headers, body, *, service="s3", host="127.0.0.1:3900"):
    request = AWSRequest(method=method, url=_url(host, key, query), headers=dict(headers), data=body)
    signer = S3SigV4Auth(CREDS, service, "garage") if service == "s3" else SigV4Auth(CREDS, service, "garage")
    signer.add_auth(request)
    return request


def server_verify(method, raw_path, query, headers, *, service="s3"):
    return verify_request(
        method, raw_path, query, headers, garage_secret, region="garage", service=service, now_s=time.time()
    )


@needs_botocore
def test_botocore_put_with_body() -> None:
    body = b"hello world"
    request = botocore_sign("PUT", "bucket/dir/ké y+(1).txt", [], {"Content-Type": "text/plain"}, body)
    raw_path, query, headers = _server_view(request)
    verified = server_verify("PUT", raw_path, query, headers)
    assert verified.payload_mode is PayloadMode.SHA256
    assert verified.content_sha256 == hashlib.sha256(body).digest()


@needs_botocore
def test_botocore_k2v_double_encoding() -> None:
    headers = {"x-amz-content-sha256": EMPTY_SHA256_HEX}  # Garage's K2V requires it, as for S3
    request = botocore_sign(
        "GET", "bucket/partition key/%x", [("sort_key", "a/b")], headers, b"", service="k2v"
    )
    raw_path, query, headers = _server_view(request)
    assert server_verify("GET", raw_path, query, headers, service="k2v").service == "k2v"
    with pytest.raises(AuthorizationHeaderMalformed):
        server_verify("GET", raw_path, query, headers, service="s3")


@needs_botocore
def test_botocore_query_auth() -> None:
    request = AWSRequest(method="GET", url=_url("127.0.0.1:3900", "bucket/a b", [("versionId", "x")]))
    S3SigV4QueryAuth(CREDS, "s3", "garage", expires=900).add_auth(request)
    raw_path, query, headers = _server_view(request)
    verified = server_verify("GET", raw_path, query, headers)
    assert verified.presigned and verified.payload_mode is PayloadMode.UNSIGNED


@needs_botocore
@pytest.mark.parametrize(
    ("key", "query"),
    [("plain.txt", []), ("dir/ké y+~!.bin", [("versionId", "v 1"), ("response-content-type", "a/b")])],
)
def test_presign_matches_botocore_query_auth(monkeypatch: pytest.MonkeyPatch, key: str, query) -> None:
    fixed = dt.datetime(2024, 2, 29, 12, 34, 56)
    monkeypatch.setattr("botocore.auth.get_current_datetime", lambda *a, **k: fixed)
    url = _url("127.0.0.1:3900", "bucket/" + key, query)
    request = AWSRequest(method="GET", url=url)
    S3SigV4QueryAuth(CREDS, "s3", "garage", expires=600).add_auth(request)
    now_s = calendar.timegm(fixed.timetuple())
    ours = presign("GET", url, GK, GSECRET, region="garage", expires_s=600, now_s=now_s)
    assert ours == request.url
    parts = urlsplit(ours)
    verified = verify_request(
        "GET",
        parts.path,
        parse_query_string(parts.query),
        [("host", parts.netloc)],
        garage_secret,
        region="garage",
        now_s=now_s + 599,
    )
    assert verified.presigned


@needs_botocore
def test_boto3_generate_presigned_url_verifies() -> None:
    """boto3 signs with the CRT when awscrt is installed (another parameter order)."""
    boto3 = pytest.importorskip("boto3")
    from botocore.config import Config

    client = boto3.client(
        "s3",
        endpoint_url="http://127.0.0.1:3900",
        region_name="garage",
        aws_access_key_id=GK,
        aws_secret_access_key=GSECRET,
        config=Config(signature_version="s3v4", s3={"addressing_style": "path"}),
    )
    for method, params in [
        ("get_object", {"Key": "dir/ké y+~!.bin", "VersionId": "v 1"}),
        ("put_object", {"Key": "a b", "ContentType": "text/plain"}),
    ]:
        url = client.generate_presigned_url(method, Params={"Bucket": "bucket", **params}, ExpiresIn=600)
        parts = urlsplit(url)
        headers = [("host", parts.netloc)]
        if method == "put_object":
            headers.append(("content-type", "text/plain"))
        http_method = "PUT" if method == "put_object" else "GET"
        verified = server_verify(http_method, parts.path, parse_query_string(parts.query), headers)
        assert verified.presigned


# ---- Hypothesis: botocore-signed requests verify; any one-byte change does not ----

key_text = st.text(alphabet=st.characters(blacklist_categories=("Cs", "Cc")), min_size=1, max_size=40).filter(
    lambda s: not s.startswith("/")
)
query_text = st.text(alphabet=st.characters(blacklist_categories=("Cs",)), max_size=12)
header_value = st.text(
    alphabet=st.characters(min_codepoint=0x21, max_codepoint=0x7E) | st.just(" "), max_size=30
)
header_names = st.sampled_from(
    ["content-type", "x-amz-meta-a", "x-amz-meta-long-name", "cache-control", "x-amz-storage-class", "range"]
)

requests_st = st.fixed_dictionaries(
    {
        "method": st.sampled_from(["GET", "PUT", "POST", "DELETE", "HEAD"]),
        "key": key_text,
        "query": st.lists(st.tuples(query_text.filter(bool), query_text), max_size=4),
        "headers": st.dictionaries(header_names, header_value.map(lambda v: v.strip() or "v"), max_size=4),
        "body": st.binary(max_size=64),
    }
)


def _mutate_signature(authorization: str) -> str:
    head, signature = authorization.rsplit("Signature=", 1)
    return f"{head}Signature={'1' if signature[0] == '0' else '0'}{signature[1:]}"


def _mutate_text(value: str, index: int) -> str:
    if not value:
        return "x"
    i = index % len(value)
    return value[:i] + ("a" if value[i] != "a" else "b") + value[i + 1 :]


@needs_botocore
@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(req=requests_st, target=st.integers(0, 5), index=st.integers(0, 1000))
def test_botocore_round_trip_and_one_byte_changes(req, target: int, index: int) -> None:
    request = botocore_sign(req["method"], "bucket/" + req["key"], req["query"], req["headers"], req["body"])
    raw_path, query, headers = _server_view(request)
    verified = server_verify(req["method"], raw_path, query, headers)
    assert verified.access_key_id == GK
    assert verified.content_sha256 == hashlib.sha256(req["body"]).digest()

    method = req["method"]
    if target == 0:
        method = {"GET": "PUT"}.get(method, "GET")
    elif target == 1:
        prefix = len("/bucket/")
        key = _mutate_text(req["key"], index)
        raw_path = raw_path[:prefix] + quote(key, safe="/~")
    elif target == 2 and query:
        i = index % len(query)
        query = [*query[:i], (query[i][0], _mutate_text(query[i][1], index)), *query[i + 1 :]]
    elif target == 2:
        query = [("extra", "")]
    elif target == 3:
        signed = [
            k for k, v in headers if k.lower() in ("x-amz-date", "x-amz-content-sha256", *req["headers"])
        ]
        name = signed[index % len(signed)]
        headers = [(k, _mutate_text(v, index) if k == name else v) for k, v in headers]
    elif target == 4:
        headers = [(k, _mutate_signature(v) if k.lower() == "authorization" else v) for k, v in headers]
    else:
        headers = [(k, v) for k, v in headers if k.lower() != "host"] + [("host", "127.0.0.1:3901")]
    with pytest.raises(SignatureError) as err:
        server_verify(method, raw_path, query, headers)
    # a changed x-amz-date can also move outside the allowed skew or stop parsing
    assert isinstance(err.value, SignatureDoesNotMatch | RequestTimeTooSkewed | AccessDenied)
    if target != 3:
        assert isinstance(err.value, SignatureDoesNotMatch)


@needs_botocore
@settings(max_examples=60, deadline=None)
@given(key=key_text, query=st.lists(st.tuples(query_text.filter(bool), query_text), max_size=3))
def test_botocore_presigned_round_trip(key: str, query: list[tuple[str, str]]) -> None:
    query = [(k, v) for k, v in query if not k.lower().startswith("x-amz-")]
    request = AWSRequest(method="GET", url=_url("127.0.0.1:3900", "bucket/" + key, query))
    S3SigV4QueryAuth(CREDS, "s3", "garage", expires=60).add_auth(request)
    raw_path, parsed, headers = _server_view(request)
    assert server_verify("GET", raw_path, parsed, headers).presigned
    with pytest.raises(SignatureDoesNotMatch):
        server_verify("GET", raw_path, [*parsed, ("x", "y")], headers)
