"""The storage engine interface: named trees of ordered bytes → bytes, and transactions.

Everything above (`table`, `block` refcounts, queues) sees only this interface; engines are
`lmdb` (default), `sqlite`, and `memory` (the twin used by unit tests). One conformance
suite (`tests/test_db.py`) runs against all of them.

Guarantees every engine gives:
- keys are ordered bytewise; `range(start, end)` covers `start <= key < end` (None = open);
  `reverse=True` yields the same keys in descending order; `limit` caps the count;
- a single `insert`/`remove` outside a transaction is atomic;
- `transaction(fn)` runs `fn(tx)` atomically across trees: all its writes or none. If `fn`
  raises, nothing is written and the exception propagates. `fn` may be re-run by an engine
  only if it says so (none does today), so `fn` must not have side effects outside `tx`;
- iterating a range while writing to the same tree is allowed: the iterator pages through
  the tree (`RANGE_PAGE` items per read) and sees a consistent page at a time, not a frozen
  snapshot of the whole range;
- after a crash (SIGKILL) the database reopens consistent: every transaction that returned
  is there if `metadata_fsync` is true; with it false, the OS may lose the last commits on a
  power loss, never on a process crash;
- calls are thread-safe: the async layers run writes in a thread pool.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Protocol, TypeVar

T = TypeVar("T")

# How many items one read of a range fetches at most before yielding them.
RANGE_PAGE = 1000


class DbError(Exception):
    """The engine failed (I/O error, map full, corrupted file)."""


class Tx(Protocol):
    """A write transaction; its methods are only valid inside `Db.transaction`."""

    def get(self, tree: Tree, key: bytes) -> bytes | None: ...

    def insert(self, tree: Tree, key: bytes, value: bytes) -> None: ...

    def remove(self, tree: Tree, key: bytes) -> None: ...

    def range(
        self, tree: Tree, start: bytes | None = None, end: bytes | None = None, *,
        reverse: bool = False, limit: int | None = None,
    ) -> list[tuple[bytes, bytes]]: ...


class Tree(Protocol):
    name: str

    def get(self, key: bytes) -> bytes | None: ...

    def insert(self, key: bytes, value: bytes) -> None: ...

    def remove(self, key: bytes) -> None: ...

    def len(self) -> int: ...

    def first(self) -> tuple[bytes, bytes] | None: ...

    def get_gt(self, key: bytes) -> tuple[bytes, bytes] | None: ...

    def get_lt(self, key: bytes) -> tuple[bytes, bytes] | None: ...

    def range(
        self, start: bytes | None = None, end: bytes | None = None, *,
        reverse: bool = False, limit: int | None = None,
    ) -> Iterator[tuple[bytes, bytes]]: ...

    def clear(self) -> None: ...


class Db(Protocol):
    engine: str

    def open_tree(self, name: str) -> Tree: ...

    def list_trees(self) -> list[str]: ...

    def transaction(self, fn: Callable[[Tx], T]) -> T: ...

    def close(self) -> None: ...


def prefix_end(prefix: bytes) -> bytes | None:
    """Smallest key greater than every key that starts with `prefix` (None: no such bound)."""
    p = bytearray(prefix)
    while p:
        if p[-1] < 0xFF:
            p[-1] += 1
            return bytes(p)
        p.pop()
    return None


def open_db(engine: str, path: str, *, fsync: bool = False, lmdb_map_size: int | None = None) -> Db:
    """Open (creating if needed) the metadata database of `engine` under directory `path`.

    File names as in Garage: `path/db.lmdb/` for LMDB, `path/db.sqlite` for SQLite.
    """
    if engine == "memory":
        from grange.db.memory import MemoryDb

        return MemoryDb()
    if engine == "lmdb":
        from grange.db.lmdb_engine import LmdbDb

        return LmdbDb(path, fsync=fsync, map_size=lmdb_map_size)
    if engine == "sqlite":
        from grange.db.sqlite_engine import SqliteDb

        return SqliteDb(path, fsync=fsync)
    raise DbError(f"unknown db engine {engine!r}")
