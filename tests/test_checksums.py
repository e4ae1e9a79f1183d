"""Checksums: standard check values, base64 forms, incremental use, pure-Python fallbacks,
multipart combination, and S3's refusals of bad checksum headers."""

from __future__ import annotations

import base64
import contextlib
import hashlib
import zlib
from collections.abc import Iterator

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from grange.api.common.signature import (
    BadDigest,
    ChecksumAlgorithm,
    ChecksumCalculator,
    InvalidDigest,
    InvalidRequest,
    combine_full_object_crc,
    combine_part_checksums,
    parse_checksum_algorithm,
    parse_request_checksums,
    trailer_checksum_algorithm,
)
from grange.api.common.signature import checksum as ck

CHECK = b"123456789"
CHECK_VALUES = {
    ChecksumAlgorithm.CRC32: "cbf43926",
    ChecksumAlgorithm.CRC32C: "e3069283",
    ChecksumAlgorithm.CRC64NVME: "ae8b14860a799888",
    ChecksumAlgorithm.SHA1: "f7c3bc1d808e04732adf679965ccc34ca7ae3441",
    ChecksumAlgorithm.SHA256: "15e2b0d3c33891ebb0f1ef609ec419420c20e320ce94c65fbc8c3312448eb225",
    ChecksumAlgorithm.MD5: "25f9e794323b453885f5181f1b624d0b",
}


def test_check_values_of_123456789() -> None:
    calc = ChecksumCalculator(list(ChecksumAlgorithm))
    calc.update(CHECK)
    assert {alg: d.hex() for alg, d in calc.digests().items()} == CHECK_VALUES


def test_base64_forms() -> None:
    calc = ChecksumCalculator(["crc32", "crc32c", "crc64nvme", "sha1", "sha256", "md5"])
    calc.update(CHECK)
    out = calc.finalize()
    assert out["crc32"] == "y/Q5Jg=="
    assert out[ChecksumAlgorithm.CRC32C] == "4waSgw=="
    assert out["crc64nvme"] == "rosUhgp5mIg="
    for alg, hexdigest in CHECK_VALUES.items():
        assert base64.b64decode(out[alg]) == bytes.fromhex(hexdigest)


def test_empty_body() -> None:
    calc = ChecksumCalculator(list(ChecksumAlgorithm))
    digests = calc.digests()
    assert digests[ChecksumAlgorithm.CRC32] == b"\0\0\0\0"
    assert digests[ChecksumAlgorithm.CRC64NVME] == bytes(8)
    assert digests[ChecksumAlgorithm.SHA256] == hashlib.sha256(b"").digest()


def test_aws_chunked_example_crc32c() -> None:
    calc = ChecksumCalculator([ChecksumAlgorithm.CRC32C])
    calc.update(b"a" * 65536)
    calc.update(memoryview(b"a" * 1024))
    assert calc.finalize()[ChecksumAlgorithm.CRC32C] == "sOO8/Q=="


def test_pure_python_fallbacks_match_check_values() -> None:
    assert ck.crc32c_py(CHECK) == 0xE3069283
    assert ck.crc64nvme_py(CHECK) == 0xAE8B14860A799888
    assert ck.crc64nvme_py(CHECK[5:], ck.crc64nvme_py(CHECK[:5])) == 0xAE8B14860A799888


@settings(max_examples=100, deadline=None)
@given(data=st.binary(max_size=2000), cut=st.integers(0, 2000))
def test_incremental_equals_one_shot_and_fallbacks_agree(data: bytes, cut: int) -> None:
    one = ChecksumCalculator(list(ChecksumAlgorithm))
    one.update(data)
    split = ChecksumCalculator(list(ChecksumAlgorithm))
    split.update(data[:cut])
    split.update(data[cut:])
    digests = one.digests()
    assert digests == split.digests()
    assert int.from_bytes(digests[ChecksumAlgorithm.CRC32], "big") == zlib.crc32(data)
    assert int.from_bytes(digests[ChecksumAlgorithm.CRC32C], "big") == ck.crc32c_py(data)
    assert int.from_bytes(digests[ChecksumAlgorithm.CRC64NVME], "big") == ck.crc64nvme_py(data)


def test_botocore_agrees() -> None:
    httpchecksum = pytest.importorskip("botocore.httpchecksum")
    pytest.importorskip("awscrt")
    payload = bytes(range(256)) * 10
    calc = ChecksumCalculator(list(ChecksumAlgorithm))
    calc.update(payload)
    ours = calc.finalize()
    for alg, cls in [
        ("crc32", httpchecksum.Crc32Checksum),
        ("crc32c", httpchecksum.CrtCrc32cChecksum),
        ("crc64nvme", httpchecksum.CrtCrc64NvmeChecksum),
        ("sha1", httpchecksum.Sha1Checksum),
        ("sha256", httpchecksum.Sha256Checksum),
    ]:
        theirs = cls()
        theirs.update(payload)
        assert ours[alg] == theirs.b64digest(), alg


# ---- multipart ----


def test_composite_checksum() -> None:
    parts = [b"part one", b"part two", b"three"]
    raw = []
    for part in parts:
        calc = ChecksumCalculator([ChecksumAlgorithm.SHA256])
        calc.update(part)
        raw.append(calc.digests()[ChecksumAlgorithm.SHA256])
    expected = base64.b64encode(hashlib.sha256(b"".join(raw)).digest()).decode() + "-3"
    assert combine_part_checksums(ChecksumAlgorithm.SHA256, raw) == expected
    as_b64 = [base64.b64encode(r).decode() for r in raw]
    assert combine_part_checksums(ChecksumAlgorithm.SHA256, as_b64) == expected
    with pytest.raises(ValueError):
        combine_part_checksums(ChecksumAlgorithm.SHA256, [b"short"])


def test_composite_crc32() -> None:
    crcs = [zlib.crc32(p).to_bytes(4, "big") for p in (b"a", b"b")]
    expected = base64.b64encode(zlib.crc32(b"".join(crcs)).to_bytes(4, "big")).decode() + "-2"
    assert combine_part_checksums(ChecksumAlgorithm.CRC32, crcs) == expected


@contextlib.contextmanager
def awscrt_enabled(enabled: bool) -> Iterator[None]:
    """Run with or without awscrt's CRC functions (the pure-Python fallbacks)."""
    saved = ck._awscrt_checksums
    if enabled and saved is None:
        pytest.skip("awscrt is not installed")
    if not enabled:
        ck._awscrt_checksums = None
    try:
        yield
    finally:
        ck._awscrt_checksums = saved


@pytest.mark.parametrize("use_awscrt", [True, False])
@settings(max_examples=40, deadline=None)
@given(parts=st.lists(st.binary(max_size=300), min_size=1, max_size=5))
def test_full_object_crc_combination(use_awscrt: bool, parts: list[bytes]) -> None:
    with awscrt_enabled(use_awscrt):
        for alg in (ChecksumAlgorithm.CRC32, ChecksumAlgorithm.CRC32C, ChecksumAlgorithm.CRC64NVME):
            part_values = []
            for part in parts:
                calc = ChecksumCalculator([alg])
                calc.update(part)
                part_values.append((calc.finalize()[alg], len(part)))
            whole = ChecksumCalculator([alg])
            whole.update(b"".join(parts))
            assert combine_full_object_crc(alg, part_values) == whole.finalize()[alg]


def test_full_object_refuses_sha() -> None:
    with pytest.raises(ValueError):
        combine_full_object_crc(ChecksumAlgorithm.SHA256, [("x", 1)])


# ---- request headers ----


def _b64(alg: ChecksumAlgorithm, data: bytes) -> str:
    calc = ChecksumCalculator([alg])
    calc.update(data)
    return calc.finalize()[alg]


def test_parse_and_verify_headers() -> None:
    body = b"Welcome to Amazon S3."
    headers = {
        "content-md5": [_b64(ChecksumAlgorithm.MD5, body)],
        "x-amz-checksum-crc64nvme": [_b64(ChecksumAlgorithm.CRC64NVME, body)],
        "x-amz-sdk-checksum-algorithm": ["CRC64NVME"],
        "x-amz-checksum-type": ["FULL_OBJECT"],
    }
    checks = parse_request_checksums(headers)
    assert checks.algorithm is ChecksumAlgorithm.CRC64NVME
    assert checks.algorithms_to_compute() == {ChecksumAlgorithm.MD5, ChecksumAlgorithm.CRC64NVME}
    calc = ChecksumCalculator(checks.algorithms_to_compute())
    calc.update(body)
    checks.verify(calc.digests())

    other = ChecksumCalculator(checks.algorithms_to_compute())
    other.update(body + b"!")
    with pytest.raises(BadDigest) as err:
        checks.verify(other.digests())
    assert err.value.message == "The Content-MD5 you specified did not match what we received."


@pytest.mark.parametrize("alg", [a for a in ChecksumAlgorithm if a is not ChecksumAlgorithm.MD5])
def test_checksum_mismatch_message(alg: ChecksumAlgorithm) -> None:
    checks = parse_request_checksums({alg.header_name: [_b64(alg, b"expected")]})
    calc = ChecksumCalculator([alg])
    calc.update(b"received")
    with pytest.raises(BadDigest) as err:
        checks.verify(calc.digests())
    assert err.value.status == 400
    assert err.value.message == f"The {alg.aws_name} you specified did not match the calculated checksum."


@pytest.mark.parametrize("value", ["not base64!", "AAAA", base64.b64encode(b"x" * 17).decode()])
def test_invalid_content_md5(value: str) -> None:
    with pytest.raises(InvalidDigest) as err:
        parse_request_checksums({"content-md5": [value]})
    assert err.value.status == 400 and err.value.code == "InvalidDigest"


@pytest.mark.parametrize(
    ("headers", "message"),
    [
        ({"x-amz-checksum-crc32": ["AAAAAAAA"]}, "Value for x-amz-checksum-crc32 header is invalid."),
        ({"x-amz-checksum-sha256": ["%%%"]}, "Value for x-amz-checksum-sha256 header is invalid."),
        (
            {"x-amz-checksum-crc32": ["AAAAAA=="], "x-amz-checksum-crc32c": ["AAAAAA=="]},
            "Expecting a single x-amz-checksum- header. Multiple checksum Types are not allowed.",
        ),
        ({"x-amz-checksum-md4": ["AAAAAA=="]}, "not supported"),
        (
            {"x-amz-sdk-checksum-algorithm": ["MD5"]},
            "Value for x-amz-sdk-checksum-algorithm header is invalid.",
        ),
    ],
)
def test_invalid_checksum_headers(headers: dict[str, list[str]], message: str) -> None:
    with pytest.raises(InvalidRequest, match=message.replace(".", r"\.")):
        parse_request_checksums(headers)


def test_sdk_algorithm_must_match_the_value_header() -> None:
    with pytest.raises(BadDigest):
        parse_request_checksums(
            {"x-amz-checksum-crc32": ["AAAAAA=="], "x-amz-sdk-checksum-algorithm": ["SHA1"]}
        )


def test_trailer_announcements() -> None:
    assert trailer_checksum_algorithm(["x-amz-checksum-crc32c"]) is ChecksumAlgorithm.CRC32C
    assert trailer_checksum_algorithm(["x-amz-meta-foo"]) is None
    with pytest.raises(InvalidRequest):
        trailer_checksum_algorithm(["x-amz-checksum-crc32", "x-amz-checksum-sha1"])
    with pytest.raises(InvalidRequest):
        trailer_checksum_algorithm(["x-amz-checksum-whatever"])
    with pytest.raises(InvalidRequest, match="Expecting a single"):
        parse_request_checksums({"x-amz-checksum-crc32": ["AAAAAA=="]}, ["x-amz-checksum-crc32"])


def test_trailer_checksum_verification() -> None:
    checks = parse_request_checksums(
        {"x-amz-sdk-checksum-algorithm": ["crc32"], "x-amz-trailer": ["x-amz-checksum-crc32"]},
        ["x-amz-checksum-crc32"],
    )
    calc = ChecksumCalculator(checks.algorithms_to_compute())
    calc.update(b"abc")
    checks.verify(calc.digests(), {"x-amz-checksum-crc32": "NSRBwg=="})
    with pytest.raises(BadDigest, match="The CRC32 you specified"):
        checks.verify(calc.digests(), {"x-amz-checksum-crc32": "AAAAAA=="})
    with pytest.raises(InvalidRequest, match="trailing header is invalid"):
        checks.verify(calc.digests(), {"x-amz-checksum-crc32": "???"})
    with pytest.raises(InvalidRequest):
        checks.verify(calc.digests(), {})


def test_parse_checksum_algorithm() -> None:
    assert parse_checksum_algorithm("CRC64NVME") is ChecksumAlgorithm.CRC64NVME
    assert parse_checksum_algorithm(" sha256 ") is ChecksumAlgorithm.SHA256
    with pytest.raises(InvalidRequest, match="x-amz-checksum-algorithm"):
        parse_checksum_algorithm("xxhash64", header="x-amz-checksum-algorithm")
