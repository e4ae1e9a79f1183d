"""Hypothesis properties of the layout core: validity, optimality oracles, movement, merge laws.

Movement bounds asserted (and why they are exact, not hopes):
- Any change: moved >= sum over nodes of max(0, new load - previous load) (a node can keep
  at most what it had), and moved <= the moves of a naive greedy repair whenever that
  repair finds a valid ring at the same partition size (min-cost never loses to it).
- Adding a node to a *perfectly balanced* layout (k equal nodes, k divides 256*rf, so every
  node is full; nodes in distinct zones, or all in one zone) moves exactly what the new
  node receives: old nodes only shed. Not true in general: with spare slots or zones that
  constrain, min-cost may have to move copies between old nodes (seen in practice, e.g. a
  zone whose nodes must rebalance when the partition size grows).
- Removing a node r (nodes in distinct zones, or one zone): moved >= the partitions r held,
  with equality iff each of them can go directly to a node that has a spare slot at the new
  partition size and does not hold it yet (a b-matching, checked independently). Otherwise
  some holder must give up a partition to make room, which costs one more copy each time.
"""

from __future__ import annotations

import hashlib
from collections import Counter
from itertools import combinations, combinations_with_replacement, product

import networkx as nx
from hypothesis import HealthCheck, assume, given, settings
from hypothesis import strategies as st

from grange.rpc.layout import (
    N_PARTITIONS,
    LayoutError,
    LayoutHistory,
    LayoutParameters,
    LayoutVersion,
    NodeRole,
    compute_assignment,
)

SETTINGS = settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow])
TB = 10**12


def nid(label: str) -> str:
    return hashlib.sha256(label.encode()).hexdigest()


NODE_IDS = [nid(f"node{i}") for i in range(10)]


def version_of(
    roles: dict[str, NodeRole], rf: int, zr: int | None, previous: LayoutVersion | None, number: int = 1
) -> tuple[LayoutVersion, int]:
    a = compute_assignment(roles, rf, zr, previous)
    v = LayoutVersion(
        number, rf, a.partition_size, LayoutParameters(zr), roles, a.node_id_vec, a.ring_assignment
    )
    v.check()
    return v, a.moved


def full_graph_feasible(roles: dict[str, NodeRole], rf: int, zr: int, size: int) -> bool:
    """Garage's per-partition graph, no grouping (independent of assignment.py's)."""
    storage = sorted(n for n, r in roles.items() if r.capacity is not None)
    zones = sorted({roles[n].zone for n in storage})
    g = nx.DiGraph()
    for p in range(N_PARTITIONS):
        g.add_edge("src", ("up", p), capacity=zr)
        g.add_edge("src", ("down", p), capacity=rf - zr)
        for z in zones:
            g.add_edge(("up", p), ("pz", p, z), capacity=1)
            g.add_edge(("down", p), ("pz", p, z), capacity=rf)
            for n in storage:
                if roles[n].zone == z:
                    g.add_edge(("pz", p, z), ("n", n), capacity=1)
    for n in storage:
        g.add_edge(("n", n), "sink", capacity=(roles[n].capacity or 0) // size)
    return nx.maximum_flow_value(g, "src", "sink") == N_PARTITIONS * rf


@st.composite
def cluster(draw: st.DrawFn, max_nodes: int = 8) -> tuple[dict[str, NodeRole], int, int | None]:
    n_zones = draw(st.integers(1, 4))
    n_nodes = draw(st.integers(1, max_nodes))
    roles = {}
    for i in range(n_nodes):
        gateway = draw(st.booleans()) and draw(st.booleans())  # ~1 in 4
        cap = None if gateway else draw(st.integers(10**6, 10**13))
        roles[NODE_IDS[i]] = NodeRole(f"z{draw(st.integers(0, n_zones - 1))}", cap)
    rf = draw(st.integers(1, 3))
    zr = draw(st.one_of(st.none(), st.integers(1, 3)))
    return roles, rf, zr


# ---- validity ----


@SETTINGS
@given(cluster())
def test_assignment_is_valid_or_refused_for_a_real_reason(
    c: tuple[dict[str, NodeRole], int, int | None],
) -> None:
    roles, rf, zr = c
    storage = [n for n, r in roles.items() if r.capacity is not None]
    zones = {roles[n].zone for n in storage}
    zr_eff = min(rf, len(zones)) if zr is None else zr
    expected_error = None
    if zr is not None and zr > rf:
        expected_error = f"zone redundancy {zr} is invalid"
    elif len(storage) < rf:
        expected_error = (
            f"replication factor {rf} needs at least {rf} storage nodes, layout has {len(storage)}"
        )
    elif zr_eff > len(zones):
        expected_error = f"zone redundancy {zr_eff} needs at least {zr_eff} zones, layout has {len(zones)}"
    try:
        v, _ = version_of(roles, rf, zr, None)
    except LayoutError as e:
        assert expected_error is not None, f"unexpected refusal: {e}"
        assert expected_error in str(e)
        return
    assert expected_error is None, f"should have been refused: {expected_error}"
    size = v.partition_size
    for p in range(N_PARTITIONS):
        holders = v.nodes_of(p)
        assert len(set(holders)) == rf
        assert all(roles[n].capacity is not None for n in holders)
        assert len({roles[n].zone for n in holders}) >= zr_eff
    for n, r in roles.items():
        assert v.stored_partitions(n) <= (r.capacity // size if r.capacity is not None else 0)
    assert full_graph_feasible(roles, rf, zr_eff, size)
    assert not full_graph_feasible(roles, rf, zr_eff, size + 1)


# ---- exhaustive oracles on a few partitions ----


@st.composite
def tiny_cluster(draw: st.DrawFn) -> tuple[dict[str, tuple[str, int]], int, int, list[list[str]]]:
    n_nodes = draw(st.integers(2, 5))
    n_zones = draw(st.integers(1, 3))
    caps = {
        NODE_IDS[i]: (f"z{draw(st.integers(0, n_zones - 1))}", draw(st.integers(1, 20)))
        for i in range(n_nodes)
    }
    rf = draw(st.integers(1, min(3, n_nodes)))
    zr = draw(st.integers(1, rf))
    universe = sorted(caps) + [nid("gone")]
    prev = [draw(st.permutations(universe))[:rf] for _ in range(3)]
    return caps, rf, zr, prev


@settings(max_examples=60, deadline=None)
@given(tiny_cluster())
def test_partition_size_and_moves_match_exhaustive_search(
    c: tuple[dict[str, tuple[str, int]], int, int, list[list[str]]],
) -> None:
    caps, rf, zr, prev = c
    n_parts = 3
    nodes = sorted(caps)
    zones = {z for z, _ in caps.values()}
    assume(zr <= len(zones))
    valid_sets = [s for s in combinations(nodes, rf) if len({caps[n][0] for n in s}) >= zr]
    best = 0
    for combo in combinations_with_replacement(valid_sets, n_parts):
        load = Counter(n for s in combo for n in s)
        best = max(best, min(caps[n][1] // k for n, k in load.items()))
    roles = {n: NodeRole(z, cap) for n, (z, cap) in caps.items()}
    try:
        a = compute_assignment(roles, rf, zr, None, n_partitions=n_parts, previous_holders=prev)
    except LayoutError as e:
        assert best == 0 and "too small" in str(e)
        return
    assert a.partition_size == best
    min_moves = min(
        sum(len(set(s) - set(prev[p])) for p, s in enumerate(combo))
        for combo in product(valid_sets, repeat=n_parts)
        if all(k * best <= caps[n][1] for n, k in Counter(n for s in combo for n in s).items())
    )
    assert a.moved == min_moves


# ---- movement ----


@st.composite
def balanced_then_add(draw: st.DrawFn) -> tuple[dict[str, NodeRole], int, int | None, NodeRole]:
    rf = draw(st.integers(1, 3))
    k = draw(st.sampled_from([d for d in range(rf, 8) if (N_PARTITIONS * rf) % d == 0]))
    one_zone = draw(st.booleans())
    cap = draw(st.integers(10**9, 10**12))
    roles = {NODE_IDS[i]: NodeRole("z0" if one_zone else f"z{i}", cap) for i in range(k)}
    zr = draw(st.one_of(st.none(), st.just(1) if one_zone else st.integers(1, rf)))
    new = NodeRole("z0" if one_zone else "znew", draw(st.integers(10**8, 10**13)))
    return roles, rf, zr, new


@SETTINGS
@given(balanced_then_add())
def test_adding_a_node_to_a_balanced_layout_moves_only_what_it_receives(
    c: tuple[dict[str, NodeRole], int, int | None, NodeRole],
) -> None:
    roles, rf, zr, new_role = c
    v1, _ = version_of(roles, rf, zr, None)
    assert {v1.stored_partitions(n) for n in roles} == {N_PARTITIONS * rf // len(roles)}  # full and equal
    new = NODE_IDS[9]
    v2, moved = version_of({**roles, new: new_role}, rf, zr, v1, 2)
    assert moved == v2.stored_partitions(new)
    for n in roles:  # old nodes only shed
        assert set(v2.partitions_of(n)) <= set(v1.partitions_of(n))


@st.composite
def layout_then_remove(draw: st.DrawFn) -> tuple[dict[str, NodeRole], int, int | None, str]:
    rf = draw(st.integers(1, 3))
    k = draw(st.integers(rf + 1, 7))
    one_zone = draw(st.booleans())
    roles = {
        NODE_IDS[i]: NodeRole("z0" if one_zone else f"z{i}", draw(st.integers(10**9, 10**12)))
        for i in range(k)
    }
    zr = draw(st.one_of(st.none(), st.just(1) if one_zone else st.integers(1, rf)))
    return roles, rf, zr, draw(st.sampled_from(sorted(roles)))


def direct_replacement_possible(
    v1: LayoutVersion, removed: str, roles: dict[str, NodeRole], size: int
) -> bool:
    """Can every partition of `removed` go to a distinct-from-holders node with a spare slot?"""
    orphans = v1.partitions_of(removed)
    if not orphans:
        return True
    g = nx.DiGraph()
    for n, r in roles.items():
        spare = (r.capacity or 0) // size - v1.stored_partitions(n)
        assert spare >= 0  # the partition size cannot grow when a node leaves
        if spare:
            g.add_edge(("n", n), "sink", capacity=spare)
    for p in orphans:
        g.add_edge("src", ("p", p), capacity=1)
        for n in roles:
            if n not in v1.nodes_of(p) and g.has_edge(("n", n), "sink"):
                g.add_edge(("p", p), ("n", n), capacity=1)
    if "sink" not in g:
        return False
    flow = nx.maximum_flow_value(g, "src", "sink", flow_func=nx.algorithms.flow.edmonds_karp)
    return flow == len(orphans)


@SETTINGS
@given(layout_then_remove())
def test_removing_a_node_moves_its_partitions_plus_only_forced_moves(
    c: tuple[dict[str, NodeRole], int, int | None, str],
) -> None:
    roles, rf, zr, removed = c
    v1, _ = version_of(roles, rf, zr, None)
    rest = {n: r for n, r in roles.items() if n != removed}
    v2, moved = version_of(rest, rf, zr, v1, 2)
    held = v1.stored_partitions(removed)
    assert moved >= held
    assert (moved == held) == direct_replacement_possible(v1, removed, rest, v2.partition_size)


def naive_repair(
    prev: list[list[str]], roles: dict[str, NodeRole], rf: int, zr: int, size: int
) -> int | None:
    """Greedy: keep previous holders, shed overloads, fill gaps with the emptiest node.

    Returns its number of new (partition, node) pairs, or None when it gets stuck. It must
    never beat the min-cost flow.
    """
    storage = {n: r for n, r in roles.items() if r.capacity is not None}
    slots = {n: (r.capacity or 0) // size for n, r in storage.items()}
    hold = [[n for n in prev[p] if n in storage] for p in range(N_PARTITIONS)]
    load = Counter(n for h in hold for n in h)
    for n in sorted(storage):
        p = N_PARTITIONS - 1
        while load[n] > slots[n]:
            if n in hold[p]:
                hold[p].remove(n)
                load[n] -= 1
            p -= 1
    for p in range(N_PARTITIONS):
        while len(hold[p]) < rf:
            have = {storage[n].zone for n in hold[p]}
            must_add_zone = zr - len(have) >= rf - len(hold[p])
            cands = [
                n
                for n in sorted(storage)
                if n not in hold[p] and load[n] < slots[n] and not (must_add_zone and storage[n].zone in have)
            ]
            if not cands:
                return None
            best = max(cands, key=lambda n: (storage[n].zone not in have, slots[n] - load[n]))
            hold[p].append(best)
            load[best] += 1
        if len({storage[n].zone for n in hold[p]}) < zr:
            return None
    assert all(load[n] <= slots[n] for n in storage) and all(len(set(h)) == rf for h in hold)
    return sum(len(set(hold[p]) - set(prev[p])) for p in range(N_PARTITIONS))


@st.composite
def cluster_and_change(draw: st.DrawFn) -> tuple[dict[str, NodeRole], dict[str, NodeRole], int, int | None]:
    roles, rf, zr = draw(cluster(max_nodes=7))
    after = dict(roles)
    kind = draw(st.sampled_from(["add", "remove", "capacity", "zone"]))
    target = draw(st.sampled_from(sorted(roles)))
    if kind == "add":
        after[NODE_IDS[9]] = NodeRole(f"z{draw(st.integers(0, 4))}", draw(st.integers(10**6, 10**13)))
    elif kind == "remove":
        del after[target]
    elif kind == "capacity":
        after[target] = NodeRole(roles[target].zone, draw(st.integers(10**6, 10**13)))
    else:
        after[target] = NodeRole(f"z{draw(st.integers(0, 4))}", roles[target].capacity)
    return roles, after, rf, zr


@SETTINGS
@given(cluster_and_change())
def test_min_cost_never_moves_more_than_a_greedy_repair_nor_less_than_new_loads(
    c: tuple[dict[str, NodeRole], dict[str, NodeRole], int, int | None],
) -> None:
    before, after, rf, zr = c
    try:
        v1, _ = version_of(before, rf, zr, None)
        v2, moved = version_of(after, rf, zr, v1, 2)
    except LayoutError:
        assume(False)
        return
    lower = sum(max(0, v2.stored_partitions(n) - v1.stored_partitions(n)) for n in after)
    assert moved >= lower
    prev = [v1.nodes_of(p) for p in range(N_PARTITIONS)]
    greedy = naive_repair(prev, after, rf, v2.effective_zone_redundancy(), v2.partition_size)
    if greedy is not None:
        assert moved <= greedy
    # Recomputing with nothing changed is a no-op: same ring, nothing moves.
    again = compute_assignment(after, rf, zr, v2)
    assert again.moved == 0 and again.ring_assignment == v2.ring_assignment


# ---- merge laws ----

ROLES = [NodeRole("z0", TB), NodeRole("z1", 2 * TB), NodeRole("z2", None), NodeRole("z1", TB, ["ssd"]), None]
# Few nodes and timestamps, so that replicas often write the same key at the same time and
# the tie-breaks are exercised.
op = st.one_of(
    st.tuples(st.just("stage"), st.integers(0, 3), st.sampled_from(ROLES), st.integers(0, 3)),
    st.tuples(st.just("params"), st.sampled_from([None, 1, 2, 3]), st.integers(0, 3)),
    st.tuples(st.just("revert"), st.integers(0, 3)),
    st.tuples(st.sampled_from(["ack", "sync", "sync_ack"]), st.integers(0, 5), st.integers(0, 3)),
)


def base_history() -> LayoutHistory:
    h = LayoutHistory.new(3)
    for i in range(3):
        h.stage_role(NODE_IDS[i], NodeRole(f"z{i}", TB), now_ms=0)
    h, _ = h.apply_staged(1, now_ms=1)
    return h


BASE = base_history()


def replay(ops: list[tuple]) -> LayoutHistory:
    h = BASE.clone()
    for o in ops:
        if o[0] == "stage":
            h.stage_role(NODE_IDS[o[1]], o[2], now_ms=o[3])
        elif o[0] == "params":
            h.stage_parameters(LayoutParameters(o[1]), now_ms=o[2])
        elif o[0] == "revert":
            h.revert_staged(now_ms=o[1])
        else:
            getattr(h, o[0])(NODE_IDS[o[1]], o[2])
    h.prune()
    return h


def merged(a: LayoutHistory, b: LayoutHistory) -> LayoutHistory:
    out = a.clone()
    out.merge(b)
    return out


ops_list = st.lists(op, max_size=8)


@settings(max_examples=50, deadline=None)
@given(ops_list, ops_list, ops_list)
def test_staging_and_tracker_merge_is_commutative_associative_idempotent(
    x: list[tuple], y: list[tuple], z: list[tuple]
) -> None:
    a, b, c = replay(x), replay(y), replay(z)
    assert merged(a, b).digest() == merged(b, a).digest()
    assert merged(merged(a, b), c).digest() == merged(a, merged(b, c)).digest()
    assert merged(a, a).digest() == a.digest()
    assert merged(a, a).merge(a) is False
    ab = merged(a, b)
    # The merge is an upper bound: merging either side again changes nothing.
    assert merged(ab, a).digest() == ab.digest() and merged(ab, b).digest() == ab.digest()


@settings(max_examples=25, deadline=None)
@given(ops_list, ops_list, st.booleans(), st.booleans())
def test_history_merge_with_an_applied_version_is_commutative_and_idempotent(
    x: list[tuple], y: list[tuple], apply_on_a: bool, everyone_synced: bool
) -> None:
    a, b = replay(x), replay(y)
    target = a if apply_on_a else b
    target.stage_role(NODE_IDS[7], NodeRole("z3", 3 * TB), now_ms=7)
    try:
        applied, _ = target.apply_staged(2, now_ms=8)
    except LayoutError:  # the random staged changes may leave too few storage nodes
        assume(False)
        return
    if everyone_synced:
        for n in applied.current().node_id_vec:
            applied.sync_ack(n, 2)
        applied.prune()
    if apply_on_a:
        a = applied
    else:
        b = applied
    ab, ba = merged(a, b), merged(b, a)
    assert ab.digest() == ba.digest()
    assert ab.current().version == 2
    assert merged(ab, ab).digest() == ab.digest()
    assert merged(ab, a).digest() == ab.digest() and merged(ab, b).digest() == ab.digest()
    ab.check()
