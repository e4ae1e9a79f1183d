"""Bucket operations: List/Get/Create/Update/DeleteBucket, Allow/DenyBucketKey, Add/RemoveBucketAlias.

Garage's admin API v2 (`src/api/admin/bucket.rs`); the logic is in `grange.model.helpers`.
Every answer that describes a bucket is a GetBucketInfoResponse, read after the change.
"""

from __future__ import annotations

from typing import Any

from grange.api.admin.keys import helper_errors, param, perm_json, update_body
from grange.api.admin.registry import AdminError, NodeContext, operation, require
from grange.model import helpers as h
from grange.model.helpers import Helper, locked


def _bucket_id(value: Any, what: str = "bucketId") -> bytes:
    require(isinstance(value, str), f"{what} must be a string of 64 hex characters")
    return h.parse_bucket_id(value)


async def bucket_info_json(helper: Helper, bucket_id: bytes) -> dict[str, Any]:
    bucket = await helper.get_existing_bucket(bucket_id)
    p = bucket.params()
    assert p is not None
    key_ids = {k for k, perm in p.authorized_keys.items() if perm.is_any()}
    key_ids |= {k for k, _ in h.active_local_aliases(p)}
    keys = []
    for key_id in sorted(key_ids):
        key = await helper.get_internal_key(key_id)
        kp = key.params() if key is not None else None
        if kp is None:
            continue
        keys.append({
            "accessKeyId": key_id,
            "name": kp.name.get(),
            "permissions": perm_json(kp.authorized_buckets.get(bucket_id)),
            "bucketLocalAliases": [n for n, target in kp.local_aliases.items() if target == bucket_id],
        })
    counters = await helper.counters(bucket_id)
    quotas = p.quotas.get()
    return {
        "id": bucket_id.hex(),
        "created": h.iso_time(p.creation_date),
        "globalAliases": h.active_global_aliases(p),
        "websiteAccess": p.website_config.get() is not None,
        "websiteConfig": None,  # website configurations are not decoded here yet
        "keys": keys,
        "objects": counters.get("objects", 0),
        "bytes": counters.get("bytes", 0),
        "unfinishedUploads": counters.get("unfinished_uploads", 0),
        # Only uploads are counted per bucket (no separate multipart counter table yet).
        "unfinishedMultipartUploads": counters.get("unfinished_uploads", 0),
        "unfinishedMultipartUploadParts": 0,
        "unfinishedMultipartUploadBytes": 0,
        "quotas": {"maxSize": quotas.max_size, "maxObjects": quotas.max_objects},
    }


@operation("ListBuckets")
@helper_errors
async def list_buckets(ctx: NodeContext, body: Any, query: dict[str, str]) -> list[dict[str, Any]]:
    out = []
    for b in await Helper(ctx.model).list_buckets():
        p = b.params()
        assert p is not None
        out.append({
            "id": b.id.hex(),
            "created": h.iso_time(p.creation_date),
            "globalAliases": h.active_global_aliases(p),
            "localAliases": [{"accessKeyId": k, "alias": n} for k, n in h.active_local_aliases(p)],
        })
    return out


@operation("GetBucketInfo")
@helper_errors
async def get_bucket_info(ctx: NodeContext, body: Any, query: dict[str, str]) -> dict[str, Any]:
    bid, alias, search = (param(body, query, n) for n in ("id", "globalAlias", "search"))
    helper = Helper(ctx.model)
    given = [x for x in (bid, alias, search) if x is not None]
    require(len(given) == 1, "GetBucketInfo needs exactly one of id, globalAlias or search")
    if bid is not None:
        bucket_id = _bucket_id(bid, "id")
    elif alias is not None:
        found = await helper.resolve_global_bucket_name(alias)
        if found is None:
            raise h.NoSuchBucket(f"bucket {alias!r} does not exist")
        bucket_id = found
    else:
        assert search is not None
        bucket_id = await helper.search_bucket(search)
    return await bucket_info_json(helper, bucket_id)


def _perms(value: Any, what: str) -> tuple[bool, bool, bool]:
    if value is None:
        return (False, False, False)
    require(isinstance(value, dict), f"{what} must be an object {{read, write, owner}}")
    flags = tuple(value.get(n, False) for n in ("read", "write", "owner"))
    require(all(isinstance(f, bool) for f in flags), f"{what}: read, write and owner must be booleans")
    return flags  # type: ignore[return-value]


@operation("CreateBucket")
@helper_errors
async def create_bucket(ctx: NodeContext, body: Any, query: dict[str, str]) -> dict[str, Any]:
    body = body or {}
    require(isinstance(body, dict), "CreateBucket expects a JSON object {globalAlias, localAlias}")
    ga, la = body.get("globalAlias"), body.get("localAlias")
    require(ga is None or isinstance(ga, str), "globalAlias must be a string")
    require(la is None or (isinstance(la, dict) and isinstance(la.get("accessKeyId"), str)
                           and isinstance(la.get("alias"), str)),
            "localAlias must be an object {accessKeyId, alias, allow}")
    async with locked(ctx.model) as helper:
        if ga is not None:
            h.check_bucket_name(ga)
            existing = await helper.resolve_global_bucket_name(ga)
            if existing is not None:
                raise h.BucketAlreadyExists(f"bucket {ga!r} already exists")
        allow = (False, False, False)
        if la is not None:
            h.check_bucket_name(la["alias"])
            allow = _perms(la.get("allow"), "localAlias.allow")
            key = await helper.get_existing_key(la["accessKeyId"])
            kp = key.params()
            assert kp is not None
            if kp.local_aliases.get(la["alias"]) is not None:
                raise h.BucketAlreadyExists(f"key {key.key_id} already has a local alias {la['alias']!r}")
        bucket = await helper.create_bucket()
        if ga is not None:
            await helper.set_global_bucket_alias(bucket.id, ga)
        if la is not None:
            await helper.set_local_bucket_alias(bucket.id, la["accessKeyId"], la["alias"])
            if any(allow):
                await helper.set_bucket_key_permissions(bucket.id, la["accessKeyId"], allow)
        return await bucket_info_json(helper, bucket.id)


@operation("UpdateBucket")
@helper_errors
async def update_bucket(ctx: NodeContext, body: Any, query: dict[str, str]) -> dict[str, Any]:
    bid, upd = update_body(body, query)
    require(bid is not None, "UpdateBucket needs the bucket id (?id=)")
    bucket_id = _bucket_id(bid, "id")
    upd = upd or {}
    require(isinstance(upd, dict), "UpdateBucket expects a JSON object {websiteAccess, quotas}")
    if upd.get("websiteAccess") is not None:
        raise AdminError("website access is not supported by this version of Grange")
    async with locked(ctx.model) as helper:
        q = upd.get("quotas")
        if q is not None:
            require(isinstance(q, dict), "quotas must be an object {maxSize, maxObjects}")
            ms, mo = q.get("maxSize"), q.get("maxObjects")
            for name, v in (("maxSize", ms), ("maxObjects", mo)):
                require(v is None or (isinstance(v, int) and not isinstance(v, bool) and v >= 0),
                        f"quotas.{name} must be a non-negative integer or null")
            await helper.update_quotas(bucket_id, ms, mo)
        return await bucket_info_json(helper, bucket_id)


@operation("DeleteBucket")
@helper_errors
async def delete_bucket(ctx: NodeContext, body: Any, query: dict[str, str]) -> None:
    bid = param(body, query, "id")
    require(bid is not None, "DeleteBucket needs the bucket id (?id=)")
    bucket_id = _bucket_id(bid, "id")
    async with locked(ctx.model) as helper:
        await helper.delete_bucket(bucket_id)
    return None


async def _change_perm(ctx: NodeContext, body: Any, allow: bool) -> dict[str, Any]:
    require(isinstance(body, dict), "expected a JSON object {bucketId, accessKeyId, permissions}")
    bucket_id = _bucket_id(body.get("bucketId"))
    key_id = body.get("accessKeyId")
    require(isinstance(key_id, str), "accessKeyId must be a string")
    read, write, owner = _perms(body.get("permissions"), "permissions")
    async with locked(ctx.model) as helper:
        await helper.change_bucket_key_permissions(bucket_id, key_id, read=read, write=write, owner=owner,
                                                   allow=allow)
        return await bucket_info_json(helper, bucket_id)


@operation("AllowBucketKey")
@helper_errors
async def allow_bucket_key(ctx: NodeContext, body: Any, query: dict[str, str]) -> dict[str, Any]:
    return await _change_perm(ctx, body, True)


@operation("DenyBucketKey")
@helper_errors
async def deny_bucket_key(ctx: NodeContext, body: Any, query: dict[str, str]) -> dict[str, Any]:
    return await _change_perm(ctx, body, False)


def _alias_request(body: Any) -> tuple[bytes, str | None, str | None, str | None]:
    """(bucket id, global alias, local alias, access key id) of Add/RemoveBucketAlias."""
    require(isinstance(body, dict), "expected {bucketId, globalAlias} or {bucketId, localAlias, accessKeyId}")
    bucket_id = _bucket_id(body.get("bucketId"))
    ga, la, key_id = body.get("globalAlias"), body.get("localAlias"), body.get("accessKeyId")
    if ga is not None:
        require(isinstance(ga, str) and la is None, "give either globalAlias or localAlias + accessKeyId")
        return bucket_id, ga, None, None
    require(isinstance(la, str) and isinstance(key_id, str),
            "expected {bucketId, globalAlias} or {bucketId, localAlias, accessKeyId}")
    return bucket_id, None, la, key_id


@operation("AddBucketAlias")
@helper_errors
async def add_bucket_alias(ctx: NodeContext, body: Any, query: dict[str, str]) -> dict[str, Any]:
    bucket_id, ga, la, key_id = _alias_request(body)
    async with locked(ctx.model) as helper:
        if ga is not None:
            await helper.set_global_bucket_alias(bucket_id, ga)
        else:
            assert la is not None and key_id is not None
            await helper.set_local_bucket_alias(bucket_id, key_id, la, require_permission=True)
        return await bucket_info_json(helper, bucket_id)


@operation("RemoveBucketAlias")
@helper_errors
async def remove_bucket_alias(ctx: NodeContext, body: Any, query: dict[str, str]) -> dict[str, Any]:
    bucket_id, ga, la, key_id = _alias_request(body)
    async with locked(ctx.model) as helper:
        if ga is not None:
            await helper.unset_global_bucket_alias(bucket_id, ga)
        else:
            assert la is not None and key_id is not None
            await helper.unset_local_bucket_alias(bucket_id, key_id, la)
        return await bucket_info_json(helper, bucket_id)
