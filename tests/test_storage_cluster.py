"""Replicated storage on real `grange server` processes: writes, crashes, pauses, corruption,
layout changes. Data goes in and out through the internal entry point (`grange debug`)."""

from __future__ import annotations

import hashlib
import json
import os
import signal
import subprocess
from pathlib import Path

import pytest

from tests.cluster import GRANGE, CliFailed, Cluster, Node, wait_until

pytestmark = pytest.mark.slow

# Blocks scheduled for deletion go after 1 s instead of 10 min; tombstones stay (24 h).
FAST_ENV = {"GRANGE_TEST_BLOCK_GC_DELAY_S": "1"}


def put(node: Node, bucket: str, key: str, data: bytes, tmp: Path) -> dict:
    f = tmp / f"up-{os.getpid()}-{key.replace('/', '_')}"
    f.write_bytes(data)
    return json.loads(node.cli("debug", "put-object", bucket, key, str(f)))


def get(node: Node, bucket: str, key: str) -> bytes:
    r = subprocess.run([GRANGE, "-c", str(node.config), "debug", "get-object", bucket, key],
                       capture_output=True, timeout=120)
    if r.returncode != 0:
        raise CliFailed(("debug", "get-object", bucket, key),
                        subprocess.CompletedProcess(r.args, r.returncode, r.stdout.decode(errors="replace"),
                                                    r.stderr.decode(errors="replace")))
    return r.stdout


def repair(node: Node, what: str, *extra: str) -> None:
    node.cli("repair", "--yes", "--wait", what, *extra, timeout=180)


def table_info(node: Node) -> dict:
    return json.loads(node.cli("debug", "table-info"))


def blocks_of(node: Node) -> dict:
    return json.loads(node.cli("debug", "block-list"))


def make_bucket(node: Node, name: str = "data") -> str:
    node.api("CreateBucket", {"globalAlias": name})
    return name


@pytest.fixture
def cluster3(tmp_path):
    c = Cluster(tmp_path, 3, rf=3, env=FAST_ENV)
    try:
        c.start()
        c.connect()
        c.assign_and_apply(["dc1", "dc2", "dc3"])
        for node in c.nodes:
            wait_until(lambda node=node: node.api("GetClusterLayout")["version"] == 1, 20, "layout 1")
        yield c
    finally:
        c.stop()


def test_keys_buckets_and_objects_written_through_a_are_visible_through_b_and_c(cluster3, tmp_path) -> None:
    a, b, c = cluster3.nodes
    key = a.api("CreateKey", {"name": "alice"})
    bucket = a.api("CreateBucket", {"globalAlias": "photos"})
    for node in (b, c):
        wait_until(lambda node=node: node.api("GetKeyInfo", {"id": key["accessKeyId"]}), 20, "key visible")
    for node in (b, c):
        info = json.loads(node.cli("bucket", "info", "photos", "--json"))
        assert info["id"] == bucket["id"]
    small, big = os.urandom(2000), os.urandom(2 * 1024 * 1024 + 12345)  # inline, and 3 blocks
    put(a, "photos", "small.bin", small, tmp_path)
    res = put(a, "photos", "dir/big.bin", big, tmp_path)
    assert res["etag"] == hashlib.md5(big).hexdigest() and res["size"] == len(big)
    for node in (a, b, c):
        assert get(node, "photos", "small.bin") == small
        assert get(node, "photos", "dir/big.bin") == big
    listed = json.loads(c.cli("debug", "list-objects", "photos"))
    assert [o["key"] for o in listed] == ["dir/big.bin", "small.bin"]
    # rf=3: every node stores every block
    for node in (a, b, c):
        wait_until(lambda node=node: len(blocks_of(node)["stored"]) == 3, 20, "3 blocks on each node")


def test_sigkill_one_of_three_then_restart_converges(cluster3, tmp_path) -> None:
    a, b, c = cluster3.nodes
    make_bucket(a)
    put(a, "data", "before", os.urandom(1500 * 1024), tmp_path)
    c.kill()
    wait_until(lambda: c.id not in a.up_ids(), 30, "c down")
    written = {f"k{i}": os.urandom(3000 + i * 100_000) for i in range(6)}
    for k, v in written.items():
        put(a, "data", k, v, tmp_path)  # quorum 2 of 3: succeeds with c down
    for k, v in written.items():
        assert get(b, "data", k) == v
    c.start()
    wait_until(lambda: c.id in a.up_ids(), 45, "c up")
    for node in (a, b, c):
        repair(node, "tables")
    ref = table_info(a)
    for t in ("object", "version", "block_ref", "bucket_v2"):
        wait_until(lambda t=t: table_info(c)[t]["rootsDigest"] == ref[t]["rootsDigest"], 30, f"{t} roots equal")
    repair(c, "blocks")
    wait_until(lambda: set(blocks_of(c)["needed"]) <= set(blocks_of(c)["stored"]), 60, "c holds every block")
    assert set(blocks_of(c)["stored"]) == set(blocks_of(a)["stored"])
    for k, v in written.items():
        assert get(c, "data", k) == v


def test_sigstop_while_writing_loses_no_acknowledged_write(cluster3, tmp_path) -> None:
    a, b, c = cluster3.nodes
    make_bucket(a)
    acked = {}
    for i in range(12):
        if i == 4:
            c.signal(signal.SIGSTOP)
        if i == 9:
            c.signal(signal.SIGCONT)
        data = os.urandom(500 + (i % 3) * 700_000)
        put(a, "data", f"obj{i}", data, tmp_path)
        acked[f"obj{i}"] = data
    c.signal(signal.SIGCONT)
    wait_until(lambda: c.id in a.up_ids() and a.id in c.up_ids(), 60, "c back")
    for node in (a, b, c):
        repair(node, "tables")
    repair(c, "blocks")
    for k, v in acked.items():
        assert get(c, "data", k) == v


def test_two_of_three_down_writes_fail_and_nothing_appears_later(cluster3, tmp_path) -> None:
    a, b, c = cluster3.nodes
    make_bucket(a)
    for node in (a, b, c):  # full-copy bucket tables: everyone knows the bucket
        wait_until(lambda node=node: node.cli("bucket", "info", "data"), 20, "bucket everywhere")
    b.kill()
    c.kill()
    wait_until(lambda: not ({b.id, c.id} & a.up_ids()), 30, "b and c down")
    for key, size in (("small", 100), ("large", 1_500_000)):
        with pytest.raises(CliFailed) as e:
            put(a, "data", key, os.urandom(size), tmp_path)
        assert "quorum" in e.value.proc.stderr
    b.start()
    c.start()
    wait_until(lambda: {b.id, c.id} <= a.up_ids(), 45, "b and c up")
    for node in (a, b, c):
        repair(node, "tables")
    for node in (a, b, c):
        assert json.loads(node.cli("debug", "list-objects", "data")) == []
        with pytest.raises(CliFailed):
            get(node, "data", "small")


def test_corrupted_block_file_is_served_from_another_node_and_scrub_repairs_it(cluster3, tmp_path) -> None:
    a, b, c = cluster3.nodes
    make_bucket(a)
    data = os.urandom(1024 * 1024 + 5)
    put(a, "data", "k", data, tmp_path)
    wait_until(lambda: len(blocks_of(b)["stored"]) == 2, 20, "blocks on b")
    files = [p for p in (b.dir / "data").rglob("*") if p.is_file() and len(p.name.split(".")[0]) == 64]
    path = max(files, key=lambda p: p.stat().st_size)  # the 1 MiB block, not the 5-byte tail
    block = path.name.split(".")[0]
    raw = bytearray(path.read_bytes())
    raw[100] ^= 0xFF
    path.write_bytes(bytes(raw))
    assert get(b, "data", "k") == data  # read verified the hash and used another holder
    repair(b, "scrub", "start")
    wait_until(lambda: block in blocks_of(b)["stored"] and blocks_of(b)["resyncQueue"] == 0, 60, "refetched")
    good = next(p for p in (b.dir / "data").rglob(block + "*") if not p.name.endswith(".corrupted"))
    content = good.read_bytes()
    if good.name.endswith(".zst"):
        import zstandard

        content = zstandard.ZstdDecompressor().decompress(content)
    assert hashlib.blake2b(content, digest_size=32).hexdigest() == block


def test_adding_then_removing_a_node_moves_data_and_keeps_every_object_readable(tmp_path) -> None:
    c = Cluster(tmp_path, 3, rf=2, env=FAST_ENV)
    try:
        c.start()
        c.connect()
        c.assign_and_apply(["dc1", "dc2", "dc3"])
        a = c.nodes[0]
        wait_until(lambda: all(n.api("GetClusterLayout")["version"] == 1 for n in c.nodes), 20, "layout 1")
        make_bucket(a)
        # 12 single-block objects: the new node holds half of the partitions, so the chance
        # that it should receive none of them is 2^-12
        objs = {f"o{i}": os.urandom(2000 if i % 4 == 3 else 200_000) for i in range(16)}
        for k, v in objs.items():
            put(a, "data", k, v, tmp_path)

        def all_readable(nodes: list[Node]) -> None:
            for node in nodes:
                for k, v in objs.items():
                    assert get(node, "data", k) == v

        d = c.add_node()
        a.cli("node", "connect", f"{d.id}@{d.addr}")
        a.cli("layout", "assign", "-z", "dc1", "-c", "1G", d.id[:12])
        a.cli("layout", "apply", "--version", "2")
        all_readable([c.nodes[1], d])  # during the migration: reads use the version everyone synced
        _settle(c, 2)
        all_readable(c.nodes)
        assert blocks_of(d)["needed"], "the new node should hold some of the blocks"
        wait_until(lambda: blocks_of(d)["stored"], 60, "the new node to receive blocks")
        for node in c.nodes:  # nobody keeps a block it no longer needs, nobody misses one
            wait_until(lambda node=node: set(blocks_of(node)["stored"]) == set(blocks_of(node)["needed"]), 60,
                       f"node {node.index} holds exactly what it needs")
        # remove node 1
        gone = c.nodes[1]
        a.cli("layout", "remove", gone.id[:12])
        a.cli("layout", "apply", "--version", "3")
        _settle(c, 3)
        all_readable([n for n in c.nodes if n is not gone])
        wait_until(lambda: blocks_of(gone)["stored"] == [], 60, "removed node offloaded its blocks")
    finally:
        c.stop()


def _settle(c: Cluster, version: int) -> None:
    """Run anti-entropy and block repair until every node reports the version synced."""
    def synced() -> bool:
        for node in c.nodes:
            repair(node, "tables")
        h = c.nodes[0].api("GetClusterLayoutHistory")
        return all(t["sync"] >= version for t in h["updateTrackers"].values()) and h["currentVersion"] == version

    wait_until(synced, 120, f"layout {version} synced everywhere")
    for node in c.nodes:
        repair(node, "blocks")
