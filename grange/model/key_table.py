"""Access keys (full copy): `GK` + 24 hex id, 64-hex secret, permissions (Garage `key_table.rs`)."""

from __future__ import annotations

from typing import ClassVar

import msgspec

from grange.model.bucket_table import BucketKeyPerm
from grange.table.crdt import Deletable, Lww, LwwMap
from grange.table.schema import TableSchema


class KeyParams(msgspec.Struct, frozen=True, array_like=True):
    secret_key: str
    name: Lww[str]
    allow_create_bucket: Lww[bool]
    authorized_buckets: LwwMap[bytes, BucketKeyPerm]
    local_aliases: LwwMap[str, bytes | None]  # alias → bucket id (None: removed)

    def merge(self, other: KeyParams) -> KeyParams:
        return KeyParams(
            max(self.secret_key, other.secret_key),  # never differs for one key id
            self.name.merge(other.name),
            self.allow_create_bucket.merge(other.allow_create_bucket),
            self.authorized_buckets.merge(other.authorized_buckets),
            self.local_aliases.merge(other.local_aliases),
        )


class Key(msgspec.Struct, frozen=True, array_like=True):
    key_id: str
    state: Deletable[KeyParams]

    def merge(self, other: Key) -> Key:
        return Key(self.key_id, self.state.merge(other.state))

    def params(self) -> KeyParams | None:
        return self.state.get()

    def is_deleted(self) -> bool:
        return self.state.is_deleted()


class KeyTable(TableSchema[Key]):
    name: ClassVar[str] = "key"
    ENTRY_VERSIONS: ClassVar[dict[int, type]] = {1: Key}

    def partition_key(self, entry: Key) -> str:
        return entry.key_id

    def is_tombstone(self, entry: Key) -> bool:
        return entry.is_deleted()

    def matches_filter(self, entry: Key, filter: object) -> bool:
        return filter != "live" or not entry.is_deleted()
