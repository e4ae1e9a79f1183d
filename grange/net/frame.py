"""Wire format of a cluster connection, and its sans-IO decoder.

Every byte on a connection (inside TLS) is a sequence of frames:

    frame = length:u32 | stream_id:u32 | kind:u8 | priority:u8 | payload
            (big-endian; `length` counts the 6 header bytes after it plus the payload)

`stream_id` names one request/response exchange. Ids are chosen by the side that sends the
request, so both sides may use the same id at once: the RESPONSE bit of `kind` says whose
exchange a frame belongs to (set on frames of a response, clear on frames of a request).

    kind & 0x7f   meaning
    HEAD          a piece of the message header (msgpack); more pieces follow
    HEAD_END      the last piece of the header: the message is complete
    DATA          a chunk of the message's streamed body
    DATA_END      the body ended normally (empty payload)
    DATA_ERR      the body ended with an error (payload: UTF-8 message)
    CANCEL        (request direction only) the requester gave up: stop and send nothing more

A request header is msgpack `[endpoint, body, has_stream]`; a response header is
`[ok, body_or_error_message, has_stream]`. When `has_stream` is true, DATA frames follow the
header, ending with DATA_END or DATA_ERR. Headers and bodies are cut into frames of at most
`FRAME_PAYLOAD_MAX` bytes so that frames of different exchanges interleave by priority.

Limits are checked before anything is allocated: a frame longer than `max_frame_len` or a
header longer than `max_header_len` is a `ProtocolError`, which closes that connection only.
"""

from __future__ import annotations

import enum
import struct
from dataclasses import dataclass

_HEADER = struct.Struct(">IIBB")
HEADER_LEN = _HEADER.size - 4  # bytes counted by `length` before the payload

# 64 KiB: large enough that a 1 MiB block costs 16 frames, small enough that a background
# transfer delays an interactive frame by well under a millisecond on a fast link.
FRAME_PAYLOAD_MAX = 64 * 1024
# A peer may not make us buffer more than this for a single frame.
MAX_FRAME_LEN_DEFAULT = FRAME_PAYLOAD_MAX + HEADER_LEN
# Headers are metadata (table entries, layouts, batches); 16 MiB bounds what one request pins.
MAX_HEADER_LEN_DEFAULT = 16 * 1024 * 1024

RESPONSE = 0x80


class Kind(enum.IntEnum):
    HEAD = 1
    HEAD_END = 2
    DATA = 3
    DATA_END = 4
    DATA_ERR = 5
    CANCEL = 6


class Priority(enum.IntEnum):
    """Lower value = sent first. A resync never delays a client request."""

    INTERACTIVE = 0  # pings, client-facing reads and writes
    NORMAL = 1  # table sync, gossip
    BACKGROUND = 2  # block resync, rebalance, scrub-driven repairs


class ProtocolError(Exception):
    """The peer sent something illegal: close the connection, count it, keep serving."""


@dataclass(slots=True)
class Frame:
    stream_id: int
    kind: Kind
    is_response: bool
    priority: int
    payload: bytes


def encode_frame_header(stream_id: int, kind: Kind, is_response: bool, priority: int, payload_len: int) -> bytes:
    """The 10 header bytes of a frame whose payload is written separately (no copy)."""
    return _HEADER.pack(HEADER_LEN + payload_len, stream_id, kind | (RESPONSE if is_response else 0), priority)


def encode_frame(stream_id: int, kind: Kind, is_response: bool, priority: int, payload: bytes = b"") -> bytes:
    return (
        _HEADER.pack(HEADER_LEN + len(payload), stream_id, kind | (RESPONSE if is_response else 0), priority)
        + payload
    )


def encode_pieces(stream_id: int, is_response: bool, priority: int, header: bytes) -> list[bytes]:
    """Frames carrying one message header, cut at FRAME_PAYLOAD_MAX."""
    if len(header) <= FRAME_PAYLOAD_MAX:
        return [encode_frame(stream_id, Kind.HEAD_END, is_response, priority, header)]
    out = []
    view = memoryview(header)
    for off in range(0, len(header), FRAME_PAYLOAD_MAX):
        piece = view[off : off + FRAME_PAYLOAD_MAX]
        last = off + FRAME_PAYLOAD_MAX >= len(header)
        out.append(encode_frame(stream_id, Kind.HEAD_END if last else Kind.HEAD, is_response, priority, piece.tobytes()))
    return out


class FrameDecoder:
    """Bytes in, frames out; no I/O. `feed()` then `next_frame()` until it returns None."""

    def __init__(self, max_frame_len: int = MAX_FRAME_LEN_DEFAULT) -> None:
        self._buf = bytearray()
        self._pos = 0
        self._max_frame_len = max_frame_len

    def feed(self, data: bytes) -> None:
        if self._pos:
            # Compact lazily: drop consumed bytes once they dominate the buffer.
            if self._pos > len(self._buf) // 2:
                del self._buf[: self._pos]
                self._pos = 0
        self._buf += data

    @property
    def buffered(self) -> int:
        return len(self._buf) - self._pos

    def next_frame(self) -> Frame | None:
        avail = len(self._buf) - self._pos
        if avail < _HEADER.size:
            return None
        length, stream_id, kind_byte, priority = _HEADER.unpack_from(self._buf, self._pos)
        if length < HEADER_LEN or length > self._max_frame_len:
            raise ProtocolError(f"frame length {length} outside [{HEADER_LEN}, {self._max_frame_len}]")
        try:
            kind = Kind(kind_byte & ~RESPONSE)
        except ValueError:
            raise ProtocolError(f"unknown frame kind {kind_byte:#x}") from None
        if priority > Priority.BACKGROUND:
            raise ProtocolError(f"unknown priority {priority}")
        if avail < 4 + length:
            return None
        start = self._pos + _HEADER.size
        end = self._pos + 4 + length
        payload = bytes(self._buf[start:end])
        self._pos = end
        if self._pos == len(self._buf):
            self._buf.clear()
            self._pos = 0
        return Frame(stream_id, kind, bool(kind_byte & RESPONSE), priority, payload)


class HeaderAssembler:
    """Joins HEAD pieces of one message, refusing to grow past `max_header_len`."""

    __slots__ = ("_parts", "_size", "_max")

    def __init__(self, max_header_len: int = MAX_HEADER_LEN_DEFAULT) -> None:
        self._parts: list[bytes] = []
        self._size = 0
        self._max = max_header_len

    def add(self, piece: bytes) -> None:
        self._size += len(piece)
        if self._size > self._max:
            raise ProtocolError(f"message header longer than {self._max} bytes")
        self._parts.append(piece)

    def finish(self, last: bytes) -> bytes:
        self.add(last)
        return b"".join(self._parts) if len(self._parts) != 1 else self._parts[0]
