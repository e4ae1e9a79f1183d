"""Unit tests of the pure layout core: assignment, LayoutVersion.check(), LayoutHistory.

The optimal partition size is compared with two oracles that do not share the grouped
graph of `assignment.py`: Garage's per-partition flow graph (built here, for the real 256
partitions) and exhaustive enumeration of assignments (a handful of partitions).
"""

from __future__ import annotations

import hashlib
from collections import Counter
from itertools import combinations, combinations_with_replacement, product

import msgspec
import networkx as nx
import pytest

from grange.rpc.layout import (
    N_PARTITIONS,
    OLD_VERSIONS_MAX,
    LayoutError,
    LayoutHistory,
    LayoutParameters,
    LayoutVersion,
    NodeRole,
    compute_assignment,
    partition_of,
)

GB = 10**9
TB = 10**12


def nid(label: str) -> str:
    return hashlib.sha256(label.encode()).hexdigest()


def make_version(
    roles: dict[str, NodeRole], rf: int, zr: int | None = None, previous: LayoutVersion | None = None
) -> LayoutVersion:
    a = compute_assignment(roles, rf, zr, previous)
    v = LayoutVersion(
        version=(previous.version + 1) if previous else 1,
        replication_factor=rf,
        partition_size=a.partition_size,
        parameters=LayoutParameters(zr),
        roles=roles,
        node_id_vec=a.node_id_vec,
        ring_assignment=a.ring_assignment,
    )
    v.check()
    return v


# ---- oracles ----


def full_graph_feasible(roles: dict[str, NodeRole], rf: int, zr: int, size: int) -> bool:
    """Garage's graph (src/rpc/layout/version.rs), one copy per partition, no grouping."""
    storage = sorted(n for n, r in roles.items() if r.capacity is not None)
    zones = sorted({roles[n].zone for n in storage})
    g = nx.DiGraph()
    for p in range(N_PARTITIONS):
        g.add_edge("src", ("up", p), capacity=zr)
        g.add_edge("src", ("down", p), capacity=rf - zr)
        for z in zones:
            g.add_edge(("up", p), ("pz", p, z), capacity=1)
            g.add_edge(("down", p), ("pz", p, z), capacity=rf)  # Garage uses rf here; same max flow
            for n in storage:
                if roles[n].zone == z:
                    g.add_edge(("pz", p, z), ("n", n), capacity=1)
    for n in storage:
        g.add_edge(("n", n), "sink", capacity=(roles[n].capacity or 0) // size)
    return nx.maximum_flow_value(g, "src", "sink") == N_PARTITIONS * rf


def brute_force_optimum(caps: dict[str, tuple[str, int]], rf: int, zr: int, n_parts: int) -> int:
    """Largest S over every assignment of n_parts partitions (0 if none is valid).

    An assignment with load L_n on node n works for S iff L_n * S <= cap_n for all n, so its
    best S is min(cap_n // L_n); the optimum is the max of that over all assignments.
    Partitions are interchangeable, so multisets of holder sets suffice.
    """
    nodes = sorted(caps)
    valid_sets = [c for c in combinations(nodes, rf) if len({caps[n][0] for n in c}) >= zr]
    best = 0
    for combo in combinations_with_replacement(valid_sets, n_parts):
        load = Counter(n for s in combo for n in s)
        best = max(best, min(caps[n][1] // k for n, k in load.items()))
    return best


def brute_force_feasible(caps: dict[str, tuple[str, int]], rf: int, zr: int, n_parts: int, size: int) -> bool:
    nodes = sorted(caps)
    valid_sets = [c for c in combinations(nodes, rf) if len({caps[n][0] for n in c}) >= zr]
    for combo in combinations_with_replacement(valid_sets, n_parts):
        load = Counter(n for s in combo for n in s)
        if all(k * size <= caps[n][1] for n, k in load.items()):
            return True
    return False


def brute_force_min_moves(
    caps: dict[str, tuple[str, int]], rf: int, zr: int, size: int, prev: list[list[str]]
) -> int:
    nodes = sorted(caps)
    valid_sets = [c for c in combinations(nodes, rf) if len({caps[n][0] for n in c}) >= zr]
    best = None
    for combo in product(valid_sets, repeat=len(prev)):
        load = Counter(n for s in combo for n in s)
        if all(k * size <= caps[n][1] for n, k in load.items()):
            moves = sum(len(set(s) - set(prev[p])) for p, s in enumerate(combo))
            best = moves if best is None else min(best, moves)
    assert best is not None
    return best


# ---- assignment ----


def test_three_nodes_in_three_zones_each_hold_every_partition() -> None:
    caps = [3 * TB, 1 * TB + 12345, 2 * TB]
    roles = {nid(f"n{i}"): NodeRole(f"dc{i}", c) for i, c in enumerate(caps)}
    v = make_version(roles, rf=3)
    for n in roles:
        assert v.stored_partitions(n) == N_PARTITIONS
    assert v.partition_size == min(caps) // N_PARTITIONS
    assert v.usable_capacity(nid("n1")) == N_PARTITIONS * v.partition_size
    for p in range(N_PARTITIONS):
        assert sorted(v.nodes_of(p)) == sorted(roles)


def test_five_nodes_in_three_zones_get_shares_within_one_partition_of_capacity() -> None:
    spec = [("dc1", 4000), ("dc1", 1000), ("dc2", 2000), ("dc2", 3000), ("dc3", 5000)]
    roles = {nid(f"n{i}"): NodeRole(z, c * GB) for i, (z, c) in enumerate(spec)}
    v = make_version(roles, rf=3, zr=2)
    size = v.partition_size
    for n, r in roles.items():
        assert r.capacity is not None
        assert v.stored_partitions(n) <= r.capacity // size
    assert sum(v.stored_partitions(n) for n in roles) == N_PARTITIONS * 3
    # S is feasible (the ring proves it) and maximal: S + 1 is not, on Garage's own graph.
    assert full_graph_feasible(roles, 3, 2, size)
    assert not full_graph_feasible(roles, 3, 2, size + 1)


@pytest.mark.parametrize(
    ("spec", "rf", "zr"),
    [
        ([("a", 1000), ("b", 2000), ("c", 3000)], 3, 3),
        ([("a", 1000), ("a", 5000), ("b", 2000), ("c", 700)], 3, None),
        ([("a", 4000), ("b", 1000), ("c", 1000), ("c", 3000), ("c", 1000), ("b", 1000)], 2, 2),
        ([("a", 100), ("a", 900), ("b", 100)], 2, 1),
        ([("a", 10**6 + 7), ("b", 333), ("b", 10**5), ("c", 512), ("d", 2 * 10**6)], 3, 2),
        ([("a", 1000), ("b", 1000), ("c", 1000), ("d", 1)], 1, None),
    ],
)
def test_partition_size_matches_the_per_partition_flow_graph(
    spec: list[tuple[str, int]], rf: int, zr: int | None
) -> None:
    roles = {nid(f"n{i}"): NodeRole(z, c * 10**6) for i, (z, c) in enumerate(spec)}
    a = compute_assignment(roles, rf, zr, None)
    assert full_graph_feasible(roles, rf, a.zone_redundancy, a.partition_size)
    assert not full_graph_feasible(roles, rf, a.zone_redundancy, a.partition_size + 1)


@pytest.mark.parametrize(
    ("spec", "rf", "zr", "n_parts"),
    [
        ([("a", 10), ("b", 7), ("c", 5)], 2, 2, 4),
        ([("a", 10), ("a", 9), ("b", 4), ("c", 3)], 3, 3, 3),
        ([("a", 10), ("a", 9), ("b", 4), ("c", 3)], 3, 2, 4),
        ([("a", 12), ("a", 11), ("b", 2), ("b", 9)], 2, 2, 4),
        ([("a", 30), ("b", 1), ("b", 2), ("c", 8), ("c", 5)], 3, 2, 3),
        ([("a", 5), ("a", 6), ("a", 7)], 2, 1, 4),
    ],
)
def test_partition_size_matches_exhaustive_search_on_few_partitions(
    spec: list[tuple[str, int]], rf: int, zr: int, n_parts: int
) -> None:
    caps = {nid(f"n{i}"): (z, c) for i, (z, c) in enumerate(spec)}
    roles = {n: NodeRole(z, c) for n, (z, c) in caps.items()}
    a = compute_assignment(roles, rf, zr, None, n_partitions=n_parts)
    assert a.partition_size == brute_force_optimum(caps, rf, zr, n_parts)
    assert brute_force_feasible(caps, rf, zr, n_parts, a.partition_size)
    assert not brute_force_feasible(caps, rf, zr, n_parts, a.partition_size + 1)


def test_fewest_moves_matches_exhaustive_search() -> None:
    spec = [("a", 10), ("a", 9), ("b", 6), ("c", 5), ("c", 8)]
    caps = {nid(f"n{i}"): (z, c) for i, (z, c) in enumerate(spec)}
    roles = {n: NodeRole(z, c) for n, (z, c) in caps.items()}
    ids = sorted(caps)
    gone = nid("removed")
    prev = [[ids[0], ids[2]], [gone, ids[3]], [ids[1], ids[4]], [ids[0], gone]]
    a = compute_assignment(roles, 2, 2, None, n_partitions=4, previous_holders=prev)
    assert a.moved == brute_force_min_moves(caps, 2, 2, a.partition_size, prev)
    assert "partitions will move" in "\n".join(a.messages)


def test_refuses_replication_factor_above_storage_node_count() -> None:
    roles = {nid("a"): NodeRole("dc1", TB), nid("b"): NodeRole("dc2", TB), nid("g"): NodeRole("dc3", None)}
    with pytest.raises(
        LayoutError, match="replication factor 3 needs at least 3 storage nodes, layout has 2"
    ):
        compute_assignment(roles, 3, None, None)


def test_refuses_zone_redundancy_above_zone_count() -> None:
    roles = {nid(f"n{i}"): NodeRole(z, TB) for i, z in enumerate(["dc1", "dc2", "dc2"])}
    with pytest.raises(
        LayoutError, match=r"zone redundancy 3 needs at least 3 zones, layout has 2 \(dc1, dc2\)"
    ):
        compute_assignment(roles, 3, 3, None)


def test_refuses_zero_and_negative_capacity_and_bad_parameters() -> None:
    zero = nid("zero")
    roles = {zero: NodeRole("dc1", 0), nid("b"): NodeRole("dc2", TB), nid("c"): NodeRole("dc3", TB)}
    with pytest.raises(LayoutError, match=f"node {zero[:16]} has zero capacity; use a gateway role"):
        compute_assignment(roles, 2, None, None)
    roles[zero] = NodeRole("dc1", -5)
    with pytest.raises(LayoutError, match="negative capacity"):
        compute_assignment(roles, 2, None, None)
    roles[zero] = NodeRole("dc1", TB)
    for zr in (0, 4):
        with pytest.raises(LayoutError, match=f"zone redundancy {zr} is invalid"):
            compute_assignment(roles, 3, zr, None)
    with pytest.raises(LayoutError, match="replication factor 0 is invalid"):
        compute_assignment(roles, 0, None, None)
    with pytest.raises(LayoutError, match="invalid node id"):
        compute_assignment({"not-hex": NodeRole("dc1", TB)}, 1, None, None)


def test_refuses_capacities_too_small_for_one_byte_partitions() -> None:
    roles = {nid(f"n{i}"): NodeRole(f"dc{i}", 100) for i in range(3)}
    with pytest.raises(LayoutError, match="storage capacity is too small"):
        compute_assignment(roles, 3, None, None)


def test_maximum_zone_redundancy_with_two_zones_and_rf3_uses_two_zones_per_partition() -> None:
    roles = {nid(f"n{i}"): NodeRole(z, TB) for i, z in enumerate(["dc1", "dc1", "dc2", "dc2"])}
    v = make_version(roles, rf=3, zr=None)
    assert v.effective_zone_redundancy() == 2
    for p in range(N_PARTITIONS):
        assert len({roles[n].zone for n in v.nodes_of(p)}) == 2
    assert "at least 2 distinct zones" in "\n".join(compute_assignment(roles, 3, None, None).messages)


def test_gateway_nodes_get_no_partitions_and_come_last() -> None:
    gw = nid("gateway")
    roles = {nid(f"n{i}"): NodeRole(f"dc{i}", TB) for i in range(3)} | {gw: NodeRole("dc9", None)}
    v = make_version(roles, rf=2)
    assert v.stored_partitions(gw) == 0
    assert v.gateway_nodes() == [gw]
    assert v.node_id_vec[-1] == gw
    assert gw not in {n for p in range(N_PARTITIONS) for n in v.nodes_of(p)}
    # A gateway's zone does not count for "maximum" zone redundancy: 3 zones, not 4.
    assert v.effective_zone_redundancy() == 2


def test_same_input_gives_same_ring_whatever_the_dict_order() -> None:
    spec = [("dc1", 4), ("dc2", 1), ("dc2", 3), ("dc3", 2), ("dc1", 2)]
    items = [(nid(f"n{i}"), NodeRole(z, c * TB)) for i, (z, c) in enumerate(spec)]
    a = compute_assignment(dict(items), 3, None, None)
    b = compute_assignment(dict(reversed(items)), 3, None, None)
    assert a == b


def test_recomputing_with_unchanged_roles_moves_nothing_and_keeps_the_ring() -> None:
    spec = [("dc1", 4), ("dc2", 1), ("dc2", 3), ("dc3", 2), ("dc1", 2)]
    roles = {nid(f"n{i}"): NodeRole(z, c * TB) for i, (z, c) in enumerate(spec)}
    v1 = make_version(roles, rf=3)
    a = compute_assignment(roles, 3, None, v1)
    assert a.moved == 0
    assert a.ring_assignment == v1.ring_assignment
    assert "0 partitions will move" in "\n".join(a.messages)


def test_holders_keep_their_ring_position() -> None:
    roles = {nid(f"n{i}"): NodeRole(f"dc{i}", TB) for i in range(3)}
    v1 = make_version(roles, rf=3)
    new = nid("new")
    roles2 = {**roles, new: NodeRole("dc3", TB)}
    v2 = make_version(roles2, rf=3, previous=v1)
    for p in range(N_PARTITIONS):
        for i, (old, cur) in enumerate(zip(v1.nodes_of(p), v2.nodes_of(p), strict=True)):
            assert cur == old or cur == new, (p, i)
    # 4 equal nodes in 4 zones with rf=3: each holds 192, the new one took 192 copies.
    assert v2.stored_partitions(new) == 192
    assert compute_assignment(roles2, 3, None, v1).moved == 192


def test_messages_report_size_capacity_redundancy_and_moves() -> None:
    roles = {nid(f"n{i}"): NodeRole(f"dc{i}", TB) for i in range(3)}
    text = "\n".join(compute_assignment(roles, 3, None, None).messages)
    assert "Optimal partition size: 3.9 GB" in text
    assert "Usable capacity / total cluster capacity" in text
    assert "zone redundancy 3, maximum possible" in text
    assert "Capacity is well used." in text
    assert "Zone dc0" in text


# ---- LayoutVersion.check ----


def test_check_rejects_broken_invariants_with_the_reason() -> None:
    roles = {nid(f"n{i}"): NodeRole(f"dc{i % 3}", TB) for i in range(4)}
    v = make_version(roles, rf=3)
    ring = list(v.ring_assignment)

    def broken(**changes: object) -> LayoutVersion:
        return msgspec.structs.replace(v, **changes)

    dup = list(ring)
    dup[1] = dup[0]
    with pytest.raises(LayoutError, match="partition 0 does not have 3 distinct holders"):
        broken(ring_assignment=dup).check()
    with pytest.raises(LayoutError, match="ring has 767 entries"):
        broken(ring_assignment=ring[:-1]).check()
    with pytest.raises(LayoutError, match="more than its capacity"):
        broken(partition_size=v.partition_size * 2).check()
    with pytest.raises(LayoutError, match="not optimal"):
        broken(partition_size=v.partition_size - 1).check()
    gw = nid("gw")
    with pytest.raises(LayoutError, match="not a storage node"):
        bad = [4 if x == 0 else x for x in ring]
        broken(
            roles={**roles, gw: NodeRole("dc0", None)}, node_id_vec=[*v.node_id_vec, gw], ring_assignment=bad
        ).check()
    with pytest.raises(LayoutError, match="exactly the nodes that have a role"):
        broken(node_id_vec=v.node_id_vec[:-1]).check()
    # Partition 0's three holders all in dc0, the fourth node alone in dc1, zr = 2.
    two_zones = {n: NodeRole("dc0" if n in v.nodes_of(0) else "dc1", TB) for n in roles}
    with pytest.raises(LayoutError, match="partition 0 spans 1 zones, fewer than zone redundancy 2"):
        broken(roles=two_zones, parameters=LayoutParameters(2)).check()


def test_empty_version_zero_is_valid() -> None:
    v0 = LayoutVersion.empty(3)
    v0.check()
    assert v0.nodes_of(5) == []
    assert v0.storage_nodes() == []


def test_partition_of_is_the_first_byte() -> None:
    assert partition_of(bytes([0xAB]) + bytes(31)) == 0xAB
    assert partition_of(bytes(32)) == 0


# ---- LayoutHistory: staging, apply, merge ----


def three_node_history(rf: int = 3) -> LayoutHistory:
    h = LayoutHistory.new(rf)
    for i in range(3):
        h.stage_role(nid(f"n{i}"), NodeRole(f"dc{i}", TB), now_ms=1000)
    h, _ = h.apply_staged(1, now_ms=2000)
    return h


def test_assign_then_revert_drops_staged_changes() -> None:
    h = three_node_history()
    h.stage_role(nid("new"), NodeRole("dc4", TB), now_ms=3000)
    h.stage_role(nid("n0"), None, now_ms=3000)
    assert h.staged_role_changes() == {nid("new"): NodeRole("dc4", TB), nid("n0"): None}
    h.revert_staged(now_ms=3001)
    assert h.staged_role_changes() == {}
    assert not h.has_staged_changes()


def test_staging_an_unchanged_role_is_not_a_change() -> None:
    h = three_node_history()
    h.stage_role(nid("n1"), NodeRole("dc1", TB), now_ms=3000)
    h.stage_role(nid("never-had-a-role"), None, now_ms=3000)
    assert h.staged_role_changes() == {}
    with pytest.raises(LayoutError, match="no changes to apply: the layout is already at version 1"):
        h.apply_staged(2, now_ms=4000)


def test_apply_with_wrong_version_is_refused() -> None:
    h = three_node_history()
    h.stage_role(nid("new"), NodeRole("dc4", TB), now_ms=3000)
    with pytest.raises(LayoutError, match="expected version 2, got 3"):
        h.apply_staged(3, now_ms=4000)
    with pytest.raises(LayoutError, match="expected version 2, got 1"):
        h.apply_staged(1, now_ms=4000)


def test_apply_twice_needs_new_changes_and_the_next_number() -> None:
    h = three_node_history()
    h.stage_role(nid("new"), NodeRole("dc4", TB), now_ms=3000)
    h2, msgs = h.apply_staged(2, now_ms=4000)
    assert h.current().version == 1  # apply returns a new history
    assert h2.current().version == 2 and h2.current().stored_partitions(nid("new")) == 192
    assert any("partitions will move" in m for m in msgs)
    with pytest.raises(LayoutError, match="no changes to apply: the layout is already at version 2"):
        h2.apply_staged(3, now_ms=5000)
    with pytest.raises(LayoutError, match="expected version 3, got 2"):
        h2.apply_staged(2, now_ms=5000)
    h2.stage_parameters(LayoutParameters(2), now_ms=5000)
    h3, _ = h2.apply_staged(None, now_ms=6000)
    assert h3.current().version == 3 and h3.current().parameters.zone_redundancy == 2


def test_preview_does_not_mutate_and_matches_apply() -> None:
    h = three_node_history()
    h.stage_role(nid("new"), NodeRole("dc4", 2 * TB), now_ms=3000)
    before = h.digest()
    preview, _ = h.preview()
    assert h.digest() == before
    applied, _ = h.apply_staged(2, now_ms=4000)
    assert applied.current() == preview


def test_apply_that_would_break_the_layout_is_refused_and_keeps_the_old_one() -> None:
    h = three_node_history()
    h.stage_role(nid("n0"), None, now_ms=3000)
    with pytest.raises(LayoutError, match="needs at least 3 storage nodes, layout has 2"):
        h.apply_staged(2, now_ms=4000)
    assert h.current().version == 1
    with pytest.raises(LayoutError, match="zero capacity"):
        h.stage_role(nid("x"), NodeRole("dc1", 0), now_ms=3000)
    with pytest.raises(LayoutError, match="zone redundancy 5 is invalid"):
        h.stage_parameters(LayoutParameters(5), now_ms=3000)


def test_concurrent_staging_of_different_nodes_keeps_both() -> None:
    base = three_node_history()
    a, b = base.clone(), base.clone()
    a.stage_role(nid("x"), NodeRole("dc1", TB), now_ms=5000)
    b.stage_role(nid("y"), NodeRole("dc2", TB), now_ms=5000)
    b.stage_role(nid("n0"), None, now_ms=5001)
    assert a.staging.ts == b.staging.ts  # same staging epoch
    ab, ba = a.clone(), b.clone()
    assert ab.merge(b) and ba.merge(a)
    assert ab.digest() == ba.digest()
    assert set(ab.staged_role_changes()) == {nid("x"), nid("y"), nid("n0")}


def test_same_timestamp_writes_of_one_node_resolve_the_same_way_everywhere() -> None:
    base = three_node_history()
    a, b = base.clone(), base.clone()
    a.stage_role(nid("x"), NodeRole("dc1", TB), now_ms=5000)
    b.stage_role(nid("x"), NodeRole("dc2", TB), now_ms=5000)
    a.stage_parameters(LayoutParameters(1), now_ms=5000)
    b.stage_parameters(LayoutParameters(2), now_ms=5000)
    ab, ba = a.clone(), b.clone()
    ab.merge(b)
    ba.merge(a)
    assert ab.digest() == ba.digest()
    assert ab.staged_role_changes()[nid("x")] in (NodeRole("dc1", TB), NodeRole("dc2", TB))
    # A later write of the same node wins whatever its content.
    a.stage_role(nid("x"), NodeRole("dc0", TB), now_ms=5001)
    ab.merge(a)
    assert ab.staged_role_changes()[nid("x")] == NodeRole("dc0", TB)


def test_apply_wins_over_changes_staged_before_it_elsewhere() -> None:
    base = three_node_history()
    a, b = base.clone(), base.clone()
    b.stage_role(nid("late"), NodeRole("dc1", TB), now_ms=5000)
    a.stage_role(nid("x"), NodeRole("dc4", TB), now_ms=5000)
    a, _ = a.apply_staged(2, now_ms=6000)
    assert a.merge(b) is False  # b's staged change belongs to an older staging epoch
    assert a.staged_role_changes() == {}
    assert b.merge(a) is True
    assert b.current().version == 2 and b.staged_role_changes() == {}
    assert a.digest() == b.digest()


def test_merge_adopts_newer_versions_and_reports_conflicts_and_invalid_ones() -> None:
    base = three_node_history()
    a, b = base.clone(), base.clone()
    a.stage_role(nid("x"), NodeRole("dc4", TB), now_ms=5000)
    a, _ = a.apply_staged(2, now_ms=6000)
    b.stage_role(nid("y"), NodeRole("dc5", 2 * TB), now_ms=5000)
    b, _ = b.apply_staged(2, now_ms=6000)
    report = a.merge_report(b)
    assert report.conflicts == [2]
    assert a.current().stored_partitions(nid("x")) > 0  # ours kept

    c = base.clone()
    bad = msgspec.structs.replace(a.current(), partition_size=a.current().partition_size * 3)
    d = a.clone()
    d.versions[-1] = bad
    report = c.merge_report(d)
    assert (
        report.rejected and report.rejected[0][0] == 2 and "more than its capacity" in report.rejected[0][1]
    )
    assert c.current().version == 1


def test_out_of_date_node_adopts_the_live_versions_of_a_pruned_history() -> None:
    h = three_node_history()
    for i, cap in enumerate([2, 3]):
        h.stage_role(nid(f"extra{i}"), NodeRole("dc9", cap * TB), now_ms=3000 + i)
        h, _ = h.apply_staged(None, now_ms=4000 + i)
    for n in h.current().node_id_vec:
        h.sync_ack(n, 3)
    assert h.prune() == [1, 2]
    assert [v.version for v in h.versions] == [3]
    fresh = LayoutHistory.new(3)
    assert fresh.merge(h)
    assert fresh.digest() == h.digest()


def test_out_of_date_node_keeps_its_versions_when_the_newer_ones_are_invalid() -> None:
    h = three_node_history()
    for i in range(2):
        h.stage_role(nid(f"extra{i}"), NodeRole("dc9", (i + 2) * TB), now_ms=3000 + i)
        h, _ = h.apply_staged(None, now_ms=4000 + i)
    for n in h.current().node_id_vec:
        h.sync_ack(n, 3)
    h.prune()
    h.versions[-1] = msgspec.structs.replace(h.current(), partition_size=1)  # corrupt, not optimal
    mine = three_node_history()
    report = mine.merge_report(h)
    assert [v for v, _ in report.rejected] == [3] and "not optimal" in report.rejected[0][1]
    assert [v.version for v in mine.versions] == [1]
    assert all(v.version < 1 for v in mine.old_versions)  # their pruned 1, 2 are not "old" for us
    mine.check()


def test_prune_waits_for_every_current_node_to_sync_ack() -> None:
    h = three_node_history()
    assert [v.version for v in h.versions] == [1]  # version 0 had no storage node: dropped
    assert h.version_statuses() == [(1, "Current"), (0, "Historical")]
    h.stage_role(nid("new"), NodeRole("dc4", TB), now_ms=3000)
    h, _ = h.apply_staged(2, now_ms=4000)
    nodes = h.current().node_id_vec
    for n in nodes[:-1]:
        h.sync_ack(n, 2)
    assert h.prune() == []
    assert h.version_statuses()[:2] == [(2, "Current"), (1, "Draining")]
    assert h.min_ack() == 1
    h.ack(nodes[-1], 2)
    assert h.min_ack() == 1  # the other nodes have not acked version 2
    assert h.sync_ack(nodes[-1], 2)
    assert not h.sync_ack(nodes[-1], 1)  # trackers only go up
    assert h.prune() == [1]
    assert h.version_statuses() == [(2, "Current"), (1, "Historical"), (0, "Historical")]


def test_old_versions_are_capped() -> None:
    h = three_node_history()
    for i in range(OLD_VERSIONS_MAX + 3):
        h.stage_role(nid("x"), NodeRole("dc4", (i + 1) * TB), now_ms=10_000 + i)
        h, _ = h.apply_staged(None, now_ms=20_000 + i)
        for n in h.current().node_id_vec:
            h.sync_ack(n, h.current().version)
        h.prune()
    assert len(h.old_versions) == OLD_VERSIONS_MAX
    assert [v.version for v in h.old_versions] == list(range(4, 14))
    h.check()


def test_encode_decode_round_trip_and_refusals() -> None:
    h = three_node_history()
    h.stage_role(nid("x"), NodeRole("dc4", TB, ["ssd", "rack2"]), now_ms=5000)
    h.ack(nid("n0"), 1)
    data = h.encode()
    back = LayoutHistory.decode(data)
    assert back == h and back.digest() == h.digest()
    assert msgspec.msgpack.decode(data)["v"] == 1
    with pytest.raises(LayoutError, match="malformed layout history"):
        LayoutHistory.decode(b"\x93garbage")
    with pytest.raises(LayoutError, match="unsupported layout history format version 7"):
        LayoutHistory.decode(msgspec.msgpack.encode({"v": 7, "history": {}}))
    corrupt = msgspec.msgpack.decode(data)
    corrupt["history"]["versions"][0]["partition_size"] += 1
    with pytest.raises(LayoutError, match="version 1"):
        LayoutHistory.decode(msgspec.msgpack.encode(corrupt))


def test_digest_changes_with_any_field() -> None:
    h = three_node_history()
    d = h.digest()
    h.ack(nid("n0"), 1)
    d2 = h.digest()
    assert d2 != d
    h.stage_role(nid("x"), NodeRole("dc4", TB), now_ms=5000)
    assert h.digest() != d2


def test_merging_different_replication_factors_is_refused() -> None:
    with pytest.raises(LayoutError, match="different replication factors"):
        LayoutHistory.new(3).merge(LayoutHistory.new(2))
