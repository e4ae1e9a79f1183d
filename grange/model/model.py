"""The node's data: every table and the block manager, joined (Garage `model/garage.rs`).

`table` and `block` never import each other; this module connects them: the block_ref
table's reaction calls the block manager's refcount functions inside its transaction, and
the object → version → block_ref → refcount chain is wired here (design §3, §7).

Workers spawned per table: Merkle updater, insert queue, anti-entropy sync, tombstone GC;
for blocks: resync, scrub, rebalance. After a layout change every sync worker runs at once;
when all of them completed a pass under layout version v, this node reports `sync = v`.
"""

from __future__ import annotations

import asyncio
import logging
from typing import Any

from grange.block.manager import BlockManager
from grange.block.repair import RebalanceWorker, ScrubWorker
from grange.block.resync import ResyncWorker
from grange.block.store import BlockStore
from grange.db import Db, open_db
from grange.db.batch import WriteBatcher
from grange.model.bucket_alias_table import BucketAliasTable
from grange.model.bucket_table import BucketTable
from grange.model.counters import BucketCounters, CounterTable
from grange.model.key_table import KeyTable
from grange.model.s3.block_ref_table import BlockRefTable
from grange.model.s3.mpu_table import MpuTable
from grange.model.s3.object_table import ObjectTable
from grange.model.s3.version_table import VersionTable
from grange.net.netapp import NetApp
from grange.rpc.layout.manager import LayoutManager
from grange.rpc.rpc_helper import BackgroundCalls, preferred_order
from grange.rpc.system import System
from grange.table.gc import GC_DELAY_S, TableGc
from grange.table.merkle import MerkleUpdater
from grange.table.replication import FullReplication, ShardedReplication
from grange.table.sync import TableSyncer
from grange.table.table import Table, TableContext
from grange.table.workers import (
    SYNC_INTERVAL_FULL_S,
    SYNC_INTERVAL_SHARDED_S,
    GcWorker,
    InsertQueueWorker,
    MerkleWorker,
    SyncWorker,
)
from grange.util.background import Supervisor, Worker
from grange.util.config import Config

log = logging.getLogger("grange.model")


class Model:
    def __init__(self, config: Config, netapp: NetApp, system: System, layout: LayoutManager,
                 db: Db, store: BlockStore, *, gc_delay_s: float = GC_DELAY_S,
                 block_gc_delay_s: float | None = None) -> None:
        self.config = config
        self.netapp = netapp
        self.system = system
        self.layout = layout
        self.db = db
        self.id = netapp.id
        self.background = BackgroundCalls()

        def history():  # type: ignore[no-untyped-def]
            return layout.history

        def zone_of(node: str) -> str | None:
            role = layout.current().node_role(node)
            return role.zone if role else None

        def rtt_of(node: str) -> float | None:
            info = system.peers.get(node)
            return info.rtt_ms if info else None

        def order_nodes(nodes: list[str]) -> list[str]:
            return preferred_order(nodes, self.id, zone_of, rtt_of)

        self.batcher = WriteBatcher(db)
        ctx = TableContext(netapp, db, self.background, order_nodes, self.batcher)
        full = FullReplication(history, self.id)
        rf, mode = config.replication_factor, config.consistency_mode
        sharded = ShardedReplication(history, rf, mode)

        self.bucket_table = Table(ctx, BucketTable(), full)
        self.bucket_alias_table = Table(ctx, BucketAliasTable(), full)
        self.key_table = Table(ctx, KeyTable(), full)
        self.object_table = Table(ctx, ObjectTable(), sharded)
        self.version_table = Table(ctx, VersionTable(), sharded)
        self.block_ref_table = Table(ctx, BlockRefTable(), sharded)
        self.mpu_table = Table(ctx, MpuTable(), sharded)
        self.counter_table = Table(ctx, CounterTable(), sharded)
        self.tables: list[Table[Any]] = [
            self.bucket_table, self.bucket_alias_table, self.key_table, self.object_table,
            self.version_table, self.block_ref_table, self.mpu_table, self.counter_table,
        ]

        self.blocks = BlockManager(
            netapp, db, store, history, order_nodes, system.is_up,
            replication_factor=rf, consistency_mode=mode, block_size=config.block_size,
            ram_buffer_max=config.block_ram_buffer_max, background=self.background,
        )

        # The reactions chain: object → version → block_ref → refcount (+ counters).
        self.counters = BucketCounters(db, self.id)
        self.counters.counter_data = self.counter_table.data
        obj: ObjectTable = self.object_table.schema  # type: ignore[assignment]
        obj.version_data = self.version_table.data
        obj.mpu_data = self.mpu_table.data
        obj.counters = self.counters
        ver: VersionTable = self.version_table.schema  # type: ignore[assignment]
        ver.block_ref_data = self.block_ref_table.data
        mpu: MpuTable = self.mpu_table.schema  # type: ignore[assignment]
        mpu.version_data = self.version_table.data
        bref: BlockRefTable = self.block_ref_table.schema  # type: ignore[assignment]
        bref.incref = self.blocks.rc.incref
        bref.decref = self.blocks.rc.decref
        if block_gc_delay_s is not None:
            self.blocks.rc.gc_delay_ms = int(block_gc_delay_s * 1000)
        self.block_ref_table.data.on_commit.append(self.blocks.resync.wake.set)

        self.merkle = {t.name: MerkleUpdater(db, t.name) for t in self.tables}
        self.syncers = {
            t.name: TableSyncer(t, self.merkle[t.name], self.id, system.is_up, lambda: layout.current().version)
            for t in self.tables
        }
        self.gcs = {t.name: TableGc(t, delay_s=gc_delay_s) for t in self.tables}
        self.sync_workers: dict[str, SyncWorker] = {}
        self.gc_workers: dict[str, GcWorker] = {}
        self.resync_worker = ResyncWorker(self.blocks.resync)
        self.scrub_worker = ScrubWorker(self.blocks, config.metadata_dir, disabled=config.disable_scrub)
        self.rebalance_worker = RebalanceWorker(self.blocks)
        self.workers: list[Worker] = []

        layout.synced_version = self._synced_version
        layout.on_change.append(self._on_layout_change)
        self._last_layout_version = layout.current().version

    @classmethod
    async def open(cls, config: Config, netapp: NetApp, system: System, layout: LayoutManager,
                   **kw: Any) -> Model:
        db = await asyncio.to_thread(open_db, config.db_engine, config.metadata_dir,
                                     fsync=config.metadata_fsync, lmdb_map_size=config.lmdb_map_size)
        store = await BlockStore.open(config.data_dir, config.metadata_dir,
                                      compression_level=config.compression_level, data_fsync=config.data_fsync,
                                      block_size=config.block_size, tag=netapp.id[:8])
        return cls(config, netapp, system, layout, db, store, **kw)

    # ------------------------------------------------------------------ workers
    def spawn_workers(self, supervisor: Supervisor) -> None:
        for t in self.tables:
            interval = SYNC_INTERVAL_FULL_S if isinstance(t.replication, FullReplication) else SYNC_INTERVAL_SHARDED_S
            sync = SyncWorker(self.syncers[t.name], interval)
            gc = GcWorker(self.gcs[t.name])
            self.sync_workers[t.name] = sync
            self.gc_workers[t.name] = gc
            for w in (MerkleWorker(t, self.merkle[t.name]), InsertQueueWorker(t), sync, gc):
                self.workers.append(w)
        self.workers += [self.resync_worker, self.scrub_worker, self.rebalance_worker]
        for w in self.workers:
            supervisor.spawn(w)
        for w in self.sync_workers.values():
            w.after_pass = self.layout.refresh_trackers
            w.trigger()  # a first pass right after start

    def _synced_version(self) -> int:
        if not self.syncers:
            return self.layout.current().version
        return min(s.synced_version for s in self.syncers.values())

    def _on_layout_change(self) -> None:
        v = self.layout.current().version
        if v != self._last_layout_version:
            self._last_layout_version = v
            log.info("[%s] layout version %d: syncing every table", self.id[:8], v)
            for w in self.sync_workers.values():
                w.trigger()

    async def repair(self, kind: str) -> int:
        """A consistency repair of `grange repair` (see `model/repair.py`); returns fixes made."""
        from grange.model.repair import REPAIRS

        if kind == "aliases":
            log.info("[%s] repair aliases: nothing to do (aliases are checked on every change)", self.id[:8])
            return 0
        fixed = await REPAIRS[kind](self)
        log.info("[%s] repair %s: %d fixed", self.id[:8], kind, fixed)
        return fixed

    async def purge_blocks(self, hashes: list[bytes]) -> dict[str, int]:
        from grange.model.repair import purge_blocks

        return await purge_blocks(self, hashes)

    async def sync_all_tables(self) -> None:
        """One anti-entropy pass of every table, now (repair tables, tests)."""
        await asyncio.gather(*(w.run_once() for w in self.sync_workers.values()))

    async def close(self) -> None:
        await self.background.close()
        await self.blocks.store.close()
        await asyncio.to_thread(self.db.close)
