"""The network layer through real TLS sockets on 127.0.0.1: calls, streams, and bad peers."""

from __future__ import annotations

import asyncio
import os
import ssl
import struct

import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from hypothesis import given, settings
from hypothesis import strategies as st

from grange.net.conn import Reply
from grange.net.errors import ConnectionClosed, NotConnected, RemoteError, RpcTimeout
from grange.net.frame import (
    FRAME_PAYLOAD_MAX,
    FrameDecoder,
    Kind,
    Priority,
    ProtocolError,
    encode_frame,
    encode_pieces,
)
from grange.net.keys import load_or_create_node_key, make_tls_identity, read_node_id
from grange.net.netapp import NetApp

SECRET = os.urandom(32)


def make_node(secret: bytes = SECRET) -> NetApp:
    return NetApp(make_tls_identity(Ed25519PrivateKey.generate(), secret), handshake_timeout_s=1.0)


async def pair() -> tuple[NetApp, NetApp, str]:
    a, b = make_node(), make_node()
    port = await b.listen("127.0.0.1", 0)
    return a, b, f"127.0.0.1:{port}"


# ---------------------------------------------------------------------- frame codec (sans-IO)
def _frames() -> bytes:
    return b"".join(
        [
            *encode_pieces(1, False, 0, b"x" * (3 * FRAME_PAYLOAD_MAX + 5)),
            encode_frame(1, Kind.DATA, False, 2, b"abc"),
            encode_frame(7, Kind.DATA_END, True, 1),
        ]
    )


def _decode_all(chunks: list[bytes]) -> list[tuple[int, Kind, bool, int, bytes]]:
    d = FrameDecoder()
    out = []
    for c in chunks:
        d.feed(c)
        while (f := d.next_frame()) is not None:
            out.append((f.stream_id, f.kind, f.is_response, f.priority, f.payload))
    return out


def test_decoder_gives_same_frames_whole_bytewise_and_with_trailing_bytes() -> None:
    data = _frames()
    whole = _decode_all([data])
    assert [k for _, k, *_ in whole] == [Kind.HEAD, Kind.HEAD, Kind.HEAD, Kind.HEAD_END, Kind.DATA, Kind.DATA_END]
    assert b"".join(p for *_, p in whole[:4]) == b"x" * (3 * FRAME_PAYLOAD_MAX + 5)
    assert _decode_all([data[i : i + 1] for i in range(len(data))]) == whole
    d = FrameDecoder()
    d.feed(data + b"\x00\x00")  # an incomplete next frame stays buffered
    n = 0
    while d.next_frame() is not None:
        n += 1
    assert n == len(whole) and d.buffered == 2


def test_decoder_refuses_oversized_frame_before_buffering_it() -> None:
    d = FrameDecoder(max_frame_len=1000)
    d.feed(struct.pack(">IIBB", 10**9, 1, Kind.DATA, 0))
    with pytest.raises(ProtocolError, match="frame length"):
        d.next_frame()


@settings(max_examples=300, deadline=None)
@given(st.binary(max_size=64))
def test_decoder_parses_or_raises_protocol_error_never_anything_else(data: bytes) -> None:
    d = FrameDecoder(max_frame_len=4096)
    d.feed(data)
    try:
        while d.next_frame() is not None:
            pass
    except ProtocolError:
        pass


# ---------------------------------------------------------------------- node key
def test_node_key_created_once_with_mode_0600(tmp_path) -> None:
    meta = str(tmp_path / "meta")
    assert read_node_id(meta) is None
    k1 = load_or_create_node_key(meta)
    assert os.stat(os.path.join(meta, "node_key")).st_mode & 0o777 == 0o600
    k2 = load_or_create_node_key(meta)
    assert k1.public_key().public_bytes_raw() == k2.public_key().public_bytes_raw()
    assert read_node_id(meta) == k1.public_key().public_bytes_raw().hex()


# ---------------------------------------------------------------------- RPC over TLS
async def test_call_roundtrip_both_ways_and_remote_error() -> None:
    a, b, addr = await pair()

    async def echo(peer: str, body, stream):
        return {"from": peer, "body": body}

    async def boom(peer: str, body, stream):
        raise ValueError("bad thing")

    b.register("echo", echo)
    b.register("boom", boom)
    a.register("echo", echo)
    await a.connect(b.id, addr)
    assert await a.call(b.id, "echo", [1, "x"]) == {"from": a.id, "body": [1, "x"]}
    # b answers a over the connection a dialled (b never dialled a)
    for _ in range(50):
        if b.connection_to(a.id):
            break
        await asyncio.sleep(0.01)
    assert await b.call(a.id, "echo", 5) == {"from": b.id, "body": 5}
    with pytest.raises(RemoteError, match="bad thing"):
        await a.call(b.id, "boom", None)
    with pytest.raises(RemoteError, match="no such endpoint"):
        await a.call(b.id, "nope", None)
    assert await a.call(a.id, "echo", 1) == {"from": a.id, "body": 1}  # to self: no network
    await a.close()
    await b.close()


async def test_streamed_request_and_response_bodies_arrive_intact() -> None:
    a, b, addr = await pair()
    payload = os.urandom(5 * 1024 * 1024 + 123)

    async def sink(peer: str, body, stream):
        data = await stream.read_all(64 * 1024 * 1024)

        async def back():
            for off in range(0, len(data), 1000_000):
                yield data[off : off + 1000_000]

        return Reply(len(data), back())

    b.register("sink", sink)
    await a.connect(b.id, addr)

    async def gen():
        for off in range(0, len(payload), 300_000):
            yield payload[off : off + 300_000]

    n, stream = await a.call_stream(b.id, "sink", None, stream=gen(), prio=Priority.BACKGROUND)
    assert n == len(payload)
    assert await stream.read_all(64 * 1024 * 1024) == payload
    await a.close()
    await b.close()


async def test_stream_error_reaches_receiver() -> None:
    a, b, addr = await pair()

    async def sink(peer: str, body, stream):
        try:
            await stream.read_all(10**9)
        except RemoteError as e:
            return f"got error: {e}"
        return "no error"

    b.register("sink", sink)
    await a.connect(b.id, addr)

    async def failing():
        yield b"abc"
        raise OSError("disk on fire")

    with pytest.raises(OSError):
        await a.call(b.id, "sink", None, stream=failing())
    await a.close()
    await b.close()


async def test_timeout_cancels_remote_handler_and_connection_survives() -> None:
    a, b, addr = await pair()
    cancelled = asyncio.Event()

    async def slow(peer: str, body, stream):
        try:
            await asyncio.sleep(30)
        except asyncio.CancelledError:
            cancelled.set()
            raise

    async def fast(peer: str, body, stream):
        return "ok"

    b.register("slow", slow)
    b.register("fast", fast)
    await a.connect(b.id, addr)
    with pytest.raises(RpcTimeout):
        await a.call(b.id, "slow", None, timeout_s=0.2)
    await asyncio.wait_for(cancelled.wait(), 5)
    assert await a.call(b.id, "fast", None, timeout_s=5) == "ok"
    await a.close()
    await b.close()


async def test_peer_with_wrong_secret_is_refused() -> None:
    a, b, addr = await pair()
    stranger = make_node(os.urandom(32))
    with pytest.raises(NotConnected, match="rpc_secret|certificate"):
        await stranger.connect(b.id, addr)
    assert b.connected_peers() == set()
    await a.connect(b.id, addr)  # the node still serves
    assert b.id in a.connected_peers()
    for n in (a, b, stranger):
        await n.close()


async def test_dialling_the_wrong_node_id_is_refused() -> None:
    a, b, addr = await pair()
    with pytest.raises(NotConnected, match="not the expected"):
        await a.connect("ab" * 32, addr)
    await a.close()
    await b.close()


async def test_plain_tcp_garbage_and_half_open_clients_do_not_harm_the_node() -> None:
    a, b, addr = await pair()
    host, port = addr.split(":")
    r, w = await asyncio.open_connection(host, int(port))
    w.write(b"GET / HTTP/1.1\r\nHost: x\r\n\r\n" + os.urandom(4096))
    await w.drain()
    assert await asyncio.wait_for(r.read(), 5) is not None  # server closes it
    w.close()
    r2, w2 = await asyncio.open_connection(host, int(port))  # says nothing: handshake timeout
    assert await asyncio.wait_for(r2.read(), 5) == b""
    w2.close()

    async def fast(peer: str, body, stream):
        return "ok"

    b.register("fast", fast)
    await a.connect(b.id, addr)
    assert await a.call(b.id, "fast", None) == "ok"
    await a.close()
    await b.close()


async def test_oversized_frame_closes_that_connection_only() -> None:
    a, b, addr = await pair()
    c = make_node()

    async def fast(peer: str, body, stream):
        return "ok"

    b.register("fast", fast)
    await a.connect(b.id, addr)
    conn_c = await c.connect(b.id, addr)
    # A TLS-authenticated peer that then sends an illegal frame.
    conn_c.transport.write(struct.pack(">IIBB", 100 * 1024 * 1024, 1, Kind.HEAD_END, 0) + b"\x00" * 100)
    await asyncio.wait_for(conn_c.closed.wait(), 5)
    assert await a.call(b.id, "fast", None) == "ok"
    for n in (a, b, c):
        await n.close()


async def test_broken_connection_fails_pending_calls() -> None:
    a, b, addr = await pair()

    async def hang(peer: str, body, stream):
        await asyncio.sleep(30)

    b.register("hang", hang)
    await a.connect(b.id, addr)
    task = asyncio.create_task(a.call(b.id, "hang", None, timeout_s=30))
    await asyncio.sleep(0.1)
    await b.close()
    with pytest.raises(ConnectionClosed):
        await asyncio.wait_for(task, 5)
    await a.close()


async def test_interactive_request_overtakes_background_transfer() -> None:
    """A ping sent while 32 MiB of background data are queued is answered before they finish."""
    a, b, addr = await pair()
    order: list[str] = []

    async def sink(peer: str, body, stream):
        await stream.read_all(10**9)
        order.append("bulk")
        return None

    async def ping(peer: str, body, stream):
        order.append("ping")
        return None

    b.register("sink", sink)
    b.register("ping", ping)
    await a.connect(b.id, addr)

    async def bulk():
        for _ in range(32):
            yield b"\x00" * (1024 * 1024)

    t = asyncio.create_task(a.call(b.id, "sink", None, stream=bulk(), prio=Priority.BACKGROUND))
    await asyncio.sleep(0.01)
    await a.call(b.id, "ping", None, prio=Priority.INTERACTIVE)
    await t
    assert order == ["ping", "bulk"]
    await a.close()
    await b.close()


def test_tls_is_1_3_only() -> None:
    ident = make_tls_identity(Ed25519PrivateKey.generate(), SECRET)
    assert ident.server_context.minimum_version == ssl.TLSVersion.TLSv1_3
    assert ident.client_context.verify_mode == ssl.CERT_REQUIRED
