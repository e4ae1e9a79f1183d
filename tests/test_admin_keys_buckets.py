"""Access keys and buckets on a real 3-node cluster, through the `grange key|bucket` CLI.

Every JSON answer is checked against the admin API contract; every failure must be one
line `error: …` on stderr with a non-zero exit. One cluster serves the whole module (each
test uses its own key and bucket names).
"""

from __future__ import annotations

import json
import re
from typing import Any

import msgspec
import pytest

from grange.model.bucket_table import Bucket, BucketKeyPerm
from grange.model.helpers import Helper, locked, now_ms, valid_bucket_name
from grange.table.crdt import Deletable, LwwMap
from tests.cluster import Cluster, Node, wait_until
from tests.inproc import start_cluster, stop_all, wait_for
from tests.spec import assert_matches_spec


@pytest.fixture(scope="module")
def cluster(tmp_path_factory):
    c = Cluster(tmp_path_factory.mktemp("kb"), 3, rf=3)
    try:
        c.start()
        c.connect()
        c.assign_and_apply(["dc1", "dc2", "dc3"])
        for node in c.nodes:
            wait_until(lambda node=node: node.api("GetClusterLayout")["version"] == 1, 20, "layout 1 everywhere")
        yield c
    finally:
        c.stop()


def cli_json(node: Node, op: str, *args: str) -> Any:
    """Run a `--json` CLI command and check its answer against the contract of `op`."""
    answer = json.loads(node.cli(*args, "--json"))
    assert_matches_spec(op, answer)
    return answer


def api(node: Node, op: str, body: Any) -> Any:
    answer = node.api(op, body)
    assert_matches_spec(op, answer)
    return answer


def fails(node: Node, *args: str, match: str) -> str:
    """The command fails with exactly one line `error: …` on stderr matching `match`."""
    r = node.cli_raw(*args)
    assert r.returncode != 0, f"grange {' '.join(args)} succeeded: {r.stdout}"
    lines = r.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: "), f"not one error line: {r.stderr!r}"
    assert re.search(match, lines[0], re.I), f"{lines[0]!r} does not match {match!r}"
    return lines[0]


def key_info(node: Node, key: str, *extra: str) -> dict[str, Any]:
    return cli_json(node, "GetKeyInfo", "key", "info", key, *extra)  # type: ignore[no-any-return]


def bucket_info(node: Node, bucket: str) -> dict[str, Any]:
    return cli_json(node, "GetBucketInfo", "bucket", "info", bucket)  # type: ignore[no-any-return]


def perms_of(info: dict[str, Any], key_id: str) -> dict[str, bool] | None:
    return next((k["permissions"] for k in info["keys"] if k["accessKeyId"] == key_id), None)


@pytest.mark.slow
def test_key_and_bucket_created_on_one_node_are_seen_with_permissions_from_the_others(cluster: Cluster) -> None:
    n0, n1, n2 = cluster.nodes
    created = cli_json(n0, "CreateKey", "key", "create", "alice")
    key_id, secret = created["accessKeyId"], created["secretAccessKey"]
    assert re.fullmatch(r"GK[0-9a-f]{24}", key_id) and re.fullmatch(r"[0-9a-f]{64}", secret)
    assert created["name"] == "alice" and created["permissions"] == {"createBucket": False}

    assert n0.cli("bucket", "create", "photos").strip() == "Bucket photos was created."
    out = n0.cli("bucket", "allow", "--read", "--write", "photos", "--key", "alice")
    assert "read true, write true, owner false" in out

    for node in (n1, n2):
        info = wait_until(lambda node=node: (i := bucket_info(node, "photos"))["keys"] and i, 15,
                          f"node {node.index} to see the permission")
        assert re.fullmatch(r"[0-9a-f]{64}", info["id"]) and info["globalAliases"] == ["photos"]
        assert info["keys"] == [{"accessKeyId": key_id, "name": "alice", "bucketLocalAliases": [],
                                 "permissions": {"read": True, "write": True, "owner": False}}]
        assert info["objects"] == 0 and info["bytes"] == 0 and info["websiteAccess"] is False
        k = wait_until(lambda node=node: (i := key_info(node, "alice"))["buckets"] and i, 15, "key's buckets")
        assert k["accessKeyId"] == key_id and k["secretAccessKey"] is None
        assert k["buckets"] == [{"id": info["id"], "globalAliases": ["photos"], "localAliases": [],
                                 "permissions": {"read": True, "write": True, "owner": False}}]
        assert key_id in [x["id"] for x in cli_json(node, "ListKeys", "key", "list")]
        assert "photos" in [a for b in cli_json(node, "ListBuckets", "bucket", "list") for a in b["globalAliases"]]

    # Secret: only on request; id prefix and name both find the key.
    assert key_info(n1, key_id[:10], "--show-secret")["secretAccessKey"] == secret
    human = n2.cli("key", "info", "alice")
    assert f"Key ID: {key_id}" in human and "Key name: alice" in human and "Secret key: (redacted)" in human
    assert secret not in human
    assert f"Secret key: {secret}" in n2.cli("key", "info", "alice", "--show-secret")
    fails(n0, "key", "info", "nobody", match="no access key matches")
    fails(n0, "bucket", "info", "nothing-here", match="does not exist")


@pytest.mark.slow
def test_rename_and_key_wide_permissions(cluster: Cluster) -> None:
    n0, n1, _ = cluster.nodes
    key_id = cli_json(n0, "CreateKey", "key", "create", "bob")["accessKeyId"]
    assert "named 'robert'" in n0.cli("key", "rename", "bob", "robert")
    assert key_info(n0, "robert")["accessKeyId"] == key_id
    fails(n0, "key", "info", "bob", match="no access key matches")
    n0.cli("key", "allow", "--create-bucket", "robert")
    wait_until(lambda: key_info(n1, key_id)["permissions"]["createBucket"] is True, 15, "createBucket on node 1")
    upd = api(n1, "UpdateKey", {"id": key_id, "body": {"deny": {"createBucket": True}, "name": "rob"}})
    assert upd["permissions"]["createBucket"] is False and upd["name"] == "rob"
    fails(n0, "key", "allow", "rob", match="--create-bucket")
    # An ambiguous search: two keys with one name.
    cli_json(n0, "CreateKey", "key", "create", "twin")
    cli_json(n0, "CreateKey", "key", "create", "twin")
    fails(n0, "key", "info", "twin", match="2 access keys match")


@pytest.mark.slow
def test_import_key(cluster: Cluster) -> None:
    n0, n1, _ = cluster.nodes
    key_id, secret = "GK" + "ab" * 12, "cd" * 32
    fails(n0, "key", "import", key_id, secret, match="--yes")
    imported = api(n0, "ImportKey", {"accessKeyId": key_id, "secretAccessKey": secret, "name": "old"})
    assert imported["accessKeyId"] == key_id and imported["name"] == "old" and imported["secretAccessKey"] is None
    wait_until(lambda: key_info(n1, key_id, "--show-secret")["secretAccessKey"] == secret, 15, "imported key")
    fails(n0, "key", "import", key_id, secret, "--yes", match="already exists")
    fails(n0, "key", "import", "GK123", secret, "--yes", match="invalid access key id")
    fails(n0, "key", "import", "XX" + "ab" * 12, secret, "--yes", match="invalid access key id")
    fails(n0, "key", "import", "GK" + "ef" * 12, "zz" * 32, "--yes", match="invalid secret")
    out = n0.cli("key", "import", "GK" + "ef" * 12, "01" * 32, "-n", "other", "--yes")
    assert "Imported key:" in out and "Key name: other" in out


@pytest.mark.parametrize("name", ["ab", "a" * 64, "Photos", "a_b", "-abc", "abc.", "192.168.0.1", "a..b",
                                  "xn--abc", "abc-s3alias", "", "bück"])
def test_invalid_bucket_names(name: str) -> None:
    assert not valid_bucket_name(name)


@pytest.mark.parametrize("name", ["abc", "a" * 63, "my.bucket-1", "1-2.3", "192.168.0.1a"])
def test_valid_bucket_names(name: str) -> None:
    assert valid_bucket_name(name)


def test_punycode_bucket_names_only_when_allowed() -> None:
    assert valid_bucket_name("xn--abc", allow_punycode=True) and not valid_bucket_name("xn--abc")


@pytest.mark.slow
def test_bucket_name_rules(cluster: Cluster) -> None:
    n0 = cluster.nodes[0]
    fails(n0, "bucket", "create", "Photos", match="invalid bucket name 'Photos'.*lowercase")
    fails(n0, "bucket", "create", "192.168.0.1", match="invalid bucket name.*IP address")
    n0.cli("bucket", "create", "my.bucket-1")
    fails(n0, "bucket", "create", "my.bucket-1", match="already exists")
    # The operation itself refuses too, and its answer follows the contract when it succeeds.
    created = api(n0, "CreateBucket", {"globalAlias": "via-api"})
    assert created["globalAliases"] == ["via-api"] and created["keys"] == []


@pytest.mark.slow
def test_global_and_local_aliases(cluster: Cluster) -> None:
    n0, n1, _ = cluster.nodes
    n0.cli("bucket", "create", "docs")
    bid = bucket_info(n0, "docs")["id"]
    key_id = cli_json(n0, "CreateKey", "key", "create", "carol")["accessKeyId"]
    n0.cli("bucket", "create", "taken")

    # Global aliases.
    n0.cli("bucket", "alias", "docs", "docs-2")
    assert sorted(bucket_info(n0, "docs-2")["globalAliases"]) == ["docs", "docs-2"]
    fails(n0, "bucket", "alias", "docs", "taken", match="already points to another bucket")
    fails(n0, "bucket", "alias", "docs", "No_Good", match="invalid bucket name")
    n0.cli("bucket", "unalias", "docs")
    fails(n0, "bucket", "info", "docs", match="does not exist")
    fails(n0, "bucket", "unalias", "docs-2", match="last alias")

    # Local aliases need a permission of the key on the bucket.
    fails(n0, "bucket", "alias", "--local", "carol", "docs-2", "mydocs", match="no permission")
    n0.cli("bucket", "allow", "--read", "docs-2", "--key", "carol")
    info = api(n0, "AddBucketAlias", {"bucketId": bid, "localAlias": "mydocs", "accessKeyId": key_id})
    assert info["keys"][0]["bucketLocalAliases"] == ["mydocs"]
    k = wait_until(lambda: (i := key_info(n1, "carol"))["buckets"] and i["buckets"][0]["localAliases"] and i,
                   15, "local alias on node 1")
    assert k["buckets"][0]["localAliases"] == ["mydocs"] and k["buckets"][0]["id"] == bid
    listed = {b["id"]: b for b in cli_json(n0, "ListBuckets", "bucket", "list")}
    assert listed[bid]["localAliases"] == [{"accessKeyId": key_id, "alias": "mydocs"}]

    # With a local alias left, the last global alias may go; then the local one may not.
    info = api(n0, "RemoveBucketAlias", {"bucketId": bid, "globalAlias": "docs-2"})
    assert info["globalAliases"] == []
    fails(n0, "bucket", "unalias", "--local", "carol", "mydocs", match="last alias")
    n0.cli("bucket", "alias", bid[:12], "docs")
    n0.cli("bucket", "unalias", "--local", "carol", "mydocs")
    assert bucket_info(n0, "docs")["keys"][0]["bucketLocalAliases"] == []
    fails(n0, "bucket", "unalias", "--local", "carol", "mydocs", match="no local alias")


@pytest.mark.slow
def test_deny_keeps_the_other_permissions(cluster: Cluster) -> None:
    n0, _, n2 = cluster.nodes
    n0.cli("bucket", "create", "perms")
    key_id = cli_json(n0, "CreateKey", "key", "create", "dan")["accessKeyId"]
    n0.cli("bucket", "allow", "--read", "--write", "--owner", "perms", "--key", "dan")
    assert "read true, write false, owner true" in n0.cli("bucket", "deny", "--write", "perms", "--key", key_id)
    bid = bucket_info(n0, "perms")["id"]
    info = api(n0, "DenyBucketKey", {"bucketId": bid, "accessKeyId": key_id, "permissions": {"owner": True}})
    assert perms_of(info, key_id) == {"read": True, "write": False, "owner": False}
    wait_until(lambda: perms_of(bucket_info(n2, "perms"), key_id) == {"read": True, "write": False, "owner": False},
               15, "permissions on node 2")
    info = api(n0, "AllowBucketKey", {"bucketId": bid, "accessKeyId": key_id, "permissions": {"write": True}})
    assert perms_of(info, key_id) == {"read": True, "write": True, "owner": False}
    fails(n0, "bucket", "allow", "perms", "--key", "dan", match="--read")
    n0.cli("bucket", "set-quotas", "perms", "--max-size", "10M", "--max-objects", "5")
    assert bucket_info(n0, "perms")["quotas"] == {"maxSize": 10_000_000, "maxObjects": 5}
    info = api(n0, "UpdateBucket", {"id": bid, "body": {"quotas": {"maxSize": None, "maxObjects": 7}}})
    assert info["quotas"] == {"maxSize": None, "maxObjects": 7}
    fails(n0, "bucket", "allow", "--read", "perms", match="missing option")  # bad arguments: one line too


@pytest.mark.slow
def test_delete_bucket_refused_while_not_empty(cluster: Cluster, tmp_path) -> None:
    n0, n1, _ = cluster.nodes
    n0.cli("bucket", "create", "full")
    bid = bucket_info(n0, "full")["id"]
    f = tmp_path / "obj"
    f.write_bytes(b"hello" * 100)
    n0.cli("debug", "put-object", "full", "obj", str(f))
    wait_until(lambda: bucket_info(n1, "full")["objects"] == 1, 15, "the object counter")
    fails(n0, "bucket", "delete", "full", match="--yes")
    fails(n0, "bucket", "delete", "full", "--yes", match="not empty")
    n0.cli("debug", "delete-object", "full", "obj")
    assert n0.cli("bucket", "delete", "full", "--yes").strip() == "Bucket full was deleted."
    wait_until(lambda: n1.cli_raw("bucket", "info", bid).returncode != 0, 15, "node 1 to see the deletion")
    fails(n1, "bucket", "info", bid, match="does not exist")
    assert bid not in [b["id"] for b in cli_json(n0, "ListBuckets", "bucket", "list")]
    n0.cli("bucket", "create", "full")  # the alias is free again
    assert bucket_info(n0, "full")["id"] != bid


@pytest.mark.slow
def test_delete_key_removes_its_permissions_and_local_aliases(cluster: Cluster) -> None:
    n0, n1, _ = cluster.nodes
    n0.cli("bucket", "create", "shared")
    key_id = cli_json(n0, "CreateKey", "key", "create", "erin")["accessKeyId"]
    n0.cli("bucket", "allow", "--read", "--owner", "shared", "--key", "erin")
    n0.cli("bucket", "alias", "--local", "erin", "shared", "erins")
    assert perms_of(bucket_info(n0, "shared"), key_id) == {"read": True, "write": False, "owner": True}
    fails(n0, "key", "delete", "erin", match="--yes")
    n0.cli("key", "delete", "erin", "--yes")
    fails(n0, "key", "info", key_id, match="no access key matches")
    info = wait_until(lambda: (i := bucket_info(n1, "shared"))["keys"] == [] and i, 15, "node 1 to drop the key")
    assert info["globalAliases"] == ["shared"]
    listed = {b["id"]: b for b in cli_json(n1, "ListBuckets", "bucket", "list")}
    assert listed[info["id"]]["localAliases"] == []
    wait_until(lambda: key_id not in [k["id"] for k in cli_json(n1, "ListKeys", "key", "list")], 15,
               "node 1 to drop the key from its list")
    # A deleted key id cannot be imported again.
    fails(n0, "key", "import", key_id, "00" * 32, "--yes", match="deleted")


async def test_helper_writes_both_sides_with_one_timestamp_that_wins_over_a_fast_clock(tmp_path) -> None:
    """In-process: a permission stamped by a node whose clock is 1 h ahead is still replaced."""
    nodes = await start_cluster(tmp_path, 3, rf=3, workers=False)
    try:
        model = nodes[0].model
        async with locked(model) as helper:
            key = await helper.create_key("skewed")
            bucket = await helper.create_bucket()
            await helper.set_global_bucket_alias(bucket.id, "skewed")
            ahead = now_ms() + 3_600_000
            await helper.set_bucket_key_permissions(bucket.id, key.key_id, (True, True, False))
            # What a node with a fast clock would have written on both sides:
            b = await helper.get_existing_bucket(bucket.id)
            p = b.params()
            perm = BucketKeyPerm(ahead, True, True, True)
            p = msgspec.structs.replace(p, authorized_keys=p.authorized_keys.merge(
                LwwMap.raw_item(key.key_id, ahead, perm)))
            await model.bucket_table.insert(Bucket(bucket.id, Deletable.present(p)))
        async with locked(model) as helper:
            await helper.change_bucket_key_permissions(bucket.id, key.key_id, read=False, write=False,
                                                       owner=True, allow=False)
        for node in nodes:
            h = Helper(node.model)

            async def replaced(h: Helper = h) -> bool:
                both = await _perm_on_both_sides(h, bucket.id, key.key_id)
                return both is not None and both[0].timestamp > ahead

            await wait_for(replaced, what="the new permission on both sides")
            bp, kp = await _perm_on_both_sides(h, bucket.id, key.key_id)
            assert bp == kp and bp.timestamp > ahead
            assert (bp.allow_read, bp.allow_write, bp.allow_owner) == (True, True, False)
            assert await h.resolve_global_bucket_name("skewed") == bucket.id
    finally:
        await stop_all(nodes)


async def _perm_on_both_sides(h: Helper, bucket_id: bytes, key_id: str):  # type: ignore[no-untyped-def]
    b, k = await h.get_internal_bucket(bucket_id), await h.get_internal_key(key_id)
    if b is None or k is None:
        return None
    bp, kp = b.params().authorized_keys.get(key_id), k.params().authorized_buckets.get(bucket_id)
    if bp is None or kp is None or bp != kp:
        return None
    return bp, kp
