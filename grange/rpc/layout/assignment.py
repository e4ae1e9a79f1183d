# Theory of operation
# -------------------
# Given the roles of the nodes (zone, capacity in bytes or None for a gateway), the
# replication factor rf and the zone redundancy zr, `compute_assignment` finds the ring of a
# new layout version the way Garage does (`src/rpc/layout/version.rs`):
#
# 1. Partition size. The largest integer S >= 1 such that every partition can get rf
#    distinct storage nodes spanning >= zr zones while node n holds at most
#    floor(capacity_n / S) partitions. For one S this is a max-flow feasibility test on
#    Garage's graph, per partition p:
#        source -> p_up (zr),  source -> p_down (rf - zr)
#        p_up -> (p, z) (1),   p_down -> (p, z) (rf - zr)     for every zone z
#        (p, z) -> n (1)       for every storage node n of zone z
#        n -> sink (floor(capacity_n / S))
#    A flow of value P * rf (P partitions) is exactly a valid assignment: each (p, z) -> n
#    edge carries at most 1 so holders are distinct, and the zr units of p_up must go to zr
#    different zones. Feasibility is monotone in S, so we binary search S.
#
#    Grouping (exact): while searching S, all partitions are identical, so we search on the
#    graph where the P copies are merged into one (capacities multiplied by P):
#        source -> U (P*zr), source -> D (P*(rf-zr)), U -> z (P), D -> z (P*(rf-zr)),
#        z -> n (P), n -> sink (floor(capacity_n / S)).
#    Summing an integral flow of the full graph over the partitions gives a flow of the same
#    value here; conversely dividing a flow of this graph by P gives a fractional flow of
#    the full graph with the same value, and a graph with integral capacities has an
#    integral max flow equal to its fractional one. So both graphs have the same max flow,
#    and the search costs ~40 flows on a graph of (zones + nodes + 5) vertices.
#    (tests/test_layout.py checks S against the full graph and against brute force.)
#
# 2. Fewest moves. At the optimal S, a min-cost flow on the full graph (networkx
#    network_simplex) with cost 0 on the edges (p, z) -> n where n held p in the previous
#    version and cost 1 elsewhere: its cost is the number of (partition, node) pairs that
#    are new, i.e. the partition copies that must be transferred, and it is minimal among
#    all assignments with the optimal S.
#
# 3. Holder order. Each partition's holders keep their previous position in the ring when
#    they keep the partition; new holders fill the free positions in node_id_vec order.
#
# Determinism: node ids and zones are sorted, graph vertices are integers inserted in a
# fixed order, and networkx's algorithms are deterministic for a given insertion order, so
# the same input always yields the same ring. Pure: no I/O, no clock, no logging.

from __future__ import annotations

from dataclasses import dataclass, field

import networkx as nx
from networkx.algorithms.flow import preflow_push

from .version import (
    MAX_STORAGE_NODES,
    N_PARTITIONS,
    LayoutError,
    LayoutVersion,
    NodeRole,
    check_node_id,
    short_id,
    storage_zones,
)

# Below this partition size the capacities are probably given in the wrong unit, and
# integer rounding starts to cost a visible share of the capacity (Garage warns at 100).
PARTITION_SIZE_WARN_MIN = 100
# Below this share of the total capacity being usable, tell the operator why it might be.
USABLE_SHARE_WARN_PCT = 80.0


@dataclass(frozen=True)
class Assignment:
    """The result of `compute_assignment`: what a new LayoutVersion needs, plus a report."""

    partition_size: int
    node_id_vec: list[str]
    ring_assignment: list[int]
    zone_redundancy: int
    moved: int  # (partition, node) pairs absent from the previous version: copies to transfer
    messages: list[str] = field(default_factory=list)


def format_bytes(n: int) -> str:
    """Decimal units, as Garage prints capacities (1 GB = 10^9 bytes)."""
    if n < 1000:
        return f"{n} B"
    value = float(n)
    for unit in ("KB", "MB", "GB", "TB", "PB", "EB"):
        value /= 1000
        if value < 1000 or unit == "EB":
            return f"{value:.1f} {unit}"
    raise AssertionError("unreachable")


def _validate(
    roles: dict[str, NodeRole], rf: int, zone_redundancy: int | None
) -> tuple[list[str], list[str], list[str], int]:
    """Refuse impossible requests with the reason; return (storage, gateways, zones, zr)."""
    if rf < 1:
        raise LayoutError(f"replication factor {rf} is invalid: it must be at least 1")
    if zone_redundancy is not None and not 1 <= zone_redundancy <= rf:
        raise LayoutError(
            f"zone redundancy {zone_redundancy} is invalid: it must be between 1 and the replication "
            f"factor {rf}, or 'maximum'"
        )
    for node in sorted(roles):
        check_node_id(node)
        role = roles[node]
        if not role.zone:
            raise LayoutError(f"node {short_id(node)} has an empty zone name")
        if role.capacity is not None and role.capacity == 0:
            raise LayoutError(
                f"node {short_id(node)} has zero capacity; use a gateway role (-g) for a node that stores nothing"
            )
        if role.capacity is not None and role.capacity < 0:
            raise LayoutError(f"node {short_id(node)} has negative capacity {role.capacity}")
    storage = sorted(n for n, r in roles.items() if r.capacity is not None)
    gateways = sorted(n for n, r in roles.items() if r.capacity is None)
    if len(storage) > MAX_STORAGE_NODES:
        raise LayoutError(
            f"layout has {len(storage)} storage nodes, more than the maximum {MAX_STORAGE_NODES}"
        )
    if len(storage) < rf:
        extra = f" (gateway nodes store nothing: {len(gateways)} not counted)" if gateways else ""
        raise LayoutError(
            f"replication factor {rf} needs at least {rf} storage nodes, layout has {len(storage)}{extra}"
        )
    zones = storage_zones(roles)
    zr = min(rf, len(zones)) if zone_redundancy is None else zone_redundancy
    if zr > len(zones):
        raise LayoutError(
            f"zone redundancy {zr} needs at least {zr} zones, layout has {len(zones)} ({', '.join(zones)})"
        )
    return storage, gateways, zones, zr


def partition_size_feasible(
    capacities: list[int],
    zones_of_nodes: list[str],
    rf: int,
    zone_redundancy: int,
    partition_size: int,
    n_partitions: int = N_PARTITIONS,
) -> bool:
    """Whether n_partitions partitions of `partition_size` bytes fit (exact; grouped graph)."""
    if partition_size < 1:
        raise ValueError("partition size must be at least 1")
    P, zr = n_partitions, zone_redundancy
    slots = [c // partition_size for c in capacities]
    # Cheap necessary condition first: every node holds each partition at most once.
    if sum(min(s, P) for s in slots) < P * rf:
        return False
    zone_list = sorted(set(zones_of_nodes))
    if len(zone_list) < zr:
        return False
    zone_index = {z: i for i, z in enumerate(zone_list)}
    # Vertices: 0 source, 1 sink, 2 U, 3 D, 4.. zones, then nodes.
    src, sink, up, down = 0, 1, 2, 3
    g = nx.DiGraph()
    g.add_edge(src, up, capacity=P * zr)
    if rf > zr:
        g.add_edge(src, down, capacity=P * (rf - zr))
    for zi in range(len(zone_list)):
        g.add_edge(up, 4 + zi, capacity=P)
        if rf > zr:
            g.add_edge(down, 4 + zi, capacity=P * (rf - zr))
    base = 4 + len(zone_list)
    for ni, (s, z) in enumerate(zip(slots, zones_of_nodes, strict=True)):
        if s > 0:
            g.add_edge(4 + zone_index[z], base + ni, capacity=P)
            g.add_edge(base + ni, sink, capacity=s)
    if sink not in g:
        return False
    return nx.maximum_flow_value(g, src, sink, flow_func=preflow_push) == P * rf


def optimal_partition_size(
    capacities: list[int],
    zones_of_nodes: list[str],
    rf: int,
    zone_redundancy: int,
    n_partitions: int = N_PARTITIONS,
) -> int | None:
    """Largest feasible partition size, or None when even 1 byte per partition does not fit."""
    if not partition_size_feasible(capacities, zones_of_nodes, rf, zone_redundancy, 1, n_partitions):
        return None
    # S > total / (P * rf) leaves fewer than P * rf slots in total: an infeasible upper bound.
    lo, hi = 1, sum(capacities) // (n_partitions * rf) + 1
    while hi - lo > 1:
        mid = (lo + hi) // 2
        if partition_size_feasible(capacities, zones_of_nodes, rf, zone_redundancy, mid, n_partitions):
            lo = mid
        else:
            hi = mid
    return lo


def _min_move_flow(
    caps: list[int],
    node_zone: list[int],
    n_zones: int,
    rf: int,
    zr: int,
    size: int,
    prev_sets: list[set[int]],
    n_partitions: int,
) -> list[list[int]]:
    """Per partition, the storage-node indices of a min-cost (fewest new pairs) assignment."""
    P = n_partitions
    n_nodes = len(caps)
    src, sink = 0, 1

    def up(p: int) -> int:
        return 2 + p

    def down(p: int) -> int:
        return 2 + P + p

    def pz(p: int, z: int) -> int:
        return 2 + 2 * P + p * n_zones + z

    def node(n: int) -> int:
        return 2 + 2 * P + P * n_zones + n

    g = nx.DiGraph()
    g.add_node(src, demand=-P * rf)
    g.add_node(sink, demand=P * rf)
    nodes_by_zone: list[list[int]] = [[] for _ in range(n_zones)]
    for n in range(n_nodes):
        nodes_by_zone[node_zone[n]].append(n)
    for p in range(P):
        g.add_edge(src, up(p), capacity=zr, weight=0)
        if rf > zr:
            g.add_edge(src, down(p), capacity=rf - zr, weight=0)
        for z in range(n_zones):
            g.add_edge(up(p), pz(p, z), capacity=1, weight=0)
            if rf > zr:
                g.add_edge(down(p), pz(p, z), capacity=rf - zr, weight=0)
            for n in nodes_by_zone[z]:
                g.add_edge(pz(p, z), node(n), capacity=1, weight=0 if n in prev_sets[p] else 1)
    for n in range(n_nodes):
        g.add_edge(node(n), sink, capacity=caps[n] // size, weight=0)
    if any(prev_sets):
        try:
            _cost, flow = nx.network_simplex(g)
        except nx.NetworkXUnfeasible as e:  # pragma: no cover - S was just proven feasible
            raise AssertionError(f"min-cost flow infeasible at a feasible partition size: {e}") from e
    else:  # nothing to keep: every maximum flow costs the same, and max flow is ~5x faster
        value, flow = nx.maximum_flow(g, src, sink, flow_func=preflow_push)
        assert value == P * rf, "max flow below P * rf at a feasible partition size"
    result: list[list[int]] = []
    for p in range(P):
        holders = [n for z in range(n_zones) for n in nodes_by_zone[z] if flow[pz(p, z)].get(node(n), 0) > 0]
        assert len(holders) == rf, f"partition {p} got {len(holders)} holders instead of {rf}"
        result.append(holders)
    return result


def _order_holders(new: list[int], previous_positions: list[int | None], rf: int) -> list[int]:
    """Keep a holder at its previous ring position; new holders fill gaps in index order."""
    slots: list[int | None] = [None] * rf
    new_set = set(new)
    placed: set[int] = set()
    for pos, n in enumerate(previous_positions[:rf]):
        if n is not None and n in new_set and n not in placed:
            slots[pos] = n
            placed.add(n)
    rest = iter(sorted(new_set - placed))
    return [s if s is not None else next(rest) for s in slots]


def compute_assignment(
    roles: dict[str, NodeRole],
    rf: int,
    zone_redundancy: int | None,
    previous: LayoutVersion | None,
    *,
    n_partitions: int = N_PARTITIONS,
    previous_holders: list[list[str]] | None = None,
) -> Assignment:
    """Optimal ring for `roles` (largest partition size, then fewest moves from `previous`).

    Raises LayoutError, with the reason, when no valid assignment exists. `n_partitions` and
    `previous_holders` (the previous holders of each partition, replacing `previous`'s ring)
    are for tests only: brute-force oracles run on a handful of partitions, while a
    LayoutVersion always has N_PARTITIONS.
    """
    storage, gateways, zones, zr = _validate(roles, rf, zone_redundancy)
    P = n_partitions
    if previous_holders is None and previous is not None and previous.has_ring():
        if n_partitions != N_PARTITIONS:
            raise ValueError("a previous layout version has N_PARTITIONS partitions")
        previous_holders = [previous.nodes_of(p) for p in range(P)]
    if previous_holders is not None and len(previous_holders) != P:
        raise ValueError(f"previous_holders has {len(previous_holders)} partitions instead of {P}")
    caps = [roles[n].capacity or 0 for n in storage]
    storage_zone_names = [roles[n].zone for n in storage]
    size = optimal_partition_size(caps, storage_zone_names, rf, zr, P)
    if size is None:
        raise LayoutError(
            f"the storage capacity is too small: {P} partitions x rf={rf} do not fit even with partitions "
            f"of 1 byte (total capacity {sum(caps)} bytes over {len(zones)} zones, zone redundancy {zr})"
        )

    node_index = {n: i for i, n in enumerate(storage)}
    zone_index = {z: i for i, z in enumerate(zones)}
    node_zone = [zone_index[z] for z in storage_zone_names]

    # The previous ring, translated into the new storage indices (None: node gone or gateway).
    prev_positions: list[list[int | None]] = [[] for _ in range(P)]
    if previous_holders is not None:
        for p in range(P):
            prev_positions[p] = [node_index.get(n) for n in previous_holders[p]]
    prev_sets = [{n for n in prev_positions[p] if n is not None} for p in range(P)]

    holders = _min_move_flow(caps, node_zone, len(zones), rf, zr, size, prev_sets, P)
    ring: list[int] = []
    for p in range(P):
        ring.extend(_order_holders(holders[p], prev_positions[p], rf))

    stored = [0] * len(storage)
    new_pairs = [0] * len(storage)
    for p in range(P):
        for n in ring[p * rf : (p + 1) * rf]:
            stored[n] += 1
            if n not in prev_sets[p]:
                new_pairs[n] += 1
    moved = sum(new_pairs)

    messages = _report(
        roles=roles,
        storage=storage,
        gateways=gateways,
        zones=zones,
        rf=rf,
        zone_redundancy=zone_redundancy,
        zr=zr,
        size=size,
        previous=previous,
        has_previous=previous_holders is not None,
        stored=stored,
        new_pairs=new_pairs,
        moved=moved,
        n_partitions=P,
    )
    return Assignment(
        partition_size=size,
        node_id_vec=storage + gateways,
        ring_assignment=ring,
        zone_redundancy=zr,
        moved=moved,
        messages=messages,
    )


def _report(
    *,
    roles: dict[str, NodeRole],
    storage: list[str],
    gateways: list[str],
    zones: list[str],
    rf: int,
    zone_redundancy: int | None,
    zr: int,
    size: int,
    previous: LayoutVersion | None,
    has_previous: bool,
    stored: list[int],
    new_pairs: list[int],
    moved: int,
    n_partitions: int,
) -> list[str]:
    """Plain-text lines for the operator (`layout show` / `layout apply`)."""
    msg: list[str] = []
    how = "maximum possible" if zone_redundancy is None else "requested"
    msg.append(
        f"Partitions are replicated {rf} times on at least {zr} distinct zones "
        f"(zone redundancy {zr}, {how}; {len(zones)} zones with storage nodes)."
    )
    prev_size = ""
    if previous is not None and previous.partition_size:
        prev_size = f" (previous layout: {format_bytes(previous.partition_size)})"
    msg.append(f"Optimal partition size: {format_bytes(size)}{prev_size}")
    if size < PARTITION_SIZE_WARN_MIN:
        msg.append(
            f"WARNING: the partition size is low (< {PARTITION_SIZE_WARN_MIN} bytes): check that node "
            "capacities are given in bytes and are at least a few MB"
        )
    total = sum(roles[n].capacity or 0 for n in storage)
    used = size * n_partitions * rf
    pct = 100.0 * used / total if total else 0.0
    msg.append(
        f"Usable capacity / total cluster capacity: {format_bytes(used)} / {format_bytes(total)} ({pct:.1f} %)"
    )
    msg.append(f"Effective capacity (replication factor {rf}): {format_bytes(used // rf)}")
    if pct < USABLE_SHARE_WARN_PCT:
        msg.append(
            "Capacity is poorly used: the topology and the zone redundancy force the use of nodes or zones "
            "with small capacity. Move capacity between zones or relax the zone redundancy; look for "
            "saturated nodes and zones below."
        )
    else:
        msg.append("Capacity is well used.")
    if has_previous:
        than = f"version {previous.version}" if previous is not None else "the previous layout"
        msg.append(f"{moved} partitions will move (new partition copies to transfer, compared with {than})")
    else:
        msg.append(f"First assignment: {moved} partition copies will be created, nothing stored moves.")
    if gateways:
        msg.append(f"Gateway nodes (store nothing): {', '.join(short_id(g) for g in gateways)}")
    msg.append("")
    for z in zones:
        idx = [i for i, n in enumerate(storage) if roles[n].zone == z]
        cap_z = sum(roles[storage[i]].capacity or 0 for i in idx)
        stored_z = sum(stored[i] for i in idx)
        usable_z = stored_z * size
        msg.append(
            f"Zone {z}: {stored_z} partition copies, usable {format_bytes(usable_z)} of "
            f"{format_bytes(cap_z)} ({100.0 * usable_z / cap_z:.1f} %)"
        )
        for i in idx:
            n = storage[i]
            cap = roles[n].capacity or 0
            usable = stored[i] * size
            tags = ",".join(roles[n].tags)
            msg.append(
                f"  {short_id(n)}  tags [{tags}]  partitions {stored[i]} ({new_pairs[i]} new)  capacity "
                f"{format_bytes(cap)}  usable {format_bytes(usable)} ({100.0 * usable / cap:.1f} %)"
            )
    return msg
