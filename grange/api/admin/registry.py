"""The one table of admin operations, named as in Garage's admin API v2.

Each operation is written once, as an async function of (node context, JSON-shaped request
body, query parameters) returning a JSON-shaped answer, and registered with `@operation`.
Transports stay thin: the CLI reaches its node over the cluster RPC endpoint `admin/op`
(`rpc_endpoint`), and the HTTP admin API (later) maps `/v2/{Operation}` onto `dispatch`.
Errors are `AdminError`s with an HTTP status and a message; the transport renders them.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from grange.model.model import Model
    from grange.net.netapp import NetApp
    from grange.rpc.layout.manager import LayoutManager
    from grange.rpc.system import System
    from grange.util.background import Supervisor
    from grange.util.config import Config


class AdminError(Exception):
    status = 400
    code = "InvalidRequest"
    expected = True  # an operator's mistake, not ours: no traceback in the node's log


class NotFound(AdminError):
    status = 404
    code = "NoSuchElement"


class Unavailable(AdminError):
    status = 503
    code = "ServiceUnavailable"


@dataclass
class NodeContext:
    """What admin operations may use of the running node."""

    config: Config
    netapp: NetApp
    system: System
    layout: LayoutManager
    db_engine: str
    model: Model
    supervisor: Supervisor


Body = Any
Query = dict[str, str]
OpHandler = Callable[[NodeContext, Body, Query], Awaitable[Any]]


@dataclass(frozen=True)
class Operation:
    name: str
    handler: OpHandler
    # Node-scoped operations take `?node=` (id, id prefix, `self` or `*`) and answer a
    # MultiResponse `{success: {node: ...}, error: {node: msg}}` (Garage admin v2).
    node_scoped: bool = False
    # Internal operations (the test entry point of `grange debug`) are not part of Garage's
    # admin API: reachable over the cluster RPC only, never over HTTP. They may take a
    # streamed request body and return a `Reply` with a streamed answer.
    internal: bool = False


OPERATIONS: dict[str, Operation] = {}


def operation(name: str, *, node_scoped: bool = False, internal: bool = False) -> Callable[[OpHandler], OpHandler]:
    def register(fn: OpHandler) -> OpHandler:
        assert name not in OPERATIONS, f"admin operation {name} defined twice"
        OPERATIONS[name] = Operation(name, fn, node_scoped, internal)
        return fn

    return register


async def dispatch(ctx: NodeContext, name: str, body: Body, query: Query, stream: Any = None) -> Any:
    op = OPERATIONS.get(name)
    if op is None:
        raise NotFound(f"unknown admin operation {name!r}")
    if op.internal:
        return await op.handler(ctx, body, query, stream)  # type: ignore[call-arg]
    if stream is not None:
        stream.close()
    return await op.handler(ctx, body, query)


def require(cond: bool, message: str) -> None:
    if not cond:
        raise AdminError(message)
