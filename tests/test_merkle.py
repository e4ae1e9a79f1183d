"""The Merkle updater against a naive oracle: shape, order independence, convergence, draining.

Guaranteed by these tests: after draining, every stored node of T:merkle_tree is exactly the
one the oracle `expected_nodes` builds from the set of live (tree_key, value_hash) pairs, so
roots depend only on that set (not on write order, on deletes of things once inserted, or on
how draining was batched); `check()` finds no lone-leaf Intermediate, orphan or bad hash
after every step, including with keys whose khash share several leading bytes; a todo item
replaced while it was being applied is not lost.
"""

from __future__ import annotations

import random
from collections.abc import Callable
from typing import Any

import msgspec
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from grange.db import Db, open_db
from grange.db.memory import MemoryDb
from grange.table.merkle import (
    EMPTY_HASH,
    NODE_FORMAT_VERSION,
    Empty,
    Intermediate,
    Leaf,
    MerkleCorrupted,
    MerkleUpdater,
    blake2b256,
    decode_node,
    encode_node,
    node_hash,
    node_key,
    partition_of,
    todo_value,
)

TABLE = "t"


def make_key(partition: int, n: int, sort_key: bytes = b"") -> bytes:
    """A tree key in `partition`: a 32-byte partition hash starting with that byte, + sort key."""
    return bytes((partition,)) + blake2b256(b"pk%d" % n)[1:] + sort_key


def weak_khash(k: bytes) -> bytes:
    """All khashes share 3 zero bytes, then one random bit per byte: deep shared prefixes."""
    h = blake2b256(k)
    return bytes(3) + bytes(b & 1 for b in h[3:])


def write(db: Db, upd: MerkleUpdater, key: bytes, value: bytes | None) -> None:
    """What the table layer does: record the todo in the data write's transaction."""
    db.transaction(lambda tx: upd.mark_todo(tx, key, value))


def drain(upd: MerkleUpdater, batch: int = 7) -> None:
    while upd.update_pending(batch):
        pass
    assert upd.todo_len() == 0


def dump(db: Db) -> dict[bytes, bytes]:
    return dict(db.open_tree(f"{TABLE}:merkle_tree").range())


def expected_nodes(entries: dict[bytes, bytes], khash: Callable[[bytes], bytes]) -> dict[bytes, bytes]:
    """Oracle: the stored nodes of the canonical tree over {tree_key: encoded entry}, built
    from scratch by splitting the set on successive khash bytes."""
    out: dict[bytes, bytes] = {}

    def build(partition: int, prefix: bytes, items: list[tuple[bytes, bytes, bytes]]) -> bytes:
        if not items:
            return EMPTY_HASH
        if len(items) == 1:
            node: Any = Leaf(items[0][0], items[0][2])
        else:
            groups: dict[int, list[tuple[bytes, bytes, bytes]]] = {}
            for it in items:
                groups.setdefault(it[1][len(prefix)], []).append(it)
            node = Intermediate(tuple(
                (b, build(partition, prefix + bytes((b,)), groups[b])) for b in sorted(groups)
            ))
        out[node_key(partition, prefix)] = encode_node(node)
        return node_hash(node)

    by_partition: dict[int, list[tuple[bytes, bytes, bytes]]] = {}
    for k, v in entries.items():
        by_partition.setdefault(partition_of(k), []).append((k, khash(k), todo_value(v)))
    for p, items in by_partition.items():
        build(p, b"", items)
    return out


def check_all(upd: MerkleUpdater, partitions: Any) -> None:
    for p in set(partitions):
        upd.check(p)


# ---------------------------------------------------------------------------------------
# Nodes


def test_node_encoding_round_trips_with_version_and_empty_hash_is_zero() -> None:
    nodes = [Leaf(make_key(1, 1), bytes(range(32))), Intermediate(((3, b"a" * 32), (7, b"b" * 32))), Empty()]
    for n in nodes:
        enc = encode_node(n)
        assert msgspec.msgpack.decode(enc)[0] == NODE_FORMAT_VERSION
        assert decode_node(enc) == n
    assert node_hash(Empty()) == EMPTY_HASH == bytes(32)
    assert node_hash(nodes[0]) == blake2b256(encode_node(nodes[0]))


@pytest.mark.parametrize("data", [
    b"\x00",
    msgspec.msgpack.encode([NODE_FORMAT_VERSION + 1, [0]]),
    msgspec.msgpack.encode([NODE_FORMAT_VERSION, [2, b"k" * 32, b"short"]]),
    msgspec.msgpack.encode([NODE_FORMAT_VERSION, [1, [[5, b"a" * 32], [4, b"b" * 32]]]]),
    msgspec.msgpack.encode([NODE_FORMAT_VERSION, [1, []]]),
    msgspec.msgpack.encode([NODE_FORMAT_VERSION, [9]]),
], ids=["garbage", "future-version", "short-hash", "unsorted-children", "no-children", "unknown-tag"])
def test_malformed_nodes_raise_merkle_corrupted(data: bytes) -> None:
    with pytest.raises(MerkleCorrupted):
        decode_node(data)


# ---------------------------------------------------------------------------------------
# (a) order independence, sensitivity


def test_roots_do_not_depend_on_insertion_order_and_change_with_any_value() -> None:
    rng = random.Random(1)
    entries = {make_key(rng.randrange(4), n, b"sk%d" % n): b"v%d" % n for n in range(400)}
    dbs = [open_db("memory", ""), MemoryDb()]
    upds = [MerkleUpdater(db, TABLE) for db in dbs]
    for upd, db in zip(upds, dbs, strict=True):
        order = list(entries)
        rng.shuffle(order)
        for i, k in enumerate(order):
            write(db, upd, k, entries[k])
            if i % rng.randrange(1, 50) == 0:
                upd.update_pending(rng.randrange(1, 20))
        drain(upd, rng.randrange(1, 30))
    assert dump(dbs[0]) == dump(dbs[1]) == expected_nodes(entries, blake2b256)
    check_all(upds[0], range(4))
    roots = [upds[0].root_hash(p) for p in range(256)]
    assert roots == [upds[1].root_hash(p) for p in range(256)]
    assert all(r != EMPTY_HASH for r in roots[:4]) and all(r == EMPTY_HASH for r in roots[4:])

    for k in rng.sample(list(entries), 5):
        write(dbs[1], upds[1], k, entries[k] + b"!")
        drain(upds[1])
        p = partition_of(k)
        assert upds[1].root_hash(p) != roots[p]
        assert [upds[1].root_hash(q) for q in range(256) if q != p] == [r for q, r in enumerate(roots) if q != p]
        write(dbs[1], upds[1], k, entries[k])
        drain(upds[1])
        assert upds[1].root_hash(p) == roots[p]


def test_leaves_under_lists_every_entry_of_a_subtree() -> None:
    db = MemoryDb()
    upd = MerkleUpdater(db, TABLE)
    entries = {make_key(9, n): b"x%d" % n for n in range(50)}
    for k, v in entries.items():
        write(db, upd, k, v)
    drain(upd)
    assert sorted(upd.leaves_under(9, b"")) == sorted((k, todo_value(v)) for k, v in entries.items())
    root = upd.get_node(9, b"")
    assert isinstance(root, Intermediate)
    b = root.children[0][0]
    under = upd.leaves_under(9, bytes((b,)))
    assert under and all(blake2b256(k)[0] == b for k, _ in under)
    assert upd.leaves_under(10, b"") == []


# ---------------------------------------------------------------------------------------
# (b) deletes


def test_deleting_back_to_a_set_gives_the_tree_of_never_inserting_the_rest() -> None:
    rng = random.Random(2)
    base = {make_key(rng.randrange(3), n): b"b%d" % n for n in range(150)}
    extra = {make_key(rng.randrange(3), n): b"e%d" % n for n in range(150, 300)}
    db1, db2 = MemoryDb(), MemoryDb()
    u1, u2 = MerkleUpdater(db1, TABLE), MerkleUpdater(db2, TABLE)
    for k, v in base.items():
        write(db1, u1, k, v)
    drain(u1)
    for k, v in {**base, **extra}.items():
        write(db2, u2, k, v)
    drain(u2)
    assert dump(db1) != dump(db2)
    doomed = list(extra)
    rng.shuffle(doomed)
    for i, k in enumerate(doomed):
        write(db2, u2, k, None)
        if i % 10 == 0:
            drain(u2, 3)
            check_all(u2, range(3))
    drain(u2)
    assert dump(db1) == dump(db2) == expected_nodes(base, blake2b256)
    for k in base:
        write(db2, u2, k, None)
    write(db2, u2, make_key(5, 999), None)  # deleting what was never there is a no-op
    drain(u2)
    assert dump(db2) == {} and u2.merkle_tree_len() == 0


# ---------------------------------------------------------------------------------------
# (c) compare-and-delete


def test_todo_overwritten_before_draining_applies_the_latest_value() -> None:
    db = MemoryDb()
    upd = MerkleUpdater(db, TABLE)
    k = make_key(0, 1)
    write(db, upd, k, b"v1")
    write(db, upd, k, b"v2")
    assert upd.update_pending(10) == 1
    assert upd.get_node(0, b"") == Leaf(k, todo_value(b"v2")) and upd.todo_len() == 0


class TxExposingDb(MemoryDb):
    """A MemoryDb through which a test can reach the transaction being run."""

    current_tx: Any = None

    def transaction(self, fn: Callable[[Any], Any]) -> Any:
        def run(tx: Any) -> Any:
            self.current_tx = tx
            try:
                return fn(tx)
            finally:
                self.current_tx = None

        return super().transaction(run)


def test_todo_replaced_while_being_applied_is_kept_and_applied_next_pass() -> None:
    db = TxExposingDb()
    k = make_key(0, 1)
    armed = [True]

    def racing_khash(key: bytes) -> bytes:
        # Called while the item is applied, between reading its todo value and deleting it.
        # The write stands in for a table write interleaved there (by an engine that does not
        # serialise transactions, or by a future split of the work in two transactions).
        if armed[0] and key == k:
            armed[0] = False
            db.current_tx.insert(upd.todo, k, todo_value(b"v2"))
        return blake2b256(key)

    upd = MerkleUpdater(db, TABLE, key_hash=racing_khash)
    write(db, upd, k, b"v1")
    assert upd.update_pending(10) == 1
    assert upd.get_node(0, b"") == Leaf(k, todo_value(b"v1"))
    assert upd.todo_len() == 1, "the newer todo value must not be deleted"
    assert upd.update_pending(10) == 1
    assert upd.get_node(0, b"") == Leaf(k, todo_value(b"v2")) and upd.todo_len() == 0


def test_bad_todo_value_is_refused_and_kept() -> None:
    db = MemoryDb()
    upd = MerkleUpdater(db, TABLE)
    k = make_key(0, 1)
    db.open_tree(f"{TABLE}:merkle_todo").insert(k, b"not a hash")
    with pytest.raises(MerkleCorrupted):
        upd.update_pending(1)
    assert upd.todo_len() == 1 and upd.merkle_tree_len() == 0
    with pytest.raises(ValueError):
        write(db, upd, b"short", b"v")


# ---------------------------------------------------------------------------------------
# (d) convergence of replicas


op_s = st.tuples(st.integers(0, 23), st.one_of(st.none(), st.integers(0, 3)))


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(ops=st.lists(op_s, max_size=60), weak=st.booleans(), data=st.data())
def test_replicas_applying_writes_in_different_orders_converge(
    ops: list[tuple[int, int | None]], weak: bool, data: Any,
) -> None:
    khash = weak_khash if weak else blake2b256
    keys = [make_key(i % 2, i) for i in range(24)]

    def val(v: int | None) -> bytes | None:
        return None if v is None else b"val%d" % v

    final: dict[bytes, bytes | None] = {}
    for i, v in ops:
        final[keys[i]] = val(v)
    # Replica B sees the writes in another order, then the final write of each key (as
    # anti-entropy would deliver it), in yet another order.
    shuffled = data.draw(st.permutations(ops))
    tail = data.draw(st.permutations(sorted(final)))
    seq_a = [(keys[i], val(v)) for i, v in ops]
    seq_b = [(keys[i], val(v)) for i, v in shuffled] + [(k, final[k]) for k in tail]

    dumps = []
    for seq in (seq_a, seq_b):
        db = MemoryDb()
        upd = MerkleUpdater(db, TABLE, key_hash=khash)
        for k, v in seq:
            write(db, upd, k, v)
            if data.draw(st.integers(0, 3)) == 0:
                upd.update_pending(data.draw(st.integers(1, 5)))
        drain(upd, data.draw(st.integers(1, 10)))
        check_all(upd, (0, 1))
        dumps.append(dump(db))
    live = {k: v for k, v in final.items() if v is not None}
    assert dumps[0] == dumps[1] == expected_nodes(live, khash)


# ---------------------------------------------------------------------------------------
# (e) deep shared prefixes


def test_keys_sharing_khash_prefixes_split_and_collapse_back() -> None:
    k1, k2, k3 = make_key(0, 1), make_key(0, 2), make_key(0, 3)
    crafted = {k1: bytes([0, 0, 1]) + bytes(29), k2: bytes([0, 0, 2]) + bytes(29), k3: bytes([0, 7]) + bytes(30)}
    db = MemoryDb()
    upd = MerkleUpdater(db, TABLE, key_hash=crafted.__getitem__)
    write(db, upd, k1, b"1")
    drain(upd)
    assert upd.get_node(0, b"") == Leaf(k1, todo_value(b"1")) and upd.merkle_tree_len() == 1
    write(db, upd, k2, b"2")
    drain(upd)
    # A chain of single-child Intermediates down to where the khashes differ.
    assert [b for b, _ in upd.get_node(0, b"").children] == [0]  # type: ignore[union-attr]
    assert [b for b, _ in upd.get_node(0, b"\x00").children] == [0]  # type: ignore[union-attr]
    assert [b for b, _ in upd.get_node(0, b"\x00\x00").children] == [1, 2]  # type: ignore[union-attr]
    assert upd.get_node(0, b"\x00\x00\x02") == Leaf(k2, todo_value(b"2")) and upd.merkle_tree_len() == 5
    write(db, upd, k3, b"3")
    drain(upd)
    assert [b for b, _ in upd.get_node(0, b"\x00").children] == [0, 7]  # type: ignore[union-attr]
    upd.check(0)
    write(db, upd, k1, None)
    drain(upd)
    # k2 is alone under 00 00, so it is lifted up to 00 00 and then 00 00 -> 00 with k3 beside it.
    assert upd.get_node(0, b"\x00\x00") == Leaf(k2, todo_value(b"2"))
    upd.check(0)
    write(db, upd, k3, None)
    drain(upd)
    assert upd.get_node(0, b"") == Leaf(k2, todo_value(b"2")) and upd.merkle_tree_len() == 1
    assert dump(db) == expected_nodes({k2: b"2"}, crafted.__getitem__)


def test_many_keys_with_deep_shared_prefixes_stay_canonical_through_deletes() -> None:
    rng = random.Random(3)
    entries = {make_key(0, n): b"v%d" % n for n in range(300)}
    assert len({weak_khash(k) for k in entries}) == len(entries)  # the weak hash stays injective here
    db = MemoryDb()
    upd = MerkleUpdater(db, TABLE, key_hash=weak_khash)
    for k, v in entries.items():
        write(db, upd, k, v)
    drain(upd)
    stored = dump(db)
    assert stored == expected_nodes(entries, weak_khash)
    assert max(len(k) - 1 for k in stored) >= 10, "expected deep splits"
    upd.check(0)
    live = dict(entries)
    doomed = list(entries)
    rng.shuffle(doomed)
    for i in range(0, len(doomed), 20):
        for k in doomed[i:i + 20]:
            write(db, upd, k, None)
            del live[k]
        drain(upd, 11)
        upd.check(0)  # in particular: no Intermediate left with a single Leaf child
        assert dump(db) == expected_nodes(live, weak_khash)
    assert upd.root_hash(0) == EMPTY_HASH and upd.merkle_tree_len() == 0
