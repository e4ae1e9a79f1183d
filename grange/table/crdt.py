"""CRDT building blocks for table entries (Garage `src/util/crdt/`).

Every table entry is merged with a CRDT join, so that replicas that received the same set
of writes, in any order and any number of times, hold the same entry. The join must be

    a ⊔ b = b ⊔ a                 (commutative)
    (a ⊔ b) ⊔ c = a ⊔ (b ⊔ c)     (associative)
    a ⊔ a = a                     (idempotent)

where "=" means *equal msgpack encodings*: the Merkle trees of anti-entropy hash the encoded
entries, so two replicas holding merely "equivalent" values would never stop syncing. Every
type here therefore has one canonical encoding (maps are stored as tuples sorted by key and
checked on decode), and tests/test_crdt.py checks the three laws on encodings.

Style: all types are frozen msgspec Structs and `merge(other)` returns a NEW value (it may
return `self` or `other` unchanged; sharing is safe because nothing is mutated). Mutators
(`update`, `put`, `set`...) likewise return new values. Do not mutate the tuples inside.

Encodings (msgpack, `array_like` so they are compact; a trailing element added by a later
version is ignored by older decoders, as for any msgspec array-like struct):

    Lww         [ts, value]
    LwwMap      [[[key, ts, value], ...]]       sorted by key, keys unique
    Bool        [value]
    Deletable   [deleted, value]                value is nil iff deleted
    CrdtMap     [[[key, value], ...]]           sorted by key, keys unique

These shapes are part of the on-disk format of every table that uses them: the version tag
lives on the table entry that contains them, so changing a shape here means a new entry
format version with a migration (conventions, "Formats on disk carry a version").

Tie-breaks. Values that are not CRDTs (bytes, int, str, None, plain structs...) are joined by
`merge()` below: the one with the larger canonical msgpack encoding wins. That is arbitrary
but deterministic, so it is only a tie-break: as Garage notes, never produce two different
plain values with the same timestamp on purpose. When a plain value meets a CRDT, or two
CRDTs of different classes meet (e.g. `Lww[Bool | None]`), `merge()` orders them as an
ordinal sum so the laws still hold: any CRDT beats any plain value, and between CRDT classes
the larger qualified class name wins.

When changing this code, keep in step: the encodings above (and the entry format versions of
the tables that embed them), `_rank()` (the order of the ordinal sum), and the laws tested in
tests/test_crdt.py.
"""

from __future__ import annotations

import bisect
from collections.abc import Iterable
from typing import Any, Generic, Protocol, Self, TypeVar, runtime_checkable

import msgspec

__all__ = [
    "Bool",
    "Crdt",
    "CrdtMap",
    "Deletable",
    "Lww",
    "LwwMap",
    "canonical",
    "merge",
    "next_ts",
]

T = TypeVar("T")
K = TypeVar("K")
V = TypeVar("V")

_ENCODER = msgspec.msgpack.Encoder(order="deterministic")


def canonical(value: object) -> bytes:
    """The canonical msgpack encoding of `value` (dict keys sorted): what the laws compare."""
    return _ENCODER.encode(value)


@runtime_checkable
class Crdt(Protocol):
    """A value with a join: `merge` is commutative, associative and idempotent.

    `merge` returns the joined value and leaves both operands unchanged.
    """

    def merge(self, other: Self) -> Self: ...


def _rank(value: object) -> tuple[int, str]:
    # Plain values all rank (0, ""), so they are compared by encoding; CRDTs rank above them,
    # grouped by class. Each group is a semilattice, so the ordinal sum of the groups is one.
    if isinstance(value, Crdt):
        cls = type(value)
        return (1, f"{cls.__module__}.{cls.__qualname__}")
    return (0, "")


def merge(a: T, b: T) -> T:
    """Join of any two values: CRDTs of one class with their own `merge`, anything else by rank.

    Guaranteed commutative, associative and idempotent (on encodings) provided every CRDT
    class involved is; see the module docstring for the order used between kinds of values.
    """
    ra, rb = _rank(a), _rank(b)
    if ra != rb:
        return a if ra > rb else b
    if ra[0] == 1:
        return a.merge(b)  # type: ignore[attr-defined, no-any-return]
    return a if canonical(a) >= canonical(b) else b


def next_ts(prev_ts: int, now_ms: int) -> int:
    """Timestamp for a write replacing one stamped `prev_ts`: now, but strictly after prev_ts.

    So the new value wins the LWW merge against the one it replaces even when this node's
    clock is behind the writer of the old value (Garage `increment_logical_clock`).
    """
    return max(now_ms, prev_ts + 1)


# ---------------------------------------------------------------------------------------
# LWW register


class Lww(msgspec.Struct, Generic[T], frozen=True, array_like=True):
    """Last-writer-wins register: the value with the larger timestamp (ms) wins.

    On equal timestamps the values are joined with `merge()`: their own merge if they are
    CRDTs, else the larger encoding (a deterministic, arbitrary tie-break).
    """

    ts: int
    value: T

    @classmethod
    def new(cls, value: T, now_ms: int) -> Lww[T]:
        return cls(now_ms, value)

    def get(self) -> T:
        return self.value

    def update(self, value: T, now_ms: int) -> Lww[T]:
        """A new register holding `value`, guaranteed to win when merged with `self`."""
        return Lww(next_ts(self.ts, now_ms), value)

    def merge(self, other: Lww[T]) -> Lww[T]:
        if self.ts != other.ts:
            return self if self.ts > other.ts else other
        joined = merge(self.value, other.value)
        if joined is self.value:
            return self
        if joined is other.value:
            return other
        return Lww(self.ts, joined)


# ---------------------------------------------------------------------------------------
# Sorted-tuple maps (shared helpers)


def _check_sorted_unique(keys: list[Any], what: str) -> None:
    # Runs on construction and on decode (msgspec calls __post_init__): a map that is not
    # strictly sorted would have a second encoding for the same content.
    for a, b in zip(keys, keys[1:], strict=False):
        if not a < b:
            raise ValueError(f"{what} keys must be strictly increasing, got {a!r} then {b!r}")


def _find(keys: list[Any], k: Any) -> tuple[int, bool]:
    i = bisect.bisect_left(keys, k)
    return i, i < len(keys) and keys[i] == k


class LwwMap(msgspec.Struct, Generic[K, V], frozen=True, array_like=True):
    """Map key -> value where each key is an independent LWW register.

    Stored as a tuple of (key, ts, value) sorted by key, so equal maps encode identically;
    keys must be totally ordered (str, bytes, int...). There is no removal: use a value type
    such as `Deletable[...]` or `X | None` and write the "absent" value. Meant for small maps
    (every change re-encodes the whole entry anyway, as Garage notes).
    """

    vals: tuple[tuple[K, int, V], ...] = ()

    def __post_init__(self) -> None:
        _check_sorted_unique([k for k, _, _ in self.vals], "LwwMap")

    @classmethod
    def from_entries(cls, entries: Iterable[tuple[K, int, V]]) -> LwwMap[K, V]:
        """Build from (key, ts, value) triples in any order; a repeated key raises ValueError."""
        return cls(tuple(sorted(entries, key=lambda e: e[0])))  # type: ignore[arg-type, return-value]

    @classmethod
    def raw_item(cls, k: K, ts: int, v: V) -> LwwMap[K, V]:
        """A one-item map with an explicit timestamp (migrations, deltas)."""
        return cls(((k, ts, v),))

    def _keys(self) -> list[K]:
        return [k for k, _, _ in self.vals]

    def get(self, k: K) -> V | None:
        i, found = _find(self._keys(), k)
        return self.vals[i][2] if found else None

    def get_timestamp(self, k: K) -> int:
        """Timestamp of k's value, 0 if k is absent."""
        i, found = _find(self._keys(), k)
        return self.vals[i][1] if found else 0

    def __contains__(self, k: object) -> bool:
        return _find(self._keys(), k)[1]

    def __len__(self) -> int:
        return len(self.vals)

    def keys(self) -> list[K]:
        return self._keys()

    def items(self) -> list[tuple[K, V]]:
        """(key, value) pairs in key order."""
        return [(k, v) for k, _, v in self.vals]

    def entries(self) -> tuple[tuple[K, int, V], ...]:
        """(key, timestamp, value) triples in key order."""
        return self.vals

    def update_mutator(self, k: K, v: V, now_ms: int) -> LwwMap[K, V]:
        """A one-item delta that, merged into `self`, sets k to v (it wins: see `next_ts`)."""
        i, found = _find(self._keys(), k)
        ts = next_ts(self.vals[i][1], now_ms) if found else now_ms
        return LwwMap(((k, ts, v),))

    def put(self, k: K, v: V, now_ms: int) -> LwwMap[K, V]:
        """A new map with k set to v, stamped so that it wins over the current value of k."""
        return self.merge(self.update_mutator(k, v, now_ms))

    def merge(self, other: LwwMap[K, V]) -> LwwMap[K, V]:
        if not other.vals:
            return self
        if not self.vals:
            return other
        out: dict[Any, tuple[K, int, V]] = {e[0]: e for e in self.vals}
        for k, ts2, v2 in other.vals:
            cur = out.get(k)
            if cur is None or ts2 > cur[1]:
                out[k] = (k, ts2, v2)
            elif ts2 == cur[1]:
                out[k] = (k, ts2, merge(cur[2], v2))
        return LwwMap(tuple(out[k] for k in sorted(out)))


# ---------------------------------------------------------------------------------------
# Monotonic bool, deletable wrapper


class Bool(msgspec.Struct, frozen=True, array_like=True):
    """A boolean that can only go from false to true; merge is `or`."""

    value: bool = False

    def get(self) -> bool:
        return self.value

    def __bool__(self) -> bool:
        return self.value

    def set(self) -> Bool:
        """The true value (this object is not changed)."""
        return self if self.value else Bool(True)

    def merge(self, other: Bool) -> Bool:
        return self if self.value or not other.value else other


class Deletable(msgspec.Struct, Generic[T], frozen=True, array_like=True):
    """A value that can be deleted once and for all: Deleted absorbs everything.

    Two present values are joined with `merge()` (their own merge if they are CRDTs, else the
    larger encoding). A deleted value holds `value=None`, checked on decode, so that there is
    a single encoding of "deleted".
    """

    deleted: bool
    value: T | None = None

    def __post_init__(self) -> None:
        if self.deleted and self.value is not None:
            raise ValueError("a deleted Deletable holds no value")

    @classmethod
    def present(cls, value: T) -> Deletable[T]:
        return cls(False, value)

    @classmethod
    def delete(cls) -> Deletable[T]:
        """The deleted value (a constructor: it does not change any instance)."""
        return cls(True, None)

    def is_deleted(self) -> bool:
        return self.deleted

    def get(self) -> T | None:
        """The value if present, None if deleted."""
        return None if self.deleted else self.value

    def merge(self, other: Deletable[T]) -> Deletable[T]:
        if self.deleted:
            return self
        if other.deleted:
            return other
        joined = merge(self.value, other.value)
        if joined is self.value:
            return self
        if joined is other.value:
            return other
        return Deletable(False, joined)


# ---------------------------------------------------------------------------------------
# Map of CRDTs


class CrdtMap(msgspec.Struct, Generic[K, V], frozen=True, array_like=True):
    """Map key -> CRDT value, merged key by key with the values' merge (Garage `crdt::Map`).

    Stored as a tuple of (key, value) sorted by key, so equal maps encode identically. There
    is no removal (a key once present stays): use a value type that can express deletion.
    """

    vals: tuple[tuple[K, V], ...] = ()

    def __post_init__(self) -> None:
        _check_sorted_unique([k for k, _ in self.vals], "CrdtMap")

    @classmethod
    def from_items(cls, items: Iterable[tuple[K, V]]) -> CrdtMap[K, V]:
        """Build from (key, value) pairs in any order; a repeated key raises ValueError."""
        return cls(tuple(sorted(items, key=lambda e: e[0])))  # type: ignore[arg-type, return-value]

    @classmethod
    def put_mutator(cls, k: K, v: V) -> CrdtMap[K, V]:
        """A one-item delta that, merged into a map, adds v at k or merges it with the value there."""
        return cls(((k, v),))

    def _keys(self) -> list[K]:
        return [k for k, _ in self.vals]

    def get(self, k: K) -> V | None:
        i, found = _find(self._keys(), k)
        return self.vals[i][1] if found else None

    def __contains__(self, k: object) -> bool:
        return _find(self._keys(), k)[1]

    def __len__(self) -> int:
        return len(self.vals)

    def keys(self) -> list[K]:
        return self._keys()

    def items(self) -> tuple[tuple[K, V], ...]:
        """(key, value) pairs in key order."""
        return self.vals

    def put(self, k: K, v: V) -> CrdtMap[K, V]:
        """A new map where k's value is merged with v (v is added if k was absent)."""
        return self.merge(CrdtMap(((k, v),)))

    def merge(self, other: CrdtMap[K, V]) -> CrdtMap[K, V]:
        if not other.vals:
            return self
        if not self.vals:
            return other
        out: dict[Any, V] = dict(self.vals)
        for k, v2 in other.vals:
            out[k] = merge(out[k], v2) if k in out else v2
        return CrdtMap(tuple((k, out[k]) for k in sorted(out)))
