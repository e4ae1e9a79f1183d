"""The node's copy of the cluster layout: persisted, changed by operators, merged from peers.

This is the thin async shell around the pure `LayoutHistory` (history.py). It owns:

- the file `metadata_dir/cluster_layout` (the history's versioned encoding), written
  atomically off the event loop; an operator's change is acknowledged only once written;
- the digest that `system/status` carries, so that peers notice a difference and exchange
  layouts (`System`);
- this node's update trackers (design §6): `ack` as soon as a version is known; `sync` once
  every local table finished an anti-entropy pass under it (`synced_version`, supplied by
  the model; without tables, at once); `sync_ack` = the lowest `sync` of all nodes as seen
  here. Old versions are pruned when every node's `sync_ack` passed them;
- `on_change` callbacks (the gossip push, the tables' sync after a new layout).

`replication_factor` comes from the node's config; a stored or received layout with another
factor is refused with a message, as Garage does.
"""

from __future__ import annotations

import asyncio
import logging
import os
import time
from collections.abc import Callable

from grange.rpc.layout.history import LayoutHistory
from grange.rpc.layout.version import LayoutError, LayoutVersion, NodeRole
from grange.util.fsutil import read_file, write_file_atomic

log = logging.getLogger("grange.rpc")

LAYOUT_FILE = "cluster_layout"


class LayoutManager:
    def __init__(
        self,
        metadata_dir: str,
        replication_factor: int,
        node_id: str,
        clock_ms: Callable[[], int] = lambda: int(time.time() * 1000),
    ) -> None:
        self.path = os.path.join(metadata_dir, LAYOUT_FILE)
        self.node_id = node_id
        self.tag = node_id[:8]
        self.replication_factor = replication_factor
        self.clock_ms = clock_ms
        self.on_change: list[Callable[[], None]] = []
        # The layout version every local table finished syncing (set by the model wiring).
        self.synced_version: Callable[[], int] | None = None
        self.history = self._load()
        self._refresh()
        self._write_lock = asyncio.Lock()
        self._written_digest = self.digest if os.path.exists(self.path) else b""

    # ------------------------------------------------------------------ persistence
    def _load(self) -> LayoutHistory:
        raw = read_file(self.path)
        if raw is None:
            return LayoutHistory.new(self.replication_factor)
        history = LayoutHistory.decode(raw)
        if history.replication_factor != self.replication_factor:
            raise LayoutError(
                f"the stored cluster layout has replication factor {history.replication_factor} but the "
                f"config says {self.replication_factor}; changing it needs a new cluster"
            )
        return history

    def _refresh(self) -> None:
        self._mark_own_trackers()
        self.digest = self.history.digest()
        self._encoded = self.history.encode()

    def _mark_own_trackers(self) -> bool:
        """ack = newest version seen; sync = what our tables finished syncing (all of it when
        no data is held yet); sync_ack = the lowest sync of all nodes, as seen from here."""
        h = self.history
        v = h.current().version
        changed = h.ack(self.node_id, v)
        synced = v if self.synced_version is None else min(v, self.synced_version())
        changed |= h.sync(self.node_id, synced)
        changed |= h.sync_ack(self.node_id, h.min_sync())
        if h.prune():
            changed = True
        return changed

    def refresh_trackers(self) -> None:
        """Re-read the tables' sync progress; gossip our trackers if they moved."""
        if self._mark_own_trackers():
            self._changed()

    async def save(self) -> None:
        """Write the current layout if it changed since the last write (off the event loop)."""
        async with self._write_lock:
            digest, data = self.digest, self._encoded
            if digest == self._written_digest:
                return
            await asyncio.to_thread(write_file_atomic, self.path, data)
            self._written_digest = digest

    def _changed(self) -> None:
        self._refresh()
        asyncio.get_running_loop().create_task(self.save())
        for cb in self.on_change:
            cb()

    # ------------------------------------------------------------------ reading
    def current(self) -> LayoutVersion:
        return self.history.current()

    def encoded(self) -> bytes:
        return self._encoded

    # ------------------------------------------------------------------ gossip
    def merge_encoded(self, raw: bytes, source: str) -> bytes:
        """Merge a peer's layout; returns the digest of what the peer sent."""
        try:
            other = LayoutHistory.decode(raw)
        except Exception as e:  # the peer's data: validate, never trust
            log.warning("[%s] unreadable layout from %s: %s", self.tag, source, e)
            return b""
        if other.replication_factor != self.replication_factor:
            log.warning(
                "[%s] ignoring layout from %s: replication factor %d, ours is %d",
                self.tag,
                source,
                other.replication_factor,
                self.replication_factor,
            )
            return other.digest()
        before = self.current().version
        if self.history.merge(other):
            self._changed()
            after = self.current().version
            if after != before:
                log.info("[%s] layout version %d received from %s", self.tag, after, source)
        return other.digest()

    # ------------------------------------------------------------------ operator changes
    async def stage_roles(self, changes: dict[str, NodeRole | None]) -> None:
        now = self.clock_ms()
        for node, role in changes.items():
            self.history.stage_role(node, role, now)
        self._changed()
        await self.save()

    async def stage_parameters(self, zone_redundancy: int | None) -> None:
        from grange.rpc.layout.version import LayoutParameters

        self.history.stage_parameters(LayoutParameters(zone_redundancy=zone_redundancy), self.clock_ms())
        self._changed()
        await self.save()

    async def revert(self) -> None:
        self.history.revert_staged(self.clock_ms())
        self._changed()
        await self.save()

    async def apply(self, version: int | None) -> list[str]:
        new, messages = self.history.apply_staged(version, self.clock_ms())
        self.history = new
        self._changed()
        await self.save()
        log.info("[%s] layout version %d applied", self.tag, self.current().version)
        return messages
