"""The in-memory twin of the storage engines: same interface, same conformance suite.

Trees are sorted key lists beside dicts; a transaction works on a copy-on-write overlay and
is applied under the database lock only if `fn` returns. Nothing survives the process.
"""

from __future__ import annotations

import bisect
import threading
from collections.abc import Callable, Iterator
from typing import TypeVar

from grange.db import RANGE_PAGE

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
        keys = self._keys[lo:hi]
        if reverse:
            keys.reverse()
        if limit is not None:
            keys = keys[:limit]
        return [(k, self._values[k]) for k in keys]

    # -- Tree interface --
    def get(self, key: bytes) -> bytes | None:
        with self._db.lock:
            return self._values.get(key)

    def insert(self, key: bytes, value: bytes) -> None:
        with self._db.lock:
            self._put(bytes(key), bytes(value))

    def remove(self, key: bytes) -> None:
        with self._db.lock:
            self._del(key)

    def len(self) -> int:
        with self._db.lock:
            return len(self._keys)

    def first(self) -> tuple[bytes, bytes] | None:
        with self._db.lock:
            return (self._keys[0], self._values[self._keys[0]]) if self._keys else None

    def get_gt(self, key: bytes) -> tuple[bytes, bytes] | None:
        with self._db.lock:
            i = bisect.bisect_right(self._keys, key)
            return (self._keys[i], self._values[self._keys[i]]) if i < len(self._keys) else None

    def get_lt(self, key: bytes) -> tuple[bytes, bytes] | None:
        with self._db.lock:
            i = bisect.bisect_left(self._keys, key)
            return (self._keys[i - 1], self._values[self._keys[i - 1]]) if i > 0 else None

    def range(
        self, start: bytes | None = None, end: bytes | None = None, *,
        reverse: bool = False, limit: int | None = None,
    ) -> Iterator[tuple[bytes, bytes]]:
        remaining = limit
        while remaining is None or remaining > 0:
            page_size = RANGE_PAGE if remaining is None else min(RANGE_PAGE, remaining)
            with self._db.lock:
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
        with self._db.lock:
            self._keys.clear()
            self._values.clear()


class MemoryTx:
    def __init__(self) -> None:
        self.writes: dict[tuple[str, bytes], object] = {}
        self.trees: dict[str, MemoryTree] = {}

    def get(self, tree: MemoryTree, key: bytes) -> bytes | None:  # type: ignore[override]
        w = self.writes.get((tree.name, key))
        if w is _DELETED:
            return None
        if w is not None:
            return w  # type: ignore[return-value]
        return tree._values.get(key)

    def insert(self, tree: MemoryTree, key: bytes, value: bytes) -> None:  # type: ignore[override]
        self.trees[tree.name] = tree
        self.writes[(tree.name, bytes(key))] = bytes(value)

    def remove(self, tree: MemoryTree, key: bytes) -> None:  # type: ignore[override]
        self.trees[tree.name] = tree
        self.writes[(tree.name, bytes(key))] = _DELETED

    def range(
        self, tree: MemoryTree, start: bytes | None = None, end: bytes | None = None, *,  # type: ignore[override]
        reverse: bool = False, limit: int | None = None,
    ) -> list[tuple[bytes, bytes]]:
        merged = dict(tree._slice(start, end, False, None))
        for (name, key), value in self.writes.items():
            if name != tree.name or (start is not None and key < start) or (end is not None and key >= end):
                continue
            if value is _DELETED:
                merged.pop(key, None)
            else:
                merged[key] = value  # type: ignore[assignment]
        items = sorted(merged.items(), reverse=reverse)
        return items if limit is None else items[:limit]


class MemoryDb:
    engine = "memory"

    def __init__(self) -> None:
        self.lock = threading.RLock()
        self._trees: dict[str, MemoryTree] = {}

    def open_tree(self, name: str) -> MemoryTree:
        with self.lock:
            tree = self._trees.get(name)
            if tree is None:
                tree = self._trees[name] = MemoryTree(self, name)
            return tree

    def list_trees(self) -> list[str]:
        with self.lock:
            return sorted(self._trees)

    def transaction(self, fn: Callable[[MemoryTx], T]) -> T:
        with self.lock:
            tx = MemoryTx()
            result = fn(tx)
            for (name, key), value in tx.writes.items():
                tree = tx.trees[name]
                if value is _DELETED:
                    tree._del(key)
                else:
                    tree._put(key, value)  # type: ignore[arg-type]
            return result

    def close(self) -> None:
        pass
