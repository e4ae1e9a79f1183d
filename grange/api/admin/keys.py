"""Access-key operations: ListKeys, GetKeyInfo, CreateKey, ImportKey, UpdateKey, DeleteKey.

The logic lives in `grange.model.helpers` (shared with the S3 API); this module parses the
requests, maps `HelperError`s to admin errors (`helper_errors`, also used by `buckets.py`)
and renders the answers of Garage's admin API v2 (`src/api/admin/key.rs`).

Parameters that Garage takes in the query string (`?id=`, `?search=`, `?showSecretKey=`)
are also accepted in a JSON body, so `grange json-api GetKeyInfo '{"search": "k"}'` works;
for UpdateKey, `{"id": ..., "body": {...}}` as in Garage's `json-api`.
"""

from __future__ import annotations

import functools
from collections.abc import Awaitable, Callable
from typing import Any

from grange.api.admin.registry import AdminError, NodeContext, NotFound, Unavailable, operation, require
from grange.model import helpers as h
from grange.model.helpers import Helper, locked
from grange.model.key_table import Key
from grange.net.errors import RpcError


class Conflict(AdminError):
    status = 409
    code = "Conflict"


_MAPPING: list[tuple[type[h.HelperError], type[AdminError], str]] = [
    (h.NoSuchBucket, NotFound, "NoSuchBucket"),
    (h.NoSuchAccessKey, NotFound, "NoSuchAccessKey"),
    (h.BucketAlreadyExists, Conflict, "BucketAlreadyExists"),
    (h.BucketNotEmpty, Conflict, "BucketNotEmpty"),
    (h.KeyAlreadyExists, Conflict, "KeyAlreadyExists"),
    (h.InvalidBucketName, AdminError, "InvalidBucketName"),
    (h.HelperError, AdminError, "InvalidRequest"),
]


def to_admin_error(e: h.HelperError) -> AdminError:
    for cls, admin_cls, code in _MAPPING:
        if isinstance(e, cls):
            err = admin_cls(str(e))
            err.code = code
            return err
    raise AssertionError("unreachable")  # HelperError is the last row


Handler = Callable[[NodeContext, Any, dict[str, str]], Awaitable[Any]]


def helper_errors(fn: Handler) -> Handler:
    """Turn helper errors into admin errors, and RPC failures (no quorum) into 503."""

    @functools.wraps(fn)
    async def wrapped(ctx: NodeContext, body: Any, query: dict[str, str]) -> Any:
        try:
            return await fn(ctx, body, query)
        except h.HelperError as e:
            raise to_admin_error(e) from None
        except RpcError as e:
            raise Unavailable(f"cluster not available for this operation: {e}") from None

    return wrapped


def param(body: Any, query: dict[str, str], name: str) -> str | None:
    """A request parameter: from the query string, else from a JSON-object body."""
    if name in query:
        return query[name]
    if isinstance(body, dict) and body.get(name) is not None:
        return str(body[name]) if not isinstance(body[name], bool) else ("true" if body[name] else "false")
    return None


def update_body(body: Any, query: dict[str, str]) -> tuple[str | None, Any]:
    """(id, body) of an Update*/Delete* request: `?id=` + body, or json-api's `{id, body}`."""
    if "id" in query:
        return query["id"], body
    if isinstance(body, dict) and isinstance(body.get("id"), str):
        if "body" in body:
            return body["id"], body["body"] or {}
        return body["id"], {k: v for k, v in body.items() if k != "id"}
    return None, body


def perm_json(perm: Any) -> dict[str, bool]:
    if perm is None or not perm.is_any():
        return {"read": False, "write": False, "owner": False}
    return {"read": perm.allow_read, "write": perm.allow_write, "owner": perm.allow_owner}


async def key_info_json(helper: Helper, key: Key, show_secret: bool) -> dict[str, Any]:
    p = key.params()
    assert p is not None
    relevant: list[bytes] = [bid for bid, perm in p.authorized_buckets.items() if perm.is_any()]
    relevant += [bid for _, bid in p.local_aliases.items() if bid is not None and bid not in relevant]
    buckets = []
    for bid in sorted(relevant):
        bucket = await helper.get_internal_bucket(bid)
        bp = bucket.params() if bucket is not None else None
        if bp is None:
            continue
        buckets.append({
            "id": bid.hex(),
            "globalAliases": h.active_global_aliases(bp),
            "localAliases": [n for (k, n) in h.active_local_aliases(bp) if k == key.key_id],
            "permissions": perm_json(p.authorized_buckets.get(bid)),
        })
    return {
        "accessKeyId": key.key_id,
        "name": p.name.get(),
        "secretAccessKey": p.secret_key if show_secret else None,
        "permissions": {"createBucket": p.allow_create_bucket.get()},
        "buckets": buckets,
        "created": None,  # keys do not record their creation date (yet)
        "expiration": None,
        "expired": False,
    }


def _key_updates(body: Any) -> dict[str, Any]:
    """Parse an UpdateKeyRequestBody into Helper.update_key arguments."""
    if body is None:
        return {}
    require(isinstance(body, dict), "expected a JSON object {name, allow, deny}")
    out: dict[str, Any] = {}
    name = body.get("name")
    if name is not None:
        require(isinstance(name, str), "name must be a string")
        out["name"] = name
    for field, value in (("allow", True), ("deny", False)):
        perms = body.get(field)
        if perms is None:
            continue
        require(isinstance(perms, dict), f"{field} must be an object {{createBucket: bool}}")
        if perms.get("createBucket") is True:
            if "allow_create_bucket" in out and out["allow_create_bucket"] != value:
                raise AdminError("createBucket cannot be both allowed and denied")
            out["allow_create_bucket"] = value
    if body.get("expiration") is not None:
        raise AdminError("key expiration is not supported by this version of Grange")
    return out


@operation("ListKeys")
@helper_errors
async def list_keys(ctx: NodeContext, body: Any, query: dict[str, str]) -> list[dict[str, Any]]:
    keys = await Helper(ctx.model).list_keys()
    out = []
    for k in keys:
        p = k.params()
        assert p is not None
        out.append({"id": k.key_id, "name": p.name.get(), "created": None, "expiration": None, "expired": False})
    return out


@operation("GetKeyInfo")
@helper_errors
async def get_key_info(ctx: NodeContext, body: Any, query: dict[str, str]) -> dict[str, Any]:
    key_id, search = param(body, query, "id"), param(body, query, "search")
    show = (param(body, query, "showSecretKey") or "false").lower() == "true"
    helper = Helper(ctx.model)
    if key_id is not None and search is None:
        key = await helper.get_existing_key(key_id)
    elif search is not None and key_id is None:
        key = await helper.get_matching_key(search)
    else:
        raise AdminError("GetKeyInfo needs either id or search (but not both)")
    return await key_info_json(helper, key, show)


@operation("CreateKey")
@helper_errors
async def create_key(ctx: NodeContext, body: Any, query: dict[str, str]) -> dict[str, Any]:
    updates = _key_updates(body)
    async with locked(ctx.model) as helper:
        key = await helper.create_key(updates.pop("name", None) or "Unnamed key")
        if updates:
            key = await helper.update_key(key, **updates)
        return await key_info_json(helper, key, True)


@operation("ImportKey")
@helper_errors
async def import_key(ctx: NodeContext, body: Any, query: dict[str, str]) -> dict[str, Any]:
    require(isinstance(body, dict), "ImportKey expects a JSON object {accessKeyId, secretAccessKey, name}")
    key_id, secret, name = body.get("accessKeyId"), body.get("secretAccessKey"), body.get("name")
    require(isinstance(key_id, str) and isinstance(secret, str),
            "ImportKey needs accessKeyId and secretAccessKey (strings)")
    require(name is None or isinstance(name, str), "name must be a string")
    async with locked(ctx.model) as helper:
        key = await helper.import_key(key_id, secret, name or "Imported key")
        return await key_info_json(helper, key, False)


@operation("UpdateKey")
@helper_errors
async def update_key(ctx: NodeContext, body: Any, query: dict[str, str]) -> dict[str, Any]:
    key_id, upd = update_body(body, query)
    require(key_id is not None, "UpdateKey needs the key id (?id=)")
    assert key_id is not None
    updates = _key_updates(upd)
    async with locked(ctx.model) as helper:
        key = await helper.get_existing_key(key_id)
        if updates:
            key = await helper.update_key(key, **updates)
        return await key_info_json(helper, key, False)


@operation("DeleteKey")
@helper_errors
async def delete_key(ctx: NodeContext, body: Any, query: dict[str, str]) -> None:
    key_id = param(body, query, "id")
    require(key_id is not None, "DeleteKey needs the key id (?id=)")
    assert key_id is not None
    async with locked(ctx.model) as helper:
        await helper.delete_key(key_id)
    return None
