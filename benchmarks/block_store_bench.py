"""Local block store throughput, next to a raw sequential write of the same disk.

Prints one JSON line per measurement:
  {"bench": "raw_write", "mib": ..., "mb_per_s": ...}       os.write 1 MiB chunks + one fsync
  {"bench": "block_write"|"block_read", "data": "random"|"text", "compression": null|LEVEL,
   "data_fsync": bool, "concurrency": N, "cache": "warm"|"cold", "mib": ..., "mb_per_s": ...}

Blocks are 1 MiB; `--mib` of them are written into a fresh store in a temp dir on the disk
of `--dir`, then read back. "cold" reads drop each block file from the page cache first
(posix_fadvise DONTNEED, no root needed); "warm" reads do not. MB/s is 10^6 bytes of block
data (uncompressed) per second.
Usage: python benchmarks/block_store_bench.py [--mib 256] [--dir /tmp] [--concurrency 4]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import random
import shutil
import tempfile
import time

from grange.block.store import BlockStore, block_hash

MIB = 1024 * 1024


def raw_write(directory: str, mib: int) -> float:
    """dd-style reference: one file, 1 MiB writes, fsync at the end; MB/s."""
    chunk = os.urandom(MIB)
    path = os.path.join(directory, "raw.bin")
    start = time.perf_counter()
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    try:
        for _ in range(mib):
            os.write(fd, chunk)
        os.fsync(fd)
    finally:
        os.close(fd)
    elapsed = time.perf_counter() - start
    os.unlink(path)
    return mib * MIB / elapsed / 1e6


def make_blocks(kind: str, n: int) -> list[bytes]:
    if kind == "random":
        return [os.urandom(MIB) for _ in range(n)]
    rng = random.Random(1)
    words = [w.encode() for w in "the quick brown fox jumps over a lazy dog grange garage block".split()]
    out = []
    for i in range(n):
        text = b" ".join(rng.choice(words) for _ in range(MIB // 4)) + str(i).encode()
        out.append(text[:MIB])
    return out


async def run_one(
    base: str, blocks: list[bytes], level: int | None, fsync: bool, concurrency: int
) -> tuple[float, float, float]:
    """(write, warm read, cold read) MB/s of `blocks` in a fresh store."""
    root = tempfile.mkdtemp(dir=base, prefix="blocks-")
    try:
        store = BlockStore(
            os.path.join(root, "data"),
            os.path.join(root, "meta"),
            compression_level=level,
            data_fsync=fsync,
            io_threads=max(concurrency, 1),
        )
        hashes = [block_hash(b) for b in blocks]
        sem = asyncio.Semaphore(concurrency)

        async def write(h: bytes, b: bytes) -> None:
            async with sem:
                await store.write(h, b)

        async def read(h: bytes) -> int:
            async with sem:
                return len(await store.read(h))

        async def read_all() -> float:
            start = time.perf_counter()
            total = sum(await asyncio.gather(*(read(h) for h in hashes)))
            assert total == len(blocks) * MIB
            return total / (time.perf_counter() - start) / 1e6

        start = time.perf_counter()
        await asyncio.gather(*(write(h, b) for h, b in zip(hashes, blocks, strict=True)))
        if not fsync:
            await asyncio.to_thread(os.sync)  # count the flush, as the raw reference does
        write_mb_s = len(blocks) * MIB / (time.perf_counter() - start) / 1e6
        warm = await read_all()
        for h in hashes:  # evict the block files from the page cache
            path = store.path_of(h)
            assert path is not None
            fd = os.open(path, os.O_RDONLY)
            os.posix_fadvise(fd, 0, 0, os.POSIX_FADV_DONTNEED)
            os.close(fd)
        cold = await read_all()
        await store.close()
        return write_mb_s, warm, cold
    finally:
        shutil.rmtree(root, ignore_errors=True)


async def main() -> None:
    p = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    p.add_argument("--mib", type=int, default=256)
    p.add_argument("--dir", default=tempfile.gettempdir())
    p.add_argument("--concurrency", type=int, default=4)
    args = p.parse_args()
    raw = raw_write(args.dir, args.mib)
    print(json.dumps({"bench": "raw_write", "mib": args.mib, "mb_per_s": round(raw, 1)}), flush=True)
    data = {"random": make_blocks("random", args.mib), "text": make_blocks("text", args.mib)}
    cases = [("random", None, False), ("random", 1, False), ("random", None, True), ("text", 1, False)]
    for kind, level, fsync in cases:
        w, warm, cold = await run_one(args.dir, data[kind], level, fsync, args.concurrency)
        common = {
            "data": kind,
            "compression": level,
            "data_fsync": fsync,
            "concurrency": args.concurrency,
            "mib": args.mib,
        }
        print(json.dumps({"bench": "block_write", **common, "mb_per_s": round(w, 1)}), flush=True)
        for cache, r in (("warm", warm), ("cold", cold)):
            print(
                json.dumps({"bench": "block_read", **common, "cache": cache, "mb_per_s": round(r, 1)}),
                flush=True,
            )


if __name__ == "__main__":
    asyncio.run(main())
