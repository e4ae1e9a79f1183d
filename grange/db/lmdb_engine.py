"""The LMDB engine (`db_engine = "lmdb"`, the default), over the `lmdb` package.

Guarantees: everything `grange.db` promises. LMDB is copy-on-write with one writer at a
time, so a commit is atomic and a SIGKILL at any point leaves the last committed state.
With `fsync=False` the environment runs with `sync=False, metasync=False`: a commit is
written to the OS page cache (writemap is off), so it survives a process crash but the last
commits may be lost on a power loss; `fsync=True` syncs data and meta page at each commit.

On-disk layout: the directory `path/db.lmdb/` holds LMDB's `data.mdb` and `lock.mdb`. The
main database maps names to named databases:

- `b"tree:" + escaped name` → one named database per tree, key → value as given. The name
  is UTF-8 (surrogates passed through) with `%` and NUL written `%25` and `%00` (LMDB names
  are C strings), so any string, including "", is a valid tree name.
- `b"empty-keys"` → the value of the empty key `b""` of each tree, keyed by the tree's
  database name: LMDB refuses zero-length keys, and the empty key sorts before every
  other, so reads merge it in front (or at the end, in reverse).

Anything else in the main database is not a tree and `list_trees` skips it.

Limits: keys are at most `max_key_size()` bytes (511 with the bundled LMDB); a longer key
raises `DbError` on insert and is simply absent on get/remove; range bounds may be longer.
Tree names are at most 506 bytes once escaped. The map (`lmdb_map_size`, 1 TiB by default)
is address space, not disk: a full map raises `DbError` telling the operator to raise it.

Threads: the package drops the GIL in LMDB calls that may block (beginning and committing a
write transaction, touching value pages). Write transactions are serialized by a Python
lock, so threads queue instead of racing for LMDB's writer mutex (which still serializes
other processes). Reads open a short read transaction (`buffers=False`: values are `bytes`)
per call, and `Tree.range` one per `RANGE_PAGE` items: a read transaction is never held
across a `yield`, since a long-lived reader stops LMDB from reusing freed pages. `close()`
waits for the writes and reads in flight (a read in another thread would otherwise touch
unmapped memory). The thread running a transaction's `fn` must use the `tx`: calling this
database's tree or db methods from it raises `DbError` (it would deadlock on the writer
lock otherwise).
"""

from __future__ import annotations

import itertools
import os
import threading
from collections.abc import Callable, Iterator
from typing import NoReturn, TypeVar

import lmdb

from grange.db import RANGE_PAGE, DbError

T = TypeVar("T")

LMDB_MAP_SIZE_DEFAULT = 1 << 40  # 1 TiB of address space; the file only grows as written
MAX_DBS = 256  # named databases (trees + the empty-key table); Garage opens a few dozen
MAX_READERS = 512  # concurrent read transactions (threads × in-flight reads)
MAX_SPARE_TXNS = 16  # read transaction handles kept for reuse

_TREE_PREFIX = b"tree:"
_EMPTY_KEYS_DB = b"empty-keys"

Pair = tuple[bytes, bytes]


def _escape_name(name: str) -> bytes:
    raw = name.encode("utf-8", "surrogatepass")
    return _TREE_PREFIX + raw.replace(b"%", b"%25").replace(b"\x00", b"%00")


def _unescape_name(stored: bytes) -> str | None:
    """The tree name of a main-database key, or None if the key is not a tree."""
    if not stored.startswith(_TREE_PREFIX):
        return None
    raw = stored[len(_TREE_PREFIX):]
    parts = raw.split(b"%")
    out = [parts[0]]
    for part in parts[1:]:
        if part[:2] == b"25":
            out.append(b"%" + part[2:])
        elif part[:2] == b"00":
            out.append(b"\x00" + part[2:])
        else:
            return None
    try:
        return b"".join(out).decode("utf-8", "surrogatepass")
    except UnicodeDecodeError:
        return None


def _error(e: lmdb.Error, what: str) -> NoReturn:
    if isinstance(e, lmdb.MapFullError):
        raise DbError(
            f"LMDB map full during {what}: the metadata database reached lmdb_map_size; "
            "raise `lmdb_map_size` in the configuration and restart the node"
        ) from e
    if isinstance(e, lmdb.BadValsizeError):
        raise DbError(f"LMDB refused a key or tree name during {what} (too long or empty): {e}") from e
    raise DbError(f"LMDB error during {what}: {e}") from e


def _abort(txn: lmdb.Transaction) -> None:
    try:
        txn.abort()
    except lmdb.Error:
        pass  # already ended by a failed commit


def _check_limit(limit: int | None) -> int | None:
    return None if limit is None else max(limit, 0)


class LmdbTree:
    def __init__(self, db: LmdbDb, name: str, dbname: bytes, dbi: lmdb._Database) -> None:
        self.name = name
        self._db = db
        self._dbname = dbname  # key in the main db and in the empty-key table
        self._dbi = dbi

    def __repr__(self) -> str:
        return f"LmdbTree({self.name!r})"

    # -- raw access inside a transaction (read or write) --
    def _get(self, txn: lmdb.Transaction, key: bytes) -> bytes | None:
        if not key:
            return txn.get(self._dbname, db=self._db._empty)
        return txn.get(key, db=self._dbi)

    def _put(self, txn: lmdb.Transaction, key: bytes, value: bytes) -> None:
        if not key:
            txn.put(self._dbname, value, db=self._db._empty)
        else:
            txn.put(key, value, db=self._dbi)

    def _del(self, txn: lmdb.Transaction, key: bytes) -> None:
        if not key:
            txn.delete(self._dbname, db=self._db._empty)
        elif len(key) <= self._db._max_key:  # a longer key cannot be stored, so is absent
            txn.delete(key, db=self._dbi)

    def _scan(
        self, txn: lmdb.Transaction, start: bytes | None, end: bytes | None, reverse: bool, limit: int | None,
    ) -> list[Pair]:
        """Items with start <= key < end, in order, at most `limit` of them."""
        if limit == 0:
            return []
        # Does [start, end) contain the empty key, which lives in the side table?
        empty = None
        if not start and (end is None or end != b""):
            empty = txn.get(self._dbname, db=self._db._empty)
        out: list[Pair] = []
        if empty is not None and not reverse:
            out.append((b"", empty))
        cur = txn.cursor(db=self._dbi)
        want = None if limit is None else limit - len(out)
        if not reverse:
            ok = cur.set_range(start) if start else cur.first()
            if ok:
                items = cur.iternext()
                if end is not None:
                    items = itertools.takewhile(lambda kv: kv[0] < end, items)
                out.extend(itertools.islice(items, want))
        else:
            if end is None:
                ok = cur.last()
            elif end == b"":
                ok = False
            else:
                ok = cur.prev() if cur.set_range(end) else cur.last()
            if ok:
                items = cur.iterprev()
                if start:
                    items = itertools.takewhile(lambda kv: kv[0] >= start, items)
                out.extend(itertools.islice(items, want))
            if empty is not None and (limit is None or len(out) < limit):
                out.append((b"", empty))
        cur.close()
        return out

    # -- Tree interface --
    def get(self, key: bytes) -> bytes | None:
        with self._db._read("get") as txn:
            return self._get(txn, key)

    def insert(self, key: bytes, value: bytes) -> None:
        self._db._write(lambda txn: self._put(txn, key, value), "insert")

    def remove(self, key: bytes) -> None:
        self._db._write(lambda txn: self._del(txn, key), "remove")

    def len(self) -> int:
        with self._db._read("len") as txn:
            n: int = txn.stat(self._dbi)["entries"]
            return n + (txn.get(self._dbname, db=self._db._empty) is not None)

    def first(self) -> Pair | None:
        with self._db._read("first") as txn:
            page = self._scan(txn, None, None, False, 1)
            return page[0] if page else None

    def get_gt(self, key: bytes) -> Pair | None:
        with self._db._read("get_gt") as txn:
            cur = txn.cursor(db=self._dbi)
            if not cur.set_range(key):  # LMDB holds no empty key: set_range(b"") is first()
                return None
            if cur.key() == key and not cur.next():
                return None
            return cur.item()

    def get_lt(self, key: bytes) -> Pair | None:
        if not key:
            self._db._check("get_lt")
            return None
        with self._db._read("get_lt") as txn:
            cur = txn.cursor(db=self._dbi)
            ok = cur.prev() if cur.set_range(key) else cur.last()
            if ok:
                return cur.item()
            empty = txn.get(self._dbname, db=self._db._empty)
            return None if empty is None else (b"", empty)

    def range(
        self, start: bytes | None = None, end: bytes | None = None, *,
        reverse: bool = False, limit: int | None = None,
    ) -> Iterator[Pair]:
        remaining = _check_limit(limit)
        while remaining is None or remaining > 0:
            page_size = RANGE_PAGE if remaining is None else min(RANGE_PAGE, remaining)
            with self._db._read("range") as txn:
                page = self._scan(txn, start, end, reverse, page_size)
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
        def clear(txn: lmdb.Transaction) -> None:
            txn.drop(self._dbi, delete=False)
            txn.delete(self._dbname, db=self._db._empty)

        self._db._write(clear, "clear")


class LmdbTx:
    def __init__(self, db: LmdbDb, txn: lmdb.Transaction) -> None:
        self._db = db
        self._txn = txn
        self._done = False

    def _tree(self, tree: LmdbTree) -> LmdbTree:
        if self._done:
            raise DbError("transaction used after it ended")
        if tree._db is not self._db:
            raise DbError(f"tree {tree.name!r} belongs to another database")
        return tree

    def get(self, tree: LmdbTree, key: bytes) -> bytes | None:  # type: ignore[override]
        t = self._tree(tree)
        try:
            return t._get(self._txn, key)
        except lmdb.Error as e:
            _error(e, "tx.get")

    def insert(self, tree: LmdbTree, key: bytes, value: bytes) -> None:  # type: ignore[override]
        t = self._tree(tree)
        try:
            t._put(self._txn, key, value)
        except lmdb.Error as e:
            _error(e, "tx.insert")

    def remove(self, tree: LmdbTree, key: bytes) -> None:  # type: ignore[override]
        t = self._tree(tree)
        try:
            t._del(self._txn, key)
        except lmdb.Error as e:
            _error(e, "tx.remove")

    def range(
        self, tree: LmdbTree, start: bytes | None = None, end: bytes | None = None, *,  # type: ignore[override]
        reverse: bool = False, limit: int | None = None,
    ) -> list[Pair]:
        t = self._tree(tree)
        try:
            return t._scan(self._txn, start, end, reverse, _check_limit(limit))
        except lmdb.Error as e:
            _error(e, "tx.range")


class _ReadTxn:
    """`with db._read(what) as txn`: a short read transaction, lmdb errors → DbError."""

    __slots__ = ("_db", "_what", "_txn")

    def __init__(self, db: LmdbDb, what: str) -> None:
        self._db = db
        self._what = what

    def __enter__(self) -> lmdb.Transaction:
        db = self._db
        db._check(self._what)
        with db._reads_cond:
            if db._closed:
                raise DbError(f"{self._what} on a closed database")
            db._reads += 1
        try:
            self._txn = db._env.begin(buffers=False)
        except lmdb.Error as e:
            db._read_done()
            _error(e, self._what)
        return self._txn

    def __exit__(self, exc_type: object, exc: object, tb: object) -> None:
        try:
            self._txn.abort()
        finally:
            self._db._read_done()
        if isinstance(exc, lmdb.Error):
            _error(exc, self._what)


class LmdbDb:
    engine = "lmdb"

    def __init__(self, path: str, *, fsync: bool = False, map_size: int | None = None) -> None:
        self.path = os.path.join(path, "db.lmdb")
        self._fsync = fsync
        os.makedirs(self.path, exist_ok=True)
        try:
            self._env = lmdb.open(
                self.path,
                map_size=LMDB_MAP_SIZE_DEFAULT if map_size is None else map_size,
                subdir=True,
                max_dbs=MAX_DBS,
                max_readers=MAX_READERS,
                max_spare_txns=MAX_SPARE_TXNS,
                sync=fsync,
                metasync=fsync,
                writemap=False,
                readahead=False,
                lock=True,
            )
        except lmdb.Error as e:
            raise DbError(f"cannot open LMDB database at {self.path}: {e}") from e
        self._max_key: int = self._env.max_key_size()
        self._wlock = threading.Lock()  # one write transaction at a time in this process
        self._local = threading.local()  # .in_tx: this thread is running a transaction's fn
        self._closed = False
        # Reads in flight: close() waits for them, since the package releases the GIL inside
        # LMDB calls and closing the environment unmaps the memory they are reading.
        self._reads = 0
        self._reads_cond = threading.Condition(threading.Lock())
        self._trees: dict[str, LmdbTree] = {}
        try:
            self._env.reader_check()  # free reader slots left by killed processes
            self._empty = self._env.open_db(_EMPTY_KEYS_DB, create=True)
        except lmdb.Error as e:
            self._env.close()
            _error(e, "open")

    def __repr__(self) -> str:
        return f"LmdbDb({self.path!r})"

    def _check(self, what: str) -> None:
        if self._closed:
            raise DbError(f"{what} on a closed database")
        if getattr(self._local, "in_tx", False):
            raise DbError(f"{what} called inside a transaction on the same database: use the tx")

    def _read(self, what: str) -> _ReadTxn:
        return _ReadTxn(self, what)

    def _read_done(self) -> None:
        with self._reads_cond:
            self._reads -= 1
            if self._closed and not self._reads:
                self._reads_cond.notify_all()

    def _write(self, fn: Callable[[lmdb.Transaction], None], what: str) -> None:
        self._check(what)
        with self._wlock:
            if self._closed:
                raise DbError(f"{what} on a closed database")
            txn = None
            try:
                txn = self._env.begin(write=True, buffers=False)
                fn(txn)
                txn.commit()
            except lmdb.Error as e:
                if txn is not None:
                    _abort(txn)
                _error(e, what)
            except BaseException:
                if txn is not None:
                    _abort(txn)
                raise

    def open_tree(self, name: str) -> LmdbTree:
        self._check("open_tree")
        tree = self._trees.get(name)
        if tree is not None:
            return tree
        dbname = _escape_name(name)
        with self._wlock:  # mdb_dbi_open must not race another transaction of this process
            if self._closed:
                raise DbError("open_tree on a closed database")
            tree = self._trees.get(name)
            if tree is None:
                try:
                    dbi = self._env.open_db(dbname, create=True)
                except lmdb.Error as e:
                    _error(e, f"open_tree({name!r})")
                tree = self._trees[name] = LmdbTree(self, name, dbname, dbi)
            return tree

    def list_trees(self) -> list[str]:
        with self._read("list_trees") as txn:
            names = (_unescape_name(k) for k in txn.cursor().iternext(values=False))
            return sorted(n for n in names if n is not None)

    def transaction(self, fn: Callable[[LmdbTx], T]) -> T:
        self._check("transaction")
        with self._wlock:
            if self._closed:
                raise DbError("transaction on a closed database")
            try:
                txn = self._env.begin(write=True, buffers=False)
            except lmdb.Error as e:
                _error(e, "transaction")
            tx = LmdbTx(self, txn)
            self._local.in_tx = True
            try:
                result = fn(tx)
            except BaseException:
                tx._done = True
                txn.abort()
                raise
            finally:
                self._local.in_tx = False
            tx._done = True
            try:
                txn.commit()
            except lmdb.Error as e:
                _abort(txn)
                _error(e, "transaction commit")
            return result

    def close(self) -> None:
        if getattr(self._local, "in_tx", False):
            raise DbError("close called inside a transaction on the same database")
        with self._wlock:
            with self._reads_cond:
                if self._closed:
                    return
                self._closed = True
                while self._reads:
                    self._reads_cond.wait()
            try:
                if not self._fsync:
                    self._env.sync(True)  # a clean shutdown leaves nothing to lose
            finally:
                self._env.close()
