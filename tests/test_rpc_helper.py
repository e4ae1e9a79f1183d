"""Quorum arithmetic (design §7) and the behaviour of quorum calls."""

from __future__ import annotations

import asyncio

import pytest

from grange.rpc.rpc_helper import (
    BackgroundCalls,
    QuorumError,
    RequestStrategy,
    call_many,
    call_quorum_sets,
    preferred_order,
    read_quorum,
    write_quorum,
)

# Design §7, written out: (rf, mode) -> (read quorum, write quorum)
DESIGN_TABLE = {
    (1, "consistent"): (1, 1), (2, "consistent"): (1, 2), (3, "consistent"): (2, 2),
    (1, "degraded"): (1, 1), (2, "degraded"): (1, 2), (3, "degraded"): (1, 2),
    (1, "dangerous"): (1, 1), (2, "dangerous"): (1, 1), (3, "dangerous"): (1, 1),
}


@pytest.mark.parametrize(("rf", "mode"), sorted(DESIGN_TABLE))
def test_quorums_follow_design_table(rf: int, mode: str) -> None:
    assert (read_quorum(rf, mode), write_quorum(rf, mode)) == DESIGN_TABLE[(rf, mode)]


@pytest.mark.parametrize("rf", range(1, 8))
def test_consistent_read_and_write_quorums_intersect(rf: int) -> None:
    assert read_quorum(rf, "consistent") + write_quorum(rf, "consistent") > rf


async def test_returns_at_quorum_and_finishes_the_rest_in_background() -> None:
    finished: list[str] = []

    async def call(node: str) -> str:
        await asyncio.sleep({"a": 0.0, "b": 0.01, "c": 0.3}[node])
        finished.append(node)
        return node

    bg = BackgroundCalls()
    res = await call_many(["a", "b", "c"], call, RequestStrategy(quorum=2, timeout_s=5), bg)
    assert sorted(n for n, _ in res) == ["a", "b"] and "c" not in finished
    await bg.close()
    assert "c" in finished  # the third holder still got the write


async def test_fails_as_soon_as_quorum_is_impossible() -> None:
    async def call(node: str) -> None:
        if node == "slow":
            await asyncio.sleep(30)
        raise ConnectionError(f"{node} unreachable")

    t0 = asyncio.get_running_loop().time()
    with pytest.raises(QuorumError, match=r"quorum not reached: 0 of 3 nodes answered, 2 needed"):
        await call_many(["x", "y", "slow"], call, RequestStrategy(quorum=2, timeout_s=30), None)
    assert asyncio.get_running_loop().time() - t0 < 5


async def test_times_out_instead_of_hanging() -> None:
    async def call(node: str) -> None:
        await asyncio.sleep(30)

    with pytest.raises(QuorumError, match="timed out"):
        await call_many(["a", "b"], call, RequestStrategy(quorum=1, timeout_s=0.2), None)


async def test_each_live_layout_version_needs_its_own_quorum() -> None:
    up = {"a", "b", "d"}

    async def call(node: str) -> str:
        if node not in up:
            raise ConnectionError("down")
        return node

    # old version {a,b,c}: a,b answer → 2 ok; new version {c,d,e}: only d → 1 < 2
    with pytest.raises(QuorumError):
        await call_quorum_sets([["a", "b", "c"], ["c", "d", "e"]], call, [2, 2], RequestStrategy(2, timeout_s=2), None)
    up.add("e")
    res = await call_quorum_sets([["a", "b", "c"], ["c", "d", "e"]], call, [2, 2], RequestStrategy(2, timeout_s=2),
                                 None)
    assert {n for n, _ in res} >= {"a", "b", "d", "e"}


def test_preferred_order_self_then_zone_then_rtt() -> None:
    zones = {"me": "z1", "near": "z1", "far1": "z2", "far2": "z3"}
    rtts = {"near": 50.0, "far1": 5.0, "far2": 1.0}
    order = preferred_order(["far1", "near", "me", "far2"], "me", zones.get, rtts.get)
    assert order == ["me", "near", "far2", "far1"]
