"""`grange server`: wire every layer into one process and run it until SIGINT/SIGTERM.

Start-up in order, shutdown in reverse (conventions, "Asyncio structure"): node key and TLS
identity → layout → RPC listener → membership workers → (single-node layout). On a signal:
workers stop under their deadline, the membership saves its peer list, connections close.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import shutil
import signal
import socket
import ssl
from typing import Any

from grange.api.admin.registry import NodeContext
from grange.api.admin.rpc import ENDPOINT as ADMIN_ENDPOINT
from grange.api.admin.rpc import rpc_handler
from grange.model.model import Model
from grange.net.keys import load_or_create_node_key, make_tls_identity
from grange.net.netapp import NetApp
from grange.rpc.layout.manager import LayoutManager
from grange.rpc.layout.version import NodeRole
from grange.rpc.system import System
from grange.util.addr import split_host_port
from grange.util.background import Supervisor
from grange.util.config import Config

log = logging.getLogger("grange")

SINGLE_NODE_ZONE = "dc1"


def _test_delays() -> dict[str, float]:
    """Test hooks: shorter tombstone-GC and block-deletion delays for the fault tests.

    `GRANGE_TEST_GC_DELAY_S` (default 24 h) and `GRANGE_TEST_BLOCK_GC_DELAY_S` (default
    10 min). Not config keys: an operator has no reason to change them.
    """
    out = {}
    if "GRANGE_TEST_GC_DELAY_S" in os.environ:
        out["gc_delay_s"] = float(os.environ["GRANGE_TEST_GC_DELAY_S"])
    if "GRANGE_TEST_BLOCK_GC_DELAY_S" in os.environ:
        out["block_gc_delay_s"] = float(os.environ["GRANGE_TEST_BLOCK_GC_DELAY_S"])
    return out


def setup_logging() -> None:
    level = os.environ.get("GRANGE_LOG", "info").upper()
    logging.basicConfig(
        level=getattr(logging, level, logging.INFO),
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
    )


def public_addr_of(config: Config) -> str:
    """Where other nodes reach us: `rpc_public_addr`, else the bind address made concrete."""
    if config.rpc_public_addr:
        return config.rpc_public_addr
    host, port = split_host_port(config.rpc_bind_addr)
    if host in ("0.0.0.0", "::", ""):
        try:
            host = socket.gethostbyname(socket.gethostname())
        except OSError:
            host = "127.0.0.1"
    return f"{host}:{port}"


def _loop_exception_handler(tag: str):  # type: ignore[no-untyped-def]
    """One line for a refused TLS client (wrong secret, garbage, timeout) instead of a traceback."""

    def handler(loop: asyncio.AbstractEventLoop, context: dict[str, Any]) -> None:
        exc = context.get("exception")
        msg = context.get("message", "")
        if isinstance(exc, ssl.SSLError | ConnectionError | TimeoutError) or "SSL handshake" in msg:
            peer = None
            transport = context.get("transport")
            if transport is not None:
                with contextlib.suppress(Exception):
                    peer = transport.get_extra_info("peername")
            log.warning("[%s] refused connection from %s: %s", tag, peer or "?", exc or msg)
            return
        loop.default_exception_handler(context)

    return handler


async def _single_node_layout(layout: LayoutManager, node_id: str, data_dir: str) -> None:
    """`--single-node`: give this node a role and apply, once, if the layout has none."""
    if layout.current().roles or layout.history.staged_role_changes():
        return
    os.makedirs(data_dir, exist_ok=True)
    capacity = shutil.disk_usage(data_dir).total
    await layout.stage_roles({node_id: NodeRole(zone=SINGLE_NODE_ZONE, capacity=capacity, tags=[])})
    await layout.apply(layout.current().version + 1)
    log.info("[%s] single-node layout applied: zone %s, capacity %d bytes", node_id[:8], SINGLE_NODE_ZONE, capacity)


async def serve(config: Config, *, single_node: bool = False, ready: asyncio.Event | None = None,
                after_start: Any = None) -> None:
    assert config.rpc_secret_bytes is not None
    os.makedirs(config.metadata_dir, mode=0o700, exist_ok=True)
    data_dirs = [d.path for d in config.data_dir]
    for d in data_dirs:
        os.makedirs(d, exist_ok=True)
    node_key = await asyncio.to_thread(load_or_create_node_key, config.metadata_dir)
    identity = make_tls_identity(node_key, config.rpc_secret_bytes)
    tag = identity.node_id[:8]
    loop = asyncio.get_running_loop()
    loop.set_exception_handler(_loop_exception_handler(tag))
    for warning in config.warnings:
        log.warning("[%s] config: %s", tag, warning)

    netapp = NetApp(identity)
    layout = LayoutManager(config.metadata_dir, config.replication_factor, identity.node_id)
    public_addr = public_addr_of(config)
    system = System(
        netapp, layout,
        metadata_dir=config.metadata_dir, data_dirs=data_dirs, public_addr=public_addr,
        bootstrap_peers=list(config.bootstrap_peers), ping_timeout_s=config.rpc_ping_timeout_msec / 1000,
    )
    supervisor = Supervisor(tag)
    model = await Model.open(config, netapp, system, layout, **_test_delays())
    ctx = NodeContext(config=config, netapp=netapp, system=system, layout=layout, db_engine=config.db_engine,
                      model=model, supervisor=supervisor)
    netapp.register(ADMIN_ENDPOINT, rpc_handler(ctx))

    host, port = split_host_port(config.rpc_bind_addr)
    await netapp.listen(host, port)
    await layout.save()
    system.start(supervisor)
    model.spawn_workers(supervisor)
    s3 = None
    if config.s3_api.api_bind_addr:
        from grange.api.s3.server import S3ApiServer

        s3 = S3ApiServer(model, config)
        s3_host, s3_port = split_host_port(config.s3_api.api_bind_addr)
        await s3.start(s3_host, s3_port)
        log.info("[%s] S3 API listening on %s", tag, config.s3_api.api_bind_addr)
    if single_node:
        await _single_node_layout(layout, identity.node_id, data_dirs[0])
    log.info("[%s] node %s@%s listening for RPC on %s (layout version %d)",
             tag, identity.node_id, public_addr, config.rpc_bind_addr, layout.current().version)

    stop = asyncio.Event()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)
    if after_start is not None:
        await after_start(ctx)
    if ready is not None:
        ready.set()
    try:
        await stop.wait()
    finally:
        log.info("[%s] shutting down", tag)
        if s3 is not None:
            await s3.close()
        await supervisor.stop()
        await system.stop()
        await layout.save()
        await netapp.close()
        await model.close()
        log.info("[%s] stopped", tag)


def run(config: Config, *, single_node: bool = False, after_start: Any = None) -> None:
    """Run the node on the standard asyncio loop.

    Not uvloop: its server-side TLS handshake failures are only visible in debug mode and its
    `start_tls` loses the ClientHello of a freshly accepted socket, so refused peers could not
    be logged; on our RPC path it measured within 5% of the standard loop (docs/benchmarks.md).
    """
    setup_logging()
    asyncio.run(serve(config, single_node=single_node, after_start=after_start))
