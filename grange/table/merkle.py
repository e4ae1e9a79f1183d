"""Per-partition Merkle trees over a table's entries (Garage `src/table/merkle.rs`).

Anti-entropy compares these trees between the holders of a partition: equal root hashes
mean equal data, and where they differ the sync descends only into differing children, so
two replicas that differ by a few entries find them in O(depth) round trips.

Database trees (for a table named T):

  T:merkle_todo   key   = tree_key of an entry: partition_hash (32 bytes) + sort_key, the
                          same key as in T:data
                  value = blake2b256(encoded entry) (32 bytes) if the entry is present,
                          b"" if it was deleted
                  Written by the table layer (`mark_todo`) in the SAME transaction as the
                  write to T:data; drained by `MerkleUpdater.update_pending`.

  T:merkle_tree   key   = bytes([partition]) + prefix, where partition = tree_key[0]
                          (one of PARTITION_COUNT layout partitions) and prefix = the first
                          `depth` bytes of khash = blake2b256(tree_key). The root of a
                          partition is the one-byte key bytes([partition]).
                  value = encode_node(node): msgpack [NODE_FORMAT_VERSION, node] where node
                          is one of (array-like, tagged)
                              Empty         [0]
                              Intermediate  [1, [[byte, child_hash], ...]]  sorted by byte
                              Leaf          [2, tree_key, value_hash]
                          An absent key is the Empty node; Empty is never stored.

Node hash: blake2b256(encode_node(node)), except Empty whose hash is EMPTY_HASH (32 zero
bytes) by convention, so that an empty subtree compares equal without being read.

Shape (history-independent): the node at (partition, prefix) over the set S of entries of
that partition whose khash starts with prefix is
    Empty                                   if S is empty,
    Leaf(tree_key, value_hash)              if S has one entry,
    Intermediate(child byte -> child hash)  if S has two or more, one child per next khash
                                            byte that occurs in S (possibly a single child
                                            when all of S share that byte).
So an Intermediate never has a single child that is a Leaf, and the tree, hence every node
hash, depends only on the set of (tree_key, value_hash) pairs, not on the order of writes:
that is what lets two replicas compare roots. `_update_rec` keeps this shape: it splits a
Leaf into an Intermediate when a second key arrives under it, and on removal lifts a lone
Leaf child up into its parent (repeatedly, up the path). `check()` verifies the shape.

Draining: each todo item is applied in its own transaction, which reads the current todo
value, updates the path from the partition root down and the hashes back up, then removes
the todo item only if it still holds the value that was applied (compare-and-delete): if a
newer write replaced it meanwhile, it stays and is applied on a later pass. Our engines
serialise transactions so the compare cannot fail today; it is kept so that correctness does
not depend on that (Garage does the delete in a second transaction).

Known limits: a corrupted stored node raises MerkleCorrupted and the item stays in the todo
tree (the worker will keep failing on it); the repair is to clear T:merkle_tree and re-queue
every entry of T:data (Garage's `repair merkle`), not implemented here.

When changing this code, keep in step: the layout above, NODE_FORMAT_VERSION (a changed node
shape is a new format with a migration, and changes every hash, so all replicas must
rebuild), `mark_todo` (the todo value format the table layer writes), and the oracle in
tests/test_merkle.py.
"""

from __future__ import annotations

import hashlib
import logging
from collections.abc import Callable
from typing import Annotated

import msgspec

from grange.db import Db, Tree, Tx

__all__ = [
    "EMPTY_HASH",
    "NODE_FORMAT_VERSION",
    "PARTITION_COUNT",
    "Empty",
    "Intermediate",
    "Leaf",
    "MerkleCorrupted",
    "MerkleNode",
    "MerkleUpdater",
    "blake2b256",
    "decode_node",
    "encode_node",
    "node_hash",
    "node_key",
    "partition_of",
    "todo_value",
]

log = logging.getLogger("grange.table.merkle")

PARTITION_COUNT = 256  # partition = tree_key[0], as for the layout's partitions (design §7)
HASH_LEN = 32
EMPTY_HASH = bytes(HASH_LEN)
NODE_FORMAT_VERSION = 1

Hash32 = Annotated[bytes, msgspec.Meta(min_length=HASH_LEN, max_length=HASH_LEN)]
Byte = Annotated[int, msgspec.Meta(ge=0, le=255)]


class MerkleCorrupted(Exception):
    """A stored Merkle node or todo value cannot be decoded or breaks the tree's invariants."""


def blake2b256(data: bytes) -> bytes:
    return hashlib.blake2b(data, digest_size=HASH_LEN).digest()


def partition_of(tree_key: bytes) -> int:
    """The layout partition of an entry: the first byte of its partition hash."""
    return tree_key[0]


def node_key(partition: int, prefix: bytes) -> bytes:
    """Key of a node in T:merkle_tree."""
    return bytes((partition,)) + prefix


def todo_value(encoded_entry: bytes | None) -> bytes:
    """The T:merkle_todo value for an entry: hash of its stored encoding, b"" if deleted."""
    return b"" if encoded_entry is None else blake2b256(encoded_entry)


# ---------------------------------------------------------------------------------------
# Nodes


class Empty(msgspec.Struct, frozen=True, array_like=True, tag=0):
    """No entry under this prefix."""


class Intermediate(msgspec.Struct, frozen=True, array_like=True, tag=1):
    """Two or more entries under this prefix: (next khash byte, child hash), sorted by byte."""

    children: tuple[tuple[Byte, Hash32], ...]

    def __post_init__(self) -> None:
        if not self.children:
            raise ValueError("Intermediate node without children")
        for (a, _), (b, _) in zip(self.children, self.children[1:], strict=False):
            if not a < b:
                raise ValueError("Intermediate children must be strictly sorted by byte")

    def child(self, byte: int) -> bytes:
        """Hash of the child at `byte`, EMPTY_HASH if there is none."""
        for b, h in self.children:
            if b == byte:
                return h
        return EMPTY_HASH


class Leaf(msgspec.Struct, frozen=True, array_like=True, tag=2):
    """Exactly one entry under this prefix: its tree key and the hash of its encoding."""

    key: Annotated[bytes, msgspec.Meta(min_length=HASH_LEN)]
    value_hash: Hash32


MerkleNode = Empty | Intermediate | Leaf


class _Stored(msgspec.Struct, array_like=True):
    v: int
    node: msgspec.Raw


class _StoredV1(msgspec.Struct, array_like=True):
    v: int
    node: MerkleNode


def encode_node(node: MerkleNode) -> bytes:
    """The stored (and hashed) encoding of a node, with its format version."""
    return msgspec.msgpack.encode(_StoredV1(NODE_FORMAT_VERSION, node))


def decode_node(data: bytes) -> MerkleNode:
    """Inverse of encode_node; raises MerkleCorrupted on anything else."""
    try:
        stored = msgspec.msgpack.decode(data, type=_Stored)
        if stored.v != NODE_FORMAT_VERSION:
            raise MerkleCorrupted(f"unknown Merkle node format version {stored.v}")
        return msgspec.msgpack.decode(stored.node, type=MerkleNode)  # type: ignore[arg-type, no-any-return]
    except (msgspec.DecodeError, ValueError) as e:
        raise MerkleCorrupted(f"malformed Merkle node: {e}") from e


def node_hash(node: MerkleNode) -> bytes:
    """The hash a parent records for `node`; EMPTY_HASH for Empty."""
    if isinstance(node, Empty):
        return EMPTY_HASH
    return blake2b256(encode_node(node))


def _set_child(children: list[tuple[int, bytes]], byte: int, h: bytes) -> None:
    """Set or (if h is EMPTY_HASH) remove the child at `byte`, keeping the list sorted."""
    for i, (b, _) in enumerate(children):
        if b == byte:
            if h == EMPTY_HASH:
                del children[i]
            else:
                children[i] = (byte, h)
            return
        if b > byte:
            if h != EMPTY_HASH:
                children.insert(i, (byte, h))
            return
    if h != EMPTY_HASH:
        children.append((byte, h))


# ---------------------------------------------------------------------------------------
# Updater


class MerkleUpdater:
    """Maintains T:merkle_tree from T:merkle_todo; answers the node reads of anti-entropy.

    Synchronous and thread-safe as far as the engine is (the async worker calls
    `update_pending` in a thread). Run a single updater per table: two draining the same
    todo tree concurrently would still be correct only because transactions are serialised.

    `key_hash` is for tests only: a weaker hash than blake2b256 forces deep shared prefixes.
    It must stay injective on the keys used and return HASH_LEN bytes.
    """

    def __init__(self, db: Db, table: str, *, key_hash: Callable[[bytes], bytes] = blake2b256) -> None:
        self.db = db
        self.table = table
        self.todo: Tree = db.open_tree(f"{table}:merkle_todo")
        self.merkle_tree: Tree = db.open_tree(f"{table}:merkle_tree")
        self._khash = key_hash

    # -- writing the todo (table layer) --

    def mark_todo(self, tx: Tx, tree_key: bytes, encoded_entry: bytes | None) -> None:
        """Record, inside the caller's data transaction, that entry `tree_key` changed.

        `encoded_entry` is the stored encoding of the new entry, None if it was deleted.
        """
        if len(tree_key) < HASH_LEN:
            raise ValueError(f"tree key shorter than a partition hash: {tree_key.hex()}")
        tx.insert(self.todo, tree_key, todo_value(encoded_entry))

    def todo_len(self) -> int:
        return self.todo.len()

    def merkle_tree_len(self) -> int:
        return self.merkle_tree.len()

    # -- draining --

    def update_pending(self, max_items: int) -> int:
        """Apply up to `max_items` todo items, each in its own transaction; return how many.

        An item replaced by a newer write while it was being applied stays in the todo tree
        (see the module docstring), so a caller loops until this returns 0.
        """
        batch = [k for k, _ in self.todo.range(limit=max_items)]
        done = 0
        for tree_key in batch:
            if self.db.transaction(lambda tx, k=tree_key: self._update_item(tx, k)):
                done += 1
        return done

    def _update_item(self, tx: Tx, tree_key: bytes) -> bool:
        vhash = tx.get(self.todo, tree_key)
        if vhash is None:
            return False  # applied by someone else since we listed it
        if len(vhash) not in (0, HASH_LEN) or len(tree_key) < HASH_LEN:
            raise MerkleCorrupted(
                f"{self.table}: bad todo item {tree_key.hex()} -> {vhash.hex()}"
            )
        new_vhash = vhash if vhash else None
        khash = self._khash(tree_key)
        self._update_rec(tx, tree_key, khash, node_key(partition_of(tree_key), b""), 0, new_vhash)
        # Compare-and-delete: only the value we applied may leave the queue.
        if tx.get(self.todo, tree_key) == vhash:
            tx.remove(self.todo, tree_key)
        else:
            log.debug("%s: Merkle todo item %s changed while applied, kept", self.table, tree_key.hex())
        return True

    def _update_rec(
        self, tx: Tx, k: bytes, khash: bytes, nkey: bytes, depth: int, new_vhash: bytes | None
    ) -> bytes | None:
        """Apply (k -> new_vhash, None = absent) to the subtree at `nkey` (`depth` bytes of
        khash below the partition root). Returns the subtree's new hash, None if unchanged."""
        node = self._read_tx(tx, nkey)
        mutate: MerkleNode | None
        if isinstance(node, Empty):
            mutate = None if new_vhash is None else Leaf(k, new_vhash)
        elif isinstance(node, Intermediate):
            byte = khash[depth]
            sub = self._update_rec(tx, k, khash, nkey + bytes((byte,)), depth + 1, new_vhash)
            if sub is None:
                mutate = None
            else:
                children = list(node.children)
                _set_child(children, byte, sub)
                mutate = self._collapse(tx, nkey, children)
        elif node.key == k:
            if new_vhash == node.value_hash:
                mutate = None
            elif new_vhash is None:
                mutate = Empty()
            else:
                mutate = Leaf(k, new_vhash)
        elif new_vhash is None:
            mutate = None  # deleting a key that is not here: the leaf is someone else's
        else:
            # Split: push the existing leaf one level down, then insert ours beside it
            # (recursing again, into a single-child Intermediate, while the khashes agree).
            ex_khash = self._khash(node.key)
            assert ex_khash[:depth] == khash[:depth], "leaf stored under a foreign prefix"
            assert depth < HASH_LEN, "two keys with the same khash"
            children = []
            ex_byte = ex_khash[depth]
            h1 = self._update_rec(tx, node.key, ex_khash, nkey + bytes((ex_byte,)), depth + 1, node.value_hash)
            assert h1 is not None
            _set_child(children, ex_byte, h1)
            byte = khash[depth]
            h2 = self._update_rec(tx, k, khash, nkey + bytes((byte,)), depth + 1, new_vhash)
            assert h2 is not None
            _set_child(children, byte, h2)
            mutate = Intermediate(tuple(children))
        if mutate is None:
            return None
        return self._put_tx(tx, nkey, mutate)

    def _collapse(self, tx: Tx, nkey: bytes, children: list[tuple[int, bytes]]) -> MerkleNode:
        """The node at `nkey` once its children are `children`: a lone Leaf child moves up."""
        if not children:
            log.warning("%s: Merkle node %s lost all its children; should not happen", self.table, nkey.hex())
            return Empty()
        if len(children) > 1:
            return Intermediate(tuple(children))
        sub_key = nkey + bytes((children[0][0],))
        sub = self._read_tx(tx, sub_key)
        if isinstance(sub, Leaf):
            tx.remove(self.merkle_tree, sub_key)
            return sub
        if isinstance(sub, Empty):
            log.warning("%s: Merkle node %s has a single child that is empty; should not happen",
                        self.table, nkey.hex())
            return Empty()
        return Intermediate(tuple(children))  # two or more entries further down

    def _read_tx(self, tx: Tx, nkey: bytes) -> MerkleNode:
        raw = tx.get(self.merkle_tree, nkey)
        return Empty() if raw is None else decode_node(raw)

    def _put_tx(self, tx: Tx, nkey: bytes, node: MerkleNode) -> bytes:
        if isinstance(node, Empty):
            tx.remove(self.merkle_tree, nkey)
            return EMPTY_HASH
        data = encode_node(node)
        tx.insert(self.merkle_tree, nkey, data)
        return blake2b256(data)

    # -- reading (anti-entropy) --

    def get_node(self, partition: int, prefix: bytes) -> MerkleNode:
        """The node at (partition, prefix); Empty if nothing is stored there."""
        raw = self.merkle_tree.get(node_key(partition, prefix))
        return Empty() if raw is None else decode_node(raw)

    def root_hash(self, partition: int) -> bytes:
        """Hash of the partition's root: equal on two replicas iff they hold the same entries."""
        raw = self.merkle_tree.get(node_key(partition, b""))
        return EMPTY_HASH if raw is None else blake2b256(raw)

    def leaves_under(self, partition: int, prefix: bytes) -> list[tuple[bytes, bytes]]:
        """(tree_key, value_hash) of every entry under (partition, prefix), in khash order."""
        node = self.get_node(partition, prefix)
        if isinstance(node, Leaf):
            return [(node.key, node.value_hash)]
        if isinstance(node, Intermediate):
            out: list[tuple[bytes, bytes]] = []
            for b, _ in node.children:
                out.extend(self.leaves_under(partition, prefix + bytes((b,))))
            return out
        return []

    def check(self, partition: int) -> None:
        """Verify the partition's tree has the shape of the module docstring; raise if not.

        Checks child hashes against stored children, leaves against their khash prefix and
        partition, that no Intermediate has a lone Leaf child, and that no stored node is
        unreachable from the root. Costs a full scan of the partition: for tests and repair.
        """
        problems: list[str] = []
        reachable: set[bytes] = set()

        def walk(prefix: bytes) -> tuple[bytes, int]:
            nkey = node_key(partition, prefix)
            node = self.get_node(partition, prefix)
            if isinstance(node, Empty):
                return EMPTY_HASH, 0
            reachable.add(nkey)
            if isinstance(node, Leaf):
                if partition_of(node.key) != partition:
                    problems.append(f"leaf {node.key.hex()} in partition {partition}")
                if self._khash(node.key)[: len(prefix)] != prefix:
                    problems.append(f"leaf {node.key.hex()} under foreign prefix {prefix.hex()}")
                return node_hash(node), 1
            count = 0
            for b, h in node.children:
                sub_hash, sub_count = walk(prefix + bytes((b,)))
                count += sub_count
                if sub_hash != h:
                    problems.append(f"child {b:02x} of {prefix.hex() or 'root'}: hash mismatch")
                if len(node.children) == 1 and isinstance(self.get_node(partition, prefix + bytes((b,))), Leaf):
                    problems.append(f"node {prefix.hex() or 'root'} has a lone leaf child")
            if count < 2:
                problems.append(f"intermediate {prefix.hex() or 'root'} covers {count} entries")
            return node_hash(node), count

        walk(b"")
        end = bytes((partition + 1,)) if partition + 1 < PARTITION_COUNT else None
        for k, _ in self.merkle_tree.range(bytes((partition,)), end):
            if k not in reachable:
                problems.append(f"unreachable node {k.hex()}")
        if problems:
            raise MerkleCorrupted(f"{self.table} partition {partition}: " + "; ".join(problems))
