"""Merge laws of the CRDT building blocks, checked on canonical encodings.

Guaranteed by these tests, for every type and for the generic `merge()` over mixed values:
merge is commutative, associative and idempotent *byte for byte* (what the Merkle trees
hash); encoding round-trips; a local update (`Lww.update`, `LwwMap.put`) wins over the value
it replaces whatever the clocks say. Timestamps and values are drawn from tiny ranges so
that ties (equal timestamps, different values) are frequent.
"""

from __future__ import annotations

from typing import Any

import msgspec
import pytest
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st

from grange.table.crdt import Bool, Crdt, CrdtMap, Deletable, Lww, LwwMap, canonical, merge, next_ts

SETTINGS = settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])

ts_s = st.integers(0, 3)
small_int = st.integers(-2, 2)
keys_s = st.sampled_from(["a", "b", "c"])

bool_s = st.builds(Bool, st.booleans())
lww_int_s = st.builds(Lww, ts_s, small_int)
lww_map_s = st.dictionaries(keys_s, st.tuples(ts_s, small_int), max_size=3).map(
    lambda d: LwwMap.from_entries((k, ts, v) for k, (ts, v) in d.items())
)
lww_of_map_s = st.builds(Lww, ts_s, lww_map_s)
lww_of_bool_or_none_s = st.builds(Lww, ts_s, st.one_of(st.none(), bool_s))
deletable_int_s = st.one_of(st.just(Deletable.delete()), small_int.map(Deletable.present))
deletable_lww_s = st.one_of(st.just(Deletable.delete()), lww_int_s.map(Deletable.present))
crdt_map_s = st.dictionaries(keys_s, deletable_lww_s, max_size=3).map(lambda d: CrdtMap.from_items(d.items()))
crdt_map_bool_s = st.dictionaries(keys_s, bool_s, max_size=3).map(lambda d: CrdtMap.from_items(d.items()))
nested_s = st.dictionaries(keys_s, st.tuples(ts_s, crdt_map_bool_s), max_size=2).map(
    lambda d: LwwMap.from_entries((k, ts, v) for k, (ts, v) in d.items())
)


class MinInt(msgspec.Struct, frozen=True, array_like=True):
    """A test CRDT whose join (min) can *shrink* the encoding, unlike the library's types:
    it shows that `merge()` does not rely on joins growing the encoding."""

    value: int

    def merge(self, other: MinInt) -> MinInt:
        return self if self.value <= other.value else other


# Plain values of several kinds (1-tuples encode like MinInt) mixed with CRDTs of three
# classes: the generic tie-break must still be a join.
mixed_s = st.one_of(
    st.none(), small_int, st.binary(max_size=2), st.text("ab", max_size=2), st.tuples(st.integers(0, 5)),
    bool_s, lww_int_s, st.builds(MinInt, st.integers(0, 5)),
)

# (name, strategy, type to decode with)
CASES: list[tuple[str, st.SearchStrategy[Any], Any]] = [
    ("Bool", bool_s, Bool),
    ("Lww[int]", lww_int_s, Lww[int]),
    ("Lww[LwwMap]", lww_of_map_s, Lww[LwwMap[str, int]]),
    ("Lww[Bool|None]", lww_of_bool_or_none_s, Lww[Bool | None]),
    ("LwwMap[str,int]", lww_map_s, LwwMap[str, int]),
    ("LwwMap[str,CrdtMap]", nested_s, LwwMap[str, CrdtMap[str, Bool]]),
    ("Deletable[int]", deletable_int_s, Deletable[int]),
    ("Deletable[Lww]", deletable_lww_s, Deletable[Lww[int]]),
    ("CrdtMap[str,Deletable]", crdt_map_s, CrdtMap[str, Deletable[Lww[int]]]),
    ("CrdtMap[str,Bool]", crdt_map_bool_s, CrdtMap[str, Bool]),
    ("Lww[MinInt]", st.builds(Lww, ts_s, st.builds(MinInt, st.integers(0, 5))), Lww[MinInt]),
    ("LwwMap[str,MinInt|None]", st.dictionaries(keys_s, st.tuples(ts_s, st.none() | st.builds(MinInt, small_int)),
                                                  max_size=3).map(
        lambda d: LwwMap.from_entries((k, ts, v) for k, (ts, v) in d.items())), LwwMap[str, MinInt | None]),
]
IDS = [c[0] for c in CASES]


def j(a: Any, b: Any) -> Any:
    """The join used by tables: a CRDT's own merge, or the generic one for mixed values."""
    return a.merge(b) if isinstance(a, Crdt) and type(a) is type(b) else merge(a, b)


@pytest.mark.parametrize(("name", "strategy", "typ"), CASES, ids=IDS)
@SETTINGS
@given(data=st.data())
def test_merge_is_commutative_associative_idempotent(name: str, strategy: Any, typ: Any, data: Any) -> None:
    a, b, c = data.draw(strategy), data.draw(strategy), data.draw(strategy)
    assert canonical(j(a, b)) == canonical(j(b, a))
    assert canonical(j(j(a, b), c)) == canonical(j(a, j(b, c)))
    assert canonical(j(a, a)) == canonical(a)
    assert canonical(j(j(a, b), b)) == canonical(j(a, b))


@SETTINGS
@given(a=mixed_s, b=mixed_s, c=mixed_s)
@example(a=MinInt(0), b=MinInt(5), c=(1,))  # a join that shrinks the encoding, beside a plain value
def test_generic_merge_is_a_join_over_mixed_values(a: Any, b: Any, c: Any) -> None:
    assert canonical(merge(a, b)) == canonical(merge(b, a))
    assert canonical(merge(merge(a, b), c)) == canonical(merge(a, merge(b, c)))
    assert canonical(merge(a, a)) == canonical(a)


@pytest.mark.parametrize(("name", "strategy", "typ"), CASES, ids=IDS)
@SETTINGS
@given(data=st.data())
def test_encoding_round_trips_and_is_canonical(name: str, strategy: Any, typ: Any, data: Any) -> None:
    a = data.draw(strategy)
    enc = msgspec.msgpack.encode(a)
    back = msgspec.msgpack.decode(enc, type=typ)
    assert back == a
    assert msgspec.msgpack.encode(back) == enc == canonical(a)


@SETTINGS
@given(prev=st.builds(Lww, st.integers(0, 10**13), small_int), value=small_int, now=st.integers(0, 10**13))
def test_lww_update_wins_over_the_value_it_replaces_even_with_clock_behind(prev: Lww[int], value: int, now: int) -> None:
    new = prev.update(value, now)
    assert new.ts > prev.ts and new.ts >= now
    assert prev.merge(new) == new == new.merge(prev)


@SETTINGS
@given(m=lww_map_s, k=keys_s, value=small_int, now=ts_s)
def test_lww_map_put_wins_for_its_key_and_keeps_the_others(m: LwwMap[str, int], k: str, value: int, now: int) -> None:
    new = m.put(k, value, now)
    assert new.get(k) == value
    expected_ts = next_ts(m.get_timestamp(k), now) if k in m else now
    assert new.get_timestamp(k) == expected_ts
    assert canonical(m.merge(new)) == canonical(new) == canonical(new.merge(m))
    delta = m.update_mutator(k, value, now)
    assert canonical(m.merge(delta)) == canonical(new)
    assert [(k2, v) for k2, v in new.items() if k2 != k] == [(k2, v) for k2, v in m.items() if k2 != k]


def test_lww_tie_merges_crdt_values_and_keeps_larger_encoding_of_plain_ones() -> None:
    a, b = Lww(5, Bool(False)), Lww(5, Bool(True))
    assert a.merge(b) == Lww(5, Bool(True)) == b.merge(a)
    x, y = Lww(5, b"a"), Lww(5, b"b")
    assert x.merge(y) == y == y.merge(x)
    assert Lww(6, b"a").merge(y) == Lww(6, b"a")


def test_deletable_deleted_absorbs_and_present_values_merge() -> None:
    p1, p2 = Deletable.present(Bool(False)), Deletable.present(Bool(True))
    assert p1.merge(p2).get() == Bool(True)
    d: Deletable[Bool] = Deletable.delete()
    assert p1.merge(d).is_deleted() and d.merge(p2).is_deleted()
    assert d.get() is None


def test_maps_reject_unsorted_or_duplicate_keys_on_decode() -> None:
    bad = msgspec.msgpack.encode([[["b", 1, 1], ["a", 1, 2]]])
    with pytest.raises(msgspec.ValidationError):
        msgspec.msgpack.decode(bad, type=LwwMap[str, int])
    dup = msgspec.msgpack.encode([[["a", True], ["a", False]]])
    with pytest.raises(msgspec.ValidationError):
        msgspec.msgpack.decode(dup, type=CrdtMap[str, bool])
    with pytest.raises(ValueError):
        LwwMap.from_entries([("a", 1, 1), ("a", 2, 2)])
    with pytest.raises(msgspec.ValidationError):
        msgspec.msgpack.decode(msgspec.msgpack.encode([True, 3]), type=Deletable[int])


def test_crdt_map_put_merges_into_existing_value() -> None:
    m: CrdtMap[str, Bool] = CrdtMap().put("x", Bool(True))
    assert m.put("x", Bool(False)).get("x") == Bool(True)
    assert m.put("y", Bool(False)).keys() == ["x", "y"]
    assert "y" not in m and len(m) == 1


def test_bool_only_goes_up() -> None:
    f = Bool()
    assert not f and f.set() and f.merge(Bool(True)).get()
    assert Bool(True).merge(Bool(False)) == Bool(True)
