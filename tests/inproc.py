"""Several full nodes in one process: real TLS sockets on 127.0.0.1, real LMDB and block files.

Faster than processes for table, quorum, sync and GC tests, and lets a test call a worker's
pass directly instead of waiting (conventions, "Wait on conditions or run one pass").
Multi-process behaviour (crashes, restarts, the CLI) is tested with `tests/cluster.py`.
"""

from __future__ import annotations

import asyncio
import os
import secrets
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from grange.model.bucket_table import Bucket, BucketParams
from grange.model.model import Model
from grange.net.keys import make_tls_identity
from grange.net.netapp import NetApp
from grange.rpc.layout.manager import LayoutManager
from grange.rpc.layout.version import NodeRole
from grange.rpc.system import System
from grange.table.crdt import Deletable
from grange.util.background import Supervisor
from grange.util.config import parse_config


@dataclass
class InNode:
    config: Any
    netapp: NetApp
    system: System
    layout: LayoutManager
    model: Model
    supervisor: Supervisor

    @property
    def id(self) -> str:
        return self.netapp.id

    async def stop(self) -> None:
        await self.supervisor.stop()
        await self.system.stop()
        await self.netapp.close()
        await self.model.close()


async def start_node(root: Path, name: str, secret: str, rf: int, *, mode: str = "consistent",
                     workers: bool = True, **model_kw: Any) -> InNode:
    d = root / name
    d.mkdir(parents=True, exist_ok=True)
    config = parse_config(f'''metadata_dir = "{d}/meta"
data_dir = "{d}/data"
replication_factor = {rf}
consistency_mode = "{mode}"
rpc_bind_addr = "127.0.0.1:0"
rpc_secret = "{secret}"
block_size = 65536
''', {})
    os.makedirs(config.metadata_dir, exist_ok=True)
    netapp = NetApp(make_tls_identity(Ed25519PrivateKey.generate(), config.rpc_secret_bytes), handshake_timeout_s=2)
    port = await netapp.listen("127.0.0.1", 0)
    layout = LayoutManager(config.metadata_dir, rf, netapp.id)
    system = System(netapp, layout, metadata_dir=config.metadata_dir, data_dirs=[config.data_dir[0].path],
                    public_addr=f"127.0.0.1:{port}", bootstrap_peers=[], ping_timeout_s=1.0)
    model = await Model.open(config, netapp, system, layout, **model_kw)
    sup = Supervisor(name)
    system.start(sup)
    if workers:
        model.spawn_workers(sup)
    return InNode(config, netapp, system, layout, model, sup)


async def wait_for(cond: Any, timeout: float = 15.0, what: str = "condition") -> None:
    try:
        async with asyncio.timeout(timeout):
            while not (await cond() if asyncio.iscoroutinefunction(cond) else cond()):
                await asyncio.sleep(0.05)
    except TimeoutError:
        raise AssertionError(f"timed out waiting for {what}") from None


async def start_cluster(root: Path, n: int, rf: int, **kw: Any) -> list[InNode]:
    secret = secrets.token_hex(32)
    nodes = [await start_node(root, f"n{i}", secret, rf, **kw) for i in range(n)]
    first = nodes[0]
    for other in nodes[1:]:
        await first.system.connect(other.id, other.system.public_addr)
    await wait_for(lambda: all(o.system.is_up(p.id) for o in nodes for p in nodes), what="full mesh")
    roles = {node.id: NodeRole(zone=f"dc{i % 3 + 1}", capacity=10**9, tags=[]) for i, node in enumerate(nodes)}
    await first.layout.stage_roles(roles)
    await first.layout.apply(1)
    await wait_for(lambda: all(x.layout.current().version == 1 for x in nodes), what="layout 1 everywhere")
    return nodes


async def stop_all(nodes: list[InNode]) -> None:
    for node in nodes:
        await node.stop()


def new_bucket(now_ms: int = 1) -> Bucket:
    return Bucket(os.urandom(32), Deletable.present(BucketParams.new(now_ms)))
