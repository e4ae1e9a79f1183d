"""Internal benchmark operations: table and block load generated *inside* a node.

Reached over the cluster RPC only (`internal=True`), used by `benchmarks/storage_bench.py`.
The load runs on the node's own event loop and goes through the same paths as S3 requests
do (quorum table writes and reads, `rpc_put_block` / `rpc_get_block`), so the client's
own overhead is not in the figures. Each call is bounded: at most `*_MAX` operations and
`BENCH_DEADLINE_S` seconds (below the CLI's 120 s RPC timeout).

They write data that nobody cleans up (a bench bucket, its objects, unreferenced blocks that
block GC later removes): meant for throw-away clusters.

  InternalBenchTable {"op": "insert", "n", "concurrency", "valueSize"}  → {"bucket", ...stats}
  InternalBenchTable {"op": "get", "bucket", "n", "concurrency"}        → stats
  InternalBenchBlocks {"op": "write", "n", "concurrency", "sync"}       → {"hashes", "blockSize", ...stats}
  InternalBenchBlocks {"op": "read", "hashes", "concurrency", "dropCache"} → stats
stats = {"ops", "seconds", "opsPerS", "p50Ms", "p99Ms"} (+ "bytes", "mbPerS" for blocks).
"""

from __future__ import annotations

import asyncio
import hashlib
import os
import time
from collections.abc import Awaitable, Callable
from typing import Any

from grange.api.admin.registry import AdminError, NodeContext, Unavailable, operation, require
from grange.block.store import block_hash
from grange.model.bucket_table import Bucket, BucketParams
from grange.model.s3.object_table import (
    INLINE_THRESHOLD,
    Complete,
    InlineData,
    Object,
    ObjectMeta,
    ObjectVersion,
)
from grange.table.crdt import Deletable
from grange.util.aio import first_error

TABLE_OPS_MAX = 200_000
BLOCK_OPS_MAX = 1024  # 1 GiB of 1 MiB blocks held in the node's memory at most
CONCURRENCY_MAX = 1024
BENCH_DEADLINE_S = 100.0  # below grange.cli.client.CLI_TIMEOUT_S


def _pct(samples: list[float], q: float) -> float:
    s = sorted(samples)
    return s[min(len(s) - 1, int(q * len(s)))]


async def _run(n: int, concurrency: int, one: Callable[[int], Awaitable[None]]) -> dict[str, Any]:
    """Call `one(i)` for i in range(n) from `concurrency` coroutines; latency per call."""
    lat = [0.0] * n
    todo = iter(range(n))

    async def worker() -> None:
        for i in todo:  # shared iterator: each index is taken by exactly one worker
            t0 = time.perf_counter()
            await one(i)
            lat[i] = time.perf_counter() - t0

    start = time.perf_counter()
    try:
        async with asyncio.timeout(BENCH_DEADLINE_S):
            async with asyncio.TaskGroup() as tg:
                for _ in range(min(concurrency, n)):
                    tg.create_task(worker())
    except TimeoutError:
        raise Unavailable(f"benchmark did not finish within {BENCH_DEADLINE_S:.0f}s") from None
    except BaseExceptionGroup as eg:
        raise first_error(eg) from None
    seconds = time.perf_counter() - start
    return {"ops": n, "seconds": round(seconds, 4), "opsPerS": round(n / seconds, 1),
            "p50Ms": round(_pct(lat, 0.50) * 1e3, 3), "p99Ms": round(_pct(lat, 0.99) * 1e3, 3)}


def _int(body: dict[str, Any], name: str, default: int, lo: int, hi: int) -> int:
    v = body.get(name, default)
    require(isinstance(v, int) and not isinstance(v, bool) and lo <= v <= hi,
            f"{name} must be an integer from {lo} to {hi}")
    return v


def _key(i: int) -> str:
    return f"bench/{i:08d}"


@operation("InternalBenchTable", internal=True)
async def bench_table(ctx: NodeContext, body: Any, query: dict[str, str], stream: Any) -> dict[str, Any]:
    """Quorum inserts of small objects (one complete version with inline data) into a new
    bucket, or quorum gets of the objects an earlier insert run wrote."""
    require(isinstance(body, dict) and body.get("op") in ("insert", "get"),
            "InternalBenchTable expects {\"op\": \"insert\"|\"get\", \"n\", \"concurrency\", ...}")
    m = ctx.model
    n = _int(body, "n", 1000, 1, TABLE_OPS_MAX)
    concurrency = _int(body, "concurrency", 32, 1, CONCURRENCY_MAX)
    if body["op"] == "insert":
        size = _int(body, "valueSize", 100, 0, INLINE_THRESHOLD - 1)
        now = int(time.time() * 1000)
        bucket_id = os.urandom(32)
        await m.bucket_table.insert(Bucket(bucket_id, Deletable.present(BucketParams.new(now))))
        data = os.urandom(size)
        meta = ObjectMeta((), size, hashlib.md5(data).hexdigest())
        entries = [Object(bucket_id, _key(i), (ObjectVersion(os.urandom(32), now, Complete(InlineData(meta, data))),))
                   for i in range(n)]  # built before the clock starts

        async def insert(i: int) -> None:
            await m.object_table.insert(entries[i])

        return {"bucket": bucket_id.hex(), **await _run(n, concurrency, insert)}

    bucket = body.get("bucket")
    require(isinstance(bucket, str) and len(bucket) == 64, "get needs the \"bucket\" an insert run returned")
    try:
        bucket_id = bytes.fromhex(bucket)
    except ValueError:
        raise AdminError("bucket must be 64 hex characters") from None
    missing: list[int] = []

    async def get(i: int) -> None:
        obj = await m.object_table.get(bucket_id, _key(i))
        if obj is None or obj.last_data() is None:
            missing.append(i)

    stats = await _run(n, concurrency, get)
    if missing:
        raise Unavailable(f"{len(missing)} of {n} bench objects not found (first: {_key(missing[0])})")
    return stats


@operation("InternalBenchBlocks", internal=True)
async def bench_blocks(ctx: NodeContext, body: Any, query: dict[str, str], stream: Any) -> dict[str, Any]:
    """Writes of random blocks of the node's `block_size` through `rpc_put_block` (write
    quorum of the cluster), or reads of blocks an earlier write run stored through
    `rpc_get_block` (closest holder first: the node itself when it holds a copy)."""
    require(isinstance(body, dict) and body.get("op") in ("write", "read"),
            "InternalBenchBlocks expects {\"op\": \"write\"|\"read\", ...}")
    m = ctx.model
    concurrency = _int(body, "concurrency", 4, 1, CONCURRENCY_MAX)
    block_size = m.config.block_size
    if body["op"] == "write":
        n = _int(body, "n", 128, 1, BLOCK_OPS_MAX)

        def make() -> tuple[list[bytes], list[bytes]]:
            blocks = [os.urandom(block_size) for _ in range(n)]
            return blocks, [block_hash(b) for b in blocks]

        blocks, hashes = await asyncio.to_thread(make)  # before the clock starts

        async def put(i: int) -> None:
            await m.blocks.rpc_put_block(hashes[i], blocks[i])

        stats = await _run(n, concurrency, put)
        out: dict[str, Any] = {**stats, "blockSize": block_size, "bytes": n * block_size,
                               "mbPerS": round(n * block_size / stats["seconds"] / 1e6, 1),
                               "hashes": [h.hex() for h in hashes]}
        if body.get("sync"):
            # Time until every replica write has ended (the ones past quorum hold their bytes
            # of the RAM budget until then) and the data is on disk: with data_fsync = false
            # writes are acknowledged from the page cache. os.sync flushes every process of
            # this machine, which is the point when all nodes share one disk.
            t0 = time.perf_counter()
            async with asyncio.timeout(BENCH_DEADLINE_S):
                while m.blocks.budget.used:
                    await asyncio.sleep(0.002)
            await asyncio.to_thread(os.sync)
            out["syncSeconds"] = round(time.perf_counter() - t0, 4)
            out["mbPerSSynced"] = round(n * block_size / (stats["seconds"] + out["syncSeconds"]) / 1e6, 1)
        return out

    raw = body.get("hashes")
    require(isinstance(raw, list) and 0 < len(raw) <= BLOCK_OPS_MAX
            and all(isinstance(h, str) and len(h) == 64 for h in raw),
            f"read needs \"hashes\": 1 to {BLOCK_OPS_MAX} block hashes (64 hex characters)")
    try:
        hashes = [bytes.fromhex(h) for h in raw]
    except ValueError:
        raise AdminError("hashes must be 64 hex characters") from None
    if body.get("dropCache"):
        await asyncio.to_thread(_drop_cache, m.blocks.store, hashes)
    total = 0

    async def get(i: int) -> None:
        nonlocal total
        data = await m.blocks.rpc_get_block(hashes[i])  # hash checked by the store / the manager
        total += len(data)

    stats = await _run(len(hashes), concurrency, get)
    return {**stats, "bytes": total, "mbPerS": round(total / stats["seconds"] / 1e6, 1)}


def _drop_cache(store: Any, hashes: list[bytes]) -> None:
    """Evict this node's copies of the blocks from the page cache (no root needed)."""
    for h in hashes:
        path = store.path_of(h)
        if path is None:
            continue
        fd = os.open(path, os.O_RDONLY)
        try:
            os.posix_fadvise(fd, 0, 0, os.POSIX_FADV_DONTNEED)
        finally:
            os.close(fd)
