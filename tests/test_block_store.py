"""Conformance suite of the local block stores, then what only files on disk can show.

The first part takes the `h` fixture (a Harness over `BlockStore` on temp dirs, or over
`MemoryBlockStore`) and checks every guarantee of `LocalBlockStore`: round trips, idempotent
writes, wrong hashes refused, corruption quarantined and repaired, delete, exists, iteration,
concurrency. The second part is BlockStore only: compression and file names, cancellation
(a write finishes in its thread), disk full, temp file cleanup, and several data dirs
(distribution by capacity, read-only dirs, dir changes with secondary lookup and
rebalance). The last part tests the pure `DataLayout` core, with a Hypothesis property:
after any sequence of `data_dir` changes, every dir that was primary for a partition and is
still listed is still searched.
"""

from __future__ import annotations

import asyncio
import errno
import os
import random
import threading
from collections import Counter
from collections.abc import AsyncIterator, Callable
from pathlib import Path

import msgspec
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import grange.block.store as store_mod
from grange.block.data_layout import (
    DATA_LAYOUT_FILE,
    DRIVE_NPART,
    DataLayout,
    DataLayoutError,
    UnsupportedDataLayoutVersion,
    drive_partition,
    load_data_layout,
)
from grange.block.errors import (
    BlockCorrupted,
    BlockHashMismatch,
    BlockNotFound,
    DataDirFull,
    InvalidDataDirConfig,
    NoWritableDataDir,
)
from grange.block.memory_store import MemoryBlockStore
from grange.block.store import BlockStore, LocalBlockStore, block_hash
from grange.util.config import Config, DataDir

MIB = 1024 * 1024
IMPLS = ["disk", "memory"]


def compressible(n: int, seed: int = 0) -> bytes:
    words = [b"grange ", b"garage ", b"block ", b"store ", f"{seed} ".encode()]
    rng = random.Random(seed)
    out = bytearray()
    while len(out) < n:
        out += rng.choice(words)
    return bytes(out[:n])


def rand(n: int, seed: int = 0) -> bytes:
    return random.Random(seed).randbytes(n)


class Harness:
    """A store under test plus the two things the suite needs to do behind its back."""

    def __init__(self, impl: str, store: LocalBlockStore, tmp: Path) -> None:
        self.impl = impl
        self.store = store
        self.tmp = tmp

    def corrupt(self, h: bytes) -> None:
        """Flip a byte of the stored copy, as bit rot would."""
        if isinstance(self.store, MemoryBlockStore):
            self.store.inject_corruption(h)
            return
        path = self.store.path_of(h)
        assert path is not None
        raw = bytearray(Path(path).read_bytes() or b"\0")
        raw[len(raw) // 2] ^= 0x40
        Path(path).write_bytes(bytes(raw))


def disk_store(tmp: Path, dirs: str | list[DataDir] | None = None, **kwargs: object) -> BlockStore:
    return BlockStore(dirs if dirs is not None else str(tmp / "data"), str(tmp / "meta"), **kwargs)  # type: ignore[arg-type]


@pytest.fixture(params=IMPLS)
async def h(request: pytest.FixtureRequest, tmp_path: Path) -> AsyncIterator[Harness]:
    store: LocalBlockStore = disk_store(tmp_path) if request.param == "disk" else MemoryBlockStore()
    yield Harness(str(request.param), store, tmp_path)
    await store.close()


# ================================================================ conformance (both stores)


@pytest.mark.parametrize("size", [0, 1, 3071, MIB])
@pytest.mark.parametrize("make", [compressible, rand], ids=["compressible", "random"])
async def test_write_then_read_returns_the_same_bytes(
    h: Harness, size: int, make: Callable[..., bytes]
) -> None:
    data = make(size)
    key = block_hash(data)
    await h.store.write(key, data)
    assert await h.store.exists(key)
    assert await h.store.read(key) == data
    stats = h.store.statistics()
    assert stats["blocks_written"] == 1 and stats["bytes_written"] == size
    assert stats["blocks_read"] == 1 and stats["bytes_read"] == size


async def test_writing_twice_stores_one_copy(h: Harness) -> None:
    data = compressible(5000)
    key = block_hash(data)
    await h.store.write(key, data)
    await h.store.write(key, data)
    assert [k for k, _ in h.store.iter_blocks()] == [key]
    assert h.store.statistics()["writes_deduplicated"] == 1
    assert await h.store.read(key) == data


async def test_write_with_wrong_hash_is_refused_and_stores_nothing(h: Harness) -> None:
    data = rand(1000)
    wrong = block_hash(b"something else")
    with pytest.raises(BlockHashMismatch) as exc:
        await h.store.write(wrong, data)
    assert isinstance(exc.value, BlockCorrupted) and isinstance(exc.value, ValueError)
    assert not await h.store.exists(wrong)
    assert not await h.store.exists(block_hash(data))
    assert list(h.store.iter_blocks()) == []
    if h.impl == "disk":
        assert not [f for _, _, fs in os.walk(h.tmp / "data") for f in fs]


@pytest.mark.parametrize("bad", [b"", b"\0" * 31, b"\0" * 33, "00" * 32])
async def test_malformed_hash_is_a_value_error(h: Harness, bad: object) -> None:
    with pytest.raises(ValueError):
        await h.store.read(bad)  # type: ignore[arg-type]
    with pytest.raises(ValueError):
        await h.store.write(bad, b"")  # type: ignore[arg-type]


async def test_reading_a_missing_block_raises_block_not_found(h: Harness) -> None:
    key = block_hash(b"never written")
    with pytest.raises(BlockNotFound):
        await h.store.read(key)
    assert not await h.store.exists(key)
    assert await h.store.size_on_disk(key) is None
    assert h.store.path_of(key) is None
    with pytest.raises(BlockNotFound):
        await h.store.verify(key)


@pytest.mark.parametrize("make", [compressible, rand], ids=["compressible", "random"])
async def test_corrupted_block_is_quarantined_then_repaired_by_a_write(
    h: Harness, make: Callable[..., bytes]
) -> None:
    data = make(20_000)
    key = block_hash(data)
    await h.store.write(key, data)
    path = h.store.path_of(key)
    assert path is not None
    h.corrupt(key)
    with pytest.raises(BlockCorrupted) as exc:
        await h.store.read(key)
    assert exc.value.hash == key
    assert exc.value.path == path + ".corrupted"
    if h.impl == "disk":
        assert os.path.exists(path + ".corrupted") and not os.path.exists(path)
    assert not await h.store.exists(key)
    assert h.store.statistics()["corruptions_detected"] == 1
    await h.store.write(key, data)
    assert await h.store.read(key) == data


async def test_write_repairs_a_corruption_nobody_had_detected(h: Harness) -> None:
    data = rand(10_000, seed=3)
    key = block_hash(data)
    await h.store.write(key, data)
    h.corrupt(key)
    await h.store.write(key, data)
    assert await h.store.read(key) == data
    assert h.store.statistics()["corruptions_detected"] == 1


async def test_verify_reports_and_quarantines_corruption(h: Harness) -> None:
    good, bad = rand(3000, 1), rand(3000, 2)
    await h.store.write(block_hash(good), good)
    await h.store.write(block_hash(bad), bad)
    h.corrupt(block_hash(bad))
    assert await h.store.verify(block_hash(good))
    assert not await h.store.verify(block_hash(bad))
    assert not await h.store.exists(block_hash(bad))
    assert h.store.statistics()["corruptions_detected"] == 1


async def test_delete_removes_the_block(h: Harness) -> None:
    data = compressible(100_000)
    key = block_hash(data)
    await h.store.write(key, data)
    assert await h.store.delete(key)
    assert not await h.store.exists(key)
    assert not await h.store.delete(key)
    with pytest.raises(BlockNotFound):
        await h.store.read(key)
    assert h.store.statistics()["blocks_deleted"] == 1


async def test_exists_and_size_on_disk(h: Harness) -> None:
    data = rand(4096)
    key = block_hash(data)
    assert not await h.store.exists(key)
    await h.store.write(key, data)
    assert await h.store.exists(key)
    assert await h.store.size_on_disk(key) == 4096  # random data is stored plain
    assert h.store.path_of(key) is not None


async def test_iter_blocks_lists_every_block_once(h: Harness) -> None:
    blocks = {block_hash(d): d for d in (rand(100 + i, i) for i in range(20))}
    for key, data in blocks.items():
        await h.store.write(key, data)
    listed = list(h.store.iter_blocks())
    assert sorted(k for k, _ in listed) == sorted(blocks)
    for key, path in listed:
        assert path == h.store.path_of(key)


async def test_fifty_concurrent_writes_of_distinct_blocks(h: Harness) -> None:
    blocks = [rand(64 * 1024, i) if i % 2 else compressible(64 * 1024, i) for i in range(50)]
    async with asyncio.TaskGroup() as tg:
        for data in blocks:
            tg.create_task(h.store.write(block_hash(data), data))
    reads = await asyncio.gather(*(h.store.read(block_hash(d)) for d in blocks))
    assert reads == blocks
    assert h.store.statistics()["blocks_written"] == 50


async def test_concurrent_writes_of_the_same_block_store_it_once(h: Harness) -> None:
    data = rand(200_000, 9)
    key = block_hash(data)
    await asyncio.gather(*(h.store.write(key, data) for _ in range(10)))
    stats = h.store.statistics()
    assert stats["blocks_written"] == 1 and stats["writes_deduplicated"] == 9
    assert len(list(h.store.iter_blocks())) == 1


async def test_closed_store_refuses_operations(h: Harness) -> None:
    await h.store.close()
    with pytest.raises(RuntimeError):
        await h.store.write(block_hash(b"x"), b"x")


# ================================================================ BlockStore: files


def files_under(root: Path) -> list[str]:
    return sorted(os.path.relpath(os.path.join(d, f), root) for d, _, fs in os.walk(root) for f in fs)


async def test_file_is_named_after_the_hash_under_two_levels(tmp_path: Path) -> None:
    async with disk_store(tmp_path, compression_level=None) as store:
        data = b"hello grange"
        key = block_hash(data)
        await store.write(key, data)
        hx = key.hex()
        assert files_under(tmp_path / "data") == [f"{hx[:2]}/{hx[2:4]}/{hx}"]
        assert (tmp_path / "meta" / DATA_LAYOUT_FILE).exists()


async def test_compressed_only_when_it_saves_space(tmp_path: Path) -> None:
    small, text, noise = b"ab", compressible(MIB), rand(MIB)
    async with disk_store(tmp_path, compression_level=3) as store:
        for data in (small, text, noise):
            await store.write(block_hash(data), data)
        text_path = store.path_of(block_hash(text))
        assert text_path is not None and text_path.endswith(".zst")
        assert os.path.getsize(text_path) < len(text) * 0.9
        for data in (small, noise):
            path = store.path_of(block_hash(data))
            assert path is not None and not path.endswith(".zst")
            assert os.path.getsize(path) == len(data)
        assert store.statistics()["disk_bytes_written"] < 2 * MIB + 2


async def test_compression_off_stores_plain_and_still_reads_old_zst(tmp_path: Path) -> None:
    text = compressible(300_000)
    async with disk_store(tmp_path, compression_level=1) as store:
        await store.write(block_hash(text), text)
        assert (store.path_of(block_hash(text)) or "").endswith(".zst")
    other = compressible(300_000, seed=5)
    async with disk_store(tmp_path, compression_level=None) as store:
        assert await store.read(block_hash(text)) == text
        await store.write(block_hash(other), other)
        assert not (store.path_of(block_hash(other)) or ".zst").endswith(".zst")
        await store.write(block_hash(text), text)  # a good .zst copy exists: nothing to do
        assert store.statistics()["writes_deduplicated"] == 1


async def test_truncated_or_garbage_zst_file_is_corrupted(tmp_path: Path) -> None:
    text = compressible(100_000)
    key = block_hash(text)
    async with disk_store(tmp_path) as store:
        await store.write(key, text)
        path = store.path_of(key)
        assert path is not None and path.endswith(".zst")
        raw = Path(path).read_bytes()
        for content in (raw[: len(raw) // 2], b"", b"not zstd at all"):
            Path(path).write_bytes(content)
            with pytest.raises(BlockCorrupted):
                await store.read(key)
            assert os.path.exists(path + ".corrupted") and not os.path.exists(path)
            await store.write(key, text)
            assert await store.read(key) == text


async def test_iter_blocks_skips_temp_and_quarantined_files(tmp_path: Path) -> None:
    async with disk_store(tmp_path) as store:
        data = rand(1000)
        key = block_hash(data)
        await store.write(key, data)
        path = store.path_of(key)
        assert path is not None
        Path(path + ".tmp.0badf00d").write_bytes(b"partial")
        Path(path + ".corrupted").write_bytes(b"old")
        Path(path[:-4] + "zzzz").write_bytes(b"not a block name")
        assert list(store.iter_blocks()) == [(key, path)]


async def test_cleanup_temp_removes_only_old_temp_files(tmp_path: Path) -> None:
    now = 1_000_000.0
    async with disk_store(tmp_path, clock=lambda: now) as store:
        data = rand(1000)
        key = block_hash(data)
        await store.write(key, data)
        path = store.path_of(key)
        assert path is not None
        old, fresh = Path(path + ".tmp.00000001"), Path(path + ".tmp.00000002")
        old.write_bytes(b"x")
        fresh.write_bytes(b"y")
        os.utime(old, (now - 7200, now - 7200))
        os.utime(fresh, (now - 60, now - 60))
        assert await store.cleanup_temp() == 1
        assert not old.exists() and fresh.exists() and os.path.exists(path)
        assert store.statistics()["temp_files_removed"] == 1


async def test_write_with_data_fsync(tmp_path: Path) -> None:
    async with disk_store(tmp_path, data_fsync=True) as store:
        blocks = [rand(10_000, i) for i in range(5)]
        for data in blocks:
            await store.write(block_hash(data), data)
        for data in blocks:
            assert await store.read(block_hash(data)) == data


async def test_disk_full_raises_data_dir_full_and_leaves_no_file(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    def full(fd: int, data: bytes) -> None:
        os.write(fd, bytes(data)[:100])
        raise OSError(errno.ENOSPC, "No space left on device")

    async with disk_store(tmp_path) as store:
        monkeypatch.setattr(store_mod, "_write_all", full)
        data = rand(5000)
        with pytest.raises(DataDirFull) as exc:
            await store.write(block_hash(data), data)
        assert exc.value.path == str(tmp_path / "data")
        assert files_under(tmp_path / "data") == []
        monkeypatch.undo()
        await store.write(block_hash(data), data)
        assert await store.read(block_hash(data)) == data


async def test_cancelled_writes_leave_nothing_or_a_complete_block(tmp_path: Path) -> None:
    async with disk_store(tmp_path, io_threads=2) as store:
        blocks = [compressible(256 * 1024, i) if i % 2 else rand(256 * 1024, i) for i in range(40)]
        for i, data in enumerate(blocks):
            task = asyncio.create_task(store.write(block_hash(data), data))
            for _ in range(i % 4):  # cancel before the slot, before the thread, during it...
                await asyncio.sleep(0)
            task.cancel()
            with pytest.raises(asyncio.CancelledError):
                await task
        await store.wait_idle()
        complete = 0
        for data in blocks:
            if store.path_of(block_hash(data)) is not None:
                assert await store.read(block_hash(data)) == data
                complete += 1
        assert not [f for f in files_under(tmp_path / "data") if ".tmp." in f]
        assert store.statistics()["blocks_written"] == complete
        assert store.statistics()["io_in_flight"] == 0


async def test_write_cancelled_inside_its_thread_runs_to_completion(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    started, release = threading.Event(), threading.Event()
    real_write_all = store_mod._write_all

    def slow(fd: int, data: bytes) -> None:
        started.set()
        assert release.wait(10)
        real_write_all(fd, data)

    monkeypatch.setattr(store_mod, "_write_all", slow)
    store = disk_store(tmp_path)
    data = rand(MIB)
    key = block_hash(data)
    task = asyncio.create_task(store.write(key, data))
    assert await asyncio.to_thread(started.wait, 10)
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task  # the caller is released at once...
    assert store.path_of(key) is None
    release.set()
    await store.close()  # ...and the owner of the store waits for the thread
    async with disk_store(tmp_path) as reopened:
        assert await reopened.read(key) == data


async def test_from_config_uses_the_config_values(tmp_path: Path) -> None:
    config = Config(
        metadata_dir=str(tmp_path / "meta"),
        data_dir=(DataDir(path=str(tmp_path / "data")),),
        replication_factor=1,
        rpc_bind_addr="127.0.0.1:3901",
        compression_level=None,
        data_fsync=True,
        block_size=4 * MIB,
    )
    async with BlockStore.from_config(config, io_threads=2) as store:
        assert store.compression_level is None and store.data_fsync
        assert store.decoded_size_max >= 16 * MIB
        await store.write(block_hash(b"x"), b"x")
        assert await store.read(block_hash(b"x")) == b"x"


# ================================================================ BlockStore: several dirs


def dirs3(tmp: Path) -> list[DataDir]:
    return [
        DataDir(path=str(tmp / "d0"), capacity=1000),
        DataDir(path=str(tmp / "d1"), capacity=2000),
        DataDir(path=str(tmp / "d2"), capacity=1000),
    ]


def root_of(path: str) -> str:
    return os.path.dirname(os.path.dirname(os.path.dirname(path)))


async def test_primaries_are_proportional_to_capacity(tmp_path: Path) -> None:
    async with disk_store(tmp_path, dirs3(tmp_path)) as store:
        assert store.layout.npart_primary() == [256, 512, 256]
        rng = random.Random(42)
        counts = Counter(store.layout.primary_dir(rng.randbytes(32)) for _ in range(2000))
        for d, share in zip(dirs3(tmp_path), (0.25, 0.5, 0.25), strict=True):
            assert abs(counts[d.path] - 2000 * share) <= 0.15 * 2000 * share
        # Every block lands in its primary dir.
        blocks = [rand(500, i) for i in range(60)]
        for data in blocks:
            await store.write(block_hash(data), data)
        for data in blocks:
            key = block_hash(data)
            assert root_of(store.path_of(key) or "") == store.layout.primary_dir(key)
        assert {root_of(p) for _, p in store.iter_blocks()} == {d.path for d in dirs3(tmp_path)}


async def test_read_only_dir_is_read_from_but_never_written_to(tmp_path: Path) -> None:
    old_dir, new_dir = str(tmp_path / "old"), str(tmp_path / "new")
    old_blocks = [rand(2000, i) for i in range(40)]
    async with disk_store(tmp_path, old_dir) as store:
        for data in old_blocks:
            await store.write(block_hash(data), data)
    before = files_under(Path(old_dir))
    config = [DataDir(path=old_dir, read_only=True), DataDir(path=new_dir, capacity=10**12)]
    async with disk_store(tmp_path, config) as store:
        assert store.layout.npart_primary() == [0, DRIVE_NPART]
        for data in old_blocks:
            assert await store.read(block_hash(data)) == data
        new_blocks = [rand(2000, 1000 + i) for i in range(40)]
        for data in new_blocks + old_blocks:  # rewriting old blocks: found, nothing written
            await store.write(block_hash(data), data)
        assert files_under(Path(old_dir)) == before
        for data in new_blocks:
            assert root_of(store.path_of(block_hash(data)) or "") == new_dir
        result = await store.rebalance_all()  # drains the read-only dir
        assert result == {"moved": 40, "errors": 0}
        assert files_under(Path(old_dir)) == []
        assert not store.layout.has_secondaries()
        for data in old_blocks + new_blocks:
            assert await store.read(block_hash(data)) == data


async def test_adding_a_dir_keeps_blocks_readable_and_rebalance_moves_them(tmp_path: Path) -> None:
    a, b = str(tmp_path / "a"), str(tmp_path / "b")
    blocks = [compressible(3000, i) if i % 3 == 0 else rand(3000, i) for i in range(300)]
    async with disk_store(tmp_path, [DataDir(path=a, capacity=100)]) as store:
        for data in blocks:
            await store.write(block_hash(data), data)
    async with disk_store(tmp_path, [DataDir(path=a, capacity=100), DataDir(path=b, capacity=100)]) as store:
        assert store.layout.npart_primary() == [512, 512]
        misplaced = [d for d in blocks if store.layout.primary_dir(block_hash(d)) == b]
        assert 100 < len(misplaced) < 200
        for data in blocks:  # secondary lookup
            assert await store.read(block_hash(data)) == data
        assert await store.rebalance_one(block_hash(misplaced[0]))
        assert not await store.rebalance_one(block_hash(misplaced[0]))
        result = await store.rebalance_all()
        assert result == {"moved": len(misplaced) - 1, "errors": 0}
        assert not store.layout.has_secondaries()
        for data in blocks:
            key = block_hash(data)
            assert root_of(store.path_of(key) or "") == store.layout.primary_dir(key)
        assert store.statistics()["blocks_rebalanced"] == len(misplaced)
    async with disk_store(tmp_path, [DataDir(path=a, capacity=100), DataDir(path=b, capacity=100)]) as store:
        assert sorted(k for k, _ in store.iter_blocks()) == sorted(block_hash(d) for d in blocks)
        for data in blocks:
            assert await store.read(block_hash(data)) == data


async def test_changing_capacities_and_retiring_a_dir_loses_nothing(tmp_path: Path) -> None:
    a, b, c = (str(tmp_path / n) for n in "abc")
    blocks = [rand(1500, i) for i in range(200)]
    keys = [block_hash(d) for d in blocks]

    async def all_readable(store: BlockStore) -> None:
        for key, data in zip(keys, blocks, strict=True):
            assert await store.read(key) == data

    async with disk_store(tmp_path, [DataDir(path=a, capacity=1), DataDir(path=b, capacity=1)]) as store:
        for key, data in zip(keys, blocks, strict=True):
            await store.write(key, data)
    steps = [
        [DataDir(path=a, capacity=1), DataDir(path=b, capacity=3)],
        [DataDir(path=a, capacity=1), DataDir(path=b, capacity=3), DataDir(path=c, capacity=4)],
        [DataDir(path=a, read_only=True), DataDir(path=b, capacity=3), DataDir(path=c, capacity=4)],
    ]
    for step in steps:  # change, check secondary lookup, then rebalance
        async with disk_store(tmp_path, step) as store:
            await all_readable(store)
            assert (await store.rebalance_all())["errors"] == 0
            await all_readable(store)
    assert files_under(Path(a)) == []  # drained: it can now leave the config
    async with disk_store(tmp_path, steps[-1][1:]) as store:
        await all_readable(store)
        assert len(list(store.iter_blocks())) == len(blocks)


async def test_unrebalanced_dir_change_twice_keeps_every_location(tmp_path: Path) -> None:
    a, b, c = (str(tmp_path / n) for n in "abc")
    blocks = [rand(800, i) for i in range(150)]
    async with disk_store(tmp_path, a) as store:
        for data in blocks:
            await store.write(block_hash(data), data)
    for config in (
        [DataDir(path=a, capacity=1), DataDir(path=b, capacity=1)],
        [DataDir(path=a, capacity=1), DataDir(path=b, capacity=1), DataDir(path=c, capacity=2)],
        [DataDir(path=b, capacity=1), DataDir(path=c, capacity=2), DataDir(path=a, capacity=1)],
    ):
        async with disk_store(tmp_path, config) as store:
            for data in blocks:
                assert await store.read(block_hash(data)) == data


async def test_reads_during_rebalance_never_miss_a_block(tmp_path: Path) -> None:
    a, b = str(tmp_path / "a"), str(tmp_path / "b")
    blocks = [rand(2000, i) for i in range(200)]
    async with disk_store(tmp_path, a) as store:
        for data in blocks:
            await store.write(block_hash(data), data)
    async with disk_store(tmp_path, [DataDir(path=a, capacity=1), DataDir(path=b, capacity=3)]) as store:
        rebalance = asyncio.create_task(store.rebalance_all(batch=8))
        rounds = 0
        while not rebalance.done() or rounds == 0:
            for data in blocks:
                assert await store.read(block_hash(data)) == data
            rounds += 1
        assert (await rebalance)["moved"] > 100


async def test_rebalance_keeps_a_good_primary_copy_and_quarantines_a_bad_secondary(tmp_path: Path) -> None:
    a, b = str(tmp_path / "a"), str(tmp_path / "b")
    config = [DataDir(path=a, capacity=1), DataDir(path=b, capacity=1)]
    async with disk_store(tmp_path, config) as store:
        rng = random.Random(7)
        data = next(
            d
            for d in (rng.randbytes(1000) for _ in range(100))
            if store.layout.primary_dir(block_hash(d)) == b
        )
        key = block_hash(data)
        # A stray corrupted copy in the non-primary dir, and the only copy there.
        stray = os.path.join(a, key[:1].hex(), key[1:2].hex(), key.hex())
        os.makedirs(os.path.dirname(stray))
        Path(stray).write_bytes(b"garbage")
        with pytest.raises(BlockCorrupted):
            await store.rebalance_one(key)
        assert os.path.exists(stray + ".corrupted")
        Path(stray).write_bytes(data)
        assert await store.rebalance_one(key)
        assert root_of(store.path_of(key) or "") == b and not os.path.exists(stray)


# ================================================================ DataLayout (pure core)


def dd(path: str, capacity: int | None = None, read_only: bool = False) -> DataDir:
    return DataDir(path=path, capacity=capacity, read_only=read_only)


def test_single_path_is_the_only_primary() -> None:
    layout = DataLayout.initialize("/srv/data")
    assert layout.npart_primary() == [DRIVE_NPART]
    assert not layout.has_secondaries()
    key = bytes(32)
    assert layout.candidate_dirs(key) == ("/srv/data",)


def test_drive_partition_uses_hash_bytes_2_and_3() -> None:
    assert drive_partition(bytes([0xAB, 0xCD, 0x04, 0x01]) + bytes(28)) == 0x0401 % DRIVE_NPART
    assert drive_partition(bytes([0xFF, 0xFF, 0x00, 0x00]) + bytes(28)) == 0


@pytest.mark.parametrize(
    "dirs, error",
    [
        ("relative/path", InvalidDataDirConfig),
        ([dd("/a", 1), dd("/a", 2)], InvalidDataDirConfig),
        ([dd("/a", 1), dd("/a/b", 1)], InvalidDataDirConfig),
        ([dd("/a/b/..", 1), dd("/a", 1)], InvalidDataDirConfig),
        ([dd("/a", read_only=True), dd("/b", read_only=True)], NoWritableDataDir),
        ([dd("/a", 10, read_only=True), dd("/b", 1)], InvalidDataDirConfig),
        ([dd("/a"), dd("/b", 1)], InvalidDataDirConfig),
        ([dd("/a", 0)], InvalidDataDirConfig),
        ([], InvalidDataDirConfig),
    ],
)
def test_invalid_data_dir_configs_are_refused(dirs: object, error: type[Exception]) -> None:
    with pytest.raises(error):
        DataLayout.initialize(dirs)  # type: ignore[arg-type]


def test_initialize_lists_nonempty_dirs_as_secondaries() -> None:
    layout = DataLayout.initialize(
        [dd("/a", 1), dd("/b", 1), dd("/r", read_only=True)], nonempty={"/a", "/r"}
    )
    for part in range(DRIVE_NPART):
        prim = layout.part_prim[part]
        assert 2 not in (prim,)
        assert set(layout.part_sec[part]) == {0, 2} - {prim}


def test_adding_an_equal_dir_moves_exactly_half_of_the_partitions() -> None:
    before = DataLayout.initialize([dd("/a", 5)])
    after = before.update([dd("/a", 5), dd("/b", 5)])
    moved = [p for p in range(DRIVE_NPART) if after.part_prim[p] != before.part_prim[p]]
    assert len(moved) == DRIVE_NPART // 2
    assert all(after.part_sec[p] == (0,) for p in moved)
    assert after.update([dd("/a", 5), dd("/b", 5)]) is after


def test_layout_round_trips_through_its_encoding() -> None:
    layout = DataLayout.initialize([dd("/a", 1), dd("/b", 3)]).update([dd("/a", 2), dd("/b", 3), dd("/c", 1)])
    assert DataLayout.decode(layout.encode()) == layout
    raw = msgspec.msgpack.decode(layout.encode())
    assert raw["v"] == 1 and set(raw) == {"v", "data_dirs", "part_prim", "part_sec"}


def test_invalid_persisted_layouts_are_refused() -> None:
    good = msgspec.msgpack.decode(DataLayout.initialize([dd("/a", 1), dd("/b", 1)]).encode())
    bad_prim = dict(good, part_prim=[5] * DRIVE_NPART)
    unbalanced = dict(good, part_prim=[0] * DRIVE_NPART)
    short = dict(good, part_sec=[[]])
    for bad in (bad_prim, unbalanced, short, {"v": 1}, "garbage"):
        with pytest.raises(DataLayoutError):
            DataLayout.decode(msgspec.msgpack.encode(bad))
    with pytest.raises(UnsupportedDataLayoutVersion):
        DataLayout.decode(msgspec.msgpack.encode(dict(good, v=2)))


def test_unreadable_layout_file_is_rebuilt_without_losing_a_dir(tmp_path: Path) -> None:
    dirs = [dd(str(tmp_path / "a"), 1), dd(str(tmp_path / "b"), 1)]
    layout = load_data_layout(str(tmp_path / "meta"), dirs)
    os.makedirs(tmp_path / "b" / "ab")  # b holds blocks
    (tmp_path / "meta" / DATA_LAYOUT_FILE).write_bytes(b"\x00garbage")
    rebuilt = load_data_layout(str(tmp_path / "meta"), dirs)
    assert rebuilt.part_prim == layout.part_prim
    assert all(set(rebuilt.part_sec[p]) == {1} - {rebuilt.part_prim[p]} for p in range(DRIVE_NPART))
    (tmp_path / "meta" / DATA_LAYOUT_FILE).write_bytes(msgspec.msgpack.encode({"v": 99}))
    with pytest.raises(UnsupportedDataLayoutVersion):
        load_data_layout(str(tmp_path / "meta"), dirs)


def test_missing_read_only_dir_is_refused(tmp_path: Path) -> None:
    with pytest.raises(InvalidDataDirConfig):
        load_data_layout(
            str(tmp_path / "meta"), [dd(str(tmp_path / "a"), 1), dd(str(tmp_path / "ro"), read_only=True)]
        )


PATHS = ["/d/a", "/d/b", "/d/c", "/d/e"]
dir_configs = st.lists(
    st.tuples(st.sampled_from(PATHS), st.one_of(st.none(), st.integers(1, 8))),
    min_size=1,
    max_size=4,
    unique_by=lambda t: t[0],
).filter(lambda ds: any(c is not None for _, c in ds))


@settings(max_examples=60, deadline=None)
@given(st.lists(dir_configs, min_size=1, max_size=6))
def test_every_former_primary_still_listed_is_still_searched(
    configs: list[list[tuple[str, int | None]]],
) -> None:
    def as_dirs(config: list[tuple[str, int | None]]) -> list[DataDir]:
        return [dd(p, c, read_only=c is None) for p, c in config]

    layout = DataLayout.initialize(as_dirs(configs[0]))
    ever_held: set[str] = set()  # a dir that was ever listed may hold blocks
    holders: list[set[str]] = [{layout.data_dirs[layout.part_prim[p]].path} for p in range(DRIVE_NPART)]
    for config in configs[1:]:
        ever_held |= {d.path for d in layout.data_dirs}
        layout = layout.update(as_dirs(config), nonempty=ever_held)
        layout.check()
        listed = {d.path for d in layout.data_dirs}
        for part in range(DRIVE_NPART):
            searched = {layout.data_dirs[i].path for i in (layout.part_prim[part], *layout.part_sec[part])}
            assert holders[part] & listed <= searched
            holders[part] = (holders[part] & listed) | {layout.data_dirs[layout.part_prim[part]].path}
