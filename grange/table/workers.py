"""The background workers of one table: Merkle updater, insert queue, anti-entropy, GC.

Each is a `Worker` under the node's supervisor (`grange worker list` shows them) and can run
one pass on demand (`run_once`), which `grange repair tables` and the tests use.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from typing import Any

from grange.table.gc import TableGc
from grange.table.merkle import MerkleUpdater
from grange.table.sync import TableSyncer
from grange.table.table import Table
from grange.util.background import PeriodicWorker, Worker, WorkerState

MERKLE_BATCH = 100
INSERT_QUEUE_BATCH = 100
INSERT_QUEUE_POLL_S = 1.0
# After an incomplete sync pass (a holder down), retry within this delay.
SYNC_RETRY_S = 30.0

# Design §7: anti-entropy every 10 min for sharded tables, 10 s for full-copy ones.
SYNC_INTERVAL_SHARDED_S = 600.0
SYNC_INTERVAL_FULL_S = 10.0
GC_INTERVAL_S = 600.0


class MerkleWorker(Worker):
    def __init__(self, table: Table[Any], merkle: MerkleUpdater) -> None:
        self.name = f"{table.name} Merkle"
        self.merkle = merkle
        self._wake = asyncio.Event()
        table.data.on_commit.append(self._wake.set)

    async def work(self) -> WorkerState:
        self._wake.clear()
        n = await asyncio.to_thread(self.merkle.update_pending, MERKLE_BATCH)
        return WorkerState.BUSY if n else WorkerState.IDLE

    async def wait_for_work(self) -> None:
        try:
            async with asyncio.timeout(10):
                await self._wake.wait()
        except TimeoutError:
            pass

    def status(self) -> dict[str, Any]:
        return {"queueLength": self.merkle.todo_len()}


class InsertQueueWorker(Worker):
    """Drains `<table>:insert_queue`: entries other tables' reactions asked to insert."""

    def __init__(self, table: Table[Any]) -> None:
        self.name = f"{table.name} queue"
        self.table = table
        self._wake = asyncio.Event()
        table.data.on_commit.append(self._wake.set)

    async def work(self) -> WorkerState:
        self._wake.clear()
        data = self.table.data
        items = list(data.insert_queue.range(limit=INSERT_QUEUE_BATCH))
        if not items:
            return WorkerState.IDLE
        await self.table.insert_many([self.table.schema.decode(raw) for _, raw in items])

        def tx_fn(tx: Any) -> None:
            for k, raw in items:
                if tx.get(data.insert_queue, k) == raw:
                    tx.remove(data.insert_queue, k)

        await asyncio.to_thread(data.db.transaction, tx_fn)
        return WorkerState.BUSY

    async def wait_for_work(self) -> None:
        # Other tables fill this queue inside their own transactions, which cannot signal
        # us: poll once a second (an empty range read), and wake early on our own commits.
        try:
            async with asyncio.timeout(INSERT_QUEUE_POLL_S):
                await self._wake.wait()
        except TimeoutError:
            pass

    def status(self) -> dict[str, Any]:
        return {"queueLength": self.table.data.insert_queue.len()}


class SyncWorker(PeriodicWorker):
    def __init__(self, syncer: TableSyncer, interval_s: float) -> None:
        super().__init__()
        self.name = f"{syncer.table.name} sync"
        self.syncer = syncer
        self.interval_s = interval_s
        self.last_complete = False
        self.after_pass: Callable[[], None] | None = None  # e.g. report sync progress

    async def run(self) -> None:
        self.last_complete = await self.syncer.sync_pass()
        if self.after_pass is not None:
            self.after_pass()

    async def wait_for_work(self) -> None:
        try:
            async with asyncio.timeout(self.interval_s if self.last_complete else min(self.interval_s, SYNC_RETRY_S)):
                await self._wake.wait()
        except TimeoutError:
            pass

    def status(self) -> dict[str, Any]:
        return {"syncedVersion": self.syncer.synced_version, "itemsPushed": self.syncer.items_pushed,
                "itemsOffloaded": self.syncer.items_offloaded, "lastPassComplete": self.last_complete}


class GcWorker(PeriodicWorker):
    interval_s = GC_INTERVAL_S

    def __init__(self, gc: TableGc) -> None:
        super().__init__()
        self.name = f"{gc.table.name} GC"
        self.gc = gc

    async def run(self) -> None:
        await self.gc.gc_pass()

    def status(self) -> dict[str, Any]:
        return {"queueLength": self.gc.table.data.gc_todo.len(), "collected": self.gc.collected}
