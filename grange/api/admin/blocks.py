"""Block operations: ListBlockErrors, GetBlockInfo, RetryBlockResync, PurgeBlocks (node-scoped)."""

from __future__ import annotations

from typing import Any

from grange.api.admin.fanout import fan_out
from grange.api.admin.registry import AdminError, NodeContext, operation, require


def _hash(text: Any) -> bytes:
    if not isinstance(text, str) or len(text) != 64:
        raise AdminError(f"invalid block hash {text!r}: expected 64 hex characters")
    try:
        return bytes.fromhex(text)
    except ValueError:
        raise AdminError(f"invalid block hash {text!r}: expected 64 hex characters") from None


@operation("ListBlockErrors", node_scoped=True)
async def list_block_errors(ctx: NodeContext, body: Any, query: dict[str, str]) -> dict[str, Any]:
    async def local(c: NodeContext) -> list[dict[str, Any]]:
        now = c.model.blocks.resync.clock_ms()
        return [
            {"blockHash": h.hex(), "refcount": c.model.blocks.rc.count(h), "errorCount": e.errors,
             "lastTrySecsAgo": max(0, (now - e.last_try_ms) // 1000),
             "nextTryInSecs": max(0, (e.next_try_ms - now) // 1000)}
            for h, e in c.model.blocks.resync.list_errors()
        ]

    return await fan_out(ctx, "ListBlockErrors", query, local, body)


@operation("GetBlockInfo", node_scoped=True)
async def get_block_info(ctx: NodeContext, body: Any, query: dict[str, str]) -> dict[str, Any]:
    require(isinstance(body, dict), "GetBlockInfo expects {\"blockHash\": HEX}")
    h = _hash(body.get("blockHash"))

    async def local(c: NodeContext) -> dict[str, Any]:
        m = c.model
        refs = await m.block_ref_table.get_range(h, limit=10_000)
        versions = []
        for ref in refs:
            v = await m.version_table.get(ref.version)
            versions.append({
                "versionId": ref.version.hex(),
                "refDeleted": ref.deleted.get(),
                "versionDeleted": v is not None and v.deleted.get(),
                "garbageCollected": v is None,
                "backlink": None if v is None else {"object": {"bucketId": v.bucket_id.hex(), "key": v.key}},
            })
        return {"blockHash": h.hex(), "refcount": m.blocks.rc.count(h), "versions": versions,
                "storedLocally": await m.blocks.store.exists(h)}

    return await fan_out(ctx, "GetBlockInfo", query, local, body)


@operation("RetryBlockResync", node_scoped=True)
async def retry_block_resync(ctx: NodeContext, body: Any, query: dict[str, str]) -> dict[str, Any]:
    require(isinstance(body, dict) and ("all" in body or "blockHashes" in body),
            "RetryBlockResync expects {\"all\": true} or {\"blockHashes\": [HEX...]}")
    hashes = None if body.get("all") else [_hash(x) for x in body.get("blockHashes") or []]

    async def local(c: NodeContext) -> dict[str, int]:
        return {"count": c.model.blocks.resync.retry_now(hashes)}

    return await fan_out(ctx, "RetryBlockResync", query, local, body)


@operation("PurgeBlocks", node_scoped=True)
async def purge_blocks(ctx: NodeContext, body: Any, query: dict[str, str]) -> dict[str, Any]:
    require(isinstance(body, list), "PurgeBlocks expects a JSON list of block hashes")
    hashes = [_hash(x) for x in body]

    async def local(c: NodeContext) -> dict[str, int]:
        return await c.model.purge_blocks(hashes)

    return await fan_out(ctx, "PurgeBlocks", query, local, body)
