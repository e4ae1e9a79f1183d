"""Quorum calls: ask several nodes, return once enough answered (Garage `rpc_helper.rs`).

- `RequestStrategy` carries quorum, priority and timeout in one object.
- `call_many` sends to every node at once and returns as soon as `quorum` answered with
  success; the calls still in flight finish in the background under `background` (their
  owner, with the same deadline) so that every holder gets the write, not just a quorum.
- `call_quorum_sets` is the write path while a layout migration runs (design §6): the
  same request goes to the union of the node sets of every live layout version, and it
  succeeds only once *each* set has reached its own write quorum.
- `preferred_order` sorts nodes for reads: self first, then same zone, then lowest RTT.
- When too few nodes can answer, `QuorumError` says how many answered and why the others
  did not; it never hangs past the timeout and never pretends.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass
from typing import Any

from grange.net.errors import RpcError
from grange.net.frame import Priority

log = logging.getLogger("grange.rpc")

DEFAULT_TIMEOUT_S = 30.0


class QuorumError(RpcError):
    """Fewer nodes than the quorum answered with success."""

    expected = True

    def __init__(self, quorum: int, successes: int, total: int, errors: Sequence[str]) -> None:
        detail = "; ".join(errors[:4])
        super().__init__(
            f"quorum not reached: {successes} of {total} nodes answered, {quorum} needed"
            + (f" ({detail})" if detail else "")
        )
        self.quorum = quorum
        self.successes = successes


@dataclass(frozen=True, slots=True)
class RequestStrategy:
    quorum: int
    prio: int = Priority.NORMAL
    timeout_s: float = DEFAULT_TIMEOUT_S


def read_quorum(rf: int, consistency_mode: str) -> int:
    """Design §7: consistent → ceil(rf/2); degraded and dangerous → 1."""
    if consistency_mode in ("degraded", "dangerous"):
        return 1
    return (rf + 1) // 2


def write_quorum(rf: int, consistency_mode: str) -> int:
    """Design §7: rf + 1 − ceil(rf/2) (consistent and degraded); dangerous → 1."""
    if consistency_mode == "dangerous":
        return 1
    return rf + 1 - (rf + 1) // 2


class BackgroundCalls:
    """Owner of the replica calls that continue after quorum was reached."""

    def __init__(self) -> None:
        self._tasks: set[asyncio.Task[Any]] = set()

    def spawn(self, aw: Awaitable[Any]) -> None:
        task = asyncio.ensure_future(aw)
        self._tasks.add(task)
        task.add_done_callback(self._done)

    def _done(self, task: asyncio.Task[Any]) -> None:
        self._tasks.discard(task)
        if not task.cancelled() and task.exception() is not None:
            log.debug("background replica call failed: %s", task.exception())

    def __len__(self) -> int:
        return len(self._tasks)

    async def close(self, timeout_s: float = 5.0) -> None:
        if self._tasks:
            await asyncio.wait(list(self._tasks), timeout=timeout_s)
        for t in list(self._tasks):
            t.cancel()


Call = Callable[[str], Awaitable[Any]]


async def call_many(
    nodes: Sequence[str], call: Call, strategy: RequestStrategy, background: BackgroundCalls | None
) -> list[tuple[str, Any]]:
    """Call every node; return [(node, result)] of the first `quorum` successes.

    Raises QuorumError as soon as the quorum has become impossible, or at the timeout.
    """
    if strategy.quorum > len(nodes):
        raise QuorumError(strategy.quorum, 0, len(nodes), [f"only {len(nodes)} nodes hold this data"])
    results = await call_quorum_sets([list(nodes)], call, [strategy.quorum], strategy, background)
    return results


async def call_quorum_sets(
    sets: Sequence[Sequence[str]],
    call: Call,
    quorums: Sequence[int],
    strategy: RequestStrategy,
    background: BackgroundCalls | None,
) -> list[tuple[str, Any]]:
    """Call the union of `sets`; succeed once every set i has `quorums[i]` successes."""
    union: list[str] = []
    for s in sets:
        for n in s:
            if n not in union:
                union.append(n)
    loop = asyncio.get_running_loop()
    deadline = loop.time() + strategy.timeout_s

    async def one(node: str) -> Any:
        async with asyncio.timeout_at(deadline):
            return await call(node)

    tasks = {asyncio.ensure_future(one(n)): n for n in union}
    ok: dict[str, Any] = {}
    errors: list[str] = []
    failed: set[str] = set()
    pending = set(tasks)

    def satisfied() -> bool:
        return all(sum(1 for n in s if n in ok) >= q for s, q in zip(sets, quorums, strict=True))

    def impossible() -> bool:
        return any(sum(1 for n in s if n not in failed) < q for s, q in zip(sets, quorums, strict=True))

    try:
        while pending and not satisfied() and not impossible():
            done, pending = await asyncio.wait(pending, return_when=asyncio.FIRST_COMPLETED)
            for t in done:
                node = tasks[t]
                if t.cancelled():
                    failed.add(node)
                    errors.append(f"{node[:8]}: cancelled")
                    continue
                exc = t.exception()
                if exc is None:
                    ok[node] = t.result()
                else:
                    failed.add(node)
                    errors.append(f"{node[:8]}: {_describe(exc)}")
        if not satisfied():
            raise QuorumError(max(quorums), len(ok), len(union), errors)
        return [(n, ok[n]) for n in union if n in ok]
    finally:
        for t in pending:
            if background is not None:
                background.spawn(t)
            else:
                t.cancel()


def _describe(exc: BaseException) -> str:
    if isinstance(exc, TimeoutError):
        return "timed out"
    return str(exc) or type(exc).__name__


def preferred_order(nodes: Sequence[str], self_id: str, zone_of: Callable[[str], str | None],
                    rtt_of: Callable[[str], float | None]) -> list[str]:
    """Self first, then nodes in our zone, then by increasing RTT (unknown RTT last)."""
    my_zone = zone_of(self_id)

    def key(n: str) -> tuple[int, int, float]:
        rtt = rtt_of(n)
        return (0 if n == self_id else 1, 0 if my_zone is not None and zone_of(n) == my_zone else 1,
                rtt if rtt is not None else float("inf"))

    return sorted(nodes, key=key)
