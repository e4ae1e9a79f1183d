"""Worker and repair operations: ListWorkers, GetWorkerInfo, Get/SetWorkerVariable, LaunchRepairOperation.

All node-scoped (`?node=` or `{"node": ...}` in `json-api`), answered as MultiResponse.
Worker variables (Garage's names): `resync-tranquility`, `resync-worker-count` (accepted,
Grange runs one resync worker), `scrub-tranquility`; read-only `scrub-last-completed`,
`scrub-next-run`, `scrub-corruptions_detected`.
"""

from __future__ import annotations

import time
from typing import Any

from grange.api.admin.fanout import fan_out
from grange.api.admin.registry import AdminError, NodeContext, operation, require
from grange.block.repair import repair_blocks
from grange.util.background import WorkerInfo, WorkerState


def worker_json(info: WorkerInfo) -> dict[str, Any]:
    status = info.worker.status()
    freeform = [f"{k}: {v}" for k, v in status.items() if k not in ("queueLength", "tranquility")]
    return {
        "id": info.id,
        "name": info.worker.name,
        "state": info.state.value,
        "errors": info.errors,
        "consecutiveErrors": info.consecutive_errors,
        "lastError": None if info.last_error is None else {
            "message": info.last_error, "secsAgo": int(time.time() - (info.last_error_time or time.time()))},
        "tranquility": status.get("tranquility"),
        "progress": None,
        "queueLength": status.get("queueLength"),
        "persistentErrors": status.get("errors"),
        "freeform": freeform,
    }


@operation("ListWorkers", node_scoped=True)
async def list_workers(ctx: NodeContext, body: Any, query: dict[str, str]) -> dict[str, Any]:
    body = body or {}

    async def local(c: NodeContext) -> list[dict[str, Any]]:
        out = []
        for info in c.supervisor.list():
            if body.get("busyOnly") and info.state is not WorkerState.BUSY:
                continue
            if body.get("errorOnly") and not info.errors:
                continue
            out.append(worker_json(info))
        return out

    return await fan_out(ctx, "ListWorkers", query, local, body)


@operation("GetWorkerInfo", node_scoped=True)
async def get_worker_info(ctx: NodeContext, body: Any, query: dict[str, str]) -> dict[str, Any]:
    require(isinstance(body, dict) and isinstance(body.get("id"), int), "GetWorkerInfo expects {\"id\": N}")

    async def local(c: NodeContext) -> dict[str, Any]:
        for info in c.supervisor.list():
            if info.id == body["id"]:
                return worker_json(info)
        raise AdminError(f"no worker with id {body['id']}")

    return await fan_out(ctx, "GetWorkerInfo", query, local, body)


def _variables(c: NodeContext) -> dict[str, str]:
    m = c.model
    scrub = m.scrub_worker.info
    return {
        "resync-tranquility": str(m.blocks.resync.tranquility),
        "resync-worker-count": "1",
        "scrub-tranquility": str(scrub.tranquility),
        "scrub-last-completed": _iso(scrub.last_completed_s),
        "scrub-next-run": _iso(scrub.next_run_s),
        "scrub-corruptions_detected": str(scrub.corruptions_detected),
    }


def _iso(ts: float) -> str:
    return "never" if not ts else time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(ts))


@operation("GetWorkerVariable", node_scoped=True)
async def get_worker_variable(ctx: NodeContext, body: Any, query: dict[str, str]) -> dict[str, Any]:
    name = (body or {}).get("variable")

    async def local(c: NodeContext) -> dict[str, str]:
        variables = _variables(c)
        if name is None:
            return variables
        if name not in variables:
            raise AdminError(f"unknown worker variable {name!r} (known: {', '.join(sorted(variables))})")
        return {name: variables[name]}

    return await fan_out(ctx, "GetWorkerVariable", query, local, body)


@operation("SetWorkerVariable", node_scoped=True)
async def set_worker_variable(ctx: NodeContext, body: Any, query: dict[str, str]) -> dict[str, Any]:
    require(isinstance(body, dict) and isinstance(body.get("variable"), str) and isinstance(body.get("value"), str),
            "SetWorkerVariable expects {\"variable\": NAME, \"value\": STRING}")
    name, value = body["variable"], body["value"]

    async def local(c: NodeContext) -> dict[str, str]:
        m = c.model
        try:
            n = int(value)
        except ValueError:
            raise AdminError(f"{name} takes an integer, got {value!r}") from None
        if name == "resync-tranquility" and 0 <= n <= 1000:
            m.blocks.resync.tranquility = n
        elif name == "scrub-tranquility" and 0 <= n <= 1000:
            m.scrub_worker.info.tranquility = n
        elif name == "resync-worker-count" and 1 <= n <= 8:
            pass  # one resync worker here; accepted for compatibility with Garage's scripts
        else:
            raise AdminError(f"cannot set worker variable {name!r} to {value!r}")
        return {"variable": name, "value": value}

    return await fan_out(ctx, "SetWorkerVariable", query, local, body)


@operation("LaunchRepairOperation", node_scoped=True)
async def launch_repair_operation(ctx: NodeContext, body: Any, query: dict[str, str]) -> dict[str, Any]:
    require(isinstance(body, dict) and "repairType" in body, "LaunchRepairOperation expects {\"repairType\": ...}")
    rt = body["repairType"]
    wait = bool(body.get("wait"))  # Grange extension: return when the pass is over (tests, scripts)

    async def local(c: NodeContext) -> dict[str, Any]:
        m = c.model
        if rt == "tables":
            task = m.sync_all_tables()
        elif rt == "blocks":
            task = repair_blocks(m.blocks)
        elif rt == "rebalance":
            task = m.rebalance_worker.run_once()
        elif isinstance(rt, dict) and "scrub" in rt:
            cmd = rt["scrub"]
            if cmd == "start":
                task = m.scrub_worker.run_once()
            elif cmd in ("pause", "resume", "cancel"):
                getattr(m.scrub_worker, cmd)()
                return {}
            else:
                raise AdminError(f"unknown scrub command {cmd!r}: start, pause, resume or cancel")
        elif rt in ("versions", "multipartUploads", "blockRefs", "blockRc", "aliases"):
            task = m.repair(rt)
        else:
            raise AdminError(f"unknown repair type {rt!r}")
        if wait:
            await task
        else:
            m.background.spawn(task)
        return {}

    return await fan_out(ctx, "LaunchRepairOperation", query, local, body)

