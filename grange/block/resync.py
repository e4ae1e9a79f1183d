"""The resync queue: make this node hold exactly the blocks it should (Garage `block/resync.rs`).

Trees:
    block_resync_queue   when_ms:u64 BE + hash → b""     blocks to look at, by due time
    block_resync_errors  hash → msgpack [errors, last_try_ms, next_try_ms]

For a due block the worker compares "referenced here" (refcount) with "on disk":
- referenced and missing → fetch it from another holder and store it;
- not referenced and present → once the refcount's deletion delay passed, offload: every
  current holder that needs it (`block/need`) gets a copy, then the local file is deleted;
  if a holder cannot be asked, nothing is deleted and the block is retried later.
A failure is retried with exponential backoff: 1 min, doubling, at most 64 min
(`RESYNC_RETRY_*`). `grange block retry-now` clears the wait; `block list-errors` lists them.
"""

from __future__ import annotations

import asyncio
import logging
import random
import struct
import time
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

import msgspec

from grange.block.errors import BlockError
from grange.db import Db, Tx
from grange.net.errors import RpcError
from grange.net.frame import Priority
from grange.util.background import Worker, WorkerState

if TYPE_CHECKING:
    from grange.block.manager import BlockManager

log = logging.getLogger("grange.block")

RESYNC_RETRY_S_MIN = 60.0
RESYNC_RETRY_S_MAX = 64 * 60.0
RESYNC_BATCH = 32


class ResyncError(msgspec.Struct, array_like=True):
    errors: int
    last_try_ms: int
    next_try_ms: int


class BlockResync:
    def __init__(self, db: Db, manager: BlockManager, clock_ms: Callable[[], int] | None = None) -> None:
        self.db = db
        self.manager = manager
        self.queue = db.open_tree("block_resync_queue")
        self.errors = db.open_tree("block_resync_errors")
        self.clock_ms = clock_ms or (lambda: int(time.time() * 1000))
        self.wake = asyncio.Event()
        self.tranquility = 2
        self.fetched = 0
        self.offloaded = 0
        self.deleted = 0
        self.failed = 0

    # ------------------------------------------------------------------ queueing
    def enqueue_tx(self, tx: Tx, hash: bytes, when_ms: int) -> None:
        tx.insert(self.queue, struct.pack(">Q", when_ms) + hash, b"")

    def enqueue_now(self, hash: bytes, delay_ms: int = 0) -> None:
        self.queue.insert(struct.pack(">Q", self.clock_ms() + delay_ms) + hash, b"")
        self.wake.set()

    def queue_len(self) -> int:
        return self.queue.len()

    def list_errors(self) -> list[tuple[bytes, ResyncError]]:
        return [(k, msgspec.msgpack.decode(v, type=ResyncError)) for k, v in self.errors.range()]

    def retry_now(self, hashes: list[bytes] | None) -> int:
        targets = hashes if hashes is not None else [k for k, _ in self.errors.range()]
        for h in targets:
            raw = self.errors.get(h)
            if raw is not None:
                e = msgspec.msgpack.decode(raw, type=ResyncError)
                self.errors.insert(h, msgspec.msgpack.encode(ResyncError(e.errors, e.last_try_ms, 0)))
            self.enqueue_now(h)
        return len(targets)

    def clear_error(self, hash: bytes) -> None:
        self.errors.remove(hash)

    # ------------------------------------------------------------------ one step
    async def process_due(self, max_items: int = RESYNC_BATCH) -> int:
        """Handle up to `max_items` due blocks; returns how many were handled."""
        now = self.clock_ms()
        due = list(self.queue.range(None, struct.pack(">Q", now + 1), limit=max_items))
        for key, _ in due:
            hash = key[8:]
            self.queue.remove(key)
            raw_err = self.errors.get(hash)
            if raw_err is not None:
                err = msgspec.msgpack.decode(raw_err, type=ResyncError)
                if err.next_try_ms > now:
                    self.queue.insert(struct.pack(">Q", err.next_try_ms) + hash, b"")
                    continue
            t0 = time.monotonic()
            try:
                await self.resync_block(hash)
                if raw_err is not None:
                    self.errors.remove(hash)
            except (BlockError, RpcError, OSError, TimeoutError) as e:
                self._record_error(hash, str(e))
            if self.tranquility:
                await asyncio.sleep(min(1.0, (time.monotonic() - t0) * self.tranquility))
        return len(due)

    def next_due_ms(self) -> int | None:
        first = self.queue.first()
        return struct.unpack(">Q", first[0][:8])[0] if first else None

    def _record_error(self, hash: bytes, message: str) -> None:
        now = self.clock_ms()
        raw = self.errors.get(hash)
        n = msgspec.msgpack.decode(raw, type=ResyncError).errors + 1 if raw is not None else 1
        delay_s = min(RESYNC_RETRY_S_MAX, RESYNC_RETRY_S_MIN * 2 ** (n - 1))
        next_try = now + int(delay_s * 1000 * random.uniform(1.0, 1.1))
        self.errors.insert(hash, msgspec.msgpack.encode(ResyncError(n, now, next_try)))
        self.queue.insert(struct.pack(">Q", next_try) + hash, b"")
        self.failed += 1
        log.info(
            "[%s] resync of block %s failed (%d times), retry in %d s: %s",
            self.manager.id[:8],
            hash.hex()[:16],
            n,
            delay_s,
            message,
        )

    async def resync_block(self, hash: bytes) -> None:
        m = self.manager
        exists = await m.store.exists(hash)
        deletable_at = m.rc.deletable_at(hash)
        if deletable_at is None:  # referenced here
            if not exists:
                data = await m.rpc_get_block(hash, prio=Priority.BACKGROUND, exclude_self=True)
                await m.store.write(hash, data)
                self.fetched += 1
                log.debug("[%s] resync: fetched block %s", m.id[:8], hash.hex()[:16])
            return
        if not exists:
            m.rc.clear_deleted(hash)
            return
        if deletable_at > self.clock_ms():
            self.queue.insert(struct.pack(">Q", deletable_at) + hash, b"")
            return
        await self._offload(hash)
        await m.store.delete(hash)
        m.rc.clear_deleted(hash)
        self.deleted += 1

    async def _offload(self, hash: bytes) -> None:
        """Before deleting our copy, give it to every current holder that still needs it."""
        m = self.manager
        others = [n for n in m.current_holders(hash) if n != m.id]
        data: bytes | None = None
        for node in others:
            if not m.is_up(node):
                raise RpcError(f"holder {node[:8]} is down: keeping block {hash.hex()[:16]} for now")
            need = await m.netapp.call(
                node, "block/need", {"hash": hash}, prio=Priority.BACKGROUND, timeout_s=30
            )
            if need:
                if data is None:
                    data = await m.store.read(hash)
                await m.netapp.call(
                    node,
                    "block/put",
                    {"hash": hash},
                    prio=Priority.BACKGROUND,
                    timeout_s=60,
                    stream=_one(data),
                )
                self.offloaded += 1

    def statistics(self) -> dict[str, Any]:
        return {
            "resyncQueueLength": self.queue.len(),
            "resyncErrors": self.errors.len(),
            "resyncFetched": self.fetched,
            "resyncOffloaded": self.offloaded,
            "resyncDeleted": self.deleted,
        }


async def _one(data: bytes):  # type: ignore[no-untyped-def]
    yield data


class ResyncWorker(Worker):
    name = "Block resync worker"

    def __init__(self, resync: BlockResync) -> None:
        self.resync = resync

    async def work(self) -> WorkerState:
        self.resync.wake.clear()
        n = await self.resync.process_due()
        return WorkerState.BUSY if n else WorkerState.IDLE

    async def wait_for_work(self) -> None:
        due = self.resync.next_due_ms()
        timeout = 10.0 if due is None else max(0.05, min(10.0, (due - self.resync.clock_ms()) / 1000))
        try:
            async with asyncio.timeout(timeout):
                await self.resync.wake.wait()
        except TimeoutError:
            pass

    def status(self) -> dict[str, Any]:
        return {
            "queueLength": self.resync.queue_len(),
            "errors": self.resync.errors.len(),
            "tranquility": self.resync.tranquility,
        }
