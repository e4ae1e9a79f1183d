"""Bucket endpoints: ListBuckets, CreateBucket, HeadBucket, DeleteBucket, GetBucketLocation,
GetBucketVersioning, GetBucketAcl (Garage `api/s3/bucket.rs`).

CreateBucket needs the key's `allow_create_bucket`; the new bucket gets a *local* alias of
the creating key (not a global alias) and all three permissions for it; creating a bucket
the key already reaches under that name is idempotent (200), another one's name is
`BucketAlreadyExists`.
"""

from __future__ import annotations

from aiohttp import web

from grange.api.s3 import errors as s3err
from grange.api.s3 import xml
from grange.api.s3.context import S3Request
from grange.model.helpers import active_global_aliases, bucket_name_problem

XML = "application/xml"


def owner_of(req: S3Request) -> xml.Owner:
    assert req.key is not None
    p = req.key.params()
    return xml.Owner(req.key.key_id, p.name.get() if p is not None else req.key.key_id)


async def handle_list_buckets(req: S3Request) -> web.Response:
    assert req.key is not None
    params = req.key.params()
    assert params is not None
    names: dict[str, int] = {}
    local = {bid: name for name, bid in params.local_aliases.items() if bid is not None}
    for bucket_id, perm in params.authorized_buckets.items():
        if not perm.is_any():
            continue
        bucket = await req.helper.get_internal_bucket(bucket_id)
        if bucket is None or bucket.is_deleted():
            continue
        bp = bucket.params()
        assert bp is not None
        for alias in active_global_aliases(bp):
            names[alias] = bp.creation_date
        if bucket_id in local:
            names[local[bucket_id]] = bp.creation_date
    buckets = [xml.BucketInfo(n, names[n]) for n in sorted(names)]
    return web.Response(body=xml.list_buckets_result(owner_of(req), buckets), content_type=XML)


async def handle_create_bucket(req: S3Request) -> web.Response:
    assert req.key is not None and req.route.bucket is not None
    name = req.route.bucket
    body = await req.read_body(64 * 1024)
    if body.strip():
        location = xml.parse_create_bucket_configuration(body)
        if location is not None and location != req.config.s3_api.s3_region:
            raise s3err.InvalidLocationConstraint(f"Cannot satisfy location constraint `{location}`: "
                                                  f"buckets can only be created in `{req.config.s3_api.s3_region}`")
    problem = bucket_name_problem(name, allow_punycode=req.config.allow_punycode)
    if problem is not None:
        raise s3err.InvalidBucketName(f"The specified bucket is not valid: {problem}", bucket_name=name)
    key = req.key
    params = key.params()
    assert params is not None
    existing = params.local_aliases.get(name) or await req.helper.resolve_global_bucket_name(name)
    if existing is not None:
        perm = params.authorized_buckets.get(existing)
        if perm is not None and (perm.allow_write or perm.allow_owner):
            return web.Response(status=200, headers={"Location": f"/{name}"})
        raise s3err.BucketAlreadyExists(bucket_name=name)
    if not params.allow_create_bucket.get():
        raise s3err.AccessDenied("Access Denied: this key is not allowed to create buckets")
    bucket = await req.helper.create_bucket()
    await req.helper.set_bucket_key_permissions(bucket.id, key.key_id, (True, True, True))
    await req.helper.set_local_bucket_alias(bucket.id, key.key_id, name)
    return web.Response(status=200, headers={"Location": f"/{name}"})


async def handle_head_bucket(req: S3Request) -> web.Response:
    return web.Response(status=200, headers={"x-amz-bucket-region": req.config.s3_api.s3_region})


async def handle_delete_bucket(req: S3Request) -> web.Response:
    assert req.bucket_id is not None
    await req.helper.delete_bucket(req.bucket_id)
    return web.Response(status=204)


async def handle_get_bucket_location(req: S3Request) -> web.Response:
    return web.Response(body=xml.location_constraint(req.config.s3_api.s3_region), content_type=XML)


async def handle_get_bucket_versioning(req: S3Request) -> web.Response:
    return web.Response(body=xml.versioning_configuration(), content_type=XML)


async def handle_get_bucket_acl(req: S3Request) -> web.Response:
    assert req.key is not None and req.bucket_id is not None
    params = req.key.params()
    perm = params.authorized_buckets.get(req.bucket_id) if params is not None else None
    owner = owner_of(req)
    grants = []
    if perm is not None:
        if perm.allow_owner:
            grants.append(xml.Grant(owner, "FULL_CONTROL"))
        else:
            if perm.allow_read:
                grants += [xml.Grant(owner, "READ"), xml.Grant(owner, "READ_ACP")]
            if perm.allow_write:
                grants.append(xml.Grant(owner, "WRITE"))
    return web.Response(body=xml.access_control_policy(owner, grants), content_type=XML)
