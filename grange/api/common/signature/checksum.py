"""Body checksums: `Content-MD5` and `x-amz-checksum-{crc32,crc32c,crc64nvme,sha1,sha256}`.

Theory of operation: a PUT may announce checksums of its body in headers (`Content-MD5`, one
`x-amz-checksum-<alg>`), or announce in `x-amz-trailer` that one will come as a trailer of an
aws-chunked body, and may name the algorithm in `x-amz-sdk-checksum-algorithm` (or
`x-amz-checksum-algorithm` for CreateMultipartUpload). Values are base64 of the big-endian
digest (CRC32 and CRC32C: 4 bytes, CRC64NVME: 8, SHA1: 20, SHA256: 32, MD5: 16).

- `parse_request_checksums(headers)` validates all of that up front (InvalidDigest for a bad
  Content-MD5, InvalidRequest for bad or conflicting checksum headers, wording as S3's);
- `ChecksumCalculator(algorithms)` hashes the body incrementally while it streams;
- `RequestChecksums.verify(digests, trailers)` compares at the end (BadDigest on mismatch).

Multipart: a COMPOSITE checksum is the checksum of the concatenated raw part digests with
`-N` appended (`combine_part_checksums`); a FULL_OBJECT CRC is the CRC of the whole object,
obtained from the parts' CRCs and lengths (`combine_full_object_crc`) without rereading data.

Implementations: CRC32 is `zlib.crc32`; CRC32C uses `google_crc32c` (C), else
`awscrt.checksums`, else a pure-Python table; CRC64NVME uses `awscrt.checksums` (C), else a
pure-Python table (correct but ~100x slower: install awscrt). CRC combination uses awscrt when
present, else a GF(2) polynomial computation (zlib's `crc32_combine` method) in Python.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import zlib
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from enum import StrEnum
from typing import Any

from .errors import BadDigest, InvalidDigest, InvalidRequest

_google_crc32c: Any
_awscrt_checksums: Any
try:  # pragma: no cover - depends on the environment
    import google_crc32c as _google_crc32c
except ImportError:  # pragma: no cover
    _google_crc32c = None
try:  # pragma: no cover
    import awscrt.checksums

    _awscrt_checksums = awscrt.checksums
except ImportError:  # pragma: no cover
    _awscrt_checksums = None

__all__ = [
    "CHECKSUM_ALGORITHMS",
    "ChecksumAlgorithm",
    "ChecksumCalculator",
    "RequestChecksums",
    "combine_full_object_crc",
    "combine_part_checksums",
    "crc32c",
    "crc64nvme",
    "decode_checksum",
    "encode_checksum",
    "parse_checksum_algorithm",
    "parse_request_checksums",
    "trailer_checksum_algorithm",
]


class ChecksumAlgorithm(StrEnum):
    CRC32 = "crc32"
    CRC32C = "crc32c"
    CRC64NVME = "crc64nvme"
    SHA1 = "sha1"
    SHA256 = "sha256"
    MD5 = "md5"  # Content-MD5; not an x-amz-checksum algorithm

    @property
    def header_name(self) -> str:
        return "content-md5" if self is ChecksumAlgorithm.MD5 else f"x-amz-checksum-{self.value}"

    @property
    def aws_name(self) -> str:
        """As in `x-amz-checksum-algorithm` values and S3 messages: `CRC32`, `SHA256`..."""
        return self.value.upper()

    @property
    def digest_size(self) -> int:
        return _DIGEST_SIZES[self]

    @property
    def is_crc(self) -> bool:
        return self in (ChecksumAlgorithm.CRC32, ChecksumAlgorithm.CRC32C, ChecksumAlgorithm.CRC64NVME)


_DIGEST_SIZES = {
    ChecksumAlgorithm.CRC32: 4,
    ChecksumAlgorithm.CRC32C: 4,
    ChecksumAlgorithm.CRC64NVME: 8,
    ChecksumAlgorithm.SHA1: 20,
    ChecksumAlgorithm.SHA256: 32,
    ChecksumAlgorithm.MD5: 16,
}
# The algorithms of x-amz-checksum-*, in S3's order.
CHECKSUM_ALGORITHMS: tuple[ChecksumAlgorithm, ...] = (
    ChecksumAlgorithm.CRC32,
    ChecksumAlgorithm.CRC32C,
    ChecksumAlgorithm.CRC64NVME,
    ChecksumAlgorithm.SHA1,
    ChecksumAlgorithm.SHA256,
)
_BY_HEADER = {alg.header_name: alg for alg in CHECKSUM_ALGORITHMS}
# x-amz-checksum-* headers that are not checksum values.
_NOT_VALUE_HEADERS = frozenset(["x-amz-checksum-algorithm", "x-amz-checksum-type", "x-amz-checksum-mode"])


# ---- CRC implementations ----


def _reflected_table(poly: int) -> tuple[int, ...]:
    table = []
    for byte in range(256):
        crc = byte
        for _ in range(8):
            crc = (crc >> 1) ^ poly if crc & 1 else crc >> 1
        table.append(crc)
    return tuple(table)


_CRC32C_POLY = 0x82F63B78  # Castagnoli, reflected
_CRC64NVME_POLY = 0x9A6C9329AC4BC9B5  # NVMe, reflected
_CRC32_POLY = 0xEDB88320
_CRC32C_TABLE = _reflected_table(_CRC32C_POLY)
_CRC64NVME_TABLE = _reflected_table(_CRC64NVME_POLY)
_MASK32 = 0xFFFFFFFF
_MASK64 = 0xFFFFFFFFFFFFFFFF


def _crc_py(data: bytes, crc: int, table: tuple[int, ...], mask: int) -> int:
    crc ^= mask
    for byte in data:
        crc = table[(crc ^ byte) & 0xFF] ^ (crc >> 8)
    return crc ^ mask


def crc32c_py(data: bytes, crc: int = 0) -> int:
    return _crc_py(data, crc, _CRC32C_TABLE, _MASK32)


def crc64nvme_py(data: bytes, crc: int = 0) -> int:
    return _crc_py(data, crc, _CRC64NVME_TABLE, _MASK64)


def crc32c(data: bytes, crc: int = 0) -> int:
    """CRC32C of `data`, continuing from `crc` (the CRC of what came before)."""
    if _google_crc32c is not None:
        return int(_google_crc32c.extend(crc, bytes(data)))
    if _awscrt_checksums is not None:
        return int(_awscrt_checksums.crc32c(bytes(data), crc))
    return crc32c_py(bytes(data), crc)


def crc64nvme(data: bytes, crc: int = 0) -> int:
    """CRC64NVME of `data`, continuing from `crc`."""
    if _awscrt_checksums is not None:
        return int(_awscrt_checksums.crc64nvme(bytes(data), crc))
    return crc64nvme_py(bytes(data), crc)


def _crc32(data: bytes, crc: int = 0) -> int:
    return zlib.crc32(data, crc)


_CRC_FUNCS: dict[ChecksumAlgorithm, Callable[[bytes, int], int]] = {
    ChecksumAlgorithm.CRC32: _crc32,
    ChecksumAlgorithm.CRC32C: crc32c,
    ChecksumAlgorithm.CRC64NVME: crc64nvme,
}


class _CrcHasher:
    __slots__ = ("_crc", "_func", "_size")

    def __init__(self, func: Callable[[bytes, int], int], size: int) -> None:
        self._func = func
        self._size = size
        self._crc = 0

    def update(self, data: bytes) -> None:
        self._crc = self._func(data, self._crc)

    def digest(self) -> bytes:
        return self._crc.to_bytes(self._size, "big")


def _new_hasher(alg: ChecksumAlgorithm) -> Any:
    if alg.is_crc:
        return _CrcHasher(_CRC_FUNCS[alg], alg.digest_size)
    return hashlib.new(alg.value)


# ---- encoding ----


def encode_checksum(digest: bytes) -> str:
    return base64.b64encode(digest).decode("ascii")


def decode_checksum(alg: ChecksumAlgorithm, value: str) -> bytes | None:
    """The raw digest of a base64 value, None unless it is valid base64 of the right size."""
    try:
        raw = base64.b64decode(value.strip(), validate=True)
    except (binascii.Error, ValueError):
        return None
    return raw if len(raw) == alg.digest_size else None


# ---- incremental calculation ----


class ChecksumCalculator:
    """Compute several checksums of a body in one pass."""

    def __init__(self, algorithms: Iterable[ChecksumAlgorithm | str]) -> None:
        self._hashers = {ChecksumAlgorithm(a): _new_hasher(ChecksumAlgorithm(a)) for a in algorithms}

    @property
    def algorithms(self) -> frozenset[ChecksumAlgorithm]:
        return frozenset(self._hashers)

    def update(self, data: bytes | memoryview) -> None:
        if not data:
            return
        data = bytes(data) if isinstance(data, memoryview) else data
        for hasher in self._hashers.values():
            hasher.update(data)

    def digests(self) -> dict[ChecksumAlgorithm, bytes]:
        """Raw big-endian digests (MD5's also gives the hex ETag)."""
        return {alg: hasher.digest() for alg, hasher in self._hashers.items()}

    def finalize(self) -> dict[ChecksumAlgorithm, str]:
        """Base64 digests, as S3 returns them in `x-amz-checksum-*` headers."""
        return {alg: encode_checksum(digest) for alg, digest in self.digests().items()}


# ---- request headers ----


def parse_checksum_algorithm(
    value: str, *, header: str = "x-amz-sdk-checksum-algorithm"
) -> ChecksumAlgorithm:
    """`CRC32`, `crc32c`, ... from `x-amz-sdk-checksum-algorithm` / `x-amz-checksum-algorithm`."""
    try:
        alg = ChecksumAlgorithm(value.strip().lower())
    except ValueError:
        alg = None
    if alg is None or alg is ChecksumAlgorithm.MD5:
        raise InvalidRequest(f"Value for {header} header is invalid.")
    return alg


def trailer_checksum_algorithm(trailer_names: Iterable[str]) -> ChecksumAlgorithm | None:
    """The checksum announced among `x-amz-trailer` names (at most one is allowed)."""
    found: ChecksumAlgorithm | None = None
    for name in trailer_names:
        lname = name.strip().lower()
        if not lname.startswith("x-amz-checksum-"):
            continue
        alg = _BY_HEADER.get(lname)
        if alg is None:
            raise InvalidRequest("The value specified in the x-amz-trailer header is not supported")
        if found is not None and found is not alg:
            raise InvalidRequest(
                "Expecting a single x-amz-checksum- header. Multiple checksum Types are not allowed."
            )
        found = alg
    return found


@dataclass(frozen=True, slots=True)
class RequestChecksums:
    """What a request announced about its body's checksums."""

    md5: bytes | None = None  # Content-MD5
    checksum: tuple[ChecksumAlgorithm, bytes] | None = None  # an x-amz-checksum-* header
    trailer: ChecksumAlgorithm | None = None  # announced in x-amz-trailer
    sdk_algorithm: ChecksumAlgorithm | None = None  # x-amz-sdk-checksum-algorithm

    @property
    def algorithm(self) -> ChecksumAlgorithm | None:
        """The x-amz-checksum algorithm of this request (header, trailer or SDK header)."""
        if self.checksum is not None:
            return self.checksum[0]
        return self.trailer or self.sdk_algorithm

    def algorithms_to_compute(self) -> set[ChecksumAlgorithm]:
        """What to hash the body with to verify it and to store its checksum."""
        algs: set[ChecksumAlgorithm] = set()
        if self.md5 is not None:
            algs.add(ChecksumAlgorithm.MD5)
        if self.algorithm is not None:
            algs.add(self.algorithm)
        return algs

    def verify(
        self, digests: Mapping[ChecksumAlgorithm, bytes], trailers: Mapping[str, str] | None = None
    ) -> None:
        """Compare announced values with computed `digests` (from `ChecksumCalculator.digests`)."""
        if self.md5 is not None and digests[ChecksumAlgorithm.MD5] != self.md5:
            raise BadDigest()
        if self.checksum is not None:
            alg, expected = self.checksum
            if digests[alg] != expected:
                raise BadDigest(f"The {alg.aws_name} you specified did not match the calculated checksum.")
        if self.trailer is not None:
            name = self.trailer.header_name
            value = (trailers or {}).get(name)
            if value is None:
                raise InvalidRequest(f"The trailer {name} announced in x-amz-trailer was not sent.")
            expected_t = decode_checksum(self.trailer, value)
            if expected_t is None:
                raise InvalidRequest(f"Value for {name} trailing header is invalid.")
            if digests[self.trailer] != expected_t:
                raise BadDigest(
                    f"The {self.trailer.aws_name} you specified did not match the calculated checksum."
                )


def parse_request_checksums(
    headers: Mapping[str, list[str]], trailer_names: Sequence[str] = ()
) -> RequestChecksums:
    """Validate the checksum headers of a request (`headers` as `normalize_headers` gives them).

    `trailer_names` are the `x-amz-trailer` names (`VerifiedRequest.trailer_names`).
    """
    md5: bytes | None = None
    if values := headers.get("content-md5"):
        md5 = decode_checksum(ChecksumAlgorithm.MD5, values[0]) if len(values) == 1 else None
        if md5 is None:
            raise InvalidDigest()

    checksum: tuple[ChecksumAlgorithm, bytes] | None = None
    for name, values in headers.items():
        if not name.startswith("x-amz-checksum-") or name in _NOT_VALUE_HEADERS:
            continue
        alg = _BY_HEADER.get(name)
        if alg is None:
            raise InvalidRequest(f"The algorithm of {name} is not supported.")
        if checksum is not None or len(values) > 1:
            raise InvalidRequest(
                "Expecting a single x-amz-checksum- header. Multiple checksum Types are not allowed."
            )
        raw = decode_checksum(alg, values[0])
        if raw is None:
            raise InvalidRequest(f"Value for {name} header is invalid.")
        checksum = (alg, raw)

    trailer = trailer_checksum_algorithm(trailer_names)
    if trailer is not None and checksum is not None:
        raise InvalidRequest("Expecting a single x-amz-checksum- header")

    sdk: ChecksumAlgorithm | None = None
    if values := headers.get("x-amz-sdk-checksum-algorithm"):
        sdk = parse_checksum_algorithm(values[0])
        announced = checksum[0] if checksum is not None else trailer
        if announced is not None and announced is not sdk:
            # PutObject's documentation: a mismatch between the two "fails the request with
            # a BadDigest error".
            raise BadDigest(
                f"The x-amz-sdk-checksum-algorithm {sdk.aws_name} does not match the "
                f"{announced.header_name} header."
            )
    return RequestChecksums(md5=md5, checksum=checksum, trailer=trailer, sdk_algorithm=sdk)


# ---- multipart ----


def _raw(alg: ChecksumAlgorithm, value: bytes | str) -> bytes:
    if isinstance(value, bytes):
        if len(value) != alg.digest_size:
            raise ValueError(f"a {alg.aws_name} digest has {alg.digest_size} bytes, not {len(value)}")
        return value
    raw = decode_checksum(alg, value.split("-", 1)[0])
    if raw is None:
        raise ValueError(f"invalid {alg.aws_name} checksum {value!r}")
    return raw


def combine_part_checksums(alg: ChecksumAlgorithm, part_checksums: Sequence[bytes | str]) -> str:
    """COMPOSITE multipart checksum: base64(alg(concat(raw part digests))) + `-N`."""
    hasher = _new_hasher(alg)
    for value in part_checksums:
        hasher.update(_raw(alg, value))
    return f"{encode_checksum(hasher.digest())}-{len(part_checksums)}"


def _gf2_multmodp(a: int, b: int, poly: int, width: int) -> int:
    """a * b modulo the (reflected) CRC polynomial, as zlib's multmodp."""
    m = 1 << (width - 1)
    p = 0
    while True:
        if a & m:
            p ^= b
            if a & (m - 1) == 0:
                break
        m >>= 1
        b = (b >> 1) ^ poly if b & 1 else b >> 1
    return p


def _x2nmodp(n: int, k: int, poly: int, width: int) -> int:
    """x^(n * 2^k) modulo the polynomial (zlib's x2nmodp)."""
    p = 1 << (width - 1)  # x^0
    sq = 1 << (width - 2)  # x^1
    for _ in range(k):
        sq = _gf2_multmodp(sq, sq, poly, width)
    while n:
        if n & 1:
            p = _gf2_multmodp(sq, p, poly, width)
        n >>= 1
        sq = _gf2_multmodp(sq, sq, poly, width)
    return p


_CRC_PARAMS = {
    ChecksumAlgorithm.CRC32: (_CRC32_POLY, 32),
    ChecksumAlgorithm.CRC32C: (_CRC32C_POLY, 32),
    ChecksumAlgorithm.CRC64NVME: (_CRC64NVME_POLY, 64),
}


def crc_combine(alg: ChecksumAlgorithm, crc1: int, crc2: int, len2: int) -> int:
    """CRC of A+B from CRC(A), CRC(B) and len(B) (init and final xor all ones, as all three)."""
    if len2 == 0:
        return crc1
    if _awscrt_checksums is not None:
        combine = {
            ChecksumAlgorithm.CRC32: _awscrt_checksums.combine_crc32,
            ChecksumAlgorithm.CRC32C: _awscrt_checksums.combine_crc32c,
            ChecksumAlgorithm.CRC64NVME: _awscrt_checksums.combine_crc64nvme,
        }[alg]
        return int(combine(crc1, crc2, len2))
    poly, width = _CRC_PARAMS[alg]
    return _gf2_multmodp(_x2nmodp(len2, 3, poly, width), crc1, poly, width) ^ crc2


def combine_full_object_crc(alg: ChecksumAlgorithm, parts: Sequence[tuple[bytes | str, int]]) -> str:
    """FULL_OBJECT multipart checksum (CRCs only): the whole object's CRC from (part CRC, size)."""
    if not alg.is_crc:
        raise ValueError(f"{alg.aws_name} cannot be combined into a full-object checksum")
    crc = 0
    for value, size in parts:
        crc = crc_combine(alg, crc, int.from_bytes(_raw(alg, value), "big"), size)
    return encode_checksum(crc.to_bytes(alg.digest_size, "big"))
