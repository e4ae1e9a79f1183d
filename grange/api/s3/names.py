"""Names on the S3 wire: bucket names, object keys, and vhost-style bucket resolution.

Bucket names follow the AWS rules already written in `grange.model.helpers` (shared with
the admin API, which must accept the same names): this module only turns their verdict
into S3 errors. Object keys are any Unicode string of at most `MAX_KEY_BYTES` bytes in
UTF-8 (AWS's limit; longer → ``KeyTooLongError``).

vhost-style (Garage `api/common/helpers.rs`, `[s3_api] root_domain`): the Host header's
authority loses its port (``[v6]:port`` handled) and is lower-cased; if its labels end with
the labels of ``root_domain`` (a leading dot in the setting is optional), what comes before
is the bucket name, dots included (``a.b.s3.example.com`` → ``a.b``). A host equal to the
root domain, or outside it, names no bucket (path-style then applies, as always).
"""

from __future__ import annotations

from grange.api.s3.errors import InvalidBucketName, InvalidRequest, KeyTooLongError
from grange.model.helpers import bucket_name_problem, valid_bucket_name

__all__ = [
    "MAX_KEY_BYTES",
    "authority_to_host",
    "check_bucket_name",
    "check_object_key",
    "host_to_bucket",
    "valid_bucket_name",
    "vhost_bucket",
]

#: AWS: "The name for a key is a sequence of Unicode characters whose UTF-8 encoding is at
#: most 1,024 bytes long."
MAX_KEY_BYTES = 1024


def check_bucket_name(name: str, *, allow_punycode: bool = False) -> None:
    """Raise ``InvalidBucketName`` (with the reason) unless `name` follows the AWS rules."""
    problem = bucket_name_problem(name, allow_punycode=allow_punycode)
    if problem is not None:
        raise InvalidBucketName(f"The specified bucket is not valid: a bucket name {problem}",
                                bucket_name=name)


def check_object_key(key: str) -> None:
    """Raise ``KeyTooLongError`` if `key` is over `MAX_KEY_BYTES` in UTF-8.

    Keys cannot hold lone surrogates (they come from strict UTF-8 decoding); if one does
    anyway, it is a bad request rather than a crash.
    """
    try:
        size = len(key.encode("utf-8"))
    except UnicodeEncodeError as e:
        raise InvalidRequest("Object key is not valid UTF-8") from e
    if size > MAX_KEY_BYTES:
        raise KeyTooLongError(size=size, max_size_allowed=MAX_KEY_BYTES)


def authority_to_host(authority: str) -> str:
    """The host part of a Host header, lower-cased, without port (``[::1]:3900`` → ``[::1]``).

    Raises ``InvalidRequest`` for an empty or malformed authority (Garage `authority_to_host`).
    """
    if not authority:
        raise InvalidRequest("Authority is empty")
    if authority.startswith("["):
        end = authority.find("]")
        if end < 0 or (end + 1 < len(authority) and authority[end + 1] != ":"):
            raise InvalidRequest(f"Authority {authority} has an illegal format")
        host = authority[: end + 1]
    else:
        host = authority.split(":", 1)[0]
    return host.lower()


def host_to_bucket(host: str, root_domain: str) -> str | None:
    """The bucket named by `host` under `root_domain`, or None (Garage `host_to_bucket`).

    `host` is a host without port; comparison is case-insensitive and ignores a trailing dot.
    """
    root = root_domain.lower().strip(".")
    host = host.lower().rstrip(".")
    if not root or not host.endswith("." + root):
        return None
    bucket = host[: -len(root) - 1]
    return bucket or None


def vhost_bucket(host_header: str | None, root_domain: str | None) -> str | None:
    """The bucket of a vhost-style request, from the raw Host header; None when path-style."""
    if not host_header or not root_domain:
        return None
    return host_to_bucket(authority_to_host(host_header), root_domain)
