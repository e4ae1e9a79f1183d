"""Tombstone garbage collection (Garage `gc.rs`).

A tombstone (a deleted entry) is kept while some holder might not have it: otherwise
anti-entropy would bring the old value back from that holder. It is removed only when
  1. `GC_DELAY_S` (24 h) passed since it was written here, and
  2. every current holder of its partition acknowledged it: we push the tombstone to all of
     them (all must accept), then ask all of them to delete it if it is still that exact
     value (`gc_delete`, compare-and-delete), which we do too.
A tombstone that was replaced by a newer value meanwhile is dropped from the GC queue.
"""

from __future__ import annotations

import asyncio
import logging
import struct
import time
from collections.abc import Callable
from typing import Any

from grange.net.errors import RpcError
from grange.net.frame import Priority
from grange.rpc.rpc_helper import RequestStrategy, call_many
from grange.table.data import value_hash
from grange.table.table import TABLE_RPC_TIMEOUT_S, Table

log = logging.getLogger("grange.table")

GC_DELAY_S = 24 * 3600
GC_BATCH = 1000


class TableGc:
    def __init__(self, table: Table[Any], clock_ms: Callable[[], int] | None = None,
                 delay_s: float = GC_DELAY_S) -> None:
        self.table = table
        self.clock_ms = clock_ms or (lambda: int(time.time() * 1000))
        self.delay_ms = int(delay_s * 1000)
        self.collected = 0
        table.extra_handlers["gc_delete"] = self._handle_delete

    async def _handle_delete(self, peer: str, body: dict[str, Any]) -> int:
        items = [(bytes(k), bytes(h)) for k, h in body["items"]]

        def delete_all() -> int:
            return sum(self.table.data.delete_if_equal(k, h) for k, h in items)

        return await asyncio.to_thread(delete_all)

    async def gc_pass(self) -> int:
        """Collect every eligible tombstone; returns how many were collected."""
        data = self.table.data
        now = self.clock_ms()
        by_holders: dict[tuple[str, ...], list[tuple[bytes, bytes]]] = {}
        for key, raw in list(data.gc_todo.range(limit=GC_BATCH)):
            (ts,) = struct.unpack(">Q", raw[:8])
            h = raw[8:]
            if ts + self.delay_ms > now:
                continue
            cur = data.store.get(key)
            if cur is None or value_hash(cur) != h:
                self._drop_todo(key, raw)  # replaced or already gone
                continue
            sets = self.table.replication.write_sets(key[:32])
            holders = tuple(sorted({n for s in sets for n in s}))
            by_holders.setdefault(holders, []).append((key, h))
        collected = 0
        for holders, items in by_holders.items():
            try:
                collected += await self._collect(list(holders), items)
            except RpcError as e:
                log.info("table %s: GC of %d tombstones postponed: %s", self.table.name, len(items), e)
        self.collected += collected
        return collected

    async def _collect(self, holders: list[str], items: list[tuple[bytes, bytes]]) -> int:
        data = self.table.data
        raws = [raw for k, _ in items if (raw := data.store.get(k)) is not None]
        await self.table.push_to(holders, raws)
        body = {"op": "gc_delete", "items": items}

        async def call(node: str) -> Any:
            return await self.table.ctx.netapp.call(node, self.table.endpoint, body, prio=Priority.BACKGROUND,
                                                    timeout_s=TABLE_RPC_TIMEOUT_S)

        await call_many(holders, call, RequestStrategy(len(holders), Priority.BACKGROUND, TABLE_RPC_TIMEOUT_S), None)
        for k, h in items:
            raw = data.gc_todo.get(k)
            if raw is not None and raw[8:] == h:
                self._drop_todo(k, raw)
        return len(items)

    def _drop_todo(self, key: bytes, raw: bytes) -> None:
        def tx_fn(tx: Any) -> None:
            if tx.get(self.table.data.gc_todo, key) == raw:
                tx.remove(self.table.data.gc_todo, key)

        self.table.data.db.transaction(tx_fn)
