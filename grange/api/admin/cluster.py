"""Cluster operations: GetClusterStatus, GetClusterHealth, ConnectClusterNodes, GetClusterStatistics."""

from __future__ import annotations

import time
from typing import Any

from grange.api.admin.registry import NodeContext, operation, require
from grange.net.errors import RpcError
from grange.rpc.layout.version import is_valid_node_id
from grange.rpc.rpc_helper import write_quorum
from grange.rpc.system import GRANGE_VERSION, NodeStatus, _disk


def _role_json(role: Any) -> dict[str, Any] | None:
    if role is None:
        return None
    return {"zone": role.zone, "capacity": role.capacity, "tags": list(role.tags)}


def _free(d: tuple[int, int] | None) -> dict[str, int] | None:
    return None if d is None else {"available": d[0], "total": d[1]}


@operation("GetClusterStatus")
async def get_cluster_status(ctx: NodeContext, body: Any, query: dict[str, str]) -> dict[str, Any]:
    system, history = ctx.system, ctx.layout.history
    current = history.current()
    in_live = {n for v in history.versions for n in v.all_nodes()}
    ids = {system.id, *in_live, *(p for p, i in system.peers.items() if i.status is not None)}
    now = time.time()
    nodes = []
    for node_id in sorted(ids):
        if node_id == system.id:
            st: NodeStatus | None = system.local_status()
            is_up, last_seen, addr = True, None, system.public_addr
        else:
            info = system.peers.get(node_id)
            st = info.status if info else None
            is_up = system.is_up(node_id)
            last_seen = None if is_up or not info or info.last_seen is None else int(now - info.last_seen)
            addr = info.addr if info else None
        role = current.node_role(node_id)
        nodes.append({
            "id": node_id,
            "garageVersion": st.version if st else None,
            "addr": addr,
            "hostname": st.hostname if st else None,
            "isUp": is_up,
            "lastSeenSecsAgo": last_seen,
            "role": _role_json(role),
            "draining": role is None and node_id in in_live,
            "dataPartition": _free(st.data_disk) if st else None,
            "metadataPartition": _free(st.meta_disk) if st else None,
        })
    return {"layoutVersion": current.version, "nodes": nodes}


def cluster_health(ctx: NodeContext) -> dict[str, Any]:
    system, current = ctx.system, ctx.layout.current()
    storage = current.storage_nodes()
    up = {n for n in storage if system.is_up(n)}
    rf = current.replication_factor
    wq = write_quorum(rf, ctx.config.consistency_mode)
    partitions = 256
    quorum = all_ok = 0
    if current.has_ring():
        for p in range(partitions):
            holders = current.nodes_of(p)
            n_up = sum(1 for h in holders if h in up)
            quorum += n_up >= wq
            all_ok += n_up == len(holders)
    known = {p for p, i in system.peers.items() if i.status is not None} | {system.id}
    connected = {p for p in known if system.is_up(p)}
    if not storage or quorum < partitions:
        status = "unavailable"
    elif all_ok == partitions and len(up) == len(storage):
        status = "healthy"
    else:
        status = "degraded"
    return {
        "status": status,
        "knownNodes": len(known),
        "connectedNodes": len(connected),
        "storageNodes": len(storage),
        "storageNodesOk": len(up),
        "partitions": partitions,
        "partitionsQuorum": quorum,
        "partitionsAllOk": all_ok,
    }


@operation("GetClusterHealth")
async def get_cluster_health(ctx: NodeContext, body: Any, query: dict[str, str]) -> dict[str, Any]:
    return cluster_health(ctx)


@operation("ConnectClusterNodes")
async def connect_cluster_nodes(ctx: NodeContext, body: Any, query: dict[str, str]) -> list[dict[str, Any]]:
    require(isinstance(body, list) and all(isinstance(x, str) for x in body),
            "ConnectClusterNodes expects a JSON list of \"<node id>@<host>:<port>\" strings")
    out = []
    for entry in body:
        node_id, sep, addr = entry.partition("@")
        if not sep or not is_valid_node_id(node_id) or ":" not in addr:
            out.append({"success": False, "error": f"invalid node address {entry!r}: expected <64 hex id>@<host>:<port>"})
            continue
        try:
            await ctx.system.connect(node_id, addr)
            out.append({"success": True, "error": None})
        except (RpcError, ValueError) as e:
            out.append({"success": False, "error": str(e)})
    return out


@operation("GetClusterStatistics")
async def get_cluster_statistics(ctx: NodeContext, body: Any, query: dict[str, str]) -> dict[str, Any]:
    status = await get_cluster_status(ctx, None, {})
    lines = ["Storage nodes:", "  ID                Hostname  Zone  Capacity  Data avail  Meta avail"]
    total_avail = 0
    for n in status["nodes"]:
        role = n["role"]
        if not role or role.get("capacity") is None:
            continue
        d, m = n["dataPartition"], n["metadataPartition"]
        if d:
            total_avail += d["available"]
        lines.append(
            f"  {n['id'][:16]}  {n['hostname'] or '?'}  {role['zone']}  {role['capacity']}  "
            f"{d['available'] if d else '?'}  {m['available'] if m else '?'}"
        )
    lines.append(f"Sum of available data space on storage nodes: {total_avail} bytes")
    return {"freeform": "\n".join(lines)}


@operation("GetNodeInfo", node_scoped=True)
async def get_node_info(ctx: NodeContext, body: Any, query: dict[str, str]) -> dict[str, Any]:
    from grange.api.admin.fanout import fan_out

    async def local(c: NodeContext) -> dict[str, Any]:
        return {
            "nodeId": c.system.id,
            "garageVersion": GRANGE_VERSION,
            "rustVersion": "n/a (Python)",
            "dbEngine": c.db_engine,
            "garageFeatures": ["python"],
        }

    return await fan_out(ctx, "GetNodeInfo", query, local)


@operation("GetNodeStatistics", node_scoped=True)
async def get_node_statistics(ctx: NodeContext, body: Any, query: dict[str, str]) -> dict[str, Any]:
    from grange.api.admin.fanout import fan_out

    async def local(c: NodeContext) -> dict[str, Any]:
        meta = _disk(c.config.metadata_dir)
        lines = [f"Node {c.system.id}", f"Grange version {GRANGE_VERSION}", f"Database engine {c.db_engine}"]
        if meta:
            lines.append(f"Metadata disk: {meta[0]} bytes available of {meta[1]}")
        return {"freeform": "\n".join(lines)}

    return await fan_out(ctx, "GetNodeStatistics", query, local)

