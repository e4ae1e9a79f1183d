"""One authenticated cluster connection: multiplexed requests, priorities, streamed bodies.

The wire format is described in `grange.net.frame`. This module is the asyncio shell around
that sans-IO decoder:

- Reading: `data_received` feeds the decoder and dispatches every complete frame
  synchronously. A streamed body goes into a `RecvStream` whose buffer is bounded: above
  `STREAM_BUFFER_HIGH` bytes the whole connection stops reading (TCP then pushes back on the
  sender) until the consumer drains it below the low watermark. Known limit: this is
  head-of-line blocking — a slow consumer delays the other exchanges of this connection,
  never more than one buffer's worth of memory.
- Writing: frames wait in one queue per priority; `_flush` always takes from the most urgent
  non-empty queue and stops while the transport is above its write high-water mark.
  Streamed bodies are pumped frame by frame, and a pump waits while more than
  `SEND_QUEUE_HIGH` bytes are queued, so a fast producer never fills memory.
- A request's caller that is cancelled or times out sends CANCEL; the peer cancels the
  handler task. When the connection breaks, every pending call fails with
  `ConnectionClosed` and every running handler is cancelled.
- Anything illegal from the peer (`ProtocolError`) closes this connection only.

When changing this code, keep in step: `frame.py` (kinds and header shapes) and
`netapp.py` (which owns connections and endpoints).
"""

from __future__ import annotations

import asyncio
import collections
import logging
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass
from typing import Any

import msgspec

from grange.net.errors import ConnectionClosed, RemoteError
from grange.net.frame import (
    FRAME_PAYLOAD_MAX,
    Frame,
    FrameDecoder,
    HeaderAssembler,
    Kind,
    Priority,
    ProtocolError,
    encode_frame,
    encode_frame_header,
    encode_pieces,
)

log = logging.getLogger("grange.net")

# Bytes of one received stream kept in memory before the connection stops reading.
STREAM_BUFFER_HIGH = 1024 * 1024
STREAM_BUFFER_LOW = 256 * 1024
# Bytes of queued outgoing frames above which stream pumps wait.
SEND_QUEUE_HIGH = 1024 * 1024
# How many handler tasks one peer may keep running on this node at once.
MAX_INFLIGHT_HANDLERS = 1024
# One write() call gathers up to this many bytes of queued frames.
WRITE_BATCH_MAX = 256 * 1024

_encoder = msgspec.msgpack.Encoder()
_decoder = msgspec.msgpack.Decoder()


@dataclass(slots=True)
class Reply:
    """What a handler returns when it has a streamed body to send back."""

    body: Any
    stream: AsyncIterator[bytes] | None = None


Handler = Callable[[str, Any, "RecvStream | None"], Awaitable[Any]]


class RecvStream:
    """A streamed body arriving from the peer, iterated with `async for chunk in stream`."""

    def __init__(self, conn: Connection, key: tuple[bool, int]) -> None:
        self._conn = conn
        self._key = key
        self._chunks: collections.deque[bytes] = collections.deque()
        self._size = 0
        self._done = False
        self._error: BaseException | None = None
        self._waiter: asyncio.Future[None] | None = None
        self._pausing = False

    # -- producer side (the connection) --
    def _feed(self, chunk: bytes) -> None:
        if self._done:
            return
        self._chunks.append(chunk)
        self._size += len(chunk)
        if self._size > STREAM_BUFFER_HIGH and not self._pausing:
            self._pausing = True
            self._conn._pause_reading(self)
        self._wake()

    def _end(self, error: BaseException | None) -> None:
        if self._done:
            return
        self._done = True
        self._error = error
        self._wake()

    def _wake(self) -> None:
        if self._waiter is not None and not self._waiter.done():
            self._waiter.set_result(None)

    def _release(self) -> None:
        if self._pausing:
            self._pausing = False
            self._conn._resume_reading(self)

    # -- consumer side --
    def __aiter__(self) -> RecvStream:
        return self

    async def __anext__(self) -> bytes:
        while not self._chunks:
            if self._done:
                self._release()
                if self._error is not None:
                    raise self._error
                raise StopAsyncIteration
            self._waiter = asyncio.get_running_loop().create_future()
            try:
                await self._waiter
            finally:
                self._waiter = None
        chunk = self._chunks.popleft()
        self._size -= len(chunk)
        if self._pausing and self._size < STREAM_BUFFER_LOW:
            self._release()
        return chunk

    async def read_all(self, limit: int) -> bytes:
        return await read_all(self, limit)

    def close(self) -> None:
        """Stop receiving: drop buffered data; a response stream also tells the peer to stop."""
        finished = self._done
        self._end(ConnectionClosed("stream closed by receiver"))
        self._chunks.clear()
        self._size = 0
        self._release()
        self._conn._forget_stream(self._key, cancel_remote=not finished)


async def read_all(stream: RecvStream | Any, limit: int) -> bytes:
    """The whole body of a stream, refusing (and closing the stream) past `limit` bytes."""
    parts, size = [], 0
    async for chunk in stream:
        size += len(chunk)
        if size > limit:
            stream.close()
            raise ValueError(f"stream longer than {limit} bytes")
        parts.append(chunk)
    return b"".join(parts)


class Connection(asyncio.Protocol):
    """A cluster connection after the TLS handshake; created by `NetApp`."""

    def __init__(
        self,
        endpoints: dict[str, Handler],
        on_open: Callable[[Connection], None],
        on_close: Callable[[Connection], None],
        max_frame_len: int,
        max_header_len: int,
    ) -> None:
        self.peer_id = ""  # set by NetApp once the certificate is checked
        self.peer_addr: str | None = None
        self.incoming = False
        self._endpoints = endpoints
        self._on_open = on_open
        self._on_close = on_close
        self._decoder = FrameDecoder(max_frame_len)
        self._max_header_len = max_header_len
        self._assemblers: dict[tuple[bool, int], HeaderAssembler] = {}
        self._pending: dict[int, asyncio.Future[tuple[bool, Any, RecvStream | None]]] = {}
        self._streams: dict[tuple[bool, int], RecvStream] = {}  # (is_response, stream id)
        self._handlers: dict[int, asyncio.Task[None]] = {}
        self._queues: list[collections.deque[bytes | memoryview]] = [collections.deque() for _ in Priority]
        self._queued_bytes = 0
        self._space = asyncio.Event()
        self._space.set()
        self._writable = True
        self._paused_by: set[RecvStream] = set()
        self._next_id = 1
        self.transport: asyncio.Transport | None = None
        self._early: list[bytes] = []
        self.closed = asyncio.Event()
        self.close_reason = ""

    # ------------------------------------------------------------------ asyncio.Protocol
    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport  # type: ignore[assignment]
        transport.set_write_buffer_limits(high=WRITE_BATCH_MAX, low=WRITE_BATCH_MAX // 4)
        self._on_open(self)
        early, self._early = self._early, []
        for data in early:
            if self.closed.is_set():
                break
            self.data_received(data)

    def connection_lost(self, exc: Exception | None) -> None:
        if self.closed.is_set():
            return
        self.closed.set()
        if not self.close_reason:
            self.close_reason = str(exc) if exc else "closed by peer"
        err = ConnectionClosed(f"connection to {self.peer_id[:16]} lost: {self.close_reason}")
        for fut in self._pending.values():
            if not fut.done():
                fut.set_exception(err)
        self._pending.clear()
        for stream in list(self._streams.values()):
            stream._end(err)
        self._streams.clear()
        for task in list(self._handlers.values()):
            task.cancel()
        for q in self._queues:
            q.clear()
        self._queued_bytes = 0
        self._space.set()
        self._on_close(self)

    def data_received(self, data: bytes) -> None:
        if self.transport is None:  # start_tls may deliver data before connection_made
            self._early.append(data)
            return
        self._decoder.feed(data)
        try:
            while (frame := self._decoder.next_frame()) is not None:
                self._on_frame(frame)
        except ProtocolError as e:
            self.abort(f"protocol error: {e}")

    def pause_writing(self) -> None:
        self._writable = False

    def resume_writing(self) -> None:
        self._writable = True
        self._flush()

    # ------------------------------------------------------------------ frames in
    def _on_frame(self, f: Frame) -> None:
        if f.kind in (Kind.HEAD, Kind.HEAD_END):
            key = (f.is_response, f.stream_id)
            asm = self._assemblers.get(key)
            if f.kind == Kind.HEAD:
                if asm is None:
                    asm = self._assemblers[key] = HeaderAssembler(self._max_header_len)
                asm.add(f.payload)
                return
            raw = f.payload if asm is None else asm.finish(f.payload)
            self._assemblers.pop(key, None)
            try:
                header = _decoder.decode(raw)
                flag, body, has_stream = header
            except (msgspec.DecodeError, ValueError, TypeError) as e:
                raise ProtocolError(f"bad message header: {e}") from None
            if f.is_response:
                self._on_response(f.stream_id, flag, body, bool(has_stream))
            else:
                self._on_request(f.stream_id, f.priority, flag, body, bool(has_stream))
        elif f.kind == Kind.DATA:
            stream = self._streams.get((f.is_response, f.stream_id))
            if stream is not None:
                stream._feed(f.payload)
        elif f.kind in (Kind.DATA_END, Kind.DATA_ERR):
            stream = self._streams.pop((f.is_response, f.stream_id), None)
            if stream is not None:
                err = None
                if f.kind == Kind.DATA_ERR:
                    err = RemoteError(f.payload.decode("utf-8", "replace"))
                stream._end(err)
        elif f.kind == Kind.CANCEL:
            if f.is_response:
                raise ProtocolError("CANCEL frame in response direction")
            task = self._handlers.get(f.stream_id)
            if task is not None:
                task.cancel()

    def _on_response(self, sid: int, ok: Any, body: Any, has_stream: bool) -> None:
        fut = self._pending.pop(sid, None)
        if fut is None or fut.done():
            return  # the caller gave up; a CANCEL is on its way
        stream = None
        if has_stream:
            stream = self._streams[(True, sid)] = RecvStream(self, (True, sid))
        fut.set_result((bool(ok), body, stream))

    def _on_request(self, sid: int, prio: int, endpoint: Any, body: Any, has_stream: bool) -> None:
        if not isinstance(endpoint, str):
            raise ProtocolError("request endpoint is not a string")
        if sid in self._handlers:
            raise ProtocolError(f"request id {sid} reused while in flight")
        stream = None
        if has_stream:
            stream = self._streams[(False, sid)] = RecvStream(self, (False, sid))
        if len(self._handlers) >= MAX_INFLIGHT_HANDLERS:
            self._send_response(sid, prio, False, "too many concurrent requests from this peer", None)
            if stream:
                stream.close()
            return
        handler = self._endpoints.get(endpoint)
        if handler is None:
            self._send_response(sid, prio, False, f"no such endpoint: {endpoint}", None)
            if stream:
                stream.close()
            return
        self._handlers[sid] = asyncio.get_running_loop().create_task(
            self._serve(sid, prio, endpoint, handler, body, stream)
        )

    async def _serve(
        self, sid: int, prio: int, endpoint: str, handler: Handler, body: Any, stream: RecvStream | None
    ) -> None:
        try:
            try:
                result = await handler(self.peer_id, body, stream)
            except asyncio.CancelledError:
                raise
            except Exception as e:  # the handler's error travels back to the caller
                if not isinstance(e, RemoteError | ConnectionClosed | TimeoutError) and not getattr(
                    e, "expected", False
                ):
                    log.warning("rpc %s from %s failed: %r", endpoint, self.peer_id[:16], e, exc_info=e)
                self._send_response(sid, prio, False, f"{type(e).__name__}: {e}", None)
                return
            if isinstance(result, Reply):
                self._send_response(sid, prio, True, result.body, result.stream)
                if result.stream is not None:
                    try:
                        await self._pump(sid, True, prio, result.stream)
                    except ConnectionClosed:
                        pass
                    except Exception as e:  # the receiver got DATA_ERR with this text
                        log.warning("rpc %s to %s: streaming the reply failed: %r", endpoint, self.peer_id[:16], e)
            else:
                self._send_response(sid, prio, True, result, None)
        finally:
            self._handlers.pop(sid, None)
            if stream is not None:
                stream.close()

    # ------------------------------------------------------------------ frames out
    def _enqueue(self, prio: int, bufs: list[bytes]) -> None:
        if self.closed.is_set():
            raise ConnectionClosed(f"connection to {self.peer_id[:16]} is closed")
        q = self._queues[prio]
        for b in bufs:
            q.append(b)
            self._queued_bytes += len(b)
        if self._queued_bytes > SEND_QUEUE_HIGH:
            self._space.clear()
        self._flush()

    def _flush(self) -> None:
        transport = self.transport
        if transport is None or self.closed.is_set():
            return
        while self._writable:
            q = next((q for q in self._queues if q), None)
            if q is None:
                break
            batch, size = [], 0
            while q and size < WRITE_BATCH_MAX:
                b = q.popleft()
                batch.append(b)
                size += len(b)
            self._queued_bytes -= size
            if len(batch) == 1:
                transport.write(batch[0])
            else:
                transport.writelines(batch)
        if self._queued_bytes <= SEND_QUEUE_HIGH // 2:
            self._space.set()

    def _send_response(self, sid: int, prio: int, ok: bool, body: Any, stream: AsyncIterator[bytes] | None) -> None:
        if self.closed.is_set():
            return
        self._enqueue(prio, encode_pieces(sid, True, prio, _encoder.encode([ok, body, stream is not None])))

    async def _pump(self, sid: int, is_response: bool, prio: int, it: AsyncIterator[bytes]) -> None:
        """Send a streamed body as DATA frames, never queueing more than SEND_QUEUE_HIGH."""
        try:
            async for chunk in it:
                view = memoryview(chunk)
                for off in range(0, len(view), FRAME_PAYLOAD_MAX):
                    piece = view[off : off + FRAME_PAYLOAD_MAX]
                    self._enqueue(prio, [encode_frame_header(sid, Kind.DATA, is_response, prio, len(piece)), piece])
                while not self._space.is_set():
                    if self.closed.is_set():
                        raise ConnectionClosed("connection closed while sending")
                    await self._space.wait()
        except (asyncio.CancelledError, ConnectionClosed):
            raise
        except Exception as e:
            if not self.closed.is_set():
                self._enqueue(prio, [encode_frame(sid, Kind.DATA_ERR, is_response, prio, str(e).encode()[:4096])])
            raise
        else:
            if not self.closed.is_set():
                self._enqueue(prio, [encode_frame(sid, Kind.DATA_END, is_response, prio)])
        finally:
            aclose = getattr(it, "aclose", None)
            if aclose is not None:
                try:
                    await aclose()
                except Exception:  # the producer's own cleanup failing must not mask our result
                    log.debug("stream producer cleanup failed", exc_info=True)

    # ------------------------------------------------------------------ calls
    async def call(
        self, endpoint: str, body: Any, prio: int, stream: AsyncIterator[bytes] | None = None
    ) -> tuple[Any, RecvStream | None]:
        """Send one request and wait for its response header (the caller sets the deadline).

        Raises `RemoteError` when the remote handler failed, `ConnectionClosed` when the
        connection broke. On cancellation the peer is told with a CANCEL frame.
        """
        sid = self._next_id
        self._next_id = (self._next_id + 1) & 0xFFFFFFFF or 1
        fut: asyncio.Future[tuple[bool, Any, RecvStream | None]] = asyncio.get_running_loop().create_future()
        self._pending[sid] = fut
        pump: asyncio.Task[None] | None = None
        answered = False
        try:
            self._enqueue(prio, encode_pieces(sid, False, prio, _encoder.encode([endpoint, body, stream is not None])))
            if stream is not None:
                pump = asyncio.get_running_loop().create_task(self._pump(sid, False, prio, stream))
            ok, rbody, rstream = await fut
            answered = True
            if pump is not None and pump.done() and not pump.cancelled() and pump.exception() is not None:
                # Our own body failed (the peer saw DATA_ERR): that is the caller's error.
                if rstream is not None:
                    rstream.close()
                raise pump.exception()  # type: ignore[misc]
            if not ok:
                if rstream is not None:
                    rstream.close()
                raise RemoteError(str(rbody))
            return rbody, rstream
        finally:
            self._pending.pop(sid, None)
            if pump is not None and not pump.done():
                pump.cancel()
            if not answered and not self.closed.is_set():
                self._enqueue(Priority.INTERACTIVE, [encode_frame(sid, Kind.CANCEL, False, Priority.INTERACTIVE)])

    # ------------------------------------------------------------------ flow control
    def _pause_reading(self, stream: RecvStream) -> None:
        self._paused_by.add(stream)
        if len(self._paused_by) == 1 and self.transport is not None and not self.closed.is_set():
            self.transport.pause_reading()

    def _resume_reading(self, stream: RecvStream) -> None:
        self._paused_by.discard(stream)
        if not self._paused_by and self.transport is not None and not self.closed.is_set():
            self.transport.resume_reading()

    def _forget_stream(self, key: tuple[bool, int], cancel_remote: bool) -> None:
        if self._streams.pop(key, None) is not None and key[0] and cancel_remote and not self.closed.is_set():
            self._enqueue(Priority.INTERACTIVE, [encode_frame(key[1], Kind.CANCEL, False, Priority.INTERACTIVE)])

    # ------------------------------------------------------------------ closing
    def abort(self, reason: str) -> None:
        """Close at once (peer misbehaved, or it is considered dead)."""
        if self.closed.is_set():
            return
        self.close_reason = reason
        log.warning("closing connection with %s (%s): %s", self.peer_id[:16] or "?", self.peer_addr, reason)
        if self.transport is not None:
            self.transport.abort()

    def close(self) -> None:
        if self.transport is not None and not self.closed.is_set():
            self.close_reason = self.close_reason or "closed locally"
            self.transport.close()

    @property
    def inflight(self) -> int:
        return len(self._pending) + len(self._handlers)

