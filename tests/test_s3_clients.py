"""Real S3 clients against real `grange server` processes: the aws CLI (v1), rclone, and
presigned URLs used from a plain HTTP client (issue 4, "How it is checked").

The clients get their credentials and endpoint from the environment only (`S3Access.env`):
the aws CLI reads ``AWS_ENDPOINT_URL`` (honoured by botocore since 1.31, so no
``--endpoint-url``), rclone a remote ``grange:`` from ``RCLONE_CONFIG_GRANGE_*``. rclone
needs no ``--s3-no-check-bucket``: its bucket check (HEAD/PUT on the bucket) is answered.

On the 3-node cluster (rf=3) every write goes through node 0 and every read back through
node 2, so what is checked is what the cluster replicated, not one node's memory. Contents
are compared byte for byte; listings are compared to the local tree, name and size.
"""

from __future__ import annotations

import base64
import hashlib
import json
import os
import random
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
import zlib
from pathlib import Path
from urllib.parse import urlsplit
from xml.etree import ElementTree

import pytest

from tests.cluster import Cluster, Node, S3Access

pytestmark = pytest.mark.slow

AWS = str(Path(sys.executable).with_name("aws"))
RCLONE = str(Path(sys.executable).with_name("rclone"))
MiB = 1024 * 1024

# Names a sync must carry unchanged: spaces, unicode, and the characters that mean
# something in URLs and query strings (+ & = % # ? ;).
AWKWARD_NAMES = [
    "top.txt",
    "empty.txt",
    "a b/one two.txt",
    "a b/c+d/x&y=z.txt",
    "a b/c+d/k=v&w=1+2.bin",
    "ünïcødé/日本語 ファイル.txt",
    "ünïcødé/ça va?.txt",
    "x/100%.txt",
    "x/#hash.txt",
    "x/semi;colon.txt",
    "x/paren (1) 'q'.txt",
    "x/tilde~ and !bang.txt",
    "deep/1/2/3/4/5/leaf.txt",
]


# ---------------------------------------------------------------------- helpers
def run(cmd: list[str], env: dict[str, str], cwd: Path | None = None,
        timeout: float = 180) -> subprocess.CompletedProcess[str]:
    return subprocess.run(cmd, env=env, cwd=cwd, capture_output=True, text=True, timeout=timeout)


def aws(access: S3Access, node: Node, *args: str, check: bool = True) -> subprocess.CompletedProcess[str]:
    r = run([AWS, *args], access.env(node))
    if check:
        assert r.returncode == 0, f"aws {' '.join(args)} exited {r.returncode}:\n{r.stderr}\n{r.stdout}"
    return r


def aws_json(access: S3Access, node: Node, *args: str) -> dict:
    out = aws(access, node, *args, "--output", "json").stdout
    return json.loads(out) if out.strip() else {}


def rclone(access: S3Access, node: Node, *args: str, check: bool = True) -> subprocess.CompletedProcess[str]:
    r = run([RCLONE, "--retries", "1", "--low-level-retries", "2", *args], access.env(node))
    if check:
        assert r.returncode == 0, f"rclone {' '.join(args)} exited {r.returncode}:\n{r.stderr}\n{r.stdout}"
    return r


def make_tree(root: Path, n_extra: int, seed: int) -> dict[str, bytes]:
    """AWKWARD_NAMES plus `n_extra` files in nested dirs, random contents of 0..6000 bytes."""
    rnd = random.Random(seed)
    files = {name: (b"" if name == "empty.txt" else rnd.randbytes(rnd.randrange(1, 6000)))
             for name in AWKWARD_NAMES}
    for i in range(n_extra):
        files[f"nested/d{i % 4}/e{i % 3}/file-{i:02d}.dat"] = rnd.randbytes(rnd.randrange(1, 6000))
    for name, data in files.items():
        write(root / name, data)
    return files


def write(path: Path, data: bytes) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(data)


def read_tree(root: Path) -> dict[str, bytes]:
    return {p.relative_to(root).as_posix(): p.read_bytes() for p in root.rglob("*") if p.is_file()}


def sizes(files: dict[str, bytes]) -> dict[str, int]:
    return {name: len(data) for name, data in files.items()}


def bucket_sizes(access: S3Access, node: Node, prefix: str) -> dict[str, int]:
    """Every key under `prefix` (prefix stripped) with its size, listed by boto3 from `node`."""
    pages = access.client(node).get_paginator("list_objects_v2").paginate(Bucket=access.bucket, Prefix=prefix)
    return {o["Key"][len(prefix):]: o["Size"] for page in pages for o in page.get("Contents", [])}


def ls_recursive(access: S3Access, node: Node, prefix: str) -> dict[str, int]:
    """`aws s3 ls --recursive` parsed: key (prefix stripped) → size."""
    out = aws(access, node, "s3", "ls", "--recursive", f"s3://{access.bucket}/{prefix}").stdout
    listed = {}
    for line in out.splitlines():
        _date, _time, size, key = line.split(maxsplit=3)
        assert key.startswith(prefix), line
        listed[key[len(prefix):]] = int(size)
    return listed


def crc32_b64(data: bytes) -> str:
    return base64.b64encode(zlib.crc32(data).to_bytes(4, "big")).decode()


def http(url: str, method: str = "GET", data: bytes | None = None,
         headers: dict[str, str] | None = None) -> tuple[int, dict[str, str], bytes]:
    req = urllib.request.Request(url, method=method, data=data, headers=headers or {})
    try:
        with urllib.request.urlopen(req, timeout=30) as resp:
            return resp.status, dict(resp.headers), resp.read()
    except urllib.error.HTTPError as e:
        return e.code, dict(e.headers), e.read()


def s3_error(body: bytes) -> tuple[str | None, str | None]:
    root = ElementTree.fromstring(body)
    assert root.tag == "Error", body
    return root.findtext("Code"), root.findtext("Message")


@pytest.fixture(params=["s3_single", "s3_cluster3"], ids=["single", "cluster3"])
def deployment(request) -> tuple[Cluster, S3Access, Node, Node]:
    """(cluster, access, node that writes, node that reads back): node 0 and node 2 on the cluster."""
    cluster, access = request.getfixturevalue(request.param)
    return cluster, access, cluster.nodes[0], cluster.nodes[-1]


# ---------------------------------------------------------------------- aws CLI: s3 cp / sync / ls
def test_aws_cli_cp_uploads_and_downloads_small_and_multipart_files(deployment, tmp_path):
    _, access, writer, reader = deployment
    small = os.urandom(1500)
    write(tmp_path / "small.bin", small)
    dest = f"s3://{access.bucket}/cp dir/small ü+&=.bin"
    aws(access, writer, "s3", "cp", "--no-progress", str(tmp_path / "small.bin"), dest)
    aws(access, reader, "s3", "cp", "--no-progress", dest, str(tmp_path / "small.back"))
    assert (tmp_path / "small.back").read_bytes() == small
    head = access.client(reader).head_object(Bucket=access.bucket, Key="cp dir/small ü+&=.bin")
    assert head["ContentLength"] == len(small)
    assert head["ETag"] == f'"{hashlib.md5(small).hexdigest()}"'

    # 20 MiB: above the CLI's 8 MiB multipart threshold (3 parts up, ranged GETs down).
    big = os.urandom(20 * MiB)
    write(tmp_path / "big.bin", big)
    big_dest = f"s3://{access.bucket}/cp dir/big.bin"
    r = aws(access, writer, "s3", "cp", "--no-progress", str(tmp_path / "big.bin"), big_dest, check=False)
    assert r.returncode == 0, r.stderr
    aws(access, reader, "s3", "cp", "--no-progress", big_dest, str(tmp_path / "big.back"))
    assert (tmp_path / "big.back").read_bytes() == big
    head = access.client(reader).head_object(Bucket=access.bucket, Key="cp dir/big.bin")
    assert head["ContentLength"] == len(big)
    assert head["ETag"].endswith('-3"'), head["ETag"]  # multipart ETag: md5 of part md5s, "-<parts>"


def test_aws_cli_sync_mirrors_a_tree_and_sync_delete_removes_what_is_gone(deployment, tmp_path):
    _, access, writer, reader = deployment
    src, prefix = tmp_path / "src", "synced/"
    dest = f"s3://{access.bucket}/{prefix}"
    files = make_tree(src, n_extra=18, seed=1)
    assert len(files) >= 30
    aws(access, writer, "s3", "sync", "--no-progress", str(src), dest)

    assert bucket_sizes(access, reader, prefix) == sizes(files)
    assert ls_recursive(access, reader, prefix) == sizes(files)
    aws(access, reader, "s3", "sync", "--no-progress", dest, str(tmp_path / "down1"))
    assert read_tree(tmp_path / "down1") == files

    # A second sync with nothing changed uploads nothing.
    again = aws(access, writer, "s3", "sync", "--no-progress", str(src), dest)
    assert "upload:" not in again.stdout, again.stdout

    # Local changes: grown, shrunk, same size but newer, removed, added.
    rnd = random.Random(2)
    files["a b/one two.txt"] += b" and more"
    files["x/100%.txt"] = files["x/100%.txt"][:3]
    same = "nested/d1/e1/file-01.dat"
    files[same] = bytes(b ^ 0xFF for b in files[same])
    for name in ("a b/one two.txt", "x/100%.txt", same):
        write(src / name, files[name])
    future = time.time() + 3600  # same size: only a newer mtime tells sync to upload it
    os.utime(src / same, (future, future))
    for name in ("ünïcødé/ça va?.txt", "x/#hash.txt", "nested/d2/e2/file-02.dat", "deep/1/2/3/4/5/leaf.txt"):
        (src / name).unlink()
        del files[name]
    for name in ("new dir/new + file.txt", "ünïcødé/nouveau é.txt"):
        files[name] = rnd.randbytes(700)
        write(src / name, files[name])

    out = aws(access, writer, "s3", "sync", "--no-progress", "--delete", str(src), dest).stdout
    assert out.count("delete:") == 4, out
    assert bucket_sizes(access, reader, prefix) == sizes(files)
    assert ls_recursive(access, reader, prefix) == sizes(files)
    aws(access, reader, "s3", "cp", "--no-progress", "--recursive", dest, str(tmp_path / "down2"))
    assert read_tree(tmp_path / "down2") == files


# ---------------------------------------------------------------------- aws CLI: s3api
def test_aws_s3api_object_calls_with_default_checksums(s3_single, tmp_path):
    cluster, access = s3_single
    node, b = cluster.nodes[0], access.bucket
    body = tmp_path / "body.bin"
    contents = {
        "api/a b+c&d=e ü.txt": b"hello, grange\n",
        "api/sub/deep.bin": os.urandom(100_000),
        "api/sub2/x": b"",
        "apix/not-under-api/": b"z",
    }
    for key, data in contents.items():
        body.write_bytes(data)
        out = aws_json(access, node, "s3api", "put-object", "--bucket", b, "--key", key, "--body", str(body),
                       "--content-type", "text/x-grange", "--metadata", "color=blue,shape=round")
        assert out["ETag"] == f'"{hashlib.md5(data).hexdigest()}"'
        # The CLI sends x-amz-checksum-crc32 by default; S3 echoes the checksum it checked.
        assert out.get("ChecksumCRC32") == crc32_b64(data), out

    for key in ("api/a b+c&d=e ü.txt", "api/sub/deep.bin", "api/sub2/x"):
        data, target = contents[key], tmp_path / "got.bin"
        out = aws_json(access, node, "s3api", "get-object", "--bucket", b, "--key", key, str(target))
        assert target.read_bytes() == data, key
        assert out["ContentLength"] == len(data)
        assert out["ETag"] == f'"{hashlib.md5(data).hexdigest()}"'
        assert out["ContentType"] == "text/x-grange"
        assert out["Metadata"] == {"color": "blue", "shape": "round"}
        assert out.get("ChecksumCRC32") == crc32_b64(data), out  # the CLI asks for it (checksum mode)

        head = aws_json(access, node, "s3api", "head-object", "--bucket", b, "--key", key)
        assert head["ContentLength"] == len(data)
        assert head["ETag"] == out["ETag"]
        assert head["Metadata"] == {"color": "blue", "shape": "round"}

    missing = aws(access, node, "s3api", "head-object", "--bucket", b, "--key", "api/nope", check=False)
    assert missing.returncode != 0 and "404" in missing.stderr, missing.stderr

    # Delimiter listing, merged by the CLI over one page and over pages of one key.
    for paging in ([], ["--page-size", "1"]):
        listing = aws_json(access, node, "s3api", "list-objects-v2", "--bucket", b, "--prefix", "api/",
                           "--delimiter", "/", *paging)
        assert [o["Key"] for o in listing.get("Contents", [])] == ["api/a b+c&d=e ü.txt"], listing
        assert [p["Prefix"] for p in listing.get("CommonPrefixes", [])] == ["api/sub/", "api/sub2/"], listing
    raw = aws_json(access, node, "s3api", "list-objects-v2", "--bucket", b, "--prefix", "api/sub",
                   "--no-paginate")
    assert raw["KeyCount"] == 2 and raw["IsTruncated"] is False and raw["Name"] == b
    assert [(o["Key"], o["Size"]) for o in raw["Contents"]] == [("api/sub/deep.bin", 100_000), ("api/sub2/x", 0)]

    # delete-objects (the CLI sends a CRC32 of the XML body, no Content-MD5).
    to_delete = [*contents, "api/never-existed"]
    out = aws_json(access, node, "s3api", "delete-objects", "--bucket", b, "--delete",
                   json.dumps({"Objects": [{"Key": k} for k in to_delete]}))
    assert sorted(d["Key"] for d in out["Deleted"]) == sorted(to_delete)
    assert not out.get("Errors"), out
    assert bucket_sizes(access, node, "") == {}


def test_aws_s3api_bucket_calls(s3_single, tmp_path):
    cluster, access = s3_single
    node = cluster.nodes[0]
    made = "cli-made-bucket"
    out = aws_json(access, node, "s3api", "create-bucket", "--bucket", made)
    assert out.get("Location") == f"/{made}", out
    aws(access, node, "s3api", "head-bucket", "--bucket", made)
    for bucket in (made, access.bucket):
        loc = aws_json(access, node, "s3api", "get-bucket-location", "--bucket", bucket)
        assert loc == {"LocationConstraint": "garage"}, loc
    names = aws(access, node, "s3", "ls").stdout.split()
    assert made in names and access.bucket in names

    missing = aws(access, node, "s3api", "head-bucket", "--bucket", "no-such-bucket", check=False)
    assert missing.returncode != 0 and "404" in missing.stderr, missing.stderr

    # The new bucket is usable at once by the key that created it.
    (tmp_path / "empty").write_bytes(b"")
    aws(access, node, "s3api", "put-object", "--bucket", made, "--key", "k", "--body", str(tmp_path / "empty"))
    assert aws(access, node, "s3", "ls", f"s3://{made}/").stdout.split()[-2:] == ["0", "k"]


# ---------------------------------------------------------------------- rclone
def test_rclone_copy_check_sync_and_listings(deployment, tmp_path):
    _, access, writer, reader = deployment
    src, remote = tmp_path / "src", f"grange:{access.bucket}/dir"
    files = make_tree(src, n_extra=10, seed=3)
    files["large/thirty.bin"] = os.urandom(30 * MiB)
    write(src / "large/thirty.bin", files["large/thirty.bin"])

    rclone(access, writer, "copy", str(src), remote)
    check = rclone(access, reader, "check", str(src), remote)
    assert "0 differences found" in check.stderr, check.stderr
    assert bucket_sizes(access, reader, "dir/") == sizes(files)

    # Local changes, then sync: grown, same size but different bytes, removed, added.
    files["top.txt"] += b"!"
    flipped = "nested/d0/e0/file-00.dat"
    files[flipped] = bytes(b ^ 0x55 for b in files[flipped])
    for name in ("top.txt", flipped):
        write(src / name, files[name])
    for name in ("x/semi;colon.txt", "a b/c+d/x&y=z.txt"):
        (src / name).unlink()
        del files[name]
    files["added/新しい + one.txt"] = os.urandom(1234)
    write(src / "added/新しい + one.txt", files["added/新しい + one.txt"])

    rclone(access, writer, "sync", str(src), remote)
    check = rclone(access, reader, "check", "--download", str(src), remote)  # byte for byte
    assert "0 differences found" in check.stderr, check.stderr

    listed = json.loads(rclone(access, reader, "lsjson", "-R", "--files-only", remote).stdout)
    assert {e["Path"]: e["Size"] for e in listed} == sizes(files)
    ls = {}
    for line in rclone(access, reader, "ls", remote).stdout.splitlines():
        size, name = line.strip().split(" ", 1)
        ls[name] = int(size)
    assert ls == sizes(files)
    assert bucket_sizes(access, reader, "dir/") == sizes(files)


# ---------------------------------------------------------------------- presigned URLs
@pytest.fixture
def presign(s3_single):
    """(access, node, boto3 client that presigns with SigV4), closed before the node stops."""
    cluster, access = s3_single
    node = cluster.nodes[0]
    s3 = access.client(node, signature_version="s3v4")
    yield access, node, s3
    s3.close()  # an idle keep-alive connection would delay the node's shutdown (see the last test)


def test_presigned_put_then_get_round_trips_bytes_over_plain_http(presign):
    access, node, s3 = presign
    key, data = "pre signed/ü+&=?.bin", os.urandom(70_000)
    params = {"Bucket": access.bucket, "Key": key}

    put_url = s3.generate_presigned_url("put_object", Params=params, ExpiresIn=300)
    status, headers, _ = http(put_url, "PUT", data, {"Content-Type": "application/octet-stream"})
    assert status == 200
    assert headers["ETag"] == f'"{hashlib.md5(data).hexdigest()}"'

    get_url = s3.generate_presigned_url("get_object", Params=params, ExpiresIn=300)
    status, headers, got = http(get_url)
    assert status == 200 and got == data
    assert s3.get_object(**params)["Body"].read() == data

    # A presigned URL for another key or another method does not work for this one.
    status, _, body = http(get_url.replace("/pre%20signed/", "/pre%20signed2/"))
    assert status == 403 and s3_error(body)[0] == "SignatureDoesNotMatch"
    status, _, body = http(get_url, "PUT", b"overwrite")
    assert status == 403 and s3_error(body)[0] == "SignatureDoesNotMatch"
    assert s3.get_object(**params)["Body"].read() == data

    assert "x-amz-request-id" in {h.lower() for h in headers}


def test_presigned_url_used_after_expiry_answers_403_access_denied(presign):
    access, node, s3 = presign
    s3.put_object(Bucket=access.bucket, Key="short-lived", Body=b"x")
    url = s3.generate_presigned_url("get_object", Params={"Bucket": access.bucket, "Key": "short-lived"},
                                    ExpiresIn=1)
    time.sleep(2.1)  # X-Amz-Date has a one-second resolution: 2 s are past date + 1 for sure
    status, headers, body = http(url)
    assert status == 403
    assert headers.get("Content-Type", "").startswith("application/xml")
    code, message = s3_error(body)
    assert (code, message) == ("AccessDenied", "Request has expired")

    # AWS adds <X-Amz-Expires>, <Expires> and <ServerTime> to this error.
    root = ElementTree.fromstring(body)
    assert root.findtext("X-Amz-Expires") == "1"
    assert root.findtext("Expires") and root.findtext("ServerTime")


def test_presigned_url_with_tampered_signature_or_query_answers_403_signature_does_not_match(presign):
    access, node, s3 = presign
    s3.put_object(Bucket=access.bucket, Key="guarded", Body=b"secret")
    url = s3.generate_presigned_url("get_object", Params={"Bucket": access.bucket, "Key": "guarded"},
                                    ExpiresIn=60)
    head, sig = url.split("X-Amz-Signature=")
    flipped = head + "X-Amz-Signature=" + sig[:-1] + ("0" if sig[-1] != "0" else "1")
    longer = url.replace("X-Amz-Expires=60", "X-Amz-Expires=61")
    for tampered in (flipped, longer):
        status, headers, body = http(tampered)
        assert status == 403, tampered
        assert headers.get("Content-Type", "").startswith("application/xml")
        assert s3_error(body)[0] == "SignatureDoesNotMatch"
    assert http(url)[2] == b"secret"


def test_presigned_url_valid_for_more_than_a_week_is_refused(presign):
    access, node, s3 = presign
    params = {"Bucket": access.bucket, "Key": "week"}
    s3.put_object(**params, Body=b"w")
    week = 7 * 24 * 3600
    assert http(s3.generate_presigned_url("get_object", Params=params, ExpiresIn=week))[0] == 200

    status, _, body = http(s3.generate_presigned_url("get_object", Params=params, ExpiresIn=week + 1))
    # AWS: 400 AuthorizationQueryParametersError "X-Amz-Expires must be less than a week (in
    # seconds); that is, the given X-Amz-Expires must be less than 604800 seconds".
    assert status == 400
    code, message = s3_error(body)
    assert "604800" in (message or "")
    assert code == "AuthorizationQueryParametersError"


# ---------------------------------------------------------------------- HTTP behaviour clients rely on
def test_put_with_expect_100_continue_gets_the_interim_answer_before_sending_the_body(s3_single):
    """boto3 and the aws CLI send `Expect: 100-continue` on every PUT with a body and wait up
    to 1 s for `100 Continue` before sending it: without it each upload stalls 1 s."""
    from botocore.auth import S3SigV4Auth
    from botocore.awsrequest import AWSRequest
    from botocore.credentials import Credentials

    cluster, access = s3_single
    node = cluster.nodes[0]
    data = b"continue me" * 100
    url = f"{node.s3_endpoint}/{access.bucket}/expect-100"
    req = AWSRequest("PUT", url, data=data, headers={"Expect": "100-continue", "Content-Length": str(len(data))})
    S3SigV4Auth(Credentials(access.key_id, access.secret), "s3", "garage").add_auth(req)
    parts = urlsplit(url)
    head = [f"PUT {parts.path} HTTP/1.1", f"Host: {parts.netloc}", "Connection: close"]
    head += [f"{k}: {v}" for k, v in req.headers.items() if k.lower() != "host"]
    with socket.create_connection((parts.hostname, parts.port), timeout=10) as sock:
        sock.sendall(("\r\n".join(head) + "\r\n\r\n").encode())
        sock.settimeout(2.5)
        try:
            interim = sock.recv(4096)
        except TimeoutError:
            interim = b""
        sock.settimeout(10)
        sock.sendall(data)
        answer = interim if not interim.startswith(b"HTTP/1.1 100") else interim.split(b"\r\n\r\n", 1)[1]
        while b"\r\n\r\n" not in answer:
            chunk = sock.recv(4096)
            if not chunk:
                break
            answer += chunk
    assert interim.startswith(b"HTTP/1.1 100 Continue\r\n"), interim
    assert answer.startswith(b"HTTP/1.1 200"), answer
    assert access.client(node).get_object(Bucket=access.bucket, Key="expect-100")["Body"].read() == data


def test_sigterm_stops_the_server_promptly_while_a_client_holds_an_idle_keep_alive_connection(s3_single):
    """Long-lived S3 clients (boto3, rclone mounts, backup tools) keep idle connections open."""
    cluster, access = s3_single
    node = cluster.nodes[0]
    s3 = access.client(node)
    s3.list_objects_v2(Bucket=access.bucket)  # leaves one idle keep-alive connection in boto3's pool
    t0 = time.monotonic()
    node.stop()
    took = time.monotonic() - t0
    s3.close()
    assert node.proc is not None and node.proc.returncode is not None
    assert took < 3.0, f"SIGTERM took {took:.1f} s with one idle keep-alive S3 connection"

