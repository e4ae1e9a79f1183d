"""Conformance suite of the db engines: every guarantee of `grange.db`, run on all of them.

Each test takes the `db` fixture (memory, lmdb, sqlite via `open_db`); persistence and crash
tests run on the engines with files. A Hypothesis state machine compares each engine with a
dict model, with `RANGE_PAGE` patched small so that paging is exercised on tiny trees. A few
tests at the end pin engine-specific limits (LMDB map full, key size, on-disk layout).
"""

from __future__ import annotations

import os
import random
import signal
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from hypothesis import HealthCheck, settings
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, rule, run_state_machine_as_test

import grange.db.lmdb_engine
import grange.db.memory
import grange.db.sqlite_engine
from grange.db import RANGE_PAGE, Db, DbError, Tree, Tx, open_db

ENGINES = ["memory", "lmdb", "sqlite"]
PERSISTENT = ["lmdb", "sqlite"]
ROOT = Path(__file__).resolve().parents[1]

Pair = tuple[bytes, bytes]
Model = dict[bytes, bytes]

# Keys whose bytewise order differs from naive expectations: empty, NULs, 0xff, prefixes.
TRICKY_KEYS = [
    b"", b"\x00", b"\x00\x00", b"\x00\x01", b"\x00\xff", b"\x01", b"\x7f", b"\x80", b"\xfe",
    b"\xff", b"\xff\x00", b"\xff\xff", b"\xff\xff\xff", b"a", b"a\x00", b"a\x00\x00", b"a\x01",
    b"ab", b"ab\xff", b"abc", b"b", b"ba",
]
# Range bounds: keys of the tree, keys between them, and a bound longer than LMDB's key limit.
PROBES = [*TRICKY_KEYS, b"\x00\x00\x00", b"\x02", b"a\x00\x01", b"aa", b"c", b"a" * 600]


@pytest.fixture(params=ENGINES)
def engine(request: pytest.FixtureRequest) -> str:
    return str(request.param)


@pytest.fixture
def db(engine: str, tmp_path: Path) -> Iterator[Db]:
    d = open_db(engine, str(tmp_path))
    yield d
    d.close()


@pytest.fixture(params=PERSISTENT)
def persistent_engine(request: pytest.FixtureRequest) -> str:
    return str(request.param)


def model_range(
    model: Model, start: bytes | None = None, end: bytes | None = None, *,
    reverse: bool = False, limit: int | None = None,
) -> list[Pair]:
    items = sorted(
        (k, v) for k, v in model.items() if (start is None or k >= start) and (end is None or k < end)
    )
    if reverse:
        items.reverse()
    return items if limit is None else items[:limit]


def fill(db: Db, tree: Tree, items: dict[bytes, bytes]) -> None:
    def fn(tx: Tx) -> None:
        for k, v in items.items():
            tx.insert(tree, k, v)

    db.transaction(fn)


class Boom(Exception):
    pass


# -- single operations --------------------------------------------------------------------


def test_get_insert_remove_len(db: Db) -> None:
    t = db.open_tree("t")
    assert t.get(b"k") is None and t.len() == 0
    t.insert(b"k", b"v1")
    assert t.get(b"k") == b"v1" and t.len() == 1
    t.insert(b"k", b"v2")  # overwrite
    assert t.get(b"k") == b"v2" and t.len() == 1
    t.insert(b"empty", b"")  # an empty value is a value, not absence
    assert t.get(b"empty") == b"" and t.len() == 2
    big = os.urandom(100_000)
    t.insert(b"big", big)
    assert t.get(b"big") == big
    t.remove(b"k")
    t.remove(b"never-there")  # removing an absent key is a no-op
    assert t.get(b"k") is None and t.len() == 2
    assert isinstance(t.get(b"big"), bytes)


def test_empty_key(db: Db) -> None:
    t = db.open_tree("t")
    t.insert(b"", b"e")
    t.insert(b"x", b"1")
    assert t.get(b"") == b"e" and t.len() == 2
    assert t.first() == (b"", b"e")
    assert t.get_lt(b"\x00") == (b"", b"e") and t.get_lt(b"") is None
    assert t.get_gt(b"") == (b"x", b"1")
    t.remove(b"")
    assert t.get(b"") is None and t.len() == 1 and t.first() == (b"x", b"1")


def test_empty_tree(db: Db) -> None:
    t = db.open_tree("t")
    assert t.first() is None and t.get_gt(b"") is None and t.get_lt(b"\xff") is None
    assert list(t.range()) == [] and list(t.range(reverse=True)) == [] and t.len() == 0


def test_bytewise_order_and_neighbours(db: Db) -> None:
    t = db.open_tree("t")
    model = {k: b"v" + k for k in TRICKY_KEYS}
    keys = list(model)
    random.Random(1).shuffle(keys)
    for k in keys:  # single inserts, in random order
        t.insert(k, model[k])
    ordered = sorted(model.items())
    assert list(t.range()) == ordered
    assert list(t.range(reverse=True)) == ordered[::-1]
    assert t.first() == ordered[0] and t.len() == len(ordered)
    for probe in PROBES:
        above = [kv for kv in ordered if kv[0] > probe]
        below = [kv for kv in ordered if kv[0] < probe]
        assert t.get_gt(probe) == (above[0] if above else None), probe
        assert t.get_lt(probe) == (below[-1] if below else None), probe
        assert t.get(probe) == model.get(probe)


def test_range_bounds_and_limits(db: Db) -> None:
    t = db.open_tree("t")
    model = {k: b"v" + k for k in TRICKY_KEYS}
    fill(db, t, model)
    bounds = [None, *PROBES]
    for start in bounds:
        for end in bounds:
            for reverse in (False, True):
                want = model_range(model, start, end, reverse=reverse)
                assert list(t.range(start, end, reverse=reverse)) == want, (start, end, reverse)
    for limit in (0, 1, 2, len(model) - 1, len(model), len(model) + 5):
        for reverse in (False, True):
            want = model_range(model, reverse=reverse, limit=limit)
            assert list(t.range(reverse=reverse, limit=limit)) == want
            want = model_range(model, b"\x00\x01", b"ab\xff", reverse=reverse, limit=limit)
            assert list(t.range(b"\x00\x01", b"ab\xff", reverse=reverse, limit=limit)) == want


N_PAGED = 2 * RANGE_PAGE + 500


@pytest.fixture
def paged(db: Db) -> tuple[Db, Tree, Model]:
    t = db.open_tree("paged")
    model = {b"k%06d" % i: b"v%d" % i for i in range(0, 2 * N_PAGED, 2)}
    model[b""] = b"empty"  # lives apart in LMDB: must merge with paging in both directions
    fill(db, t, model)
    return db, t, model


@pytest.mark.parametrize("reverse", [False, True])
def test_range_pages_through_large_trees(paged: tuple[Db, Tree, Model], reverse: bool) -> None:
    _, t, model = paged
    limits = [None, 1, RANGE_PAGE - 1, RANGE_PAGE, RANGE_PAGE + 1, 2 * RANGE_PAGE, 2 * RANGE_PAGE + 7,
              len(model), len(model) + 1]
    bounds = [(None, None), (b"", None), (b"k000101", b"k004001"), (b"k000100", None), (None, b"k003000")]
    for start, end in bounds:
        for limit in limits:
            want = model_range(model, start, end, reverse=reverse, limit=limit)
            got = list(t.range(start, end, reverse=reverse, limit=limit))
            assert got == want, (start, end, limit)


@pytest.mark.parametrize("reverse", [False, True])
def test_range_while_writing_same_tree(paged: tuple[Db, Tree, Model], reverse: bool) -> None:
    db, t, model = paged
    rng = random.Random(7)
    seen: list[bytes] = []
    removed: set[bytes] = set()
    for i, (k, v) in enumerate(t.range(reverse=reverse)):
        assert model.get(k, v) == v
        seen.append(k)
        if i % 3 == 0:
            t.insert(k + b"\x01", b"new")  # next to the cursor, on the side not yet read
            t.insert(b"k%06d" % rng.randrange(1, 2 * N_PAGED, 2), b"x")  # anywhere (odd: new keys)
        if i % 50 == 0:
            victim = b"k%06d" % (rng.randrange(0, 2 * N_PAGED, 2))
            t.remove(victim)
            removed.add(victim)
        if i % 100 == 0:
            db.transaction(lambda tx, k=k: tx.insert(t, k + b"\x02", b"tx"))
    assert seen == sorted(seen, reverse=reverse) and len(set(seen)) == len(seen)  # ordered, no repeats
    missing = set(model) - set(seen) - removed
    assert not missing  # every key present throughout was seen


def test_clear(db: Db) -> None:
    t, other = db.open_tree("t"), db.open_tree("other")
    fill(db, t, {k: b"v" for k in TRICKY_KEYS})
    other.insert(b"a", b"kept")
    t.clear()
    assert t.len() == 0 and list(t.range()) == [] and t.get(b"") is None and t.first() is None
    assert other.get(b"a") == b"kept"
    t.insert(b"again", b"1")
    assert list(t.range()) == [(b"again", b"1")]


TREE_NAMES = ["t", "", "with space", 'quo"te\'s', "tree_x", "ünïcödé ✓", "a\x00b", "%", "%25", "x" * 200, "object:table"]


def test_tree_names_and_independence(db: Db) -> None:
    trees = {name: db.open_tree(name) for name in TREE_NAMES}
    for name, tree in trees.items():
        assert tree.name == name
        tree.insert(b"k", name.encode())
    for name, tree in trees.items():
        assert tree.get(b"k") == name.encode() and tree.len() == 1
        assert db.open_tree(name).get(b"k") == name.encode()  # reopening gives the same tree
    assert db.list_trees() == sorted(TREE_NAMES)


def test_unknown_engine() -> None:
    with pytest.raises(DbError):
        open_db("nope", "/nonexistent")


def test_use_after_close(engine: str, tmp_path: Path) -> None:
    d = open_db(engine, str(tmp_path))
    t = d.open_tree("t")
    d.close()
    d.close()  # idempotent
    for call in (lambda: t.get(b"k"), lambda: t.insert(b"k", b"v"), lambda: list(t.range()),
                 lambda: d.transaction(lambda tx: None), lambda: d.open_tree("u")):
        with pytest.raises(DbError):
            call()


def test_close_while_other_threads_work(engine: str, tmp_path: Path) -> None:
    """Threads reading and writing when the db closes get DbError, nothing worse."""
    d = open_db(engine, str(tmp_path))
    t = d.open_tree("t")
    fill(d, t, {b"k%04d" % i: b"v" for i in range(2000)})
    unexpected: list[BaseException] = []
    started = threading.Barrier(5)

    def loop(op: Callable[[int], object]) -> None:
        started.wait()
        i = 0
        try:
            while True:
                op(i)
                i += 1
        except DbError:
            pass
        except BaseException as e:  # pragma: no cover - reported below
            unexpected.append(e)

    ops: list[Callable[[int], object]] = [
        lambda i: t.get(b"k%04d" % (i % 2000)),
        lambda i: sum(1 for _ in t.range()),
        lambda i: t.insert(b"n%06d" % i, b"x"),
        lambda i: d.transaction(lambda tx: tx.insert(t, b"t%06d" % i, tx.get(t, b"k0001") or b"")),
    ]
    threads = [threading.Thread(target=loop, args=(op,)) for op in ops]
    for th in threads:
        th.start()
    started.wait()
    time.sleep(0.05)
    d.close()
    for th in threads:
        th.join(5)
        assert not th.is_alive()
    assert not unexpected, unexpected


# -- transactions -------------------------------------------------------------------------


def test_transaction_atomic_across_trees(db: Db) -> None:
    a, b = db.open_tree("a"), db.open_tree("b")
    a.insert(b"gone", b"x")

    def fn(tx: Tx) -> str:
        tx.insert(a, b"k", b"1")
        tx.insert(b, b"k", b"2")
        tx.remove(a, b"gone")
        return "result"

    assert db.transaction(fn) == "result"
    assert a.get(b"k") == b"1" and b.get(b"k") == b"2" and a.get(b"gone") is None


def test_transaction_exception_rolls_back_and_propagates(db: Db) -> None:
    a, b = db.open_tree("a"), db.open_tree("b")
    fill(db, a, {b"keep": b"old", b"": b"e"})
    before_a, before_b = list(a.range()), list(b.range())
    err = Boom("inside")

    def fn(tx: Tx) -> None:
        tx.insert(a, b"keep", b"new")
        tx.insert(a, b"added", b"1")
        tx.remove(a, b"")
        tx.insert(b, b"k", b"2")
        for i in range(RANGE_PAGE + 10):
            tx.insert(b, b"bulk%05d" % i, b"x")
        raise err

    with pytest.raises(Boom) as info:
        db.transaction(fn)
    assert info.value is err  # the very exception, not a wrapper
    assert list(a.range()) == before_a and list(b.range()) == before_b
    db.transaction(lambda tx: tx.insert(a, b"after", b"ok"))  # the db is usable afterwards
    assert a.get(b"after") == b"ok"


def test_transaction_reads_its_own_writes(db: Db) -> None:
    a, b = db.open_tree("a"), db.open_tree("b")
    base = {k: b"base" for k in TRICKY_KEYS}
    fill(db, a, base)
    b.insert(b"other", b"tree")

    def fn(tx: Tx) -> None:
        overlay = dict(base)
        assert tx.get(a, b"a") == b"base" and tx.get(a, b"nope") is None
        for k, v in [(b"new", b"1"), (b"a", b"2"), (b"", b"3"), (b"\xff\xff\xff\xff", b"4")]:
            tx.insert(a, k, v)
            overlay[k] = v
        for k in [b"ab", b"\x00", b"never"]:
            tx.remove(a, k)
            overlay.pop(k, None)
        tx.insert(a, b"ab", b"back")  # removed then re-inserted
        overlay[b"ab"] = b"back"
        for k in [*PROBES, b"new"]:
            assert tx.get(a, k) == overlay.get(k), k
        for start, end in [(None, None), (b"", b"\x01"), (b"\x00", b"b"), (b"a", None), (None, b"")]:
            for reverse in (False, True):
                for limit in (None, 0, 1, 3):
                    want = model_range(overlay, start, end, reverse=reverse, limit=limit)
                    assert tx.range(a, start, end, reverse=reverse, limit=limit) == want
        # reads of another tree inside the same transaction
        assert tx.get(b, b"other") == b"tree" and tx.range(b) == [(b"other", b"tree")]
        tx.insert(b, b"x", b"y")
        assert tx.range(b, reverse=True) == [(b"x", b"y"), (b"other", b"tree")]

    db.transaction(fn)


def test_transaction_range_over_many_own_writes(db: Db) -> None:
    t = db.open_tree("t")
    fill(db, t, {b"k%05d" % i: b"old" for i in range(0, 3000, 2)})

    def fn(tx: Tx) -> None:
        for i in range(1, 3000, 2):
            tx.insert(t, b"k%05d" % i, b"new")
        for i in range(0, 3000, 6):
            tx.remove(t, b"k%05d" % i)
        got = tx.range(t)
        want = sorted({b"k%05d" % i for i in range(3000) if i % 6 != 0})
        assert [k for k, _ in got] == want
        assert [k for k, _ in tx.range(t, reverse=True, limit=1500)] == want[::-1][:1500]

    db.transaction(fn)
    assert t.len() == 2500


def test_db_calls_inside_transaction_are_refused(db: Db) -> None:
    """Tree/db methods from inside `fn` would deadlock (LMDB) or see uncommitted data (SQLite)."""
    t = db.open_tree("t")

    def fn(tx: Tx) -> None:
        for call in (lambda: t.get(b"k"), lambda: t.insert(b"k", b"v"), lambda: list(t.range()),
                     lambda: db.transaction(lambda tx2: None), lambda: db.open_tree("u"), db.close):
            with pytest.raises(DbError):
                call()
        tx.insert(t, b"k", b"from-tx")

    db.transaction(fn)
    assert t.get(b"k") == b"from-tx"  # the refused calls did not spoil the transaction


def test_tx_is_dead_after_transaction(db: Db) -> None:
    t = db.open_tree("t")
    kept: list[Tx] = []
    db.transaction(kept.append)
    with pytest.raises(DbError):
        kept[0].insert(t, b"late", b"x")
    with pytest.raises(DbError):
        kept[0].get(t, b"late")
    assert t.get(b"late") is None


def test_concurrent_transactions_are_serializable(db: Db) -> None:
    t = db.open_tree("counter")
    log = db.open_tree("log")
    threads_n, per_thread = 8, 200

    def incr(tx: Tx) -> None:
        raw = tx.get(t, b"n")
        n = 0 if raw is None else int(raw)
        tx.insert(t, b"n", b"%d" % (n + 1))
        tx.insert(log, b"%06d" % n, b"")

    errors: list[BaseException] = []

    def worker() -> None:
        try:
            for _ in range(per_thread):
                db.transaction(incr)
        except BaseException as e:  # pragma: no cover - reported below
            errors.append(e)

    threads = [threading.Thread(target=worker) for _ in range(threads_n)]
    for th in threads:
        th.start()
    for th in threads:
        th.join()
    assert not errors
    assert t.get(b"n") == b"%d" % (threads_n * per_thread)
    assert log.len() == threads_n * per_thread  # no two transactions read the same n


def test_concurrent_readers_see_consistent_pages(db: Db) -> None:
    """Writers move units between keys in transactions; a one-page range always sums to 0."""
    t = db.open_tree("t")
    fill(db, t, {b"k%d" % i: b"0" for i in range(10)})
    stop = time.monotonic() + 0.4
    errors: list[BaseException] = []

    def writer(seed: int) -> None:
        rng = random.Random(seed)
        try:
            while time.monotonic() < stop:
                src, dst = (b"k%d" % i for i in rng.sample(range(10), 2))

                def move(tx: Tx, src: bytes = src, dst: bytes = dst) -> None:
                    tx.insert(t, src, b"%d" % (int(tx.get(t, src) or b"0") - 1))
                    tx.insert(t, dst, b"%d" % (int(tx.get(t, dst) or b"0") + 1))

                db.transaction(move)
        except BaseException as e:  # pragma: no cover
            errors.append(e)

    def reader() -> None:
        try:
            reads = 0
            while time.monotonic() < stop or reads == 0:
                items = list(t.range())
                assert len(items) == 10 and sum(int(v) for _, v in items) == 0
                assert t.get(b"k0") is not None
                reads += 1
        except BaseException as e:
            errors.append(e)

    threads = [threading.Thread(target=writer, args=(i,)) for i in range(3)]
    threads += [threading.Thread(target=reader) for _ in range(3)]
    for th in threads:
        th.start()
    for th in threads:
        th.join()
    assert not errors, errors[0]


# -- persistence and crashes --------------------------------------------------------------


@pytest.mark.parametrize("fsync", [False, True])
def test_reopen_keeps_data(persistent_engine: str, tmp_path: Path, fsync: bool) -> None:
    d = open_db(persistent_engine, str(tmp_path), fsync=fsync)
    a, b = d.open_tree("a"), d.open_tree("b c")
    fill(d, a, {k: b"v" + k for k in TRICKY_KEYS})
    a.remove(b"ab")
    b.insert(b"", b"empty")
    d.open_tree("unused")
    d.close()
    d = open_db(persistent_engine, str(tmp_path), fsync=fsync)
    try:
        assert d.list_trees() == ["a", "b c", "unused"]
        want = sorted((k, b"v" + k) for k in TRICKY_KEYS if k != b"ab")
        assert list(d.open_tree("a").range()) == want
        assert d.open_tree("b c").get(b"") == b"empty" and d.open_tree("unused").len() == 0
    finally:
        d.close()


def _read_counts(stream: bytes) -> list[int]:
    return [int(line) for line in stream.split(b"\n")[:-1]]  # a last line without "\n" is cut


@pytest.mark.parametrize("engine_name", PERSISTENT)
def test_sigkill_mid_writes_reopens_consistent(engine_name: str, tmp_path: Path) -> None:
    """The writer is SIGKILLed while committing; each restart must find a consistent db."""
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(ROOT), os.environ.get("PYTHONPATH", "")])}
    acked_max = 0
    for fsync in (False, True, False):
        proc = subprocess.Popen(
            [sys.executable, str(ROOT / "tests" / "db_crash_writer.py"), engine_name, str(tmp_path),
             "1" if fsync else "0"],
            stdout=subprocess.PIPE, stderr=subprocess.PIPE, env=env,
        )
        watchdog = threading.Timer(30, proc.kill)
        watchdog.start()
        try:
            assert proc.stdout is not None and proc.stderr is not None
            acked: list[int] = []
            while len(acked) < 200:
                line = proc.stdout.readline()
                assert line.endswith(b"\n"), proc.stderr.read().decode()
                acked.append(int(line))
            time.sleep(random.uniform(0, 0.02))  # land the kill at a random point of a commit
            os.kill(proc.pid, signal.SIGKILL)
            proc.wait()
            acked += _read_counts(proc.stdout.read())  # printed before the kill: acknowledged
        finally:
            watchdog.cancel()
            proc.kill()
            proc.wait()
            for stream in (proc.stdout, proc.stderr):
                if stream is not None:
                    stream.close()
        assert proc.returncode == -signal.SIGKILL
        assert acked == list(range(acked[0], acked[0] + len(acked)))
        acked_max = max(acked_max, *acked)

        d = open_db(engine_name, str(tmp_path))
        try:
            a, b, c = (d.open_tree(n) for n in "abc")
            ra, rb = a.get(b"counter"), b.get(b"counter")
            assert ra is not None and ra == rb  # atomicity: both trees or neither
            counter = int(ra)
            assert acked_max <= counter  # every acknowledged commit survived
            assert [k for k, _ in c.range()] == [b"entry-%08d" % n for n in range(1, counter + 1)]
            assert d.open_tree("d").len() == min(counter, 32)
        finally:
            d.close()


# -- random operations against a dict model -------------------------------------------------

KEYS = st.lists(st.sampled_from([0x00, 0x01, 0x7F, 0xFF]), max_size=3).map(bytes)
BOUNDS = st.none() | KEYS
VALUES = st.binary(max_size=3)
TREES = ("a", "b")
OPS = st.tuples(st.sampled_from(["insert", "remove"]), st.sampled_from(TREES), KEYS, VALUES)


class DbMachine(RuleBasedStateMachine):
    engine = "memory"

    def __init__(self) -> None:
        super().__init__()
        self.tmp = tempfile.TemporaryDirectory()
        self.db = open_db(self.engine, self.tmp.name)
        self.trees = {n: self.db.open_tree(n) for n in TREES}
        self.model: dict[str, Model] = {n: {} for n in TREES}

    def teardown(self) -> None:
        self.db.close()
        self.tmp.cleanup()

    @rule(op=OPS)
    def single(self, op: tuple[str, str, bytes, bytes]) -> None:
        kind, name, key, value = op
        if kind == "insert":
            self.trees[name].insert(key, value)
            self.model[name][key] = value
        else:
            self.trees[name].remove(key)
            self.model[name].pop(key, None)

    @rule(name=st.sampled_from(TREES), key=KEYS)
    def point_reads(self, name: str, key: bytes) -> None:
        tree, model = self.trees[name], self.model[name]
        ordered = sorted(model.items())
        above = [kv for kv in ordered if kv[0] > key]
        below = [kv for kv in ordered if kv[0] < key]
        assert tree.get(key) == model.get(key)
        assert tree.get_gt(key) == (above[0] if above else None)
        assert tree.get_lt(key) == (below[-1] if below else None)
        assert tree.first() == (ordered[0] if ordered else None)
        assert tree.len() == len(model)

    @rule(name=st.sampled_from(TREES), start=BOUNDS, end=BOUNDS, reverse=st.booleans(),
          limit=st.none() | st.integers(0, 8))
    def range(self, name: str, start: bytes | None, end: bytes | None, reverse: bool, limit: int | None) -> None:
        got = list(self.trees[name].range(start, end, reverse=reverse, limit=limit))
        assert got == model_range(self.model[name], start, end, reverse=reverse, limit=limit)

    @rule(ops=st.lists(OPS, max_size=8), fail=st.booleans(), name=st.sampled_from(TREES),
          start=BOUNDS, end=BOUNDS, reverse=st.booleans(), limit=st.none() | st.integers(0, 8))
    def transaction(
        self, ops: list[tuple[str, str, bytes, bytes]], fail: bool, name: str,
        start: bytes | None, end: bytes | None, reverse: bool, limit: int | None,
    ) -> None:
        overlay = {n: dict(m) for n, m in self.model.items()}

        def fn(tx: Tx) -> str:
            for kind, tname, key, value in ops:
                tree = self.trees[tname]
                if kind == "insert":
                    tx.insert(tree, key, value)
                    overlay[tname][key] = value
                else:
                    tx.remove(tree, key)
                    overlay[tname].pop(key, None)
                assert tx.get(tree, key) == overlay[tname].get(key)
            want = model_range(overlay[name], start, end, reverse=reverse, limit=limit)
            assert tx.range(self.trees[name], start, end, reverse=reverse, limit=limit) == want
            if fail:
                raise Boom
            return "done"

        if fail:
            with pytest.raises(Boom):
                self.db.transaction(fn)
        else:
            assert self.db.transaction(fn) == "done"
            self.model = overlay
        for n in TREES:
            assert list(self.trees[n].range()) == sorted(self.model[n].items())

    @rule(name=st.sampled_from(TREES))
    def clear(self, name: str) -> None:
        self.trees[name].clear()
        self.model[name].clear()


def test_random_operations_match_dict_model(engine: str, monkeypatch: pytest.MonkeyPatch) -> None:
    for module in (grange.db.memory, grange.db.lmdb_engine, grange.db.sqlite_engine):
        monkeypatch.setattr(module, "RANGE_PAGE", 3)  # pages of 3 items: paging on tiny trees
    machine = type(f"DbMachine_{engine}", (DbMachine,), {"engine": engine})
    run_state_machine_as_test(
        machine,
        settings=settings(max_examples=60, stateful_step_count=30, deadline=None,
                          suppress_health_check=[HealthCheck.too_slow]),
    )


# -- engine-specific limits and layout ----------------------------------------------------


def test_on_disk_layout(tmp_path: Path) -> None:
    d = open_db("lmdb", str(tmp_path / "l"))
    d.open_tree("x")
    d.close()
    assert (tmp_path / "l" / "db.lmdb" / "data.mdb").is_file()
    d = open_db("sqlite", str(tmp_path / "s"))
    d.open_tree("x y")
    d.close()
    assert (tmp_path / "s" / "db.sqlite").is_file()
    import sqlite3

    conn = sqlite3.connect(tmp_path / "s" / "db.sqlite")
    tables = [r[0] for r in conn.execute("SELECT name FROM sqlite_master WHERE type = 'table'")]
    conn.close()
    assert tables == ["tree_" + b"x y".hex()]


def test_lmdb_map_full_is_a_clear_db_error(tmp_path: Path) -> None:
    d = open_db("lmdb", str(tmp_path), lmdb_map_size=1 << 20)
    try:
        t = d.open_tree("t")
        t.insert(b"first", b"kept")

        def fill_up(tx: Tx) -> None:
            tx.insert(t, b"marker", b"x")
            for i in range(100):
                tx.insert(t, b"big%03d" % i, bytes(64 << 10))

        with pytest.raises(DbError, match="lmdb_map_size"):
            d.transaction(fill_up)
        assert t.get(b"marker") is None and t.get(b"first") == b"kept"  # rolled back, still readable
        with pytest.raises(DbError, match="lmdb_map_size"):
            for i in range(100):
                t.insert(b"big%03d" % i, bytes(64 << 10))
        t.clear()
        t.insert(b"after", b"ok")  # usable again once space is freed
        assert t.get(b"after") == b"ok"
    finally:
        d.close()


def test_lmdb_key_size_limit(tmp_path: Path) -> None:
    d = open_db("lmdb", str(tmp_path))
    try:
        t = d.open_tree("t")
        long_key = b"k" * 512
        with pytest.raises(DbError):
            t.insert(long_key, b"v")
        with pytest.raises(DbError):
            d.transaction(lambda tx: tx.insert(t, long_key, b"v"))
        assert t.get(long_key) is None
        t.remove(long_key)  # absent, so a no-op
        t.insert(b"k" * 511, b"max")
        assert list(t.range(long_key)) == [] and list(t.range(end=long_key)) == [(b"k" * 511, b"max")]
    finally:
        d.close()


def test_lmdb_refuses_second_open_in_process(tmp_path: Path) -> None:
    d = open_db("lmdb", str(tmp_path))
    try:
        with pytest.raises(DbError):
            open_db("lmdb", str(tmp_path))
    finally:
        d.close()
