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
    from grange.net.netapp import NetApp
    from grange.rpc.layout.manager import LayoutManager
    from grange.rpc.system import System
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


OPERATIONS: dict[str, Operation] = {}


def operation(name: str, *, node_scoped: bool = False) -> Callable[[OpHandler], OpHandler]:
    def register(fn: OpHandler) -> OpHandler:
        assert name not in OPERATIONS, f"admin operation {name} defined twice"
        OPERATIONS[name] = Operation(name, fn, node_scoped)
        return fn

    return register


async def dispatch(ctx: NodeContext, name: str, body: Body, query: Query) -> Any:
    op = OPERATIONS.get(name)
    if op is None:
        raise NotFound(f"unknown admin operation {name!r}")
    return await op.handler(ctx, body, query)


def require(cond: bool, message: str) -> None:
    if not cond:
        raise AdminError(message)
