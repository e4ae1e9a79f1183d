"""S3 XML bodies: the answers the handled endpoints send, the requests they read (Garage `api/s3/xml.rs`).

Theory of operation
-------------------
**Writing.** Each answer is built as an `xml.etree.ElementTree` tree (`_el`) and written by
`_serialize`, not by ElementTree's own writer, because keys may hold characters that
ElementTree would write raw and a parser would then change or reject:

- ``\\r`` is written ``&#13;`` (a raw CR is turned into LF by every XML parser), the
  markup characters ``& < >`` as entities, everything else of XML 1.0's character set raw,
  in UTF-8;
- characters XML 1.0 forbids even as references (C0 controls other than TAB/LF/CR,
  U+FFFE/U+FFFF, lone surrogates) are written as numeric references (``&#x1;``), which is
  what AWS does: a strict parser refuses such a document, which is why SDKs list with
  ``encoding-type=url`` (boto3 always does). With it the key fields are URL-encoded
  (`url_encode`) and no such character reaches the XML.

`url_encode` is ``quote_plus(s, safe="/")``: space → ``+``, ``+`` → ``%2B``, ``/`` kept,
every other byte outside ``[A-Za-z0-9_.~-]`` percent-encoded from UTF-8. botocore
decodes with ``unquote_plus``, so every key comes back exactly (tested); ``/`` is kept
as AWS keeps it. Fields encoded follow AWS's documentation: ListObjects ``Delimiter,
Marker, NextMarker, Prefix, Key``; ListObjectsV2 ``Delimiter, Prefix, StartAfter, Key``
(not the opaque continuation tokens, which must be URL- and XML-safe by construction);
ListMultipartUploads ``Delimiter, KeyMarker, NextKeyMarker, Prefix, Key``; common
prefixes in all three.

Every answer has the XML declaration and the S3 namespace on its root element, compact
(no indentation), as AWS sends them. Times are milliseconds since the epoch, written
ISO 8601 with milliseconds (``2009-10-12T17:50:30.000Z``); ETags are given bare or quoted
and always written quoted.

**Reading.** `parse_xml` refuses a body over its size limit before parsing it, then parses
with defusedxml with DTDs, entity declarations and external references forbidden (so no
billion-laughs, no XXE, no network or file access); any failure is ``MalformedXML``.
Element names are accepted with the S3 namespace or without any namespace. Each request
parser checks the root element and the shape it needs and returns plain dataclasses;
checks that depend on stored state (part order, ETags) are the handlers'.
"""

from __future__ import annotations

import re
import xml.etree.ElementTree as ET
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from urllib.parse import quote_plus

import defusedxml.ElementTree as DET
from defusedxml import DefusedXmlException

from grange.api.s3.errors import MalformedXML

S3_NS = "http://s3.amazonaws.com/doc/2006-03-01/"
XSI_NS = "http://www.w3.org/2001/XMLSchema-instance"
XML_DECLARATION = '<?xml version="1.0" encoding="UTF-8"?>'

#: Request bodies (configurations, Delete with up to `MAX_DELETE_OBJECTS` keys of up to
#: 1 KiB) are refused above this before parsing.
MAX_XML_BODY = 1 << 20
#: CompleteMultipartUpload lists up to `MAX_PARTS` parts; one part with a quoted ETag and
#: two checksums, indented, is under 400 bytes, so 10,000 fit with room to spare.
MAX_COMPLETE_MULTIPART_BODY = 4 << 20
#: AWS: at most 1000 keys in one DeleteObjects request.
MAX_DELETE_OBJECTS = 1000
#: AWS: part numbers go from 1 to 10,000.
MAX_PARTS = 10_000

#: Checksum elements, in the order AWS writes them.
CHECKSUM_ELEMENTS: tuple[str, ...] = (
    "ChecksumCRC32", "ChecksumCRC32C", "ChecksumCRC64NVME", "ChecksumSHA1", "ChecksumSHA256",
)


# ====================================================================== writing
_NEEDS_ESCAPE = re.compile("[&<>\r\x00-\x08\x0b\x0c\x0e-\x1f\ud800-\udfff\ufffe\uffff]")
_NEEDS_ESCAPE_ATTR = re.compile('[&<>"\t\n\r\x00-\x08\x0b\x0c\x0e-\x1f\ud800-\udfff\ufffe\uffff]')
_ENTITIES = {"&": "&amp;", "<": "&lt;", ">": "&gt;", '"': "&quot;"}


def _ref(m: re.Match[str]) -> str:
    c = m.group()
    if c in _ENTITIES:
        return _ENTITIES[c]
    if c in "\t\n\r":
        return f"&#{ord(c)};"
    return f"&#x{ord(c):X};"


def escape_text(value: str) -> str:
    """`value` as XML character data; see the module docstring for what is referenced."""
    return _NEEDS_ESCAPE.sub(_ref, value)


def _escape_attr(value: str) -> str:
    return _NEEDS_ESCAPE_ATTR.sub(_ref, value)


def _serialize(el: ET.Element, out: list[str]) -> None:
    out.append("<" + el.tag)
    for name, value in el.attrib.items():
        out.append(f' {name}="{_escape_attr(value)}"')
    if el.text is None and len(el) == 0:
        out.append("/>")
        return
    out.append(">")
    if el.text:
        out.append(escape_text(el.text))
    for child in el:
        _serialize(child, out)
    out.append(f"</{el.tag}>")


def to_xml(root: ET.Element) -> bytes:
    """A document: the XML declaration and `root`, compact, UTF-8."""
    out = [XML_DECLARATION]
    _serialize(root, out)
    return "".join(out).encode("utf-8")


def _root(tag: str) -> ET.Element:
    return ET.Element(tag, {"xmlns": S3_NS})


def _el(parent: ET.Element, tag: str, text: str | int | bool | None = None) -> ET.Element:
    """Append a child; booleans are written ``true``/``false`` as S3 does."""
    child = ET.SubElement(parent, tag)
    if isinstance(text, bool):
        child.text = "true" if text else "false"
    elif text is not None:
        child.text = str(text)
    return child


def _opt(parent: ET.Element, tag: str, text: str | int | None) -> None:
    """Append a child only when there is a value."""
    if text is not None:
        _el(parent, tag, text)


def url_encode(value: str) -> str:
    """S3 ``encoding-type=url`` encoding: what botocore's ``unquote_plus`` turns back into `value`."""
    return quote_plus(value, safe="/", errors="surrogatepass")


def iso8601(ms: int) -> str:
    """Milliseconds since the epoch → ``2009-10-12T17:50:30.000Z``."""
    seconds, millis = divmod(ms, 1000)
    return datetime.fromtimestamp(seconds, UTC).strftime("%Y-%m-%dT%H:%M:%S") + f".{millis:03d}Z"


def quote_etag(etag: str) -> str:
    """``abc`` or ``"abc"`` → ``"abc"``."""
    return '"' + etag.strip('"') + '"'


def _checksums(parent: ET.Element, checksums: Mapping[str, str]) -> None:
    unknown = set(checksums) - set(CHECKSUM_ELEMENTS)
    assert not unknown, f"unknown checksum elements {unknown}"
    for name in CHECKSUM_ELEMENTS:
        _opt(parent, name, checksums.get(name))


# ---------------------------------------------------------------------- answer records
@dataclass(frozen=True, slots=True)
class Owner:
    """An Owner / Initiator / Grantee: the access key id and its name."""

    id: str
    display_name: str


@dataclass(frozen=True, slots=True)
class BucketInfo:
    name: str
    creation_date_ms: int


@dataclass(frozen=True, slots=True)
class ObjectInfo:
    """One ``Contents`` entry of a listing; `owner` is written when set (fetch-owner)."""

    key: str
    last_modified_ms: int
    etag: str
    size: int
    owner: Owner | None = None
    storage_class: str = "STANDARD"


@dataclass(frozen=True, slots=True)
class UploadInfo:
    """One ``Upload`` of ListMultipartUploads."""

    key: str
    upload_id: str
    initiated_ms: int
    owner: Owner
    storage_class: str = "STANDARD"


@dataclass(frozen=True, slots=True)
class PartInfo:
    """One ``Part`` of ListParts."""

    part_number: int
    last_modified_ms: int
    etag: str
    size: int
    checksums: Mapping[str, str] = field(default_factory=dict)


@dataclass(frozen=True, slots=True)
class Deleted:
    """A ``Deleted`` entry of DeleteResult."""

    key: str
    version_id: str | None = None
    delete_marker: bool | None = None
    delete_marker_version_id: str | None = None


@dataclass(frozen=True, slots=True)
class DeleteError:
    """An ``Error`` entry of DeleteResult (`code` is an AWS error code)."""

    key: str
    code: str
    message: str
    version_id: str | None = None


@dataclass(frozen=True, slots=True)
class Grant:
    grantee: Owner
    permission: str  # FULL_CONTROL, READ, WRITE, READ_ACP, WRITE_ACP


# ---------------------------------------------------------------------- answers
def _owner(parent: ET.Element, tag: str, owner: Owner) -> None:
    el = _el(parent, tag)
    _el(el, "ID", owner.id)
    _el(el, "DisplayName", owner.display_name)


def list_buckets_result(owner: Owner, buckets: Iterable[BucketInfo], *, prefix: str | None = None,
                        continuation_token: str | None = None) -> bytes:
    """ListBuckets: ``ListAllMyBucketsResult`` (Owner, then Buckets/Bucket Name CreationDate)."""
    root = _root("ListAllMyBucketsResult")
    _owner(root, "Owner", owner)
    bl = _el(root, "Buckets")
    for b in buckets:
        be = _el(bl, "Bucket")
        _el(be, "Name", b.name)
        _el(be, "CreationDate", iso8601(b.creation_date_ms))
    _opt(root, "Prefix", prefix)
    _opt(root, "ContinuationToken", continuation_token)
    return to_xml(root)


def location_constraint(region: str) -> bytes:
    """GetBucketLocation: the configured ``s3_region`` (Garage; AWS writes nothing for us-east-1)."""
    root = _root("LocationConstraint")
    root.text = region
    return to_xml(root)


def versioning_configuration(status: str | None = None) -> bytes:
    """GetBucketVersioning: empty (never enabled) unless `status` is given."""
    root = _root("VersioningConfiguration")
    _opt(root, "Status", status)
    return to_xml(root)


def _contents(root: ET.Element, contents: Iterable[ObjectInfo], common_prefixes: Iterable[str],
              enc: bool) -> None:
    for o in contents:
        c = _el(root, "Contents")
        _el(c, "Key", url_encode(o.key) if enc else o.key)
        _el(c, "LastModified", iso8601(o.last_modified_ms))
        _el(c, "ETag", quote_etag(o.etag))
        _el(c, "Size", o.size)
        _el(c, "StorageClass", o.storage_class)
        if o.owner is not None:
            _owner(c, "Owner", o.owner)
    for p in common_prefixes:
        _el(_el(root, "CommonPrefixes"), "Prefix", url_encode(p) if enc else p)


def list_objects_result(*, bucket: str, prefix: str, marker: str | None, next_marker: str | None,
                        max_keys: int, delimiter: str | None, url_encoded: bool, is_truncated: bool,
                        contents: Iterable[ObjectInfo], common_prefixes: Iterable[str]) -> bytes:
    """ListObjects (v1): ``ListBucketResult`` with Marker / NextMarker."""
    def e(s: str) -> str:
        return url_encode(s) if url_encoded else s

    root = _root("ListBucketResult")
    _el(root, "Name", bucket)
    _el(root, "Prefix", e(prefix))
    _el(root, "Marker", e(marker or ""))
    if next_marker is not None:
        _el(root, "NextMarker", e(next_marker))
    _el(root, "MaxKeys", max_keys)
    if delimiter is not None:
        _el(root, "Delimiter", e(delimiter))
    if url_encoded:
        _el(root, "EncodingType", "url")
    _el(root, "IsTruncated", is_truncated)
    _contents(root, contents, common_prefixes, url_encoded)
    return to_xml(root)


def list_objects_v2_result(*, bucket: str, prefix: str, continuation_token: str | None,
                           next_continuation_token: str | None, start_after: str | None, max_keys: int,
                           delimiter: str | None, url_encoded: bool, is_truncated: bool,
                           contents: Iterable[ObjectInfo], common_prefixes: Iterable[str]) -> bytes:
    """ListObjectsV2: ``ListBucketResult`` with KeyCount and continuation tokens.

    Tokens are written as given (never URL-encoded: clients do not decode them).
    """
    def e(s: str) -> str:
        return url_encode(s) if url_encoded else s

    contents = list(contents)
    common_prefixes = list(common_prefixes)
    root = _root("ListBucketResult")
    _el(root, "Name", bucket)
    _el(root, "Prefix", e(prefix))
    if start_after is not None:
        _el(root, "StartAfter", e(start_after))
    _opt(root, "ContinuationToken", continuation_token)
    _opt(root, "NextContinuationToken", next_continuation_token)
    _el(root, "KeyCount", len(contents) + len(common_prefixes))
    _el(root, "MaxKeys", max_keys)
    if delimiter is not None:
        _el(root, "Delimiter", e(delimiter))
    if url_encoded:
        _el(root, "EncodingType", "url")
    _el(root, "IsTruncated", is_truncated)
    _contents(root, contents, common_prefixes, url_encoded)
    return to_xml(root)


def initiate_multipart_upload_result(bucket: str, key: str, upload_id: str) -> bytes:
    """CreateMultipartUpload."""
    root = _root("InitiateMultipartUploadResult")
    _el(root, "Bucket", bucket)
    _el(root, "Key", key)
    _el(root, "UploadId", upload_id)
    return to_xml(root)


def complete_multipart_upload_result(*, location: str | None, bucket: str, key: str, etag: str,
                                     checksums: Mapping[str, str] | None = None,
                                     checksum_type: str | None = None) -> bytes:
    """CompleteMultipartUpload (the final ETag is ``"<md5 of part md5s>-<n>"``)."""
    root = _root("CompleteMultipartUploadResult")
    _opt(root, "Location", location)
    _el(root, "Bucket", bucket)
    _el(root, "Key", key)
    _el(root, "ETag", quote_etag(etag))
    _checksums(root, checksums or {})
    _opt(root, "ChecksumType", checksum_type)
    return to_xml(root)


def list_multipart_uploads_result(*, bucket: str, prefix: str, key_marker: str | None,
                                  upload_id_marker: str | None, next_key_marker: str | None,
                                  next_upload_id_marker: str | None, delimiter: str | None,
                                  max_uploads: int, url_encoded: bool, is_truncated: bool,
                                  uploads: Iterable[UploadInfo], common_prefixes: Iterable[str]) -> bytes:
    """ListMultipartUploads."""
    def e(s: str) -> str:
        return url_encode(s) if url_encoded else s

    root = _root("ListMultipartUploadsResult")
    _el(root, "Bucket", bucket)
    _el(root, "KeyMarker", e(key_marker or ""))
    _el(root, "UploadIdMarker", upload_id_marker or "")
    if next_key_marker is not None:
        _el(root, "NextKeyMarker", e(next_key_marker))
    _opt(root, "NextUploadIdMarker", next_upload_id_marker)
    _el(root, "Prefix", e(prefix))
    if delimiter is not None:
        _el(root, "Delimiter", e(delimiter))
    _el(root, "MaxUploads", max_uploads)
    if url_encoded:
        _el(root, "EncodingType", "url")
    _el(root, "IsTruncated", is_truncated)
    for u in uploads:
        ue = _el(root, "Upload")
        _el(ue, "Key", e(u.key))
        _el(ue, "UploadId", u.upload_id)
        _owner(ue, "Initiator", u.owner)
        _owner(ue, "Owner", u.owner)
        _el(ue, "StorageClass", u.storage_class)
        _el(ue, "Initiated", iso8601(u.initiated_ms))
    for p in common_prefixes:
        _el(_el(root, "CommonPrefixes"), "Prefix", e(p))
    return to_xml(root)


def list_parts_result(*, bucket: str, key: str, upload_id: str, part_number_marker: int | None,
                      next_part_number_marker: int | None, max_parts: int, is_truncated: bool,
                      parts: Iterable[PartInfo], owner: Owner, storage_class: str = "STANDARD",
                      checksum_algorithm: str | None = None, checksum_type: str | None = None) -> bytes:
    """ListParts."""
    root = _root("ListPartsResult")
    _el(root, "Bucket", bucket)
    _el(root, "Key", key)
    _el(root, "UploadId", upload_id)
    _owner(root, "Initiator", owner)
    _owner(root, "Owner", owner)
    _el(root, "StorageClass", storage_class)
    _el(root, "PartNumberMarker", part_number_marker or 0)
    _opt(root, "NextPartNumberMarker", next_part_number_marker)
    _el(root, "MaxParts", max_parts)
    _el(root, "IsTruncated", is_truncated)
    _opt(root, "ChecksumAlgorithm", checksum_algorithm)
    _opt(root, "ChecksumType", checksum_type)
    for p in parts:
        pe = _el(root, "Part")
        _el(pe, "PartNumber", p.part_number)
        _el(pe, "LastModified", iso8601(p.last_modified_ms))
        _el(pe, "ETag", quote_etag(p.etag))
        _el(pe, "Size", p.size)
        _checksums(pe, p.checksums)
    return to_xml(root)


def _copy_result(tag: str, etag: str, last_modified_ms: int, checksums: Mapping[str, str] | None) -> bytes:
    root = _root(tag)
    _el(root, "ETag", quote_etag(etag))
    _el(root, "LastModified", iso8601(last_modified_ms))
    _checksums(root, checksums or {})
    return to_xml(root)


def copy_object_result(etag: str, last_modified_ms: int, checksums: Mapping[str, str] | None = None) -> bytes:
    """CopyObject."""
    return _copy_result("CopyObjectResult", etag, last_modified_ms, checksums)


def copy_part_result(etag: str, last_modified_ms: int, checksums: Mapping[str, str] | None = None) -> bytes:
    """UploadPartCopy."""
    return _copy_result("CopyPartResult", etag, last_modified_ms, checksums)


def delete_result(deleted: Iterable[Deleted], errors: Iterable[DeleteError] = ()) -> bytes:
    """DeleteObjects (in quiet mode, the caller passes no `deleted`)."""
    root = _root("DeleteResult")
    for d in deleted:
        de = _el(root, "Deleted")
        _el(de, "Key", d.key)
        _opt(de, "VersionId", d.version_id)
        if d.delete_marker is not None:
            _el(de, "DeleteMarker", d.delete_marker)
        _opt(de, "DeleteMarkerVersionId", d.delete_marker_version_id)
    for err in errors:
        ee = _el(root, "Error")
        _el(ee, "Key", err.key)
        _opt(ee, "VersionId", err.version_id)
        _el(ee, "Code", err.code)
        _el(ee, "Message", err.message)
    return to_xml(root)


def access_control_policy(owner: Owner, grants: Iterable[Grant]) -> bytes:
    """GetBucketAcl (Garage's stub: grants built from the calling key's flags)."""
    root = ET.Element("AccessControlPolicy", {"xmlns": S3_NS, "xmlns:xsi": XSI_NS})
    _owner(root, "Owner", owner)
    acl = _el(root, "AccessControlList")
    for g in grants:
        ge = _el(acl, "Grant")
        grantee = ET.SubElement(ge, "Grantee", {"xsi:type": "CanonicalUser"})
        _el(grantee, "ID", g.grantee.id)
        _el(grantee, "DisplayName", g.grantee.display_name)
        _el(ge, "Permission", g.permission)
    return to_xml(root)


def post_response(*, location: str, bucket: str, key: str, etag: str) -> bytes:
    """PostObject with ``success_action_status=201``."""
    root = _root("PostResponse")
    _el(root, "Location", location)
    _el(root, "Bucket", bucket)
    _el(root, "Key", key)
    _el(root, "ETag", quote_etag(etag))
    return to_xml(root)


# ====================================================================== reading
def parse_xml(body: bytes, *, max_size: int = MAX_XML_BODY) -> ET.Element:
    """Parse an untrusted request body; any problem → ``MalformedXML``, never anything else.

    The size is checked before parsing; DTDs, entity declarations and external references
    are refused by defusedxml before they can expand or fetch anything.
    """
    if len(body) > max_size:
        raise MalformedXML(f"The XML you provided was larger than the maximum of {max_size} bytes")
    try:
        return DET.fromstring(body, forbid_dtd=True, forbid_entities=True, forbid_external=True)
    except DefusedXmlException as e:
        raise MalformedXML(f"The XML you provided is not allowed: {type(e).__name__}") from e
    except (ET.ParseError, ValueError, LookupError, UnicodeError) as e:
        # ParseError for syntax; ValueError / LookupError / UnicodeError for odd encodings.
        raise MalformedXML() from e


def local_name(tag: str) -> str:
    """An element's name without the S3 namespace; other namespaces are kept (and so never match)."""
    prefix = "{" + S3_NS + "}"
    return tag[len(prefix):] if tag.startswith(prefix) else tag


def _expect_root(root: ET.Element, name: str) -> None:
    if local_name(root.tag) != name:
        raise MalformedXML(f"Expected a {name} element, got {local_name(root.tag)!r}")


def _children(el: ET.Element, name: str) -> list[ET.Element]:
    return [c for c in el if local_name(c.tag) == name]


def _child(el: ET.Element, name: str, *, required: bool = False) -> ET.Element | None:
    found = _children(el, name)
    if len(found) > 1:
        raise MalformedXML(f"More than one {name} element")
    if not found:
        if required:
            raise MalformedXML(f"Missing {name} element")
        return None
    if len(found[0]):
        raise MalformedXML(f"Element {name} must hold text only")
    return found[0]


def _text_of(el: ET.Element, name: str, *, required: bool = False, strip: bool = True) -> str | None:
    child = _child(el, name, required=required)
    if child is None:
        return None
    text = child.text or ""
    return text.strip() if strip else text


@dataclass(frozen=True, slots=True)
class ObjectIdentifier:
    key: str
    version_id: str | None = None


@dataclass(frozen=True, slots=True)
class DeleteRequest:
    """A DeleteObjects body: the keys in request order, and whether to answer quietly."""

    objects: list[ObjectIdentifier]
    quiet: bool


@dataclass(frozen=True, slots=True)
class CompletedPart:
    """One ``Part`` of a CompleteMultipartUpload body; `etag` without quotes."""

    part_number: int
    etag: str
    checksums: dict[str, str] = field(default_factory=dict)


def parse_create_bucket_configuration(body: bytes) -> str | None:
    """CreateBucket's optional body → its ``LocationConstraint`` (None: no body or no constraint)."""
    if not body.strip():
        return None
    root = parse_xml(body)
    _expect_root(root, "CreateBucketConfiguration")
    return _text_of(root, "LocationConstraint")


def parse_delete(body: bytes) -> DeleteRequest:
    """DeleteObjects body: 1 to `MAX_DELETE_OBJECTS` ``Object``s, each with a ``Key``; ``Quiet``.

    Keys are taken verbatim (spaces kept); ``VersionId`` is read (the handler ignores it).
    An empty ``<Key/>`` gives an empty key, left to the handler to refuse per object.
    """
    root = parse_xml(body)
    _expect_root(root, "Delete")
    objects = []
    for obj in _children(root, "Object"):
        key = _text_of(obj, "Key", required=True, strip=False)
        assert key is not None
        objects.append(ObjectIdentifier(key, _text_of(obj, "VersionId") or None))
    if not objects:
        raise MalformedXML("A Delete request must list at least one Object")
    if len(objects) > MAX_DELETE_OBJECTS:
        raise MalformedXML(f"A Delete request lists at most {MAX_DELETE_OBJECTS} objects")
    quiet_text = (_text_of(root, "Quiet") or "false").lower()
    if quiet_text not in ("true", "false"):
        raise MalformedXML(f"Quiet must be true or false, not {quiet_text!r}")
    return DeleteRequest(objects, quiet_text == "true")


def parse_complete_multipart_upload(body: bytes) -> list[CompletedPart]:
    """CompleteMultipartUpload body: 1 to `MAX_PARTS` ``Part``s with PartNumber and ETag.

    Parts are returned in request order (order and duplicates are the handler's to judge:
    ``InvalidPartOrder``); ETags lose their quotes; checksum elements are kept by name.
    """
    root = parse_xml(body, max_size=MAX_COMPLETE_MULTIPART_BODY)
    _expect_root(root, "CompleteMultipartUpload")
    parts = []
    for pe in _children(root, "Part"):
        number_text = _text_of(pe, "PartNumber", required=True) or ""
        if not number_text.isascii() or not number_text.isdigit() or len(number_text) > 10:
            raise MalformedXML(f"PartNumber must be an integer, not {number_text!r}")
        etag = (_text_of(pe, "ETag", required=True) or "").strip('"')
        checksums = {name: text for name in CHECKSUM_ELEMENTS if (text := _text_of(pe, name))}
        parts.append(CompletedPart(int(number_text), etag, checksums))
    if not parts:
        raise MalformedXML("A CompleteMultipartUpload request must list at least one Part")
    if len(parts) > MAX_PARTS:
        raise MalformedXML(f"A CompleteMultipartUpload request lists at most {MAX_PARTS} parts")
    return parts
