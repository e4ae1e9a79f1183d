"""Which of a node's data dirs holds which block: Garage's `DataLayout` (`src/block/layout.rs`).

Theory of operation
-------------------
A node may have several data dirs (`data_dir = [{path, capacity}, {path, read_only = true}]`).
Blocks are spread over them by *drive partition*: the big-endian u16 of bytes 2 and 3 of the
block hash, modulo `DRIVE_NPART` (1024). Each drive partition has

- one **primary** dir, where its blocks are written and where they should end up; primaries
  are handed out in proportion to the capacities of the writable dirs (a read-only dir is
  never primary); and
- a list of **secondary** dirs, where its blocks may still be after the set of dirs changed:
  a read is tried in the primary dir first, then in each secondary, in order.

Bytes 2-3 and not 0-1, as in Garage (`HASH_DRIVE_BYTES`): byte 0 picks the cluster layout
partition, so a node that holds only some of the 256 layout partitions sees a skewed byte 0;
bytes 0-1 also name the `ab/cd/` subdirectories. Bytes 2-3 are uniform on every node.

`initialize()` gives each writable dir a contiguous range of drive partitions sized by its
capacity, and lists every dir that already holds blocks as a secondary of every partition it
is not primary for (it may hold anything). `update()` is what happens when the operator
edits `data_dir`: a dir keeps as many of its primary partitions as its new share allows, the
partitions it loses (all of them if it became read-only or was removed) go to the dirs that
need more, and the dir that lost a partition is added to that partition's secondaries, so
every block stays readable until rebalance moves it. A removed dir is dropped from the
secondaries too (its blocks are gone from this node: resync fetches them back from peers),
and a newly listed dir that already holds blocks is added as a secondary everywhere.
`without_secondary_locations()` is applied once a rebalance pass has emptied every
non-primary location.

Guarantees (`check()`, asserted after every computation and validated on load):
`DRIVE_NPART` primaries, each an active dir; each active dir is primary for exactly
`npart_target()` partitions (its floor-rounded share of capacity); secondaries are valid,
distinct indices that never repeat the partition's primary.

Everything here is a pure function of data except `load_data_layout()`, the thin shell that
reads the persisted layout, looks at which dirs hold blocks and writes the new layout.

On disk: `<metadata_dir>/data_layout`, written atomically (temp, fsync, rename, fsync of the
dir) as msgpack of `{"v": 1, "data_dirs": [{"path", "capacity", "read_only"}...],
"part_prim": [u16 × DRIVE_NPART], "part_sec": [[u16...] × DRIVE_NPART]}`. A changed shape is
a new `v` with a migration from the old one, which stays frozen below. The file is a cache of
placement decisions: when it is missing or unreadable a new layout is initialized, and since
initialization lists every non-empty dir as a secondary, no block is lost, only placement
balance until the next rebalance.

When changing this code, keep in step: `_FormatV1` (a new shape is a new format version),
`check()`, and tests/test_block_store.py (distribution and dir change tests).
"""

from __future__ import annotations

import logging
import os
import re
from collections.abc import Collection, Iterable, Sequence

import msgspec

from grange.block.errors import InvalidDataDirConfig, NoWritableDataDir
from grange.util.config import DataDir
from grange.util.fsutil import read_file, write_file_atomic

__all__ = [
    "DRIVE_NPART",
    "HASH_DRIVE_BYTES",
    "DATA_LAYOUT_FILE",
    "FORMAT_VERSION",
    "DataLayout",
    "DataLayoutError",
    "UnsupportedDataLayoutVersion",
    "drive_partition",
    "normalize_data_dirs",
    "block_subdir",
    "dir_has_blocks",
    "load_data_layout",
    "save_data_layout",
]

log = logging.getLogger("grange.block")

DRIVE_NPART = 1024  # Garage DRIVE_NPART: fine enough to split capacity to ~0.1 %
HASH_DRIVE_BYTES = (2, 4)  # hash[2:4], Garage HASH_DRIVE_BYTES (2, 3): see module docstring
DATA_LAYOUT_FILE = "data_layout"
FORMAT_VERSION = 1
# The single-path form `data_dir = "/path"` has no capacity: any positive number gives the
# one dir every partition (Garage uses 1_000_000_000, "whatever, doesn't matter").
SINGLE_DIR_CAPACITY = 1

_HEX2 = re.compile(r"^[0-9a-f]{2}$")


class DataLayoutError(InvalidDataDirConfig):
    """A persisted or computed data layout breaks an invariant of `DataLayout.check()`."""


class UnsupportedDataLayoutVersion(DataLayoutError):
    """The persisted layout was written by a newer Grange: refuse rather than overwrite it."""


def drive_partition(hash: bytes) -> int:
    """The drive partition of a block: u16 of hash[2:4] (big-endian) mod DRIVE_NPART."""
    start, end = HASH_DRIVE_BYTES
    return int.from_bytes(hash[start:end], "big") % DRIVE_NPART


def block_subdir(root: str, hash: bytes) -> str:
    """`<root>/<hash[0] hex>/<hash[1] hex>`: the directory of a block inside one data dir."""
    return os.path.join(root, hash[0:1].hex(), hash[1:2].hex())


def normalize_data_dirs(dirs: str | Sequence[DataDir]) -> tuple[DataDir, ...]:
    """Validate a `data_dir` setting and return it with normalized absolute paths.

    A single string is the single-path form: one writable dir without capacity. In a list,
    every writable dir has a positive capacity and a read-only dir has none (Garage's rule);
    a one-element list whose dir has neither is read as the single-path form. Paths must be
    absolute, distinct, and not inside one another (a block would be listed twice).
    Raises `InvalidDataDirConfig`, or `NoWritableDataDir` when every dir is read-only.
    """
    if isinstance(dirs, str):
        dirs = (DataDir(path=dirs),)
    if not dirs:
        raise InvalidDataDirConfig("data_dir lists no directory")
    out: list[DataDir] = []
    for d in dirs:
        if not d.path or not os.path.isabs(d.path):
            raise InvalidDataDirConfig(f"data dir path must be absolute, got {d.path!r}")
        path = os.path.normpath(d.path)
        if d.read_only and d.capacity is not None:
            raise InvalidDataDirConfig(f"data dir {path} is read-only and cannot have a capacity")
        if not d.read_only:
            if d.capacity is None and len(dirs) > 1:
                raise InvalidDataDirConfig(
                    f"data dir {path} needs a capacity, or read_only = true, when several dirs are listed"
                )
            if d.capacity is not None and d.capacity <= 0:
                raise InvalidDataDirConfig(f"data dir {path} must have a capacity greater than zero")
        out.append(DataDir(path=path, capacity=d.capacity, read_only=d.read_only))
    for i, a in enumerate(out):
        for b in out[i + 1 :]:
            if a.path == b.path:
                raise InvalidDataDirConfig(f"data dir {a.path} is listed twice")
            if os.path.commonpath([a.path, b.path]) in (a.path, b.path):
                raise InvalidDataDirConfig(f"data dirs {a.path} and {b.path} are nested in one another")
    if all(d.read_only for d in out):
        raise NoWritableDataDir("no writable data dir: give at least one dir a capacity, not read_only")
    return tuple(out)


def _capacity(d: DataDir) -> int:
    """The weight of a dir in the split of primaries: 0 for a read-only dir."""
    if d.read_only:
        return 0
    return d.capacity if d.capacity is not None else SINGLE_DIR_CAPACITY


def _npart_target(dirs: Sequence[DataDir]) -> list[int]:
    """How many drive partitions each dir is primary for: the floor of its cumulative share,
    so that the counts add up to DRIVE_NPART exactly (Garage's formula in both initialize
    and update)."""
    total = sum(_capacity(d) for d in dirs)
    assert total > 0, "normalize_data_dirs() guarantees a writable dir"
    targets, cum = [], 0
    for d in dirs:
        begin = cum * DRIVE_NPART // total
        cum += _capacity(d)
        targets.append(cum * DRIVE_NPART // total - begin)
    assert sum(targets) == DRIVE_NPART
    return targets


class _DirV1(msgspec.Struct, frozen=True):
    path: str
    capacity: int | None
    read_only: bool


class _FormatHeader(msgspec.Struct):
    v: int


class _FormatV1(msgspec.Struct, frozen=True):
    """Persisted form, version 1. Frozen: a new shape is a new class + migrate(old)."""

    v: int
    data_dirs: list[_DirV1]
    part_prim: list[int]
    part_sec: list[list[int]]


class DataLayout(msgspec.Struct, frozen=True):
    """The placement of drive partitions on data dirs; immutable, see the module docstring.

    `data_dirs` are normalized (`normalize_data_dirs`); `part_prim[p]` is the index in
    `data_dirs` of partition p's primary dir, `part_sec[p]` those of its secondaries.
    """

    data_dirs: tuple[DataDir, ...]
    part_prim: tuple[int, ...]
    part_sec: tuple[tuple[int, ...], ...]

    # ------------------------------------------------------------------ construction

    @classmethod
    def initialize(cls, dirs: str | Sequence[DataDir], nonempty: Collection[str] = ()) -> DataLayout:
        """A fresh layout. `nonempty`: paths of dirs that already hold blocks (`dir_has_blocks`)."""
        data_dirs = normalize_data_dirs(dirs)
        part_prim: list[int] = []
        for i, n in enumerate(_npart_target(data_dirs)):
            part_prim.extend([i] * n)
        nonempty_n = {os.path.normpath(p) for p in nonempty}
        part_sec = [
            tuple(i for i, d in enumerate(data_dirs) if d.path in nonempty_n and i != prim)
            for prim in part_prim
        ]
        layout = cls(data_dirs, tuple(part_prim), tuple(part_sec))
        layout.check()
        return layout

    def update(self, dirs: str | Sequence[DataDir], nonempty: Collection[str] = ()) -> DataLayout:
        """The layout after the operator changed `data_dir` (Garage `DataLayout::update`).

        Moves as few partitions as possible; every partition whose primary changes keeps its
        old primary as a secondary (if that dir is still listed). Returns self if nothing
        changed."""
        data_dirs = normalize_data_dirs(dirs)
        if data_dirs == self.data_dirs:
            return self
        new_index = {d.path: i for i, d in enumerate(data_dirs)}
        old2new = [new_index.get(d.path) for d in self.data_dirs]

        # Secondaries of dirs still listed survive, under their new index.
        part_sec: list[list[int]] = [
            [n for n in (old2new[o] for o in sec) if n is not None] for sec in self.part_sec
        ]
        # For each new dir, the partitions it was already primary for.
        dir_prim: list[list[int]] = [[] for _ in data_dirs]
        for part, prim in enumerate(self.part_prim):
            new = old2new[prim]
            if new is not None:
                dir_prim[new].append(part)
        targets = _npart_target(data_dirs)

        # A dir with too many primaries gives up its last ones; it becomes their secondary.
        for idir, (parts, target) in enumerate(zip(dir_prim, targets, strict=True)):
            while len(parts) > target:
                part = parts.pop()
                if idir not in part_sec[part]:
                    part_sec[part].append(idir)

        part_prim: list[int | None] = [None] * DRIVE_NPART
        for idir, parts in enumerate(dir_prim):
            for part in parts:
                assert part_prim[part] is None
                part_prim[part] = idir
        unassigned = [part for part, prim in enumerate(part_prim) if prim is None]

        # A dir with too few primaries takes unassigned partitions.
        for idir, (parts, target) in enumerate(zip(dir_prim, targets, strict=True)):
            for _ in range(target - len(parts)):
                part = unassigned.pop()
                part_prim[part] = idir
                part_sec[part] = [s for s in part_sec[part] if s != idir]
        assert not unassigned and all(p is not None for p in part_prim)

        # A newly listed dir that already holds blocks (removed, then added back) may hold
        # any block: it is a secondary of every partition it is not primary for.
        old_paths = {d.path for d in self.data_dirs}
        nonempty_n = {os.path.normpath(p) for p in nonempty}
        for idir, d in enumerate(data_dirs):
            if d.path in old_paths or d.path not in nonempty_n:
                continue
            for part, sec in enumerate(part_sec):
                if part_prim[part] != idir and idir not in sec:
                    sec.append(idir)

        layout = DataLayout(
            data_dirs,
            tuple(p for p in part_prim if p is not None),
            tuple(tuple(sec) for sec in part_sec),
        )
        layout.check()
        return layout

    def without_secondary_locations(self) -> DataLayout:
        """The same layout with every secondary dropped: once rebalance has moved every block
        to its primary dir, reads need not look anywhere else."""
        return DataLayout(self.data_dirs, self.part_prim, tuple(() for _ in self.part_sec))

    # ------------------------------------------------------------------ lookups

    def primary_dir(self, hash: bytes) -> str:
        """The data dir (root) where `hash` is written and should be."""
        return self.data_dirs[self.part_prim[drive_partition(hash)]].path

    def secondary_dirs(self, hash: bytes) -> tuple[str, ...]:
        """Other data dirs (roots) where `hash` may still be, in the order to try them."""
        return tuple(self.data_dirs[i].path for i in self.part_sec[drive_partition(hash)])

    def candidate_dirs(self, hash: bytes) -> tuple[str, ...]:
        """Primary then secondaries: where a read looks, in order."""
        part = drive_partition(hash)
        return (self.data_dirs[self.part_prim[part]].path,) + tuple(
            self.data_dirs[i].path for i in self.part_sec[part]
        )

    def npart_primary(self) -> list[int]:
        """Number of drive partitions each dir is primary for (for status and tests)."""
        counts = [0] * len(self.data_dirs)
        for prim in self.part_prim:
            counts[prim] += 1
        return counts

    def has_secondaries(self) -> bool:
        return any(self.part_sec)

    # ------------------------------------------------------------------ invariants

    def check(self) -> None:
        """Raise DataLayoutError if an invariant of the module docstring does not hold."""
        try:
            normalized = normalize_data_dirs(self.data_dirs)
        except InvalidDataDirConfig as e:
            raise DataLayoutError(f"invalid data dirs in data layout: {e}") from e
        if normalized != self.data_dirs:
            raise DataLayoutError("data layout paths are not normalized")
        n = len(self.data_dirs)
        if len(self.part_prim) != DRIVE_NPART or len(self.part_sec) != DRIVE_NPART:
            raise DataLayoutError(f"data layout must have {DRIVE_NPART} partitions")
        for part, prim in enumerate(self.part_prim):
            if not 0 <= prim < n or self.data_dirs[prim].read_only:
                raise DataLayoutError(f"partition {part}: primary {prim} is not a writable dir")
            sec = self.part_sec[part]
            if len(set(sec)) != len(sec) or prim in sec or any(not 0 <= s < n for s in sec):
                raise DataLayoutError(f"partition {part}: invalid secondaries {list(sec)}")
        if self.npart_primary() != _npart_target(self.data_dirs):
            raise DataLayoutError("primary partitions are not split in proportion to capacities")

    # ------------------------------------------------------------------ persistence

    def encode(self) -> bytes:
        return msgspec.msgpack.encode(
            _FormatV1(
                v=FORMAT_VERSION,
                data_dirs=[_DirV1(d.path, d.capacity, d.read_only) for d in self.data_dirs],
                part_prim=list(self.part_prim),
                part_sec=[list(s) for s in self.part_sec],
            )
        )

    @classmethod
    def decode(cls, data: bytes) -> DataLayout:
        """Inverse of encode(); raises DataLayoutError on a malformed, unknown or invalid file."""
        try:
            header = msgspec.msgpack.decode(data, type=_FormatHeader)
        except msgspec.DecodeError as e:
            raise DataLayoutError(f"malformed data layout: {e}") from e
        if header.v != FORMAT_VERSION:
            raise UnsupportedDataLayoutVersion(
                f"unsupported data layout format version {header.v} (known: {FORMAT_VERSION})"
            )
        try:
            f = msgspec.msgpack.decode(data, type=_FormatV1)
        except msgspec.DecodeError as e:
            raise DataLayoutError(f"malformed data layout: {e}") from e
        layout = cls(
            tuple(DataDir(path=d.path, capacity=d.capacity, read_only=d.read_only) for d in f.data_dirs),
            tuple(f.part_prim),
            tuple(tuple(s) for s in f.part_sec),
        )
        layout.check()
        return layout


# ---------------------------------------------------------------------------- I/O shell


def dir_has_blocks(path: str) -> bool:
    """Whether a data dir holds a block subdirectory (a two-hex-digit name), as Garage's
    `dir_not_empty`. A missing dir holds nothing."""
    try:
        with os.scandir(path) as it:
            return any(e.is_dir(follow_symlinks=False) and _HEX2.match(e.name) for e in it)
    except FileNotFoundError:
        return False


def load_data_layout(metadata_dir: str, dirs: str | Sequence[DataDir]) -> DataLayout:
    """The layout for the configured `dirs`: the persisted one updated to them, or a new one;
    persisted again if it changed. Blocking (a few stats and one small file): call it at
    start-up or in a thread.

    Writable dirs that do not exist are created (`mkdir -p`); a read-only dir must exist.
    """
    data_dirs = normalize_data_dirs(dirs)
    for d in data_dirs:
        if d.read_only:
            if not os.path.isdir(d.path):
                raise InvalidDataDirConfig(f"read-only data dir {d.path} does not exist")
        elif not os.path.isdir(d.path):
            log.info("creating data dir %s", d.path)
            os.makedirs(d.path, exist_ok=True)
    path = os.path.join(metadata_dir, DATA_LAYOUT_FILE)
    raw = read_file(path)
    old: DataLayout | None = None
    if raw is not None:
        try:
            old = DataLayout.decode(raw)
        except UnsupportedDataLayoutVersion:
            raise
        except DataLayoutError as e:
            log.warning("%s: %s; initializing a new data layout (every non-empty dir searched)", path, e)
    nonempty = _nonempty(d.path for d in data_dirs)
    new = DataLayout.initialize(data_dirs, nonempty) if old is None else old.update(data_dirs, nonempty)
    if new is not old:
        if old is not None:
            log.info(
                "data dirs changed: primary partitions per dir %s -> %s",
                dict(zip([d.path for d in old.data_dirs], old.npart_primary(), strict=True)),
                dict(zip([d.path for d in new.data_dirs], new.npart_primary(), strict=True)),
            )
        save_data_layout(metadata_dir, new)
    return new


def save_data_layout(metadata_dir: str, layout: DataLayout) -> None:
    """Persist `layout` atomically in `<metadata_dir>/data_layout` (blocking)."""
    write_file_atomic(os.path.join(metadata_dir, DATA_LAYOUT_FILE), layout.encode())


def _nonempty(paths: Iterable[str]) -> set[str]:
    return {p for p in paths if dir_has_blocks(p)}
