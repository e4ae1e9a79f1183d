"""Layout operations: Get/Update/Preview/Apply/Revert ClusterLayout, GetClusterLayoutHistory."""

from __future__ import annotations

from typing import Any

from grange.api.admin.registry import AdminError, NodeContext, operation, require
from grange.rpc.layout.history import LayoutHistory
from grange.rpc.layout.version import LayoutError, LayoutVersion, NodeRole, is_valid_node_id


def zone_redundancy_json(zr: int | None) -> Any:
    return "maximum" if zr is None else {"atLeast": zr}


def parse_zone_redundancy(value: Any) -> int | None:
    if value == "maximum":
        return None
    if isinstance(value, dict) and isinstance(value.get("atLeast"), int) and value["atLeast"] >= 1:
        return value["atLeast"]
    raise AdminError('zoneRedundancy must be "maximum" or {"atLeast": N} with N >= 1')


def _role_entry(version: LayoutVersion, node: str, role: NodeRole) -> dict[str, Any]:
    stored = version.stored_partitions(node) if role.capacity is not None else None
    return {
        "id": node,
        "zone": role.zone,
        "capacity": role.capacity,
        "tags": list(role.tags),
        "storedPartitions": stored,
        "usableCapacity": None if stored is None else stored * version.partition_size,
    }


def layout_json(history: LayoutHistory, version: LayoutVersion | None = None) -> dict[str, Any]:
    """GetClusterLayoutResponse for `version` (default: current) with the staged changes."""
    v = version or history.current()
    staged = history.staged_role_changes()
    staged_params = history.staged_parameters()
    changes = []
    for node, role in sorted(staged.items()):
        if role is None:
            changes.append({"id": node, "remove": True})
        else:
            changes.append({"id": node, "zone": role.zone, "capacity": role.capacity, "tags": list(role.tags)})
    return {
        "version": v.version,
        "roles": [_role_entry(v, n, r) for n, r in sorted(v.roles.items())],
        "parameters": {"zoneRedundancy": zone_redundancy_json(v.parameters.zone_redundancy)},
        "partitionSize": v.partition_size,
        "stagedRoleChanges": changes,
        "stagedParameters": (
            None if staged_params == v.parameters
            else {"zoneRedundancy": zone_redundancy_json(staged_params.zone_redundancy)}
        ),
    }


@operation("GetClusterLayout")
async def get_cluster_layout(ctx: NodeContext, body: Any, query: dict[str, str]) -> dict[str, Any]:
    return layout_json(ctx.layout.history)


def _parse_role_change(ctx: NodeContext, item: Any) -> tuple[str, NodeRole | None]:
    require(isinstance(item, dict), "each role change must be a JSON object")
    node = item.get("id")
    require(isinstance(node, str) and is_valid_node_id(node), f"invalid node id {node!r}: expected 64 hex characters")
    if item.get("remove") is True:
        require(node in ctx.layout.current().roles or node in ctx.layout.history.staged_role_changes(),
                f"node {node[:16]} has no role to remove")
        return node, None
    zone, capacity, tags = item.get("zone"), item.get("capacity"), item.get("tags", [])
    require(isinstance(zone, str) and zone != "", "a role needs a non-empty zone")
    require(capacity is None or (isinstance(capacity, int) and not isinstance(capacity, bool)),
            "capacity must be an integer number of bytes, or null for a gateway")
    if capacity is not None and capacity <= 0:
        raise AdminError("capacity must be > 0 (use a gateway role, capacity null, for a node that stores nothing)")
    require(isinstance(tags, list) and all(isinstance(t, str) for t in tags), "tags must be a list of strings")
    return node, NodeRole(zone=zone, capacity=capacity, tags=list(tags))


@operation("UpdateClusterLayout")
async def update_cluster_layout(ctx: NodeContext, body: Any, query: dict[str, str]) -> dict[str, Any]:
    require(isinstance(body, dict), "UpdateClusterLayout expects a JSON object {roles, parameters}")
    roles = body.get("roles") or []
    require(isinstance(roles, list), "roles must be a list")
    changes = dict(_parse_role_change(ctx, item) for item in roles)
    params = body.get("parameters")
    if params is not None:
        require(isinstance(params, dict) and "zoneRedundancy" in params, "parameters must be {zoneRedundancy: ...}")
        zr = parse_zone_redundancy(params["zoneRedundancy"])
        if zr is not None and zr > ctx.layout.replication_factor:
            raise AdminError(f"zone redundancy {zr} exceeds the replication factor {ctx.layout.replication_factor}")
        await ctx.layout.stage_parameters(zr)
    if changes:
        await ctx.layout.stage_roles(changes)
    return layout_json(ctx.layout.history)


@operation("PreviewClusterLayoutChanges")
async def preview_cluster_layout_changes(ctx: NodeContext, body: Any, query: dict[str, str]) -> dict[str, Any]:
    history = ctx.layout.history
    try:
        new, messages = history.preview()
    except LayoutError as e:
        return {"error": str(e)}
    return {"message": messages, "newLayout": layout_json(history, new)}


@operation("ApplyClusterLayout")
async def apply_cluster_layout(ctx: NodeContext, body: Any, query: dict[str, str]) -> dict[str, Any]:
    require(isinstance(body, dict) and isinstance(body.get("version"), int),
            "ApplyClusterLayout expects {\"version\": N} where N is the current version + 1")
    try:
        messages = await ctx.layout.apply(body["version"])
    except LayoutError as e:
        raise AdminError(str(e)) from None
    return {"message": messages, "layout": layout_json(ctx.layout.history)}


@operation("RevertClusterLayout")
async def revert_cluster_layout(ctx: NodeContext, body: Any, query: dict[str, str]) -> dict[str, Any]:
    await ctx.layout.revert()
    return layout_json(ctx.layout.history)


@operation("GetClusterLayoutHistory")
async def get_cluster_layout_history(ctx: NodeContext, body: Any, query: dict[str, str]) -> dict[str, Any]:
    h = ctx.layout.history
    versions = []
    statuses = dict(h.version_statuses())
    for v in reversed([*h.old_versions, *h.versions]):
        versions.append({
            "version": v.version,
            "status": statuses.get(v.version, "Historical"),
            "storageNodes": len(v.storage_nodes()),
            "gatewayNodes": len(v.gateway_nodes()),
        })
    t = h.update_trackers
    nodes = sorted({*t.ack_map, *t.sync_map, *t.sync_ack_map})
    return {
        "currentVersion": h.current().version,
        "minAck": h.min_ack(),
        "versions": versions,
        "updateTrackers": {
            n: {"ack": t.ack_map.get(n, 0), "sync": t.sync_map.get(n, 0), "syncAck": t.sync_ack_map.get(n, 0)}
            for n in nodes
        },
    }

