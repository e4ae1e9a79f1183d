"""The request body as handlers see it: decoded, and checked while it streams.

Modes (from the verified signature):
- signed payload (`x-amz-content-sha256` = hex sha256): hashed as it streams, compared at
  the end → `XAmzContentSHA256Mismatch`;
- `UNSIGNED-PAYLOAD`: passed through;
- aws-chunked (`STREAMING-…`): decoded by the sans-IO `AwsChunkedDecoder`, every chunk
  signature verified before its data is released; trailers collected; the decoded length
  checked against `x-amz-decoded-content-length`.
In every mode `Content-MD5` and `x-amz-checksum-*` (header, or trailer announced by
`x-amz-trailer`) are computed incrementally and compared at the end → `BadDigest`
(malformed values are refused up front: `InvalidDigest` / `InvalidRequest`). A body shorter than its `Content-Length` → `IncompleteBody`.

Errors surface when the last chunk has been consumed, before the handler makes anything
visible, so a bad upload stores nothing a client can see.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

from aiohttp import ClientPayloadError, web
from aiohttp.streams import EofStream

from grange.api.common.signature import checksum as cks
from grange.api.common.signature.canonical import PayloadMode, normalize_headers
from grange.api.common.signature.streaming import Data, End, NeedData, Trailers
from grange.api.s3.errors import EntityTooLarge, IncompleteBody

READ_SIZE = 256 * 1024


class RequestBody:
    def __init__(self, http: web.BaseRequest, verified: Any) -> None:
        self.http = http
        self.verified = verified
        self.trailers: dict[str, str] = {}
        self.checksums: dict[str, str] = {}  # algorithm → base64 value computed over the body
        self.size = 0
        self._consumed = False
        self._announced = cks.parse_request_checksums(
            normalize_headers(http.headers), verified.trailer_names if verified is not None else ())
        algos = self._announced.algorithms_to_compute()
        # A checksum of the body is also kept (returned with x-amz-checksum-mode) when the
        # client announced an algorithm.
        self._calc = cks.ChecksumCalculator(algos)

    async def _raw(self) -> AsyncIterator[bytes]:
        if self.http.headers.get("Expect", "").lower() == "100-continue":
            # The client waits for this before sending the body (aiohttp's low-level server
            # does not send it by itself).
            await self.http.writer.write(b"HTTP/1.1 100 Continue\r\n\r\n")
        content = self.http.content
        while True:
            try:
                chunk = await content.readany()
            except (ConnectionError, EofStream, ClientPayloadError) as e:  # the client went away
                raise IncompleteBody(f"The request body ended early: {e}") from None
            if not chunk:
                return
            yield chunk

    async def chunks(self) -> AsyncIterator[bytes]:
        if self._consumed:
            raise RuntimeError("request body consumed twice")
        self._consumed = True
        mode = self.verified.payload_mode if self.verified is not None else PayloadMode.UNSIGNED
        source = self._chunked() if mode.is_streaming else self._plain(mode)
        async for data in source:
            self.size += len(data)
            self._calc.update(data)
            yield data
        self._finish()

    async def _plain(self, mode: PayloadMode) -> AsyncIterator[bytes]:
        check = self.verified.content_sha256_check() if self.verified is not None else None
        declared = self.http.content_length
        n = 0
        async for chunk in self._raw():
            n += len(chunk)
            if check is not None:
                check.update(chunk)
            yield chunk
        if declared is not None and n < declared:
            raise IncompleteBody("You did not provide the number of bytes specified by the Content-Length HTTP header.")
        if check is not None:
            check.verify()

    async def _chunked(self) -> AsyncIterator[bytes]:
        decoder = self.verified.chunked_decoder()
        async for raw in self._raw():
            decoder.feed(raw)
            while True:
                ev = decoder.next_event()
                if isinstance(ev, NeedData):
                    break
                if isinstance(ev, Data):
                    yield ev.data
                elif isinstance(ev, Trailers):
                    self.trailers.update(ev.trailers)
                elif isinstance(ev, End):
                    break
        decoder.eof()
        while True:
            ev = decoder.next_event()
            if isinstance(ev, Data):
                yield ev.data
            elif isinstance(ev, Trailers):
                self.trailers.update(ev.trailers)
            else:
                break
        declared = self.http.headers.get("x-amz-decoded-content-length")
        if declared is not None and declared.isdigit() and decoder.decoded_length != int(declared):
            raise IncompleteBody("The decoded body does not have the length given by x-amz-decoded-content-length.")

    def _finish(self) -> None:
        digests = self._calc.digests()
        self._announced.verify(digests, self.trailers)
        self.checksums = {alg.value: value for alg, value in self._calc.finalize().items()
                          if alg is not cks.ChecksumAlgorithm.MD5}

    async def read_all(self, limit: int) -> bytes:
        parts, size = [], 0
        async for chunk in self.chunks():
            size += len(chunk)
            if size > limit:
                raise EntityTooLarge("Your proposed upload exceeds the maximum allowed size")
            parts.append(chunk)
        return b"".join(parts)

