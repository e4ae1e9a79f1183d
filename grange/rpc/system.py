"""Cluster membership: who the nodes are, where they are, whether they are up.

Theory of operation (design §5):

- Every node keeps a table of known nodes (id → address, status, RTT, failures), persisted
  in `metadata_dir/peer_list` so a restart finds the cluster again.
- `system/status` is the one exchange between nodes: each side sends its `NodeStatus`
  (hostname, public RPC address, layout digest, disk space, and the peers it knows). It is
  sent right after a connection opens (hello) and every `PING_INTERVAL_S` as a ping that
  measures RTT. Peers learnt from a status are dialled, so the mesh fills itself (gossip),
  and an address a node announces for itself replaces what others had on record: a node
  restarted on a new port is found again.
- A peer is down when its connection breaks, or after `PING_FAILURES_DOWN` failed pings in a
  row (then the connection is aborted). Down peers are redialled with exponential backoff
  from `RECONNECT_BACKOFF_S_MIN` to `RECONNECT_BACKOFF_S_MAX`; news of the peer through gossip
  retries at once.
- When a status shows a layout digest different from ours, the layouts are exchanged and
  merged (`LayoutManager`); the newer version wins, staged changes merge as CRDTs.
- Clients that are not nodes (the CLI) connect with `is_node = False`: they are never
  gossiped, persisted, or listed in `status`.
"""

from __future__ import annotations

import asyncio
import logging
import os
import shutil
import socket
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import msgspec

from grange.net.conn import Connection
from grange.net.errors import RpcError
from grange.net.frame import Priority
from grange.net.netapp import NetApp
from grange.rpc.layout.manager import LayoutManager
from grange.util.background import PeriodicWorker, Supervisor
from grange.util.fsutil import read_file, write_file_atomic

log = logging.getLogger("grange.rpc")

PING_INTERVAL_S = 15.0
PING_FAILURES_DOWN = 4
RECONNECT_BACKOFF_S_MIN = 1.0
RECONNECT_BACKOFF_S_MAX = 30.0
PEER_LIST_FILE = "peer_list"
GRANGE_VERSION = "0.1.0"


class NodeStatus(msgspec.Struct, omit_defaults=True, forbid_unknown_fields=False):
    """What a node says about itself in every status exchange (unknown fields skipped)."""

    hostname: str
    addr: str | None
    is_node: bool = True
    version: str = GRANGE_VERSION
    layout_version: int = 0
    layout_digest: bytes = b""
    replication_factor: int = 0
    meta_disk: tuple[int, int] | None = None  # (available, total) bytes
    data_disk: tuple[int, int] | None = None
    peers: list[tuple[str, str]] = []  # (node id, address) of the nodes it knows


class PeerListFile(msgspec.Struct):
    v: int
    peers: list[tuple[str, str]]


@dataclass
class PeerInfo:
    id: str
    addr: str | None = None
    status: NodeStatus | None = None
    last_seen: float | None = None  # wall clock of the last successful exchange
    rtt_ms: float | None = None
    failed_pings: int = 0
    next_dial: float = 0.0  # monotonic
    backoff_s: float = RECONNECT_BACKOFF_S_MIN
    dialling: bool = False


def _disk(path: str) -> tuple[int, int] | None:
    try:
        u = shutil.disk_usage(path)
    except OSError:
        return None
    return (u.free, u.total)


class System:
    def __init__(
        self,
        netapp: NetApp,
        layout: LayoutManager,
        *,
        metadata_dir: str,
        data_dirs: list[str],
        public_addr: str | None,
        bootstrap_peers: list[str],
        ping_timeout_s: float = 10.0,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.netapp = netapp
        self.id = netapp.id
        self.tag = self.id[:8]
        self.layout = layout
        self.metadata_dir = metadata_dir
        self.data_dirs = data_dirs
        self.public_addr = public_addr
        self.hostname = socket.gethostname()
        self.ping_timeout_s = ping_timeout_s
        self.clock = clock
        self.peers: dict[str, PeerInfo] = {}
        self._bootstrap = bootstrap_peers
        self._dirty_peer_list = False
        self._layout_sync: dict[str, asyncio.Task[None]] = {}
        self._tasks: set[asyncio.Task[Any]] = set()
        netapp.register("system/status", self._handle_status)
        netapp.register("system/layout/pull", self._handle_layout_pull)
        netapp.register("system/layout/push", self._handle_layout_push)
        netapp.on_connected.append(self._on_connected)
        netapp.on_disconnected.append(self._on_disconnected)
        layout.on_change.append(self._on_layout_change)

    # ------------------------------------------------------------------ start / stop
    def start(self, supervisor: Supervisor) -> None:
        self._load_peer_list()
        for entry in self._bootstrap:
            peer_id, _, addr = entry.partition("@")
            self._learn(peer_id, addr, authoritative=False)
        supervisor.spawn(PingWorker(self))
        supervisor.spawn(DialWorker(self))

    def _spawn(self, coro: Any) -> None:
        t = asyncio.get_running_loop().create_task(coro)
        self._tasks.add(t)
        t.add_done_callback(self._tasks.discard)

    async def stop(self) -> None:
        for t in list(self._tasks):
            t.cancel()
        if self._tasks:
            await asyncio.wait(list(self._tasks), timeout=2)
        self.save_peer_list()

    # ------------------------------------------------------------------ peer table
    def _learn(self, peer_id: str, addr: str | None, *, authoritative: bool) -> PeerInfo | None:
        if peer_id == self.id or len(peer_id) != 64:
            return None
        info = self.peers.get(peer_id)
        if info is None:
            info = self.peers[peer_id] = PeerInfo(peer_id, addr)
            self._dirty_peer_list = True
            log.info("[%s] learnt of node %s at %s", self.tag, peer_id[:16], addr)
        elif addr and addr != info.addr and (authoritative or not self.netapp.is_connected(peer_id)):
            log.info("[%s] node %s is now at %s (was %s)", self.tag, peer_id[:16], addr, info.addr)
            info.addr = addr
            info.next_dial = 0.0  # news of a peer: retry at once
            info.backoff_s = RECONNECT_BACKOFF_S_MIN
            self._dirty_peer_list = True
        return info

    def _load_peer_list(self) -> None:
        raw = read_file(os.path.join(self.metadata_dir, PEER_LIST_FILE))
        if raw is None:
            return
        try:
            data = msgspec.msgpack.decode(raw, type=PeerListFile)
        except msgspec.DecodeError as e:
            log.warning("[%s] ignoring unreadable peer list: %s", self.tag, e)
            return
        for peer_id, addr in data.peers:
            self._learn(peer_id, addr, authoritative=False)

    def save_peer_list(self) -> None:
        if not self._dirty_peer_list:
            return
        self._dirty_peer_list = False
        peers = sorted((p.id, p.addr) for p in self.peers.values() if p.addr)
        write_file_atomic(
            os.path.join(self.metadata_dir, PEER_LIST_FILE), msgspec.msgpack.encode(PeerListFile(1, peers))
        )

    def is_up(self, peer_id: str) -> bool:
        return self.netapp.is_connected(peer_id)

    # ------------------------------------------------------------------ status exchange
    def local_status(self) -> NodeStatus:
        lay = self.layout
        return NodeStatus(
            hostname=self.hostname,
            addr=self.public_addr,
            layout_version=lay.history.current().version,
            layout_digest=lay.digest,
            replication_factor=lay.history.replication_factor,
            meta_disk=_disk(self.metadata_dir),
            data_disk=_disk(self.data_dirs[0]) if self.data_dirs else None,
            peers=[(p.id, p.addr) for p in self.peers.values() if p.addr and p.status is not None],
        )

    def _absorb(self, peer_id: str, status: NodeStatus) -> None:
        if not status.is_node:
            return
        info = self._learn(peer_id, status.addr, authoritative=True)
        if info is None:
            return
        info.status = status
        info.last_seen = self.clock()
        info.failed_pings = 0
        for pid, addr in status.peers:
            self._learn(pid, addr, authoritative=False)
        if status.layout_digest and status.layout_digest != self.layout.digest:
            self._sync_layout_with(peer_id)
        self.save_peer_list()

    async def _handle_status(self, peer_id: str, body: Any, stream: Any) -> Any:
        status = msgspec.convert(body, NodeStatus)
        self._absorb(peer_id, status)
        return msgspec.to_builtins(self.local_status())

    async def exchange_status(self, peer_id: str) -> None:
        t0 = time.monotonic()
        body = await self.netapp.call(
            peer_id, "system/status", msgspec.to_builtins(self.local_status()),
            prio=Priority.INTERACTIVE, timeout_s=self.ping_timeout_s,
        )
        info = self.peers.get(peer_id)
        if info is not None:
            info.rtt_ms = (time.monotonic() - t0) * 1000
        self._absorb(peer_id, msgspec.convert(body, NodeStatus))

    def _on_connected(self, conn: Connection) -> None:
        if not conn.incoming:
            info = self.peers.get(conn.peer_id)
            if info is not None:
                info.backoff_s = RECONNECT_BACKOFF_S_MIN
            self._spawn(self._hello(conn.peer_id))

    async def _hello(self, peer_id: str) -> None:
        try:
            await self.exchange_status(peer_id)
            log.info("[%s] connected to node %s", self.tag, peer_id[:16])
        except RpcError as e:
            log.info("[%s] hello to %s failed: %s", self.tag, peer_id[:16], e)

    def _on_disconnected(self, conn: Connection) -> None:
        info = self.peers.get(conn.peer_id)
        if info is not None and not self.netapp.is_connected(conn.peer_id):
            log.info("[%s] node %s is down (%s)", self.tag, conn.peer_id[:16], conn.close_reason)
            info.next_dial = time.monotonic() + info.backoff_s

    # ------------------------------------------------------------------ connecting
    async def connect(self, peer_id: str, addr: str) -> None:
        """Dial a node (operator's `node connect`); raises RpcError with the reason."""
        if peer_id == self.id:
            return
        await self.netapp.connect(peer_id, addr)
        self._learn(peer_id, addr, authoritative=True)
        await self.exchange_status(peer_id)

    async def _dial(self, info: PeerInfo) -> None:
        info.dialling = True
        try:
            assert info.addr is not None
            await self.netapp.connect(info.id, info.addr)
        except RpcError as e:
            info.backoff_s = min(RECONNECT_BACKOFF_S_MAX, info.backoff_s * 2)
            info.next_dial = time.monotonic() + info.backoff_s
            log.debug("[%s] dialling %s at %s failed: %s", self.tag, info.id[:16], info.addr, e)
        finally:
            info.dialling = False

    def dial_due(self) -> None:
        now = time.monotonic()
        for info in self.peers.values():
            if info.addr and not info.dialling and info.next_dial <= now and not self.netapp.is_connected(info.id):
                info.next_dial = now + info.backoff_s
                self._spawn(self._dial(info))

    async def ping_all(self) -> None:
        async def one(peer_id: str) -> None:
            info = self.peers[peer_id]
            try:
                await self.exchange_status(peer_id)
            except RpcError as e:
                info.failed_pings += 1
                log.info("[%s] ping to %s failed (%d in a row): %s", self.tag, peer_id[:16], info.failed_pings, e)
                if info.failed_pings >= PING_FAILURES_DOWN:
                    for conn in (self.netapp.client_conns.get(peer_id), self.netapp.server_conns.get(peer_id)):
                        if conn is not None:
                            conn.abort(f"{PING_FAILURES_DOWN} pings failed")

        peers = [p for p in self.peers if self.netapp.is_connected(p)]
        await asyncio.gather(*(one(p) for p in peers))

    # ------------------------------------------------------------------ layout gossip
    def _sync_layout_with(self, peer_id: str) -> None:
        if peer_id in self._layout_sync:
            return
        task = asyncio.get_running_loop().create_task(self._pull_layout(peer_id))
        self._layout_sync[peer_id] = task
        task.add_done_callback(lambda _t: self._layout_sync.pop(peer_id, None))

    async def _pull_layout(self, peer_id: str) -> None:
        try:
            raw = await self.netapp.call(peer_id, "system/layout/pull", None, prio=Priority.NORMAL, timeout_s=30)
            their_digest = self.layout.merge_encoded(raw, source=peer_id[:16])
            if their_digest != self.layout.digest:
                await self.netapp.call(
                    peer_id, "system/layout/push", self.layout.encoded(), prio=Priority.NORMAL, timeout_s=30
                )
        except RpcError as e:
            log.info("[%s] layout exchange with %s failed: %s", self.tag, peer_id[:16], e)

    async def _handle_layout_pull(self, peer_id: str, body: Any, stream: Any) -> Any:
        return self.layout.encoded()

    async def _handle_layout_push(self, peer_id: str, body: Any, stream: Any) -> Any:
        if not isinstance(body, bytes):
            raise ValueError("layout push carries no layout")
        self.layout.merge_encoded(body, source=peer_id[:16])
        return None

    def _on_layout_change(self) -> None:
        """Our layout changed: tell every connected node now rather than at the next ping."""
        for peer_id in list(self.peers):
            if self.netapp.is_connected(peer_id):
                self._spawn(self._push_layout(peer_id))

    async def _push_layout(self, peer_id: str) -> None:
        try:
            await self.netapp.call(peer_id, "system/layout/push", self.layout.encoded(), prio=Priority.NORMAL,
                                   timeout_s=30)
        except RpcError as e:
            log.info("[%s] pushing layout to %s failed: %s", self.tag, peer_id[:16], e)


class PingWorker(PeriodicWorker):
    name = "ping"
    interval_s = PING_INTERVAL_S

    def __init__(self, system: System) -> None:
        super().__init__()
        self.system = system

    async def run(self) -> None:
        await self.system.ping_all()


class DialWorker(PeriodicWorker):
    """Redials down nodes whose backoff expired (checked every second)."""

    name = "dial"
    interval_s = 1.0

    def __init__(self, system: System) -> None:
        super().__init__()
        self.system = system

    async def run(self) -> None:
        self.system.dial_due()
