"""Which nodes hold an entry, and how many must answer (design §6–§7, Garage `replication/`).

- **Sharded** (objects, versions, block refs, uploads): partition p of the ring → the `rf`
  nodes the layout assigns to p. While a migration runs, several layout versions are live:
  writes go to the node set of every live version and need a write quorum in each; reads
  use the newest version that every node has finished syncing (`read_version`), so a read
  never misses data acknowledged under the previous version.
- **Full copy** (buckets, aliases, keys): every node with a role holds everything. Writes
  go to all of them and need all but one (at least 1); reads are local when this node holds
  a copy (anti-entropy every 10 s keeps copies close), else a quorum of 1 from others.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Protocol

from grange.rpc.layout.history import LayoutHistory
from grange.rpc.layout.version import LayoutVersion
from grange.rpc.rpc_helper import read_quorum, write_quorum


class TableReplication(Protocol):
    def read_nodes(self, phash: bytes) -> list[str]: ...

    def read_quorum(self) -> int: ...

    def write_sets(self, phash: bytes) -> list[list[str]]: ...

    def write_quorum(self) -> int: ...

    def storage_nodes(self, phash: bytes) -> list[str]:
        """Nodes that should hold `phash` in the current layout (for sync and offload)."""
        ...

    def partitions(self) -> list[int]:
        """Partitions this table is split into for anti-entropy."""
        ...


def read_version(history: LayoutHistory) -> LayoutVersion:
    """Newest live version that every node has synced (Garage `read_version`)."""
    min_sync = history.min_sync()
    for v in reversed(history.versions):
        if v.version <= min_sync:
            return v
    return history.versions[0]


class ShardedReplication:
    def __init__(self, layout_of: Callable[[], LayoutHistory], rf: int, consistency_mode: str) -> None:
        self._history = layout_of  # () -> LayoutHistory, always the node's latest
        self.rf = rf
        self.mode = consistency_mode

    def read_nodes(self, phash: bytes) -> list[str]:
        v = read_version(self._history())
        return v.nodes_of(phash[0]) if v.has_ring() else []

    def read_quorum(self) -> int:
        return read_quorum(self.rf, self.mode)

    def write_sets(self, phash: bytes) -> list[list[str]]:
        return [v.nodes_of(phash[0]) for v in self._history().versions if v.has_ring()]

    def write_quorum(self) -> int:
        return write_quorum(self.rf, self.mode)

    def storage_nodes(self, phash: bytes) -> list[str]:
        cur = self._history().current()
        return cur.nodes_of(phash[0]) if cur.has_ring() else []

    def partitions(self) -> list[int]:
        return list(range(256))


class FullReplication:
    def __init__(self, layout_of: Callable[[], LayoutHistory], self_id: str) -> None:
        self._history = layout_of
        self.self_id = self_id

    def _nodes(self, v: LayoutVersion) -> list[str]:
        return sorted(v.all_nodes())

    def read_nodes(self, phash: bytes) -> list[str]:
        nodes = self._nodes(self._history().current())
        if self.self_id in nodes:
            return [self.self_id]
        return nodes

    def read_quorum(self) -> int:
        return 1

    def write_sets(self, phash: bytes) -> list[list[str]]:
        return [self._nodes(v) for v in self._history().versions if v.all_nodes()]

    def write_quorum(self) -> int:
        n = len(self._nodes(self._history().current()))
        return max(1, n - 1)

    def storage_nodes(self, phash: bytes) -> list[str]:
        return self._nodes(self._history().current())

    def partitions(self) -> list[int]:
        return list(range(256))  # Merkle trees per partition, compared with every node
