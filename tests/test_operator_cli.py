"""The storage operator commands through the CLI, answers checked against the admin contract."""

from __future__ import annotations

import json
import os

import pytest

from tests.cluster import CliFailed
from tests.spec import assert_matches_spec

pytestmark = pytest.mark.slow


def test_worker_block_repair_and_stats_commands(s3_single) -> None:
    c, access = s3_single
    node = c.nodes[0]
    access.client(node).put_object(Bucket="test", Key="k", Body=os.urandom(1_500_000))

    workers = node.api("ListWorkers", {"node": "self"})
    assert_matches_spec("ListWorkers", workers)
    names = {w["name"] for w in workers["success"][node.id]}
    assert {"object Merkle", "object sync", "Block resync worker", "Block scrub worker"} <= names
    out = node.cli("worker", "list")
    assert "Block resync worker" in out and "object sync" in out
    tid = workers["success"][node.id][0]["id"]
    assert_matches_spec("GetWorkerInfo", node.api("GetWorkerInfo", {"node": "self", "id": tid}))

    assert_matches_spec("GetWorkerVariable", node.api("GetWorkerVariable", {"node": "self"}))
    node.cli("worker", "set", "resync-tranquility", "3")
    assert "resync-tranquility  3" in node.cli("worker", "get", "resync-tranquility")
    with pytest.raises(CliFailed) as e:
        node.cli("worker", "set", "resync-tranquility", "lots")
    assert e.value.proc.stderr.startswith("error:") and "integer" in e.value.proc.stderr
    with pytest.raises(CliFailed):
        node.cli("worker", "set", "no-such-variable", "1")

    assert_matches_spec("ListBlockErrors", node.api("ListBlockErrors", {"node": "self"}))
    assert "No block errors" in node.cli("block", "list-errors")
    blocks = json.loads(node.cli("debug", "block-list"))["stored"]
    info = node.api("GetBlockInfo", {"node": "self", "blockHash": blocks[0]})
    assert_matches_spec("GetBlockInfo", info)
    [b] = info["success"].values()
    assert b["refcount"] == 1 and b["versions"][0]["backlink"]["object"]["key"] == "k"
    with pytest.raises(CliFailed) as e:
        node.cli("block", "info", "not-a-hash")
    assert "64 hex" in e.value.proc.stderr
    retry = node.api("RetryBlockResync", {"node": "self", "all": True})
    assert_matches_spec("RetryBlockResync", retry)

    for what in ("tables", "blocks", "versions", "mpu", "block-refs", "block-rc", "rebalance"):
        node.cli("repair", "--yes", "--wait", what, timeout=120)
    node.cli("repair", "--yes", "--wait", "scrub", "start", timeout=120)
    with pytest.raises(CliFailed) as e:
        node.cli("repair", "tables")
    assert "--yes" in e.value.proc.stderr
    assert_matches_spec("LaunchRepairOperation",
                        node.api("LaunchRepairOperation", {"node": "self", "repairType": "tables"}))
    # everything still readable after every repair
    assert len(access.client(node).get_object(Bucket="test", Key="k")["Body"].read()) == 1_500_000

    out = node.cli("stats")
    assert node.id[:16] in out and "Storage nodes" in out
    assert_matches_spec("GetNodeStatistics", node.api("GetNodeStatistics", {"node": "self"}))
