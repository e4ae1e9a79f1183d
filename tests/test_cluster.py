"""Real `grange server` processes on 127.0.0.1, set up and inspected through the CLI."""

from __future__ import annotations

import json
import secrets
import signal

import pytest

from tests.cluster import CliFailed, Cluster, Node, wait_until

pytestmark = pytest.mark.slow


@pytest.fixture
def cluster3(tmp_path):
    c = Cluster(tmp_path, 3, rf=3)
    try:
        c.start()
        c.connect()
        yield c
    finally:
        c.stop()


def _layout(node: Node) -> dict:
    return json.loads(node.cli("layout", "show", "--json"))


def test_three_nodes_connect_assign_apply_and_every_node_agrees(cluster3: Cluster) -> None:
    cluster3.assign_and_apply(["dc1", "dc2", "dc3"])
    ids = {n.id for n in cluster3.nodes}
    for node in cluster3.nodes:
        wait_until(lambda node=node: _layout(node)["version"] == 1, 20, f"node {node.index} to get layout 1")
        lay = _layout(node)
        assert {r["id"] for r in lay["roles"]} == ids
        assert all(r["storedPartitions"] == 256 for r in lay["roles"])  # rf=3 on 3 nodes: all of them
        assert lay["partitionSize"] == 10**9 // 256
        assert lay["stagedRoleChanges"] == []
        st = node.status()
        assert st["layoutVersion"] == 1
        assert {n["id"] for n in st["nodes"] if n["isUp"]} == ids
        assert {n["role"]["zone"] for n in st["nodes"]} == {"dc1", "dc2", "dc3"}
        history = json.loads(node.cli("layout", "history", "--json"))
        assert history["currentVersion"] == 1
        health = node.api("GetClusterHealth")
        assert health["status"] == "healthy" and health["partitionsAllOk"] == 256
    # the human table names every node and its zone
    out = cluster3.nodes[1].cli("status")
    for node in cluster3.nodes:
        assert node.id[:16] in out
    assert "dc2" in out and "up" in out


def test_sigkill_marks_node_down_and_restart_brings_it_back_with_same_id_and_layout(cluster3: Cluster) -> None:
    cluster3.assign_and_apply(["dc1", "dc2", "dc3"])
    a, b, c = cluster3.nodes
    wait_until(lambda: _layout(c)["version"] == 1, 20, "node 2 to get layout 1")
    c_id = c.id
    c.kill()
    for node in (a, b):
        wait_until(lambda node=node: c_id not in node.up_ids(), 30, f"node {node.index} to see node 2 down")
        entry = next(n for n in node.status()["nodes"] if n["id"] == c_id)
        assert entry["isUp"] is False and entry["role"]["zone"] == "dc3"
    assert a.api("GetClusterHealth")["status"] == "degraded"
    c.start()
    assert c.id == c_id
    for node in (a, b):
        wait_until(lambda node=node: c_id in node.up_ids(), 45, f"node {node.index} to see node 2 up again")
    lay = _layout(c)
    assert lay["version"] == 1 and {r["id"] for r in lay["roles"]} == {n.id for n in cluster3.nodes}
    wait_until(lambda: a.api("GetClusterHealth")["status"] == "healthy", 30, "health back to healthy")


def test_node_with_another_rpc_secret_never_appears(cluster3: Cluster, tmp_path) -> None:
    stranger = Node(tmp_path / "stranger", 9, secrets.token_hex(32), 3)
    stranger.start()
    try:
        r = cluster3.nodes[0].cli_raw("node", "connect", f"{stranger.id}@{stranger.addr}")
        assert r.returncode != 0 and "rpc_secret" in r.stderr
        r = stranger.cli_raw("node", "connect", f"{cluster3.nodes[0].id}@{cluster3.nodes[0].addr}")
        assert r.returncode != 0
        for node in cluster3.nodes:
            assert stranger.id not in {n["id"] for n in node.status()["nodes"]}
        assert "refused connection" in cluster3.nodes[0].log_path.read_text()
    finally:
        stranger.stop()


def test_layout_errors_are_one_line_and_change_nothing(cluster3: Cluster) -> None:
    a = cluster3.nodes[0]
    a.cli("layout", "assign", "-z", "dc1", "-c", "1G", cluster3.nodes[0].id[:10])
    a.cli("layout", "assign", "-z", "dc1", "-c", "1G", cluster3.nodes[1].id[:10])
    # rf=3 with two storage nodes cannot be satisfied: refused with the reason
    with pytest.raises(CliFailed) as e:
        a.cli("layout", "apply", "--version", "1")
    err = e.value.proc.stderr.strip()
    assert err.startswith("error:") and len(err.splitlines()) == 1 and "3" in err
    assert _layout(a)["version"] == 0
    with pytest.raises(CliFailed) as e:
        a.cli("layout", "apply", "--version", "5")
    assert "version" in e.value.proc.stderr
    with pytest.raises(CliFailed) as e:
        a.cli("layout", "assign", "-z", "dc1", "-c", "lots", cluster3.nodes[2].id[:10])
    assert e.value.proc.returncode != 0 and "Traceback" not in e.value.proc.stderr
    with pytest.raises(CliFailed) as e:
        a.cli("layout", "assign", "-z", "dc1", "-c", "1G", "ffffffffffff")
    assert "no known node" in e.value.proc.stderr
    with pytest.raises(CliFailed) as e:
        a.cli("json-api", "NoSuchOperation")
    assert "unknown admin operation" in e.value.proc.stderr
    # the preview says why too, and revert drops the staged roles
    preview = a.api("PreviewClusterLayoutChanges")
    assert "error" in preview and "3" in preview["error"]
    a.cli("layout", "revert", "--yes")
    assert _layout(a)["stagedRoleChanges"] == []


def test_bad_config_is_one_line_and_non_zero(tmp_path) -> None:
    node = Node(tmp_path, 0, secrets.token_hex(32), 3)
    node.config.write_text(node.config.read_text().replace("replication_factor", "replication_factr"))
    r = node.cli_raw("server")
    assert r.returncode != 0
    assert len(r.stderr.strip().splitlines()) == 1 and "replication_factor" in r.stderr
    r = node.cli_raw("-c", "/nonexistent/grange.toml", "status")
    assert r.returncode != 0 and "Traceback" not in r.stderr
    node.write_config()
    r = node.cli_raw("status")  # node not started yet
    assert r.returncode == 1 and r.stderr.startswith("error:") and len(r.stderr.strip().splitlines()) == 1


def test_node_restarted_on_a_new_port_is_found_again(cluster3: Cluster) -> None:
    a, b, c = cluster3.nodes
    c.kill()
    wait_until(lambda: c.id not in a.up_ids(), 30, "node 2 down")
    from tests.cluster import free_port

    c.rpc_port = free_port()
    c.write_config()
    c.start()
    # c dials the addresses it persisted; a and b learn its new address from it and gossip
    for node in (a, b):
        wait_until(lambda node=node: c.id in node.up_ids(), 45, f"node {node.index} to see node 2 at its new port")
        entry = next(n for n in node.status()["nodes"] if n["id"] == c.id)
        assert entry["addr"] == c.addr


def test_five_nodes_three_zones_capacity_proportional(tmp_path) -> None:
    c = Cluster(tmp_path, 5, rf=3)
    try:
        c.start()
        c.connect()
        zones = ["dc1", "dc1", "dc2", "dc2", "dc3"]
        caps = ["1G", "2G", "1G", "1G", "2G"]
        first = c.nodes[0]
        for node, z, cap in zip(c.nodes, zones, caps, strict=True):
            first.cli("layout", "assign", "-z", z, "-c", cap, node.id[:12])
        out = first.cli("layout", "show")
        assert "NEW CLUSTER LAYOUT" in out and "layout apply --version 1" in out
        first.cli("layout", "apply", "--version", "1")
        for node in c.nodes:
            wait_until(lambda node=node: _layout(node)["version"] == 1, 20, f"node {node.index} layout 1")
        lay = _layout(c.nodes[3])
        stored = {r["id"]: r["storedPartitions"] for r in lay["roles"]}
        assert sum(stored.values()) == 256 * 3
        size = lay["partitionSize"]
        for r in lay["roles"]:
            assert r["storedPartitions"] * size <= r["capacity"]
        # dc3 has one node: with zone redundancy "maximum" (3 zones) it holds every partition
        assert stored[c.nodes[4].id] == 256
        # remove a node, apply version 2: the history keeps both versions
        first.cli("layout", "remove", c.nodes[1].id[:12])
        first.cli("layout", "apply", "--version", "2")
        for node in c.nodes:
            wait_until(lambda node=node: _layout(node)["version"] == 2, 20, f"node {node.index} layout 2")
        h = json.loads(c.nodes[2].cli("layout", "history", "--json"))
        assert h["currentVersion"] == 2 and [v["version"] for v in h["versions"]][:2] == [2, 1]
        assert c.nodes[1].id not in {r["id"] for r in _layout(c.nodes[2])["roles"]}
    finally:
        c.stop()


def test_single_node_mode_assigns_itself_and_survives_restart(tmp_path) -> None:
    node = Node(tmp_path, 0, secrets.token_hex(32), 1)
    node.start("--single-node")
    try:
        wait_until(lambda: _layout(node)["version"] == 1, 20, "single-node layout")
        lay = _layout(node)
        assert [r["id"] for r in lay["roles"]] == [node.id] and lay["roles"][0]["storedPartitions"] == 256
        node.signal(signal.SIGTERM)
        node.proc.wait(15)
        node.start("--single-node")
        lay2 = _layout(node)
        assert lay2["version"] == 1 and lay2["roles"] == lay["roles"]
        assert node.api("GetClusterHealth")["status"] == "healthy"
    finally:
        node.stop()


def test_layout_operations_through_json_api_match_the_contract(cluster3: Cluster) -> None:
    from tests.spec import assert_matches_spec

    a, b, c = cluster3.nodes
    roles = [{"id": n.id, "zone": z, "capacity": 2 * 10**9, "tags": ["ssd"]}
             for n, z in zip(cluster3.nodes, ["dc1", "dc1", "dc2"], strict=True)]
    staged = a.api("UpdateClusterLayout", {"roles": roles, "parameters": {"zoneRedundancy": {"atLeast": 2}}})
    assert_matches_spec("UpdateClusterLayout", staged)
    assert len(staged["stagedRoleChanges"]) == 3
    # staged changes are gossiped: another node shows them too
    wait_until(lambda: len(c.api("GetClusterLayout")["stagedRoleChanges"]) == 3, 20, "staged roles on node 2")
    preview = b.api("PreviewClusterLayoutChanges")
    assert_matches_spec("PreviewClusterLayoutChanges", preview)
    assert preview["newLayout"]["version"] == 1 and preview["message"]
    applied = c.api("ApplyClusterLayout", {"version": 1})
    assert_matches_spec("ApplyClusterLayout", applied)
    assert applied["layout"]["parameters"] == {"zoneRedundancy": {"atLeast": 2}}
    for node in cluster3.nodes:
        wait_until(lambda node=node: node.api("GetClusterLayout")["version"] == 1, 20, "layout 1 everywhere")
        assert_matches_spec("GetClusterLayout", node.api("GetClusterLayout"))
        assert_matches_spec("GetClusterStatus", node.api("GetClusterStatus"))
        assert_matches_spec("GetClusterHealth", node.api("GetClusterHealth"))
        assert_matches_spec("GetClusterLayoutHistory", node.api("GetClusterLayoutHistory"))
    info = a.api("GetNodeInfo", {"node": "*"})
    assert_matches_spec("GetNodeInfo", info)
    assert set(info["success"]) == {n.id for n in cluster3.nodes} and info["error"] == {}
    assert_matches_spec("GetClusterStatistics", a.api("GetClusterStatistics"))
    assert_matches_spec("GetNodeStatistics", a.api("GetNodeStatistics", {"node": "self"}))
    conn = a.api("ConnectClusterNodes", [f"{b.id}@{b.addr}", "nonsense"])
    assert_matches_spec("ConnectClusterNodes", conn)
    assert conn[0]["success"] is True and conn[1]["success"] is False and conn[1]["error"]
    # stage a removal, then revert it
    a.api("UpdateClusterLayout", {"roles": [{"id": c.id, "remove": True}]})
    reverted = a.api("RevertClusterLayout")
    assert_matches_spec("RevertClusterLayout", reverted)
    assert reverted["stagedRoleChanges"] == [] and reverted["version"] == 1
    # malformed requests: one-line errors, nothing staged
    for bad in ({"roles": [{"id": "zz"}]}, {"roles": [{"id": c.id, "zone": "dc1", "capacity": -5, "tags": []}]},
                {"parameters": {"zoneRedundancy": {"atLeast": 9}}}):
        with pytest.raises(CliFailed):
            a.api("UpdateClusterLayout", bad)
    assert a.api("GetClusterLayout")["stagedRoleChanges"] == []
