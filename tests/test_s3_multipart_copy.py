"""Multipart uploads, UploadPartCopy and CopyObject through boto3 against one real node.

One single-node cluster (rf=1) serves the module; each test uses its own keys. Parts that
are not last are 5 MiB (the server's real minimum: these are process tests, nothing is
patched); with the default 1 MiB block size a part spans several blocks, so ranges and
copies cut blocks at their edges. The last test drives `block_pieces` in process with a
fake block store to check which pieces are referenced rather than stored again.
"""

from __future__ import annotations

import base64
import hashlib
import os
from typing import Any

import botocore.exceptions
import pytest

from grange.model.s3 import multipart as mpu
from grange.model.s3.mpu_table import MultipartUpload
from grange.model.s3.object_table import Object, ObjectVersion, Uploading
from grange.model.s3.version_table import Version, VersionBlock
from grange.table.crdt import Bool, CrdtMap
from tests.cluster import Cluster, S3Access, wait_until

MIB = 1024 * 1024
BUCKET = "mpu-copy"


@pytest.fixture(scope="module")
def s3(tmp_path_factory: pytest.TempPathFactory) -> Any:
    c = Cluster(tmp_path_factory.mktemp("mpu"), 1, rf=1)
    try:
        c.start()
        c.assign_and_apply(["dc1"])
        node = c.nodes[0]
        wait_until(lambda: node.api("GetClusterLayout")["version"] == 1, 20, "layout 1")
        access = S3Access(node, bucket=BUCKET)
        node.api("CreateBucket", {"globalAlias": "not-mine"})  # exists, but the key has no permission on it
        yield access.client(node)
        errors = [line for line in node.log_path.read_text().splitlines() if " ERROR " in line]
        assert not errors, "the node logged errors:\n" + "\n".join(errors)
    finally:
        c.stop()


def error_code(exc: pytest.ExceptionInfo[botocore.exceptions.ClientError]) -> str:
    return str(exc.value.response["Error"]["Code"])


def status(exc: pytest.ExceptionInfo[botocore.exceptions.ClientError]) -> int:
    return int(exc.value.response["ResponseMetadata"]["HTTPStatusCode"])


def md5_hex(data: bytes) -> str:
    return hashlib.md5(data).hexdigest()


def multipart_etag(parts: list[bytes]) -> str:
    return '"' + hashlib.md5(b"".join(hashlib.md5(p).digest() for p in parts)).hexdigest() + f'-{len(parts)}"'


def upload(s3: Any, key: str, parts: dict[int, bytes], order: list[int] | None = None) -> tuple[str, dict[int, str]]:
    """Create an upload and send `parts` in `order`; (upload id, part number → ETag)."""
    upload_id = s3.create_multipart_upload(Bucket=BUCKET, Key=key)["UploadId"]
    etags = {}
    for n in order or sorted(parts):
        etags[n] = s3.upload_part(Bucket=BUCKET, Key=key, UploadId=upload_id, PartNumber=n, Body=parts[n])["ETag"]
    return upload_id, etags


def complete(s3: Any, key: str, upload_id: str, etags: dict[int, str], numbers: list[int] | None = None) -> Any:
    listed = [{"PartNumber": n, "ETag": etags[n]} for n in (numbers or sorted(etags))]
    return s3.complete_multipart_upload(Bucket=BUCKET, Key=key, UploadId=upload_id,
                                        MultipartUpload={"Parts": listed})


def read(s3: Any, key: str, **kw: Any) -> bytes:
    return s3.get_object(Bucket=BUCKET, Key=key, **kw)["Body"].read()  # type: ignore[no-any-return]


# ---------------------------------------------------------------------- multipart
@pytest.mark.slow
def test_parts_sent_out_of_order_and_one_resent_complete_into_the_listed_bytes(s3: Any) -> None:
    p1_old, p1, p2, p3 = os.urandom(5 * MIB), os.urandom(5 * MIB), os.urandom(5 * MIB), os.urandom(MIB + 7)
    upload_id, etags = upload(s3, "big/obj", {1: p1_old, 2: p2, 3: p3}, order=[2, 3, 1])
    etags[1] = s3.upload_part(Bucket=BUCKET, Key="big/obj", UploadId=upload_id, PartNumber=1, Body=p1)["ETag"]
    assert etags == {1: f'"{md5_hex(p1)}"', 2: f'"{md5_hex(p2)}"', 3: f'"{md5_hex(p3)}"'}

    listed = s3.list_parts(Bucket=BUCKET, Key="big/obj", UploadId=upload_id)
    assert [(p["PartNumber"], p["ETag"], p["Size"]) for p in listed["Parts"]] == [
        (1, etags[1], len(p1)), (2, etags[2], len(p2)), (3, etags[3], len(p3))]  # the resent part 1 only
    assert not listed["IsTruncated"]
    page = s3.list_parts(Bucket=BUCKET, Key="big/obj", UploadId=upload_id, MaxParts=2)
    assert [p["PartNumber"] for p in page["Parts"]] == [1, 2] and page["IsTruncated"]
    assert page["NextPartNumberMarker"] == 2
    page = s3.list_parts(Bucket=BUCKET, Key="big/obj", UploadId=upload_id, MaxParts=2, PartNumberMarker=2)
    assert [p["PartNumber"] for p in page["Parts"]] == [3] and not page["IsTruncated"]

    with pytest.raises(botocore.exceptions.ClientError):
        s3.head_object(Bucket=BUCKET, Key="big/obj")  # not visible before completion
    done = complete(s3, "big/obj", upload_id, etags)
    assert done["ETag"] == multipart_etag([p1, p2, p3])
    assert read(s3, "big/obj") == p1 + p2 + p3
    head = s3.head_object(Bucket=BUCKET, Key="big/obj")
    assert head["ContentLength"] == len(p1 + p2 + p3) and head["ETag"] == done["ETag"]

    got = s3.get_object(Bucket=BUCKET, Key="big/obj", PartNumber=2)
    assert got["Body"].read() == p2 and got["PartsCount"] == 3
    assert got["ContentRange"] == f"bytes {len(p1)}-{len(p1 + p2) - 1}/{len(p1 + p2 + p3)}"
    assert read(s3, "big/obj", Range=f"bytes={5 * MIB - 10}-{5 * MIB + 9}") == (p1 + p2)[5 * MIB - 10: 5 * MIB + 10]
    # Completed: the upload is gone.
    assert all(u["UploadId"] != upload_id for u in s3.list_multipart_uploads(Bucket=BUCKET).get("Uploads", []))
    with pytest.raises(botocore.exceptions.ClientError) as e:
        s3.list_parts(Bucket=BUCKET, Key="big/obj", UploadId=upload_id)
    assert error_code(e) == "NoSuchUpload"


@pytest.mark.slow
def test_completion_refuses_bad_part_lists_and_keeps_the_upload(s3: Any) -> None:
    small = {1: os.urandom(MIB), 2: os.urandom(MIB)}
    upload_id, etags = upload(s3, "bad-lists", small)
    cases = [
        ([{"PartNumber": 2, "ETag": etags[2]}, {"PartNumber": 1, "ETag": etags[1]}], "InvalidPartOrder"),
        ([{"PartNumber": 1, "ETag": etags[1]}, {"PartNumber": 1, "ETag": etags[1]}], "InvalidPartOrder"),
        ([{"PartNumber": 1, "ETag": '"' + "0" * 32 + '"'}], "InvalidPart"),
        ([{"PartNumber": 1, "ETag": etags[1]}, {"PartNumber": 3, "ETag": etags[2]}], "InvalidPart"),
        ([{"PartNumber": 1, "ETag": etags[1]}, {"PartNumber": 2, "ETag": etags[2]}], "EntityTooSmall"),
    ]
    for parts, code in cases:
        with pytest.raises(botocore.exceptions.ClientError) as e:
            s3.complete_multipart_upload(Bucket=BUCKET, Key="bad-lists", UploadId=upload_id,
                                         MultipartUpload={"Parts": parts})
        assert (error_code(e), status(e)) == (code, 400), parts
    with pytest.raises(botocore.exceptions.ClientError) as e:
        s3.upload_part(Bucket=BUCKET, Key="bad-lists", UploadId=upload_id, PartNumber=10001, Body=b"x")
    assert error_code(e) == "InvalidArgument"
    # A single small part is fine (the last part has no minimum); unquoted ETags are accepted.
    done = s3.complete_multipart_upload(Bucket=BUCKET, Key="bad-lists", UploadId=upload_id,
                                        MultipartUpload={"Parts": [{"PartNumber": 2,
                                                                    "ETag": etags[2].strip('"')}]})
    assert done["ETag"] == multipart_etag([small[2]])
    assert read(s3, "bad-lists") == small[2]


@pytest.mark.slow
def test_abort_forgets_the_upload_and_shows_no_object(s3: Any) -> None:
    upload_id, _ = upload(s3, "aborted", {1: os.urandom(2 * MIB)})
    s3.abort_multipart_upload(Bucket=BUCKET, Key="aborted", UploadId=upload_id)
    for call in (
        lambda: s3.upload_part(Bucket=BUCKET, Key="aborted", UploadId=upload_id, PartNumber=2, Body=b"x"),
        lambda: s3.list_parts(Bucket=BUCKET, Key="aborted", UploadId=upload_id),
        lambda: s3.abort_multipart_upload(Bucket=BUCKET, Key="aborted", UploadId=upload_id),
        lambda: s3.complete_multipart_upload(Bucket=BUCKET, Key="aborted", UploadId=upload_id,
                                             MultipartUpload={"Parts": [{"PartNumber": 1, "ETag": "x"}]}),
    ):
        with pytest.raises(botocore.exceptions.ClientError) as e:
            call()
        assert (error_code(e), status(e)) == ("NoSuchUpload", 404), (e.value.operation_name, e.value.response)
    with pytest.raises(botocore.exceptions.ClientError) as e:
        s3.head_object(Bucket=BUCKET, Key="aborted")
    assert status(e) == 404
    assert "Contents" not in s3.list_objects_v2(Bucket=BUCKET, Prefix="aborted")
    assert "Uploads" not in s3.list_multipart_uploads(Bucket=BUCKET, Prefix="aborted")
    # An upload id that never existed, or is not hex.
    for bogus in ("00" * 32, "nothex"):
        with pytest.raises(botocore.exceptions.ClientError) as e:
            s3.upload_part(Bucket=BUCKET, Key="aborted", UploadId=bogus, PartNumber=1, Body=b"x")
        assert error_code(e) == "NoSuchUpload"


@pytest.mark.slow
def test_a_part_whose_body_fails_its_digest_is_not_listed_and_can_be_resent(s3: Any) -> None:
    data = os.urandom(MIB + 1)
    upload_id = s3.create_multipart_upload(Bucket=BUCKET, Key="digest")["UploadId"]
    wrong = base64.b64encode(hashlib.md5(b"other").digest()).decode()
    with pytest.raises(botocore.exceptions.ClientError) as e:
        s3.upload_part(Bucket=BUCKET, Key="digest", UploadId=upload_id, PartNumber=1, Body=data, ContentMD5=wrong)
    assert error_code(e) == "BadDigest"
    assert "Parts" not in s3.list_parts(Bucket=BUCKET, Key="digest", UploadId=upload_id)
    etag = s3.upload_part(Bucket=BUCKET, Key="digest", UploadId=upload_id, PartNumber=1, Body=data)["ETag"]
    complete(s3, "digest", upload_id, {1: etag})
    assert read(s3, "digest") == data


@pytest.mark.slow
def test_list_multipart_uploads_by_prefix_delimiter_and_pages(s3: Any) -> None:
    ids = {k: s3.create_multipart_upload(Bucket=BUCKET, Key=k)["UploadId"]
           for k in ("lmu/a", "lmu/b", "lmu/dir/x", "lmu/dir/y", "lmu/z")}
    second_b = s3.create_multipart_upload(Bucket=BUCKET, Key="lmu/b")["UploadId"]
    b_ids = sorted([ids["lmu/b"], second_b])
    everything = s3.list_multipart_uploads(Bucket=BUCKET, Prefix="lmu/")
    assert [(u["Key"], u["UploadId"]) for u in everything["Uploads"]] == [
        ("lmu/a", ids["lmu/a"]), ("lmu/b", b_ids[0]), ("lmu/b", b_ids[1]), ("lmu/dir/x", ids["lmu/dir/x"]),
        ("lmu/dir/y", ids["lmu/dir/y"]), ("lmu/z", ids["lmu/z"])]
    assert not everything["IsTruncated"]
    assert everything["Uploads"][0]["Initiator"]["ID"] == everything["Uploads"][0]["Owner"]["ID"]

    folded = s3.list_multipart_uploads(Bucket=BUCKET, Prefix="lmu/", Delimiter="/")
    assert [u["Key"] for u in folded["Uploads"]] == ["lmu/a", "lmu/b", "lmu/b", "lmu/z"]
    assert [p["Prefix"] for p in folded["CommonPrefixes"]] == ["lmu/dir/"]

    # Pages of two, following the markers, give the same sequence (prefixes included).
    seen: list[str] = []
    kw: dict[str, str] = {}
    for _ in range(10):
        page = s3.list_multipart_uploads(Bucket=BUCKET, Prefix="lmu/", Delimiter="/", MaxUploads=2, **kw)
        entries = [(u["Key"], u["UploadId"]) for u in page.get("Uploads", [])]
        entries += [(p["Prefix"], "") for p in page.get("CommonPrefixes", [])]
        assert len(entries) <= 2
        seen += [f"{k} {u}" for k, u in sorted(entries)]
        if not page["IsTruncated"]:
            break
        kw = {"KeyMarker": page["NextKeyMarker"]}
        if page.get("NextUploadIdMarker"):
            kw["UploadIdMarker"] = page["NextUploadIdMarker"]
    assert seen == [f"lmu/a {ids['lmu/a']}", f"lmu/b {b_ids[0]}", f"lmu/b {b_ids[1]}", "lmu/dir/ ",
                    f"lmu/z {ids['lmu/z']}"]
    for key, upload_id in [*ids.items(), ("lmu/b", second_b)]:
        s3.abort_multipart_upload(Bucket=BUCKET, Key=key, UploadId=upload_id)
    assert "Uploads" not in s3.list_multipart_uploads(Bucket=BUCKET, Prefix="lmu/")


# ---------------------------------------------------------------------- UploadPartCopy
@pytest.mark.slow
def test_upload_part_copy_takes_ranges_of_other_objects(s3: Any) -> None:
    source = os.urandom(7 * MIB + 123)
    s3.put_object(Bucket=BUCKET, Key="src/big", Body=source)
    s3.put_object(Bucket=BUCKET, Key="src/small", Body=b"tiny inline source")
    upload_id = s3.create_multipart_upload(Bucket=BUCKET, Key="assembled")["UploadId"]
    lo, hi = MIB // 2 + 3, MIB // 2 + 3 + 5 * MIB + 17  # cuts blocks at both ends
    r1 = s3.upload_part_copy(Bucket=BUCKET, Key="assembled", UploadId=upload_id, PartNumber=1,
                             CopySource={"Bucket": BUCKET, "Key": "src/big"}, CopySourceRange=f"bytes={lo}-{hi - 1}")
    r2 = s3.upload_part_copy(Bucket=BUCKET, Key="assembled", UploadId=upload_id, PartNumber=2,
                             CopySource=f"/{BUCKET}/src/big")
    r3 = s3.upload_part_copy(Bucket=BUCKET, Key="assembled", UploadId=upload_id, PartNumber=3,
                             CopySource={"Bucket": BUCKET, "Key": "src/small"}, CopySourceRange="bytes=5-10")
    expected = [source[lo:hi], source, b"tiny inline source"[5:11]]
    etags = {n: r["CopyPartResult"]["ETag"] for n, r in ((1, r1), (2, r2), (3, r3))}
    assert etags == {n + 1: f'"{md5_hex(p)}"' for n, p in enumerate(expected)}
    with pytest.raises(botocore.exceptions.ClientError) as e:
        s3.upload_part_copy(Bucket=BUCKET, Key="assembled", UploadId=upload_id, PartNumber=4,
                            CopySource={"Bucket": BUCKET, "Key": "src/big"}, CopySourceRange=f"bytes=0-{len(source)}")
    assert status(e) == 416
    with pytest.raises(botocore.exceptions.ClientError) as e:
        s3.upload_part_copy(Bucket=BUCKET, Key="assembled", UploadId=upload_id, PartNumber=4,
                            CopySource={"Bucket": BUCKET, "Key": "src/big"}, CopySourceIfMatch='"nope"')
    assert (error_code(e), status(e)) == ("PreconditionFailed", 412)
    done = complete(s3, "assembled", upload_id, etags)
    assert done["ETag"] == multipart_etag(expected)
    assert read(s3, "assembled") == b"".join(expected)
    # The source is untouched, and deleting it leaves the copy readable (own block refs).
    s3.delete_object(Bucket=BUCKET, Key="src/big")
    assert read(s3, "assembled", PartNumber=2) == source


@pytest.mark.slow
def test_copies_need_read_permission_on_the_source_bucket(s3: Any) -> None:
    upload_id = s3.create_multipart_upload(Bucket=BUCKET, Key="denied")["UploadId"]
    for call in (
        lambda: s3.copy_object(Bucket=BUCKET, Key="denied", CopySource={"Bucket": "not-mine", "Key": "k"}),
        lambda: s3.upload_part_copy(Bucket=BUCKET, Key="denied", UploadId=upload_id, PartNumber=1,
                                    CopySource={"Bucket": "not-mine", "Key": "k"}),
    ):
        with pytest.raises(botocore.exceptions.ClientError) as e:
            call()
        assert (error_code(e), status(e)) == ("AccessDenied", 403)
    with pytest.raises(botocore.exceptions.ClientError) as e:
        s3.copy_object(Bucket=BUCKET, Key="denied", CopySource={"Bucket": BUCKET, "Key": "no-such-key"})
    assert error_code(e) == "NoSuchKey"
    s3.abort_multipart_upload(Bucket=BUCKET, Key="denied", UploadId=upload_id)


# ---------------------------------------------------------------------- CopyObject
@pytest.mark.slow
@pytest.mark.parametrize("size", [100, 3 * MIB + 5], ids=["inline", "blocks"])
def test_copy_object_copies_or_replaces_metadata(s3: Any, size: int) -> None:
    data = os.urandom(size)
    src = f"copy-src-{size}"
    put = s3.put_object(Bucket=BUCKET, Key=src, Body=data, ContentType="text/x-source",
                        Metadata={"colour": "blue", "n": "1"}, CacheControl="max-age=60")

    kept = s3.copy_object(Bucket=BUCKET, Key=f"{src}-copy", CopySource={"Bucket": BUCKET, "Key": src})
    assert kept["CopyObjectResult"]["ETag"] == put["ETag"]
    got = s3.get_object(Bucket=BUCKET, Key=f"{src}-copy")
    assert got["Body"].read() == data and got["ETag"] == put["ETag"]
    assert (got["ContentType"], got["Metadata"], got["CacheControl"]) == (
        "text/x-source", {"colour": "blue", "n": "1"}, "max-age=60")

    s3.copy_object(Bucket=BUCKET, Key=f"{src}-new", CopySource=f"{BUCKET}/{src}", MetadataDirective="REPLACE",
                   ContentType="application/x-new", Metadata={"shape": "round"})
    got = s3.get_object(Bucket=BUCKET, Key=f"{src}-new")
    assert got["Body"].read() == data
    assert (got["ContentType"], got["Metadata"], got.get("CacheControl")) == (
        "application/x-new", {"shape": "round"}, None)

    # Preconditions on the source: every failure is 412, matching ones let the copy through.
    for cond in ({"CopySourceIfMatch": '"0123"'}, {"CopySourceIfNoneMatch": put["ETag"]},
                 {"CopySourceIfUnmodifiedSince": "Mon, 01 Jan 2001 00:00:00 GMT"}):
        with pytest.raises(botocore.exceptions.ClientError) as e:
            s3.copy_object(Bucket=BUCKET, Key=f"{src}-cond", CopySource={"Bucket": BUCKET, "Key": src}, **cond)
        assert (error_code(e), status(e)) == ("PreconditionFailed", 412), cond
    s3.copy_object(Bucket=BUCKET, Key=f"{src}-cond", CopySource={"Bucket": BUCKET, "Key": src},
                   CopySourceIfMatch=put["ETag"], CopySourceIfModifiedSince="Mon, 01 Jan 2001 00:00:00 GMT")
    assert read(s3, f"{src}-cond") == data

    # Onto itself: refused without REPLACE, allowed (data kept) with it.
    with pytest.raises(botocore.exceptions.ClientError) as e:
        s3.copy_object(Bucket=BUCKET, Key=src, CopySource={"Bucket": BUCKET, "Key": src})
    assert (error_code(e), status(e)) == ("InvalidRequest", 400)
    s3.copy_object(Bucket=BUCKET, Key=src, CopySource={"Bucket": BUCKET, "Key": src}, MetadataDirective="REPLACE",
                   Metadata={"colour": "red"})
    got = s3.get_object(Bucket=BUCKET, Key=src)
    assert got["Body"].read() == data and got["Metadata"] == {"colour": "red"}


@pytest.mark.slow
def test_copy_of_a_multipart_object_keeps_its_parts(s3: Any) -> None:
    parts = {1: os.urandom(5 * MIB), 2: os.urandom(MIB)}
    upload_id, etags = upload(s3, "mp-src", parts)
    done = complete(s3, "mp-src", upload_id, etags)
    copied = s3.copy_object(Bucket=BUCKET, Key="mp-copy", CopySource={"Bucket": BUCKET, "Key": "mp-src"})
    assert copied["CopyObjectResult"]["ETag"] == done["ETag"]
    got = s3.get_object(Bucket=BUCKET, Key="mp-copy", PartNumber=2)
    assert got["Body"].read() == parts[2] and got["PartsCount"] == 2


# ---------------------------------------------------------------------- in process: block reuse
class _FakeBlocks:
    def __init__(self, store: dict[bytes, bytes]) -> None:
        self.store = store
        self.reads: list[bytes] = []

    async def rpc_get_block(self, h: bytes) -> bytes:
        self.reads.append(h)
        return self.store[h]


class _FakeModel:
    def __init__(self, store: dict[bytes, bytes]) -> None:
        self.blocks = _FakeBlocks(store)


async def test_block_pieces_reference_whole_blocks_and_cut_the_edges() -> None:
    blocks = [bytes([i]) * 10 for i in range(4)]  # one object of 4 blocks of 10 bytes, in 2 parts
    store = {hashlib.blake2b(b, digest_size=32).digest(): b for b in blocks}
    hashes = list(store)
    keys = [(1, 0), (1, 10), (2, 0), (2, 10)]
    version = Version(b"v" * 32, Bool(False), CrdtMap.from_items(
        [(k, VersionBlock(h, 10)) for k, h in zip(keys, hashes, strict=True)]), CrdtMap(), b"b" * 32, "k")
    model: Any = _FakeModel(store)
    pieces = [p async for p in mpu.block_pieces(model, version, 5, 32)]
    assert [(p.data, p.stored) for p in pieces] == [
        (blocks[0][5:], None), (blocks[1], hashes[1]), (blocks[2], hashes[2]), (blocks[3][:2], None)]
    assert model.blocks.reads == hashes  # every block read once (the md5 needs them), in order
    whole = [p async for p in mpu.block_pieces(model, version, 0, 40)]
    assert [p.stored for p in whole] == hashes


class _FakeTable:
    def __init__(self) -> None:
        self.inserted: list[Any] = []

    async def insert(self, entry: Any) -> None:
        self.inserted.append(entry)


class _FakeStore:
    def __init__(self) -> None:
        self.put: list[bytes] = []

    async def rpc_put_block(self, h: bytes, data: bytes) -> None:
        assert hashlib.blake2b(data, digest_size=32).digest() == h
        self.put.append(h)


class _FakeWriteModel:
    id = "f" * 64

    def __init__(self) -> None:
        self.mpu_table, self.version_table, self.block_ref_table = _FakeTable(), _FakeTable(), _FakeTable()
        self.blocks = _FakeStore()


def _fake_upload() -> mpu.Upload:
    uid = b"u" * 32
    version = ObjectVersion(uid, 1, Uploading(True, ()))
    return mpu.Upload(Object(b"b" * 32, "k", (version,)), version, MultipartUpload.new(uid, 1, b"b" * 32, "k"))


async def test_store_part_stores_new_pieces_references_old_ones_and_forgets_a_failed_part() -> None:
    new, old = b"fresh data", b"existing block"
    old_hash = hashlib.blake2b(old, digest_size=32).digest()

    async def pieces() -> Any:
        yield mpu.Piece(new)
        yield mpu.Piece(old, old_hash)

    model: Any = _FakeWriteModel()
    res = await mpu.store_part(model, _fake_upload(), 7, pieces())
    assert (res.etag, res.size) == (md5_hex(new + old), len(new + old))
    assert model.blocks.put == [hashlib.blake2b(new, digest_size=32).digest()]  # the old block is not re-sent
    assert sorted(k for v in model.version_table.inserted for k, _ in v.blocks.items()) == [(7, 0), (7, len(new))]
    assert {r.block for r in model.block_ref_table.inserted} == {model.blocks.put[0], old_hash}
    first, last = (m.parts.items()[0][1] for m in model.mpu_table.inserted)
    assert (first.etag, last.etag, last.size, last.version) == (None, res.etag, res.size, res.version)

    async def failing() -> Any:
        yield mpu.Piece(new)
        raise ValueError("the client went away")

    model = _FakeWriteModel()
    with pytest.raises(ValueError):
        await mpu.store_part(model, _fake_upload(), 1, failing())
    assert model.version_table.inserted[-1].deleted.get()  # the part's version is marked deleted
    assert len(model.mpu_table.inserted) == 1  # never finished: no etag was written
