"""Bucket and access-key logic shared by the admin API and the S3 API (Garage `model/helper/`).

Nothing here is HTTP-specific: failures are `HelperError`s that each API maps to its own
errors (admin: `AdminError`; S3: its XML error codes).

Both sides of a relation are kept, as in Garage: a key's permission on a bucket lives in the
bucket's `authorized_keys` AND in the key's `authorized_buckets`; a local alias in the key's
`local_aliases` AND in the bucket's `local_aliases`; a global alias in the `bucket_alias`
table AND in the bucket's `aliases`. Both copies of one change carry the same timestamp,
taken strictly after every timestamp it replaces (`next_ts`), so concurrent changes resolve
the same way on both sides.

Changes that read then write several entries run under one lock per node (`locked`), like
Garage's `LockedHelper`: that keeps one node consistent, not two nodes racing (Garage #649).

Full-copy tables (keys, buckets, aliases) are listed from this node's own copy: every node
with a role holds all of it, kept close by anti-entropy.
"""

from __future__ import annotations

import asyncio
import ipaddress
import os
import re
import time
import weakref
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

import msgspec

from grange.model.bucket_alias_table import BucketAlias
from grange.model.bucket_table import Bucket, BucketKeyPerm, BucketParams
from grange.model.counters import COUNTER_NAMES, BucketCounters
from grange.model.key_table import Key, KeyParams
from grange.table.crdt import Deletable, Lww, LwwMap, next_ts

if TYPE_CHECKING:
    from grange.model.model import Model


# ---------------------------------------------------------------------- errors
class HelperError(Exception):
    """An expected failure of a bucket/key operation; the message is one line for the user."""

    expected = True


class BadRequest(HelperError):
    pass


class InvalidBucketName(BadRequest):
    pass


class NoSuchBucket(HelperError):
    pass


class NoSuchAccessKey(HelperError):
    pass


class BucketAlreadyExists(HelperError):
    pass


class BucketNotEmpty(HelperError):
    pass


class KeyAlreadyExists(HelperError):
    pass


# ---------------------------------------------------------------------- names, ids, time
def now_ms() -> int:
    return int(time.time() * 1000)


def iso_time(ms: int) -> str:
    """RFC 3339 with milliseconds, UTC (what Garage's chrono serializes)."""
    dt = datetime.fromtimestamp(ms / 1000, tz=UTC)
    return dt.strftime("%Y-%m-%dT%H:%M:%S.") + f"{ms % 1000:03d}Z"


_BUCKET_CHARS = re.compile(r"^[a-z0-9.-]+$")


def bucket_name_problem(name: str, *, allow_punycode: bool = False) -> str | None:
    """Why `name` is not a valid S3 bucket name, or None if it is (AWS bucket naming rules)."""
    if not 3 <= len(name) <= 63:
        return "must be 3 to 63 characters long"
    if not _BUCKET_CHARS.match(name):
        return "may only contain lowercase letters, digits, '-' and '.'"
    if not (name[0].isalnum() and name[-1].isalnum()):
        return "must start and end with a letter or a digit"
    if ".." in name:
        return "must not contain two adjacent periods"
    try:
        ipaddress.ip_address(name)
        return "must not be formatted as an IP address"
    except ValueError:
        pass
    if name.startswith("xn--") and not allow_punycode:
        return "must not start with 'xn--'"
    if name.endswith("-s3alias") or name.endswith("--ol-s3"):
        return "must not end with '-s3alias' or '--ol-s3'"
    return None


def valid_bucket_name(name: str, *, allow_punycode: bool = False) -> bool:
    return bucket_name_problem(name, allow_punycode=allow_punycode) is None


def check_bucket_name(name: str) -> None:
    problem = bucket_name_problem(name)
    if problem is not None:
        raise InvalidBucketName(f"invalid bucket name {name!r}: a bucket name {problem}")


_KEY_ID = re.compile(r"^GK[0-9a-fA-F]{24}$")
_SECRET = re.compile(r"^[0-9a-fA-F]{64}$")


def valid_key_id(key_id: str) -> bool:
    return bool(_KEY_ID.match(key_id))


def valid_secret(secret: str) -> bool:
    return bool(_SECRET.match(secret))


def new_key_id() -> str:
    return "GK" + os.urandom(12).hex()


def new_secret() -> str:
    return os.urandom(32).hex()


def parse_bucket_id(text: str) -> bytes:
    try:
        raw = bytes.fromhex(text)
    except ValueError:
        raw = b""
    if len(raw) != 32:
        raise BadRequest(f"invalid bucket id {text!r}: expected 64 hex characters")
    return raw


NO_PERMISSIONS = (False, False, False)


# ---------------------------------------------------------------------- the node lock
_locks: weakref.WeakKeyDictionary[Any, asyncio.Lock] = weakref.WeakKeyDictionary()


@asynccontextmanager
async def locked(model: Model) -> AsyncIterator[Helper]:
    lock = _locks.get(model)
    if lock is None:
        lock = _locks[model] = asyncio.Lock()
    async with lock:
        yield Helper(model)


# ---------------------------------------------------------------------- helper
def _live_params(key: Key) -> KeyParams:
    p = key.params()
    assert p is not None
    return p


def _bparams(bucket: Bucket) -> BucketParams:
    p = bucket.params()
    assert p is not None
    return p


def active_global_aliases(p: BucketParams) -> list[str]:
    return [n for n, active in p.aliases.items() if active]


def active_local_aliases(p: BucketParams) -> list[tuple[str, str]]:
    return [k for k, active in p.local_aliases.items() if active]


class Helper:
    """Reads and read-modify-writes of keys, buckets and aliases.

    Read-only methods may be used without the lock; methods that change entries expect to
    be called from `locked(model)`.
    """

    def __init__(self, model: Model) -> None:
        self.model = model
        # What this helper wrote, by (table, partition key): merged into what it reads next,
        # so a read right after a quorum write sees it even if this node's own copy of the
        # write has not landed yet (the quorum may have been reached without it).
        self._written: dict[tuple[str, Any], Any] = {}

    async def _get(self, table: Any, pk: Any) -> Any:
        entry = await table.get(pk)
        mine = self._written.get((table.name, pk))
        if mine is not None:
            entry = mine if entry is None else table.schema.merge(entry, mine)
        return entry

    async def _insert(self, table: Any, entry: Any) -> None:
        slot = (table.name, table.schema.partition_key(entry))
        mine = self._written.get(slot)
        self._written[slot] = entry if mine is None else table.schema.merge(mine, entry)
        await table.insert(entry)

    # ---- local listings of full-copy tables
    async def _scan(self, table: Any) -> list[Any]:
        def scan() -> list[Any]:
            return [table.schema.decode(raw) for _, raw in table.data.store.range()]

        entries = {table.schema.partition_key(e): e for e in await asyncio.to_thread(scan)}
        for (name, pk), mine in self._written.items():
            if name == table.name:
                entries[pk] = mine if pk not in entries else table.schema.merge(entries[pk], mine)
        return list(entries.values())

    async def list_keys(self) -> list[Key]:
        keys = [k for k in await self._scan(self.model.key_table) if not k.is_deleted()]
        return sorted(keys, key=lambda k: k.key_id)

    async def list_buckets(self) -> list[Bucket]:
        buckets = [b for b in await self._scan(self.model.bucket_table) if not b.is_deleted()]
        return sorted(buckets, key=lambda b: b.id)

    # ---- keys
    async def get_internal_key(self, key_id: str) -> Key | None:
        return await self._get(self.model.key_table, key_id)

    async def get_existing_key(self, key_id: str) -> Key:
        key = await self._get(self.model.key_table, key_id)
        if key is None or key.is_deleted():
            raise NoSuchAccessKey(f"access key {key_id} does not exist or was deleted")
        return key

    async def matching_keys(self, pattern: str) -> list[Key]:
        """Live keys whose id starts with `pattern` or whose name is `pattern` (case-insensitive)."""
        pat = pattern.lower()
        return [k for k in await self.list_keys()
                if k.key_id.lower().startswith(pat) or _live_params(k).name.get().lower() == pat]

    async def get_matching_key(self, pattern: str) -> Key:
        if valid_key_id(pattern):
            key = await self._get(self.model.key_table, pattern)
            if key is not None and not key.is_deleted():
                return key
        candidates = await self.matching_keys(pattern)
        if not candidates:
            raise NoSuchAccessKey(f"no access key matches {pattern!r}")
        if len(candidates) > 1:
            ids = ", ".join(k.key_id for k in candidates[:5])
            raise BadRequest(f"{len(candidates)} access keys match {pattern!r} ({ids}); give a longer id prefix")
        return candidates[0]

    async def create_key(self, name: str) -> Key:
        return await self._insert_new_key(new_key_id(), new_secret(), name)

    async def import_key(self, key_id: str, secret: str, name: str) -> Key:
        if not valid_key_id(key_id):
            raise BadRequest(f"invalid access key id {key_id!r}: expected GK followed by 24 hex characters")
        if not valid_secret(secret):
            raise BadRequest("invalid secret access key: expected 64 hex characters")
        prev = await self._get(self.model.key_table, key_id)
        if prev is not None:
            if prev.is_deleted():
                raise KeyAlreadyExists(f"access key {key_id} was deleted; a deleted key id cannot be imported again")
            raise KeyAlreadyExists(f"access key {key_id} already exists")
        return await self._insert_new_key(key_id, secret, name)

    async def _insert_new_key(self, key_id: str, secret: str, name: str) -> Key:
        now = now_ms()
        params = KeyParams(secret, Lww(now, name), Lww(now, False), LwwMap(), LwwMap())
        key = Key(key_id, Deletable.present(params))
        await self._insert(self.model.key_table, key)
        return key

    async def update_key(self, key: Key, *, name: str | None = None, allow_create_bucket: bool | None = None) -> Key:
        now = now_ms()
        p = _live_params(key)
        if name is not None:
            p = msgspec.structs.replace(p, name=p.name.update(name, now))
        if allow_create_bucket is not None:
            p = msgspec.structs.replace(p, allow_create_bucket=p.allow_create_bucket.update(allow_create_bucket, now))
        key = Key(key.key_id, Deletable.present(p))
        await self._insert(self.model.key_table, key)
        return key

    async def delete_key(self, key_id: str) -> None:
        """Remove the key's local aliases and its permissions everywhere, then delete it (Garage `delete_key`)."""
        key = await self.get_existing_key(key_id)
        p = _live_params(key)
        for alias, target in p.local_aliases.items():
            if target is not None:
                await self.unset_local_bucket_alias(target, key_id, alias, force=True)
        for bucket_id, perm in p.authorized_buckets.items():
            if perm.is_any():
                await self.set_bucket_key_permissions(bucket_id, key_id, NO_PERMISSIONS)
        await self._insert(self.model.key_table, Key(key_id, Deletable.delete()))

    # ---- buckets
    async def get_internal_bucket(self, bucket_id: bytes) -> Bucket | None:
        return await self._get(self.model.bucket_table, bucket_id)

    async def get_existing_bucket(self, bucket_id: bytes) -> Bucket:
        bucket = await self._get(self.model.bucket_table, bucket_id)
        if bucket is None or bucket.is_deleted():
            raise NoSuchBucket(f"bucket {bucket_id.hex()} does not exist or was deleted")
        return bucket

    async def resolve_global_bucket_name(self, name: str) -> bytes | None:
        """Bucket id of a global alias, or of a full 64-hex id of a live bucket."""
        if len(name) == 64:
            try:
                bid = bytes.fromhex(name)
            except ValueError:
                bid = b""
            if len(bid) == 32:
                b = await self._get(self.model.bucket_table, bid)
                return bid if b is not None and not b.is_deleted() else None
        alias = await self._get(self.model.bucket_alias_table, name)
        return alias.bucket_id() if alias is not None else None

    async def resolve_bucket(self, name: str, key: Key) -> bytes:
        """What `name` means for requests signed by `key`: its local alias first, then global."""
        target = _live_params(key).local_aliases.get(name)
        if target is not None:
            return target
        bid = await self.resolve_global_bucket_name(name)
        if bid is None:
            raise NoSuchBucket(f"bucket {name!r} does not exist")
        return bid

    async def search_bucket(self, pattern: str) -> bytes:
        """A global alias, or a (prefix of a) hex bucket id matching exactly one bucket."""
        bid = await self.resolve_global_bucket_name(pattern)
        if bid is not None:
            return bid
        pat = pattern.lower()
        if len(pat) >= 2 and all(c in "0123456789abcdef" for c in pat):
            candidates = [b.id for b in await self.list_buckets() if b.id.hex().startswith(pat)]
            if len(candidates) == 1:
                return candidates[0]
            if len(candidates) > 1:
                raise BadRequest(f"{len(candidates)} buckets match {pattern!r}; give a longer id prefix")
        raise NoSuchBucket(f"bucket {pattern!r} does not exist")

    async def create_bucket(self) -> Bucket:
        bucket = Bucket(os.urandom(32), Deletable.present(BucketParams.new(now_ms())))
        await self._insert(self.model.bucket_table, bucket)
        return bucket

    async def is_bucket_empty(self, bucket_id: bytes) -> bool:
        objects = await self.model.object_table.get_range(bucket_id, filter="data", limit=1)
        return not objects

    async def delete_bucket(self, bucket_id: bytes) -> None:
        bucket = await self.get_existing_bucket(bucket_id)
        if not await self.is_bucket_empty(bucket_id):
            raise BucketNotEmpty(f"bucket {bucket_id.hex()[:16]} is not empty: delete its objects first")
        p = _bparams(bucket)
        for key_id, perm in p.authorized_keys.items():
            if perm.is_any():
                await self.set_bucket_key_permissions(bucket_id, key_id, NO_PERMISSIONS)
        for key_id, alias in active_local_aliases(p):
            await self.unset_local_bucket_alias(bucket_id, key_id, alias, force=True)
        for alias in active_global_aliases(p):
            await self.purge_global_bucket_alias(bucket_id, alias)
        await self._insert(self.model.bucket_table, Bucket(bucket_id, Deletable.delete()))

    async def update_quotas(self, bucket_id: bytes, max_size: int | None, max_objects: int | None) -> None:
        from grange.model.bucket_table import BucketQuotas

        bucket = await self.get_existing_bucket(bucket_id)
        p = _bparams(bucket)
        p = msgspec.structs.replace(p, quotas=p.quotas.update(BucketQuotas(max_size, max_objects), now_ms()))
        await self._insert(self.model.bucket_table, Bucket(bucket_id, Deletable.present(p)))

    async def counters(self, bucket_id: bytes) -> dict[str, int]:
        """objects, bytes, unfinished_uploads of a bucket (eventually consistent)."""
        current = self.model.layout.current()
        if not current.has_ring():
            return dict.fromkeys(COUNTER_NAMES, 0)
        entries = await self.model.counter_table.get_range(bucket_id)
        return BucketCounters.totals(entries, current.nodes_of(bucket_id[0]))

    # ---- permissions
    async def set_bucket_key_permissions(self, bucket_id: bytes, key_id: str,
                                         perm: tuple[bool, bool, bool]) -> None:
        """Set (read, write, owner) of a key on a bucket, on both sides (Garage `set_bucket_key_permissions`).

        Deleted buckets or keys only accept "no permissions" (and are then left alone).
        """
        bucket = await self.get_internal_bucket(bucket_id)
        if bucket is None:
            raise NoSuchBucket(f"bucket {bucket_id.hex()} does not exist")
        key = await self.get_internal_key(key_id)
        if key is None:
            raise NoSuchAccessKey(f"access key {key_id} does not exist")
        any_perm = any(perm)
        bp, kp = bucket.params(), key.params()
        if bp is None and any_perm:
            raise BadRequest("cannot give permissions on a deleted bucket")
        if kp is None and any_perm:
            raise BadRequest("cannot give permissions to a deleted key")
        prev = 0
        if bp is not None:
            old = bp.authorized_keys.get(key_id)
            prev = max(prev, bp.authorized_keys.get_timestamp(key_id), old.timestamp if old else 0)
        if kp is not None:
            old = kp.authorized_buckets.get(bucket_id)
            prev = max(prev, kp.authorized_buckets.get_timestamp(bucket_id), old.timestamp if old else 0)
        ts = next_ts(prev, now_ms())
        new = BucketKeyPerm(ts, *perm)
        if bp is not None:
            bp = msgspec.structs.replace(bp, authorized_keys=bp.authorized_keys.merge(LwwMap.raw_item(key_id, ts, new)))
            await self._insert(self.model.bucket_table, Bucket(bucket_id, Deletable.present(bp)))
        if kp is not None:
            kp = msgspec.structs.replace(
                kp, authorized_buckets=kp.authorized_buckets.merge(LwwMap.raw_item(bucket_id, ts, new)))
            await self._insert(self.model.key_table, Key(key_id, Deletable.present(kp)))

    async def change_bucket_key_permissions(self, bucket_id: bytes, key_id: str, *, read: bool, write: bool,
                                            owner: bool, allow: bool) -> None:
        """Allow (or deny) the flags given as True, keeping the others as they are."""
        bucket = await self.get_existing_bucket(bucket_id)
        await self.get_existing_key(key_id)
        cur = _bparams(bucket).authorized_keys.get(key_id)
        r, w, o = (cur.allow_read, cur.allow_write, cur.allow_owner) if cur else NO_PERMISSIONS
        if read:
            r = allow
        if write:
            w = allow
        if owner:
            o = allow
        await self.set_bucket_key_permissions(bucket_id, key_id, (r, w, o))

    # ---- global aliases
    async def set_global_bucket_alias(self, bucket_id: bytes, name: str) -> None:
        check_bucket_name(name)
        bucket = await self.get_existing_bucket(bucket_id)
        alias = await self._get(self.model.bucket_alias_table, name)
        if alias is not None:
            target = alias.bucket_id()
            if target is not None and target != bucket_id:
                raise BucketAlreadyExists(f"global alias {name!r} already points to another bucket ({target.hex()[:16]})")
        p = _bparams(bucket)
        ts = next_ts(max(p.aliases.get_timestamp(name), alias.state.ts if alias else 0), now_ms())
        await self._insert(self.model.bucket_alias_table, BucketAlias(name, Lww(ts, bucket_id)))
        p = msgspec.structs.replace(p, aliases=p.aliases.merge(LwwMap.raw_item(name, ts, True)))
        await self._insert(self.model.bucket_table, Bucket(bucket_id, Deletable.present(p)))

    async def unset_global_bucket_alias(self, bucket_id: bytes, name: str) -> None:
        bucket = await self.get_existing_bucket(bucket_id)
        p = _bparams(bucket)
        alias = await self._get(self.model.bucket_alias_table, name)
        if alias is None or alias.bucket_id() != bucket_id:
            raise NoSuchBucket(f"bucket {bucket_id.hex()[:16]} has no global alias {name!r}")
        others = [n for n in active_global_aliases(p) if n != name]
        if not others and not active_local_aliases(p):
            raise BadRequest(f"{name!r} is the last alias of bucket {bucket_id.hex()[:16]}: "
                             "delete the bucket instead of unaliasing it")
        ts = next_ts(max(alias.state.ts, p.aliases.get_timestamp(name)), now_ms())
        await self._insert(self.model.bucket_alias_table, BucketAlias(name, Lww(ts, None)))
        p = msgspec.structs.replace(p, aliases=p.aliases.merge(LwwMap.raw_item(name, ts, False)))
        await self._insert(self.model.bucket_table, Bucket(bucket_id, Deletable.present(p)))

    async def purge_global_bucket_alias(self, bucket_id: bytes, name: str) -> None:
        """Make sure `name` no longer points to the bucket, whatever state either is in."""
        bucket = await self.get_internal_bucket(bucket_id)
        alias = await self._get(self.model.bucket_alias_table, name)
        bp = bucket.params() if bucket is not None else None
        prev = max(alias.state.ts if alias else 0, bp.aliases.get_timestamp(name) if bp else 0)
        ts = next_ts(prev, now_ms())
        if alias is not None and alias.bucket_id() == bucket_id:
            await self._insert(self.model.bucket_alias_table, BucketAlias(name, Lww(ts, None)))
        if bp is not None:
            bp = msgspec.structs.replace(bp, aliases=bp.aliases.merge(LwwMap.raw_item(name, ts, False)))
            await self._insert(self.model.bucket_table, Bucket(bucket_id, Deletable.present(bp)))

    # ---- local aliases
    async def set_local_bucket_alias(self, bucket_id: bytes, key_id: str, name: str, *,
                                     require_permission: bool = False) -> None:
        check_bucket_name(name)
        bucket = await self.get_existing_bucket(bucket_id)
        key = await self.get_existing_key(key_id)
        kp, bp = _live_params(key), _bparams(bucket)
        existing = kp.local_aliases.get(name)
        if existing is not None and existing != bucket_id:
            raise BadRequest(f"alias {name!r} of key {key_id} already points to another bucket ({existing.hex()[:16]})")
        if require_permission:
            perm = kp.authorized_buckets.get(bucket_id)
            if perm is None or not perm.is_any():
                raise BadRequest(f"key {key_id} has no permission on bucket {bucket_id.hex()[:16]}: "
                                 "allow it first (`grange bucket allow`)")
        ts = next_ts(max(kp.local_aliases.get_timestamp(name), bp.local_aliases.get_timestamp((key_id, name))),
                     now_ms())
        kp = msgspec.structs.replace(kp, local_aliases=kp.local_aliases.merge(LwwMap.raw_item(name, ts, bucket_id)))
        await self._insert(self.model.key_table, Key(key_id, Deletable.present(kp)))
        bp = msgspec.structs.replace(
            bp, local_aliases=bp.local_aliases.merge(LwwMap.raw_item((key_id, name), ts, True)))
        await self._insert(self.model.bucket_table, Bucket(bucket_id, Deletable.present(bp)))

    async def unset_local_bucket_alias(self, bucket_id: bytes, key_id: str, name: str, *,
                                       force: bool = False) -> None:
        """Remove a local alias; unless `force`, refuse to leave the bucket without any alias."""
        if force:
            bucket, key = await self.get_internal_bucket(bucket_id), await self.get_internal_key(key_id)
        else:
            bucket, key = await self.get_existing_bucket(bucket_id), await self.get_existing_key(key_id)
        kp = key.params() if key is not None else None
        bp = bucket.params() if bucket is not None else None
        if not force:
            assert kp is not None and bp is not None
            if kp.local_aliases.get(name) != bucket_id:
                raise NoSuchBucket(f"key {key_id} has no alias {name!r} for bucket {bucket_id.hex()[:16]}")
            other_local = [a for a in active_local_aliases(bp) if a != (key_id, name)]
            if not active_global_aliases(bp) and not other_local:
                raise BadRequest(f"{name!r} is the last alias of bucket {bucket_id.hex()[:16]}: "
                                 "delete the bucket instead of unaliasing it")
        prev = 0
        if bp is not None:
            prev = bp.local_aliases.get_timestamp((key_id, name))
        if kp is not None:
            prev = max(prev, kp.local_aliases.get_timestamp(name))
        ts = next_ts(prev, now_ms())
        if kp is not None and kp.local_aliases.get(name) == bucket_id:
            kp = msgspec.structs.replace(kp, local_aliases=kp.local_aliases.merge(LwwMap.raw_item(name, ts, None)))
            await self._insert(self.model.key_table, Key(key_id, Deletable.present(kp)))
        if bp is not None:
            bp = msgspec.structs.replace(
                bp, local_aliases=bp.local_aliases.merge(LwwMap.raw_item((key_id, name), ts, False)))
            await self._insert(self.model.bucket_table, Bucket(bucket_id, Deletable.present(bp)))
