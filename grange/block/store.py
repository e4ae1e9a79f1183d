"""The node's local block store: content-addressed files in one or more data dirs.

On-disk layout
--------------
A block is named by the BLAKE2b-256 of its *uncompressed* data (32 bytes, 64 hex digits).
In the data dir that holds it (see `grange.block.data_layout`: a primary dir chosen by hash
bytes 2-3, and secondary dirs where it may still be after a change of `data_dir`):

    <data dir>/<hh0>/<hh1>/<64 hex>                     plain block
    <data dir>/<hh0>/<hh1>/<64 hex>.zst                 one zstd frame (content size, checksum)
    <data dir>/<hh0>/<hh1>/<64 hex>.tmp.<8 hex>         write in progress; garbage after a crash
    <data dir>/<hh0>/<hh1>/<64 hex>[.zst].corrupted     quarantined copy, kept for the operator

with hh0, hh1 the hex of the hash's first and second bytes. `<metadata_dir>/data_layout`
records which dir is primary for which drive partition.

Theory of operation
-------------------
- **Write** (`write(hash, data)`): the hash is recomputed first and a mismatch refused
  (`BlockHashMismatch`): a block is never stored under a wrong name. If a copy already exists
  (plain or .zst, primary or secondary dir) and holds exactly `data`, nothing is done; a copy
  that does not (undetected bit rot) is quarantined and the block written again, so writing
  the right data repairs a block. Otherwise the data is zstd-compressed at
  `compression_level` if that saves at least `COMPRESSION_SAVING_MIN` of its size, written to
  a temp file in the block's primary dir, fsynced if `data_fsync`, renamed into place, and
  the directory fsynced if `data_fsync`. A crash leaves either no file or the whole file at
  the final path, plus perhaps a temp file that `cleanup_temp()` removes later.
- **Read**: primary dir first, then secondaries, .zst first when compression is on (plain
  first when off), as Garage's `find_block`. The data is decompressed and its hash checked;
  a bad copy is renamed to `.corrupted`, the next copy is tried, and `BlockCorrupted` raised
  if none is good. Pair assertion: hashes are checked before writing and after reading.
- **Threads finish what they start.** Every file operation, hash and (de)compression runs
  as one call in a thread pool owned by the store (`io_threads` threads). A call takes one of
  `io_threads` slots on the event loop first (waiting there is cancellable and has started
  nothing), then runs shielded: a cancelled caller gets `CancelledError` at once while the
  thread completes its whole sequence. `wait_idle()` / `close()` wait for such orphans, so
  the owner of the store owns them.
- **Concurrency**: operations that change files of one hash (write, quarantine, delete,
  rebalance) hold one of `LOCK_STRIPES` locks chosen by the hash, so a repair cannot race a
  reader that quarantines (a reader moves a copy aside only if it is still the inode it
  read). Reads take no lock: a copy that vanishes under them (rebalance, delete) makes them
  look again.
- **Rebalance** copies a block found outside its primary dir into it (temp + rename, the
  stored bytes as they are, after verifying them), then deletes the other copies; copies on
  a read-only filesystem that cannot be deleted are left behind with a warning. After a pass
  over every dir without errors, `rebalance_all()` drops the secondary locations from the
  persisted data layout.

Known limits: a `.zst` frame declaring more than `decoded_size_max` bytes (by default
max(64 MiB, 4 × block_size)) is treated as corrupted. `iter_blocks()` is synchronous and
meant to run in a worker's thread. Permissions of block files are 0600.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import errno
import hashlib
import logging
import os
import re
import secrets
import threading
import time
from collections.abc import Callable, Iterator, Sequence
from typing import Any, Protocol, TypeVar

import zstandard

from grange.block.data_layout import DataLayout, block_subdir, load_data_layout, save_data_layout
from grange.block.errors import (
    BlockCorrupted,
    BlockError,
    BlockHashMismatch,
    BlockNotFound,
    DataDirFull,
)
from grange.util.config import Config, DataDir

__all__ = [
    "HASH_LEN",
    "COMPRESSION_SAVING_MIN",
    "TEMP_MAX_AGE_S",
    "IO_THREADS_DEFAULT",
    "LocalBlockStore",
    "BlockStore",
    "block_hash",
]

log = logging.getLogger("grange.block")

T = TypeVar("T")

HASH_LEN = 32  # BLAKE2b-256
# Keep the .zst form only if it is at most 90 % of the plain size: below that, the CPU spent
# decompressing every read buys too little disk.
COMPRESSION_SAVING_MIN = 0.10
TEMP_MAX_AGE_S = 3600.0  # a temp file older than this belongs to no running write
# Block I/O threads: enough to keep an SSD's queue busy with fsyncs, small enough not to
# thrash an HDD; each holds at most one block in RAM.
IO_THREADS_DEFAULT = 8
LOCK_STRIPES = 64  # per-hash mutual exclusion without a dict of locks that grows
DECODED_SIZE_MAX_MIN = 64 * 1024 * 1024  # floor of the decompressed-size limit (known limits)
_READ_RETRIES = 3  # a reader looks again when the copy it found moved (rebalance, repair)
_READ_ONLY_ERRNOS = frozenset({errno.EROFS, errno.EACCES, errno.EPERM})
_FULL_ERRNOS = frozenset({errno.ENOSPC, errno.EDQUOT})
_BLOCK_NAME = re.compile(r"^([0-9a-f]{64})(\.zst)?$")
_HEX2 = re.compile(r"^[0-9a-f]{2}$")
_TMP_MARK = ".tmp."


def block_hash(data: bytes) -> bytes:
    """The name of a block: BLAKE2b-256 of its uncompressed data."""
    return hashlib.blake2b(data, digest_size=HASH_LEN).digest()


def _check_hash(hash: bytes) -> None:
    if not isinstance(hash, bytes) or len(hash) != HASH_LEN:
        raise ValueError(f"a block hash is {HASH_LEN} bytes, got {hash!r:.80}")


def _write_all(fd: int, data: bytes) -> None:
    """os.write until everything is written (a module function so tests can fail it)."""
    view = memoryview(data)
    while view:
        n = os.write(fd, view)
        view = view[n:]


def _fsync_dir(path: str) -> None:
    fd = os.open(path, os.O_RDONLY | os.O_DIRECTORY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def _exists(path: str) -> bool:
    try:
        os.stat(path)
    except (FileNotFoundError, NotADirectoryError):
        return False
    return True


class LocalBlockStore(Protocol):
    """What the block manager, resync, scrub and rebalance see of local block storage.

    Hashes are 32-byte BLAKE2b-256 of the uncompressed data (ValueError otherwise)."""

    async def write(self, hash: bytes, data: bytes) -> None: ...

    async def read(self, hash: bytes) -> bytes: ...

    async def exists(self, hash: bytes) -> bool: ...

    async def delete(self, hash: bytes) -> bool: ...

    async def size_on_disk(self, hash: bytes) -> int | None: ...

    def path_of(self, hash: bytes) -> str | None: ...

    def iter_blocks(self) -> Iterator[tuple[bytes, str]]: ...

    async def verify(self, hash: bytes) -> bool: ...

    async def rebalance_one(self, hash: bytes) -> bool: ...

    async def rebalance_all(self) -> dict[str, int]: ...

    async def cleanup_temp(self, older_than_s: float = TEMP_MAX_AGE_S) -> int: ...

    def statistics(self) -> dict[str, int]: ...

    async def wait_idle(self) -> None: ...

    async def close(self) -> None: ...


class _Replaced:
    """Quarantine outcome: the path no longer holds the inode that was read (look again)."""


_REPLACED = _Replaced()


class _Stats:
    """Counters updated from I/O threads; read with `snapshot()`."""

    FIELDS = (
        "blocks_read",
        "bytes_read",
        "blocks_written",
        "bytes_written",
        "disk_bytes_written",
        "writes_deduplicated",
        "blocks_deleted",
        "corruptions_detected",
        "blocks_rebalanced",
        "temp_files_removed",
    )

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._values = dict.fromkeys(self.FIELDS, 0)

    def add(self, **counts: int) -> None:
        with self._lock:
            for name, n in counts.items():
                self._values[name] += n

    def snapshot(self) -> dict[str, int]:
        with self._lock:
            return dict(self._values)


class BlockStore:
    """Blocks as files in the node's data dirs; see the module docstring.

    Construction reads (and, if `data_dir` changed, rewrites) `<metadata_dir>/data_layout`
    and creates missing writable dirs: it blocks, so build the store at start-up or through
    `open()`. Use as `async with` or call `close()`, which waits for orphaned writes.
    """

    def __init__(
        self,
        data_dirs: str | Sequence[DataDir],
        metadata_dir: str,
        *,
        compression_level: int | None = 1,
        data_fsync: bool = False,
        block_size: int = 1024 * 1024,
        io_threads: int = IO_THREADS_DEFAULT,
        clock: Callable[[], float] = time.time,
        tag: str = "",
    ) -> None:
        if io_threads < 1:
            raise ValueError("io_threads must be at least 1")
        self.metadata_dir = metadata_dir
        self.compression_level = compression_level
        self.data_fsync = data_fsync
        self.decoded_size_max = max(DECODED_SIZE_MAX_MIN, 4 * block_size)
        self.io_threads = io_threads
        self._clock = clock
        self._tag = f"[{tag}] " if tag else ""
        self._layout = load_data_layout(metadata_dir, data_dirs)
        self._executor = concurrent.futures.ThreadPoolExecutor(io_threads, thread_name_prefix="grange-block")
        self._slots = asyncio.Semaphore(io_threads)
        self._inflight: set[concurrent.futures.Future[Any]] = set()
        self._closed = False
        self._locks = [threading.RLock() for _ in range(LOCK_STRIPES)]
        self._local = threading.local()
        self._stats = _Stats()

    @classmethod
    def from_config(cls, config: Config, **kwargs: Any) -> BlockStore:
        """The store of a node configured by `config` (data_dir, metadata_dir, compression
        level, data_fsync, block_size); `kwargs` go to the constructor (io_threads, tag...)."""
        return cls(
            config.data_dir,
            config.metadata_dir,
            compression_level=config.compression_level,
            data_fsync=config.data_fsync,
            block_size=config.block_size,
            **kwargs,
        )

    @classmethod
    async def open(cls, data_dirs: str | Sequence[DataDir], metadata_dir: str, **kwargs: Any) -> BlockStore:
        """The constructor, run in a thread so the event loop is not blocked."""
        return await asyncio.to_thread(cls, data_dirs, metadata_dir, **kwargs)

    async def __aenter__(self) -> BlockStore:
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.close()

    @property
    def layout(self) -> DataLayout:
        """The current data layout (immutable; replaced as a whole by rebalance_all)."""
        return self._layout

    # ------------------------------------------------------------------ thread calls

    async def _run(self, fn: Callable[..., T], *args: Any) -> T:
        """Run `fn(*args)` in the pool, to completion even if the caller is cancelled."""
        if self._closed:
            raise RuntimeError("block store is closed")
        await self._slots.acquire()  # cancellable: nothing started yet
        loop = asyncio.get_running_loop()
        try:
            cf = self._executor.submit(fn, *args)
        except BaseException:
            self._slots.release()
            raise
        self._inflight.add(cf)

        def done(f: concurrent.futures.Future[Any]) -> None:  # in the worker thread
            try:
                loop.call_soon_threadsafe(self._job_done, f)
            except RuntimeError:  # loop closed: nobody left to release the slot for
                self._inflight.discard(f)

        cf.add_done_callback(done)
        fut = asyncio.wrap_future(cf, loop=loop)
        try:
            return await asyncio.shield(fut)
        except asyncio.CancelledError:
            if not fut.done():
                fut.add_done_callback(self._log_orphan_outcome)
            raise

    def _job_done(self, f: concurrent.futures.Future[Any]) -> None:
        self._inflight.discard(f)
        self._slots.release()

    def _log_orphan_outcome(self, fut: asyncio.Future[Any]) -> None:
        """A call whose caller was cancelled finished: nobody will see its error but the log."""
        if not fut.cancelled() and fut.exception() is not None:
            log.warning(
                "%sblock operation failed after its caller was cancelled: %s", self._tag, fut.exception()
            )

    async def wait_idle(self) -> None:
        """Wait until every thread call started so far (orphans included) has finished."""
        while self._inflight:
            await asyncio.wait([asyncio.wrap_future(f) for f in list(self._inflight)])
            await asyncio.sleep(0)  # let the _job_done callbacks run

    async def close(self) -> None:
        """Refuse new calls, wait for running ones (orphaned writes complete), stop the pool."""
        self._closed = True
        await self.wait_idle()
        self._executor.shutdown(wait=True)

    def _lock(self, hash: bytes) -> threading.RLock:
        return self._locks[int.from_bytes(hash[-2:], "big") % LOCK_STRIPES]

    # ------------------------------------------------------------------ public API

    async def write(self, hash: bytes, data: bytes) -> None:
        """Store `data` under `hash` (its BLAKE2b-256), durably if `data_fsync`; idempotent.

        Raises BlockHashMismatch (nothing stored), DataDirFull, or OSError. Completes even
        if the caller is cancelled once the write has started."""
        _check_hash(hash)
        await self._run(self._write_sync, hash, data)

    async def read(self, hash: bytes) -> bytes:
        """The block's data, verified. Raises BlockNotFound, or BlockCorrupted after moving
        every bad copy aside when no good copy is left."""
        _check_hash(hash)
        return await self._run(self._read_sync, hash)

    async def exists(self, hash: bytes) -> bool:
        """Whether a copy is where reads look (stat only: the content is not checked)."""
        _check_hash(hash)
        return await self._run(self._find_path, hash) is not None

    async def delete(self, hash: bytes) -> bool:
        """Remove every copy (plain and .zst, in every data dir). True if one was removed."""
        _check_hash(hash)
        return await self._run(self._delete_sync, hash)

    async def size_on_disk(self, hash: bytes) -> int | None:
        """Size of the copy reads would use (compressed size for .zst), None if absent."""
        _check_hash(hash)
        return await self._run(self._size_sync, hash)

    def path_of(self, hash: bytes) -> str | None:
        """Path of the copy reads would use, or None. Runs a few stats inline."""
        _check_hash(hash)
        return self._find_path(hash)

    async def verify(self, hash: bytes) -> bool:
        """Check every copy of the block (scrub): bad ones are quarantined and counted.
        True if all copies are good, False if one was corrupted; BlockNotFound if none."""
        _check_hash(hash)
        return await self._run(self._verify_sync, hash)

    async def rebalance_one(self, hash: bytes) -> bool:
        """Move the block into its primary dir and remove copies elsewhere. True if anything
        was moved or removed. Raises BlockCorrupted if no good copy exists."""
        _check_hash(hash)
        return await self._run(self._rebalance_sync, hash)

    async def rebalance_all(self, batch: int = 256) -> dict[str, int]:
        """One rebalance pass over every block file of every dir (Garage `repair rebalance`).

        After a pass without errors, secondary locations are dropped from the data layout.
        Returns {"moved": blocks moved or cleaned, "errors": blocks that failed}."""
        layout = self._layout
        files = self._iter_off_primary(layout)
        moved = errors = 0
        while hashes := await self._run(_take, files, batch):
            for h in hashes:
                try:
                    if await self.rebalance_one(h):
                        moved += 1
                except (BlockError, OSError) as e:
                    errors += 1
                    log.warning("%srebalance: block %s: %s", self._tag, h.hex()[:16], e)
        if errors == 0 and layout is self._layout and layout.has_secondaries():
            new = layout.without_secondary_locations()
            await self._run(save_data_layout, self.metadata_dir, new)
            self._layout = new
            log.info("%srebalance: every block is in its primary dir; secondary locations dropped", self._tag)
        return {"moved": moved, "errors": errors}

    def iter_blocks(self) -> Iterator[tuple[bytes, str]]:
        """Every stored block file as (hash, path), dir by dir, in hash order within a dir.

        Temp and quarantined files are skipped. Blocking: run it in a thread."""
        for h, _root, path in self._iter_block_files(self._layout):
            yield h, path

    async def cleanup_temp(self, older_than_s: float = TEMP_MAX_AGE_S) -> int:
        """Remove temp files older than `older_than_s` (left by a crash); returns the count."""
        return await self._run(self._cleanup_temp_sync, older_than_s)

    def statistics(self) -> dict[str, int]:
        """Counters since start (Garage metrics block_bytes_read, block_corruption_counter...)
        plus the number of thread calls in flight."""
        stats = self._stats.snapshot()
        stats["io_in_flight"] = len(self._inflight)
        stats["io_threads"] = self.io_threads
        return stats

    # ------------------------------------------------------------------ paths and lookup

    def _copy_paths(self, roots: Sequence[str], hash: bytes) -> Iterator[tuple[str, str, bool]]:
        """(root, path, compressed) of every possible copy in `roots`, in the order to try."""
        name = hash.hex()
        zst_first = self.compression_level is not None
        for root in roots:
            base = os.path.join(block_subdir(root, hash), name)
            if zst_first:
                yield root, base + ".zst", True
                yield root, base, False
            else:
                yield root, base, False
                yield root, base + ".zst", True

    def _iter_copies(self, hash: bytes, everywhere: bool = False) -> Iterator[tuple[str, str, bool]]:
        """Existing copies where reads look (primary, then secondaries), or in every dir."""
        layout = self._layout
        roots = list(layout.candidate_dirs(hash))
        if everywhere:
            roots += [d.path for d in layout.data_dirs if d.path not in roots]
        for root, path, compressed in self._copy_paths(roots, hash):
            if _exists(path):
                yield root, path, compressed

    def _find_path(self, hash: bytes) -> str | None:
        for _root, path, _compressed in self._iter_copies(hash):
            return path
        return None

    def _size_sync(self, hash: bytes) -> int | None:
        for _root, path, _compressed in self._iter_copies(hash):
            try:
                return os.stat(path).st_size
            except FileNotFoundError:
                continue
        return None

    # ------------------------------------------------------------------ encoding

    def _compressor(self) -> zstandard.ZstdCompressor:
        c: zstandard.ZstdCompressor | None = getattr(self._local, "compressor", None)
        if c is None:
            assert self.compression_level is not None, "_encode() stores plain when compression is off"
            c = zstandard.ZstdCompressor(level=self.compression_level, write_checksum=True)
            self._local.compressor = c
        return c

    def _decompressor(self) -> zstandard.ZstdDecompressor:
        d: zstandard.ZstdDecompressor | None = getattr(self._local, "decompressor", None)
        if d is None:
            d = self._local.decompressor = zstandard.ZstdDecompressor()
        return d

    def _encode(self, data: bytes) -> tuple[bytes, bool]:
        """(what to store, whether it is a zstd frame)."""
        if self.compression_level is None or not data:
            return data, False
        packed = self._compressor().compress(data)
        if len(packed) <= len(data) * (1 - COMPRESSION_SAVING_MIN):
            return packed, True
        return data, False

    def _decode(self, hash: bytes, raw: bytes, compressed: bool) -> tuple[bytes | None, str]:
        """(data, "") if the stored bytes hold the block named `hash`, else (None, why)."""
        if compressed:
            try:
                # -1: size not in the header (frames written by other encoders): then the
                # decompressor stops at decoded_size_max instead of trusting the header.
                size = zstandard.frame_content_size(raw)
                if size > self.decoded_size_max:
                    return None, f"zstd frame declares {size} bytes, more than {self.decoded_size_max}"
                data = self._decompressor().decompress(raw, max_output_size=self.decoded_size_max)
            except zstandard.ZstdError as e:
                return None, f"bad zstd frame ({e})"
        else:
            data = raw
        if block_hash(data) != hash:
            return None, "content does not match its hash"
        return data, ""

    # ------------------------------------------------------------------ thread bodies

    def _write_sync(self, hash: bytes, data: bytes) -> None:
        actual = block_hash(data)
        if actual != hash:  # pair assertion, first half: never store under a wrong name
            raise BlockHashMismatch(hash, actual)
        with self._lock(hash):
            for _root, path, compressed in list(self._iter_copies(hash)):
                try:
                    raw, ident = _read_copy(path)
                except FileNotFoundError:
                    continue
                if not compressed and raw == data:
                    self._stats.add(writes_deduplicated=1)  # the common case, a memcmp
                    return
                stored, why = self._decode(hash, raw, compressed)
                if stored is not None:
                    self._stats.add(writes_deduplicated=1)
                    return
                self._quarantine(hash, path, ident, why)
            payload, compressed = self._encode(data)
            self._store_locked(hash, self._layout.primary_dir(hash), payload, compressed)
            self._stats.add(blocks_written=1, bytes_written=len(data), disk_bytes_written=len(payload))

    def _store_locked(self, hash: bytes, root: str, payload: bytes, compressed: bool) -> str:
        """Write `payload` as the block's file in `root`: temp, fsync?, rename, fsync dir?"""
        directory = block_subdir(root, hash)
        final = os.path.join(directory, hash.hex() + (".zst" if compressed else ""))
        tmp = os.path.join(directory, f"{hash.hex()}{_TMP_MARK}{secrets.token_hex(4)}")
        created: list[str] = []
        try:
            for sub in (os.path.dirname(directory), directory):
                try:
                    os.mkdir(sub)  # the root itself is never created here: a missing mount fails
                    created.append(sub)
                except FileExistsError:
                    pass
            fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_CLOEXEC, 0o600)
            try:
                _write_all(fd, payload)
                if self.data_fsync:
                    os.fsync(fd)
            finally:
                os.close(fd)
            os.rename(tmp, final)
        except BaseException as e:
            try:
                os.unlink(tmp)
            except OSError:
                pass
            if isinstance(e, OSError) and e.errno in _FULL_ERRNOS:
                raise DataDirFull(root, hash) from e
            raise
        if self.data_fsync:
            _fsync_dir(directory)
            for sub in created:
                _fsync_dir(os.path.dirname(sub))
        return final

    def _read_sync(self, hash: bytes) -> bytes:
        quarantined: str | None = None
        corrupted = False
        for _attempt in range(_READ_RETRIES):
            replaced = False
            for _root, path, compressed in self._iter_copies(hash):
                try:
                    raw, ident = _read_copy(path)
                except FileNotFoundError:
                    replaced = True  # moved or deleted meanwhile
                    continue
                data, why = self._decode(hash, raw, compressed)
                if data is not None:  # pair assertion, second half: checked after reading
                    self._stats.add(blocks_read=1, bytes_read=len(data))
                    return data
                moved = self._quarantine(hash, path, ident, why)
                if moved is _REPLACED:
                    replaced = True
                else:
                    corrupted = True
                    quarantined = moved if isinstance(moved, str) else quarantined
            if not replaced:
                break
        if corrupted:
            raise BlockCorrupted(hash, quarantined)
        raise BlockNotFound(hash)

    def _quarantine(self, hash: bytes, path: str, ident: tuple[int, int], why: str) -> str | None | _Replaced:
        """Move the bad copy at `path` to `path.corrupted`, if `path` still is the inode that
        was read (`ident`). Returns the new path, None if it could not be moved, _REPLACED if
        `path` changed meanwhile (then nothing was done)."""
        with self._lock(hash):
            try:
                st = os.lstat(path)
            except FileNotFoundError:
                return _REPLACED
            if (st.st_dev, st.st_ino) != ident:
                return _REPLACED
            self._stats.add(corruptions_detected=1)
            dest = path + ".corrupted"
            try:
                os.replace(path, dest)
            except OSError as e:
                log.error(
                    "%sblock %s corrupted (%s) at %s, cannot move it aside: %s",
                    self._tag,
                    hash.hex()[:16],
                    why,
                    path,
                    e,
                )
                return None
            log.warning("%sblock %s corrupted (%s): moved to %s", self._tag, hash.hex()[:16], why, dest)
            return dest

    def _delete_sync(self, hash: bytes) -> bool:
        removed = False
        with self._lock(hash):
            layout = self._layout
            for _root, path, _compressed in self._copy_paths([d.path for d in layout.data_dirs], hash):
                try:
                    os.unlink(path)
                    removed = True
                except (FileNotFoundError, NotADirectoryError):
                    pass
        if removed:
            self._stats.add(blocks_deleted=1)
        return removed

    def _verify_sync(self, hash: bytes) -> bool:
        found = good = 0
        with self._lock(hash):
            for _root, path, compressed in list(self._iter_copies(hash, everywhere=True)):
                try:
                    raw, ident = _read_copy(path)
                except FileNotFoundError:
                    continue
                found += 1
                data, why = self._decode(hash, raw, compressed)
                if data is not None:
                    good += 1
                    self._stats.add(blocks_read=1, bytes_read=len(data))
                else:
                    self._quarantine(hash, path, ident, why)
        if not found:
            raise BlockNotFound(hash)
        return good == found

    def _rebalance_sync(self, hash: bytes) -> bool:
        with self._lock(hash):
            primary = self._layout.primary_dir(hash)
            copies = list(self._iter_copies(hash, everywhere=True))
            others = [(path, compressed) for root, path, compressed in copies if root != primary]
            if not others:
                return False
            # A good copy in the primary dir, or one copied there from elsewhere.
            candidates = [(path, c, True) for root, path, c in copies if root == primary]
            candidates += [(path, c, False) for path, c in others]
            placed = False
            quarantined: str | None = None
            for path, compressed, in_primary in candidates:
                try:
                    raw, ident = _read_copy(path)
                except FileNotFoundError:
                    continue
                data, why = self._decode(hash, raw, compressed)
                if data is None:
                    moved = self._quarantine(hash, path, ident, why)
                    quarantined = moved if isinstance(moved, str) else quarantined
                    continue
                if not in_primary:
                    self._store_locked(hash, primary, raw, compressed)
                    self._stats.add(blocks_rebalanced=1, disk_bytes_written=len(raw))
                    log.debug(
                        "%srebalance: block %s moved %s -> %s", self._tag, hash.hex()[:16], path, primary
                    )
                placed = True
                break
            if not placed:
                raise BlockCorrupted(hash, quarantined, "no good copy to move to its primary dir")
            for path, _compressed in others:
                try:
                    os.unlink(path)
                except FileNotFoundError:
                    pass
                except OSError as e:
                    if e.errno not in _READ_ONLY_ERRNOS:
                        raise
                    log.warning(
                        "%srebalance: cannot remove %s (%s); the copy in %s is used",
                        self._tag,
                        path,
                        e.strerror,
                        primary,
                    )
            return True

    def _iter_block_files(self, layout: DataLayout) -> Iterator[tuple[bytes, str, str]]:
        """(hash, root, path) of every block file in every dir of `layout`."""
        for d in layout.data_dirs:
            for l1 in _sorted_subdirs(d.path):
                for l2 in _sorted_subdirs(os.path.join(d.path, l1)):
                    sub = os.path.join(d.path, l1, l2)
                    try:
                        names = sorted(os.listdir(sub))
                    except (FileNotFoundError, NotADirectoryError):
                        continue
                    for name in names:
                        m = _BLOCK_NAME.match(name)
                        if m is None or m.group(1)[:4] != l1 + l2:
                            continue
                        yield bytes.fromhex(m.group(1)), d.path, os.path.join(sub, name)

    def _iter_off_primary(self, layout: DataLayout) -> Iterator[bytes]:
        for h, root, _path in self._iter_block_files(layout):
            if root != layout.primary_dir(h):
                yield h

    def _cleanup_temp_sync(self, older_than_s: float) -> int:
        limit = self._clock() - older_than_s
        removed = 0
        for d in self._layout.data_dirs:
            for l1 in _sorted_subdirs(d.path):
                for l2 in _sorted_subdirs(os.path.join(d.path, l1)):
                    sub = os.path.join(d.path, l1, l2)
                    try:
                        entries = list(os.scandir(sub))
                    except FileNotFoundError:
                        continue
                    for e in entries:
                        if _TMP_MARK not in e.name:
                            continue
                        try:
                            if e.stat(follow_symlinks=False).st_mtime < limit:
                                os.unlink(e.path)
                                removed += 1
                        except FileNotFoundError:
                            pass
                        except OSError as err:
                            if err.errno not in _READ_ONLY_ERRNOS:
                                raise
        if removed:
            self._stats.add(temp_files_removed=removed)
            log.info("%sremoved %d stale temp block files", self._tag, removed)
        return removed


def _read_copy(path: str) -> tuple[bytes, tuple[int, int]]:
    """The bytes of a stored file and its (st_dev, st_ino), read through one descriptor."""
    with open(path, "rb", buffering=0) as f:
        st = os.fstat(f.fileno())
        return f.readall(), (st.st_dev, st.st_ino)


def _sorted_subdirs(path: str) -> list[str]:
    try:
        with os.scandir(path) as it:
            return sorted(e.name for e in it if _HEX2.match(e.name) and e.is_dir(follow_symlinks=False))
    except (FileNotFoundError, NotADirectoryError):
        return []


def _take(it: Iterator[T], n: int) -> list[T]:
    out: list[T] = []
    for item in it:
        out.append(item)
        if len(out) >= n:
            break
    return out
