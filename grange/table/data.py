"""The local copy of one table: entries, and the queues that changes feed (Garage `data.rs`).

Trees of the metadata database, per table `<name>`:

    <name>:data          tree_key → encoded entry (version byte + msgpack)
    <name>:merkle_todo   tree_key → BLAKE2b-256 of the new encoded entry, b"" if deleted
    <name>:gc_todo       tree_key → BLAKE2b-256 of a tombstone waiting for collection,
                         prefixed by its 8-byte big-endian timestamp in ms
    <name>:insert_queue  tree_key → encoded entry to insert with quorum (written by other
                         tables' `updated` reactions, drained by the insert-queue worker)

When changing this code, keep in step: the Merkle updater (`merkle.py`, reads
`merkle_todo`), the GC (`gc.py`, reads `gc_todo`), and `Table` (`table.py`).

Every write goes through `update_many` / `_update_in_tx`: read old, CRDT-merge, write if the
bytes changed, record the Merkle todo, queue a tombstone for GC, and call the schema's
`updated(tx, old, new)` — all in one transaction. Methods here are synchronous: the async
layer runs them in its thread pool.
"""

from __future__ import annotations

import logging
import struct
import time
from collections.abc import Callable
from typing import Any, Generic, TypeVar

from grange.db import Db, Tx, prefix_end
from grange.db.batch import WriteBatcher
from grange.table.merkle import todo_value
from grange.table.schema import (
    EntryDecodeError,
    PartitionKey,
    SortKey,
    TableSchema,
    key_bytes,
    partition_hash,
)

log = logging.getLogger("grange.table")

E = TypeVar("E")


def value_hash(encoded: bytes) -> bytes:
    return todo_value(encoded)


class TableData(Generic[E]):
    def __init__(self, db: Db, schema: TableSchema[E], clock_ms: Callable[[], int] | None = None,
                 batcher: WriteBatcher | None = None) -> None:
        self.db = db
        self.batcher = batcher
        self.schema = schema
        self.name = schema.name
        self.store = db.open_tree(f"{self.name}:data")
        self.merkle_todo = db.open_tree(f"{self.name}:merkle_todo")
        self.gc_todo = db.open_tree(f"{self.name}:gc_todo")
        self.insert_queue = db.open_tree(f"{self.name}:insert_queue")
        self.clock_ms = clock_ms or (lambda: int(time.time() * 1000))
        # Callbacks run after a transaction that changed entries committed (wake workers).
        self.on_commit: list[Callable[[], None]] = []

    # ------------------------------------------------------------------ reads
    def read_entry_raw(self, pk: PartitionKey, sk: SortKey) -> bytes | None:
        return self.store.get(partition_hash(pk) + key_bytes(sk))

    def read_range_raw(
        self, pk: PartitionKey, start: SortKey | None, filter: Any, limit: int, reverse: bool = False,
        end: SortKey | None = None,
    ) -> list[bytes]:
        """Encoded entries of partition `pk` from sort key `start` (inclusive), in order.

        With `reverse`, `start` is the largest sort key included. Entries the filter rejects
        (including tombstones, when the filter says so) are skipped and do not count.
        """
        ph = partition_hash(pk)
        lo, hi = ph, prefix_end(ph)
        if not reverse:
            if start is not None:
                lo = ph + key_bytes(start)
            if end is not None:
                hi = ph + key_bytes(end)
        else:
            if start is not None:
                hi = ph + key_bytes(start) + b"\x00"  # inclusive upper bound
            if end is not None:
                lo = ph + key_bytes(end)
        out: list[bytes] = []
        for _, raw in self.store.range(lo, hi, reverse=reverse):
            try:
                entry = self.schema.decode(raw)
            except EntryDecodeError as e:
                log.error("table %s: undecodable local entry skipped: %s", self.name, e)
                continue
            if self.schema.matches_filter(entry, filter):
                out.append(raw)
                if len(out) >= limit:
                    break
        return out

    # ------------------------------------------------------------------ writes
    def update_many(self, encoded: list[bytes]) -> list[bytes]:
        """Merge received entries into the local store; returns the changed entries' new bytes."""
        changed = self.db.transaction(self._update_fn(encoded))
        self._committed(changed)
        return changed

    async def update_many_batched(self, encoded: list[bytes]) -> list[bytes]:
        """`update_many` through the node's group commit (many callers, one transaction)."""
        assert self.batcher is not None
        changed = await self.batcher.run(self._update_fn(encoded))
        self._committed(changed)
        return changed  # type: ignore[no-any-return]

    def _update_fn(self, encoded: list[bytes]) -> Callable[[Tx], list[bytes]]:
        entries = [self.schema.decode(raw) for raw in encoded]  # validate before writing anything

        def tx_fn(tx: Tx) -> list[bytes]:
            changed = []
            for entry in entries:
                new = self._update_in_tx(tx, entry)
                if new is not None:
                    changed.append(new)
            return changed

        return tx_fn

    def _committed(self, changed: list[bytes]) -> None:
        if changed:
            for cb in self.on_commit:
                cb()

    def _update_in_tx(self, tx: Tx, entry: E) -> bytes | None:
        key = self.schema.tree_key_of(entry)
        old_raw = tx.get(self.store, key)
        old = self.schema.decode(old_raw) if old_raw is not None else None
        new = self.schema.merge(old, entry) if old is not None else entry
        new_raw = self.schema.encode(new)
        if new_raw == old_raw:
            return None
        tx.insert(self.store, key, new_raw)
        vh = value_hash(new_raw)
        tx.insert(self.merkle_todo, key, todo_value(new_raw))
        if self.schema.is_tombstone(new):
            tx.insert(self.gc_todo, key, struct.pack(">Q", self.clock_ms()) + vh)
        self.schema.updated(tx, old, new)
        return new_raw

    def delete_if_equal(self, key: bytes, expected_hash: bytes) -> bool:
        """Remove an entry if it is still the value whose hash we know (GC, offload)."""

        def tx_fn(tx: Tx) -> bool:
            cur = tx.get(self.store, key)
            if cur is None or value_hash(cur) != expected_hash:
                return False
            old = self.schema.decode(cur)
            tx.remove(self.store, key)
            tx.insert(self.merkle_todo, key, todo_value(None))
            self.schema.updated(tx, old, None)
            return True

        removed = self.db.transaction(tx_fn)
        if removed:
            for cb in self.on_commit:
                cb()
        return removed

    # ------------------------------------------------------------------ insert queue
    def queue_insert(self, tx: Tx, entry: E) -> None:
        """Called from another table's `updated`: insert `entry` with quorum, later."""
        key = self.schema.tree_key_of(entry)
        cur = tx.get(self.insert_queue, key)
        if cur is not None:
            entry = self.schema.merge(self.schema.decode(cur), entry)
        tx.insert(self.insert_queue, key, self.schema.encode(entry))

    def statistics(self) -> dict[str, int]:
        return {
            "items": self.store.len(),
            "merkle_todo": self.merkle_todo.len(),
            "gc_todo": self.gc_todo.len(),
            "insert_queue": self.insert_queue.len(),
        }

