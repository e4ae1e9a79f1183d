"""Replicated tables and blocks on in-process nodes: quorums, read repair, anti-entropy, GC."""

from __future__ import annotations

import os

import pytest

from grange.model.s3 import objects
from grange.rpc.rpc_helper import QuorumError
from tests.inproc import new_bucket, start_cluster, stop_all, wait_for


async def _put(node, bucket_id: bytes, key: str, data: bytes):
    async def body():
        for off in range(0, len(data), 100_000):
            yield data[off : off + 100_000]

    return await objects.put_object(node.model, bucket_id, key, body())


async def _get(node, bucket_id: bytes, key: str) -> bytes:
    _, _, stream = await objects.get_object(node.model, bucket_id, key)
    return b"".join([c async for c in stream])


async def test_full_copy_and_sharded_writes_are_readable_everywhere(tmp_path) -> None:
    nodes = await start_cluster(tmp_path, 3, rf=3)
    a, b, c = nodes
    try:
        bucket = new_bucket()
        await a.model.bucket_table.insert(bucket)
        for node in nodes:  # written to all-but-one at least, and read locally: wait for the last
            await wait_for(lambda node=node: node.model.bucket_table.data.read_entry_raw(bucket.id, b"") is not None)
        small, big = os.urandom(1000), os.urandom(300_000)  # inline, and 5 blocks of 64 KiB
        await _put(a, bucket.id, "small", small)
        res = await _put(a, bucket.id, "big", big)
        assert res.size == len(big)
        for node in nodes:
            assert await _get(node, bucket.id, "small") == small
            assert await _get(node, bucket.id, "big") == big
        listed = await objects.list_objects(c.model, bucket.id)
        assert [o.key for o in listed] == ["big", "small"]
        await objects.delete_object(b.model, bucket.id, "small")
        with pytest.raises(objects.NoSuchKey):
            await _get(c, bucket.id, "small")
    finally:
        await stop_all(nodes)


async def test_two_of_three_down_writes_fail_with_quorum_error_and_nothing_appears(tmp_path) -> None:
    nodes = await start_cluster(tmp_path, 3, rf=3)
    a, b, c = nodes
    try:
        bucket = new_bucket()
        await a.model.bucket_table.insert(bucket)
        await wait_for(lambda: all(n.model.bucket_table.data.read_entry_raw(bucket.id, b"") for n in nodes))
        await b.stop()
        await c.stop()
        await wait_for(lambda: not a.system.is_up(b.id) and not a.system.is_up(c.id), what="b, c down")
        with pytest.raises(QuorumError, match="quorum not reached"):
            await _put(a, bucket.id, "x", os.urandom(200_000))
        with pytest.raises(QuorumError):
            await _put(a, bucket.id, "tiny", b"hello")
        with pytest.raises(QuorumError):
            await objects.list_objects(a.model, bucket.id)
        # locally, at most an "uploading" or aborted version exists: never a visible object
        for raw in a.model.object_table.data.read_range_raw(bucket.id, None, "data", 100):
            pytest.fail(f"a failed write became visible: {raw!r}")
    finally:
        await a.stop()


async def test_lagging_node_converges_through_anti_entropy(tmp_path) -> None:
    nodes = await start_cluster(tmp_path, 3, rf=3)
    a, b, c = nodes
    try:
        bucket = new_bucket()
        await a.model.bucket_table.insert(bucket)
        # c misses writes: drop its table endpoint for a while (as if its disk were stalled)
        handler = c.netapp.endpoints["table/object"]

        async def refuse(peer, body, stream):
            raise RuntimeError("stalled")

        c.netapp.endpoints["table/object"] = refuse
        for i in range(20):
            await _put(a, bucket.id, f"k{i:02d}", f"value {i}".encode())
        c.netapp.endpoints["table/object"] = handler
        assert c.model.object_table.data.store.len() == 0
        await a.model.sync_all_tables()
        await c.model.sync_all_tables()
        roots = []
        for node in nodes:
            await node.model.syncers["object"].drain_merkle()
            roots.append([node.model.merkle["object"].root_hash(p) for p in range(256)])
        assert roots[0] == roots[1] == roots[2]
        assert c.model.object_table.data.store.len() == 20
    finally:
        await stop_all(nodes)


async def test_read_repair_fixes_a_stale_replica(tmp_path) -> None:
    nodes = await start_cluster(tmp_path, 3, rf=3, workers=False)
    a, b, c = nodes
    try:
        bucket = new_bucket()
        handler = c.netapp.endpoints["table/object"]

        async def refuse(peer, body, stream):
            raise RuntimeError("stalled")

        c.netapp.endpoints["table/object"] = refuse
        await _put(a, bucket.id, "k", b"v1")
        c.netapp.endpoints["table/object"] = handler
        # c reads with quorum 2: it asks everyone, merges, and repairs itself
        assert await _get(c, bucket.id, "k") == b"v1"
        await wait_for(lambda: c.model.object_table.data.read_entry_raw(bucket.id, "k") is not None, what="repair")
    finally:
        await stop_all(nodes)


async def test_tombstones_are_collected_only_when_every_holder_has_them(tmp_path) -> None:
    nodes = await start_cluster(tmp_path, 3, rf=3, workers=False, gc_delay_s=0)
    a, b, c = nodes
    try:
        bucket = new_bucket()
        await _put(a, bucket.id, "k", b"v")
        await objects.delete_object(a.model, bucket.id, "k")
        gc = a.model.gcs["object"]
        await c.stop()
        await wait_for(lambda: not a.system.is_up(c.id), what="c down")
        assert await gc.gc_pass() == 0  # c cannot acknowledge: the tombstone stays
        assert a.model.object_table.data.read_entry_raw(bucket.id, "k") is not None
    finally:
        await stop_all([a, b])


async def test_tombstones_are_collected_everywhere_once_every_holder_has_them(tmp_path) -> None:
    nodes = await start_cluster(tmp_path, 3, rf=3, workers=False, gc_delay_s=0)
    a, b, c = nodes
    try:
        bucket = new_bucket()
        await _put(a, bucket.id, "k", b"v")
        await objects.delete_object(a.model, bucket.id, "k")
        assert await a.model.gcs["object"].gc_pass() == 1
        for node in nodes:
            assert node.model.object_table.data.read_entry_raw(bucket.id, "k") is None
    finally:
        await stop_all(nodes)


async def test_corrupted_block_is_read_from_another_holder_and_refetched(tmp_path) -> None:
    nodes = await start_cluster(tmp_path, 3, rf=3)
    a, b, c = nodes
    try:
        bucket = new_bucket()
        data = os.urandom(100_000)
        await _put(a, bucket.id, "k", data)
        h = next(iter(h for h, _ in a.model.blocks.store.iter_blocks()))
        path = a.model.blocks.store.path_of(h)
        with open(path, "r+b") as f:
            f.seek(10)
            f.write(b"\xff\xfe\xfd")
        assert await _get(a, bucket.id, "k") == data  # another holder served it
        await wait_for(lambda: a.model.blocks.store.path_of(h) is not None and os.path.exists(path + ".corrupted"),
                       what="quarantine")
        await a.model.scrub_worker.run_once()
        await wait_for(lambda: a.model.blocks.resync.queue_len() == 0, what="resync")
        assert await a.model.blocks.store.read(h)  # verified read: a good copy again
    finally:
        await stop_all(nodes)


async def test_repairs_keep_the_parts_of_an_upload_in_progress(tmp_path) -> None:
    from grange.model.s3 import multipart

    nodes = await start_cluster(tmp_path, 1, rf=1)
    (a,) = nodes
    try:
        bucket = new_bucket()
        upload = await multipart.create_upload(a.model, bucket.id, "big", ())
        data = [os.urandom(70_000), os.urandom(1000)]

        async def body(d: bytes):
            yield d

        etags = []
        for n, d in enumerate(data, 1):
            res = await multipart.put_part(a.model, bucket.id, "big", upload.upload_id, n, body(d))
            etags.append((n, res.etag))
        for kind in ("versions", "multipartUploads", "blockRefs", "blockRc"):
            await a.model.repair(kind)
        await multipart.complete_upload(a.model, bucket.id, "big", upload.upload_id, etags, min_part_size=1)
        assert await _get(a, bucket.id, "big") == b"".join(data)
    finally:
        await stop_all(nodes)
