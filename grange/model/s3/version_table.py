"""Versions (sharded): version uuid → the blocks of one object version (Garage `version_table.rs`).

`blocks` maps (part number, offset) → (block hash, size). A deleted version is a tombstone
that forgets its blocks; becoming deleted queues the deletion of its block refs in the same
transaction (`updated`).
"""

from __future__ import annotations

from typing import TYPE_CHECKING, ClassVar

import msgspec

from grange.db import Tx
from grange.table.crdt import Bool, CrdtMap, Lww
from grange.table.schema import TableSchema

if TYPE_CHECKING:
    from grange.table.data import TableData


class VersionBlock(msgspec.Struct, frozen=True, array_like=True):
    hash: bytes
    size: int

    def merge(self, other: VersionBlock) -> VersionBlock:
        return self if (self.hash, self.size) >= (other.hash, other.size) else other


class Version(msgspec.Struct, frozen=True, array_like=True):
    uuid: bytes
    deleted: Bool
    blocks: CrdtMap[tuple[int, int], VersionBlock]  # (part number, offset) → block
    part_etags: CrdtMap[int, Lww[str]]  # multipart: part number → etag
    bucket_id: bytes  # backlink to the object (or upload)
    key: str

    def merge(self, other: Version) -> Version:
        deleted = self.deleted.merge(other.deleted)
        if deleted.get():
            return Version(self.uuid, deleted, CrdtMap(), CrdtMap(), self.bucket_id, self.key)
        return Version(self.uuid, deleted, self.blocks.merge(other.blocks), self.part_etags.merge(other.part_etags),
                       self.bucket_id, self.key)

    @classmethod
    def new(cls, uuid: bytes, bucket_id: bytes, key: str) -> Version:
        return cls(uuid, Bool(False), CrdtMap(), CrdtMap(), bucket_id, key)

    @classmethod
    def deleted_version(cls, uuid: bytes, bucket_id: bytes, key: str) -> Version:
        return cls(uuid, Bool(True), CrdtMap(), CrdtMap(), bucket_id, key)

    def ordered_blocks(self) -> list[tuple[tuple[int, int], VersionBlock]]:
        return list(self.blocks.items())


class VersionTable(TableSchema[Version]):
    name: ClassVar[str] = "version"
    ENTRY_VERSIONS: ClassVar[dict[int, type]] = {1: Version}

    def __init__(self) -> None:
        super().__init__()
        self.block_ref_data: TableData | None = None

    def partition_key(self, entry: Version) -> bytes:
        return entry.uuid

    def is_tombstone(self, entry: Version) -> bool:
        return entry.deleted.get()

    def updated(self, tx: Tx, old: Version | None, new: Version | None) -> None:
        from grange.model.s3.block_ref_table import BlockRef

        if old is None or new is None or self.block_ref_data is None:
            return
        if new.deleted.get() and not old.deleted.get():
            for _, block in old.blocks.items():
                self.block_ref_data.queue_insert(tx, BlockRef(block.hash, old.uuid, Bool(True)))
