"""Human tables for the CLI's read commands (their `--json` form prints the operation's JSON)."""

from __future__ import annotations

from typing import Any

import click

from grange.cli.client import CliError
from grange.util.sizes import format_size


def table(rows: list[list[str]]) -> str:
    widths = [max(len(r[i]) for r in rows) for i in range(len(rows[0]))]
    return "\n".join("  ".join(c.ljust(w) for c, w in zip(r, widths, strict=True)).rstrip() for r in rows)


def resolve_node(prefix: str, known: list[str]) -> str:
    """Full node id from an id or a unique prefix of a known node."""
    prefix = prefix.lower().partition("@")[0]
    matches = sorted({n for n in known if n.startswith(prefix)})
    if len(matches) == 1:
        return matches[0]
    if not matches:
        if len(prefix) == 64 and all(ch in "0123456789abcdef" for ch in prefix):
            return prefix
        raise CliError(f"no known node matches {prefix!r} (see `grange status`)")
    raise CliError(f"{prefix!r} matches {len(matches)} nodes; give a longer prefix")


def _cap(v: int | None) -> str:
    return "gateway" if v is None else format_size(v)


def print_status(st: dict[str, Any], health: dict[str, Any]) -> None:
    click.echo("==== HEALTHY NODES ====" if health["status"] == "healthy" else f"==== NODES ({health['status']}) ====")
    rows = [["ID", "Hostname", "Address", "Tags", "Zone", "Capacity", "Status", "Last seen"]]
    for n in st["nodes"]:
        role = n.get("role") or {}
        if n["isUp"]:
            state, seen = "up", "-"
        else:
            state = "down"
            seen = "never seen" if n.get("lastSeenSecsAgo") is None else f"{n['lastSeenSecsAgo']}s ago"
        if n.get("draining"):
            state += " (draining)"
        rows.append([
            n["id"][:16], n.get("hostname") or "?", n.get("addr") or "?", ",".join(role.get("tags", [])),
            role.get("zone", "-"), _cap(role.get("capacity")) if role else "no role", state, seen,
        ])
    click.echo(table(rows))
    click.echo(f"\nLayout version {st['layoutVersion']}; {health['storageNodesOk']}/{health['storageNodes']} "
               f"storage nodes up; {health['partitionsQuorum']}/{health['partitions']} partitions with write quorum")


def _roles_table(lay: dict[str, Any]) -> str:
    rows = [["ID", "Tags", "Zone", "Capacity", "Partitions", "Usable capacity"]]
    for r in lay["roles"]:
        usable = r.get("usableCapacity")
        rows.append([
            r["id"][:16], ",".join(r["tags"]), r["zone"], _cap(r["capacity"]),
            str(r.get("storedPartitions") or 0) if r["capacity"] is not None else "-",
            format_size(usable) if usable is not None else "-",
        ])
    return table(rows)


def _zr(p: dict[str, Any] | None) -> str:
    if p is None:
        return "-"
    zr = p["zoneRedundancy"]
    return "maximum" if zr == "maximum" else str(zr["atLeast"])


def print_layout(lay: dict[str, Any], preview: dict[str, Any] | None) -> None:
    click.echo("==== CURRENT CLUSTER LAYOUT ====")
    click.echo(_roles_table(lay) if lay["roles"] else "No nodes currently have a role in the cluster.")
    click.echo(f"\nZone redundancy: {_zr(lay['parameters'])}")
    click.echo(f"Partition size: {format_size(lay['partitionSize'])}")
    click.echo(f"Current cluster layout version: {lay['version']}")
    if not lay["stagedRoleChanges"] and not lay.get("stagedParameters"):
        return
    click.echo("\n==== STAGED ROLE CHANGES ====")
    rows = [["ID", "Tags", "Zone", "Capacity"]]
    for ch in lay["stagedRoleChanges"]:
        if ch.get("remove"):
            rows.append([ch["id"][:16], "", "", "REMOVED"])
        else:
            rows.append([ch["id"][:16], ",".join(ch["tags"]), ch["zone"], _cap(ch["capacity"])])
    click.echo(table(rows))
    if lay.get("stagedParameters"):
        click.echo(f"Zone redundancy: {_zr(lay['stagedParameters'])}")
    if preview is None:
        return
    if "error" in preview:
        click.echo(f"\n==== THE STAGED CHANGES CANNOT BE APPLIED ====\n{preview['error']}")
        return
    new = preview["newLayout"]
    click.echo("\n==== NEW CLUSTER LAYOUT AFTER APPLYING CHANGES ====")
    click.echo(_roles_table(new))
    click.echo("")
    for line in preview["message"]:
        click.echo(line)
    click.echo(f"\nTo enact the staged role changes, type:\n\n    grange layout apply --version {new['version']}\n"
               "\nYou can also revert all proposed changes with: grange layout revert")


def print_layout_history(h: dict[str, Any]) -> None:
    click.echo("==== LAYOUT HISTORY ====")
    rows = [["Version", "Status", "Storage nodes", "Gateway nodes"]]
    for v in h["versions"]:
        rows.append([f"#{v['version']}", v["status"], str(v["storageNodes"]), str(v["gatewayNodes"])])
    click.echo(table(rows))
    click.echo(f"\nCurrent version: {h['currentVersion']}; all nodes acknowledge at least version {h['minAck']}")
    trackers = h.get("updateTrackers") or {}
    if trackers:
        click.echo("\n==== UPDATE TRACKERS ====")
        rows = [["Node", "Ack", "Sync", "Sync ack"]]
        for node, t in sorted(trackers.items()):
            rows.append([node[:16], f"#{t['ack']}", f"#{t['sync']}", f"#{t['syncAck']}"])
        click.echo(table(rows))
