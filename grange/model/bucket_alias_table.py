"""Global bucket aliases (full copy): name → bucket id, last writer wins (Garage `bucket_alias_table.rs`)."""

from __future__ import annotations

from typing import ClassVar

import msgspec

from grange.table.crdt import Lww
from grange.table.schema import TableSchema


class BucketAlias(msgspec.Struct, frozen=True, array_like=True):
    name: str
    state: Lww[bytes | None]  # bucket id, or None once the alias was removed

    def merge(self, other: BucketAlias) -> BucketAlias:
        return BucketAlias(self.name, self.state.merge(other.state))

    def bucket_id(self) -> bytes | None:
        return self.state.get()


class BucketAliasTable(TableSchema[BucketAlias]):
    name: ClassVar[str] = "bucket_alias"
    ENTRY_VERSIONS: ClassVar[dict[int, type]] = {1: BucketAlias}

    def partition_key(self, entry: BucketAlias) -> str:
        return entry.name

    def is_tombstone(self, entry: BucketAlias) -> bool:
        return entry.state.get() is None
