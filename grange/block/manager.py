"""Blocks across the cluster: replicated writes, closest-first reads (Garage `block/manager.rs`).

RPC endpoints (bodies msgpack; block data travels as a streamed body, never one frame):

    block/put   {hash} + stream of the block's bytes     store it (hash verified)
    block/get   {hash}            → stream of the bytes  read it (hash verified locally)
    block/need  {hash}            → bool                 "referenced here and missing"

Writes go to the holders of the block's partition in every live layout version and return
at write quorum; the calls to the remaining holders continue in the background. The block's
bytes count against `block_ram_buffer_max` until the *last* replica write ended, not at
quorum, so slow replicas push back on new uploads instead of filling memory. Reads ask the
holders one at a time, closest first (self, same zone, lowest RTT), and move on to the next
on error or corruption.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator, Callable
from typing import Any

from grange.block.errors import BlockCorrupted, BlockError, BlockNotFound
from grange.block.rc import BlockRc
from grange.block.resync import BlockResync
from grange.block.store import BlockStore, block_hash
from grange.db import Db
from grange.net.conn import Reply
from grange.net.errors import RemoteError, RpcError
from grange.net.frame import Priority
from grange.net.netapp import NetApp
from grange.rpc.layout.history import LayoutHistory
from grange.rpc.rpc_helper import (
    BackgroundCalls,
    QuorumError,
    RequestStrategy,
    call_quorum_sets,
    write_quorum,
)

log = logging.getLogger("grange.block")

BLOCK_RPC_TIMEOUT_S = 60.0
STREAM_CHUNK = 256 * 1024


class ByteBudget:
    """At most `limit` bytes of block data in flight; a single block larger than the limit
    may still pass alone, so nothing deadlocks."""

    def __init__(self, limit: int) -> None:
        self.limit = limit
        self.used = 0
        self._cond = asyncio.Condition()

    async def acquire(self, n: int) -> None:
        async with self._cond:
            await self._cond.wait_for(lambda: self.used == 0 or self.used + n <= self.limit)
            self.used += n

    async def release(self, n: int) -> None:
        async with self._cond:
            self.used -= n
            self._cond.notify_all()

    @property
    def free(self) -> int:
        return max(0, self.limit - self.used)


async def _chunks(data: bytes) -> AsyncIterator[bytes]:
    view = memoryview(data)
    for off in range(0, len(view), STREAM_CHUNK):
        yield view[off : off + STREAM_CHUNK]


class BlockManager:
    def __init__(
        self,
        netapp: NetApp,
        db: Db,
        store: BlockStore,
        history: Callable[[], LayoutHistory],
        order_nodes: Callable[[list[str]], list[str]],
        is_up: Callable[[str], bool],
        *,
        replication_factor: int,
        consistency_mode: str,
        block_size: int,
        ram_buffer_max: int,
        background: BackgroundCalls,
    ) -> None:
        self.netapp = netapp
        self.id = netapp.id
        self.store = store
        self.history = history
        self.order_nodes = order_nodes
        self.is_up = is_up
        self.rf = replication_factor
        self.consistency_mode = consistency_mode
        self.block_size = block_size
        self.budget = ByteBudget(ram_buffer_max)
        self.background = background
        self.resync = BlockResync(db, self)
        self.rc = BlockRc(db, self.resync.enqueue_tx)
        netapp.register("block/put", self._handle_put)
        netapp.register("block/get", self._handle_get)
        netapp.register("block/need", self._handle_need)

    # ------------------------------------------------------------------ placement
    def write_sets(self, hash: bytes) -> list[list[str]]:
        return [v.nodes_of(hash[0]) for v in self.history().versions if v.has_ring()]

    def holders(self, hash: bytes) -> list[str]:
        """Every node that may hold the block in some live layout version."""
        out: list[str] = []
        for s in self.write_sets(hash):
            out.extend(n for n in s if n not in out)
        return out

    def current_holders(self, hash: bytes) -> list[str]:
        cur = self.history().current()
        return cur.nodes_of(hash[0]) if cur.has_ring() else []

    # ------------------------------------------------------------------ writes
    async def rpc_put_block(self, hash: bytes, data: bytes, prio: int = Priority.NORMAL) -> None:
        """Store a block on its holders; returns at write quorum in every live layout version."""
        sets = self.write_sets(hash)
        if not sets:
            raise QuorumError(1, 0, 0, ["the cluster layout has no storage nodes yet"])
        n = len(data)
        await self.budget.acquire(n)
        released = False

        async def release_when_all_done(tasks: list[asyncio.Future[Any]]) -> None:
            nonlocal released
            try:
                await asyncio.wait(tasks)
            finally:
                if not released:
                    released = True
                    await self.budget.release(n)

        async def call(node: str) -> Any:
            return await self.netapp.call(
                node,
                "block/put",
                {"hash": hash},
                prio=prio,
                timeout_s=BLOCK_RPC_TIMEOUT_S,
                stream=_chunks(data),
            )

        quorum = write_quorum(self.rf, self.consistency_mode)
        tracker = _Tracker()
        try:
            await call_quorum_sets(
                sets,
                tracker.wrap(call),
                [min(quorum, len(s)) for s in sets],
                RequestStrategy(quorum, prio, BLOCK_RPC_TIMEOUT_S),
                self.background,
            )
        finally:
            pending = tracker.pending()
            if pending:
                self.background.spawn(release_when_all_done(pending))
            elif not released:
                released = True
                await self.budget.release(n)

    async def _handle_put(self, peer: str, body: Any, stream: Any) -> None:
        hash = bytes(body["hash"])
        if stream is None:
            raise RemoteError("block/put needs a body")
        data = await stream.read_all(self.block_size * 2 + 1024)
        await self.store.write(hash, data)  # verifies the hash before writing
        return None

    # ------------------------------------------------------------------ reads
    async def rpc_get_block(
        self, hash: bytes, prio: int = Priority.INTERACTIVE, exclude_self: bool = False
    ) -> bytes:
        """The block's bytes from the closest holder that has a valid copy."""
        nodes = self.order_nodes(self.holders(hash))
        if exclude_self:
            nodes = [n for n in nodes if n != self.id]
        errors = []
        for node in nodes:
            if node != self.id and not self.is_up(node):
                errors.append(f"{node[:8]}: down")
                continue
            try:
                if node == self.id:
                    return await self.store.read(hash)
                _, stream = await self.netapp.call_stream(
                    node, "block/get", {"hash": hash}, prio=prio, timeout_s=BLOCK_RPC_TIMEOUT_S
                )
                data = await asyncio.wait_for(
                    stream.read_all(self.block_size * 2 + 1024), BLOCK_RPC_TIMEOUT_S
                )
                if block_hash(data) != hash:
                    raise BlockCorrupted(hash, "received data does not match its hash")
                return data
            except BlockCorrupted as e:
                errors.append(f"{node[:8]}: corrupted")
                log.warning("[%s] block %s corrupted on %s: %s", self.id[:8], hash.hex()[:16], node[:8], e)
                if node == self.id:
                    self.resync.enqueue_now(hash)  # fetch a good copy back
            except (BlockError, RpcError, TimeoutError, ValueError) as e:
                errors.append(f"{node[:8]}: {e}")
        raise BlockNotFound(hash, f"not readable from any holder ({'; '.join(errors) or 'no holder'})")

    async def _handle_get(self, peer: str, body: Any, stream: Any) -> Reply:
        hash = bytes(body["hash"])
        data = await self.store.read(hash)  # raises BlockNotFound / BlockCorrupted
        return Reply(len(data), _chunks(data))

    async def _handle_need(self, peer: str, body: Any, stream: Any) -> bool:
        hash = bytes(body["hash"])
        return self.rc.is_needed(hash) and not await self.store.exists(hash)

    def statistics(self) -> dict[str, Any]:
        return {"ramBufferFreeBytes": self.budget.free, **self.store.statistics(), **self.resync.statistics()}


class _Tracker:
    """Remembers the replica calls of one write, to know when the last one ended."""

    def __init__(self) -> None:
        self._tasks: list[asyncio.Future[Any]] = []

    def wrap(self, call: Callable[[str], Any]) -> Callable[[str], Any]:
        async def tracked(node: str) -> Any:
            fut = asyncio.ensure_future(call(node))
            self._tasks.append(fut)
            return await asyncio.shield(fut)

        return tracked

    def pending(self) -> list[asyncio.Future[Any]]:
        return [t for t in self._tasks if not t.done()]
