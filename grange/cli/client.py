"""The CLI's way to its node: one TLS connection with a throw-away key, one admin RPC.

The CLI proves `rpc_secret` exactly like a node does, so it works without the HTTP admin
endpoint. It says `is_node = False` implicitly by never sending a status: the node does not
list it, gossip it or persist it.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from typing import Any, BinaryIO

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from grange.net.errors import RpcError
from grange.net.frame import Priority
from grange.net.keys import make_tls_identity, read_node_id
from grange.net.netapp import NetApp
from grange.util.addr import split_host_port
from grange.util.config import Config

CLI_TIMEOUT_S = 120.0


class CliError(Exception):
    """One line for the operator; the CLI exits non-zero."""


def local_target(config: Config) -> tuple[str, str]:
    node_id = read_node_id(config.metadata_dir)
    if node_id is None:
        raise CliError(f"no node key in {config.metadata_dir}: start the node first with `grange server`")
    host, port = split_host_port(config.rpc_bind_addr)
    if host in ("0.0.0.0", "::", ""):
        host = "127.0.0.1"
    return node_id, f"{host}:{port}"


def parse_target(rpc_host: str) -> tuple[str, str]:
    node_id, sep, addr = rpc_host.partition("@")
    if not sep or len(node_id) != 64:
        raise CliError(f"--rpc-host must be <node id>@<host>:<port>, got {rpc_host!r}")
    return node_id, addr


async def _call(secret: bytes, target: tuple[str, str], op: str, body: Any, query: dict[str, str],
                upload: BinaryIO | None = None, download: BinaryIO | None = None) -> Any:
    netapp = NetApp(make_tls_identity(Ed25519PrivateKey.generate(), secret))
    node_id, addr = target
    try:
        await netapp.connect(node_id, addr)
        answer, stream = await netapp.call_stream(
            node_id, "admin/op", {"op": op, "body": body, "query": query},
            prio=Priority.INTERACTIVE, timeout_s=CLI_TIMEOUT_S,
            stream=_read_chunks(upload) if upload is not None else None,
        )
        if stream is not None:
            async for chunk in stream:
                if download is not None:
                    download.write(chunk)
    except RpcError as e:
        raise CliError(f"cannot reach node {node_id[:16]} at {addr}: {e}") from None
    finally:
        await netapp.close()
    if not isinstance(answer, dict):
        raise CliError("the node sent a malformed answer")
    if "error" in answer:
        raise CliError(answer["error"].get("message", "unknown error"))
    return answer["ok"]


def admin_call(config: Config, rpc_host: str | None, op: str, body: Any = None, query: dict[str, str] | None = None,
               upload: BinaryIO | None = None, download: BinaryIO | None = None) -> Any:
    """Call one admin operation; `upload` streams a file as the request body, `download`
    receives a streamed answer."""
    assert config.rpc_secret_bytes is not None
    target = parse_target(rpc_host) if rpc_host else local_target(config)
    return asyncio.run(_call(config.rpc_secret_bytes, target, op, body, query or {}, upload, download))


async def _read_chunks(f: BinaryIO, size: int = 1024 * 1024) -> AsyncIterator[bytes]:
    while True:
        chunk = await asyncio.to_thread(f.read, size)
        if not chunk:
            return
        yield chunk
