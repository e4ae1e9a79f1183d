"""Objects (sharded): bucket id / object key → list of versions (Garage `object_table.rs`).

An object entry holds the versions that still matter: every version from the last complete
one on (older ones are dropped by the merge, since a complete version supersedes them).
Version states join Uploading < Complete, Uploading < Aborted, and Aborted wins over
Complete (an abort that raced a completion keeps the data unreferenced, never half-used).

Reaction (`updated`): a version that disappears from the entry or becomes Aborted gets its
`version` entry marked deleted through the version table's insert queue, in the same
transaction; that in turn drops its block refs. Per-bucket counters are updated too.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, ClassVar

import msgspec

from grange.db import Tx
from grange.table.crdt import merge as crdt_merge
from grange.table.schema import TableSchema

if TYPE_CHECKING:
    from grange.model.counters import BucketCounters
    from grange.table.data import TableData

# Objects smaller than this are stored inline in the object entry (design §8).
INLINE_THRESHOLD = 3072


class ObjectMeta(msgspec.Struct, frozen=True, array_like=True):
    headers: tuple[tuple[str, str], ...]
    size: int
    etag: str


class DeleteMarker(msgspec.Struct, frozen=True, array_like=True, tag="del"):
    pass


class InlineData(msgspec.Struct, frozen=True, array_like=True, tag="inline"):
    meta: ObjectMeta
    data: bytes


class FirstBlock(msgspec.Struct, frozen=True, array_like=True, tag="block"):
    meta: ObjectMeta
    first_block: bytes  # hash of the first block; the version entry lists them all


VersionData = DeleteMarker | InlineData | FirstBlock


class Uploading(msgspec.Struct, frozen=True, array_like=True, tag="uploading"):
    multipart: bool
    headers: tuple[tuple[str, str], ...] = ()


class Complete(msgspec.Struct, frozen=True, array_like=True, tag="complete"):
    data: VersionData


class Aborted(msgspec.Struct, frozen=True, array_like=True, tag="aborted"):
    pass


VersionState = Uploading | Complete | Aborted


def merge_state(a: VersionState, b: VersionState) -> VersionState:
    if isinstance(a, Aborted) or isinstance(b, Aborted):
        return Aborted()
    if isinstance(a, Complete) and isinstance(b, Complete):
        return a if a == b else crdt_merge(a, b)  # equal in practice; deterministic otherwise
    if isinstance(a, Complete):
        return a
    if isinstance(b, Complete):
        return b
    return a if a == b else crdt_merge(a, b)


class ObjectVersion(msgspec.Struct, frozen=True, array_like=True):
    uuid: bytes
    timestamp: int
    state: VersionState

    def sort_key(self) -> tuple[int, bytes]:
        return (self.timestamp, self.uuid)

    def is_complete(self) -> bool:
        return isinstance(self.state, Complete)

    def is_data(self) -> bool:
        """Complete and not a delete marker: this version is the object's content."""
        return isinstance(self.state, Complete) and not isinstance(self.state.data, DeleteMarker)

    def is_uploading(self, multipart: bool | None = None) -> bool:
        return isinstance(self.state, Uploading) and (multipart is None or self.state.multipart == multipart)


class Object(msgspec.Struct, frozen=True, array_like=True):
    bucket_id: bytes
    key: str
    versions: tuple[ObjectVersion, ...]

    def merge(self, other: Object) -> Object:
        by_key: dict[tuple[int, bytes], ObjectVersion] = {v.sort_key(): v for v in self.versions}
        for v in other.versions:
            k = v.sort_key()
            cur = by_key.get(k)
            by_key[k] = v if cur is None else ObjectVersion(v.uuid, v.timestamp, merge_state(cur.state, v.state))
        versions = [by_key[k] for k in sorted(by_key)]
        last_complete = max((i for i, v in enumerate(versions) if v.is_complete()), default=0)
        return Object(self.bucket_id, self.key, tuple(versions[last_complete:]))

    def last_data(self) -> ObjectVersion | None:
        """The current content: the last complete version, unless it is a delete marker."""
        for v in reversed(self.versions):
            if v.is_complete():
                return v if v.is_data() else None
        return None


class ObjectTable(TableSchema[Object]):
    name: ClassVar[str] = "object"
    ENTRY_VERSIONS: ClassVar[dict[int, type]] = {1: Object}

    def __init__(self) -> None:
        super().__init__()
        self.version_data: TableData | None = None  # set by the model wiring
        self.mpu_data: TableData | None = None
        self.counters: BucketCounters | None = None

    def partition_key(self, entry: Object) -> bytes:
        return entry.bucket_id

    def sort_key(self, entry: Object) -> str:
        return entry.key

    def is_tombstone(self, entry: Object) -> bool:
        return (len(entry.versions) == 1 and isinstance(entry.versions[0].state, Complete)
                and isinstance(entry.versions[0].state.data, DeleteMarker))

    def matches_filter(self, entry: Object, filter: object) -> bool:
        if filter == "data":  # listing: only objects with content
            return entry.last_data() is not None
        if filter == "uploading":  # multipart listing
            return any(v.is_uploading(multipart=True) for v in entry.versions)
        return True

    def updated(self, tx: Tx, old: Object | None, new: Object | None) -> None:
        from grange.model.s3.mpu_table import MultipartUpload
        from grange.model.s3.version_table import Version

        # Only a change between two present entries deletes versions: an entry removed from
        # this node (offload after a layout change, GC of a tombstone) still exists elsewhere.
        if old is not None and new is not None:
            still = {v.sort_key(): v for v in new.versions}
            for v in old.versions:
                nv = still.get(v.sort_key())
                newly_gone = nv is None or (isinstance(nv.state, Aborted) and not isinstance(v.state, Aborted))
                if not newly_gone:
                    continue
                if isinstance(v.state, Complete) and isinstance(v.state.data, DeleteMarker):
                    continue
                if self.version_data is not None:
                    self.version_data.queue_insert(tx, Version.deleted_version(v.uuid, old.bucket_id, old.key))
                if v.is_uploading(multipart=True) and self.mpu_data is not None:
                    self.mpu_data.queue_insert(tx, MultipartUpload.deleted_upload(v.uuid, old.bucket_id, old.key))
        if self.counters is not None:
            bucket = (new or old).bucket_id  # type: ignore[union-attr]
            self.counters.count(tx, bucket, _counts(old), _counts(new))


def _counts(obj: Object | None) -> dict[str, int]:
    if obj is None:
        return {"objects": 0, "bytes": 0, "unfinished_uploads": 0}
    last = obj.last_data()
    size = 0
    if last is not None and isinstance(last.state, Complete) and not isinstance(last.state.data, DeleteMarker):
        size = last.state.data.meta.size
    return {
        "objects": 1 if last is not None else 0,
        "bytes": size,
        "unfinished_uploads": sum(1 for v in obj.versions if v.is_uploading(multipart=True)),
    }
