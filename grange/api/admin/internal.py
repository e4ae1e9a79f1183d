"""Internal operations: the test entry point to the data path before the S3 API (issue 3).

Reached over the cluster RPC only (`grange debug ...`), never over HTTP, and not part of
Garage's admin API. Buckets are named by global alias or by hex id.
"""

from __future__ import annotations

import hashlib
from collections.abc import AsyncIterator
from typing import Any

from grange.api.admin.registry import NodeContext, NotFound, operation, require
from grange.model.s3 import objects
from grange.net.conn import Reply


async def resolve_bucket(ctx: NodeContext, name: Any) -> bytes:
    require(isinstance(name, str) and name != "", "a bucket name or id is required")
    m = ctx.model
    alias = await m.bucket_alias_table.get(name)
    if alias is not None and alias.bucket_id() is not None:
        return alias.bucket_id()  # type: ignore[return-value]
    if len(name) == 64:
        try:
            bucket_id = bytes.fromhex(name)
        except ValueError:
            bucket_id = b""
        if bucket_id:
            b = await m.bucket_table.get(bucket_id)
            if b is not None and not b.is_deleted():
                return bucket_id
    raise NotFound(f"no such bucket: {name}")


@operation("InternalPutObject", internal=True)
async def put_object(ctx: NodeContext, body: Any, query: dict[str, str], stream: Any) -> dict[str, Any]:
    require(isinstance(body, dict) and isinstance(body.get("key"), str), "InternalPutObject expects {bucket, key}")
    bucket_id = await resolve_bucket(ctx, body.get("bucket"))

    async def chunks() -> AsyncIterator[bytes]:
        if stream is not None:
            async for c in stream:
                yield c

    res = await objects.put_object(ctx.model, bucket_id, body["key"], chunks())
    return {"version": res.version.hex(), "etag": res.etag, "size": res.size}


@operation("InternalGetObject", internal=True)
async def get_object(ctx: NodeContext, body: Any, query: dict[str, str], stream: Any) -> Reply:
    require(isinstance(body, dict) and isinstance(body.get("key"), str), "InternalGetObject expects {bucket, key}")
    bucket_id = await resolve_bucket(ctx, body.get("bucket"))
    try:
        version, meta, data = await objects.get_object(ctx.model, bucket_id, body["key"])
    except objects.NoSuchKey:
        raise NotFound(f"no such key: {body['key']}") from None
    return Reply({"size": meta.size, "etag": meta.etag, "version": version.uuid.hex()}, data)


@operation("InternalDeleteObject", internal=True)
async def delete_object(ctx: NodeContext, body: Any, query: dict[str, str], stream: Any) -> dict[str, Any]:
    require(isinstance(body, dict) and isinstance(body.get("key"), str), "InternalDeleteObject expects {bucket, key}")
    await objects.delete_object(ctx.model, await resolve_bucket(ctx, body.get("bucket")), body["key"])
    return {}


@operation("InternalListObjects", internal=True)
async def list_objects(ctx: NodeContext, body: Any, query: dict[str, str], stream: Any) -> list[dict[str, Any]]:
    require(isinstance(body, dict), "InternalListObjects expects {bucket, start, limit}")
    bucket_id = await resolve_bucket(ctx, body.get("bucket"))
    out = []
    for obj in await objects.list_objects(ctx.model, bucket_id, body.get("start"), int(body.get("limit") or 1000)):
        last = obj.last_data()
        assert last is not None
        meta = last.state.data.meta  # type: ignore[union-attr]
        out.append({"key": obj.key, "size": meta.size, "etag": meta.etag})
    return out


@operation("InternalTableInfo", internal=True)
async def table_info(ctx: NodeContext, body: Any, query: dict[str, str], stream: Any) -> dict[str, Any]:
    """Per table: entry count, queue lengths, and a digest of all 256 Merkle roots (after
    draining the Merkle todo), so tests can compare replicas."""
    out = {}
    for t in ctx.model.tables:
        syncer = ctx.model.syncers[t.name]
        await syncer.drain_merkle()
        roots = b"".join(syncer.merkle.root_hash(p) for p in range(256))
        out[t.name] = {**t.data.statistics(), "rootsDigest": hashlib.blake2b(roots, digest_size=16).hexdigest(),
                       "syncedVersion": syncer.synced_version}
    return out


@operation("InternalBlockList", internal=True)
async def block_list(ctx: NodeContext, body: Any, query: dict[str, str], stream: Any) -> dict[str, Any]:
    import asyncio

    m = ctx.model
    hashes = await asyncio.to_thread(lambda: sorted(h.hex() for h, _ in m.blocks.store.iter_blocks()))
    needed = sorted(k.hex() for k, _ in m.blocks.rc.tree.range() if m.blocks.rc.is_needed(k))
    return {"stored": hashes, "needed": needed, "resyncQueue": m.blocks.resync.queue_len()}
