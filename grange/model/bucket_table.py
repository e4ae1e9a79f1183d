"""The bucket table (full copy): a bucket's id, and its parameters (Garage `bucket_table.rs`).

Partition key: the bucket's 32-byte random id; no sort key. A deleted bucket keeps its
entry as a tombstone (`state` Deleted) until GC.
"""

from __future__ import annotations

from typing import ClassVar

import msgspec

from grange.table.crdt import Deletable, Lww, LwwMap
from grange.table.schema import TableSchema


class BucketKeyPerm(msgspec.Struct, frozen=True, array_like=True):
    """Permissions of one key on one bucket; the newer timestamp wins (ties: union)."""

    timestamp: int
    allow_read: bool
    allow_write: bool
    allow_owner: bool

    def merge(self, other: BucketKeyPerm) -> BucketKeyPerm:
        if self.timestamp != other.timestamp:
            return self if self.timestamp > other.timestamp else other
        return BucketKeyPerm(self.timestamp, self.allow_read or other.allow_read,
                             self.allow_write or other.allow_write, self.allow_owner or other.allow_owner)

    def is_any(self) -> bool:
        return self.allow_read or self.allow_write or self.allow_owner


class BucketQuotas(msgspec.Struct, frozen=True, array_like=True):
    max_size: int | None = None
    max_objects: int | None = None


class BucketParams(msgspec.Struct, frozen=True, array_like=True):
    creation_date: int
    authorized_keys: LwwMap[str, BucketKeyPerm]
    aliases: LwwMap[str, bool]  # global aliases pointing here (true = active)
    local_aliases: LwwMap[tuple[str, str], bool]  # (key id, alias) → active
    website_config: Lww[bytes | None]  # encoded website config, None = no website
    quotas: Lww[BucketQuotas]

    def merge(self, other: BucketParams) -> BucketParams:
        return BucketParams(
            min(self.creation_date, other.creation_date),
            self.authorized_keys.merge(other.authorized_keys),
            self.aliases.merge(other.aliases),
            self.local_aliases.merge(other.local_aliases),
            self.website_config.merge(other.website_config),
            self.quotas.merge(other.quotas),
        )

    @classmethod
    def new(cls, now_ms: int) -> BucketParams:
        return cls(now_ms, LwwMap(), LwwMap(), LwwMap(), Lww(0, None), Lww(0, BucketQuotas()))


class Bucket(msgspec.Struct, frozen=True, array_like=True):
    id: bytes
    state: Deletable[BucketParams]

    def merge(self, other: Bucket) -> Bucket:
        return Bucket(self.id, self.state.merge(other.state))

    def params(self) -> BucketParams | None:
        return self.state.get()

    def is_deleted(self) -> bool:
        return self.state.is_deleted()


class BucketTable(TableSchema[Bucket]):
    name: ClassVar[str] = "bucket_v2"
    ENTRY_VERSIONS: ClassVar[dict[int, type]] = {1: Bucket}

    def partition_key(self, entry: Bucket) -> bytes:
        return entry.id

    def is_tombstone(self, entry: Bucket) -> bool:
        return entry.is_deleted()

    def matches_filter(self, entry: Bucket, filter: object) -> bool:
        return filter != "live" or not entry.is_deleted()
