"""Background workers as named objects with a state, run by one supervisor.

A `Worker` (Garage `src/util/background/worker.rs`) has a name, a `work()` step that is not
interrupted once started, and a `wait_for_work()` that may be. `work()` returns what the
worker is now: BUSY (call `work()` again at once), IDLE (call `wait_for_work()` first) or
DONE (the worker is finished). The supervisor records each step's outcome (last error,
consecutive errors), backs off after an error, and on shutdown cancels the waits and gives a
running step `SHUTDOWN_DEADLINE_S` to finish. `run_once()` lets a test or `grange repair`
run one pass on demand instead of sleeping.
"""

from __future__ import annotations

import asyncio
import enum
import logging
import time
from dataclasses import dataclass, field
from typing import Any

log = logging.getLogger("grange.worker")

SHUTDOWN_DEADLINE_S = 10.0
ERROR_BACKOFF_S_MAX = 60.0


class WorkerState(enum.Enum):
    BUSY = "busy"
    THROTTLED = "throttled"
    IDLE = "idle"
    DONE = "done"


class Worker:
    """Subclass and implement `work()` and `wait_for_work()`."""

    name: str = "worker"

    async def work(self) -> WorkerState:
        raise NotImplementedError

    async def wait_for_work(self) -> None:
        raise NotImplementedError

    def status(self) -> dict[str, Any]:
        """Worker-specific figures (queue length, progress...) for `worker list|info`."""
        return {}


@dataclass
class WorkerInfo:
    id: int
    worker: Worker
    state: WorkerState = WorkerState.IDLE
    errors: int = 0
    consecutive_errors: int = 0
    last_error: str | None = None
    last_error_time: float | None = None
    task: asyncio.Task[None] | None = field(default=None, repr=False)


class Supervisor:
    def __init__(self, node_tag: str = "") -> None:
        self._workers: dict[int, WorkerInfo] = {}
        self._next_id = 1
        self._stopping = False
        self._tag = node_tag

    def spawn(self, worker: Worker) -> WorkerInfo:
        info = WorkerInfo(self._next_id, worker)
        self._next_id += 1
        self._workers[info.id] = info
        info.task = asyncio.get_running_loop().create_task(self._run(info), name=worker.name)
        return info

    def list(self) -> list[WorkerInfo]:
        return list(self._workers.values())

    async def _run(self, info: WorkerInfo) -> None:
        w = info.worker
        while not self._stopping:
            try:
                info.state = WorkerState.BUSY
                state = await asyncio.shield(self._step(info))
            except asyncio.CancelledError:
                raise
            if state is WorkerState.DONE:
                info.state = WorkerState.DONE
                return
            if state is WorkerState.IDLE or info.consecutive_errors:
                info.state = WorkerState.IDLE
                if info.consecutive_errors:
                    await asyncio.sleep(min(ERROR_BACKOFF_S_MAX, 2.0 ** min(info.consecutive_errors, 6)))
                else:
                    await w.wait_for_work()

    async def _step(self, info: WorkerInfo) -> WorkerState:
        try:
            state = await info.worker.work()
            info.consecutive_errors = 0
            return state
        except asyncio.CancelledError:
            raise
        except Exception as e:
            info.errors += 1
            info.consecutive_errors += 1
            info.last_error = f"{type(e).__name__}: {e}"
            info.last_error_time = time.time()
            log.warning("[%s] worker %s failed (%d in a row): %s", self._tag, info.worker.name,
                        info.consecutive_errors, info.last_error)
            return WorkerState.IDLE

    async def stop(self) -> None:
        self._stopping = True
        tasks = [i.task for i in self._workers.values() if i.task is not None and not i.task.done()]
        for t in tasks:
            t.cancel()
        if tasks:
            await asyncio.wait(tasks, timeout=SHUTDOWN_DEADLINE_S)


class PeriodicWorker(Worker):
    """A worker whose `run()` pass happens every `interval_s`, or at once when `trigger()`ed."""

    interval_s: float = 60.0

    def __init__(self) -> None:
        self._wake = asyncio.Event()
        self._started = 0
        self._passes = 0
        self._pass_done = asyncio.Condition()

    async def run(self) -> None:
        raise NotImplementedError

    async def work(self) -> WorkerState:
        self._wake.clear()
        self._started += 1
        try:
            await self.run()
        finally:
            self._passes += 1
            async with self._pass_done:
                self._pass_done.notify_all()
        return WorkerState.IDLE

    async def wait_for_work(self) -> None:
        try:
            async with asyncio.timeout(self.interval_s):
                await self._wake.wait()
        except TimeoutError:
            pass

    def trigger(self) -> None:
        self._wake.set()

    async def run_once(self) -> None:
        """Ask for a pass and wait until a pass that started after this call has finished."""
        target = self._started + 1
        self.trigger()
        async with self._pass_done:
            await self._pass_done.wait_for(lambda: self._passes >= target)
