"""Table and block throughput of a real cluster (1 node rf=1, 3 nodes rf=3), next to the raw
disk write speed of the same machine.

Prints one JSON line per measurement:
  {"bench": "raw_write", "mib": ..., "mb_per_s": ...}        os.write 1 MiB chunks + one fsync
  {"bench": "table_insert"|"table_get", "nodes": N, "rf": N, "ops": ..., "concurrency": ...,
   "ops_per_s": ..., "p50_ms": ..., "p99_ms": ...}
  {"bench": "block_write", "nodes": N, "rf": N, "blocks": ..., "block_bytes": ..., "concurrency": ...,
   "mb_per_s": ..., "mb_per_s_synced": ..., "p50_ms": ..., "p99_ms": ...}
  {"bench": "block_read", ..., "cache": "warm"|"cold", "mb_per_s": ..., "p50_ms": ..., "p99_ms": ...}
  {"bench": "machine", ...}

Each cluster is N real `grange server` processes on 127.0.0.1 (`tests/cluster.py`: config
files, `node connect`, `layout assign/apply`, one zone per node, default config: lmdb,
metadata_fsync = data_fsync = false, 1 MiB blocks, zstd level 1). This process is the
client: it sends one internal admin operation per measurement to node 0 over the cluster
RPC (`InternalBenchTable`, `InternalBenchBlocks`, `grange/api/admin/bench.py`), and node 0
runs the load on its own event loop with the given concurrency, timing every operation:
- table_insert: quorum inserts of small objects (one complete version, 100 bytes inline)
  into one new bucket; table_get: quorum reads of the same keys;
- block_write: random 1 MiB blocks through `rpc_put_block` (write quorum); `mb_per_s` is
  until the last write quorum (what a client waits for), `mb_per_s_synced` until every
  replica write has ended and one `os.sync` returned (with data_fsync = false a block is
  acknowledged from the page cache; raw_write includes its fsync);
- block_read: the same blocks through `rpc_get_block` (node 0 holds a copy in both clusters,
  so reads are local); "warm" right after the writes, "cold" after node 0 evicted its copies
  from the page cache.
MB/s is 10^6 bytes per second. All nodes share this machine's cores and disk, so the 3-node
figures show the cost of replication, not the capacity of 3 machines. Loops are bounded in
count, each operation run in the node within 100 s.
Usage: .venv/bin/python benchmarks/storage_bench.py [--nodes 1,3] [--table-ops 5000] [--blocks 128]
           [--raw-mib 256] [--dir /tmp]
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from block_store_bench import raw_write  # noqa: E402  (same reference as the block store bench)

from grange.cli.client import admin_call  # noqa: E402
from grange.util.config import load_config  # noqa: E402
from tests.cluster import Cluster, wait_until  # noqa: E402

MIB = 1024 * 1024
TABLE_WARMUP_OPS = 200
BLOCK_WARMUP = 4


def emit(row: dict[str, Any]) -> None:
    print(json.dumps(row), flush=True)


def bench_cluster(base: str, n: int, args: argparse.Namespace) -> None:
    with tempfile.TemporaryDirectory(dir=base, prefix=f"storage-bench-{n}-") as root:
        cluster = Cluster(Path(root), n, rf=n)
        try:
            cluster.start()
            cluster.connect()
            cluster.assign_and_apply([f"dc{i + 1}" for i in range(n)])
            for node in cluster.nodes:
                wait_until(lambda node=node: node.api("GetClusterLayout")["version"] == 1, 30, "layout 1")
            config = load_config(str(cluster.nodes[0].config), os.environ)

            def call(op: str, body: dict[str, Any]) -> Any:
                return admin_call(config, None, op, body)

            common = {"nodes": n, "rf": n}

            def latency_row(bench: str, res: dict[str, Any], **extra: Any) -> dict[str, Any]:
                return {"bench": bench, **common, **extra, "ops": res["ops"], "ops_per_s": res["opsPerS"],
                        "p50_ms": res["p50Ms"], "p99_ms": res["p99Ms"]}

            # Warm-up (connections, LMDB pages, code paths), not reported.
            warm = call("InternalBenchTable", {"op": "insert", "n": TABLE_WARMUP_OPS, "concurrency": args.table_concurrency})
            call("InternalBenchTable", {"op": "get", "bucket": warm["bucket"], "n": TABLE_WARMUP_OPS,
                                        "concurrency": args.table_concurrency})
            call("InternalBenchBlocks", {"op": "write", "n": BLOCK_WARMUP, "concurrency": args.block_concurrency})

            tc = {"concurrency": args.table_concurrency}
            ins = call("InternalBenchTable", {"op": "insert", "n": args.table_ops, "valueSize": args.value_size, **tc})
            emit(latency_row("table_insert", ins, value_bytes=args.value_size, **tc))
            got = call("InternalBenchTable", {"op": "get", "bucket": ins["bucket"], "n": args.table_ops, **tc})
            emit(latency_row("table_get", got, **tc))

            bc = {"concurrency": args.block_concurrency}
            w = call("InternalBenchBlocks", {"op": "write", "n": args.blocks, "sync": True, **bc})
            block_common = {"blocks": args.blocks, "block_bytes": w["blockSize"], **bc}
            emit({**latency_row("block_write", w, **block_common), "mb_per_s": w["mbPerS"],
                  "mb_per_s_synced": w["mbPerSSynced"]})
            for cache in ("warm", "cold"):
                r = call("InternalBenchBlocks", {"op": "read", "hashes": w["hashes"], "dropCache": cache == "cold", **bc})
                assert r["bytes"] == args.blocks * w["blockSize"], r
                emit({**latency_row("block_read", r, **block_common, cache=cache), "mb_per_s": r["mbPerS"]})
        except Exception:
            for node in cluster.nodes:
                print(f"--- node {node.index} log tail ---\n{node.log_tail()}", file=sys.stderr)
            raise
        finally:
            cluster.stop()


def main() -> None:
    p = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    p.add_argument("--nodes", default="1,3", help="cluster sizes, comma-separated (rf = size)")
    p.add_argument("--table-ops", type=int, default=5000)
    p.add_argument("--table-concurrency", type=int, default=32)
    p.add_argument("--value-size", type=int, default=100, help="inline object data, bytes")
    p.add_argument("--blocks", type=int, default=128, help="1 MiB blocks written then read")
    p.add_argument("--block-concurrency", type=int, default=4)
    p.add_argument("--raw-mib", type=int, default=256)
    p.add_argument("--dir", default=tempfile.gettempdir(), help="where the clusters and the raw file go")
    args = p.parse_args()
    started = time.monotonic()
    emit({"bench": "raw_write", "mib": args.raw_mib, "mb_per_s": round(raw_write(args.dir, args.raw_mib), 1)})
    for n in (int(x) for x in args.nodes.split(",")):
        bench_cluster(args.dir, n, args)
    emit({"bench": "machine", "cpus": os.cpu_count(), "python": sys.version.split()[0], "dir": args.dir,
          "median_of": "single run", "seconds": round(time.monotonic() - started, 1),
          "date": time.strftime("%Y-%m-%d")})


if __name__ == "__main__":
    main()
