"""What defines a table: its entry type, keys, merge, tombstones and reactions (Garage `schema.rs`).

Adding a table is one new module that subclasses `TableSchema` — never an edit to the engine.

- Entries are msgspec Structs with a `merge(other) -> entry` that is a CRDT join
  (commutative, associative, idempotent). Stored and sent as `version byte + msgpack`;
  `ENTRY_VERSIONS` maps each version byte to its Struct and `migrate()` lifts an old one to
  the current shape, so stored data is never reinterpreted in place.
- An entry lives at `tree_key = partition_hash(partition key) + sort key`: the partition
  hash is BLAKE2b-256 of the partition key, or the key itself when it is already a 32-byte
  id or hash; the layout partition is its first byte. All entries of one partition key are
  contiguous, so a listing is one ordered range scan.
- `updated(tx, old, new)` runs inside the transaction that changed the entry, so effects on
  other trees (queued inserts into other tables, block refcounts) commit with it or not at
  all (conventions, "Effects in the same transaction, work in a queue").
"""

from __future__ import annotations

import hashlib
from typing import Any, ClassVar, Generic, Protocol, TypeVar

import msgspec

from grange.db import Tx

PartitionKey = bytes | str
SortKey = bytes | str


class Entry(Protocol):
    def merge(self, other: Any) -> Any: ...


E = TypeVar("E")


def blake2b256(data: bytes) -> bytes:
    return hashlib.blake2b(data, digest_size=32).digest()


def key_bytes(key: PartitionKey | SortKey) -> bytes:
    return key.encode() if isinstance(key, str) else bytes(key)


def partition_hash(pk: PartitionKey) -> bytes:
    """32-byte position of a partition key on the ring (design §6)."""
    if isinstance(pk, bytes) and len(pk) == 32:
        return pk
    return blake2b256(key_bytes(pk))


def tree_key(pk: PartitionKey, sk: SortKey) -> bytes:
    return partition_hash(pk) + key_bytes(sk)


class EntryDecodeError(ValueError):
    """Stored or received bytes are not a valid entry of this table."""


class TableSchema(Generic[E]):
    """Subclass per table; instances are stateless apart from what `updated` needs."""

    name: ClassVar[str]
    # version byte → Struct type; the highest version is the current entry type.
    ENTRY_VERSIONS: ClassVar[dict[int, type]]

    def __init__(self) -> None:
        self._current = max(self.ENTRY_VERSIONS)
        self._decoders = {v: msgspec.msgpack.Decoder(t) for v, t in self.ENTRY_VERSIONS.items()}
        self._encoder = msgspec.msgpack.Encoder()

    # ---- keys ----
    def partition_key(self, entry: E) -> PartitionKey:
        raise NotImplementedError

    def sort_key(self, entry: E) -> SortKey:
        return b""

    def tree_key_of(self, entry: E) -> bytes:
        return tree_key(self.partition_key(entry), self.sort_key(entry))

    # ---- CRDT ----
    def merge(self, a: E, b: E) -> E:
        return a.merge(b)  # type: ignore[attr-defined,no-any-return]

    def is_tombstone(self, entry: E) -> bool:
        return False

    # ---- encoding ----
    def encode(self, entry: E) -> bytes:
        return bytes([self._current]) + self._encoder.encode(entry)

    def decode(self, data: bytes) -> E:
        if not data:
            raise EntryDecodeError(f"{self.name}: empty entry")
        decoder = self._decoders.get(data[0])
        if decoder is None:
            raise EntryDecodeError(f"{self.name}: unknown entry version {data[0]}")
        try:
            value = decoder.decode(memoryview(data)[1:])
        except (msgspec.DecodeError, msgspec.ValidationError) as e:
            raise EntryDecodeError(f"{self.name}: {e}") from None
        return self.migrate(data[0], value)

    def migrate(self, version: int, value: Any) -> E:
        """Lift an entry of an older version to the current type (none so far: identity)."""
        return value  # type: ignore[no-any-return]

    # ---- reactions and filters ----
    def updated(self, tx: Tx, old: E | None, new: E | None) -> None:
        """Called inside the transaction that changed an entry (old → new)."""

    def matches_filter(self, entry: E, filter: Any) -> bool:
        return True
