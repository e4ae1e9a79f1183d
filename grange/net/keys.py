"""Node identity and the cluster's TLS trust, derived from `rpc_secret`.

Theory of operation (design §5):

- Every node owns an ed25519 key pair, created on first start in `metadata_dir`
  (`node_key`, PEM, mode 0600). The node id is the hex of its raw 32-byte public key.
- The *cluster CA* is an ed25519 key derived from `rpc_secret` with HKDF-SHA256 and a fixed
  label, so every holder of the secret derives the same CA and nobody else can. Each node
  signs a certificate for its own node key with that CA at start-up.
- Connections are mutual TLS 1.3 where the cluster CA is the only trust anchor. A valid
  chain proves the peer knows `rpc_secret`; TLS 1.3's CertificateVerify binds the peer's
  node key to this handshake's transcript (both nonces, both certificates), so the proof can
  be neither replayed nor relayed. The peer's node id is the public key in its certificate,
  which the dialler checks against the id it meant to reach.
- OpenSSL does all of the cryptography; nothing here is a home-made cipher or MAC.
"""

from __future__ import annotations

import datetime
import os
import ssl
import tempfile
from dataclasses import dataclass

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey
from cryptography.hazmat.primitives.kdf.hkdf import HKDF
from cryptography.x509.oid import NameOID

from grange.util.fsutil import write_file_atomic

NODE_KEY_FILE = "node_key"
_CA_LABEL = b"grange cluster CA v1"
_CA_NAME = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "grange cluster CA")])
# Fixed so that every node derives a byte-identical CA certificate from the same secret.
_CA_NOT_BEFORE = datetime.datetime(2020, 1, 1, tzinfo=datetime.UTC)
_CA_NOT_AFTER = datetime.datetime(9999, 12, 31, tzinfo=datetime.UTC)


class PeerIdentityError(Exception):
    """The peer proved the cluster secret but is not the node we meant to reach."""


def node_id_of(public_key: Ed25519PublicKey) -> str:
    return public_key.public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw).hex()


def load_or_create_node_key(metadata_dir: str) -> Ed25519PrivateKey:
    """The node's key: read from `metadata_dir/node_key`, or created there (mode 0600)."""
    path = os.path.join(metadata_dir, NODE_KEY_FILE)
    try:
        with open(path, "rb") as f:
            data = f.read()
    except FileNotFoundError:
        os.makedirs(metadata_dir, mode=0o700, exist_ok=True)
        key = Ed25519PrivateKey.generate()
        pem = key.private_bytes(
            serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
        )
        write_file_atomic(path, pem, mode=0o600)
        return key
    key = serialization.load_pem_private_key(data, password=None)
    if not isinstance(key, Ed25519PrivateKey):
        raise ValueError(f"{path} is not an ed25519 private key")
    return key


def read_node_id(metadata_dir: str) -> str | None:
    """The node id stored in `metadata_dir`, or None if the node was never started."""
    path = os.path.join(metadata_dir, NODE_KEY_FILE)
    try:
        with open(path, "rb") as f:
            key = serialization.load_pem_private_key(f.read(), password=None)
    except FileNotFoundError:
        return None
    assert isinstance(key, Ed25519PrivateKey)
    return node_id_of(key.public_key())


def _cluster_ca_key(rpc_secret: bytes) -> Ed25519PrivateKey:
    seed = HKDF(algorithm=hashes.SHA256(), length=32, salt=None, info=_CA_LABEL).derive(rpc_secret)
    return Ed25519PrivateKey.from_private_bytes(seed)


def _cluster_ca_cert(ca_key: Ed25519PrivateKey) -> x509.Certificate:
    pub = ca_key.public_key()
    return (
        x509.CertificateBuilder()
        .subject_name(_CA_NAME)
        .issuer_name(_CA_NAME)
        .public_key(pub)
        .serial_number(1)
        .not_valid_before(_CA_NOT_BEFORE)
        .not_valid_after(_CA_NOT_AFTER)
        .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
        .add_extension(
            x509.KeyUsage(False, False, False, False, False, True, True, False, False), critical=True
        )
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(pub), critical=False)
        .sign(ca_key, algorithm=None)
    )


def _node_cert(node_key: Ed25519PrivateKey, ca_key: Ed25519PrivateKey, ca_cert: x509.Certificate) -> x509.Certificate:
    pub = node_key.public_key()
    now = datetime.datetime.now(datetime.UTC)
    return (
        x509.CertificateBuilder()
        .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, node_id_of(pub))]))
        .issuer_name(ca_cert.subject)
        .public_key(pub)
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(days=1))
        .not_valid_after(now + datetime.timedelta(days=3650))
        .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(pub), critical=False)
        .add_extension(
            x509.AuthorityKeyIdentifier.from_issuer_public_key(ca_key.public_key()), critical=False
        )
        .sign(ca_key, algorithm=None)
    )


@dataclass(frozen=True)
class TlsIdentity:
    """Everything a node needs to dial and accept cluster connections."""

    node_key: Ed25519PrivateKey
    node_id: str
    server_context: ssl.SSLContext
    client_context: ssl.SSLContext


def _context(purpose: int, cert_pem: bytes, key_pem: bytes, ca_pem: bytes) -> ssl.SSLContext:
    ctx = ssl.SSLContext(purpose)
    ctx.minimum_version = ssl.TLSVersion.TLSv1_3
    ctx.check_hostname = False
    ctx.verify_mode = ssl.CERT_REQUIRED
    ctx.load_verify_locations(cadata=ca_pem.decode())
    # load_cert_chain only reads files: hand it a private temp dir that lives for one call.
    with tempfile.TemporaryDirectory(prefix="grange-tls-") as d:
        certfile, keyfile = os.path.join(d, "cert.pem"), os.path.join(d, "key.pem")
        with open(os.open(certfile, os.O_WRONLY | os.O_CREAT, 0o600), "wb") as f:
            f.write(cert_pem)
        with open(os.open(keyfile, os.O_WRONLY | os.O_CREAT, 0o600), "wb") as f:
            f.write(key_pem)
        ctx.load_cert_chain(certfile, keyfile)
    return ctx


def make_tls_identity(node_key: Ed25519PrivateKey, rpc_secret: bytes) -> TlsIdentity:
    ca_key = _cluster_ca_key(rpc_secret)
    ca_cert = _cluster_ca_cert(ca_key)
    cert = _node_cert(node_key, ca_key, ca_cert)
    cert_pem = cert.public_bytes(serialization.Encoding.PEM)
    ca_pem = ca_cert.public_bytes(serialization.Encoding.PEM)
    key_pem = node_key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    )
    return TlsIdentity(
        node_key=node_key,
        node_id=node_id_of(node_key.public_key()),
        server_context=_context(ssl.PROTOCOL_TLS_SERVER, cert_pem, key_pem, ca_pem),
        client_context=_context(ssl.PROTOCOL_TLS_CLIENT, cert_pem, key_pem, ca_pem),
    )


def peer_id_from_ssl(ssl_object: ssl.SSLObject | ssl.SSLSocket | None) -> str:
    """Node id proven by the peer's certificate (already verified against the cluster CA)."""
    if ssl_object is None:
        raise PeerIdentityError("connection is not TLS")
    der = ssl_object.getpeercert(binary_form=True)
    if not der:
        raise PeerIdentityError("peer presented no certificate")
    key = x509.load_der_x509_certificate(der).public_key()
    if not isinstance(key, Ed25519PublicKey):
        raise PeerIdentityError("peer certificate does not carry an ed25519 node key")
    return node_id_of(key)
