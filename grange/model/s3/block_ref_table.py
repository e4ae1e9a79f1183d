"""Block references (sharded): block hash / version uuid → deleted flag (Garage `block_ref_table.rs`).

This is where the table layer meets the block layer (design §3): a reference that appears
increments the block's local refcount, one that becomes deleted decrements it — in the same
transaction, through the callbacks the model wiring supplies (`BlockManager.rc`).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import ClassVar

import msgspec

from grange.db import Tx
from grange.table.crdt import Bool
from grange.table.schema import TableSchema


class BlockRef(msgspec.Struct, frozen=True, array_like=True):
    block: bytes
    version: bytes
    deleted: Bool

    def merge(self, other: BlockRef) -> BlockRef:
        return BlockRef(self.block, self.version, self.deleted.merge(other.deleted))


class BlockRefTable(TableSchema[BlockRef]):
    name: ClassVar[str] = "block_ref"
    ENTRY_VERSIONS: ClassVar[dict[int, type]] = {1: BlockRef}

    def __init__(self) -> None:
        super().__init__()
        # (tx, block hash) → None; supplied by the model wiring from the block manager.
        self.incref: Callable[[Tx, bytes], None] | None = None
        self.decref: Callable[[Tx, bytes], None] | None = None

    def partition_key(self, entry: BlockRef) -> bytes:
        return entry.block

    def sort_key(self, entry: BlockRef) -> bytes:
        return entry.version

    def is_tombstone(self, entry: BlockRef) -> bool:
        return entry.deleted.get()

    def updated(self, tx: Tx, old: BlockRef | None, new: BlockRef | None) -> None:
        was = old is not None and not old.deleted.get()
        now = new is not None and not new.deleted.get()
        block = (new or old).block  # type: ignore[union-attr]
        if now and not was and self.incref is not None:
            self.incref(tx, block)
        elif was and not now and self.decref is not None:
            self.decref(tx, block)
