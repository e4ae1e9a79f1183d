"""CLI verbs over the storage layer: `worker`, `repair`, `block`, `stats`, and hidden `debug`.

Node-scoped commands act on the local node, or on every node with `-a/--all-nodes`.
"""

from __future__ import annotations

import json
from typing import Any

import click

from grange.cli.client import CliError
from grange.cli.context import Ctx, pass_ctx
from grange.cli.format import table


def _node(all_nodes: bool) -> str:
    return "*" if all_nodes else "self"


def _multi(c: Ctx, op: str, body: Any, all_nodes: bool) -> dict[str, Any]:
    """Call a node-scoped operation; fail with the nodes' errors if any node failed."""
    res = c.call(op, body, {"node": _node(all_nodes)})
    if res["error"]:
        raise CliError("; ".join(f"{n[:16]}: {e}" for n, e in res["error"].items()))
    return res["success"]  # type: ignore[no-any-return]


# ---------------------------------------------------------------------- worker
@click.group()
def worker() -> None:
    """Background workers: list, info, variables."""


@worker.command("list")
@click.option("-a", "--all-nodes", is_flag=True)
@click.option("--busy", is_flag=True, help="Only busy workers")
@click.option("--errors", is_flag=True, help="Only workers with errors")
@click.option("--json", "as_json", is_flag=True)
@pass_ctx
def worker_list(c: Any, all_nodes: bool, busy: bool, errors: bool, as_json: bool) -> None:
    res = _multi(c, "ListWorkers", {"busyOnly": busy, "errorOnly": errors}, all_nodes)
    if as_json:
        click.echo(json.dumps(res, indent=2))
        return
    for node, workers in res.items():
        click.echo(f"==== Node {node[:16]} ====")
        rows = [["TID", "State", "Name", "Queue", "Errors", "Last error"]]
        for w in workers:
            state = w["state"] if isinstance(w["state"], str) else "throttled"
            last = (w.get("lastError") or {}).get("message", "")
            rows.append([str(w["id"]), state, w["name"], str(w.get("queueLength") or ""),
                         f"{w['errors']}" + (f" ({w['consecutiveErrors']} in a row)" if w["consecutiveErrors"] else ""),
                         last[:60]])
        click.echo(table(rows))


@worker.command("info")
@click.argument("tid", type=int)
@pass_ctx
def worker_info(c: Any, tid: int) -> None:
    for _, w in _multi(c, "GetWorkerInfo", {"id": tid}, False).items():
        click.echo(json.dumps(w, indent=2))


@worker.command("get")
@click.option("-a", "--all-nodes", is_flag=True)
@click.argument("variable", required=False)
@pass_ctx
def worker_get(c: Any, all_nodes: bool, variable: str | None) -> None:
    for node, variables in _multi(c, "GetWorkerVariable", {"variable": variable}, all_nodes).items():
        for k, v in sorted(variables.items()):
            click.echo(f"{node[:16]}  {k}  {v}")


@worker.command("set")
@click.option("-a", "--all-nodes", is_flag=True)
@click.argument("variable")
@click.argument("value")
@pass_ctx
def worker_set(c: Any, all_nodes: bool, variable: str, value: str) -> None:
    for node, res in _multi(c, "SetWorkerVariable", {"variable": variable, "value": value}, all_nodes).items():
        click.echo(f"{node[:16]}  {res['variable']} = {res['value']}")


# ---------------------------------------------------------------------- repair
_REPAIRS = {"tables": "tables", "blocks": "blocks", "versions": "versions", "mpu": "multipartUploads",
            "block-refs": "blockRefs", "block-rc": "blockRc", "rebalance": "rebalance", "aliases": "aliases"}


@click.command()
@click.option("-a", "--all-nodes", is_flag=True, help="Run on every node")
@click.option("--yes", is_flag=True, help="Confirm")
@click.option("--wait", is_flag=True, help="Return only when the repair pass is over")
@click.argument("what", type=click.Choice([*_REPAIRS, "scrub"]))
@click.argument("scrub_cmd", required=False, type=click.Choice(["start", "pause", "resume", "cancel"]))
@pass_ctx
def repair(c: Any, all_nodes: bool, yes: bool, wait: bool, what: str, scrub_cmd: str | None) -> None:
    """Launch a repair: tables, blocks, versions, mpu, block-refs, block-rc, rebalance, scrub CMD."""
    if not yes:
        raise CliError("repair operations can be heavy: add --yes to confirm")
    if what == "scrub":
        if scrub_cmd is None:
            raise click.UsageError("scrub needs a command: start, pause, resume or cancel")
        rt: Any = {"scrub": scrub_cmd}
    else:
        rt = _REPAIRS[what]
    nodes = _multi(c, "LaunchRepairOperation", {"repairType": rt, "wait": wait}, all_nodes)
    click.echo(f"Repair {'done' if wait else 'launched'} on {len(nodes)} node(s).")


# ---------------------------------------------------------------------- block
@click.group()
def block() -> None:
    """Data blocks: errors, info, retry, purge."""


@block.command("list-errors")
@click.option("--json", "as_json", is_flag=True)
@pass_ctx
def block_list_errors(c: Any, as_json: bool) -> None:
    [errors] = _multi(c, "ListBlockErrors", None, False).values()
    if as_json:
        click.echo(json.dumps(errors, indent=2))
        return
    rows = [["Hash", "RC", "Errors", "Last try", "Next try"]]
    for e in errors:
        rows.append([e["blockHash"], str(e["refcount"]), str(e["errorCount"]), f"{e['lastTrySecsAgo']}s ago",
                     f"in {e['nextTryInSecs']}s"])
    click.echo(table(rows) if errors else "No block errors.")


@block.command("info")
@click.argument("hash")
@pass_ctx
def block_info(c: Any, hash: str) -> None:
    [info] = _multi(c, "GetBlockInfo", {"blockHash": hash}, False).values()
    click.echo(json.dumps(info, indent=2))


@block.command("retry-now")
@click.option("--all", "all_", is_flag=True)
@click.argument("hashes", nargs=-1)
@pass_ctx
def block_retry_now(c: Any, all_: bool, hashes: tuple[str, ...]) -> None:
    if not all_ and not hashes:
        raise click.UsageError("give block hashes, or --all")
    body = {"all": True} if all_ else {"blockHashes": list(hashes)}
    [res] = _multi(c, "RetryBlockResync", body, False).values()
    click.echo(f"{res['count']} block(s) queued for an immediate resync.")


@block.command("purge")
@click.option("--yes", is_flag=True)
@click.argument("hashes", nargs=-1, required=True)
@pass_ctx
def block_purge(c: Any, yes: bool, hashes: tuple[str, ...]) -> None:
    if not yes:
        raise CliError("purging deletes every object that uses these blocks: add --yes to confirm")
    [res] = _multi(c, "PurgeBlocks", list(hashes), False).values()
    click.echo(json.dumps(res, indent=2))


# ---------------------------------------------------------------------- stats
@click.command()
@click.option("-a", "--all-nodes", is_flag=True)
@pass_ctx
def stats(c: Any, all_nodes: bool) -> None:
    """Statistics of this node (or all nodes) and of the cluster."""
    for node, res in _multi(c, "GetNodeStatistics", None, all_nodes).items():
        click.echo(f"==== Node {node[:16]} ====\n{res['freeform']}\n")
    click.echo(c.call("GetClusterStatistics")["freeform"])


# ---------------------------------------------------------------------- debug (hidden)
@click.group(hidden=True)
def debug() -> None:
    """Internal test entry point to the data path (before the S3 API)."""


@debug.command("put-object")
@click.argument("bucket")
@click.argument("key")
@click.argument("file", type=click.File("rb"))
@pass_ctx
def debug_put(c: Any, bucket: str, key: str, file: Any) -> None:
    click.echo(json.dumps(c.call("InternalPutObject", {"bucket": bucket, "key": key}, upload=file)))


@debug.command("get-object")
@click.argument("bucket")
@click.argument("key")
@click.argument("out", type=click.File("wb"), default="-")
@pass_ctx
def debug_get(c: Any, bucket: str, key: str, out: Any) -> None:
    meta = c.call("InternalGetObject", {"bucket": bucket, "key": key}, download=out)
    out.flush()
    click.echo(json.dumps(meta), err=True)


@debug.command("delete-object")
@click.argument("bucket")
@click.argument("key")
@pass_ctx
def debug_delete(c: Any, bucket: str, key: str) -> None:
    c.call("InternalDeleteObject", {"bucket": bucket, "key": key})


@debug.command("list-objects")
@click.argument("bucket")
@click.option("--start")
@click.option("--limit", type=int, default=1000)
@pass_ctx
def debug_list(c: Any, bucket: str, start: str | None, limit: int) -> None:
    click.echo(json.dumps(c.call("InternalListObjects", {"bucket": bucket, "start": start, "limit": limit})))


@debug.command("table-info")
@pass_ctx
def debug_table_info(c: Any) -> None:
    click.echo(json.dumps(c.call("InternalTableInfo"), indent=2))


@debug.command("block-list")
@pass_ctx
def debug_block_list(c: Any) -> None:
    click.echo(json.dumps(c.call("InternalBlockList")))

