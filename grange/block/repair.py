"""Scrub, rebalance and block repair passes (Garage `block/repair.rs`).

- **Scrub** reads and verifies every local block (`BlockStore.verify` quarantines a bad one)
  and queues each corrupted block for resync, which fetches a good copy from another holder.
  It runs every 25–35 days (random, so a cluster's nodes do not scrub together), sleeps
  `tranquility` × the time of each block between blocks, and can be started, paused,
  resumed or cancelled on demand. State is kept in `metadata_dir/scrub_info`.
- **Rebalance** moves blocks to their preferred data dir (after a change of `data_dir`).
- **Repair blocks** queues every block on disk and every refcounted block for resync: what
  should be here is fetched, what should not is offloaded and deleted.
"""

from __future__ import annotations

import asyncio
import logging
import os
import random
import time
from typing import Any

import msgspec

from grange.block.manager import BlockManager
from grange.util.background import Worker, WorkerState
from grange.util.fsutil import read_file, write_file_atomic

log = logging.getLogger("grange.block")

SCRUB_INTERVAL_S = 25 * 24 * 3600
SCRUB_JITTER_S = 10 * 24 * 3600
SCRUB_TRANQUILITY_DEFAULT = 4
SCRUB_LIST_BATCH = 1000


class ScrubInfo(msgspec.Struct):
    last_completed_s: float = 0.0
    next_run_s: float = 0.0
    corruptions_detected: int = 0
    tranquility: int = SCRUB_TRANQUILITY_DEFAULT


class ScrubWorker(Worker):
    name = "Block scrub worker"

    def __init__(self, manager: BlockManager, metadata_dir: str, disabled: bool = False) -> None:
        self.manager = manager
        self.path = os.path.join(metadata_dir, "scrub_info")
        raw = read_file(self.path)
        self.info = msgspec.json.decode(raw, type=ScrubInfo) if raw else ScrubInfo()
        if self.info.next_run_s == 0:
            self.info.next_run_s = time.time() + SCRUB_INTERVAL_S + random.uniform(0, SCRUB_JITTER_S)
        self.disabled = disabled
        self.running = False
        self.paused = False
        self._wake = asyncio.Event()
        self._iter: list[bytes] = []
        self._all: Any = None
        self.checked = 0
        self.passes_done = 0
        self._pass_done = asyncio.Condition()

    def _save(self) -> None:
        write_file_atomic(self.path, msgspec.json.encode(self.info))

    # ------------------------------------------------------------------ commands
    def start(self) -> None:
        if not self.running:
            self.running = True
            self.checked = 0
            self._all = None
        self.paused = False
        self._wake.set()

    def pause(self) -> None:
        self.paused = True

    def resume(self) -> None:
        self.paused = False
        self._wake.set()

    def cancel(self) -> None:
        self.running = False
        self._all = None
        self._iter = []

    async def run_once(self) -> None:
        """Start a pass (if none is running) and wait until a pass has finished."""
        target = self.passes_done + 1
        self.start()
        async with self._pass_done:
            await self._pass_done.wait_for(lambda: self.passes_done >= target)

    # ------------------------------------------------------------------ Worker
    async def work(self) -> WorkerState:
        self._wake.clear()
        if not self.running:
            if not self.disabled and time.time() >= self.info.next_run_s:
                self.start()
            else:
                return WorkerState.IDLE
        if self.paused:
            return WorkerState.IDLE
        if not self._iter:
            if self._all is None:
                self._all = self.manager.store.iter_blocks()
            self._iter = await asyncio.to_thread(_take, self._all, SCRUB_LIST_BATCH)
            if not self._iter:
                await self._finish()
                return WorkerState.IDLE
        hash = self._iter.pop()
        t0 = time.monotonic()
        ok = await self.manager.store.verify(hash)
        self.checked += 1
        if not ok:
            self.info.corruptions_detected += 1
            log.warning(
                "[%s] scrub: block %s is corrupted, fetching it again", self.manager.id[:8], hash.hex()[:16]
            )
            self.manager.resync.enqueue_now(hash)
        if self.info.tranquility:
            await asyncio.sleep(min(1.0, (time.monotonic() - t0) * self.info.tranquility))
        return WorkerState.BUSY

    async def _finish(self) -> None:
        self.running = False
        self._all = None
        self.info.last_completed_s = time.time()
        self.info.next_run_s = time.time() + SCRUB_INTERVAL_S + random.uniform(0, SCRUB_JITTER_S)
        await asyncio.to_thread(self._save)
        log.info("[%s] scrub: pass complete, %d blocks checked", self.manager.id[:8], self.checked)
        self.passes_done += 1
        async with self._pass_done:
            self._pass_done.notify_all()

    async def wait_for_work(self) -> None:
        try:
            async with asyncio.timeout(60):
                await self._wake.wait()
        except TimeoutError:
            pass

    def status(self) -> dict[str, Any]:
        return {
            "running": self.running,
            "paused": self.paused,
            "checked": self.checked,
            "corruptionsDetected": self.info.corruptions_detected,
            "tranquility": self.info.tranquility,
        }


def _take(it: Any, n: int) -> list[bytes]:
    out = []
    for h, _ in it:
        out.append(h)
        if len(out) >= n:
            break
    return out


class RebalanceWorker(Worker):
    name = "Block rebalance worker"

    def __init__(self, manager: BlockManager) -> None:
        self.manager = manager
        self._requested = asyncio.Event()
        self.last_result: dict[str, int] | None = None
        self.passes_done = 0
        self._done = asyncio.Condition()

    def start(self) -> None:
        self._requested.set()

    async def run_once(self) -> dict[str, int]:
        target = self.passes_done + 1
        self.start()
        async with self._done:
            await self._done.wait_for(lambda: self.passes_done >= target)
        assert self.last_result is not None
        return self.last_result

    async def work(self) -> WorkerState:
        if not self._requested.is_set():
            return WorkerState.IDLE
        self._requested.clear()
        self.last_result = await self.manager.store.rebalance_all()
        self.passes_done += 1
        async with self._done:
            self._done.notify_all()
        log.info("[%s] rebalance: %s", self.manager.id[:8], self.last_result)
        return WorkerState.IDLE

    async def wait_for_work(self) -> None:
        await self._requested.wait()

    def status(self) -> dict[str, Any]:
        return {"lastResult": self.last_result}


async def repair_blocks(manager: BlockManager) -> int:
    """Queue every local block and every refcounted block for resync; returns how many."""

    def collect() -> set[bytes]:
        hashes = {h for h, _ in manager.store.iter_blocks()}
        hashes.update(k for k, _ in manager.rc.tree.range())
        return hashes

    hashes = await asyncio.to_thread(collect)
    for h in hashes:
        manager.resync.enqueue_now(h)
    return len(hashes)
