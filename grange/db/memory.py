"""The in-memory twin of the storage engines: same interface, same conformance suite.

Trees are sorted key lists beside dicts; a transaction works on a copy-on-write overlay and
is applied under the database lock only if `fn` returns. Nothing survives the process.

Like the real engines, it refuses (`DbError`) what they cannot do: calling this database's
tree or db methods from the thread running a transaction's `fn` (LMDB would deadlock on its
writer lock, SQLite would see uncommitted writes), using a `tx` after its transaction
ended, and any call after `close()`.
"""

from __future__ import annotations

import bisect
import threading
from collections.abc import Callable, Iterator
from contextlib import AbstractContextManager
from typing import TypeVar

from grange.db import RANGE_PAGE, DbError

T = TypeVar("T")
_DELETED = object()


class MemoryTree:
    def __init__(self, db: MemoryDb, name: str) -> None:
        self.name = name
        self._db = db
        self._keys: list[bytes] = []
        self._values: dict[bytes, bytes] = {}

    # -- raw access, caller holds the lock --
    def _put(self, key: bytes, value: bytes) -> None:
        if key not in self._values:
            bisect.insort(self._keys, key)
        self._values[key] = value

    def _del(self, key: bytes) -> None:
        if key in self._values:
            del self._values[key]
            del self._keys[bisect.bisect_left(self._keys, key)]

    def _slice(self, start: bytes | None, end: bytes | None, reverse: bool, limit: int | None) -> list[tuple[bytes, bytes]]:
        lo = 0 if start is None else bisect.bisect_left(self._keys, start)
        hi = len(self._keys) if end is None else bisect.bisect_left(self._keys, end)
        if limit is not None:  # cut before copying: a page must not cost the whole range
            if reverse:
                lo = max(lo, hi - limit)
            else:
                hi = min(hi, lo + limit)
        keys = self._keys[lo:hi]
        if reverse:
            keys.reverse()
        return [(k, self._values[k]) for k in keys]

    # -- Tree interface --
    def get(self, key: bytes) -> bytes | None:
        with self._db._use():
            return self._values.get(key)

    def insert(self, key: bytes, value: bytes) -> None:
        with self._db._use():
            self._put(bytes(key), bytes(value))

    def remove(self, key: bytes) -> None:
        with self._db._use():
            self._del(key)

    def len(self) -> int:
        with self._db._use():
            return len(self._keys)

    def first(self) -> tuple[bytes, bytes] | None:
        with self._db._use():
            return (self._keys[0], self._values[self._keys[0]]) if self._keys else None

    def get_gt(self, key: bytes) -> tuple[bytes, bytes] | None:
        with self._db._use():
            i = bisect.bisect_right(self._keys, key)
            return (self._keys[i], self._values[self._keys[i]]) if i < len(self._keys) else None

    def get_lt(self, key: bytes) -> tuple[bytes, bytes] | None:
        with self._db._use():
            i = bisect.bisect_left(self._keys, key)
            return (self._keys[i - 1], self._values[self._keys[i - 1]]) if i > 0 else None

    def range(
        self, start: bytes | None = None, end: bytes | None = None, *,
        reverse: bool = False, limit: int | None = None,
    ) -> Iterator[tuple[bytes, bytes]]:
        remaining = None if limit is None else max(limit, 0)
        while remaining is None or remaining > 0:
            page_size = RANGE_PAGE if remaining is None else min(RANGE_PAGE, remaining)
            with self._db._use():
                page = self._slice(start, end, reverse, page_size)
            yield from page
            if len(page) < page_size:
                return
            if remaining is not None:
                remaining -= len(page)
            last = page[-1][0]
            if reverse:
                end = last
            else:
                start = last + b"\x00"

    def clear(self) -> None:
        with self._db._use():
            self._keys.clear()
            self._values.clear()


class MemoryTx:
    def __init__(self, db: MemoryDb) -> None:
        self.db = db
        self.done = False
        self.writes: dict[tuple[str, bytes], object] = {}
        self.trees: dict[str, MemoryTree] = {}

    def _check(self, tree: MemoryTree) -> None:
        if self.done:
            raise DbError("transaction used after it ended")
        if tree._db is not self.db:
            raise DbError(f"tree {tree.name!r} belongs to another database")

    def get(self, tree: MemoryTree, key: bytes) -> bytes | None:  # type: ignore[override]
        self._check(tree)
        w = self.writes.get((tree.name, key))
        if w is _DELETED:
            return None
        if w is not None:
            return w  # type: ignore[return-value]
        return tree._values.get(key)

    def insert(self, tree: MemoryTree, key: bytes, value: bytes) -> None:  # type: ignore[override]
        self._check(tree)
        self.trees[tree.name] = tree
        self.writes[(tree.name, bytes(key))] = bytes(value)

    def remove(self, tree: MemoryTree, key: bytes) -> None:  # type: ignore[override]
        self._check(tree)
        self.trees[tree.name] = tree
        self.writes[(tree.name, bytes(key))] = _DELETED

    def range(
        self, tree: MemoryTree, start: bytes | None = None, end: bytes | None = None, *,  # type: ignore[override]
        reverse: bool = False, limit: int | None = None,
    ) -> list[tuple[bytes, bytes]]:
        self._check(tree)
        merged = dict(tree._slice(start, end, False, None))
        for (name, key), value in self.writes.items():
            if name != tree.name or (start is not None and key < start) or (end is not None and key >= end):
                continue
            if value is _DELETED:
                merged.pop(key, None)
            else:
                merged[key] = value  # type: ignore[assignment]
        items = sorted(merged.items(), reverse=reverse)
        return items if limit is None else items[:max(limit, 0)]


class MemoryDb:
    engine = "memory"

    def __init__(self) -> None:
        self.lock = threading.RLock()
        self._local = threading.local()  # .in_tx: this thread is running a transaction's fn
        self._closed = False
        self._trees: dict[str, MemoryTree] = {}

    def _use(self) -> AbstractContextManager[bool]:
        """The lock, after refusing calls the real engines refuse."""
        if self._closed:
            raise DbError("database is closed")
        if getattr(self._local, "in_tx", False):
            raise DbError("called inside a transaction on the same database: use the tx")
        return self.lock

    def open_tree(self, name: str) -> MemoryTree:
        with self._use():
            tree = self._trees.get(name)
            if tree is None:
                tree = self._trees[name] = MemoryTree(self, name)
            return tree

    def list_trees(self) -> list[str]:
        with self._use():
            return sorted(self._trees)

    def transaction(self, fn: Callable[[MemoryTx], T]) -> T:
        with self._use():
            tx = MemoryTx(self)
            self._local.in_tx = True
            try:
                result = fn(tx)
            finally:
                tx.done = True
                self._local.in_tx = False
            for (name, key), value in tx.writes.items():
                tree = tx.trees[name]
                if value is _DELETED:
                    tree._del(key)
                else:
                    tree._put(key, value)  # type: ignore[arg-type]
            return result

    def close(self) -> None:
        if getattr(self._local, "in_tx", False):
            raise DbError("close called inside a transaction on the same database")
        self._closed = True
