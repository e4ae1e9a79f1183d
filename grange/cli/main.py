"""`grange`: Garage's CLI verbs over the admin operations.

Every command that acts on the cluster is one admin operation (named as in Garage's admin API
v2) sent to the local node over the cluster RPC; `json-api` calls any operation directly.
Failures print one line `error: …` on stderr and exit non-zero (2 for a bad config or bad
arguments, 1 for an operation that failed).
"""

from __future__ import annotations

import json
import os
import sys
from typing import Any

import click

from grange.cli.client import CliError
from grange.cli.context import Ctx, pass_ctx
from grange.cli.format import print_layout, print_layout_history, print_status, resolve_node
from grange.cli.keys_buckets import bucket, key
from grange.cli.operations import block, debug, repair, stats, worker
from grange.util.config import ConfigError
from grange.util.sizes import parse_size

CONFIG_ENV = ("GRANGE_CONFIG_FILE", "GARAGE_CONFIG_FILE")


def _fail(message: str, code: int) -> None:
    click.echo(f"error: {message}", err=True)
    sys.exit(code)


class GrangeGroup(click.Group):
    """Turns our expected errors into one line and an exit code, never a traceback."""

    def invoke(self, ctx: click.Context) -> Any:
        try:
            return super().invoke(ctx)
        except ConfigError as e:
            _fail(str(e), 2)
        except CliError as e:
            _fail(str(e), 1)
        except KeyboardInterrupt:
            _fail("interrupted", 130)


@click.group(cls=GrangeGroup, context_settings={"help_option_names": ["--help"]})
@click.option("-c", "--config", "config_path", envvar=list(CONFIG_ENV), help="Config file (TOML)")
@click.option("-h", "--rpc-host", help="Node to talk to, as <node id>@<host>:<port> (default: this config's node)")
@click.option("-s", "--rpc-secret", help="RPC secret (default: from the config)")
@click.version_option("0.1.0", prog_name="grange")
@click.pass_context
def cli(ctx: click.Context, config_path: str | None, rpc_host: str | None, rpc_secret: str | None) -> None:
    """Grange: a geo-distributed S3-compatible object store."""
    ctx.obj = Ctx(config_path, rpc_host, rpc_secret)


# ---------------------------------------------------------------------- server
@cli.command()
@click.option("--single-node", is_flag=True, help="Give this node a role and apply the layout if it has none")
@pass_ctx
def server(c: Ctx, single_node: bool) -> None:
    """Run a node."""
    from grange.server import run

    run(c.config(), single_node=single_node)


@cli.command()
@click.option("--dir", "root", default="./grange-data", show_default=True, help="Where config and data go")
@click.pass_context
def quickstart(ctx: click.Context, root: str) -> None:
    """Create a single-node config under DIR (once) and run that node (used by `make run`)."""
    from grange.cli.quickstart import ensure_config

    path = ensure_config(root)
    ctx.obj.config_path = path
    exe = os.path.relpath(sys.argv[0]) if os.path.isabs(sys.argv[0]) else sys.argv[0]
    click.echo(f"Single-node Grange, config in {path}")
    click.echo(f"  status:  {exe} -c {path} status")
    click.echo(f"  layout:  {exe} -c {path} layout show")
    from grange.cli.quickstart import first_run_setup
    from grange.server import run

    run(ctx.obj.config(), single_node=True, after_start=first_run_setup)


@cli.command()
@click.option("--json", "as_json", is_flag=True, help="Print GetClusterStatus as JSON")
@pass_ctx
def status(c: Ctx, as_json: bool) -> None:
    """Nodes of the cluster: id, hostname, address, zone, capacity, up/down, last seen."""
    st = c.call("GetClusterStatus")
    if as_json:
        click.echo(json.dumps(st, indent=2))
        return
    print_status(st, c.call("GetClusterHealth"))


# ---------------------------------------------------------------------- node
@cli.group()
def node() -> None:
    """Node identity and connections."""


@node.command("id")
@click.option("-q", "--quiet", is_flag=True, help="Print only ID@ADDR")
@pass_ctx
def node_id(c: Ctx, quiet: bool) -> None:
    """Print this node's ID@ADDR (what other nodes use with `node connect`)."""
    from grange.net.keys import read_node_id
    from grange.server import public_addr_of

    config = c.config(require_secret=False)
    nid = read_node_id(config.metadata_dir)
    if nid is None:
        raise CliError(f"no node key in {config.metadata_dir}: start the node first with `grange server`")
    line = f"{nid}@{public_addr_of(config)}"
    if quiet:
        click.echo(line)
        return
    click.echo(line)
    click.echo("\nTo connect another node to this one, run on it:\n"
               f"    grange node connect {line}", err=True)


@node.command("connect")
@click.argument("node_addr")
@pass_ctx
def node_connect(c: Ctx, node_addr: str) -> None:
    """Connect to NODE_ID@HOST:PORT."""
    [res] = c.call("ConnectClusterNodes", [node_addr])
    if not res["success"]:
        raise CliError(f"could not connect to {node_addr}: {res['error']}")
    click.echo(f"Success: connected to {node_addr.partition('@')[0][:16]}")


# ---------------------------------------------------------------------- layout
@cli.group()
def layout() -> None:
    """Cluster layout: roles, staging, apply, history."""


@layout.command("show")
@click.option("--json", "as_json", is_flag=True, help="Print GetClusterLayout as JSON")
@pass_ctx
def layout_show(c: Ctx, as_json: bool) -> None:
    """Current layout, staged changes and what applying them would do."""
    lay = c.call("GetClusterLayout")
    if as_json:
        click.echo(json.dumps(lay, indent=2))
        return
    preview = c.call("PreviewClusterLayoutChanges") if lay["stagedRoleChanges"] or lay.get("stagedParameters") else None
    print_layout(lay, preview)


@layout.command("assign")
@click.argument("nodes", nargs=-1, required=True)
@click.option("-z", "--zone", help="Zone (failure domain) of the node")
@click.option("-c", "--capacity", help="Storage capacity, e.g. 100G, 1T, 500GiB")
@click.option("-g", "--gateway", is_flag=True, help="Gateway role: serves APIs, stores nothing")
@click.option("-t", "--tag", "tags", multiple=True, help="Tag (repeatable)")
@pass_ctx
def layout_assign(c: Ctx, nodes: tuple[str, ...], zone: str | None, capacity: str | None, gateway: bool,
                  tags: tuple[str, ...]) -> None:
    """Stage a role for NODES (id or unique id prefix)."""
    if gateway and capacity:
        raise click.UsageError("-g (gateway) and -c (capacity) are exclusive")
    cap: int | None = None
    if capacity is not None:
        try:
            cap = parse_size(capacity, "capacity")
        except ValueError as e:
            raise click.UsageError(str(e)) from None
        if cap <= 0:
            raise click.UsageError("capacity must be > 0 (use -g for a node that stores nothing)")
    status_nodes = c.call("GetClusterStatus")["nodes"]
    lay = c.call("GetClusterLayout")
    current = {r["id"]: r for r in lay["roles"]}
    staged = {r["id"]: r for r in lay["stagedRoleChanges"] if not r.get("remove")}
    roles = []
    for prefix in nodes:
        nid = resolve_node(prefix, [n["id"] for n in status_nodes] + list(current))
        old = staged.get(nid) or current.get(nid) or {}
        z = zone or old.get("zone")
        if not z:
            raise click.UsageError(f"node {nid[:16]} has no zone yet: give one with -z")
        new_cap = None if gateway else (cap if cap is not None else old.get("capacity"))
        if not gateway and new_cap is None:
            raise click.UsageError(f"node {nid[:16]} has no capacity yet: give one with -c, or -g for a gateway")
        roles.append({"id": nid, "zone": z, "capacity": new_cap, "tags": list(tags) if tags else old.get("tags", [])})
    c.call("UpdateClusterLayout", {"roles": roles})
    click.echo("Role changes are staged but not yet committed.\n"
               "Use `grange layout show` to view staged role changes,\n"
               "and `grange layout apply` to enact staged changes.")


@layout.command("remove")
@click.argument("nodes", nargs=-1, required=True)
@pass_ctx
def layout_remove(c: Ctx, nodes: tuple[str, ...]) -> None:
    """Stage the removal of NODES' roles."""
    lay = c.call("GetClusterLayout")
    known = [r["id"] for r in lay["roles"]] + [r["id"] for r in lay["stagedRoleChanges"]]
    roles = [{"id": resolve_node(p, known), "remove": True} for p in nodes]
    c.call("UpdateClusterLayout", {"roles": roles})
    click.echo("Role removal is staged but not yet committed.\nUse `grange layout apply` to enact it.")


@layout.command("config")
@click.option("-r", "--redundancy", required=True, help="Zone redundancy: 'maximum' or a number of zones")
@pass_ctx
def layout_config(c: Ctx, redundancy: str) -> None:
    """Stage layout parameters (zone redundancy)."""
    if redundancy in ("maximum", "max"):
        zr: Any = "maximum"
    elif redundancy.isdigit() and int(redundancy) >= 1:
        zr = {"atLeast": int(redundancy)}
    else:
        raise click.UsageError(f"zone redundancy must be 'maximum' or a number >= 1, got {redundancy!r}")
    c.call("UpdateClusterLayout", {"parameters": {"zoneRedundancy": zr}})
    click.echo(f"The zone redundancy parameter has been set to '{redundancy}'.")


@layout.command("apply")
@click.option("--version", "version", type=int, help="The new version number (current + 1), as a safety check")
@pass_ctx
def layout_apply(c: Ctx, version: int | None) -> None:
    """Compute and apply the staged layout changes."""
    if version is None:
        version = c.call("GetClusterLayout")["version"] + 1
    res = c.call("ApplyClusterLayout", {"version": version})
    for line in res["message"]:
        click.echo(line)
    click.echo(f"New cluster layout with updated role assignment has been applied in cluster (version {version}).")


@layout.command("revert")
@click.option("--yes", is_flag=True, help="Confirm (accepted for compatibility with Garage)")
@pass_ctx
def layout_revert(c: Ctx, yes: bool) -> None:
    """Drop the staged layout changes."""
    c.call("RevertClusterLayout")
    click.echo("All proposed role changes in cluster layout have been canceled.")


@layout.command("history")
@click.option("--json", "as_json", is_flag=True, help="Print GetClusterLayoutHistory as JSON")
@pass_ctx
def layout_history(c: Ctx, as_json: bool) -> None:
    """Layout versions and each node's update trackers."""
    h = c.call("GetClusterLayoutHistory")
    if as_json:
        click.echo(json.dumps(h, indent=2))
        return
    print_layout_history(h)


# ---------------------------------------------------------------------- json-api
@cli.command("json-api")
@click.argument("operation")
@click.argument("payload", required=False)
@pass_ctx
def json_api(c: Ctx, operation: str, payload: str | None) -> None:
    """Call admin OPERATION with a JSON PAYLOAD (or '-' for stdin); print the JSON result."""
    body: Any = None
    if payload is not None:
        text = sys.stdin.read() if payload == "-" else payload
        try:
            body = json.loads(text) if text.strip() else None
        except json.JSONDecodeError as e:
            raise click.UsageError(f"payload is not valid JSON: {e}") from None
    query: dict[str, str] = {}
    if isinstance(body, dict) and isinstance(body.get("node"), str):
        query["node"] = body.pop("node")  # node-scoped operations: {"node": "self" | "*" | ID}
    click.echo(json.dumps(c.call(operation, body, query), indent=2))


for _command in (key, bucket, worker, repair, block, stats, debug):
    cli.add_command(_command)


def main() -> None:
    cli.main(prog_name="grange")
