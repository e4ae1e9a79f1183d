"""Multipart uploads (sharded): upload id → parts (Garage `mpu_table.rs`).

Each uploaded part is its own version (`version` table) keyed (part number, timestamp) here,
so re-uploading a part never overwrites data in place; completion picks the newest of each.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, ClassVar

import msgspec

from grange.db import Tx
from grange.table.crdt import Bool, CrdtMap
from grange.table.schema import TableSchema

if TYPE_CHECKING:
    from grange.table.data import TableData


class MpuPart(msgspec.Struct, frozen=True, array_like=True):
    version: bytes
    etag: str | None = None
    size: int | None = None

    def merge(self, other: MpuPart) -> MpuPart:
        return MpuPart(self.version, self.etag or other.etag,
                       self.size if self.size is not None else other.size)


class MultipartUpload(msgspec.Struct, frozen=True, array_like=True):
    upload_id: bytes
    timestamp: int
    deleted: Bool
    parts: CrdtMap[tuple[int, int], MpuPart]  # (part number, timestamp) → part
    bucket_id: bytes
    key: str

    def merge(self, other: MultipartUpload) -> MultipartUpload:
        deleted = self.deleted.merge(other.deleted)
        parts = CrdtMap() if deleted.get() else self.parts.merge(other.parts)
        return MultipartUpload(self.upload_id, min(self.timestamp, other.timestamp), deleted, parts,
                               self.bucket_id, self.key)

    @classmethod
    def new(cls, upload_id: bytes, timestamp: int, bucket_id: bytes, key: str) -> MultipartUpload:
        return cls(upload_id, timestamp, Bool(False), CrdtMap(), bucket_id, key)

    @classmethod
    def deleted_upload(cls, upload_id: bytes, bucket_id: bytes, key: str) -> MultipartUpload:
        return cls(upload_id, 0, Bool(True), CrdtMap(), bucket_id, key)


class MpuTable(TableSchema[MultipartUpload]):
    name: ClassVar[str] = "multipart_upload"
    ENTRY_VERSIONS: ClassVar[dict[int, type]] = {1: MultipartUpload}

    def __init__(self) -> None:
        super().__init__()
        self.version_data: TableData | None = None

    def partition_key(self, entry: MultipartUpload) -> bytes:
        return entry.upload_id

    def is_tombstone(self, entry: MultipartUpload) -> bool:
        return entry.deleted.get()

    def updated(self, tx: Tx, old: MultipartUpload | None, new: MultipartUpload | None) -> None:
        from grange.model.s3.version_table import Version

        if old is None or new is None or self.version_data is None:
            return
        if new.deleted.get() and not old.deleted.get():
            for _, part in old.parts.items():
                self.version_data.queue_insert(tx, Version.deleted_version(part.version, old.bucket_id, old.key))
