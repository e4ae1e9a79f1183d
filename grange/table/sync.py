"""Anti-entropy: make every holder of a partition hold the same entries (Garage `sync.rs`).

One pass, for each of the 256 partitions:
- if this node holds the partition in some live layout version, compare Merkle roots with
  every other holder (one `merkle_roots` RPC per peer for all partitions at once); where
  roots differ, descend (`merkle_node`, one round trip per level) into differing children
  only, and **push** our entries under every differing subtree. Sync is push-only: the
  peer's own pass pushes what we lack, so both converge without pulling;
- if it holds the partition in no live version (the layout moved it away), **offload**:
  push every local entry of the partition to its current holders (all must accept), then
  delete each local entry if it is still the value pushed.
A pass that completed for every partition marks the table synced for the layout version it
started with; the node reports that in its update trackers (design §6).

Before comparing, the Merkle updater is drained so that the roots reflect every write.
"""

from __future__ import annotations

import asyncio
import logging
from typing import Any

from grange.net.errors import RpcError
from grange.net.frame import Priority
from grange.table.data import value_hash
from grange.table.merkle import Empty, Intermediate, Leaf, MerkleUpdater, decode_node, encode_node, node_hash
from grange.table.table import TABLE_RPC_TIMEOUT_S, Table

log = logging.getLogger("grange.table")

PUSH_BATCH = 500
MERKLE_DRAIN_BATCH = 1000


class TableSyncer:
    def __init__(self, table: Table[Any], merkle: MerkleUpdater, self_id: str,
                 is_up: Any, layout_version: Any) -> None:
        self.table = table
        self.merkle = merkle
        self.self_id = self_id
        self.is_up = is_up  # (node id) -> bool
        self.layout_version = layout_version  # () -> current layout version number
        self.synced_version = 0
        self.items_pushed = 0
        self.items_offloaded = 0
        table.extra_handlers["merkle_roots"] = self._handle_roots
        table.extra_handlers["merkle_node"] = self._handle_node

    # ------------------------------------------------------------------ RPC handlers
    async def _handle_roots(self, peer: str, body: dict[str, Any]) -> list[bytes]:
        await self.drain_merkle()
        return [self.merkle.root_hash(int(p)) for p in body["partitions"]]

    async def _handle_node(self, peer: str, body: dict[str, Any]) -> bytes:
        return encode_node(self.merkle.get_node(int(body["partition"]), bytes(body["prefix"])))

    async def drain_merkle(self) -> None:
        while await asyncio.to_thread(self.merkle.update_pending, MERKLE_DRAIN_BATCH):
            pass

    async def _call(self, peer: str, body: dict[str, Any]) -> Any:
        return await self.table.ctx.netapp.call(peer, self.table.endpoint, body, prio=Priority.BACKGROUND,
                                                timeout_s=TABLE_RPC_TIMEOUT_S)

    # ------------------------------------------------------------------ one pass
    async def sync_pass(self) -> bool:
        """One full pass; True if every partition was synced with every holder."""
        version = self.layout_version()
        await self.drain_merkle()
        repl = self.table.replication
        retained: dict[str, list[int]] = {}
        complete = True
        for p in repl.partitions():
            first = bytes([p]) + bytes(31)
            sets = repl.write_sets(first)
            holders = {n for s in sets for n in s}
            if self.self_id in holders:
                for peer in holders - {self.self_id}:
                    retained.setdefault(peer, []).append(p)
            elif sets and self.table.data.store.get_gt(bytes([p])) is not None:
                if not await self._offload(p, repl.storage_nodes(first)):
                    complete = False
        for peer, partitions in retained.items():
            if not self.is_up(peer):
                complete = False
                continue
            try:
                await self._sync_with(peer, partitions)
            except RpcError as e:
                complete = False
                log.info("table %s: sync with %s failed: %s", self.table.name, peer[:16], e)
        if complete:
            self.synced_version = max(self.synced_version, version)
        return complete

    async def _sync_with(self, peer: str, partitions: list[int]) -> None:
        theirs = await self._call(peer, {"op": "merkle_roots", "partitions": partitions})
        to_push: list[bytes] = []
        for p, their_root in zip(partitions, theirs, strict=True):
            if self.merkle.root_hash(p) != their_root:
                await self._descend(peer, p, b"", to_push)
                if len(to_push) >= PUSH_BATCH:
                    await self._push(peer, to_push)
                    to_push = []
        if to_push:
            await self._push(peer, to_push)

    async def _descend(self, peer: str, p: int, prefix: bytes, out: list[bytes]) -> None:
        ours = self.merkle.get_node(p, prefix)
        if isinstance(ours, Empty):
            return  # they hold more than us: their pass pushes it
        theirs = decode_node(await self._call(peer, {"op": "merkle_node", "partition": p, "prefix": prefix}))
        if node_hash(ours) == node_hash(theirs):
            return
        if isinstance(ours, Leaf):
            out.append(ours.key)
        elif isinstance(ours, Intermediate) and isinstance(theirs, Intermediate):
            for byte, h in ours.children:
                if theirs.child(byte) != h:
                    await self._descend(peer, p, prefix + bytes([byte]), out)
        else:
            out.extend(k for k, _ in self.merkle.leaves_under(p, prefix))

    async def _push(self, peer: str, keys: list[bytes]) -> None:
        raws = [raw for k in keys if (raw := self.table.data.store.get(k)) is not None]
        for off in range(0, len(raws), PUSH_BATCH):
            await self.table.push_to([peer], raws[off : off + PUSH_BATCH])
        self.items_pushed += len(raws)

    async def _offload(self, p: int, holders: list[str]) -> bool:
        if not holders or not all(self.is_up(n) for n in holders):
            return False
        store = self.table.data.store
        lo, hi = bytes([p]), bytes([p + 1]) if p < 255 else None
        while True:
            batch = list(store.range(lo, hi, limit=PUSH_BATCH))
            if not batch:
                return True
            try:
                await self.table.push_to(holders, [raw for _, raw in batch])
            except RpcError as e:
                log.info("table %s: offloading partition %d failed: %s", self.table.name, p, e)
                return False
            for k, raw in batch:
                await asyncio.to_thread(self.table.data.delete_if_equal, k, value_hash(raw))
            self.items_offloaded += len(batch)
            log.info("table %s: offloaded %d entries of partition %d", self.table.name, len(batch), p)
