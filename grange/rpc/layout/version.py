# Theory of operation
# -------------------
# A *layout version* is one applied cluster layout: which nodes have a role (zone, capacity
# or gateway, tags), the replication factor `rf`, the zone-redundancy parameter, and the
# ring: for each of the N_PARTITIONS partitions, the `rf` distinct storage nodes that hold
# it. The ring is stored compactly as in Garage (`src/rpc/layout/version.rs`): `node_id_vec`
# lists the nodes (storage nodes first, then gateways) and `ring_assignment[p*rf + i]` is an
# index into it, for i in range(rf).
#
# A version is immutable once applied; it is computed by `assignment.compute_assignment`
# (which finds the largest partition size S and a ring that respects capacities and zone
# redundancy) and is gossiped between nodes inside a `LayoutHistory` (history.py). Because a
# version arrives from the network or from disk, `check()` re-validates every invariant a
# correct computation guarantees, and says WHY in a `LayoutError` when one is broken:
#   - node ids are 64-char lowercase hex; node_id_vec = exactly the nodes with a role,
#     storage nodes (capacity not None, > 0) first;
#   - with no storage node: empty ring, partition size 0 (version 0 is this empty layout);
#   - otherwise: len(ring) = N_PARTITIONS * rf, every entry names a storage node, the rf
#     holders of a partition are distinct and span >= the effective zone redundancy zones,
#     and no node stores more than floor(capacity / partition_size) partitions;
#   - the partition size is optimal: size + 1 is infeasible (same exact flow test the
#     computation uses, on the small grouped graph, so it costs a few milliseconds).
#
# Version 0 is the empty layout; replication_factor is fixed for a whole history (it comes
# from the node configuration). This module is pure: no I/O, no clock, no logging.

from __future__ import annotations

import re

import msgspec

PARTITION_BITS = 8
N_PARTITIONS = 1 << PARTITION_BITS
# Garage stores ring entries as u8: at most 256 storage nodes per layout version.
MAX_STORAGE_NODES = 256

_NODE_ID_RE = re.compile(r"[0-9a-f]{64}")


class LayoutError(Exception):
    """A layout that cannot be computed, applied or accepted; the message says why."""


class NodeRole(msgspec.Struct, frozen=True):
    """The role of one node. capacity None = gateway: it has a role but stores nothing."""

    zone: str
    capacity: int | None
    tags: list[str] = msgspec.field(default_factory=list)

    @property
    def is_gateway(self) -> bool:
        return self.capacity is None


class LayoutParameters(msgspec.Struct, frozen=True):
    """zone_redundancy None means "maximum": min(rf, number of zones among storage nodes)."""

    zone_redundancy: int | None = None


def partition_of(hash32: bytes) -> int:
    """Partition of a 32-byte hash: its first PARTITION_BITS bits (the first byte)."""
    if len(hash32) < 1:
        raise ValueError("partition_of needs a non-empty hash")
    return hash32[0] >> (8 - PARTITION_BITS)


def short_id(node_id: str) -> str:
    """The 16-hex-character prefix operators see (as Garage prints node ids)."""
    return node_id[:16]


def is_valid_node_id(node_id: object) -> bool:
    return isinstance(node_id, str) and _NODE_ID_RE.fullmatch(node_id) is not None


def check_node_id(node_id: object) -> None:
    if not is_valid_node_id(node_id):
        raise LayoutError(f"invalid node id {node_id!r}: expected 64 lowercase hex characters")


def storage_zones(roles: dict[str, NodeRole]) -> list[str]:
    """Sorted zones that contain at least one storage (non-gateway) node."""
    return sorted({r.zone for r in roles.values() if r.capacity is not None})


def effective_zone_redundancy(zone_redundancy: int | None, rf: int, roles: dict[str, NodeRole]) -> int:
    """The zone redundancy actually required: the integer, or min(rf, zones) for "maximum"."""
    if zone_redundancy is None:
        return min(rf, len(storage_zones(roles)))
    return zone_redundancy


class LayoutVersion(msgspec.Struct, frozen=True):
    """One applied layout version (see the theory of operation above)."""

    version: int
    replication_factor: int
    partition_size: int
    parameters: LayoutParameters
    roles: dict[str, NodeRole]
    node_id_vec: list[str]
    ring_assignment: list[int]

    @classmethod
    def empty(cls, replication_factor: int) -> LayoutVersion:
        """Version 0: no roles, no ring, parameters at their default ("maximum")."""
        return cls(
            version=0,
            replication_factor=replication_factor,
            partition_size=0,
            parameters=LayoutParameters(),
            roles={},
            node_id_vec=[],
            ring_assignment=[],
        )

    # ---- accessors ----

    def node_role(self, node: str) -> NodeRole | None:
        return self.roles.get(node)

    def all_nodes(self) -> list[str]:
        """Every node with a role (storage nodes first)."""
        return list(self.node_id_vec)

    def storage_nodes(self) -> list[str]:
        return [
            n for n in self.node_id_vec if (r := self.roles.get(n)) is not None and r.capacity is not None
        ]

    def gateway_nodes(self) -> list[str]:
        return [n for n in self.node_id_vec if (r := self.roles.get(n)) is not None and r.capacity is None]

    def has_ring(self) -> bool:
        return len(self.ring_assignment) == N_PARTITIONS * self.replication_factor

    def nodes_of(self, partition: int) -> list[str]:
        """The rf holders of a partition, in ring order; [] for a layout without a ring."""
        if not 0 <= partition < N_PARTITIONS:
            raise ValueError(f"partition {partition} out of range 0..{N_PARTITIONS - 1}")
        if not self.has_ring():
            return []
        rf = self.replication_factor
        return [self.node_id_vec[i] for i in self.ring_assignment[partition * rf : (partition + 1) * rf]]

    def partitions_of(self, node: str) -> list[int]:
        """Partitions this node stores in this version (ascending)."""
        if not self.has_ring() or node not in self.node_id_vec:
            return []
        idx = self.node_id_vec.index(node)
        rf = self.replication_factor
        return [p for p in range(N_PARTITIONS) if idx in self.ring_assignment[p * rf : (p + 1) * rf]]

    def stored_partitions(self, node: str) -> int:
        if node not in self.node_id_vec:
            return 0
        idx = self.node_id_vec.index(node)
        return sum(1 for i in self.ring_assignment if i == idx)

    def usable_capacity(self, node: str) -> int:
        """Bytes of this node's capacity the layout uses: stored partitions x partition size."""
        return self.stored_partitions(node) * self.partition_size

    def effective_zone_redundancy(self) -> int:
        return effective_zone_redundancy(self.parameters.zone_redundancy, self.replication_factor, self.roles)

    # ---- invariants ----

    def check(self) -> None:
        """Raise LayoutError naming the first broken invariant; return None if all hold."""
        rf = self.replication_factor
        if self.version < 0:
            raise LayoutError(f"layout version number {self.version} is negative")
        if rf < 1:
            raise LayoutError(f"replication factor {rf} is invalid: it must be at least 1")
        zr_param = self.parameters.zone_redundancy
        if zr_param is not None and not 1 <= zr_param <= rf:
            raise LayoutError(f"zone redundancy {zr_param} is invalid: it must be between 1 and rf={rf}")
        for node, role in self.roles.items():
            check_node_id(node)
            if role.capacity is not None and role.capacity <= 0:
                raise LayoutError(
                    f"node {short_id(node)} has capacity {role.capacity}, which is not positive"
                )

        storage = sorted(n for n, r in self.roles.items() if r.capacity is not None)
        if len(set(self.node_id_vec)) != len(self.node_id_vec):
            raise LayoutError("node_id_vec lists a node twice")
        if sorted(self.node_id_vec) != sorted(self.roles):
            raise LayoutError("node_id_vec does not list exactly the nodes that have a role")
        if sorted(self.node_id_vec[: len(storage)]) != storage:
            raise LayoutError("node_id_vec must list storage nodes before gateway nodes")

        if not storage:
            if self.ring_assignment or self.partition_size != 0:
                raise LayoutError(
                    "a layout without storage nodes must have an empty ring and partition size 0"
                )
            return

        if len(storage) > MAX_STORAGE_NODES:
            raise LayoutError(
                f"layout has {len(storage)} storage nodes, more than the maximum {MAX_STORAGE_NODES}"
            )
        if len(storage) < rf:
            raise LayoutError(
                f"replication factor {rf} needs at least {rf} storage nodes, layout has {len(storage)}"
            )
        expected_len = N_PARTITIONS * rf
        if len(self.ring_assignment) != expected_len:
            raise LayoutError(
                f"ring has {len(self.ring_assignment)} entries instead of {expected_len} ({N_PARTITIONS} x rf={rf})"
            )
        if self.partition_size < 1:
            raise LayoutError(
                f"partition size {self.partition_size} is invalid for a layout with storage nodes"
            )

        zones = storage_zones(self.roles)
        zr = self.effective_zone_redundancy()
        if zr > len(zones):
            raise LayoutError(
                f"zone redundancy {zr} needs at least {zr} zones, layout has {len(zones)} ({', '.join(zones)})"
            )
        n_storage = len(storage)
        usage = [0] * n_storage
        for p in range(N_PARTITIONS):
            holders = self.ring_assignment[p * rf : (p + 1) * rf]
            for i in holders:
                if not 0 <= i < n_storage:
                    raise LayoutError(f"partition {p} is assigned to index {i}, which is not a storage node")
                usage[i] += 1
            if len(set(holders)) != rf:
                raise LayoutError(f"partition {p} does not have {rf} distinct holders")
            p_zones = {self.roles[self.node_id_vec[i]].zone for i in holders}
            if len(p_zones) < zr:
                raise LayoutError(
                    f"partition {p} spans {len(p_zones)} zones, fewer than zone redundancy {zr}"
                )
        for i, used in enumerate(usage):
            node = self.node_id_vec[i]
            cap = self.roles[node].capacity
            assert cap is not None  # storage nodes come first, checked above
            if used * self.partition_size > cap:
                raise LayoutError(
                    f"node {short_id(node)} stores {used} partitions of {self.partition_size} bytes, "
                    f"more than its capacity {cap}"
                )

        # Optimality: the computation picks the largest feasible partition size. Imported
        # here because assignment.py builds on the types of this module.
        from .assignment import partition_size_feasible

        caps = [self.roles[n].capacity or 0 for n in storage]
        node_zones = [self.roles[n].zone for n in storage]
        if partition_size_feasible(caps, node_zones, rf, zr, self.partition_size + 1):
            raise LayoutError(
                f"partition size {self.partition_size} is not optimal: {self.partition_size + 1} is feasible"
            )
