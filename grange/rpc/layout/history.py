# Theory of operation
# -------------------
# The cluster layout as gossiped between nodes and persisted on disk, after Garage's
# `LayoutHistory` (src/rpc/layout/history.rs, v1+). It holds:
#
#   versions        the *live* layout versions, oldest first, consecutive numbers; the last
#                   is `current()`. Several are live while data migrates after a change:
#                   writes go to the node sets of every live version, reads to the newest
#                   version every storage node has finished syncing (`min_sync()`).
#   old_versions    pruned versions kept for `layout history` (at most OLD_VERSIONS_MAX).
#   update_trackers three maps node id -> version, each only ever raised:
#                   ack_map      n has seen version v and routes its writes to it;
#                   sync_map     n has finished pushing its data to the holders of v;
#                   sync_ack_map n has seen that *every* node reached sync_map >= v, so n no
#                                longer reads from any version < v.
#   staging         the changes an operator staged and has not applied yet.
#
# Staging is a CRDT with two levels of last-writer-wins. The whole LayoutStaging sits in an
# Lww whose timestamp changes only on `apply_staged` and `revert_staged`, which reset it:
# so an apply wins over any change staged before it, wherever that change was made. Inside
# one staging epoch (same outer timestamp), `roles` is an LwwMap node id -> NodeRole | None
# (None = staged removal) merged per node, and `parameters` is its own Lww: two operators
# staging different nodes concurrently both keep their change. On equal timestamps, values
# that are CRDTs are merged, other values keep the larger msgpack encoding (deterministic).
#
# Merge (gossip), `merge_report(other)`:
#   1. live versions: both histories' live versions form consecutive runs; the result is
#      the union of the two runs from max(min_stored of both) up. A version pruned by any
#      node is pruned everywhere (pruning is only justified by the trackers, which are
#      merged too). A node whose current version is older than the other's oldest live
#      version thus adopts the other's live versions. A version new to us is validated
#      (`LayoutVersion.check()`) before it is accepted; an invalid one is rejected with
#      the reason, and so are those after it. Same number, different content: ours is
#      kept and the number is reported as a conflict (the cluster is broken until a newer
#      version replaces it; this module does not log, the caller does).
#   2. old_versions: union by version number, minus live ones, the newest OLD_VERSIONS_MAX.
#   3. trackers: per-key max.  4. staging: Lww merge as above.  5. prune().
#   Without conflicts or invalid versions the result is commutative, and idempotent on a
#   pruned history; staging, trackers and old versions are also associative. Pruning
#   depends on which version is current when it runs (as in Garage), so version lists are
#   associative only up to when each side prunes.
#
# Prune rule (Garage's `cleanup_old_versions`): while more than one version is live, drop
# the oldest version v while v < min(sync_ack_map[n]) over the nodes of the current version
# (a missing entry counts as min_stored()). sync_ack, not sync: every node reading through
# v must have *seen* that the sync finished, or a node that has not yet heard of it could
# still read from v's holders after they deleted v's data. Only nodes of the current
# version count: a node removed by the current version is assumed to be going away (it
# may be dead), and must not block pruning forever. A version without storage nodes (such
# as version 0) holds no data, so it is dropped as soon as a newer version exists (Garage
# drops it as an "invalid" version).
#
# apply_staged returns a NEW history; stage_*/revert_staged/ack/sync/sync_ack/merge/prune
# mutate in place. Time is passed in (`now_ms`); nothing here reads a clock, does I/O or
# logs. On disk and on the wire: `encode()` = msgpack of {"v": FORMAT_VERSION, "history":
# ...}; `decode()` dispatches on "v" and validates with `check()`.
#
# When changing this code, keep in step: `digest()` (covers every field, so gossip sees any
# difference), `_FormatV1` (a changed shape is a new format version with a migration), and
# the merge laws tested in tests/test_layout_properties.py.

from __future__ import annotations

import hashlib
from dataclasses import dataclass, field
from typing import Any, Generic, TypeVar

import msgspec

from .assignment import compute_assignment
from .version import (
    LayoutError,
    LayoutParameters,
    LayoutVersion,
    NodeRole,
    check_node_id,
    short_id,
)

OLD_VERSIONS_MAX = 10  # Garage's OLD_VERSION_COUNT: enough for `layout history`
FORMAT_VERSION = 1

T = TypeVar("T")

_ENCODER = msgspec.msgpack.Encoder(order="deterministic")


def _canonical(value: object) -> bytes:
    """Deterministic msgpack (sorted map keys): for digests and LWW tie-breaks."""
    return _ENCODER.encode(value)


# ---------------------------------------------------------------------------------------
# CRDT building blocks (private to the layout; the general ones live in grange.table)


class _Lww(msgspec.Struct, Generic[T], frozen=True):
    """Last-writer-wins register: (timestamp in ms, value)."""

    ts: int
    value: T


def _lww_merge(a: _Lww[Any], b: _Lww[Any]) -> _Lww[Any]:
    """Larger timestamp wins; on a tie, merge CRDT values, else keep the larger encoding."""
    if a.ts != b.ts:
        return a if a.ts > b.ts else b
    if a.value == b.value:
        return a
    merge = getattr(a.value, "merged", None)
    if merge is not None:
        return _Lww(a.ts, merge(b.value))
    return a if _canonical(a.value) >= _canonical(b.value) else b


class _LwwMap(msgspec.Struct, Generic[T], frozen=True):
    """Map node id -> Lww register, merged key by key."""

    entries: dict[str, _Lww[T]] = msgspec.field(default_factory=dict)

    def merged(self, other: _LwwMap[T]) -> _LwwMap[T]:
        out = dict(self.entries)
        for k, v in other.entries.items():
            out[k] = _lww_merge(out[k], v) if k in out else v
        return _LwwMap(dict(sorted(out.items())))

    def get(self, key: str) -> _Lww[T] | None:
        return self.entries.get(key)

    def updated(self, key: str, value: T, now_ms: int) -> _LwwMap[T]:
        """Set key, with a timestamp above the current entry's so the write wins locally."""
        prev = self.entries.get(key)
        ts = now_ms if prev is None else max(now_ms, prev.ts + 1)
        out = dict(self.entries)
        out[key] = _Lww(ts, value)
        return _LwwMap(dict(sorted(out.items())))


class LayoutStaging(msgspec.Struct, frozen=True):
    """Staged, not yet applied changes. roles[n] = None stages the removal of n's role."""

    parameters: _Lww[LayoutParameters]
    roles: _LwwMap[NodeRole | None] = msgspec.field(default_factory=_LwwMap)

    def merged(self, other: LayoutStaging) -> LayoutStaging:
        return LayoutStaging(
            parameters=_lww_merge(self.parameters, other.parameters),
            roles=self.roles.merged(other.roles),
        )


class UpdateTrackers(msgspec.Struct):
    """node id -> layout version, for ack / sync / sync-ack (see the theory of operation)."""

    ack_map: dict[str, int] = msgspec.field(default_factory=dict)
    sync_map: dict[str, int] = msgspec.field(default_factory=dict)
    sync_ack_map: dict[str, int] = msgspec.field(default_factory=dict)

    def merge(self, other: UpdateTrackers) -> bool:
        changed = False
        for mine, theirs in (
            (self.ack_map, other.ack_map),
            (self.sync_map, other.sync_map),
            (self.sync_ack_map, other.sync_ack_map),
        ):
            for node, v in theirs.items():
                if v > mine.get(node, -1):
                    mine[node] = v
                    changed = True
        return changed


def _set_max(tracker: dict[str, int], node: str, version: int) -> bool:
    if version > tracker.get(node, -1):
        tracker[node] = version
        return True
    return False


@dataclass
class MergeReport:
    """What `merge_report` did: for the caller to log (this module does not log)."""

    changed: bool
    conflicts: list[int] = field(default_factory=list)  # same number, different content: ours kept
    rejected: list[tuple[int, str]] = field(default_factory=list)  # invalid incoming versions, reason
    pruned: list[int] = field(default_factory=list)  # versions moved to old_versions by this merge


VERSION_CURRENT = "Current"
VERSION_DRAINING = "Draining"
VERSION_HISTORICAL = "Historical"


class LayoutHistory(msgspec.Struct):
    """All layout versions a node knows, trackers and staged changes (see the module comment)."""

    replication_factor: int
    versions: list[LayoutVersion]
    update_trackers: UpdateTrackers
    staging: _Lww[LayoutStaging]
    old_versions: list[LayoutVersion] = msgspec.field(default_factory=list)

    @classmethod
    def new(cls, replication_factor: int) -> LayoutHistory:
        if replication_factor < 1:
            raise LayoutError(f"replication factor {replication_factor} is invalid: it must be at least 1")
        v0 = LayoutVersion.empty(replication_factor)
        staging = LayoutStaging(parameters=_Lww(0, v0.parameters))
        return cls(
            replication_factor=replication_factor,
            versions=[v0],
            update_trackers=UpdateTrackers(),
            staging=_Lww(0, staging),
        )

    def clone(self) -> LayoutHistory:
        return msgspec.msgpack.decode(msgspec.msgpack.encode(self), type=LayoutHistory)

    # ---- who stores what ----

    def current(self) -> LayoutVersion:
        return self.versions[-1]

    def min_stored(self) -> int:
        """Number of the oldest live version."""
        return self.versions[0].version

    def all_nodes(self) -> list[str]:
        """Nodes with a role (storage or gateway) in any live version, sorted."""
        return sorted({n for v in self.versions for n in v.node_id_vec})

    def all_storage_nodes(self) -> list[str]:
        """Nodes that store data in any live version, sorted."""
        return sorted({n for v in self.versions for n in v.storage_nodes()})

    # ---- update trackers ----

    def ack(self, node: str, version: int) -> bool:
        return _set_max(self.update_trackers.ack_map, node, version)

    def sync(self, node: str, version: int) -> bool:
        return _set_max(self.update_trackers.sync_map, node, version)

    def sync_ack(self, node: str, version: int) -> bool:
        return _set_max(self.update_trackers.sync_ack_map, node, version)

    def _min_among(self, tracker: dict[str, int], nodes: list[str]) -> int:
        default = self.min_stored()
        return min((tracker.get(n, default) for n in nodes), default=default)

    def min_ack(self) -> int:
        """Lowest version acknowledged by all nodes with a role in a live version."""
        return self._min_among(self.update_trackers.ack_map, self.all_nodes())

    def min_sync(self) -> int:
        """Lowest version all storage nodes of live versions have synced: the read version."""
        return self._min_among(self.update_trackers.sync_map, self.all_storage_nodes())

    def min_sync_ack(self) -> int:
        """Lowest sync-ack among the nodes of the current version: what prune() uses."""
        return self._min_among(self.update_trackers.sync_ack_map, self.current().node_id_vec)

    def prune(self) -> list[int]:
        """Move live versions nobody reads any more to old_versions; return their numbers."""
        pruned: list[int] = []
        threshold = self.min_sync_ack()
        while len(self.versions) > 1 and (
            self.versions[0].version < threshold or not self.versions[0].storage_nodes()
        ):
            old = self.versions.pop(0)
            self.old_versions.append(old)
            pruned.append(old.version)
        self._trim_old_versions()
        return pruned

    def _trim_old_versions(self) -> None:
        """Dedupe old versions by number (first seen wins), keep those older than the live
        ones (a peer may know pruned versions newer than ours if we refused its live ones),
        and only the newest OLD_VERSIONS_MAX."""
        oldest_live = self.min_stored()
        by_num: dict[int, LayoutVersion] = {}
        for v in self.old_versions:
            if v.version < oldest_live:
                by_num.setdefault(v.version, v)
        self.old_versions = [by_num[k] for k in sorted(by_num)[-OLD_VERSIONS_MAX:]]

    def version_statuses(self) -> list[tuple[int, str]]:
        """(version, status) newest first: Current, Draining (live, older), Historical (pruned)."""
        out: list[tuple[int, str]] = []
        for v in reversed(self.versions):
            out.append((v.version, VERSION_CURRENT if v is self.versions[-1] else VERSION_DRAINING))
        for v in reversed(self.old_versions):
            out.append((v.version, VERSION_HISTORICAL))
        return out

    # ---- gossip ----

    def merge(self, other: LayoutHistory) -> bool:
        """Merge what `other` knows into self; True if anything changed."""
        return self.merge_report(other).changed

    def merge_report(self, other: LayoutHistory) -> MergeReport:
        if other.replication_factor != self.replication_factor:
            raise LayoutError(
                f"cannot merge layout histories with different replication factors "
                f"(ours {self.replication_factor}, theirs {other.replication_factor})"
            )
        before = self.digest()
        report = MergeReport(changed=False)

        ours = {v.version: v for v in self.versions}
        theirs = {v.version: v for v in other.versions}
        start = max(self.min_stored(), other.min_stored())
        chain: list[LayoutVersion] = []
        n = start
        while True:
            mine, their = ours.get(n), theirs.get(n)
            if mine is not None:
                if their is not None and their != mine:
                    report.conflicts.append(n)
                chain.append(mine)
            elif their is not None:
                reason = self._reject_reason(their)
                if reason is not None:
                    report.rejected.append((n, reason))
                    break
                chain.append(their)
            else:
                break
            n += 1
        if not chain:  # we were out of date and their first version is invalid: keep ours
            chain = list(self.versions)
        live = {v.version for v in chain}
        dropped = [v for v in self.versions if v.version not in live]
        dropped += [v for v in other.versions if v.version not in live and v.version < chain[0].version]
        self.versions = chain
        self.old_versions = self.old_versions + dropped + other.old_versions
        self._trim_old_versions()

        self.update_trackers.merge(other.update_trackers)
        self.staging = _lww_merge(self.staging, other.staging)
        report.pruned = self.prune()
        report.changed = self.digest() != before
        return report

    def _reject_reason(self, v: LayoutVersion) -> str | None:
        if v.replication_factor != self.replication_factor:
            return f"version {v.version} has replication factor {v.replication_factor}, ours is {self.replication_factor}"
        try:
            v.check()
        except LayoutError as e:
            return f"version {v.version} is invalid: {e}"
        return None

    # ---- staging ----

    def stage_role(self, node_id: str, role: NodeRole | None, now_ms: int) -> None:
        """Stage a role for a node (None: stage its removal); last writer wins per node."""
        check_node_id(node_id)
        if role is not None:
            if not role.zone:
                raise LayoutError(f"node {short_id(node_id)} needs a zone")
            if role.capacity is not None and role.capacity <= 0:
                raise LayoutError(
                    f"node {short_id(node_id)} has zero capacity; use a gateway role (-g) for a node "
                    "that stores nothing"
                    if role.capacity == 0
                    else f"node {short_id(node_id)} has negative capacity {role.capacity}"
                )
        s = self.staging
        staging = LayoutStaging(s.value.parameters, s.value.roles.updated(node_id, role, now_ms))
        self.staging = _Lww(s.ts, staging)

    def stage_parameters(self, parameters: LayoutParameters, now_ms: int) -> None:
        zr = parameters.zone_redundancy
        rf = self.replication_factor
        if zr is not None and not 1 <= zr <= rf:
            raise LayoutError(
                f"zone redundancy {zr} is invalid: it must be between 1 and the replication factor {rf}, "
                "or 'maximum'"
            )
        s = self.staging
        prev = s.value.parameters
        params = _Lww(max(now_ms, prev.ts + 1), parameters)
        self.staging = _Lww(s.ts, LayoutStaging(params, s.value.roles))

    def revert_staged(self, now_ms: int) -> None:
        """Drop every staged change (here and, once gossiped, everywhere staged before now)."""
        ts = max(now_ms, self.staging.ts + 1)
        self.staging = _Lww(ts, LayoutStaging(parameters=_Lww(ts, self.current().parameters)))

    def staged_parameters(self) -> LayoutParameters:
        return self.staging.value.parameters.value

    def staged_role_changes(self) -> dict[str, NodeRole | None]:
        """Staged roles that differ from the current version (None: removal), by node id."""
        cur = self.current().roles
        out: dict[str, NodeRole | None] = {}
        for node, entry in self.staging.value.roles.entries.items():
            if entry.value is None:
                if node in cur:
                    out[node] = None
            elif cur.get(node) != entry.value:
                out[node] = entry.value
        return out

    def has_staged_changes(self) -> bool:
        return bool(self.staged_role_changes()) or self.staged_parameters() != self.current().parameters

    def preview(self) -> tuple[LayoutVersion, list[str]]:
        """The version `apply_staged` would create (without changing self), and its report."""
        cur = self.current()
        roles = dict(cur.roles)
        for node, role in self.staged_role_changes().items():
            if role is None:
                roles.pop(node, None)
            else:
                roles[node] = role
        roles = dict(sorted(roles.items()))
        params = self.staged_parameters()
        a = compute_assignment(roles, self.replication_factor, params.zone_redundancy, cur)
        new = LayoutVersion(
            version=cur.version + 1,
            replication_factor=self.replication_factor,
            partition_size=a.partition_size,
            parameters=params,
            roles=roles,
            node_id_vec=a.node_id_vec,
            ring_assignment=a.ring_assignment,
        )
        new.check()
        return new, list(a.messages)

    def apply_staged(self, version: int | None, now_ms: int) -> tuple[LayoutHistory, list[str]]:
        """A new history with the staged changes applied as current()+1, and the report."""
        cur = self.current().version
        if version is not None and version != cur + 1:
            raise LayoutError(f"expected version {cur + 1}, got {version}")
        if not self.has_staged_changes():
            raise LayoutError(f"no changes to apply: the layout is already at version {cur}")
        new_version, messages = self.preview()
        out = self.clone()
        out.versions.append(new_version)
        ts = max(now_ms, self.staging.ts + 1)
        out.staging = _Lww(ts, LayoutStaging(parameters=self.staging.value.parameters))
        out.prune()
        return out, messages

    # ---- integrity, digest, encoding ----

    def check(self) -> None:
        """Raise LayoutError if the history is not well formed (used on decode and gossip)."""
        rf = self.replication_factor
        if rf < 1:
            raise LayoutError(f"replication factor {rf} is invalid: it must be at least 1")
        if not self.versions:
            raise LayoutError("layout history has no version")
        for prev, nxt in zip(self.versions, self.versions[1:], strict=False):
            if nxt.version != prev.version + 1:
                raise LayoutError(f"live versions are not consecutive: {prev.version} then {nxt.version}")
        for v in self.versions:
            if v.replication_factor != rf:
                raise LayoutError(
                    f"version {v.version} has replication factor {v.replication_factor}, not {rf}"
                )
            try:
                v.check()
            except LayoutError as e:
                raise LayoutError(f"version {v.version}: {e}") from e
        nums = [v.version for v in self.old_versions]
        if nums != sorted(set(nums)) or (nums and nums[-1] >= self.min_stored()):
            raise LayoutError("old versions must be distinct, ascending and older than the live versions")
        if len(nums) > OLD_VERSIONS_MAX:
            raise LayoutError(f"more than {OLD_VERSIONS_MAX} old versions")
        for node in self.staging.value.roles.entries:
            check_node_id(node)
        for tracker in (
            self.update_trackers.ack_map,
            self.update_trackers.sync_map,
            self.update_trackers.sync_ack_map,
        ):
            for node in tracker:
                check_node_id(node)

    def digest(self) -> bytes:
        """BLAKE2b-256 of the canonical encoding: equal iff the histories are equal."""
        return hashlib.blake2b(_canonical(self), digest_size=32).digest()

    def encode(self) -> bytes:
        return _canonical(_FormatV1(v=FORMAT_VERSION, history=self))

    @classmethod
    def decode(cls, data: bytes) -> LayoutHistory:
        """Inverse of encode(); raises LayoutError on a malformed or invalid history."""
        try:
            header = msgspec.msgpack.decode(data, type=_FormatHeader)
        except msgspec.DecodeError as e:
            raise LayoutError(f"malformed layout history: {e}") from e
        if header.v != FORMAT_VERSION:
            raise LayoutError(
                f"unsupported layout history format version {header.v} (known: {FORMAT_VERSION})"
            )
        try:
            history = msgspec.msgpack.decode(data, type=_FormatV1).history
        except msgspec.DecodeError as e:
            raise LayoutError(f"malformed layout history: {e}") from e
        history.check()
        return history


class _FormatHeader(msgspec.Struct):
    v: int


class _FormatV1(msgspec.Struct):
    """Stored / gossiped form, format 1. A new shape is a new class + a migration from this one."""

    v: int
    history: LayoutHistory
