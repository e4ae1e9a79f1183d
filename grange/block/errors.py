"""Errors of the local block store, as a small tree that follows states.

    BlockError                     anything the block store refuses or fails to do
    ├── BlockNotFound              no copy of the block in any data dir
    ├── BlockCorrupted             a stored copy does not hash to its name (moved aside)
    │   └── BlockHashMismatch      data offered for writing does not hash to the given name
    ├── DataDirFull                the primary data dir has no space left (ENOSPC / EDQUOT)
    └── InvalidDataDirConfig       the `data_dir` configuration cannot be used
        └── NoWritableDataDir      ... because no directory is writable

Other I/O failures (EIO, EACCES, ...) propagate as `OSError`: they are the disk's, not ours,
and the resync and scrub workers that call the store count and retry them like any error.
The API layer maps these to S3 errors in one place; nothing here knows HTTP.
"""

from __future__ import annotations

__all__ = [
    "BlockError",
    "BlockNotFound",
    "BlockCorrupted",
    "BlockHashMismatch",
    "DataDirFull",
    "InvalidDataDirConfig",
    "NoWritableDataDir",
]


def _short(hash: bytes) -> str:
    return hash.hex()[:16] + "…"


class BlockError(Exception):
    """Base of every error raised on purpose by `grange.block` local storage."""

    # The caller handles these (tries another holder, retries later): one log line at
    # most, no traceback (grange.net logs unexpected handler errors with one).
    expected = True


class BlockNotFound(BlockError):
    """No copy of the block is stored in any of this node's data dirs."""

    def __init__(self, hash: bytes, detail: str = "") -> None:
        super().__init__(f"block {_short(hash)} not found" + (f": {detail}" if detail else ""))
        self.hash = hash


class BlockCorrupted(BlockError):
    """A stored copy did not match its hash (bit rot, truncation, bad zstd frame).

    `path` is where the bad copy was moved to (`<block path>.corrupted`) so that an operator
    can look at it; it is None when the copy could not be moved (read-only filesystem) or
    when no copy was involved (`BlockHashMismatch`). The block must be fetched again from
    another node (resync) or written again by its owner; a later `write` repairs it.
    """

    def __init__(
        self, hash: bytes, path: str | None, detail: str = "content does not match its hash"
    ) -> None:
        where = f", moved to {path}" if path is not None else ""
        super().__init__(f"block {_short(hash)} corrupted: {detail}{where}")
        self.hash = hash
        self.path = path


class BlockHashMismatch(BlockCorrupted, ValueError):
    """`write(hash, data)` was given data whose BLAKE2b-256 is not `hash`: nothing is stored.

    Also a `ValueError`, since the caller (or the peer that sent the data) is at fault."""

    def __init__(self, hash: bytes, actual: bytes) -> None:
        super().__init__(hash, None, f"data to write hashes to {_short(actual)}, nothing stored")
        self.actual = actual


class DataDirFull(BlockError):
    """The data dir a block must go to has no space (or quota) left. Nothing was stored."""

    def __init__(self, path: str, hash: bytes | None = None) -> None:
        what = f"block {_short(hash)}: " if hash is not None else ""
        super().__init__(f"{what}data dir {path} is full")
        self.path = path
        self.hash = hash


class InvalidDataDirConfig(BlockError, ValueError):
    """The list of data dirs cannot be used (relative, duplicate or nested paths...)."""


class NoWritableDataDir(InvalidDataDirConfig):
    """Every data dir is read-only: blocks would have nowhere to go."""
