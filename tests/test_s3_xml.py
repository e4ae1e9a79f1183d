"""S3 XML: golden answers, hostile and malformed request bodies, round trips of odd keys,
botocore parsing our answers (with its encoding-type=url decoding), and S3 error bodies."""

from __future__ import annotations

import functools
import time
import xml.etree.ElementTree as ET
from collections.abc import Callable
from typing import Any
from urllib.parse import parse_qsl, unquote_plus, urlsplit

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from grange.api.s3 import errors as s3err
from grange.api.s3 import xml
from grange.api.s3.router import Endpoint, route

pytest.importorskip("botocore")
import botocore.handlers  # noqa: E402
import botocore.parsers  # noqa: E402
import botocore.session  # noqa: E402
from botocore.awsrequest import AWSResponse  # noqa: E402

NS = 'xmlns="http://s3.amazonaws.com/doc/2006-03-01/"'
DECL = '<?xml version="1.0" encoding="UTF-8"?>'
OW = xml.Owner("GK31c2f218a2e44f485b94239e", "my-key")
OWNER = "<ID>GK31c2f218a2e44f485b94239e</ID><DisplayName>my-key</DisplayName>"
T = 1255369830000  # 2009-10-12T17:50:30.000Z
TS = "2009-10-12T17:50:30.000Z"


def _doc(body: str) -> bytes:
    return (DECL + body).encode()


# ====================================================================== golden answers
def test_iso8601_has_milliseconds() -> None:
    assert xml.iso8601(0) == "1970-01-01T00:00:00.000Z"
    assert xml.iso8601(T) == TS
    assert xml.iso8601(T + 7) == "2009-10-12T17:50:30.007Z"
    assert xml.iso8601(-1) == "1969-12-31T23:59:59.999Z"


GOLDEN: list[tuple[str, Callable[[], bytes], str]] = [
    ("list_buckets", lambda: xml.list_buckets_result(OW, [xml.BucketInfo("alpha", 0), xml.BucketInfo("beta", T)]),
     f"<ListAllMyBucketsResult {NS}><Owner>{OWNER}</Owner><Buckets>"
     "<Bucket><Name>alpha</Name><CreationDate>1970-01-01T00:00:00.000Z</CreationDate></Bucket>"
     f"<Bucket><Name>beta</Name><CreationDate>{TS}</CreationDate></Bucket></Buckets></ListAllMyBucketsResult>"),
    ("list_buckets_empty", lambda: xml.list_buckets_result(OW, []),
     f"<ListAllMyBucketsResult {NS}><Owner>{OWNER}</Owner><Buckets/></ListAllMyBucketsResult>"),
    ("location", lambda: xml.location_constraint("garage"),
     f"<LocationConstraint {NS}>garage</LocationConstraint>"),
    ("versioning", lambda: xml.versioning_configuration(), f"<VersioningConfiguration {NS}/>"),
    ("versioning_suspended", lambda: xml.versioning_configuration("Suspended"),
     f"<VersioningConfiguration {NS}><Status>Suspended</Status></VersioningConfiguration>"),
    ("list_objects_v1", lambda: xml.list_objects_result(
        bucket="b", prefix="photos/", marker=None, next_marker="photos/b", max_keys=2, delimiter="/",
        url_encoded=False, is_truncated=True,
        contents=[xml.ObjectInfo("photos/a.jpg", T, '"d41d8cd98f00b204e9800998ecf8427e"', 0, OW)],
        common_prefixes=["photos/2006/"]),
     f"<ListBucketResult {NS}><Name>b</Name><Prefix>photos/</Prefix><Marker></Marker>"
     "<NextMarker>photos/b</NextMarker><MaxKeys>2</MaxKeys><Delimiter>/</Delimiter>"
     f"<IsTruncated>true</IsTruncated><Contents><Key>photos/a.jpg</Key><LastModified>{TS}</LastModified>"
     '<ETag>"d41d8cd98f00b204e9800998ecf8427e"</ETag><Size>0</Size><StorageClass>STANDARD</StorageClass>'
     f"<Owner>{OWNER}</Owner></Contents><CommonPrefixes><Prefix>photos/2006/</Prefix></CommonPrefixes>"
     "</ListBucketResult>"),
    ("list_objects_v2", lambda: xml.list_objects_v2_result(
        bucket="b", prefix="a b/", continuation_token="c1", next_continuation_token="c2", start_after="a b/0",
        max_keys=1000, delimiter="/", url_encoded=True, is_truncated=False,
        contents=[xml.ObjectInfo("a b/c+d", T, "abc", 12)], common_prefixes=["a b/é/"]),
     f"<ListBucketResult {NS}><Name>b</Name><Prefix>a+b/</Prefix><StartAfter>a+b/0</StartAfter>"
     "<ContinuationToken>c1</ContinuationToken><NextContinuationToken>c2</NextContinuationToken>"
     "<KeyCount>2</KeyCount><MaxKeys>1000</MaxKeys><Delimiter>/</Delimiter><EncodingType>url</EncodingType>"
     f"<IsTruncated>false</IsTruncated><Contents><Key>a+b/c%2Bd</Key><LastModified>{TS}</LastModified>"
     '<ETag>"abc"</ETag><Size>12</Size><StorageClass>STANDARD</StorageClass></Contents>'
     "<CommonPrefixes><Prefix>a+b/%C3%A9/</Prefix></CommonPrefixes></ListBucketResult>"),
    ("list_objects_v2_empty", lambda: xml.list_objects_v2_result(
        bucket="b", prefix="", continuation_token=None, next_continuation_token=None, start_after=None,
        max_keys=1000, delimiter=None, url_encoded=False, is_truncated=False, contents=[], common_prefixes=[]),
     f"<ListBucketResult {NS}><Name>b</Name><Prefix></Prefix><KeyCount>0</KeyCount><MaxKeys>1000</MaxKeys>"
     "<IsTruncated>false</IsTruncated></ListBucketResult>"),
    ("initiate", lambda: xml.initiate_multipart_upload_result("b", "a/plop", "azerty"),
     f"<InitiateMultipartUploadResult {NS}><Bucket>b</Bucket><Key>a/plop</Key><UploadId>azerty</UploadId>"
     "</InitiateMultipartUploadResult>"),
    ("complete", lambda: xml.complete_multipart_upload_result(
        location="http://s3.localhost:3900/b/a/plop", bucket="b", key="a/plop",
        etag="3858f62230ac3c915f300c664312c11f-9", checksums={"ChecksumSHA1": "ZJAnHyG8PeKz9tI8UTcHrJos39A="}),
     f"<CompleteMultipartUploadResult {NS}><Location>http://s3.localhost:3900/b/a/plop</Location>"
     '<Bucket>b</Bucket><Key>a/plop</Key><ETag>"3858f62230ac3c915f300c664312c11f-9"</ETag>'
     "<ChecksumSHA1>ZJAnHyG8PeKz9tI8UTcHrJos39A=</ChecksumSHA1></CompleteMultipartUploadResult>"),
    ("list_multipart_uploads", lambda: xml.list_multipart_uploads_result(
        bucket="b", prefix="", key_marker=None, upload_id_marker=None, next_key_marker="k",
        next_upload_id_marker="u", delimiter=None, max_uploads=1000, url_encoded=False, is_truncated=False,
        uploads=[xml.UploadInfo("k", "u", T, OW)], common_prefixes=[]),
     f"<ListMultipartUploadsResult {NS}><Bucket>b</Bucket><KeyMarker></KeyMarker>"
     "<UploadIdMarker></UploadIdMarker><NextKeyMarker>k</NextKeyMarker><NextUploadIdMarker>u</NextUploadIdMarker>"
     "<Prefix></Prefix><MaxUploads>1000</MaxUploads><IsTruncated>false</IsTruncated><Upload><Key>k</Key>"
     f"<UploadId>u</UploadId><Initiator>{OWNER}</Initiator><Owner>{OWNER}</Owner>"
     f"<StorageClass>STANDARD</StorageClass><Initiated>{TS}</Initiated></Upload></ListMultipartUploadsResult>"),
    ("list_parts", lambda: xml.list_parts_result(
        bucket="b", key="k", upload_id="u", part_number_marker=None, next_part_number_marker=2, max_parts=1000,
        is_truncated=False, parts=[xml.PartInfo(1, T, "abc", 5242880, {"ChecksumCRC32": "AAAAAA=="})], owner=OW),
     f"<ListPartsResult {NS}><Bucket>b</Bucket><Key>k</Key><UploadId>u</UploadId><Initiator>{OWNER}</Initiator>"
     f"<Owner>{OWNER}</Owner><StorageClass>STANDARD</StorageClass><PartNumberMarker>0</PartNumberMarker>"
     "<NextPartNumberMarker>2</NextPartNumberMarker><MaxParts>1000</MaxParts><IsTruncated>false</IsTruncated>"
     f'<Part><PartNumber>1</PartNumber><LastModified>{TS}</LastModified><ETag>"abc"</ETag><Size>5242880</Size>'
     "<ChecksumCRC32>AAAAAA==</ChecksumCRC32></Part></ListPartsResult>"),
    ("copy_object", lambda: xml.copy_object_result("abc", T),
     f'<CopyObjectResult {NS}><ETag>"abc"</ETag><LastModified>{TS}</LastModified></CopyObjectResult>'),
    ("copy_part", lambda: xml.copy_part_result('"abc"', T),
     f'<CopyPartResult {NS}><ETag>"abc"</ETag><LastModified>{TS}</LastModified></CopyPartResult>'),
    ("delete_result", lambda: xml.delete_result(
        [xml.Deleted("a/plop"), xml.Deleted("v", version_id="1", delete_marker=True)],
        [xml.DeleteError("c/plap", "AccessDenied", "Access Denied")]),
     f"<DeleteResult {NS}><Deleted><Key>a/plop</Key></Deleted><Deleted><Key>v</Key><VersionId>1</VersionId>"
     "<DeleteMarker>true</DeleteMarker></Deleted><Error><Key>c/plap</Key><Code>AccessDenied</Code>"
     "<Message>Access Denied</Message></Error></DeleteResult>"),
    ("delete_result_quiet", lambda: xml.delete_result([]), f"<DeleteResult {NS}/>"),
    ("acl", lambda: xml.access_control_policy(OW, [xml.Grant(OW, "READ"), xml.Grant(OW, "READ_ACP")]),
     f'<AccessControlPolicy {NS} xmlns:xsi="http://www.w3.org/2001/XMLSchema-instance"><Owner>{OWNER}</Owner>'
     f'<AccessControlList><Grant><Grantee xsi:type="CanonicalUser">{OWNER}</Grantee>'
     f'<Permission>READ</Permission></Grant><Grant><Grantee xsi:type="CanonicalUser">{OWNER}</Grantee>'
     "<Permission>READ_ACP</Permission></Grant></AccessControlList></AccessControlPolicy>"),
    ("post_response", lambda: xml.post_response(location="http://h/b/k", bucket="b", key="k", etag="abc"),
     f'<PostResponse {NS}><Location>http://h/b/k</Location><Bucket>b</Bucket><Key>k</Key><ETag>"abc"</ETag>'
     "</PostResponse>"),
]


@pytest.mark.parametrize("name,make,expected", GOLDEN, ids=[g[0] for g in GOLDEN])
def test_golden_answers(name: str, make: Callable[[], bytes], expected: str) -> None:
    out = make()
    assert out == _doc(expected)
    ET.fromstring(out)  # and it is well-formed


def test_text_escaping_of_keys() -> None:
    out = xml.initiate_multipart_upload_result("b", "a<b>&c\"d'\r\n\te\x01\x1f\ufffe", "u")
    assert b"<Key>a&lt;b&gt;&amp;c\"d'&#13;\n\te&#x1;&#x1F;&#xFFFE;</Key>" in out
    assert xml.escape_text("\ud800") == "&#xD800;"


# ====================================================================== reading
DELETE_NS = (f'<Delete {NS}><Object><Key>a b</Key></Object><Object><Key> sp </Key><VersionId>v1</VersionId>'
             "</Object><Quiet>TRUE</Quiet></Delete>").encode()


def test_parse_delete_with_and_without_namespace() -> None:
    req = xml.parse_delete(DELETE_NS)
    assert req.objects == [xml.ObjectIdentifier("a b"), xml.ObjectIdentifier(" sp ", "v1")]
    assert req.quiet is True
    plain = b"<?xml version='1.0'?>\n<Delete>\n  <Object><Key>k&amp;&#13;&#x1F600;</Key></Object>\n</Delete>"
    req = xml.parse_delete(plain)
    assert req.objects == [xml.ObjectIdentifier("k&\r\U0001f600")] and req.quiet is False
    assert xml.parse_delete(b"<Delete><Object><Key/></Object></Delete>").objects == [xml.ObjectIdentifier("")]


def test_parse_complete_multipart_upload() -> None:
    body = (f'<CompleteMultipartUpload {NS}>'
            '<Part><PartNumber>1</PartNumber><ETag>"aaa"</ETag><ChecksumCRC32>AAAAAA==</ChecksumCRC32></Part>'
            "<Part><ETag>&quot;bbb&quot;</ETag><PartNumber> 2 </PartNumber></Part>"
            "<Part><PartNumber>7</PartNumber><ETag>ccc</ETag></Part></CompleteMultipartUpload>").encode()
    parts = xml.parse_complete_multipart_upload(body)
    assert parts == [xml.CompletedPart(1, "aaa", {"ChecksumCRC32": "AAAAAA=="}), xml.CompletedPart(2, "bbb"),
                     xml.CompletedPart(7, "ccc")]


def test_parse_complete_multipart_upload_of_10000_parts() -> None:
    one = '<Part>\n    <PartNumber>{}</PartNumber>\n    <ETag>"{}"</ETag>\n    <ChecksumCRC32>AAAAAA==</ChecksumCRC32>\n</Part>\n'
    body = ("<CompleteMultipartUpload>" + "".join(one.format(i, "0123456789abcdef" * 2) for i in range(1, 10001))
            + "</CompleteMultipartUpload>").encode()
    assert xml.MAX_XML_BODY < len(body) <= xml.MAX_COMPLETE_MULTIPART_BODY
    parts = xml.parse_complete_multipart_upload(body)
    assert len(parts) == 10000 and parts[-1].part_number == 10000
    with pytest.raises(s3err.MalformedXML):
        xml.parse_complete_multipart_upload(body.replace(b"</CompleteMultipartUpload>",
                                                         b"<Part><PartNumber>1</PartNumber><ETag>x</ETag></Part>"
                                                         b"</CompleteMultipartUpload>"))


def test_parse_create_bucket_configuration() -> None:
    assert xml.parse_create_bucket_configuration(b"") is None
    assert xml.parse_create_bucket_configuration(b"  \n") is None
    body = f"<CreateBucketConfiguration {NS}><LocationConstraint>garage</LocationConstraint>" \
           "</CreateBucketConfiguration>"
    assert xml.parse_create_bucket_configuration(body.encode()) == "garage"
    assert xml.parse_create_bucket_configuration(b"<CreateBucketConfiguration/>") is None
    with pytest.raises(s3err.MalformedXML):
        xml.parse_create_bucket_configuration(b"<Other/>")


BILLION_LAUGHS = b"""<?xml version="1.0"?>
<!DOCTYPE lolz [
 <!ENTITY lol "lol">
 <!ENTITY lol2 "&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;">
 <!ENTITY lol3 "&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;">
 <!ENTITY lol4 "&lol3;&lol3;&lol3;&lol3;&lol3;&lol3;&lol3;&lol3;&lol3;&lol3;">
 <!ENTITY lol5 "&lol4;&lol4;&lol4;&lol4;&lol4;&lol4;&lol4;&lol4;&lol4;&lol4;">
 <!ENTITY lol6 "&lol5;&lol5;&lol5;&lol5;&lol5;&lol5;&lol5;&lol5;&lol5;&lol5;">
 <!ENTITY lol7 "&lol6;&lol6;&lol6;&lol6;&lol6;&lol6;&lol6;&lol6;&lol6;&lol6;">
 <!ENTITY lol8 "&lol7;&lol7;&lol7;&lol7;&lol7;&lol7;&lol7;&lol7;&lol7;&lol7;">
 <!ENTITY lol9 "&lol8;&lol8;&lol8;&lol8;&lol8;&lol8;&lol8;&lol8;&lol8;&lol8;">
]>
<Delete><Object><Key>&lol9;</Key></Object></Delete>"""

HOSTILE_OR_MALFORMED: list[tuple[str, bytes]] = [
    ("billion_laughs", BILLION_LAUGHS),
    ("external_entity", b'<?xml version="1.0"?><!DOCTYPE d [<!ENTITY xxe SYSTEM "file:///etc/passwd">]>'
                        b"<Delete><Object><Key>&xxe;</Key></Object></Delete>"),
    ("external_dtd", b'<?xml version="1.0"?><!DOCTYPE Delete SYSTEM "http://127.0.0.1:1/x.dtd">'
                     b"<Delete><Object><Key>k</Key></Object></Delete>"),
    ("parameter_entity", b'<!DOCTYPE d [<!ENTITY % p SYSTEM "http://127.0.0.1:1/p">%p;]><Delete/>'),
    ("undeclared_entity", b"<Delete><Object><Key>&foo;</Key></Object></Delete>"),
    ("empty", b""),
    ("not_xml", b"hello"),
    ("binary", bytes(range(256))),
    ("unclosed", b"<Delete><Object><Key>k</Key></Object>"),
    ("wrong_root", b"<Remove><Object><Key>k</Key></Object></Remove>"),
    ("foreign_namespace", b'<Delete xmlns="urn:other"><Object><Key>k</Key></Object></Delete>'),
    ("no_objects", b"<Delete><Quiet>true</Quiet></Delete>"),
    ("object_without_key", b"<Delete><Object><VersionId>v</VersionId></Object></Delete>"),
    ("two_keys", b"<Delete><Object><Key>a</Key><Key>b</Key></Object></Delete>"),
    ("key_with_children", b"<Delete><Object><Key><b>x</b></Key></Object></Delete>"),
    ("bad_quiet", b"<Delete><Object><Key>k</Key></Object><Quiet>maybe</Quiet></Delete>"),
    ("two_roots", b"<Delete><Object><Key>k</Key></Object></Delete><Delete/>"),
    ("lying_encoding", b'<?xml version="1.0" encoding="UTF-16"?><Delete><Object><Key>k</Key></Object></Delete>'),
    ("unknown_encoding", b'<?xml version="1.0" encoding="x-nope"?><Delete/>'),
    ("invalid_utf8", b"<Delete><Object><Key>\xff\xfe</Key></Object></Delete>"),
    ("char_ref_to_nul", b"<Delete><Object><Key>&#0;</Key></Object></Delete>"),
    ("too_many_objects", b"<Delete>" + b"<Object><Key>k</Key></Object>" * 1001 + b"</Delete>"),
    ("too_big", b"<Delete>" + b" " * xml.MAX_XML_BODY + b"</Delete>"),
]


@pytest.mark.parametrize("name,body", HOSTILE_OR_MALFORMED, ids=[h[0] for h in HOSTILE_OR_MALFORMED])
def test_hostile_or_malformed_delete_bodies_are_malformed_xml(name: str, body: bytes) -> None:
    start = time.monotonic()
    with pytest.raises(s3err.MalformedXML) as info:
        xml.parse_delete(body)
    assert time.monotonic() - start < 2.0
    assert info.value.status == 400 and info.value.code == "MalformedXML"


MALFORMED_CMU: list[bytes] = [
    b"<CompleteMultipartUpload/>",
    b"<CompleteMultipartUpload><Part><ETag>x</ETag></Part></CompleteMultipartUpload>",
    b"<CompleteMultipartUpload><Part><PartNumber>1</PartNumber></Part></CompleteMultipartUpload>",
    b"<CompleteMultipartUpload><Part><PartNumber>one</PartNumber><ETag>x</ETag></Part></CompleteMultipartUpload>",
    b"<CompleteMultipartUpload><Part><PartNumber>-1</PartNumber><ETag>x</ETag></Part></CompleteMultipartUpload>",
    "<CompleteMultipartUpload><Part><PartNumber>\u0661</PartNumber><ETag>x</ETag></Part>"
    "</CompleteMultipartUpload>".encode(),
    b"<CompleteMultipartUpload>" + b" " * xml.MAX_COMPLETE_MULTIPART_BODY + b"</CompleteMultipartUpload>",
    BILLION_LAUGHS,
]


@pytest.mark.parametrize("body", MALFORMED_CMU, ids=range(len(MALFORMED_CMU)))
def test_malformed_complete_multipart_upload(body: bytes) -> None:
    with pytest.raises(s3err.MalformedXML):
        xml.parse_complete_multipart_upload(body)


def test_deeply_nested_body_is_refused_without_crash() -> None:
    depth = 100_000
    body = b"<a>" * depth + b"</a>" * depth
    assert len(body) < xml.MAX_XML_BODY
    with pytest.raises(s3err.MalformedXML):
        xml.parse_delete(body)


@settings(max_examples=300, deadline=None)
@given(body=st.binary(max_size=300) | st.text(max_size=200).map(lambda s: s.encode("utf-8", "surrogatepass"))
       | st.lists(st.sampled_from(["<Delete>", "</Delete>", "<Object>", "</Object>", "<Key>", "</Key>", "k",
                                   "&amp;", "&x;", "<Quiet>true</Quiet>", "<!DOCTYPE x>", "<?xml version='1.0'?>",
                                   "<CompleteMultipartUpload>", "<Part>", "<PartNumber>1</PartNumber>",
                                   "<ETag>e</ETag>", "</Part>", "</CompleteMultipartUpload>"]),
                  max_size=12).map(lambda parts: "".join(parts).encode()))
def test_request_parsers_raise_only_malformed_xml(body: bytes) -> None:
    for parse in (xml.parse_delete, xml.parse_complete_multipart_upload, xml.parse_create_bucket_configuration):
        try:
            parse(body)
        except s3err.MalformedXML:
            pass


# ====================================================================== round trips
ODD_KEYS = ["a b", "a+b", "a%2Fb", "a/b/", "/lead", "&<>\"'", "tab\there", "line\nfeed", "cr\rlf\r\n",
            "été ✓ 😀 中文", "x?y#z", "~!@$^*()[]{}|\\;:,=", " ", "  double  ", "\u200b", "\u00a0nbsp"]
FORBIDDEN_KEYS = ["\x00nul", "bell\x07", "esc\x1b[0m", "\x7fdel\x01\x1f", "nonchar\ufffe\uffff"]


@pytest.mark.parametrize("key", ODD_KEYS)
def test_odd_keys_round_trip_through_xml(key: str) -> None:
    out = xml.delete_result([xml.Deleted(key)])
    found = ET.fromstring(out).find(f"{{{xml.S3_NS}}}Deleted/{{{xml.S3_NS}}}Key")
    assert found is not None and found.text == key
    body = (f"<Delete><Object><Key>{xml.escape_text(key)}</Key></Object></Delete>").encode()
    assert xml.parse_delete(body).objects[0].key == key


@pytest.mark.parametrize("key", ODD_KEYS + FORBIDDEN_KEYS)
def test_url_encoding_round_trips_every_key(key: str) -> None:
    encoded = xml.url_encode(key)
    assert all(c.isalnum() or c in "%+/-_.~" for c in encoded)
    assert unquote_plus(encoded) == key


def test_forbidden_characters_without_url_encoding_are_references() -> None:
    """The choice AWS made too: references a strict parser refuses; clients list with encoding-type=url."""
    out = xml.delete_result([xml.Deleted("a\x01b")])
    assert b"<Key>a&#x1;b</Key>" in out
    with pytest.raises(ET.ParseError):
        ET.fromstring(out)


# ====================================================================== botocore
@functools.cache
def _model() -> Any:
    return botocore.session.get_session().get_service_model("s3")


@pytest.fixture
def s3_model() -> Any:
    return _model()


class _Raw:
    """Just enough of a urllib3 response for botocore's AWSResponse."""

    def __init__(self, body: bytes) -> None:
        self.body = body

    def stream(self, **_: Any) -> Any:
        yield self.body


def _boto_parse(model: Any, operation: str, body: bytes, status: int = 200) -> dict[str, Any]:
    shape = model.operation_model(operation).output_shape
    parsed: dict[str, Any] = botocore.parsers.RestXMLParser().parse(
        {"body": body, "headers": {}, "status_code": status}, shape)
    return parsed


def _v2(keys: list[str], url_encoded: bool, prefix: str = "", start_after: str | None = None) -> bytes:
    return xml.list_objects_v2_result(
        bucket="b", prefix=prefix, continuation_token="tok1", next_continuation_token="tok2",
        start_after=start_after, max_keys=1000, delimiter="/", url_encoded=url_encoded, is_truncated=True,
        contents=[xml.ObjectInfo(k, T, "abc", i, OW) for i, k in enumerate(keys)],
        common_prefixes=[prefix + "dir /"])


def test_botocore_parses_list_objects_v2(s3_model: Any) -> None:
    keys = ODD_KEYS + FORBIDDEN_KEYS
    parsed = _boto_parse(s3_model, "ListObjectsV2", _v2(keys, True, prefix="p é/", start_after="p é/+"))
    botocore.handlers.decode_list_object_v2(parsed, {"encoding_type_auto_set": True})
    assert [c["Key"] for c in parsed["Contents"]] == keys
    assert [c["Size"] for c in parsed["Contents"]] == list(range(len(keys)))
    c0 = parsed["Contents"][0]
    assert c0["ETag"] == '"abc"' and c0["StorageClass"] == "STANDARD"
    assert c0["LastModified"].timestamp() == T / 1000
    assert c0["Owner"] == {"ID": OW.id, "DisplayName": OW.display_name}
    assert parsed["Prefix"] == "p é/" and parsed["StartAfter"] == "p é/+" and parsed["Delimiter"] == "/"
    assert parsed["CommonPrefixes"] == [{"Prefix": "p é/dir /"}]
    assert parsed["KeyCount"] == len(keys) + 1 and parsed["MaxKeys"] == 1000 and parsed["IsTruncated"] is True
    assert parsed["ContinuationToken"] == "tok1" and parsed["NextContinuationToken"] == "tok2"
    assert parsed["EncodingType"] == "url"


def test_botocore_parses_list_objects_v2_without_encoding(s3_model: Any) -> None:
    parsed = _boto_parse(s3_model, "ListObjectsV2", _v2(ODD_KEYS, False))
    assert [c["Key"] for c in parsed["Contents"]] == ODD_KEYS
    assert "EncodingType" not in parsed


@settings(max_examples=150, deadline=None)
@given(keys=st.lists(st.text(st.characters(exclude_categories=("Cs",)), min_size=1, max_size=30), max_size=5))
def test_botocore_decodes_any_key_listed_with_encoding_type_url(keys: list[str]) -> None:
    parsed = _boto_parse(_model(), "ListObjectsV2", _v2(keys, True))
    botocore.handlers.decode_list_object_v2(parsed, {"encoding_type_auto_set": True})
    assert [c["Key"] for c in parsed.get("Contents", [])] == keys


def test_botocore_parses_list_objects_v1_with_markers(s3_model: Any) -> None:
    body = xml.list_objects_result(bucket="b", prefix="", marker="m a", next_marker="n+b", max_keys=3,
                                   delimiter="/", url_encoded=True, is_truncated=True,
                                   contents=[xml.ObjectInfo("k\x01 ", T, "e", 1, OW)], common_prefixes=["d /"])
    parsed = _boto_parse(s3_model, "ListObjects", body)
    botocore.handlers.decode_list_object(parsed, {"encoding_type_auto_set": True})
    assert parsed["Marker"] == "m a" and parsed["NextMarker"] == "n+b"
    assert parsed["Contents"][0]["Key"] == "k\x01 " and parsed["CommonPrefixes"] == [{"Prefix": "d /"}]


def test_botocore_parses_other_answers(s3_model: Any) -> None:
    p = _boto_parse(s3_model, "ListBuckets", xml.list_buckets_result(OW, [xml.BucketInfo("alpha", T)]))
    assert p["Buckets"][0]["Name"] == "alpha" and p["Buckets"][0]["CreationDate"].timestamp() == T / 1000
    assert p["Owner"]["ID"] == OW.id
    body = xml.location_constraint("garage")
    p = _boto_parse(s3_model, "GetBucketLocation", body)
    botocore.handlers.parse_get_bucket_location(p, AWSResponse("http://h/b", 200, {}, _Raw(body)))
    assert p["LocationConstraint"] == "garage"
    p = _boto_parse(s3_model, "CreateMultipartUpload", xml.initiate_multipart_upload_result("b", "k &", "u1"))
    assert (p["Bucket"], p["Key"], p["UploadId"]) == ("b", "k &", "u1")
    p = _boto_parse(s3_model, "CompleteMultipartUpload", xml.complete_multipart_upload_result(
        location="http://h/b/k", bucket="b", key="k", etag="abc-2", checksums={"ChecksumCRC32C": "x=="}))
    assert (p["Location"], p["ETag"], p["ChecksumCRC32C"]) == ("http://h/b/k", '"abc-2"', "x==")
    p = _boto_parse(s3_model, "ListParts", xml.list_parts_result(
        bucket="b", key="k", upload_id="u", part_number_marker=None, next_part_number_marker=1, max_parts=1,
        is_truncated=True, parts=[xml.PartInfo(1, T, "abc", 5)], owner=OW))
    assert p["Parts"][0]["PartNumber"] == 1 and p["Parts"][0]["ETag"] == '"abc"' and p["IsTruncated"] is True
    assert p["NextPartNumberMarker"] == 1 and p["Initiator"]["ID"] == OW.id
    p = _boto_parse(s3_model, "ListMultipartUploads", xml.list_multipart_uploads_result(
        bucket="b", prefix="", key_marker=None, upload_id_marker=None, next_key_marker=None,
        next_upload_id_marker=None, delimiter=None, max_uploads=1000, url_encoded=False, is_truncated=False,
        uploads=[xml.UploadInfo("k", "u", T, OW)], common_prefixes=[]))
    assert p["Uploads"][0]["UploadId"] == "u" and p["Uploads"][0]["Initiated"].timestamp() == T / 1000
    p = _boto_parse(s3_model, "CopyObject", xml.copy_object_result("abc", T))
    assert p["CopyObjectResult"]["ETag"] == '"abc"'
    p = _boto_parse(s3_model, "UploadPartCopy", xml.copy_part_result("abc", T))
    assert p["CopyPartResult"]["LastModified"].timestamp() == T / 1000
    p = _boto_parse(s3_model, "DeleteObjects", xml.delete_result(
        [xml.Deleted("a")], [xml.DeleteError("b", "AccessDenied", "Access Denied")]))
    assert p["Deleted"] == [{"Key": "a"}]
    assert p["Errors"] == [{"Key": "b", "Code": "AccessDenied", "Message": "Access Denied"}]
    p = _boto_parse(s3_model, "GetBucketAcl", xml.access_control_policy(OW, [xml.Grant(OW, "FULL_CONTROL")]))
    assert p["Grants"][0]["Permission"] == "FULL_CONTROL"
    assert p["Grants"][0]["Grantee"] == {"Type": "CanonicalUser", "ID": OW.id, "DisplayName": OW.display_name}
    p = _boto_parse(s3_model, "GetBucketVersioning", xml.versioning_configuration())
    assert "Status" not in p


def test_botocore_reads_our_error_bodies(s3_model: Any) -> None:
    err = s3err.NoSuchKey(key="a<b")
    p = _boto_parse(s3_model, "GetObject", s3err.error_xml(err, "/b/a<b", "req1"), status=404)
    assert p["Error"]["Code"] == "NoSuchKey" and p["Error"]["Message"] == "The specified key does not exist."
    assert p["Error"]["Key"] == "a<b" and p["Error"]["Resource"] == "/b/a<b"


def test_boto3_client_round_trip_through_router_and_xml() -> None:
    """A real botocore client lists through our router and our XML (its transport swapped out)."""
    from botocore.config import Config

    keys = ["a b", "a+b", "c\x01d", "é/✓"]
    seen: list[Any] = []

    def send(request: Any, **_: Any) -> AWSResponse:
        url = urlsplit(request.url)
        r = route(request.method, url.path, parse_qsl(url.query, keep_blank_values=True), url.netloc,
                  ".s3.localhost")
        seen.append(r)
        assert r.endpoint is Endpoint.ListObjectsV2 and r.bucket == "b"
        body = _v2(keys, r.params["encoding_type"] == "url", prefix=str(r.params["prefix"] or ""))
        return AWSResponse(request.url, 200, {}, _Raw(body))

    client = botocore.session.get_session().create_client(
        "s3", region_name="garage", endpoint_url="http://s3.localhost:3900", aws_access_key_id="GK1",
        aws_secret_access_key="s", config=Config(s3={"addressing_style": "virtual"}))
    client.meta.events.register("before-send.s3.ListObjectsV2", send)
    out = client.list_objects_v2(Bucket="b", Prefix="")
    assert seen[0].params["encoding_type"] == "url"  # botocore asks for it by itself
    assert [c["Key"] for c in out["Contents"]] == keys


# ====================================================================== errors
def test_every_error_class_is_named_after_its_code() -> None:
    assert len(s3err.ERRORS) >= 40
    for code, cls in s3err.ERRORS.items():
        assert cls.__name__ == code == cls.code
        assert 300 <= cls.status < 600
        assert cls.default_message
    expected = {"NoSuchBucket": 404, "NoSuchKey": 404, "NoSuchUpload": 404, "BucketAlreadyExists": 409,
                "BucketAlreadyOwnedByYou": 409, "BucketNotEmpty": 409, "InvalidBucketName": 400,
                "InvalidRange": 416, "PreconditionFailed": 412, "NotModified": 304, "InvalidPart": 400,
                "InvalidPartOrder": 400, "EntityTooSmall": 400, "EntityTooLarge": 400, "MalformedXML": 400,
                "InvalidArgument": 400, "AccessDenied": 403, "InvalidAccessKeyId": 403,
                "SignatureDoesNotMatch": 403, "RequestTimeTooSkewed": 403, "BadDigest": 400, "InvalidDigest": 400,
                "NotImplemented": 501, "ServiceUnavailable": 503, "InternalError": 500, "MethodNotAllowed": 405,
                "InvalidRequest": 400, "KeyTooLongError": 400, "MissingContentLength": 411,
                "IncompleteBody": 400, "InvalidObjectState": 403, "XAmzContentSHA256Mismatch": 400,
                "AuthorizationHeaderMalformed": 400, "InvalidLocationConstraint": 400, "TooManyBuckets": 400}
    assert {code: s3err.ERRORS[code].status for code in expected} == expected


def test_error_xml_golden() -> None:
    err = s3err.NoSuchBucket(bucket_name="my<bucket")
    assert s3err.error_xml(err, "/my<bucket", "4442587FB7D0A2F9", region="garage") == _doc(
        "<Error><Code>NoSuchBucket</Code><Message>The specified bucket does not exist</Message>"
        "<BucketName>my&lt;bucket</BucketName><Resource>/my&lt;bucket</Resource><Region>garage</Region>"
        "<RequestId>4442587FB7D0A2F9</RequestId></Error>")
    err2 = s3err.InvalidRequest("bad\x00byte\r", resource="/b/k")
    assert s3err.error_xml(err2) == _doc(
        "<Error><Code>InvalidRequest</Code><Message>bad\ufffdbyte&#13;</Message><Resource>/b/k</Resource></Error>")
    ET.fromstring(s3err.error_xml(err2))


def test_special_errors() -> None:
    rng = s3err.InvalidRange(actual_object_size=10, range_requested="bytes=20-30")
    assert rng.status == 416 and rng.headers() == {"Content-Range": "bytes */10"}
    assert b"<RangeRequested>bytes=20-30</RangeRequested><ActualObjectSize>10</ActualObjectSize>" in \
        s3err.error_xml(rng)
    nm = s3err.NotModified(etag='"abc"', last_modified="Mon, 12 Oct 2009 17:50:30 GMT")
    assert nm.status == 304 and s3err.error_xml(nm, "/b/k", "r") == b""
    assert nm.headers() == {"ETag": '"abc"', "Last-Modified": "Mon, 12 Oct 2009 17:50:30 GMT"}
    pf = s3err.PreconditionFailed(condition="If-Match")
    assert b"<Condition>If-Match</Condition>" in s3err.error_xml(pf)
    assert s3err.NotImplemented("PutBucketVersioning").status == 501


def test_from_exception_maps_lower_layers() -> None:
    from grange.model import helpers
    from grange.net.errors import NotConnected, RpcTimeout
    from grange.rpc.rpc_helper import QuorumError

    key = s3err.NoSuchKey()
    assert s3err.from_exception(key) is key
    for exc in (QuorumError(2, 1, 3, ["node down"]), RpcTimeout("t"), TimeoutError(), NotConnected("x")):
        mapped = s3err.from_exception(exc)
        assert isinstance(mapped, s3err.ServiceUnavailable) and mapped.status == 503
    assert isinstance(s3err.from_exception(helpers.NoSuchBucket("x")), s3err.NoSuchBucket)
    assert isinstance(s3err.from_exception(helpers.BucketNotEmpty("x")), s3err.BucketNotEmpty)
    assert isinstance(s3err.from_exception(helpers.InvalidBucketName("x")), s3err.InvalidBucketName)
    internal = s3err.from_exception(ZeroDivisionError("secret detail"))
    assert isinstance(internal, s3err.InternalError) and "secret" not in internal.message
