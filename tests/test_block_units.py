"""Block-layer arithmetic: the RAM budget and the resync retry schedule (design §9)."""

from __future__ import annotations

import asyncio
import struct

import msgspec

from grange.block.manager import ByteBudget
from grange.block.resync import RESYNC_RETRY_S_MAX, RESYNC_RETRY_S_MIN, BlockResync, ResyncError
from grange.db.memory import MemoryDb


async def test_ram_budget_holds_writers_until_bytes_are_released() -> None:
    budget = ByteBudget(limit=3 * 1024)
    await budget.acquire(2048)
    waiter = asyncio.create_task(budget.acquire(2048))  # 4 KiB > 3 KiB: must wait
    await asyncio.sleep(0.05)
    assert not waiter.done() and budget.free == 1024
    await budget.release(2048)
    await asyncio.wait_for(waiter, 1)
    assert budget.used == 2048


async def test_a_block_larger_than_the_whole_budget_still_passes_alone() -> None:
    budget = ByteBudget(limit=1024)
    await asyncio.wait_for(budget.acquire(10_000), 1)
    await budget.release(10_000)
    assert budget.used == 0


class _Manager:  # the resync queue only needs the node id for its log lines
    id = "00" * 32


def test_resync_retries_back_off_from_one_minute_doubling_to_64_minutes() -> None:
    now = [1_000_000]
    resync = BlockResync(MemoryDb(), _Manager(), clock_ms=lambda: now[0])  # type: ignore[arg-type]
    h = b"\x01" * 32
    delays = []
    for _ in range(9):
        resync._record_error(h, "unreachable")
        e = msgspec.msgpack.decode(resync.errors.get(h), type=ResyncError)
        delays.append((e.next_try_ms - now[0]) / 1000)
        now[0] = e.next_try_ms
    expected = [min(RESYNC_RETRY_S_MAX, RESYNC_RETRY_S_MIN * 2**i) for i in range(9)]
    for got, want in zip(delays, expected, strict=True):
        assert want <= got <= want * 1.1  # up to 10 % jitter
    assert expected[-1] == 64 * 60
    # the block is queued again at its next try
    due = [struct.unpack(">Q", k[:8])[0] for k, _ in resync.queue.range()]
    assert now[0] in due
    assert resync.retry_now([h]) == 1
    assert msgspec.msgpack.decode(resync.errors.get(h), type=ResyncError).next_try_ms == 0
