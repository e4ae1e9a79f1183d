"""aws-chunked decoder: AWS's chunked-upload examples, three ways of feeding, every refusal.

Signed bodies are built here independently of the decoder (plain hmac), and the AWS examples
("Transferring Payload in Multiple Chunks", "Including Trailing Headers": 65 KiB of 'a' in
chunks of 64 KiB and 1 KiB, key AKIAIOSFODNN7EXAMPLE, us-east-1, 20130524T000000Z) pin the
exact chunk and trailer signatures. Unsigned bodies come from botocore's own encoder when it is
installed, since that is what boto3 and the aws CLI send.
"""

from __future__ import annotations

import hashlib
import hmac
import io

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from grange.api.common.signature import (
    AwsChunkedDecoder,
    AwsChunkedError,
    ChecksumAlgorithm,
    ChecksumCalculator,
    Data,
    End,
    IncompleteBody,
    InvalidRequest,
    NeedData,
    PayloadMode,
    SignatureDoesNotMatch,
    Trailers,
    parse_request_checksums,
    strip_aws_chunked,
    verify_request,
)
from grange.api.common.signature.canonical import signing_key
from grange.api.common.signature.errors import ChunkTooLarge

SK = "wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY"
KEY = signing_key(SK, "20130524", "us-east-1", "s3")
SCOPE = "20130524/us-east-1/s3/aws4_request"
DATE = "20130524T000000Z"
EMPTY = hashlib.sha256(b"").hexdigest()

SEED = "4f232c4386841ef735655705268965c44a0e4690baa4adea153f7db9fa80a0a9"
AWS_CHUNK_SIGS = [
    "ad80c730a21e5b8d04586a2213dd63b9a0e99e0e2307b0ade35a65485a288648",
    "0055627c9e194cb4542bae2aa5492e3c1575bbb81b612b7d234b86a503ef5497",
    "b6c6ea8a5354eaf15b3cb7646744f4275b71ea724fed81ceb9323e279d449df9",
]
TRAILER_SEED = "106e2a8a18243abcf37539882f36619c00e2dfc72633413f02d3b74544bfeb8e"
AWS_TRAILER_CHUNK_SIGS = [
    "b474d8862b1487a5145d686f57f013e54db672cee1c953b3010fb58501ef5aa2",
    "1c1344b170168f8e65b41376b44b20fe354e373826ccbbe2c1d40a8cae51e5c7",
    "2ca2aba2005185cf7159c6277faf83795951dd77a3a99e6e65d5c9f85863f992",
]
AWS_TRAILER_SIG = "d81f82fc3505edab99d459891051a732e8730629a2e4a59689829ca17fe2e435"
AWS_CHUNKS = [b"a" * 65536, b"a" * 1024]


def _hmac_hex(text: str) -> str:
    return hmac.new(KEY, text.encode(), hashlib.sha256).hexdigest()


def signed_body(
    chunks: list[bytes], seed: str, trailers: list[tuple[str, str]] | None = None
) -> tuple[bytes, list[str]]:
    """Encode `chunks` (plus the final empty one) the way the AWS documentation describes."""
    out, sigs, prev = [], [], seed
    for data in [*chunks, b""]:
        sts = "\n".join(
            ["AWS4-HMAC-SHA256-PAYLOAD", DATE, SCOPE, prev, EMPTY, hashlib.sha256(data).hexdigest()]
        )
        prev = _hmac_hex(sts)
        sigs.append(prev)
        out.append(b"%x;chunk-signature=%s\r\n" % (len(data), prev.encode()))
        if data:
            out.append(data + b"\r\n")
    if trailers is None:
        out.append(b"\r\n")
    else:
        canonical = "".join(f"{k}:{v}\n" for k, v in sorted(trailers)) or "\n"
        sts = "\n".join(
            ["AWS4-HMAC-SHA256-TRAILER", DATE, SCOPE, prev, hashlib.sha256(canonical.encode()).hexdigest()]
        )
        sigs.append(_hmac_hex(sts))
        out.extend(f"{k}:{v}\r\n".encode() for k, v in trailers)
        out.append(f"x-amz-trailer-signature:{sigs[-1]}\r\n\r\n".encode())
    return b"".join(out), sigs


def unsigned_body(chunks: list[bytes], trailers: list[tuple[str, str]]) -> bytes:
    out = [b"%x\r\n%s\r\n" % (len(c), c) for c in chunks if c]
    out.append(b"0\r\n")
    out.extend(f"{k}:{v}\r\n".encode() for k, v in trailers)
    out.append(b"\r\n")
    return b"".join(out)


def signed_decoder(seed: str = SEED, trailer_names=(), **kwargs) -> AwsChunkedDecoder:
    mode = PayloadMode.STREAMING_SIGNED_TRAILER if trailer_names else PayloadMode.STREAMING_SIGNED
    return AwsChunkedDecoder(mode, seed, KEY, SCOPE, DATE, trailer_names, **kwargs)


def unsigned_decoder(trailer_names=("x-amz-checksum-crc32",)) -> AwsChunkedDecoder:
    return AwsChunkedDecoder(PayloadMode.STREAMING_UNSIGNED_TRAILER, trailer_names=trailer_names)


def drain(decoder: AwsChunkedDecoder, events: list) -> None:
    while not (events and isinstance(events[-1], End)):
        event = decoder.next_event()
        if isinstance(event, NeedData):
            return
        events.append(event)
        if isinstance(event, End):
            return


def decode(decoder: AwsChunkedDecoder, pieces) -> list:
    events: list = []
    for piece in pieces:
        decoder.feed(piece)
        drain(decoder, events)
    decoder.eof()
    if events and isinstance(events[-1], End):
        assert isinstance(decoder.next_event(), End)  # or raises, for data after the end
    else:
        drain(decoder, events)
    return events


def whole(body: bytes) -> list[bytes]:
    return [body]


def bytewise(body: bytes) -> list[bytes]:
    return [body[i : i + 1] for i in range(len(body))]


def merged(events: list) -> tuple[bytes, list]:
    """Concatenated Data, and the other events in order."""
    data = b"".join(e.data for e in events if isinstance(e, Data))
    return data, [e for e in events if not isinstance(e, Data)]


# ---- AWS examples ----


def test_aws_example_chunk_signatures_and_length() -> None:
    body, sigs = signed_body(AWS_CHUNKS, SEED)
    assert sigs == AWS_CHUNK_SIGS
    assert len(body) == 66824  # the example's Content-Length


def test_aws_example_trailer_signatures() -> None:
    body, sigs = signed_body(AWS_CHUNKS, TRAILER_SEED, [("x-amz-checksum-crc32c", "sOO8/Q==")])
    assert sigs == [*AWS_TRAILER_CHUNK_SIGS, AWS_TRAILER_SIG]


@pytest.mark.parametrize("split", [whole, bytewise], ids=["whole", "bytewise"])
def test_signed_body_decodes(split) -> None:
    body, _ = signed_body(AWS_CHUNKS, SEED)
    decoder = signed_decoder()
    events = decode(decoder, split(body))
    assert events == [Data(AWS_CHUNKS[0]), Data(AWS_CHUNKS[1]), End()]
    assert decoder.decoded_length == 66560
    assert decoder.done and decoder.trailing_data == b""


@pytest.mark.parametrize("split", [whole, bytewise], ids=["whole", "bytewise"])
def test_signed_trailer_body_decodes_and_checksum_verifies(split) -> None:
    body, _ = signed_body(AWS_CHUNKS, TRAILER_SEED, [("x-amz-checksum-crc32c", "sOO8/Q==")])
    events = decode(signed_decoder(TRAILER_SEED, ("x-amz-checksum-crc32c",)), split(body))
    assert events == [
        Data(AWS_CHUNKS[0]),
        Data(AWS_CHUNKS[1]),
        Trailers({"x-amz-checksum-crc32c": "sOO8/Q=="}),
        End(),
    ]
    expected = parse_request_checksums({}, ("x-amz-checksum-crc32c",))
    calc = ChecksumCalculator(expected.algorithms_to_compute())
    for chunk in AWS_CHUNKS:
        calc.update(chunk)
    expected.verify(calc.digests(), events[2].trailers)


def test_trailing_bytes_are_left_and_refused_at_eof() -> None:
    body, _ = signed_body(AWS_CHUNKS, SEED)
    decoder = signed_decoder()
    decoder.feed(body + b"GARBAGE")
    events: list = []
    drain(decoder, events)
    assert events == [Data(AWS_CHUNKS[0]), Data(AWS_CHUNKS[1]), End()]
    assert decoder.trailing_data == b"GARBAGE"
    assert isinstance(decoder.next_event(), End)
    decoder.eof()
    with pytest.raises(InvalidRequest):
        decoder.next_event()


@pytest.mark.parametrize("split", [whole, bytewise], ids=["whole", "bytewise"])
def test_trailing_bytes_after_trailers(split) -> None:
    body = unsigned_body([b"hello"], [("x-amz-checksum-crc32", "NhCmhg==")])
    decoder = unsigned_decoder()
    events: list = []
    for piece in split(body + b"\r\n"):
        decoder.feed(piece)
        drain(decoder, events)
    data, rest = merged(events)
    assert data == b"hello" and rest == [Trailers({"x-amz-checksum-crc32": "NhCmhg=="}), End()]
    assert decoder.trailing_data == b"\r\n"


# ---- unsigned (boto3 / aws CLI default) ----


def test_unsigned_trailer_from_botocore_encoder() -> None:
    httpchecksum = pytest.importorskip("botocore.httpchecksum")
    payload = bytes(range(256)) * 50
    wrapper = httpchecksum.AwsChunkedWrapper(
        io.BytesIO(payload),
        checksum_cls=httpchecksum.Crc32Checksum,
        checksum_name="x-amz-checksum-crc32",
        chunk_size=4096,
    )
    body = wrapper.read()
    for split in (whole, bytewise):
        decoder = unsigned_decoder()
        data, rest = merged(decode(decoder, split(body)))
        assert data == payload
        assert decoder.decoded_length == len(payload)
        assert rest[-1] == End() and isinstance(rest[0], Trailers)
        checks = parse_request_checksums({}, ("x-amz-checksum-crc32",))
        calc = ChecksumCalculator([ChecksumAlgorithm.CRC32])
        calc.update(data)
        checks.verify(calc.digests(), rest[0].trailers)


def test_unsigned_data_streams_before_chunk_completes() -> None:
    decoder = unsigned_decoder(())
    decoder.feed(b"100000\r\n" + b"x" * 1000)
    assert decoder.next_event() == Data(b"x" * 1000)
    assert isinstance(decoder.next_event(), NeedData)
    decoder.feed(b"y" * 10)
    assert decoder.next_event() == Data(b"y" * 10)


def test_signed_data_is_held_until_its_signature_verifies() -> None:
    body, _ = signed_body([b"z" * 5000], SEED)
    decoder = signed_decoder()
    header_len = body.index(b"\r\n") + 2
    decoder.feed(body[: header_len + 4999])
    assert isinstance(decoder.next_event(), NeedData)
    decoder.feed(body[header_len + 4999 :])
    assert decoder.next_event() == Data(b"z" * 5000)


def test_unsigned_trailer_without_trailers() -> None:
    events = decode(unsigned_decoder(()), [b"3\r\nabc\r\n0\r\n\r\n"])
    assert events == [Data(b"abc"), Trailers({}), End()]


def test_trailer_line_with_extra_newline_is_tolerated() -> None:
    body, _ = signed_body([b"abc"], SEED, [("x-amz-checksum-crc32", "NSRBwg==")])
    body = body.replace(b"NSRBwg==\r\n", b"NSRBwg==\n\r\n")
    events = decode(signed_decoder(SEED, ("x-amz-checksum-crc32",)), [body])
    assert events[-2:] == [Trailers({"x-amz-checksum-crc32": "NSRBwg=="}), End()]


# ---- truncation ----


def _truncations(body: bytes, decoder_factory, lenient_cuts: set[int]) -> None:
    for cut in range(len(body)):
        decoder = decoder_factory()
        if cut in lenient_cuts:
            assert isinstance(decode(decoder, [body[:cut]])[-1], End)
            continue
        with pytest.raises(IncompleteBody) as err:
            decode(decoder, [body[:cut]])
        assert err.value.status == 400 and isinstance(err.value, AwsChunkedError)


def test_truncated_signed_body_is_incomplete_at_eof() -> None:
    body, _ = signed_body([b"abcdef", b"gh"], SEED)
    # the CRLF after the final chunk may be missing altogether
    _truncations(body, signed_decoder, {len(body) - 2})


def test_truncated_trailer_bodies_are_incomplete_at_eof() -> None:
    body = unsigned_body([b"abcdef"], [("x-amz-checksum-crc32", "S2hJtA==")])
    # the closing blank line may be missing, after a complete last line
    _truncations(body, unsigned_decoder, {len(body) - 2})
    signed, _ = signed_body([b"abcdef"], SEED, [("x-amz-checksum-crc32", "S2hJtA==")])
    _truncations(signed, lambda: signed_decoder(SEED, ("x-amz-checksum-crc32",)), {len(signed) - 2})


# ---- corruption ----


def test_corrupted_chunk_signature() -> None:
    body, sigs = signed_body(AWS_CHUNKS, SEED)
    last = "1" if sigs[1][-1] == "0" else "0"
    bad = body.replace(sigs[1].encode(), (sigs[1][:-1] + last).encode())
    decoder = signed_decoder()
    decoder.feed(bad)
    assert decoder.next_event() == Data(AWS_CHUNKS[0])
    with pytest.raises(SignatureDoesNotMatch) as err:
        decoder.next_event()
    assert err.value.status == 403 and err.value.code == "SignatureDoesNotMatch"
    with pytest.raises(SignatureDoesNotMatch):  # sticky
        decoder.next_event()


def test_corrupted_chunk_data() -> None:
    body, _ = signed_body(AWS_CHUNKS, SEED)
    bad = bytearray(body)
    bad[200] ^= 1
    decoder = signed_decoder()
    decoder.feed(bytes(bad))
    with pytest.raises(SignatureDoesNotMatch):
        decoder.next_event()


def test_wrong_seed_fails_first_chunk() -> None:
    body, _ = signed_body([b"abc"], SEED)
    with pytest.raises(SignatureDoesNotMatch):
        decode(signed_decoder("0" * 64), [body])


def test_corrupted_final_chunk_and_trailer() -> None:
    body, sigs = signed_body([b"abc"], SEED)
    with pytest.raises(SignatureDoesNotMatch):
        decode(signed_decoder(), [body.replace(sigs[-1].encode(), b"f" * 64)])
    body, sigs = signed_body([b"abc"], SEED, [("x-amz-checksum-crc32", "NSRBwg==")])
    with pytest.raises(SignatureDoesNotMatch):
        decode(signed_decoder(SEED, ("x-amz-checksum-crc32",)), [body.replace(b"NSRBwg==", b"AAAAAA==")])


def test_oversize_signed_chunk_refused_before_buffering() -> None:
    decoder = signed_decoder(max_chunk_size=1024 * 1024)
    decoder.feed(b"100001;chunk-signature=" + b"0" * 64 + b"\r\n")
    with pytest.raises(ChunkTooLarge) as err:
        decoder.next_event()
    assert isinstance(err.value, InvalidRequest) and isinstance(err.value, AwsChunkedError)


@pytest.mark.parametrize(
    ("decoder_factory", "body"),
    [
        (unsigned_decoder, b"3\r\nabcX\r\n0\r\n\r\n"),  # no CRLF after data
        (unsigned_decoder, b"zz\r\nabc\r\n"),  # bad hex size
        (unsigned_decoder, b"3\nabc\r\n"),  # header without CR
        (unsigned_decoder, b"-3\r\nabc\r\n"),
        (unsigned_decoder, b"12345678901234567\r\n"),  # more than 16 hex digits
        (unsigned_decoder, b"0\r\nx-amz-checksum-sha1:abc\r\n\r\n"),  # undeclared trailer
        (unsigned_decoder, b"0\r\nx-amz-checksum-crc32\r\n\r\n"),  # no colon
        (unsigned_decoder, b"0\r\n\r\n"),  # declared trailer missing
        (unsigned_decoder, b"0\r\nx-amz-checksum-crc32:a\r\nx-amz-checksum-crc32:a\r\n\r\n"),
        (unsigned_decoder, b"0\r\nx-amz-trailer-signature:" + b"0" * 64 + b"\r\n\r\n"),
        (unsigned_decoder, b"1" * 5000),  # header line too long
        (signed_decoder, b"3\r\nabc\r\n"),  # no chunk-signature
        (signed_decoder, b"3;chunk-signature=abc\r\nabc\r\n"),
        (signed_decoder, b"3;foo=" + b"0" * 64 + b"\r\nabc\r\n"),
        (lambda: signed_decoder(), signed_body([b"a"], SEED)[0][:-2] + b"XY"),  # junk after final chunk
    ],
)
def test_malformed_framing_is_invalid_request(decoder_factory, body: bytes) -> None:
    with pytest.raises(InvalidRequest) as err:
        decode(decoder_factory(), [body])
    assert isinstance(err.value, AwsChunkedError) and err.value.status == 400


def test_feed_after_eof_is_a_caller_bug() -> None:
    decoder = unsigned_decoder()
    decoder.eof()
    with pytest.raises(RuntimeError):
        decoder.feed(b"x")


def test_strip_aws_chunked() -> None:
    assert strip_aws_chunked("aws-chunked") is None
    assert strip_aws_chunked("aws-chunked,gzip") == "gzip"
    assert strip_aws_chunked("gzip, aws-chunked") == "gzip"
    assert strip_aws_chunked(None) is None


# ---- properties ----


def _decode_or_peer_error(decoder: AwsChunkedDecoder, pieces) -> list | None:
    try:
        return decode(decoder, pieces)
    except AwsChunkedError:
        return None


@settings(max_examples=300, deadline=None)
@given(data=st.binary(max_size=300), signed=st.booleans(), cut=st.integers(0, 300))
def test_random_bytes_parse_or_raise_peer_error(data: bytes, signed: bool, cut: int) -> None:
    factory = signed_decoder if signed else unsigned_decoder
    _decode_or_peer_error(factory(), [data])
    _decode_or_peer_error(factory(), [data[:cut], data[cut:]])


@st.composite
def valid_unsigned_bodies(draw):
    chunks = draw(st.lists(st.binary(min_size=1, max_size=40), max_size=5))
    return chunks, unsigned_body(chunks, [("x-amz-checksum-crc32", "AAAAAA==")])


@settings(max_examples=200, deadline=None)
@given(case=valid_unsigned_bodies(), cuts=st.lists(st.integers(0, 400), max_size=6))
def test_any_split_gives_the_same_data(case, cuts: list[int]) -> None:
    chunks, body = case
    bounds = sorted({0, len(body), *(c % (len(body) + 1) for c in cuts)})
    pieces = [body[a:b] for a, b in zip(bounds, bounds[1:], strict=False)]
    data, rest = merged(decode(unsigned_decoder(), pieces))
    assert data == b"".join(chunks)
    assert rest == [Trailers({"x-amz-checksum-crc32": "AAAAAA=="}), End()]


@settings(max_examples=200, deadline=None)
@given(
    chunks=st.lists(st.binary(min_size=1, max_size=30), min_size=1, max_size=3),
    position=st.integers(0, 10_000),
    xor=st.integers(1, 255),
)
def test_any_flipped_byte_in_a_signed_body_is_refused(chunks: list[bytes], position: int, xor: int) -> None:
    body, _ = signed_body(chunks, SEED, [("x-amz-checksum-crc32", "AAAAAA==")])
    bad = bytearray(body)
    index = position % len(bad)
    bad[index] ^= xor
    decoder = signed_decoder(SEED, ("x-amz-checksum-crc32",))
    events = _decode_or_peer_error(decoder, [bytes(bad)])
    if events is not None:
        # only case-insensitive hex digits and tolerated line endings may change harmlessly
        data, rest = merged(events)
        assert data == b"".join(chunks)
        assert rest[-1] == End()


def test_end_to_end_from_verified_request() -> None:
    """The AWS trailer example: header verification hands the decoder its seed and key."""
    credential = "AKIAIOSFODNN7EXAMPLE/20130524/us-east-1/s3/aws4_request"
    signed = (
        "content-encoding;host;x-amz-content-sha256;x-amz-date;x-amz-decoded-content-length;"
        "x-amz-storage-class;x-amz-trailer"
    )
    headers = {
        "Host": "s3.amazonaws.com",
        "x-amz-date": DATE,
        "x-amz-storage-class": "REDUCED_REDUNDANCY",
        "x-amz-content-sha256": "STREAMING-AWS4-HMAC-SHA256-PAYLOAD-TRAILER",
        "Content-Encoding": "aws-chunked",
        "x-amz-decoded-content-length": "66560",
        "x-amz-trailer": "x-amz-checksum-crc32c",
        "Authorization": f"AWS4-HMAC-SHA256 Credential={credential},SignedHeaders={signed},"
        f"Signature={TRAILER_SEED}",
    }
    verified = verify_request(
        "PUT",
        "/examplebucket/chunkObject.txt",
        [],
        headers,
        {"AKIAIOSFODNN7EXAMPLE": SK}.get,
        region="us-east-1",
        now_s=1369353600,
    )
    body, _ = signed_body(AWS_CHUNKS, TRAILER_SEED, [("x-amz-checksum-crc32c", "sOO8/Q==")])
    decoder = verified.chunked_decoder()
    data, rest = merged(decode(decoder, [body[i : i + 8192] for i in range(0, len(body), 8192)]))
    assert decoder.decoded_length == verified.decoded_content_length == len(data)
    checks = parse_request_checksums({}, verified.trailer_names)
    calc = ChecksumCalculator(checks.algorithms_to_compute())
    calc.update(data)
    checks.verify(calc.digests(), rest[0].trailers)
