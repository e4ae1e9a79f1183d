"""Per-bucket counters (sharded): objects, bytes, unfinished uploads (Garage `index_counter.rs`).

Every node that stores a bucket's objects counts what it stores, locally and in the same
transaction as the object change (`count`), and publishes its totals as its own entry of the
counter table: partition key = bucket id, sort key = node id, values LWW per counter. A
reader takes, per counter, the maximum over the entries of nodes that currently hold the
bucket's partition (all holders store the same objects once synced; the max is the best
lower bound while one lags). Eventually consistent, like Garage's.

Local tree `bucket_counters:local`: bucket id → msgpack {name: value}.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import TYPE_CHECKING, ClassVar

import msgspec

from grange.db import Db, Tx
from grange.table.crdt import LwwMap
from grange.table.schema import TableSchema

if TYPE_CHECKING:
    from grange.table.data import TableData

COUNTER_NAMES = ("objects", "bytes", "unfinished_uploads")


class CounterEntry(msgspec.Struct, frozen=True, array_like=True):
    bucket_id: bytes
    node: str
    values: LwwMap[str, int]

    def merge(self, other: CounterEntry) -> CounterEntry:
        return CounterEntry(self.bucket_id, self.node, self.values.merge(other.values))


class CounterTable(TableSchema[CounterEntry]):
    name: ClassVar[str] = "bucket_object_counter"
    ENTRY_VERSIONS: ClassVar[dict[int, type]] = {1: CounterEntry}

    def partition_key(self, entry: CounterEntry) -> bytes:
        return entry.bucket_id

    def sort_key(self, entry: CounterEntry) -> str:
        return entry.node


class BucketCounters:
    """The local side: keeps this node's counts and queues its entry for replication."""

    def __init__(self, db: Db, node_id: str, clock_ms: Callable[[], int] | None = None) -> None:
        self.local = db.open_tree("bucket_counters:local")
        self.node_id = node_id
        self.clock_ms = clock_ms or (lambda: int(time.time() * 1000))
        self.counter_data: TableData | None = None  # set by the wiring

    def count(self, tx: Tx, bucket_id: bytes, old: dict[str, int], new: dict[str, int]) -> None:
        delta = {k: new[k] - old[k] for k in COUNTER_NAMES if new[k] != old[k]}
        if not delta:
            return
        raw = tx.get(self.local, bucket_id)
        cur: dict[str, int] = msgspec.msgpack.decode(raw) if raw is not None else dict.fromkeys(COUNTER_NAMES, 0)
        for k, d in delta.items():
            cur[k] = cur.get(k, 0) + d
        tx.insert(self.local, bucket_id, msgspec.msgpack.encode(cur))
        if self.counter_data is not None:
            now = self.clock_ms()
            values = LwwMap.from_entries((k, now, cur[k]) for k in sorted(cur))
            self.counter_data.queue_insert(tx, CounterEntry(bucket_id, self.node_id, values))

    @staticmethod
    def totals(entries: list[CounterEntry], holders: list[str]) -> dict[str, int]:
        out = dict.fromkeys(COUNTER_NAMES, 0)
        for e in entries:
            if holders and e.node not in holders:
                continue
            for k, v in e.values.items():
                out[k] = max(out.get(k, 0), v)
        return out
