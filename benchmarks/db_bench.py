"""Micro-benchmark of the db engines; prints one JSON line per (engine, measurement).

    .venv/bin/python benchmarks/db_bench.py [--engines memory,lmdb,sqlite] [--fsync] [--seconds 1]

Measurements, each bounded to about `--seconds`:
- `insert_single`: `tree.insert` of a new 16-byte key, 100-byte value, outside a transaction;
- `txn100`: transactions of 100 such inserts (`ops_per_s` counts transactions);
- `get`: random point gets of existing keys;
- `get_4threads_with_writer`: point gets from 4 threads while a 5th commits single inserts
  (shows whether readers wait for the writer; `ops_per_s` counts gets);
- `range_scan`: `list(tree.range())` over the whole tree (`ops_per_s` counts items).
"""

from __future__ import annotations

import argparse
import json
import os
import random
import sys
import tempfile
import threading
import time
from collections.abc import Callable
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from grange.db import Db, Tree, Tx, open_db  # noqa: E402

VALUE = b"v" * 100


def timed(seconds: float, step: Callable[[], int]) -> tuple[int, float]:
    """Call `step` (which returns how many ops it did) until `seconds` elapsed."""
    n = 0
    t0 = time.perf_counter()
    deadline = t0 + seconds
    while True:
        n += step()
        now = time.perf_counter()
        if now >= deadline:
            return n, now - t0


def report(engine: str, fsync: bool, op: str, n: int, elapsed: float, **extra: object) -> None:
    line = {"engine": engine, "fsync": fsync, "op": op, "n": n, "seconds": round(elapsed, 3),
            "ops_per_s": round(n / elapsed), **extra}
    print(json.dumps(line), flush=True)


def bench(engine: str, fsync: bool, seconds: float) -> None:
    with tempfile.TemporaryDirectory() as tmp:
        db: Db = open_db(engine, tmp, fsync=fsync)
        try:
            run(db, engine, fsync, seconds)
        finally:
            db.close()


def run(db: Db, engine: str, fsync: bool, seconds: float) -> None:
    t: Tree = db.open_tree("bench")
    counter = iter(range(10**9))

    def new_key() -> bytes:
        return os.urandom(8) + b"%08d" % next(counter)

    def single() -> int:
        for _ in range(10):
            t.insert(new_key(), VALUE)
        return 10

    report(engine, fsync, "insert_single", *timed(seconds, single))

    def txn100() -> int:
        def fn(tx: Tx) -> None:
            for _ in range(100):
                tx.insert(t, new_key(), VALUE)

        db.transaction(fn)
        return 1

    n, elapsed = timed(seconds, txn100)
    report(engine, fsync, "txn100", n, elapsed, items_per_s=round(100 * n / elapsed))

    # Bring the tree to a fixed size for reads.
    while t.len() < 100_000:
        db.transaction(lambda tx: [tx.insert(t, new_key(), VALUE) for _ in range(1000)])
    keys = [k for k, _ in t.range(limit=20_000)]
    size = t.len()
    rng = random.Random(1)

    def gets() -> int:
        for _ in range(100):
            t.get(keys[rng.randrange(len(keys))])
        return 100

    report(engine, fsync, "get", *timed(seconds, gets), tree_items=size)

    stop = threading.Event()

    def writer() -> None:
        while not stop.is_set():
            t.insert(new_key(), VALUE)

    counts = [0] * 4

    def reader(i: int) -> None:
        r = random.Random(i)
        while not stop.is_set():
            for _ in range(100):
                t.get(keys[r.randrange(len(keys))])
            counts[i] += 100

    threads = [threading.Thread(target=writer)] + [threading.Thread(target=reader, args=(i,)) for i in range(4)]
    t0 = time.perf_counter()
    for th in threads:
        th.start()
    time.sleep(seconds)
    stop.set()
    for th in threads:
        th.join()
    report(engine, fsync, "get_4threads_with_writer", sum(counts), time.perf_counter() - t0)

    def scan() -> int:
        return sum(1 for _ in t.range())

    report(engine, fsync, "range_scan", *timed(seconds, scan), tree_items=t.len())


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--engines", default="memory,lmdb,sqlite")
    parser.add_argument("--fsync", action="store_true", help="metadata_fsync = true")
    parser.add_argument("--seconds", type=float, default=1.0, help="duration of each measurement")
    args = parser.parse_args()
    for engine in args.engines.split(","):
        bench(engine, args.fsync, args.seconds)


if __name__ == "__main__":
    main()
