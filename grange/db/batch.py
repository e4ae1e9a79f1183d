"""Group commit: transaction functions submitted concurrently commit together.

Every table write is a small transaction (merge an entry, record its Merkle todo, run its
reactions). Committed one by one, each costs a thread hop and a commit, and LMDB runs one
write transaction at a time, so a busy node spends its time waiting for its own commits.
`WriteBatcher.run(fn)` queues `fn`; one drain task takes everything queued, runs all the
functions inside a single `Db.transaction` in the thread pool, and resolves each caller
with its own result.

Guarantees: each `fn` sees the writes of the functions before it in the batch (they share
the transaction), exactly as if they had committed one after the other in that order. If
one `fn` raises, the batch is rolled back and every function is run again in its own
transaction, so one failure never fails another caller's write. A caller cancelled while
waiting does not cancel its write: the thread finishes what it started.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from typing import Any

from grange.db import Db, Tx

# Functions in one transaction at most: bounds a commit's duration and its memory.
BATCH_MAX = 256

TxFn = Callable[[Tx], Any]


class WriteBatcher:
    def __init__(self, db: Db, batch_max: int = BATCH_MAX) -> None:
        self.db = db
        self.batch_max = batch_max
        self._pending: list[tuple[TxFn, asyncio.Future[Any]]] = []
        self._drain_task: asyncio.Task[None] | None = None
        self.batches = 0
        self.functions = 0

    async def run(self, fn: TxFn) -> Any:
        loop = asyncio.get_running_loop()
        fut: asyncio.Future[Any] = loop.create_future()
        self._pending.append((fn, fut))
        if self._drain_task is None:
            self._drain_task = loop.create_task(self._drain())
        return await asyncio.shield(fut)

    async def _drain(self) -> None:
        try:
            while self._pending:
                batch = self._pending[: self.batch_max]
                del self._pending[: self.batch_max]
                outcomes = await asyncio.to_thread(self._commit, [fn for fn, _ in batch])
                self.batches += 1
                self.functions += len(batch)
                for (_, fut), (ok, value) in zip(batch, outcomes, strict=True):
                    if fut.done():
                        continue
                    if ok:
                        fut.set_result(value)
                    else:
                        fut.set_exception(value)
        finally:
            self._drain_task = None
            if self._pending:  # queued while the last batch resolved its callers
                self._drain_task = asyncio.get_running_loop().create_task(self._drain())

    def _commit(self, fns: list[TxFn]) -> list[tuple[bool, Any]]:
        try:
            return self.db.transaction(lambda tx: [(True, fn(tx)) for fn in fns])
        except Exception as e:  # a function failed: isolate it from the others
            if len(fns) == 1:
                return [(False, e)]
        out: list[tuple[bool, Any]] = []
        for fn in fns:
            try:
                out.append((True, self.db.transaction(fn)))
            except Exception as e:  # this caller's own failure, returned to it
                out.append((False, e))
        return out
