"""The in-memory twin of the block store (`BlockStore`): same interface, same guarantees.

Used by the tests of the layers above and by the block store's conformance suite.
"""

from __future__ import annotations

from collections.abc import Iterator

from grange.block.errors import BlockCorrupted, BlockHashMismatch, BlockNotFound
from grange.block.store import TEMP_MAX_AGE_S, _check_hash, _Stats, block_hash


class MemoryBlockStore:
    """`LocalBlockStore` in a dict: the twin used by tests of the layers above.

    Same guarantees and errors as BlockStore (hash checked on write and read, corrupted
    copies quarantined, idempotent writes), without files: paths are `memory://<hex>`,
    nothing is compressed and there is a single "dir", so rebalance never moves anything.
    Hashing runs inline on the event loop: fine for tests, not for production sizes.
    `inject_corruption()` simulates bit rot for scrub and resync tests.
    """

    def __init__(self) -> None:
        self._blocks: dict[bytes, bytes] = {}
        self.quarantine: dict[bytes, bytes] = {}
        self._stats = _Stats()
        self._closed = False

    async def __aenter__(self) -> MemoryBlockStore:
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.close()

    def _check_open(self) -> None:
        if self._closed:
            raise RuntimeError("block store is closed")

    @staticmethod
    def _path(hash: bytes) -> str:
        return f"memory://{hash.hex()}"

    def inject_corruption(self, hash: bytes) -> None:
        """Flip a bit of the stored copy, as bit rot on a disk would."""
        stored = bytearray(self._blocks[hash] or b"\0")
        stored[len(stored) // 2] ^= 0x01
        self._blocks[hash] = bytes(stored)

    def _check(self, hash: bytes) -> bytes | None:
        """The stored data if good; a bad copy is quarantined."""
        stored = self._blocks.get(hash)
        if stored is None or block_hash(stored) == hash:
            return stored
        self.quarantine[hash] = self._blocks.pop(hash)
        self._stats.add(corruptions_detected=1)
        raise BlockCorrupted(hash, self._path(hash) + ".corrupted")

    async def write(self, hash: bytes, data: bytes) -> None:
        _check_hash(hash)
        self._check_open()
        actual = block_hash(data)
        if actual != hash:
            raise BlockHashMismatch(hash, actual)
        try:
            existing = self._check(hash)
        except BlockCorrupted:
            existing = None
        if existing is not None:
            self._stats.add(writes_deduplicated=1)
            return
        self._blocks[hash] = bytes(data)
        self._stats.add(blocks_written=1, bytes_written=len(data), disk_bytes_written=len(data))

    async def read(self, hash: bytes) -> bytes:
        _check_hash(hash)
        self._check_open()
        data = self._check(hash)
        if data is None:
            raise BlockNotFound(hash)
        self._stats.add(blocks_read=1, bytes_read=len(data))
        return data

    async def exists(self, hash: bytes) -> bool:
        _check_hash(hash)
        return hash in self._blocks

    async def delete(self, hash: bytes) -> bool:
        _check_hash(hash)
        self._check_open()
        removed = self._blocks.pop(hash, None) is not None
        if removed:
            self._stats.add(blocks_deleted=1)
        return removed

    async def size_on_disk(self, hash: bytes) -> int | None:
        _check_hash(hash)
        stored = self._blocks.get(hash)
        return None if stored is None else len(stored)

    def path_of(self, hash: bytes) -> str | None:
        _check_hash(hash)
        return self._path(hash) if hash in self._blocks else None

    def iter_blocks(self) -> Iterator[tuple[bytes, str]]:
        for h in sorted(self._blocks):
            yield h, self._path(h)

    async def verify(self, hash: bytes) -> bool:
        _check_hash(hash)
        self._check_open()
        try:
            if self._check(hash) is None:
                raise BlockNotFound(hash)
        except BlockCorrupted:
            return False
        return True

    async def rebalance_one(self, hash: bytes) -> bool:
        _check_hash(hash)
        return False

    async def rebalance_all(self) -> dict[str, int]:
        return {"moved": 0, "errors": 0}

    async def cleanup_temp(self, older_than_s: float = TEMP_MAX_AGE_S) -> int:
        return 0

    def statistics(self) -> dict[str, int]:
        stats = self._stats.snapshot()
        stats["io_in_flight"] = 0
        stats["io_threads"] = 0
        return stats

    async def wait_idle(self) -> None:
        return None

    async def close(self) -> None:
        self._closed = True
