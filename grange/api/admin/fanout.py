"""Node-scoped operations: run on the nodes named by `?node=` and gather a MultiResponse."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from typing import Any

from grange.api.admin.registry import AdminError, NodeContext
from grange.net.errors import RpcError
from grange.net.frame import Priority

ADMIN_RPC_TIMEOUT_S = 30.0


def select_nodes(ctx: NodeContext, selector: str) -> list[str]:
    system = ctx.system
    known = sorted({system.id, *(p for p, i in system.peers.items() if i.status is not None)})
    if selector in ("", "self"):
        return [system.id]
    if selector == "*":
        return known
    matches = [n for n in known if n.startswith(selector.lower())]
    if len(matches) != 1:
        raise AdminError(f"node {selector!r} matches {len(matches)} known nodes; give a longer prefix")
    return matches


async def fan_out(
    ctx: NodeContext, op: str, query: dict[str, str], local: Callable[[NodeContext], Awaitable[Any]],
    body: Any = None,
) -> dict[str, Any]:
    nodes = select_nodes(ctx, query.get("node", "self"))

    async def one(node: str) -> Any:
        if node == ctx.system.id:
            return await local(ctx)
        answer = await ctx.netapp.call(
            node, "admin/op", {"op": op, "body": body, "query": {"node": "self"}},
            prio=Priority.INTERACTIVE, timeout_s=ADMIN_RPC_TIMEOUT_S,
        )
        if "error" in answer:
            raise AdminError(answer["error"]["message"])
        return answer["ok"]["success"][node]

    results = await asyncio.gather(*(one(n) for n in nodes), return_exceptions=True)
    success, error = {}, {}
    for node, r in zip(nodes, results, strict=True):
        if isinstance(r, AdminError | RpcError):
            error[node] = str(r)
        elif isinstance(r, BaseException):
            raise r
        else:
            success[node] = r
    return {"success": success, "error": error}
