"""Block reference counts on this node (Garage `block/rc.rs`).

Tree `block_local_rc`: block hash → either
    b"P" + count:u64 BE        Present: `count` block refs on this node point at the block
    b"D" + at_ms:u64 BE        Deletable: no ref since; the file may go once `at_ms` passed
(absent = never referenced or already cleared).

`incref`/`decref` run inside the transaction that changed a block ref (the block_ref table's
reaction, wired by `model`), and put the block in the resync queue in that same transaction,
so the resync worker always learns of a change, even across a crash. A block whose count
drops to zero stays `BLOCK_GC_DELAY_S` (10 min) before deletion, so that a re-reference
arriving shortly after (e.g. a copy racing a delete) finds it still there.
"""

from __future__ import annotations

import struct
import time
from collections.abc import Callable

from grange.db import Db, Tx

BLOCK_GC_DELAY_S = 600
RESYNC_AFTER_INCREF_S = 10


class BlockRc:
    def __init__(
        self,
        db: Db,
        resync_enqueue: Callable[[Tx, bytes, int], None],
        clock_ms: Callable[[], int] | None = None,
        gc_delay_s: float = BLOCK_GC_DELAY_S,
    ) -> None:
        self.tree = db.open_tree("block_local_rc")
        self.db = db
        self._enqueue = resync_enqueue  # (tx, hash, when_ms): put in the resync queue
        self.clock_ms = clock_ms or (lambda: int(time.time() * 1000))
        self.gc_delay_ms = int(gc_delay_s * 1000)

    @staticmethod
    def _decode(raw: bytes | None) -> tuple[str, int]:
        if raw is None:
            return ("A", 0)
        return (chr(raw[0]), struct.unpack(">Q", raw[1:9])[0])

    def incref(self, tx: Tx, block: bytes) -> None:
        kind, n = self._decode(tx.get(self.tree, block))
        tx.insert(self.tree, block, b"P" + struct.pack(">Q", n + 1 if kind == "P" else 1))
        # Checked a little later: the upload that created this reference is usually still
        # writing the block (Garage waits 2 × its block timeout for the same reason).
        self._enqueue(tx, block, self.clock_ms() + int(RESYNC_AFTER_INCREF_S * 1000))

    def decref(self, tx: Tx, block: bytes) -> None:
        kind, n = self._decode(tx.get(self.tree, block))
        if kind == "P" and n > 1:
            tx.insert(self.tree, block, b"P" + struct.pack(">Q", n - 1))
            return
        at = self.clock_ms() + self.gc_delay_ms
        tx.insert(self.tree, block, b"D" + struct.pack(">Q", at))
        self._enqueue(tx, block, at)

    # ------------------------------------------------------------------ reads
    def count(self, block: bytes) -> int:
        kind, n = self._decode(self.tree.get(block))
        return n if kind == "P" else 0

    def is_needed(self, block: bytes) -> bool:
        return self._decode(self.tree.get(block))[0] == "P"

    def deletable_at(self, block: bytes) -> int | None:
        """When the block may be deleted (ms), None if it is still referenced."""
        kind, n = self._decode(self.tree.get(block))
        if kind == "P":
            return None
        return n if kind == "D" else 0

    def clear_deleted(self, block: bytes) -> None:
        """Forget a Deletable entry whose block file is gone (compare-and-delete)."""

        def tx_fn(tx: Tx) -> None:
            raw = tx.get(self.tree, block)
            if raw is not None and raw[:1] == b"D":
                tx.remove(self.tree, block)

        self.db.transaction(tx_fn)

    def recount(self, block: bytes, count: int) -> None:
        """Set the count from the block_ref table (`repair block-rc`)."""

        def tx_fn(tx: Tx) -> None:
            if count > 0:
                tx.insert(self.tree, block, b"P" + struct.pack(">Q", count))
            else:
                kind, _ = self._decode(tx.get(self.tree, block))
                if kind == "P":
                    tx.insert(self.tree, block, b"D" + struct.pack(">Q", self.clock_ms() + self.gc_delay_ms))
            self._enqueue(tx, block, self.clock_ms())

        self.db.transaction(tx_fn)
