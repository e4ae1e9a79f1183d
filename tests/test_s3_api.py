"""The S3 endpoints through boto3 against real nodes: what works, and what fails how."""

from __future__ import annotations

import datetime
import hashlib
import os
import urllib.error
import urllib.request

import botocore.exceptions
import pytest

from tests.cluster import S3Access

pytestmark = pytest.mark.slow


def code_of(e: botocore.exceptions.ClientError) -> str:
    return e.response["Error"]["Code"]


def raises_code(code: str):  # noqa: ANN201
    class _Ctx:
        def __enter__(self):
            return self

        def __exit__(self, et, ev, tb):
            assert et is not None, f"expected {code}, nothing raised"
            assert isinstance(ev, botocore.exceptions.ClientError), ev
            assert code_of(ev) == code, f"expected {code}, got {code_of(ev)}: {ev}"
            return True

    return _Ctx()


def test_object_crud_metadata_ranges_and_conditionals(s3_single) -> None:
    c, access = s3_single
    s3 = access.client(c.nodes[0])
    b = access.bucket
    body = os.urandom(2 * 1024 * 1024 + 333)
    put = s3.put_object(Bucket=b, Key="a/b c+d&é.bin", Body=body, ContentType="application/x-test",
                        CacheControl="no-cache", ContentDisposition="attachment", Metadata={"color": "blue"})
    assert put["ETag"] == f'"{hashlib.md5(body).hexdigest()}"'
    got = s3.get_object(Bucket=b, Key="a/b c+d&é.bin")
    assert got["Body"].read() == body
    assert got["ContentType"] == "application/x-test" and got["Metadata"] == {"color": "blue"}
    assert got["CacheControl"] == "no-cache" and got["ContentDisposition"] == "attachment"
    head = s3.head_object(Bucket=b, Key="a/b c+d&é.bin")
    assert head["ContentLength"] == len(body) and head["ETag"] == put["ETag"]
    # ranges, across a block boundary, suffix, open-ended
    for rng, sl in (("bytes=1048570-1048599", slice(1048570, 1048600)), ("bytes=-10", slice(-10, None)),
                    ("bytes=2097150-", slice(2097150, None))):
        r = s3.get_object(Bucket=b, Key="a/b c+d&é.bin", Range=rng)
        assert r["Body"].read() == body[sl] and r["ResponseMetadata"]["HTTPStatusCode"] == 206
    with raises_code("InvalidRange"):
        s3.get_object(Bucket=b, Key="a/b c+d&é.bin", Range=f"bytes={len(body) + 5}-")
    # conditionals
    with raises_code("PreconditionFailed"):
        s3.get_object(Bucket=b, Key="a/b c+d&é.bin", IfMatch='"0000"')
    with raises_code("304"):
        s3.get_object(Bucket=b, Key="a/b c+d&é.bin", IfNoneMatch=put["ETag"])
    future = datetime.datetime.now(datetime.UTC) + datetime.timedelta(days=1)
    with raises_code("304"):
        s3.get_object(Bucket=b, Key="a/b c+d&é.bin", IfModifiedSince=future)
    past = datetime.datetime(2000, 1, 1, tzinfo=datetime.UTC)
    with raises_code("PreconditionFailed"):
        s3.get_object(Bucket=b, Key="a/b c+d&é.bin", IfUnmodifiedSince=past)
    assert s3.get_object(Bucket=b, Key="a/b c+d&é.bin", IfMatch=put["ETag"])["ContentLength"] == len(body)
    # response-* overrides
    r = s3.get_object(Bucket=b, Key="a/b c+d&é.bin", ResponseContentType="text/plain",
                      ResponseContentDisposition="inline")
    assert r["ContentType"] == "text/plain" and r["ContentDisposition"] == "inline"
    # small (inline) object, empty object
    s3.put_object(Bucket=b, Key="small", Body=b"x" * 100)
    s3.put_object(Bucket=b, Key="empty", Body=b"")
    assert s3.get_object(Bucket=b, Key="small")["Body"].read() == b"x" * 100
    assert s3.get_object(Bucket=b, Key="empty")["Body"].read() == b""
    # overwrite, delete, NoSuchKey
    s3.put_object(Bucket=b, Key="small", Body=b"new")
    assert s3.get_object(Bucket=b, Key="small")["Body"].read() == b"new"
    s3.delete_object(Bucket=b, Key="small")
    with raises_code("NoSuchKey"):
        s3.get_object(Bucket=b, Key="small")
    with raises_code("404"):
        s3.head_object(Bucket=b, Key="small")
    with raises_code("KeyTooLongError"):
        s3.put_object(Bucket=b, Key="k" * 600, Body=b"x")  # over what LMDB can index
    with raises_code("KeyTooLongError"):
        s3.put_object(Bucket=b, Key="k" * 1025, Body=b"x")  # over S3's limit


def test_listings_with_prefix_delimiter_pagination_and_url_encoding(s3_single) -> None:
    c, access = s3_single
    s3 = access.client(c.nodes[0])
    b = access.bucket
    keys = [f"photos/2024/{i:03d}.jpg" for i in range(25)] + ["photos/readme", "docs/a b", "top", "x%y+z"]
    for k in keys:
        s3.put_object(Bucket=b, Key=k, Body=k.encode())
    all_keys = []
    token = None
    while True:
        kw = {"ContinuationToken": token} if token else {}
        page = s3.list_objects_v2(Bucket=b, MaxKeys=7, **kw)
        all_keys += [o["Key"] for o in page.get("Contents", [])]
        assert page["KeyCount"] <= 7
        if not page["IsTruncated"]:
            break
        token = page["NextContinuationToken"]
    assert all_keys == sorted(keys)
    top = s3.list_objects_v2(Bucket=b, Delimiter="/")
    assert [p["Prefix"] for p in top["CommonPrefixes"]] == ["docs/", "photos/"]
    assert [o["Key"] for o in top["Contents"]] == ["top", "x%y+z"]
    sub = s3.list_objects_v2(Bucket=b, Prefix="photos/", Delimiter="/")
    assert [p["Prefix"] for p in sub["CommonPrefixes"]] == ["photos/2024/"]
    assert [o["Key"] for o in sub["Contents"]] == ["photos/readme"]
    after = s3.list_objects_v2(Bucket=b, StartAfter="photos/2024/023.jpg")
    assert [o["Key"] for o in after["Contents"]] == ["photos/2024/024.jpg", "photos/readme", "top", "x%y+z"]
    v1 = s3.list_objects(Bucket=b, Prefix="photos/2024/", Marker="photos/2024/020.jpg", MaxKeys=3)
    assert [o["Key"] for o in v1["Contents"]] == [f"photos/2024/{i:03d}.jpg" for i in (21, 22, 23)]
    assert v1["IsTruncated"] is True
    # botocore asks for encoding-type=url by itself and decodes; asked explicitly, it does not
    enc = s3.list_objects_v2(Bucket=b, Prefix="docs/", EncodingType="url")
    assert [o["Key"] for o in enc["Contents"]] == ["docs/a+b"]
    owner = s3.list_objects_v2(Bucket=b, Prefix="top", FetchOwner=True)
    assert owner["Contents"][0]["Owner"]["ID"] == access.key_id


def test_buckets_lifecycle_and_errors(s3_single) -> None:
    c, access = s3_single
    s3 = access.client(c.nodes[0])
    s3.create_bucket(Bucket="second")
    s3.create_bucket(Bucket="second")  # idempotent for its owner
    assert {"test", "second"} <= {x["Name"] for x in s3.list_buckets()["Buckets"]}
    s3.head_bucket(Bucket="second")
    assert s3.get_bucket_location(Bucket="second")["LocationConstraint"] == "garage"
    assert "Status" not in s3.get_bucket_versioning(Bucket="second")
    assert s3.get_bucket_acl(Bucket="second")["Grants"][0]["Permission"] == "FULL_CONTROL"
    s3.put_object(Bucket="second", Key="k", Body=b"v")
    with raises_code("BucketNotEmpty"):
        s3.delete_bucket(Bucket="second")
    s3.delete_objects(Bucket="second", Delete={"Objects": [{"Key": "k"}, {"Key": "missing"}]})
    s3.delete_bucket(Bucket="second")
    with raises_code("NoSuchBucket"):
        s3.list_objects_v2(Bucket="second")
    for bad in ("ab", "UPPER", "a..b", "-start", "192.168.1.1", "x" * 64):
        with raises_code("InvalidBucketName"):
            s3.create_bucket(Bucket=bad)
    with raises_code("InvalidLocationConstraint"):
        s3.create_bucket(Bucket="elsewhere", CreateBucketConfiguration={"LocationConstraint": "eu-west-1"})
    # another key's bucket name: BucketAlreadyExists; no permission: AccessDenied
    other = S3Access(c.nodes[0], bucket="theirs", key_name="other")
    s3o = other.client(c.nodes[0])
    with raises_code("BucketAlreadyExists"):
        s3.create_bucket(Bucket="theirs")
    with raises_code("AccessDenied"):
        s3.put_object(Bucket="theirs", Key="k", Body=b"v")
    with raises_code("AccessDenied"):
        s3o.get_object(Bucket="test", Key="anything")
    # unimplemented endpoints: 501 NotImplemented in S3 XML
    with raises_code("NotImplemented"):
        s3.get_bucket_policy(Bucket="test")
    with raises_code("NotImplemented"):
        s3.put_bucket_tagging(Bucket="test", Tagging={"TagSet": []})


def test_authentication_failures_store_nothing(s3_single) -> None:
    c, access = s3_single
    node = c.nodes[0]
    bad_secret = S3Access.__new__(S3Access)
    bad_secret.key_id, bad_secret.secret, bad_secret.bucket = access.key_id, "0" * 64, "test"
    with raises_code("SignatureDoesNotMatch"):
        bad_secret.client(node).put_object(Bucket="test", Key="nope", Body=b"x")
    unknown = S3Access.__new__(S3Access)
    unknown.key_id, unknown.secret, unknown.bucket = "GK" + "0" * 24, "0" * 64, "test"
    with raises_code("InvalidAccessKeyId"):
        unknown.client(node).put_object(Bucket="test", Key="nope", Body=b"x")
    # anonymous request, and a request signed 20 minutes in the past
    with pytest.raises(urllib.error.HTTPError) as e:
        urllib.request.urlopen(f"{node.s3_endpoint}/test/nope")
    assert e.value.code == 403 and b"<Code>AccessDenied</Code>" in e.value.read()
    s3 = access.client(node)

    def skew(request, **kwargs):  # noqa: ANN001
        request.context["timestamp"] = "20000101T000000Z"

    s3.meta.events.register_first("before-sign.s3.PutObject", skew)
    import botocore.auth

    real = botocore.auth.datetime.datetime

    class Past(real):  # type: ignore[misc, valid-type]
        @classmethod
        def utcnow(cls):  # noqa: ANN206
            return real.utcnow() - datetime.timedelta(minutes=20)

        @classmethod
        def now(cls, tz=None):  # noqa: ANN206, ANN001
            return real.now(tz) - datetime.timedelta(minutes=20)

    botocore.auth.datetime.datetime = Past
    try:
        with raises_code("RequestTimeTooSkewed"):
            s3.put_object(Bucket="test", Key="nope", Body=b"x")
    finally:
        botocore.auth.datetime.datetime = real
    # wrong checksum and wrong Content-MD5: BadDigest / InvalidDigest, nothing stored
    s3 = access.client(node)
    with raises_code("BadDigest"):
        s3.put_object(Bucket="test", Key="nope", Body=b"hello", ChecksumCRC32="AAAAAA==")
    with raises_code("BadDigest"):
        s3.put_object(Bucket="test", Key="nope", Body=b"hello", ContentMD5="1B2M2Y8AsgTpgAmY7PhCfg==")
    with raises_code("InvalidDigest"):
        s3.put_object(Bucket="test", Key="nope", Body=b"hello", ContentMD5="not base64!")
    assert "Contents" not in s3.list_objects_v2(Bucket="test")


@pytest.mark.parametrize("algo", ["CRC32", "CRC32C", "CRC64NVME", "SHA1", "SHA256"])
def test_checksums_are_checked_and_returned(s3_single, algo: str) -> None:
    c, access = s3_single
    s3 = access.client(c.nodes[0])
    body = os.urandom(100_000)
    put = s3.put_object(Bucket="test", Key=f"ck-{algo}", Body=body, ChecksumAlgorithm=algo)
    value = put[f"Checksum{algo}"]
    got = s3.get_object(Bucket="test", Key=f"ck-{algo}", ChecksumMode="ENABLED")
    assert got["Body"].read() == body and got[f"Checksum{algo}"] == value


def test_three_nodes_write_through_one_read_through_others(s3_cluster3) -> None:
    c, access = s3_cluster3
    a, b, cc = c.nodes
    objs = {f"k{i}": os.urandom(size) for i, size in enumerate((10, 5000, 1_500_000, 3 * 1024 * 1024))}
    for k, v in objs.items():
        access.client(a).put_object(Bucket="test", Key=k, Body=v)
    for node in (b, cc):
        s3 = access.client(node)
        for k, v in objs.items():
            assert s3.get_object(Bucket="test", Key=k)["Body"].read() == v
        assert [o["Key"] for o in s3.list_objects_v2(Bucket="test")["Contents"]] == sorted(objs)
    access.client(cc).delete_object(Bucket="test", Key="k0")
    with raises_code("NoSuchKey"):
        access.client(b).get_object(Bucket="test", Key="k0")


def test_vhost_style_requests_name_the_bucket_in_the_host(s3_single, monkeypatch) -> None:
    import socket

    import boto3
    import botocore.config

    c, access = s3_single
    node = c.nodes[0]
    real = socket.getaddrinfo

    def resolve(host, *args, **kwargs):  # noqa: ANN001, ANN002, ANN003, ANN202
        return real("127.0.0.1" if str(host).endswith(".localhost") else host, *args, **kwargs)

    monkeypatch.setattr(socket, "getaddrinfo", resolve)  # *.localhost does not resolve here
    s3 = boto3.client("s3", endpoint_url=f"http://s3.localhost:{node.s3_port}", region_name="garage",
                      aws_access_key_id=access.key_id, aws_secret_access_key=access.secret,
                      config=botocore.config.Config(s3={"addressing_style": "virtual"},
                                                    retries={"max_attempts": 1}))
    s3.put_object(Bucket="test", Key="v/host.txt", Body=b"vhost")
    assert s3.get_object(Bucket="test", Key="v/host.txt")["Body"].read() == b"vhost"
    assert [o["Key"] for o in s3.list_objects_v2(Bucket="test")["Contents"]] == ["v/host.txt"]
    # the same object through path-style
    assert access.client(node).get_object(Bucket="test", Key="v/host.txt")["Body"].read() == b"vhost"


def _signed_chunked_put(node, access, key: str, chunks: list[bytes], tamper: bool = False) -> tuple[int, bytes]:
    """A PUT with `STREAMING-AWS4-HMAC-SHA256-PAYLOAD`: botocore signs the headers (the seed
    signature), each chunk is signed in turn, as the AWS SDKs for Java or Go do."""
    import hashlib as _h
    import http.client

    from botocore.auth import S3SigV4Auth
    from botocore.awsrequest import AWSRequest
    from botocore.credentials import Credentials

    from grange.api.common.signature.canonical import signing_key
    from grange.api.common.signature.streaming import chunk_signature

    decoded = sum(len(c) for c in chunks)
    url = f"{node.s3_endpoint}/test/{key}"
    req = AWSRequest("PUT", url, headers={"x-amz-content-sha256": "STREAMING-AWS4-HMAC-SHA256-PAYLOAD",
                                          "Content-Encoding": "aws-chunked",
                                          "x-amz-decoded-content-length": str(decoded)})
    class StreamingAuth(S3SigV4Auth):
        def payload(self, request):  # noqa: ANN001, ANN201 - the seed covers the streaming marker
            return "STREAMING-AWS4-HMAC-SHA256-PAYLOAD"

    StreamingAuth(Credentials(access.key_id, access.secret), "s3", "garage").add_auth(req)
    auth = req.headers["Authorization"]
    seed = auth.rsplit("Signature=", 1)[1]
    amz_date = req.headers["X-Amz-Date"]
    scope = f"{amz_date[:8]}/garage/s3/aws4_request"
    k = signing_key(access.secret, amz_date[:8], "garage", "s3")
    body, prev = b"", seed
    for data in [*chunks, b""]:
        sig = chunk_signature(k, amz_date, scope, prev, _h.sha256(data).hexdigest())
        if tamper and data:
            sig = "0" * 64
        body += f"{len(data):x};chunk-signature={sig}\r\n".encode() + data + b"\r\n"
        prev = sig
    conn = http.client.HTTPConnection("127.0.0.1", node.s3_port, timeout=30)
    headers = {k2: v for k2, v in req.headers.items()}
    headers["Content-Length"] = str(len(body))
    conn.request("PUT", f"/test/{key}", body=body, headers=headers)
    resp = conn.getresponse()
    out = (resp.status, resp.read())
    conn.close()
    return out


def test_signed_aws_chunked_upload_is_verified_chunk_by_chunk(s3_single) -> None:
    c, access = s3_single
    node = c.nodes[0]
    chunks = [os.urandom(64 * 1024), os.urandom(64 * 1024), os.urandom(1000)]
    status, body = _signed_chunked_put(node, access, "chunked", chunks)
    assert status == 200, body
    assert access.client(node).get_object(Bucket="test", Key="chunked")["Body"].read() == b"".join(chunks)
    status, body = _signed_chunked_put(node, access, "tampered", chunks, tamper=True)
    assert status == 403 and b"SignatureDoesNotMatch" in body
    with raises_code("NoSuchKey"):
        access.client(node).get_object(Bucket="test", Key="tampered")


def _trailer_put(node, access, key: str, data: bytes, crc: str, signed: bool) -> tuple[int, bytes]:
    """A PUT with a trailing x-amz-checksum-crc32, as current SDKs send by default:
    `STREAMING-UNSIGNED-PAYLOAD-TRAILER`, or with signed chunks and a signed trailer."""
    import hashlib as _h
    import http.client

    from botocore.auth import S3SigV4Auth
    from botocore.awsrequest import AWSRequest
    from botocore.credentials import Credentials

    from grange.api.common.signature.canonical import signing_key
    from grange.api.common.signature.streaming import chunk_signature, trailer_signature

    mode = "STREAMING-AWS4-HMAC-SHA256-PAYLOAD-TRAILER" if signed else "STREAMING-UNSIGNED-PAYLOAD-TRAILER"

    class Auth(S3SigV4Auth):
        def payload(self, request):  # noqa: ANN001, ANN201
            return mode

    req = AWSRequest("PUT", f"{node.s3_endpoint}/test/{key}", headers={
        "Content-Encoding": "aws-chunked", "x-amz-decoded-content-length": str(len(data)),
        "x-amz-trailer": "x-amz-checksum-crc32"})
    Auth(Credentials(access.key_id, access.secret), "s3", "garage").add_auth(req)
    seed = req.headers["Authorization"].rsplit("Signature=", 1)[1]
    amz_date = req.headers["X-Amz-Date"]
    scope = f"{amz_date[:8]}/garage/s3/aws4_request"
    k = signing_key(access.secret, amz_date[:8], "garage", "s3")
    body, prev = b"", seed
    for piece in (data[:40_000], data[40_000:], b""):  # two data chunks, then the final empty one
        if signed:
            prev = chunk_signature(k, amz_date, scope, prev, _h.sha256(piece).hexdigest())
            body += f"{len(piece):x};chunk-signature={prev}\r\n".encode()
        else:
            body += f"{len(piece):x}\r\n".encode()
        body += piece + (b"\r\n" if piece else b"")
    body += f"x-amz-checksum-crc32:{crc}\r\n".encode()
    if signed:
        sig = trailer_signature(k, amz_date, scope, prev, [("x-amz-checksum-crc32", crc)])
        body += f"x-amz-trailer-signature:{sig}\r\n".encode()
    body += b"\r\n"
    conn = http.client.HTTPConnection("127.0.0.1", node.s3_port, timeout=30)
    headers = dict(req.headers.items())
    headers["Content-Length"] = str(len(body))
    conn.request("PUT", f"/test/{key}", body=body, headers=headers)
    resp = conn.getresponse()
    out = (resp.status, resp.read())
    conn.close()
    return out


@pytest.mark.parametrize("signed", [False, True], ids=["unsigned-trailer", "signed-trailer"])
def test_trailing_checksums_are_verified(s3_single, signed: bool) -> None:
    import base64
    import zlib

    c, access = s3_single
    node = c.nodes[0]
    data = os.urandom(100_000)
    crc = base64.b64encode(zlib.crc32(data).to_bytes(4, "big")).decode()
    status, body = _trailer_put(node, access, "with-trailer", data, crc, signed)
    assert status == 200, body
    got = access.client(node).get_object(Bucket="test", Key="with-trailer", ChecksumMode="ENABLED")
    assert got["Body"].read() == data and got["ChecksumCRC32"] == crc
    status, body = _trailer_put(node, access, "bad-trailer", data, "AAAAAA==", signed)
    assert status == 400 and b"BadDigest" in body
    with raises_code("NoSuchKey"):
        access.client(node).get_object(Bucket="test", Key="bad-trailer")
