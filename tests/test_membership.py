"""Membership in one process: real TLS sockets, pings driven by the test instead of a clock."""

from __future__ import annotations

import asyncio
import os

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from grange.net.keys import make_tls_identity
from grange.net.netapp import NetApp
from grange.rpc.layout.manager import LayoutManager
from grange.rpc.layout.version import NodeRole
from grange.rpc.system import PING_FAILURES_DOWN, System
from grange.util.background import Supervisor

SECRET = os.urandom(32)


async def make_system(tmp_path, name: str, rf: int = 1) -> tuple[System, Supervisor]:
    netapp = NetApp(make_tls_identity(Ed25519PrivateKey.generate(), SECRET), handshake_timeout_s=2)
    port = await netapp.listen("127.0.0.1", 0)
    meta = str(tmp_path / name)
    os.makedirs(meta)
    layout = LayoutManager(meta, rf, netapp.id)
    system = System(netapp, layout, metadata_dir=meta, data_dirs=[meta], public_addr=f"127.0.0.1:{port}",
                    bootstrap_peers=[], ping_timeout_s=0.3)
    sup = Supervisor(name)
    system.start(sup)
    return system, sup


async def wait_for(cond, timeout: float = 10.0) -> None:
    async with asyncio.timeout(timeout):
        while not cond():
            await asyncio.sleep(0.02)


async def stop(*pairs: tuple[System, Supervisor]) -> None:
    for system, sup in pairs:
        await sup.stop()
        await system.stop()
        await system.netapp.close()


async def test_stalled_peer_is_down_after_four_failed_pings(tmp_path) -> None:
    a, b = await make_system(tmp_path, "a"), await make_system(tmp_path, "b")
    sa, sb = a[0], b[0]
    await sa.connect(sb.id, sb.public_addr)
    assert sa.is_up(sb.id)

    async def frozen(peer, body, stream):  # a SIGSTOPped node: TCP open, no answer
        await asyncio.sleep(3600)

    sb.netapp.endpoints["system/status"] = frozen
    for i in range(PING_FAILURES_DOWN - 1):
        await sa.ping_all()
        assert sa.peers[sb.id].failed_pings == i + 1
        assert sa.is_up(sb.id), "down too early"
    await sa.ping_all()
    await wait_for(lambda: not sa.is_up(sb.id))
    await stop(a, b)


async def test_gossip_fills_the_mesh_and_peers_are_persisted(tmp_path) -> None:
    a, b, c = [await make_system(tmp_path, n) for n in "abc"]
    sa, sb, sc = a[0], b[0], c[0]
    await sb.connect(sc.id, sc.public_addr)
    await sa.connect(sb.id, sb.public_addr)  # a only knows b
    await wait_for(lambda: sa.is_up(sc.id) and sc.is_up(sa.id))
    # peers are persisted for the next start
    assert os.path.exists(os.path.join(sa.metadata_dir, "peer_list"))
    await stop(a, b, c)


async def test_staged_changes_made_on_two_nodes_both_survive_gossip(tmp_path) -> None:
    a, b = await make_system(tmp_path, "a"), await make_system(tmp_path, "b")
    sa, sb = a[0], b[0]
    await sa.connect(sb.id, sb.public_addr)
    await sa.layout.stage_roles({sa.id: NodeRole(zone="dc1", capacity=10**9, tags=[])})
    await sb.layout.stage_roles({sb.id: NodeRole(zone="dc2", capacity=10**9, tags=[])})
    both = {sa.id, sb.id}
    await wait_for(lambda: set(sa.layout.history.staged_role_changes()) == both
                   and set(sb.layout.history.staged_role_changes()) == both)
    await sb.layout.apply(1)
    await wait_for(lambda: sa.layout.current().version == 1)
    # then the update trackers (each node's ack/sync) converge too
    await wait_for(lambda: sa.layout.digest == sb.layout.digest)
    assert set(sa.layout.current().roles) == both
    # a layout received by gossip is written in the background: once written, a new manager reads it
    await sa.layout.save()
    assert LayoutManager(sa.metadata_dir, 1, sa.id).current().version == 1
    await stop(a, b)
