"""Sans-IO decoder for `Content-Encoding: aws-chunked` bodies (signed, unsigned, with trailers).

Wire format (AWS "Transferring Payload in Multiple Chunks" and "Including Trailing Headers"):

    signed (STREAMING-AWS4-HMAC-SHA256-PAYLOAD[-TRAILER]):
        <hex size>;chunk-signature=<64 hex>\\r\\n <size bytes> \\r\\n      repeated
        0;chunk-signature=<64 hex>\\r\\n                                  final chunk
        \\r\\n                                                           (no trailer)
      or, with trailer:
        <name>:<value>\\r\\n ...  x-amz-trailer-signature:<64 hex>\\r\\n  \\r\\n
    unsigned (STREAMING-UNSIGNED-PAYLOAD-TRAILER):
        <hex size>\\r\\n <size bytes> \\r\\n  ...  0\\r\\n  <name>:<value>\\r\\n ...  \\r\\n

Signatures form a chain seeded by the request's own signature (`seed_signature`):

    chunk:   HMAC(key, "AWS4-HMAC-SHA256-PAYLOAD\\n" date "\\n" scope "\\n" prev "\\n"
                       sha256("") "\\n" sha256(chunk data))
    trailer: HMAC(key, "AWS4-HMAC-SHA256-TRAILER\\n" date "\\n" scope "\\n" prev "\\n"
                       sha256(canonical trailers))

where `prev` is the previous chunk's signature (the final 0-size chunk's, for the trailer) and
the canonical trailers are `name:value\\n` for each trailer but the signature, sorted by name
(`\\n` alone when there is none).

States and transitions (all in `_step`):

    CHUNK_HEADER --size>0--> CHUNK_DATA --size bytes--> CHUNK_END --CRLF--> CHUNK_HEADER
    CHUNK_HEADER --size=0--> TRAILERS (trailer modes) | FINAL_CRLF (other modes)
    FINAL_CRLF --CRLF or EOF--> DONE          TRAILERS --blank line or EOF--> DONE

Events: `Data` (body bytes), `Trailers` (once, trailer modes only), `End` (then again on every
call), `NeedData` (feed more, or call `eof()`). Guarantees: in signed modes a chunk's bytes are
released as `Data` only after its signature verified, so at most one chunk is buffered, bounded
by `max_chunk_size`; in unsigned mode bytes are released as they arrive. Every error is an
`AwsChunkedError` (the peer's fault); anything else escaping is our bug. After an error the
decoder raises the same error on every call.

Leniencies, all harmless since nothing unverified is released: the CRLF after the final
chunk may be replaced by the end of input, and so may the blank line closing the trailers once
the last trailer line (the signature, in signed mode) is complete; a trailer line may end in
`\\n` and be followed by an empty `\\r\\n` before the signature line (Garage accepts both,
`src/api/common/signature/streaming.rs`). A truncated line is always `IncompleteBody`.

Not checked here: `x-amz-decoded-content-length` (compare with `decoded_length` at `End`) and
the trailer checksum values (see `checksum.py`); AWS's 8 KiB minimum chunk size is not
enforced (no client sends smaller chunks, and nothing depends on it).
"""

from __future__ import annotations

import collections
import hashlib
import re
from collections.abc import Iterable
from dataclasses import dataclass, field
from enum import Enum, auto

from .canonical import EMPTY_SHA256_HEX, PayloadMode, sign, signatures_equal
from .errors import (
    AwsChunkedError,
    ChunkedBodyIncomplete,
    ChunkedFramingError,
    ChunkSignatureMismatch,
    ChunkTooLarge,
)

__all__ = [
    "DEFAULT_MAX_CHUNK_SIZE",
    "AwsChunkedDecoder",
    "Data",
    "End",
    "Event",
    "NeedData",
    "Trailers",
    "chunk_signature",
    "strip_aws_chunked",
    "trailer_signature",
]

# A signed chunk is buffered until its signature verifies. SDKs sign 64 KiB (aws-sdk-java v1:
# 128 KiB, minio-go: 64 KiB, aws-c-auth: caller's choice, typically <= 8 MiB), so 16 MiB
# leaves room while bounding what one request can pin in memory.
DEFAULT_MAX_CHUNK_SIZE = 16 * 1024 * 1024
# A chunk header is `<= 16 hex digits;chunk-signature=<64 hex>\r\n` (~100 bytes); extensions
# from unsigned clients are tolerated within this bound.
MAX_CHUNK_HEADER_LINE = 4096
# The whole trailer section: a checksum line and a signature line are ~150 bytes.
DEFAULT_MAX_TRAILER_SIZE = 16 * 1024

_HEX_SIZE_RE = re.compile(rb"[0-9a-fA-F]{1,16}")
_SIGNATURE_RE = re.compile(rb"[0-9a-fA-F]{64}")
_TRAILER_NAME_RE = re.compile(rb"[A-Za-z0-9!#$%&'*+.^_`|~-]+")
TRAILER_SIGNATURE_NAME = "x-amz-trailer-signature"


@dataclass(frozen=True, slots=True)
class NeedData:
    """Nothing more can be decoded from what was fed: feed more bytes or call `eof()`."""


@dataclass(frozen=True, slots=True)
class Data:
    data: bytes


@dataclass(frozen=True, slots=True)
class Trailers:
    """Trailing headers (lower-case names; the trailer signature is not included)."""

    trailers: dict[str, str] = field(default_factory=dict)


@dataclass(frozen=True, slots=True)
class End:
    """The body is complete and verified."""


Event = NeedData | Data | Trailers | End

NEED_DATA = NeedData()
END = End()


class _State(Enum):
    CHUNK_HEADER = auto()
    CHUNK_DATA = auto()
    CHUNK_END = auto()
    FINAL_CRLF = auto()
    TRAILERS = auto()
    DONE = auto()


def chunk_signature(key: bytes, amz_date: str, scope: str, previous: str, data_sha256_hex: str) -> str:
    """Signature of one chunk given the hex sha256 of its data."""
    to_sign = (
        f"AWS4-HMAC-SHA256-PAYLOAD\n{amz_date}\n{scope}\n{previous}\n{EMPTY_SHA256_HEX}\n{data_sha256_hex}"
    )
    return sign(key, to_sign)


def canonical_trailers(trailers: Iterable[tuple[str, str]]) -> bytes:
    lines = "".join(f"{name}:{value}\n" for name, value in sorted(trailers))
    return (lines or "\n").encode("utf-8", "surrogateescape")


def trailer_signature(
    key: bytes, amz_date: str, scope: str, previous: str, trailers: Iterable[tuple[str, str]]
) -> str:
    """Signature of the trailer section (`x-amz-trailer-signature`)."""
    digest = hashlib.sha256(canonical_trailers(trailers)).hexdigest()
    return sign(key, f"AWS4-HMAC-SHA256-TRAILER\n{amz_date}\n{scope}\n{previous}\n{digest}")


def strip_aws_chunked(content_encoding: str | None) -> str | None:
    """The Content-Encoding to store once `aws-chunked` is removed (None if nothing is left)."""
    if content_encoding is None:
        return None
    rest = [c.strip() for c in content_encoding.split(",") if c.strip().lower() != "aws-chunked"]
    rest = [c for c in rest if c]
    return ", ".join(rest) if rest else None


class AwsChunkedDecoder:
    """Decode an aws-chunked body: `feed()` bytes, then `next_event()` until `NeedData`.

    For the signed modes, `seed_signature` (the request's signature), `signing_key`, `scope`
    (`YYYYMMDD/region/service/aws4_request`) and `datetime` (the request's `YYYYMMDDTHHMMSSZ`)
    are required. `trailer_names` are the names announced in `x-amz-trailer`: trailers not
    announced are refused, announced ones must all arrive.
    """

    def __init__(
        self,
        mode: PayloadMode,
        seed_signature: str | None = None,
        signing_key: bytes | None = None,
        scope: str | None = None,
        datetime: str | None = None,
        trailer_names: Iterable[str] = (),
        *,
        max_chunk_size: int = DEFAULT_MAX_CHUNK_SIZE,
        max_trailer_size: int = DEFAULT_MAX_TRAILER_SIZE,
    ) -> None:
        if not mode.is_streaming:
            raise ValueError(f"{mode} is not an aws-chunked payload mode")
        self._signed = mode.signed_chunks
        self._has_trailer = mode.has_trailer
        if self._signed and (
            seed_signature is None or signing_key is None or scope is None or datetime is None
        ):
            raise ValueError("signed aws-chunked decoding needs seed signature, key, scope and date")
        self._prev_signature = (seed_signature or "").lower()
        self._key = signing_key or b""
        self._scope = scope or ""
        self._datetime = datetime or ""
        self._trailer_names = frozenset(n.strip().lower() for n in trailer_names if n.strip())
        self._max_chunk_size = max_chunk_size
        self._max_trailer_size = max_trailer_size

        self._state = _State.CHUNK_HEADER
        self._buf = bytearray()
        self._eof = False
        self._error: AwsChunkedError | None = None
        self._pending: collections.deque[Event] = collections.deque()
        # current chunk
        self._remaining = 0
        self._chunk_sig = ""
        self._chunk_parts: list[bytes] = []
        self._chunk_hash = hashlib.sha256()
        # trailer section
        self._trailers: dict[str, str] = {}
        self._trailer_bytes = 0
        self._trailer_sig_seen = False
        self._decoded_length = 0

    # ---- public interface ----

    @property
    def decoded_length(self) -> int:
        """Body bytes decoded so far (all of them once `End` was returned)."""
        return self._decoded_length

    @property
    def done(self) -> bool:
        return self._state is _State.DONE

    @property
    def trailing_data(self) -> bytes:
        """Bytes fed after the end of the body (only meaningful once `End` was returned)."""
        return bytes(self._buf) if self._state is _State.DONE else b""

    def feed(self, data: bytes) -> None:
        if self._eof:
            raise RuntimeError("feed() after eof()")
        if data:
            self._buf += data

    def eof(self) -> None:
        """The body has ended. Further `next_event()` calls finish or raise `IncompleteBody`."""
        self._eof = True

    def next_event(self) -> Event:
        if self._error is not None:
            raise self._error
        if self._pending:
            return self._pending.popleft()
        try:
            return self._step()
        except AwsChunkedError as exc:
            self._error = exc
            raise

    # ---- state machine ----

    def _step(self) -> Event:
        while True:
            state = self._state
            if state is _State.CHUNK_HEADER:
                line = self._take_line(MAX_CHUNK_HEADER_LINE, "chunk header")
                if line is None:
                    return self._need_data("chunk header")
                self._start_chunk(line)
            elif state is _State.CHUNK_DATA:
                event = self._read_chunk_data()
                if event is not None:
                    return event
                if self._state is _State.CHUNK_DATA:
                    return self._need_data("chunk data")
            elif state is _State.CHUNK_END:
                if len(self._buf) < 2:
                    return self._need_data("chunk terminator")
                if self._buf[:2] != b"\r\n":
                    raise ChunkedFramingError("aws-chunked: chunk data is not followed by CRLF")
                del self._buf[:2]
                self._state = _State.CHUNK_HEADER
                if self._signed:
                    data = b"".join(self._chunk_parts)
                    self._chunk_parts = []
                    self._verify_chunk(self._chunk_hash.hexdigest())
                    self._decoded_length += len(data)
                    return Data(data)
            elif state is _State.FINAL_CRLF:
                head = bytes(self._buf[:2])
                if head == b"\r\n":
                    del self._buf[:2]
                elif not b"\r\n".startswith(head):
                    raise ChunkedFramingError("aws-chunked: unexpected data after the final chunk")
                elif not self._eof:
                    return NEED_DATA
                elif head:
                    raise ChunkedBodyIncomplete()
                self._state = _State.DONE
                return END
            elif state is _State.TRAILERS:
                line = self._take_line(self._max_trailer_size, "trailer")
                if line is None:
                    if not self._eof:
                        return NEED_DATA
                    if self._buf or self._has_signature_pending() or self._missing_trailers():
                        raise ChunkedBodyIncomplete("The request body terminated in its trailers")
                    return self._finish_trailers()  # the closing blank line may be missing
                self._trailer_bytes += len(line)
                if self._trailer_bytes > self._max_trailer_size:
                    raise ChunkedFramingError("aws-chunked: trailer section too large")
                content = line[:-2] if line.endswith(b"\r\n") else line[:-1]
                if not content:
                    if self._has_signature_pending():
                        continue  # "value\n\r\n" before the signature line (see module doc)
                    return self._finish_trailers()
                self._trailer_line(content)
            else:  # DONE
                if self._eof and self._buf:
                    raise ChunkedFramingError("aws-chunked: unexpected data after the end of the body")
                return END

    def _need_data(self, what: str) -> NeedData:
        if self._eof:
            raise ChunkedBodyIncomplete(f"The request body terminated unexpectedly (in {what})")
        return NEED_DATA

    def _take_line(self, limit: int, what: str) -> bytes | None:
        """Remove and return one line including its `\\n`, or None if incomplete."""
        idx = self._buf.find(b"\n", 0, limit + 1)
        if idx < 0:
            if len(self._buf) > limit:
                raise ChunkedFramingError(f"aws-chunked: {what} line too long")
            return None
        line = bytes(self._buf[: idx + 1])
        del self._buf[: idx + 1]
        return line

    def _start_chunk(self, line: bytes) -> None:
        if not line.endswith(b"\r\n"):
            raise ChunkedFramingError("aws-chunked: chunk header does not end with CRLF")
        size_field, _, extensions = line[:-2].partition(b";")
        if not _HEX_SIZE_RE.fullmatch(size_field):
            raise ChunkedFramingError("aws-chunked: invalid chunk size")
        size = int(size_field, 16)
        if self._signed:
            name, _, value = extensions.partition(b"=")
            if name.strip() != b"chunk-signature" or not _SIGNATURE_RE.fullmatch(value.strip()):
                raise ChunkedFramingError("aws-chunked: missing or invalid chunk-signature")
            if size > self._max_chunk_size:
                raise ChunkTooLarge(
                    f"aws-chunked: chunk of {size} bytes exceeds the limit of {self._max_chunk_size}"
                )
            self._chunk_sig = value.strip().decode("ascii").lower()
            self._chunk_hash = hashlib.sha256()
        if size == 0:
            if self._signed:
                self._verify_chunk(EMPTY_SHA256_HEX)
            self._state = _State.TRAILERS if self._has_trailer else _State.FINAL_CRLF
            return
        self._remaining = size
        self._state = _State.CHUNK_DATA

    def _read_chunk_data(self) -> Event | None:
        if not self._buf:
            return None
        n = min(len(self._buf), self._remaining)
        piece = bytes(self._buf[:n])
        del self._buf[:n]
        self._remaining -= n
        if self._remaining == 0:
            self._state = _State.CHUNK_END
        if self._signed:
            self._chunk_hash.update(piece)
            self._chunk_parts.append(piece)
            return None
        self._decoded_length += n
        return Data(piece)

    def _verify_chunk(self, data_sha256_hex: str) -> None:
        expected = chunk_signature(
            self._key, self._datetime, self._scope, self._prev_signature, data_sha256_hex
        )
        if not signatures_equal(expected, self._chunk_sig):
            raise ChunkSignatureMismatch(
                "The chunk signature we calculated does not match the signature you provided."
            )
        self._prev_signature = expected

    # ---- trailers ----

    def _has_signature_pending(self) -> bool:
        return self._signed and not self._trailer_sig_seen

    def _trailer_line(self, content: bytes) -> None:
        raw_name, sep, raw_value = content.partition(b":")
        name_b = raw_name.strip()
        if not sep or not _TRAILER_NAME_RE.fullmatch(name_b):
            raise ChunkedFramingError("aws-chunked: malformed trailer line")
        name = name_b.decode("ascii").lower()
        value = raw_value.strip().decode("utf-8", "surrogateescape")
        if self._trailer_sig_seen:
            raise ChunkedFramingError("aws-chunked: trailer after x-amz-trailer-signature")
        if name == TRAILER_SIGNATURE_NAME:
            if not self._signed:
                raise ChunkedFramingError("aws-chunked: x-amz-trailer-signature in an unsigned body")
            if not _SIGNATURE_RE.fullmatch(value.encode("ascii", "replace")):
                raise ChunkedFramingError("aws-chunked: invalid x-amz-trailer-signature")
            expected = trailer_signature(
                self._key, self._datetime, self._scope, self._prev_signature, self._trailers.items()
            )
            if not signatures_equal(expected, value):
                raise ChunkSignatureMismatch(
                    "The trailer signature we calculated does not match the signature you provided."
                )
            self._trailer_sig_seen = True
            return
        if name not in self._trailer_names:
            raise ChunkedFramingError(f"aws-chunked: trailer {name} was not announced in x-amz-trailer")
        if name in self._trailers:
            raise ChunkedFramingError(f"aws-chunked: trailer {name} sent twice")
        self._trailers[name] = value

    def _missing_trailers(self) -> list[str]:
        return sorted(self._trailer_names - self._trailers.keys())

    def _finish_trailers(self) -> Event:
        if self._has_signature_pending():
            raise ChunkedFramingError("aws-chunked: the trailers lack x-amz-trailer-signature")
        if missing := self._missing_trailers():
            raise ChunkedFramingError(
                f"aws-chunked: trailer {', '.join(missing)} announced in x-amz-trailer was not sent"
            )
        self._state = _State.DONE
        self._pending.append(END)
        return Trailers(dict(self._trailers))
