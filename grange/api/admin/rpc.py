"""The admin operations over the cluster RPC: what the `grange` CLI talks to.

Request `{op, body, query}` → answer `{ok: result}` or `{error: {code, status, message}}`.
The connection is already authenticated by `rpc_secret` (design §3), so no token is needed.
"""

from __future__ import annotations

from typing import Any

# Importing the operation modules fills the registry.
from grange.api.admin import bench, blocks, buckets, cluster, internal, keys, layout, workers  # noqa: F401
from grange.api.admin.registry import AdminError, NodeContext, dispatch
from grange.block.errors import BlockError
from grange.model.s3.objects import NoSuchKey
from grange.net.conn import Reply
from grange.net.errors import RpcError

ENDPOINT = "admin/op"


def rpc_handler(ctx: NodeContext):  # type: ignore[no-untyped-def]
    async def handle(peer_id: str, req: Any, stream: Any) -> Any:
        if not isinstance(req, dict) or not isinstance(req.get("op"), str):
            return {"error": {"code": "InvalidRequest", "status": 400, "message": "malformed admin request"}}
        query = req.get("query") or {}
        if not isinstance(query, dict):
            query = {}
        try:
            result = await dispatch(ctx, req["op"], req.get("body"), {str(k): str(v) for k, v in query.items()},
                                    stream)
        except AdminError as e:
            return {"error": {"code": e.code, "status": e.status, "message": str(e)}}
        except (RpcError, BlockError, NoSuchKey) as e:  # cluster-side failures: one line for the CLI
            return {"error": {"code": "ServiceUnavailable" if isinstance(e, RpcError) else "InternalError",
                              "status": 503 if isinstance(e, RpcError) else 500, "message": str(e)}}
        if isinstance(result, Reply):
            return Reply({"ok": result.body}, result.stream)
        return {"ok": result}

    return handle
