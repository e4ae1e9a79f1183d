"""The node's network endpoint: accept and dial TLS connections, route RPCs to handlers.

Like Garage's netapp, a pair of nodes may hold two connections: the one each side dialled.
A node sends its own requests on the connection it dialled and falls back to the one it
accepted, and answers on whichever connection a request arrived. This avoids a tie-break
race when two nodes dial each other at once.

What the peer is allowed to cost us is bounded here: the TLS handshake must finish within
`handshake_timeout_s` (a half-open or silent TCP client is dropped), frames and headers are
capped (`frame.py`), and a wrong certificate never gets past OpenSSL's verification.
"""

from __future__ import annotations

import asyncio
import logging
import ssl
from collections.abc import AsyncIterator, Callable
from typing import Any

from grange.net.conn import Connection, Handler, RecvStream, Reply, read_all
from grange.net.errors import NotConnected, RpcTimeout
from grange.net.frame import MAX_FRAME_LEN_DEFAULT, MAX_HEADER_LEN_DEFAULT, Priority
from grange.net.keys import PeerIdentityError, TlsIdentity, peer_id_from_ssl
from grange.util.addr import split_host_port

log = logging.getLogger("grange.net")

HANDSHAKE_TIMEOUT_S = 10.0


class NetApp:
    def __init__(
        self,
        identity: TlsIdentity,
        *,
        handshake_timeout_s: float = HANDSHAKE_TIMEOUT_S,
        max_frame_len: int = MAX_FRAME_LEN_DEFAULT,
        max_header_len: int = MAX_HEADER_LEN_DEFAULT,
    ) -> None:
        self.identity = identity
        self.id = identity.node_id
        self.endpoints: dict[str, Handler] = {}
        self.client_conns: dict[str, Connection] = {}
        self.server_conns: dict[str, Connection] = {}
        self._handshake_timeout_s = handshake_timeout_s
        self._max_frame_len = max_frame_len
        self._max_header_len = max_header_len
        self._server: asyncio.base_events.Server | None = None
        self._connecting: dict[str, asyncio.Future[Connection]] = {}
        self._accepting: set[asyncio.Task[None]] = set()
        self.refused_connections = 0
        # Callbacks of the membership layer: (peer id, connection).
        self.on_connected: list[Callable[[Connection], None]] = []
        self.on_disconnected: list[Callable[[Connection], None]] = []

    # ------------------------------------------------------------------ endpoints
    def register(self, name: str, handler: Handler) -> None:
        assert name not in self.endpoints, f"endpoint {name} registered twice"
        self.endpoints[name] = handler

    # ------------------------------------------------------------------ connections
    def _protocol(self) -> Connection:
        return Connection(self.endpoints, self._opened, self._closed, self._max_frame_len, self._max_header_len)

    def _opened(self, conn: Connection) -> None:
        transport = conn.transport
        assert transport is not None
        try:
            conn.peer_id = peer_id_from_ssl(transport.get_extra_info("ssl_object"))
        except PeerIdentityError as e:
            conn.abort(str(e))
            return
        peer = transport.get_extra_info("peername")
        conn.peer_addr = f"{peer[0]}:{peer[1]}" if peer else None
        if conn.peer_id == self.id:
            conn.abort("connected to ourselves")
            return
        if conn.incoming:
            old = self.server_conns.get(conn.peer_id)
            self.server_conns[conn.peer_id] = conn
            if old is not None:
                old.close()
            log.debug("accepted connection from %s at %s", conn.peer_id[:16], conn.peer_addr)
            for cb in self.on_connected:
                cb(conn)

    def _closed(self, conn: Connection) -> None:
        table = self.server_conns if conn.incoming else self.client_conns
        if table.get(conn.peer_id) is conn:
            del table[conn.peer_id]
            log.debug("connection with %s closed: %s", conn.peer_id[:16], conn.close_reason)
            for cb in self.on_disconnected:
                cb(conn)

    async def listen(self, host: str, port: int) -> int:
        """Start accepting connections; returns the bound port.

        The TLS handshake is run explicitly (`loop.start_tls`) rather than by the server, so
        that a refused client (wrong secret, garbage, silence) is logged once with its reason:
        uvloop's server-side handshake errors are otherwise only visible in debug mode.
        """
        loop = asyncio.get_running_loop()
        self._server = await loop.create_server(
            lambda: _Accepting(self), host, port, reuse_address=True
        )
        return self._server.sockets[0].getsockname()[1]

    async def _accept(self, raw: asyncio.Transport) -> None:
        peer = raw.get_extra_info("peername")
        where = f"{peer[0]}:{peer[1]}" if peer else "?"
        conn = self._protocol()
        conn.incoming = True
        loop = asyncio.get_running_loop()
        # Reading was paused on accept so that no byte reaches the placeholder protocol;
        # resume once start_tls (below) has installed its TLS protocol on the transport.
        loop.call_soon(raw.resume_reading)
        try:
            tls = await loop.start_tls(
                raw, conn, self.identity.server_context, server_side=True,
                ssl_handshake_timeout=self._handshake_timeout_s,
            )
        except ssl.SSLCertVerificationError as e:
            reason = f"certificate not signed with our rpc_secret ({e.verify_message})"
        except ssl.SSLError as e:
            reason = f"TLS handshake failed ({e.reason or e})"
        except TimeoutError:
            reason = "TLS handshake timed out"
        except (OSError, ConnectionError) as e:
            reason = f"connection failed during TLS handshake ({e})"
        else:
            if tls is None:  # pragma: no cover - the peer went away during the handshake
                raw.abort()
                return
            conn.connection_made(tls)
            return
        self.refused_connections += 1
        log.warning("[%s] refused connection from %s: %s", self.id[:8], where, reason)
        raw.abort()

    async def connect(self, peer_id: str, addr: str) -> Connection:
        """Dial `peer_id` at `addr` (reusing an open connection); checks the peer's identity."""
        existing = self.client_conns.get(peer_id)
        if existing is not None and not existing.closed.is_set():
            return existing
        pending = self._connecting.get(peer_id)
        if pending is not None:
            return await asyncio.shield(pending)
        fut: asyncio.Future[Connection] = asyncio.get_running_loop().create_future()
        self._connecting[peer_id] = fut
        try:
            conn = await self._dial(peer_id, addr)
            fut.set_result(conn)
            return conn
        except BaseException as e:
            fut.set_exception(e)
            fut.exception()  # mark retrieved: other waiters may not exist
            raise
        finally:
            del self._connecting[peer_id]

    async def _dial(self, peer_id: str, addr: str) -> Connection:
        try:
            host, port = split_host_port(addr)
        except ValueError as e:  # e.g. a malformed address gossiped by a peer
            raise NotConnected(f"invalid address {addr!r}: {e}") from None
        loop = asyncio.get_running_loop()
        try:
            async with asyncio.timeout(self._handshake_timeout_s):
                _, conn = await loop.create_connection(
                    self._protocol, host, port, ssl=self.identity.client_context, server_hostname=None
                )
        except ssl.SSLCertVerificationError as e:
            raise NotConnected(
                f"{addr} refused our certificate or showed one not signed with our rpc_secret ({e.verify_message})"
            ) from None
        except ssl.SSLError as e:
            raise NotConnected(f"TLS handshake with {addr} failed (different rpc_secret?): {e.reason}") from None
        except TimeoutError:
            raise NotConnected(f"connecting to {addr} timed out") from None
        except OSError as e:
            raise NotConnected(f"cannot connect to {addr}: {e.strerror or e}") from None
        assert isinstance(conn, Connection)
        if conn.closed.is_set():
            raise NotConnected(f"connection to {addr} closed during set-up: {conn.close_reason}")
        if conn.peer_id != peer_id:
            conn.abort(f"expected node {peer_id[:16]}")
            raise NotConnected(f"node at {addr} is {conn.peer_id[:16]}…, not the expected {peer_id[:16]}…")
        old = self.client_conns.get(peer_id)
        self.client_conns[peer_id] = conn
        if old is not None:
            old.close()
        for cb in self.on_connected:
            cb(conn)
        return conn

    def connection_to(self, peer_id: str) -> Connection | None:
        conn = self.client_conns.get(peer_id) or self.server_conns.get(peer_id)
        if conn is not None and conn.closed.is_set():
            return None
        return conn

    def is_connected(self, peer_id: str) -> bool:
        return peer_id == self.id or self.connection_to(peer_id) is not None

    def connected_peers(self) -> set[str]:
        return {p for p in (*self.client_conns, *self.server_conns) if self.connection_to(p) is not None}

    # ------------------------------------------------------------------ calls
    async def call_stream(
        self,
        peer_id: str,
        endpoint: str,
        body: Any,
        *,
        prio: int = Priority.NORMAL,
        timeout_s: float | None = None,
        stream: AsyncIterator[bytes] | None = None,
    ) -> tuple[Any, RecvStream | None]:
        """One RPC; the deadline covers the exchange up to the response header."""
        try:
            async with asyncio.timeout(timeout_s):
                if peer_id == self.id:
                    return await self._call_local(endpoint, body, stream)
                conn = self.connection_to(peer_id)
                if conn is None:
                    raise NotConnected(f"not connected to node {peer_id[:16]}")
                return await conn.call(endpoint, body, prio, stream)
        except TimeoutError as e:
            if isinstance(e, RpcTimeout):
                raise
            raise RpcTimeout(f"{endpoint} to {peer_id[:16]} timed out after {timeout_s} s") from None

    async def call(self, peer_id: str, endpoint: str, body: Any, **kw: Any) -> Any:
        result, stream = await self.call_stream(peer_id, endpoint, body, **kw)
        if stream is not None:
            stream.close()
        return result

    async def _call_local(
        self, endpoint: str, body: Any, stream: AsyncIterator[bytes] | None
    ) -> tuple[Any, Any]:
        handler = self.endpoints.get(endpoint)
        if handler is None:
            raise NotConnected(f"no such endpoint: {endpoint}")
        local_stream = LocalStream(stream) if stream is not None else None
        result = await handler(self.id, body, local_stream)  # type: ignore[arg-type]
        if isinstance(result, Reply):
            return result.body, (LocalStream(result.stream) if result.stream is not None else None)
        return result, None

    # ------------------------------------------------------------------ shutdown
    async def close(self) -> None:
        if self._server is not None:
            self._server.close()
        for task in list(self._accepting):
            task.cancel()
        for conn in [*self.client_conns.values(), *self.server_conns.values()]:
            conn.close()
            if conn.transport is not None:
                conn.transport.abort()  # handlers are cancelled now, not after a drain
        await asyncio.sleep(0)
        if self._server is not None:
            try:
                async with asyncio.timeout(2):
                    await self._server.wait_closed()
            except TimeoutError:
                pass


class _Accepting(asyncio.Protocol):
    """A TCP connection before its TLS handshake: hands the socket to `NetApp._accept`."""

    def __init__(self, netapp: NetApp) -> None:
        self._netapp = netapp

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        transport.pause_reading()  # type: ignore[attr-defined]  # _accept resumes it
        task = asyncio.get_running_loop().create_task(self._netapp._accept(transport))  # type: ignore[arg-type]
        self._netapp._accepting.add(task)
        task.add_done_callback(self._netapp._accepting.discard)

    def data_received(self, data: bytes) -> None:  # pragma: no cover - reading is paused
        pass


class LocalStream:
    """A handler's reply stream handed straight to a caller on the same node."""

    def __init__(self, it: AsyncIterator[bytes]) -> None:
        self._it = it

    def __aiter__(self) -> LocalStream:
        return self

    async def __anext__(self) -> bytes:
        return await self._it.__anext__()

    async def read_all(self, limit: int) -> bytes:
        return await read_all(self, limit)

    def close(self) -> None:
        aclose = getattr(self._it, "aclose", None)
        if aclose is not None:
            asyncio.get_running_loop().create_task(aclose())
