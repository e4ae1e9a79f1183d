"""CLI verbs `key ...` and `bucket ...` (Garage v2 `cli/structs.rs`) over the admin operations.

A KEY argument is a key id, a unique id prefix or a key name; a BUCKET argument is a global
alias or a (unique prefix of a) hex bucket id: both are resolved by the node (`search`).
Read commands take `--json` to print the operation's JSON answer. Failures, including bad
arguments, are one line `error: …` on stderr and a non-zero exit.
"""

from __future__ import annotations

import json
import sys
from typing import Any

import click

from grange.cli.client import CliError
from grange.cli.context import pass_ctx
from grange.cli.format import table
from grange.util.sizes import format_size, format_size_iec, parse_size


class OneLineGroup(click.Group):
    """Bad arguments of a subcommand: one line `error: …` and exit 2, like the other failures."""

    def invoke(self, ctx: click.Context) -> Any:
        try:
            return super().invoke(ctx)
        except click.UsageError as e:
            click.echo(f"error: {e.format_message()}", err=True)
            sys.exit(2)


def _echo_json(value: Any) -> None:
    click.echo(json.dumps(value, indent=2))


def _perm_flags(p: dict[str, bool]) -> str:
    return ("R" if p.get("read") else "-") + ("W" if p.get("write") else "-") + ("O" if p.get("owner") else "-")


def _key_info(c: Any, pattern: str, show_secret: bool = False) -> dict[str, Any]:
    query = {"search": pattern}
    if show_secret:
        query["showSecretKey"] = "true"
    return c.call("GetKeyInfo", None, query)  # type: ignore[no-any-return]


def _bucket_info(c: Any, pattern: str) -> dict[str, Any]:
    return c.call("GetBucketInfo", None, {"search": pattern})  # type: ignore[no-any-return]


def _yes_required(yes: bool, what: str) -> None:
    if not yes:
        raise CliError(f"add --yes to really {what}")


# ---------------------------------------------------------------------- output
def print_key_info(k: dict[str, Any]) -> None:
    secret = k.get("secretAccessKey")
    click.echo("==== ACCESS KEY INFORMATION ====")
    click.echo(f"Key name: {k['name']}")
    click.echo(f"Key ID: {k['accessKeyId']}")
    click.echo(f"Secret key: {secret if secret else '(redacted)'}")
    click.echo(f"Created: {k.get('created') or '-'}")
    click.echo(f"Expiration: {k.get('expiration') or 'never'}")
    click.echo(f"Can create buckets: {str(k['permissions'].get('createBucket', False)).lower()}")
    click.echo("\n==== BUCKETS FOR THIS KEY ====")
    if not k["buckets"]:
        click.echo("(none)")
        return
    rows = [["Permissions", "ID", "Global aliases", "Local aliases"]]
    for b in k["buckets"]:
        rows.append([_perm_flags(b["permissions"]), b["id"][:16], ",".join(b["globalAliases"]),
                     ",".join(b["localAliases"])])
    click.echo(table(rows))


def print_bucket_info(b: dict[str, Any]) -> None:
    click.echo("==== BUCKET INFORMATION ====")
    click.echo(f"Bucket: {b['id']}")
    click.echo(f"Created: {b['created']}")
    click.echo(f"\nSize: {format_size(b['bytes'])} ({format_size_iec(b['bytes'])})")
    click.echo(f"Objects: {b['objects']}")
    click.echo(f"Unfinished uploads: {b['unfinishedUploads']}")
    click.echo(f"\nWebsite access: {str(b['websiteAccess']).lower()}")
    q = b["quotas"]
    if q.get("maxSize") is not None or q.get("maxObjects") is not None:
        ms = format_size(q["maxSize"]) if q.get("maxSize") is not None else "none"
        click.echo(f"Quotas: max size {ms}, max objects {q.get('maxObjects') if q.get('maxObjects') is not None else 'none'}")
    click.echo("\nGlobal aliases: " + (", ".join(b["globalAliases"]) or "(none)"))
    click.echo("\n==== KEYS FOR THIS BUCKET ====")
    if not b["keys"]:
        click.echo("(none)")
        return
    rows = [["Permissions", "Access key", "Name", "Local aliases"]]
    for k in b["keys"]:
        rows.append([_perm_flags(k["permissions"]), k["accessKeyId"], k["name"], ",".join(k["bucketLocalAliases"])])
    click.echo(table(rows))


# ---------------------------------------------------------------------- key
@click.group(cls=OneLineGroup)
def key() -> None:
    """Access keys: create, list, info, rename, delete, import, allow/deny."""


@key.command("list")
@click.option("--json", "as_json", is_flag=True, help="Print ListKeys as JSON")
@pass_ctx
def key_list(c: Any, as_json: bool) -> None:
    """List access keys."""
    keys = c.call("ListKeys")
    if as_json:
        _echo_json(keys)
        return
    rows = [["ID", "Created", "Name", "Expiration"]]
    for k in keys:
        rows.append([k["id"], (k.get("created") or "-")[:10], k["name"], k.get("expiration") or "never"])
    click.echo(table(rows))


@key.command("info")
@click.argument("key_pattern", metavar="KEY")
@click.option("--show-secret", is_flag=True, help="Also print the secret key")
@click.option("--json", "as_json", is_flag=True, help="Print GetKeyInfo as JSON")
@pass_ctx
def key_info(c: Any, key_pattern: str, show_secret: bool, as_json: bool) -> None:
    """Information about KEY (id, id prefix or name)."""
    info = _key_info(c, key_pattern, show_secret)
    if as_json:
        _echo_json(info)
    else:
        print_key_info(info)


@key.command("create")
@click.argument("name", required=False)
@click.option("--json", "as_json", is_flag=True, help="Print CreateKey's answer as JSON")
@pass_ctx
def key_create(c: Any, name: str | None, as_json: bool) -> None:
    """Create a new access key (named NAME)."""
    info = c.call("CreateKey", {"name": name} if name else {})
    if as_json:
        _echo_json(info)
    else:
        print_key_info(info)


@key.command("rename")
@click.argument("key_pattern", metavar="KEY")
@click.argument("new_name")
@pass_ctx
def key_rename(c: Any, key_pattern: str, new_name: str) -> None:
    """Rename KEY to NEW_NAME."""
    key_id = _key_info(c, key_pattern)["accessKeyId"]
    info = c.call("UpdateKey", {"name": new_name}, {"id": key_id})
    click.echo(f"Key {key_id} is now named {info['name']!r}.")


@key.command("delete")
@click.argument("key_pattern", metavar="KEY")
@click.option("--yes", is_flag=True, help="Confirm the deletion")
@pass_ctx
def key_delete(c: Any, key_pattern: str, yes: bool) -> None:
    """Delete KEY and its permissions and local aliases."""
    info = _key_info(c, key_pattern)
    _yes_required(yes, f"delete key {info['accessKeyId']} ({info['name']})")
    c.call("DeleteKey", None, {"id": info["accessKeyId"]})
    click.echo(f"Access key {info['accessKeyId']} has been deleted.")


@key.command("import")
@click.argument("key_id")
@click.argument("secret")
@click.option("-n", "--name", help="Name of the imported key")
@click.option("--yes", is_flag=True, help="Confirm: this is for keys generated by Garage/Grange before")
@pass_ctx
def key_import(c: Any, key_id: str, secret: str, name: str | None, yes: bool) -> None:
    """Import an existing key ID and SECRET (to create a new key, use `key create`)."""
    _yes_required(yes, "import a key (meant for keys made by Garage/Grange before; new keys: `key create`)")
    info = c.call("ImportKey", {"accessKeyId": key_id, "secretAccessKey": secret, "name": name})
    click.echo("Imported key:")
    print_key_info(info)


def _key_flags(c: Any, key_pattern: str, create_bucket: bool, allow: bool) -> None:
    if not create_bucket:
        raise CliError(f"nothing to {'allow' if allow else 'deny'}: give --create-bucket")
    key_id = _key_info(c, key_pattern)["accessKeyId"]
    field = "allow" if allow else "deny"
    info = c.call("UpdateKey", {field: {"createBucket": True}}, {"id": key_id})
    print_key_info(info)


@key.command("allow")
@click.argument("key_pattern", metavar="KEY")
@click.option("--create-bucket", is_flag=True, help="Allow KEY to create buckets")
@pass_ctx
def key_allow(c: Any, key_pattern: str, create_bucket: bool) -> None:
    """Give KEY key-wide permissions."""
    _key_flags(c, key_pattern, create_bucket, True)


@key.command("deny")
@click.argument("key_pattern", metavar="KEY")
@click.option("--create-bucket", is_flag=True, help="Forbid KEY to create buckets")
@pass_ctx
def key_deny(c: Any, key_pattern: str, create_bucket: bool) -> None:
    """Take key-wide permissions from KEY."""
    _key_flags(c, key_pattern, create_bucket, False)


# ---------------------------------------------------------------------- bucket
@click.group(cls=OneLineGroup)
def bucket() -> None:
    """Buckets: create, list, info, delete, aliases, key permissions, quotas."""


@bucket.command("list")
@click.option("--json", "as_json", is_flag=True, help="Print ListBuckets as JSON")
@pass_ctx
def bucket_list(c: Any, as_json: bool) -> None:
    """List buckets."""
    buckets = c.call("ListBuckets")
    if as_json:
        _echo_json(buckets)
        return
    rows = [["ID", "Created", "Global aliases", "Local aliases"]]
    for b in buckets:
        local = ",".join(f"{a['alias']} ({a['accessKeyId']})" for a in b["localAliases"])
        rows.append([b["id"][:16], b["created"][:10], ",".join(b["globalAliases"]), local])
    click.echo(table(rows))


@bucket.command("info")
@click.argument("name")
@click.option("--json", "as_json", is_flag=True, help="Print GetBucketInfo as JSON")
@pass_ctx
def bucket_info(c: Any, name: str, as_json: bool) -> None:
    """Information about bucket NAME (global alias or id prefix)."""
    info = _bucket_info(c, name)
    if as_json:
        _echo_json(info)
    else:
        print_bucket_info(info)


@bucket.command("create")
@click.argument("name")
@pass_ctx
def bucket_create(c: Any, name: str) -> None:
    """Create a bucket with global alias NAME."""
    c.call("CreateBucket", {"globalAlias": name})
    click.echo(f"Bucket {name} was created.")


@bucket.command("delete")
@click.argument("name")
@click.option("--yes", is_flag=True, help="Confirm the deletion")
@pass_ctx
def bucket_delete(c: Any, name: str, yes: bool) -> None:
    """Delete the (empty) bucket NAME and its aliases."""
    info = _bucket_info(c, name)
    _yes_required(yes, f"delete bucket {name} ({info['id'][:16]})")
    c.call("DeleteBucket", None, {"id": info["id"]})
    click.echo(f"Bucket {name} was deleted.")


@bucket.command("alias")
@click.argument("bucket_name", metavar="BUCKET")
@click.argument("alias")
@click.option("--local", "local_key", metavar="KEY", help="Alias in the namespace of KEY instead of a global one")
@pass_ctx
def bucket_alias(c: Any, bucket_name: str, alias: str, local_key: str | None) -> None:
    """Give BUCKET the alias ALIAS (global, or local to a key with --local)."""
    bid = _bucket_info(c, bucket_name)["id"]
    if local_key is None:
        c.call("AddBucketAlias", {"bucketId": bid, "globalAlias": alias})
        click.echo(f"Alias {alias} now points to bucket {bid[:16]}.")
    else:
        key_id = _key_info(c, local_key)["accessKeyId"]
        c.call("AddBucketAlias", {"bucketId": bid, "localAlias": alias, "accessKeyId": key_id})
        click.echo(f"Alias {alias} now points to bucket {bid[:16]} in the namespace of key {key_id}.")


@bucket.command("unalias")
@click.argument("alias")
@click.option("--local", "local_key", metavar="KEY", help="Remove an alias of KEY's namespace")
@pass_ctx
def bucket_unalias(c: Any, alias: str, local_key: str | None) -> None:
    """Remove the alias ALIAS (global, or local to a key with --local)."""
    if local_key is None:
        bid = c.call("GetBucketInfo", None, {"globalAlias": alias})["id"]
        c.call("RemoveBucketAlias", {"bucketId": bid, "globalAlias": alias})
        click.echo(f"Alias {alias} no longer points to bucket {bid[:16]}.")
        return
    info = _key_info(c, local_key)
    key_id = info["accessKeyId"]
    bids = [b["id"] for b in info["buckets"] if alias in b["localAliases"]]
    if not bids:
        raise CliError(f"key {key_id} has no local alias {alias!r}")
    c.call("RemoveBucketAlias", {"bucketId": bids[0], "localAlias": alias, "accessKeyId": key_id})
    click.echo(f"Alias {alias} of key {key_id} no longer points to bucket {bids[0][:16]}.")


def _bucket_perm(c: Any, bucket_name: str, key_pattern: str, read: bool, write: bool, owner: bool,
                 allow: bool) -> None:
    if not (read or write or owner):
        raise CliError(f"nothing to {'allow' if allow else 'deny'}: give --read, --write and/or --owner")
    bid = _bucket_info(c, bucket_name)["id"]
    key_id = _key_info(c, key_pattern)["accessKeyId"]
    info = c.call("AllowBucketKey" if allow else "DenyBucketKey",
                  {"bucketId": bid, "accessKeyId": key_id,
                   "permissions": {"read": read, "write": write, "owner": owner}})
    perm = next((k["permissions"] for k in info["keys"] if k["accessKeyId"] == key_id),
                {"read": False, "write": False, "owner": False})
    click.echo(f"New permissions for {key_id} on {bucket_name}: read {str(perm['read']).lower()}, "
               f"write {str(perm['write']).lower()}, owner {str(perm['owner']).lower()}.")


@bucket.command("allow")
@click.argument("bucket_name", metavar="BUCKET")
@click.option("--key", "key_pattern", required=True, metavar="KEY", help="Key to give permissions to")
@click.option("--read", is_flag=True, help="Allow reading objects")
@click.option("--write", is_flag=True, help="Allow writing objects")
@click.option("--owner", is_flag=True, help="Allow bucket administration")
@pass_ctx
def bucket_allow(c: Any, bucket_name: str, key_pattern: str, read: bool, write: bool, owner: bool) -> None:
    """Give KEY permissions on BUCKET (the others are kept)."""
    _bucket_perm(c, bucket_name, key_pattern, read, write, owner, True)


@bucket.command("deny")
@click.argument("bucket_name", metavar="BUCKET")
@click.option("--key", "key_pattern", required=True, metavar="KEY", help="Key to take permissions from")
@click.option("--read", is_flag=True, help="Deny reading objects")
@click.option("--write", is_flag=True, help="Deny writing objects")
@click.option("--owner", is_flag=True, help="Deny bucket administration")
@pass_ctx
def bucket_deny(c: Any, bucket_name: str, key_pattern: str, read: bool, write: bool, owner: bool) -> None:
    """Take permissions of KEY on BUCKET (the others are kept)."""
    _bucket_perm(c, bucket_name, key_pattern, read, write, owner, False)


def _quota(value: str | None, what: str, size: bool) -> tuple[bool, int | None]:
    """(given, value) of a quota option: absent, 'none', or a size / count."""
    if value is None:
        return False, None
    if value.lower() == "none":
        return True, None
    try:
        n = parse_size(value, what) if size else int(value)
    except ValueError as e:
        raise CliError(f"invalid {what} {value!r}: {e}") from None
    if n < 0:
        raise CliError(f"{what} must not be negative")
    return True, n


@bucket.command("set-quotas")
@click.argument("bucket_name", metavar="BUCKET")
@click.option("--max-size", help="Maximum total size of objects (e.g. 10G), or 'none'")
@click.option("--max-objects", help="Maximum number of objects, or 'none'")
@pass_ctx
def bucket_set_quotas(c: Any, bucket_name: str, max_size: str | None, max_objects: str | None) -> None:
    """Set the quotas of BUCKET (an option not given keeps its current value)."""
    if max_size is None and max_objects is None:
        raise CliError("nothing to set: give --max-size and/or --max-objects")
    info = _bucket_info(c, bucket_name)
    quotas = dict(info["quotas"])
    given, v = _quota(max_size, "max size", True)
    if given:
        quotas["maxSize"] = v
    given, v = _quota(max_objects, "max objects", False)
    if given:
        quotas["maxObjects"] = v
    c.call("UpdateBucket", {"quotas": quotas}, {"id": info["id"]})
    click.echo(f"Quotas of bucket {bucket_name} updated.")
