"""Group commit: concurrent transaction functions share commits, and one failure stays its own."""

from __future__ import annotations

import asyncio

import pytest

from grange.db.batch import WriteBatcher
from grange.db.memory import MemoryDb


async def test_concurrent_writes_share_transactions_and_see_each_other_in_order() -> None:
    db = MemoryDb()
    tree = db.open_tree("t")
    batcher = WriteBatcher(db)

    def incr(tx):  # noqa: ANN001, ANN202
        v = int(tx.get(tree, b"n") or b"0") + 1
        tx.insert(tree, b"n", str(v).encode())
        return v

    results = await asyncio.gather(*(batcher.run(incr) for _ in range(500)))
    assert sorted(results) == list(range(1, 501)) and tree.get(b"n") == b"500"
    assert batcher.batches < 500  # some functions were committed together


async def test_a_failing_function_does_not_fail_the_others_of_its_batch() -> None:
    db = MemoryDb()
    tree = db.open_tree("t")
    batcher = WriteBatcher(db)

    def put(i: int):  # noqa: ANN202
        def fn(tx):  # noqa: ANN001, ANN202
            if i == 3:
                raise ValueError("bad entry")
            tx.insert(tree, b"k%d" % i, b"v")
            return i

        return fn

    results = await asyncio.gather(*(batcher.run(put(i)) for i in range(8)), return_exceptions=True)
    assert isinstance(results[3], ValueError)
    assert [r for i, r in enumerate(results) if i != 3] == [0, 1, 2, 4, 5, 6, 7]
    assert tree.len() == 7 and tree.get(b"k3") is None
    with pytest.raises(ValueError):
        await batcher.run(put(3))
