"""The admin operations over the cluster RPC: what the `grange` CLI talks to.

Request `{op, body, query}` → answer `{ok: result}` or `{error: {code, status, message}}`.
The connection is already authenticated by `rpc_secret` (design §3), so no token is needed.
"""

from __future__ import annotations

from typing import Any

# Importing the operation modules fills the registry.
from grange.api.admin import cluster, layout  # noqa: F401
from grange.api.admin.registry import AdminError, NodeContext, dispatch

ENDPOINT = "admin/op"


def rpc_handler(ctx: NodeContext):  # type: ignore[no-untyped-def]
    async def handle(peer_id: str, req: Any, stream: Any) -> dict[str, Any]:
        if not isinstance(req, dict) or not isinstance(req.get("op"), str):
            return {"error": {"code": "InvalidRequest", "status": 400, "message": "malformed admin request"}}
        query = req.get("query") or {}
        if not isinstance(query, dict):
            query = {}
        try:
            return {"ok": await dispatch(ctx, req["op"], req.get("body"), {str(k): str(v) for k, v in query.items()})}
        except AdminError as e:
            return {"error": {"code": e.code, "status": e.status, "message": str(e)}}

    return handle
