"""A replicated table: quorum writes, quorum reads with merge and read repair (Garage `table.rs`).

RPC endpoint `table/<name>`, body `{"op": ..., ...}`:

    update   {entries: [bytes]}                       merge into the local store
    get      {pk, sk}                                 → encoded entry or None
    range    {pk, start, filter, limit, reverse}      → [encoded entries]
    roots / node / ...                                anti-entropy (sync.py)
    gc_delete {items: [(key, hash)]}                  GC (gc.py)

Round trips: an insert is one quorum RPC to the holders (all at once, return at quorum; the
others finish in the background); a read is one quorum RPC, merged, and nodes that
answered an older value get the merged one in the background (read repair).
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import Any, Generic, TypeVar

from grange.db import Db
from grange.db.batch import WriteBatcher
from grange.net.errors import RemoteError, RpcError
from grange.net.frame import Priority
from grange.net.netapp import NetApp
from grange.rpc.rpc_helper import BackgroundCalls, QuorumError, RequestStrategy, call_many, call_quorum_sets
from grange.table.data import TableData
from grange.table.replication import TableReplication
from grange.table.schema import PartitionKey, SortKey, TableSchema, partition_hash
from grange.util.aio import run_all

log = logging.getLogger("grange.table")

E = TypeVar("E")

TABLE_RPC_TIMEOUT_S = 30.0
# Entries per update RPC when inserting a large batch (bounds one message's size).
INSERT_BATCH_MAX = 1000


@dataclass
class TableContext:
    """What a table needs from the node (given by the model layer when it wires tables)."""

    netapp: NetApp
    db: Db
    background: BackgroundCalls
    order_nodes: Callable[[list[str]], list[str]]  # preferred read order (self, zone, RTT)
    batcher: WriteBatcher | None = None  # group commit of table writes (None: one by one)


class Table(Generic[E]):
    def __init__(self, ctx: TableContext, schema: TableSchema[E], replication: TableReplication) -> None:
        self.ctx = ctx
        self.schema = schema
        self.replication = replication
        self.name = schema.name
        self.data = TableData(ctx.db, schema, batcher=ctx.batcher)
        self.endpoint = f"table/{self.name}"
        self.extra_handlers: dict[str, Callable[[str, dict[str, Any]], Any]] = {}
        ctx.netapp.register(self.endpoint, self._handle)

    # ------------------------------------------------------------------ writes
    async def insert(self, entry: E) -> None:
        await self.insert_many([entry])

    async def insert_many(self, entries: Iterable[E]) -> None:
        """Write entries with a write quorum in every live layout version of their partition."""
        groups: dict[tuple[tuple[str, ...], ...], list[bytes]] = {}
        for entry in entries:
            sets = self.replication.write_sets(partition_hash(self.schema.partition_key(entry)))
            if not sets:
                raise QuorumError(1, 0, 0, ["the cluster layout has no storage nodes yet"])
            key = tuple(tuple(s) for s in sets)
            groups.setdefault(key, []).append(self.schema.encode(entry))
        quorum = self.replication.write_quorum()
        strategy = RequestStrategy(quorum=quorum, prio=Priority.INTERACTIVE, timeout_s=TABLE_RPC_TIMEOUT_S)
        await run_all(*(
            self._write(list(map(list, sets)), encoded[off : off + INSERT_BATCH_MAX], strategy)
            for sets, encoded in groups.items()
            for off in range(0, len(encoded), INSERT_BATCH_MAX)
        ))

    async def _write(self, sets: list[list[str]], encoded: list[bytes], strategy: RequestStrategy) -> None:
        body = {"op": "update", "entries": encoded}

        async def call(node: str) -> Any:
            return await self.ctx.netapp.call(node, self.endpoint, body, prio=strategy.prio,
                                              timeout_s=strategy.timeout_s)

        quorums = [min(strategy.quorum, len(s)) for s in sets]
        await call_quorum_sets(sets, call, quorums, strategy, self.ctx.background)

    async def insert_best_effort(self, entry: E, timeout_s: float = 10.0) -> int:
        """Write to every reachable holder and wait for each answer, with no quorum; returns
        how many accepted. For compensating writes (marking a failed upload aborted), which
        must reach the nodes that may hold the failed write before the caller returns."""
        sets = self.replication.write_sets(partition_hash(self.schema.partition_key(entry)))
        nodes = list(dict.fromkeys(n for s in sets for n in s))
        body = {"op": "update", "entries": [self.schema.encode(entry)]}

        async def one(node: str) -> bool:
            try:
                await self.ctx.netapp.call(node, self.endpoint, body, prio=Priority.INTERACTIVE, timeout_s=timeout_s)
                return True
            except (RpcError, TimeoutError):
                return False

        return sum(await asyncio.gather(*(one(n) for n in nodes)))

    async def push_to(self, nodes: list[str], encoded: list[bytes], prio: int = Priority.BACKGROUND) -> None:
        """Send entries to exactly these nodes, all of which must accept (sync, GC, repair)."""
        body = {"op": "update", "entries": encoded}

        async def call(node: str) -> Any:
            return await self.ctx.netapp.call(node, self.endpoint, body, prio=prio, timeout_s=TABLE_RPC_TIMEOUT_S)

        await call_many(nodes, call, RequestStrategy(len(nodes), prio, TABLE_RPC_TIMEOUT_S), None)

    # ------------------------------------------------------------------ reads
    async def get(self, pk: PartitionKey, sk: SortKey = b"") -> E | None:
        phash = partition_hash(pk)
        nodes = self.ctx.order_nodes(self.replication.read_nodes(phash))
        if nodes == [self.ctx.netapp.id]:  # full copy held here: a local read, no quorum machinery
            raw = self.data.read_entry_raw(pk, sk)
            return self.schema.decode(raw) if raw is not None else None
        body = {"op": "get", "pk": pk, "sk": sk}
        answers = await self._read(nodes, body)
        merged: E | None = None
        for _, raw in answers:
            if raw is not None:
                e = self.schema.decode(raw)
                merged = e if merged is None else self.schema.merge(merged, e)
        if merged is not None:
            merged_raw = self.schema.encode(merged)
            stale = [n for n, raw in answers if raw != merged_raw]
            if stale:
                self._repair(stale, [merged_raw])
        return merged

    async def get_range(
        self, pk: PartitionKey, start: SortKey | None = None, filter: Any = None, limit: int = 1000,
        reverse: bool = False, end: SortKey | None = None,
    ) -> list[E]:
        """Entries of partition `pk` from `start`, merged over a read quorum, in key order."""
        phash = partition_hash(pk)
        nodes = self.ctx.order_nodes(self.replication.read_nodes(phash))
        body = {"op": "range", "pk": pk, "start": start, "end": end, "filter": filter, "limit": limit,
                "reverse": reverse}
        answers = await self._read(nodes, body)
        by_key: dict[bytes, E] = {}
        raw_by_node: list[tuple[str, dict[bytes, bytes]]] = []
        for node, raws in answers:
            seen: dict[bytes, bytes] = {}
            for raw in raws:
                e = self.schema.decode(raw)
                k = self.schema.tree_key_of(e)
                seen[k] = raw
                by_key[k] = e if k not in by_key else self.schema.merge(by_key[k], e)
            raw_by_node.append((node, seen))
        keys = sorted(by_key, reverse=reverse)[:limit]
        out, repairs = [], {}
        for k in keys:
            merged_raw = self.schema.encode(by_key[k])
            for node, seen in raw_by_node:
                if k in seen and seen[k] != merged_raw:
                    repairs.setdefault(node, []).append(merged_raw)
            if self.schema.matches_filter(by_key[k], filter):
                out.append(by_key[k])
        for node, raws in repairs.items():
            self._repair([node], raws)
        return out

    async def _read(self, nodes: list[str], body: dict[str, Any]) -> list[tuple[str, Any]]:
        if not nodes:
            raise QuorumError(1, 0, 0, ["the cluster layout has no storage nodes yet"])
        quorum = min(self.replication.read_quorum(), len(nodes))

        async def call(node: str) -> Any:
            return await self.ctx.netapp.call(node, self.endpoint, body, prio=Priority.INTERACTIVE,
                                              timeout_s=TABLE_RPC_TIMEOUT_S)

        return await call_many(nodes, call, RequestStrategy(quorum, Priority.INTERACTIVE, TABLE_RPC_TIMEOUT_S), None)

    def _repair(self, nodes: list[str], encoded: list[bytes]) -> None:
        body = {"op": "update", "entries": encoded}
        for node in nodes:
            self.ctx.background.spawn(
                self.ctx.netapp.call(node, self.endpoint, body, prio=Priority.BACKGROUND, timeout_s=TABLE_RPC_TIMEOUT_S)
            )

    # ------------------------------------------------------------------ RPC handler
    async def _handle(self, peer: str, body: Any, stream: Any) -> Any:
        if not isinstance(body, dict):
            raise RemoteError("malformed table request")
        op = body.get("op")
        if op == "update":
            entries = body.get("entries")
            if not isinstance(entries, list) or not all(isinstance(e, bytes) for e in entries):
                raise RemoteError("update needs a list of encoded entries")
            if self.data.batcher is not None:
                await self.data.update_many_batched(entries)
            else:
                await asyncio.to_thread(self.data.update_many, entries)
            return None
        if op == "get":
            return self.data.read_entry_raw(body["pk"], body["sk"])
        if op == "range":
            limit = int(body.get("limit") or 1000)
            return await asyncio.to_thread(
                self.data.read_range_raw, body["pk"], body.get("start"), body.get("filter"),
                min(limit, 10_000), bool(body.get("reverse")), body.get("end"),
            )
        handler = self.extra_handlers.get(op)  # type: ignore[arg-type]
        if handler is None:
            raise RemoteError(f"unknown table operation {op!r}")
        return await handler(peer, body)
