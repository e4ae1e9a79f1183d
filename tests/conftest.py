"""Shared fixtures: real single-node and 3-node clusters with an S3 key and bucket."""

from __future__ import annotations

import pytest

from tests.cluster import Cluster, S3Access, wait_until


def _cluster(tmp_path, n: int, rf: int) -> Cluster:
    c = Cluster(tmp_path, n, rf=rf)
    c.start()
    if n > 1:
        c.connect()
    c.assign_and_apply([f"dc{i % 3 + 1}" for i in range(n)])
    for node in c.nodes:
        wait_until(lambda node=node: node.api("GetClusterLayout")["version"] == 1, 20, "layout 1")
    return c


@pytest.fixture
def s3_single(tmp_path):
    """One node (rf=1) with an S3 key and a bucket `test`: (cluster, access)."""
    c = _cluster(tmp_path, 1, 1)
    try:
        yield c, S3Access(c.nodes[0])
    finally:
        c.stop()


@pytest.fixture
def s3_cluster3(tmp_path):
    """Three nodes (rf=3) with an S3 key and a bucket `test` known everywhere."""
    c = _cluster(tmp_path, 3, 3)
    try:
        access = S3Access(c.nodes[0])
        for node in c.nodes:
            wait_until(lambda node=node: node.api("GetBucketInfo", {"globalAlias": "test"}), 20, "bucket everywhere")
        yield c, access
    finally:
        c.stop()
