"""The node's configuration: Garage's TOML file, read once into typed, validated objects.

Why: a Garage operator must be able to point Grange at their ``garage.toml`` and get the same
node (design §11). So every key keeps Garage v2's spelling and meaning (Garage
``src/util/config.rs``, ``src/garage/secrets.rs``, ``src/rpc/replication_mode.rs``), and the
file is read exactly once at start-up (conventions, "Config read once"): everything below
receives a ``Config`` or one of its sections and never reads the file or the environment again.

Key policy, stricter than Garage (which silently ignores unknown keys):

- a key Garage v2 (up to v2.4) knows and Grange uses is parsed and validated;
- a key Garage knows but Grange does not implement yet (``NOT_YET_SUPPORTED``) is still
  validated, then ignored with a line in ``Config.warnings`` that the server logs once; a
  boolean set to ``false`` asks for nothing and is not reported;
- a key only older Garage versions knew (``OBSOLETE_KEYS``, e.g. ``sled_cache_capacity`` or
  ``[s3_web] index`` seen in configs in the wild) is ignored with a warning, as Garage v2
  ignores it;
- any other key is refused with one line naming it and the closest known key, since a typo
  (``rpc_secrte``) silently ignored costs an operator an afternoon.

Invalid values are refused with one line naming the key and what is expected. Secrets are
never echoed in messages or in ``repr()``.

Guarantees of a returned ``Config``: required keys are present; sizes are byte counts;
``metadata_dir``, ``data_dir`` paths, secret file paths and ``metadata_snapshots_dir`` are
absolute (a relative path is taken relative to the current directory at load time, which is
what Garage does implicitly when it uses the path as given); ``rpc_secret_bytes`` is 32 bytes
unless ``require_secret=False`` was passed and no secret was configured.

Environment (``GRANGE_*`` names, or Garage's ``GARAGE_*`` spellings; for each secret, if
either ``GRANGE_`` variable of the pair is set, the ``GARAGE_`` pair is not looked at):
``GRANGE_CONFIG_FILE``, ``GRANGE_RPC_SECRET[_FILE]``, ``GRANGE_ADMIN_TOKEN[_FILE]``,
``GRANGE_METRICS_TOKEN[_FILE]``, ``GRANGE_ALLOW_WORLD_READABLE_SECRETS``. As in Garage, a
secret given in the environment replaces the one in the file.
"""

from __future__ import annotations

import difflib
import ipaddress
import json
import os
import re
import stat
import tomllib
from collections.abc import Mapping
from typing import Any

import msgspec

from grange.util.addr import split_host_port
from grange.util.sizes import MIB, TIB, parse_duration, parse_size

__all__ = [
    "ConfigError",
    "Config",
    "DataDir",
    "S3ApiConfig",
    "S3WebConfig",
    "K2vApiConfig",
    "AdminConfig",
    "ConsulDiscoveryConfig",
    "KubernetesDiscoveryConfig",
    "load_config",
    "parse_config",
    "split_host_port",
    "parse_peer_addr",
    "read_secret_file",
    "TOP_LEVEL_KEYS",
    "SECTION_KEYS",
    "DATA_DIR_KEYS",
    "ALL_KEYS",
    "NOT_YET_SUPPORTED",
    "OBSOLETE_KEYS",
    "DEFAULT_CONFIG_FILE",
]


class ConfigError(Exception):
    """A one-line, human message naming what is wrong in the configuration.

    The CLI prints ``error: <message>`` and exits with status 2, without a traceback.
    """


# ---------------------------------------------------------------------------------------------
# Every key Garage v2 knows (v2.0, plus v2.1-v2.4 keys of reference §8), by section.
# When changing these tables, keep in step: the Struct fields below, _Parser.parse(), and
# NOT_YET_SUPPORTED (remove a key from it in the same change that makes Grange honour it).

TOP_LEVEL_KEYS: frozenset[str] = frozenset(
    {
        "metadata_dir",
        "data_dir",
        "metadata_fsync",
        "data_fsync",
        "disable_scrub",
        "use_local_tz",
        "metadata_snapshots_dir",
        "metadata_auto_snapshot_interval",
        "block_size",
        "block_ram_buffer_max",
        "block_max_concurrent_reads",  # v2.1
        "block_max_concurrent_writes_per_request",  # v2.2
        "replication_factor",
        "consistency_mode",
        "replication_mode",  # legacy, mapped to replication_factor + consistency_mode
        "compression_level",
        "allow_world_readable_secrets",
        "rpc_secret",
        "rpc_secret_file",
        "rpc_bind_addr",
        "rpc_bind_outgoing",
        "rpc_public_addr",
        "rpc_public_addr_subnet",
        "rpc_ping_timeout_msec",
        "rpc_timeout_msec",
        "bootstrap_peers",
        "db_engine",
        "lmdb_map_size",
        "fjall_block_cache_size",  # v2.1
        "allow_punycode",
    }
)

SECTION_KEYS: dict[str, frozenset[str]] = {
    "s3_api": frozenset({"api_bind_addr", "s3_region", "root_domain"}),
    "s3_web": frozenset({"bind_addr", "root_domain", "add_host_to_metrics"}),
    "k2v_api": frozenset({"api_bind_addr"}),
    "admin": frozenset(
        {
            "api_bind_addr",
            "admin_token",
            "admin_token_file",
            "metrics_token",
            "metrics_token_file",
            "metrics_require_token",
            "trace_sink",
        }
    ),
    "consul_discovery": frozenset(
        {
            "api",
            "consul_http_addr",
            "service_name",
            "ca_cert",
            "client_cert",
            "client_key",
            "token",
            "tls_skip_verify",
            "tags",
            "meta",
        }
    ),
    "kubernetes_discovery": frozenset({"namespace", "service_name", "skip_crd"}),
}

DATA_DIR_KEYS: frozenset[str] = frozenset({"path", "capacity", "read_only"})

ALL_KEYS: frozenset[str] = TOP_LEVEL_KEYS | frozenset(
    f"{section}.{key}" for section, keys in SECTION_KEYS.items() for key in keys
)

# Known to Garage, not implemented by Grange yet: validated, then ignored with a warning.
# Names are dotted for section keys; a bare section name covers the whole section.
NOT_YET_SUPPORTED: frozenset[str] = frozenset(
    {
        "metadata_snapshots_dir",
        "metadata_auto_snapshot_interval",
        "rpc_bind_outgoing",
        "rpc_public_addr_subnet",
        "fjall_block_cache_size",
        "block_max_concurrent_reads",
        "block_max_concurrent_writes_per_request",
        "admin.trace_sink",
        "consul_discovery",
        "kubernetes_discovery",
    }
)

# Keys of Garage before v1.0 that v2 silently ignores; operators' old files still carry them.
OBSOLETE_KEYS: frozenset[str] = frozenset(
    {
        "sled_cache_capacity",
        "sled_flush_every_ms",
        "block_manager_background_tranquility",
        "consul_host",
        "consul_service_name",
        "kubernetes_namespace",
        "kubernetes_service_name",
        "kubernetes_skip_crd",
        "s3_web.index",
        "consul_discovery.consul_host",
    }
)

DEFAULT_CONFIG_FILE = "/etc/grange.toml"

# Defaults, from Garage v2's src/util/config.rs and src/net (netapp) unless said otherwise.
BLOCK_SIZE_DEFAULT = 1 * MIB
BLOCK_RAM_BUFFER_MAX_DEFAULT = 256 * MIB
LMDB_MAP_SIZE_DEFAULT = 1 * TIB  # Garage's recommended_map_size() on 64-bit hosts
COMPRESSION_LEVEL_DEFAULT = 1
RPC_PING_TIMEOUT_MSEC_DEFAULT = 10_000
RPC_TIMEOUT_MSEC_DEFAULT = 300_000
BLOCK_MAX_CONCURRENT_READS_DEFAULT = 16  # Garage v2.1
BLOCK_MAX_CONCURRENT_WRITES_PER_REQUEST_DEFAULT = 10  # Garage v2.2
# zstd's level range; python-zstandard raises outside it where Rust's zstd clamps silently.
ZSTD_LEVEL_MIN, ZSTD_LEVEL_MAX = -131072, 22
# Garage refuses secret files with any group or other permission bit (secrets.rs, mode & 0o077).
SECRET_FILE_FORBIDDEN_MODE_BITS = 0o077

DB_ENGINES = ("lmdb", "sqlite")
_DB_ENGINE_ALIASES = {
    "lmdb": "lmdb",
    "heed": "lmdb",
    "sqlite": "sqlite",
    "sqlite3": "sqlite",
    "rusqlite": "sqlite",
}
CONSISTENCY_MODES = ("consistent", "degraded", "dangerous")
# Garage's legacy replication_mode values -> (replication_factor, consistency_mode).
LEGACY_REPLICATION_MODES: dict[str, tuple[int, str]] = {
    "none": (1, "consistent"),
    "1": (1, "consistent"),
    "2": (2, "consistent"),
    "2-dangerous": (2, "dangerous"),
    "3": (3, "consistent"),
    "3-degraded": (3, "degraded"),
    "3-dangerous": (3, "dangerous"),
}


# ---------------------------------------------------------------------------------------------
# Typed configuration. Field names are Garage's key names; sizes are in bytes.


def _redacted_repr(obj: msgspec.Struct, secret_fields: frozenset[str]) -> str:
    parts = []
    for name in obj.__struct_fields__:
        value = getattr(obj, name)
        shown = "'<redacted>'" if name in secret_fields and value is not None else repr(value)
        parts.append(f"{name}={shown}")
    return f"{type(obj).__name__}({', '.join(parts)})"


class DataDir(msgspec.Struct, frozen=True, kw_only=True):
    """One data directory. In the single-path form of ``data_dir`` capacity is None (the
    whole node capacity comes from the layout); in the list form an active directory always
    has a capacity in bytes and a read-only one (``read_only = true``, blocks only read and
    moved away) has none."""

    path: str
    capacity: int | None = None
    read_only: bool = False


class S3ApiConfig(msgspec.Struct, frozen=True, kw_only=True):
    api_bind_addr: str | None = None  # "HOST:PORT" or an absolute unix socket path; None: no S3
    s3_region: str = "garage"
    root_domain: str | None = None  # vhost-style requests are off when None


class S3WebConfig(msgspec.Struct, frozen=True, kw_only=True):
    bind_addr: str
    root_domain: str
    add_host_to_metrics: bool = False


class K2vApiConfig(msgspec.Struct, frozen=True, kw_only=True):
    api_bind_addr: str


class AdminConfig(msgspec.Struct, frozen=True, kw_only=True):
    """Tokens are the final values: read from ``*_file`` or the environment already."""

    api_bind_addr: str | None = None
    admin_token: str | None = None
    admin_token_file: str | None = None
    metrics_token: str | None = None
    metrics_token_file: str | None = None
    metrics_require_token: bool = False
    trace_sink: str | None = None

    def __repr__(self) -> str:
        return _redacted_repr(self, frozenset({"admin_token", "metrics_token"}))


class ConsulDiscoveryConfig(msgspec.Struct, frozen=True, kw_only=True):
    consul_http_addr: str
    service_name: str
    api: str = "catalog"  # "catalog" | "agent"
    ca_cert: str | None = None
    client_cert: str | None = None
    client_key: str | None = None
    token: str | None = None
    tls_skip_verify: bool = False
    tags: tuple[str, ...] = ()
    meta: dict[str, str] | None = None

    def __repr__(self) -> str:
        return _redacted_repr(self, frozenset({"token"}))


class KubernetesDiscoveryConfig(msgspec.Struct, frozen=True, kw_only=True):
    namespace: str
    service_name: str
    skip_crd: bool = False


class Config(msgspec.Struct, frozen=True, kw_only=True):
    """The whole node configuration; see the module docstring for what is guaranteed."""

    metadata_dir: str
    data_dir: tuple[DataDir, ...]
    replication_factor: int
    rpc_bind_addr: str
    consistency_mode: str = "consistent"
    replication_mode: str | None = None  # the legacy value as written, if it was used
    db_engine: str = "lmdb"
    lmdb_map_size: int = LMDB_MAP_SIZE_DEFAULT
    metadata_fsync: bool = False
    data_fsync: bool = False
    block_size: int = BLOCK_SIZE_DEFAULT
    block_ram_buffer_max: int = BLOCK_RAM_BUFFER_MAX_DEFAULT
    compression_level: int | None = COMPRESSION_LEVEL_DEFAULT  # None: blocks stored uncompressed
    rpc_secret: str | None = None  # 64 hex characters, from wherever it came
    rpc_secret_bytes: bytes | None = None  # the same, decoded: 32 bytes
    rpc_secret_file: str | None = None
    rpc_public_addr: str | None = None
    bootstrap_peers: tuple[str, ...] = ()  # "NODE_ID@HOST:PORT", checked by parse_peer_addr
    rpc_ping_timeout_msec: int = RPC_PING_TIMEOUT_MSEC_DEFAULT
    rpc_timeout_msec: int = RPC_TIMEOUT_MSEC_DEFAULT
    disable_scrub: bool = False
    use_local_tz: bool = False
    allow_world_readable_secrets: bool = False
    allow_punycode: bool = False
    # Accepted and validated, not implemented yet (NOT_YET_SUPPORTED):
    metadata_snapshots_dir: str = ""  # default <metadata_dir>/snapshots
    metadata_auto_snapshot_interval: str | None = None
    metadata_auto_snapshot_interval_s: float | None = None
    rpc_bind_outgoing: bool = False
    rpc_public_addr_subnet: str | None = None
    fjall_block_cache_size: int | None = None
    block_max_concurrent_reads: int = BLOCK_MAX_CONCURRENT_READS_DEFAULT
    block_max_concurrent_writes_per_request: int = BLOCK_MAX_CONCURRENT_WRITES_PER_REQUEST_DEFAULT
    consul_discovery: ConsulDiscoveryConfig | None = None
    kubernetes_discovery: KubernetesDiscoveryConfig | None = None
    # Sections
    s3_api: S3ApiConfig = msgspec.field(default_factory=S3ApiConfig)
    s3_web: S3WebConfig | None = None
    k2v_api: K2vApiConfig | None = None
    admin: AdminConfig = msgspec.field(default_factory=AdminConfig)
    # Where it came from, and what the server should log once at start-up.
    config_file: str | None = None
    warnings: list[str] = msgspec.field(default_factory=list)

    def __repr__(self) -> str:
        return _redacted_repr(self, frozenset({"rpc_secret", "rpc_secret_bytes"}))


# ---------------------------------------------------------------------------------------------
# Entry points


def load_config(path: str | None, env: Mapping[str, str], *, require_secret: bool = True) -> Config:
    """Read and validate the config file; raise ``ConfigError`` with a one-line message.

    ``path`` None means ``$GRANGE_CONFIG_FILE``, then ``$GARAGE_CONFIG_FILE``, then
    ``/etc/grange.toml``. ``env`` is the environment to take secrets from (pass
    ``os.environ``; CLI flags such as ``--rpc-secret`` can be layered on as a dict).
    ``require_secret=False`` lets commands that never talk RPC (``node id``) run without one.
    """
    if path is None:
        path = env.get("GRANGE_CONFIG_FILE") or env.get("GARAGE_CONFIG_FILE") or DEFAULT_CONFIG_FILE
    try:
        with open(path, "rb") as f:
            data = f.read()
    except OSError as e:
        raise ConfigError(f"cannot read config file {path}: {e.strerror or e}") from None
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError as e:
        raise ConfigError(f"cannot read config file {path}: not UTF-8 text ({e.reason})") from None
    return parse_config(text, env, path, require_secret=require_secret, config_file=path)


def parse_config(
    text: str,
    env: Mapping[str, str],
    source_name: str = "<config>",
    *,
    require_secret: bool = True,
    config_file: str | None = None,
) -> Config:
    """Validate TOML ``text`` (named ``source_name`` in messages) into a ``Config``.

    Used by ``load_config``, by tests, and for the generated single-node config. Secret files
    named in the text or in ``env`` are read here.
    """
    try:
        doc = tomllib.loads(text)
    except tomllib.TOMLDecodeError as e:
        raise ConfigError(f"{source_name} is not valid TOML: {e}") from None
    return _Parser(source_name, env, require_secret, config_file).parse(doc)


# ---------------------------------------------------------------------------------------------
# Addresses


def parse_peer_addr(value: str) -> tuple[bytes, str, int]:
    """Split ``"NODE_ID@HOST:PORT"`` (NODE_ID: 64 hex characters, an ed25519 public key) into
    ``(node_id, host, port)``. Raises ``ValueError`` with the reason."""
    if not isinstance(value, str) or "@" not in value:
        raise ValueError("expected NODE_ID@HOST:PORT")
    node_id_hex, _, addr = value.partition("@")
    node_id = _decode_hex32(node_id_hex)
    if node_id is None:
        raise ValueError("the node id must be 64 hexadecimal characters")
    host, port = split_host_port(addr, allow_port_zero=False)
    return node_id, host, port


def _decode_hex32(text: str) -> bytes | None:
    if len(text) != 64 or not re.fullmatch(r"[0-9A-Fa-f]{64}", text):
        return None
    return bytes.fromhex(text)


# ---------------------------------------------------------------------------------------------
# Secrets


def read_secret_file(path: str, *, allow_world_readable: bool, what: str) -> str:
    """Return the content of a secret file, stripped of surrounding whitespace.

    Like Garage, refuses a file that any group or other permission bit makes readable by
    more than its owner, unless ``allow_world_readable``; ``what`` names the setting that
    pointed at the file.
    """
    try:
        st = os.stat(path)
    except OSError as e:
        raise ConfigError(f"cannot read secret file {path} ({what}): {e.strerror or e}") from None
    if os.name == "posix" and not allow_world_readable and st.st_mode & SECRET_FILE_FORBIDDEN_MODE_BITS:
        raise ConfigError(
            f"secret file {path} is world-readable (mode {stat.S_IMODE(st.st_mode):04o}): "
            "chmod 600 it, or set allow_world_readable_secrets = true"
        )
    try:
        with open(path, encoding="utf-8") as f:
            content = f.read().strip()
    except (OSError, UnicodeDecodeError) as e:
        reason = e.strerror if isinstance(e, OSError) else "not UTF-8 text"
        raise ConfigError(f"cannot read secret file {path} ({what}): {reason}") from None
    if not content:
        raise ConfigError(f"secret file {path} ({what}) is empty")
    return content


# ---------------------------------------------------------------------------------------------
# The parser proper


_MISSING: Any = object()


def _show(value: object) -> str:
    """A value as it would look in TOML, short enough for a one-line message."""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, str):
        text = json.dumps(value, ensure_ascii=False)
    elif isinstance(value, dict):
        return "a table"
    elif isinstance(value, list):
        return "a list"
    else:
        text = str(value)
    return text if len(text) <= 80 else text[:77] + "..."


def _one_of(values: tuple[str, ...] | list[str]) -> str:
    quoted = [f'"{v}"' for v in values]
    return ", ".join(quoted[:-1]) + " or " + quoted[-1] if len(quoted) > 1 else quoted[0]


class _Parser:
    def __init__(
        self, source: str, env: Mapping[str, str], require_secret: bool, config_file: str | None
    ) -> None:
        self.source = source
        self.env = env
        self.require_secret = require_secret
        self.config_file = config_file
        self.warnings: list[str] = []

    # -- keys

    def check_keys(self, doc: dict[str, Any]) -> None:
        """Refuse unknown keys, warn about obsolete and not-yet-supported ones, in file order."""
        section_of: dict[str, list[str]] = {}
        for section, keys in SECTION_KEYS.items():
            for key in keys:
                section_of.setdefault(key, []).append(section)
        for key, value in doc.items():
            if key in SECTION_KEYS:
                if not isinstance(value, dict):
                    raise ConfigError(f"{key} must be a table (a [{key}] section), got {_show(value)}")
                self.check_section_keys(key, value)
                if key in NOT_YET_SUPPORTED:
                    self.not_supported(key)
            elif key in TOP_LEVEL_KEYS:
                if key in NOT_YET_SUPPORTED and value is not False:
                    self.not_supported(key)
            elif key in OBSOLETE_KEYS:
                self.obsolete(key)
            else:
                if key in section_of:
                    hint = f" (it belongs in a section: {', '.join(f'[{s}]' for s in section_of[key])})"
                else:
                    hint = self.suggest(key, TOP_LEVEL_KEYS | SECTION_KEYS.keys())
                raise ConfigError(f"unknown key '{key}' in {self.source}{hint}")

    def check_section_keys(self, section: str, table: dict[str, Any]) -> None:
        known = SECTION_KEYS[section]
        for key, value in table.items():
            dotted = f"{section}.{key}"
            if key in known:
                if dotted in NOT_YET_SUPPORTED and value is not False:
                    self.not_supported(dotted)
            elif dotted in OBSOLETE_KEYS:
                self.obsolete(dotted)
            else:
                if key in TOP_LEVEL_KEYS:
                    hint = " (it is a top-level key: move it above the first [section] header)"
                else:
                    hint = self.suggest(key, known)
                raise ConfigError(f"unknown key '{key}' in section [{section}] of {self.source}{hint}")

    @staticmethod
    def suggest(key: str, candidates: Any) -> str:
        close = difflib.get_close_matches(key, sorted(candidates), n=1, cutoff=0.6)
        return f" (did you mean '{close[0]}'?)" if close else ""

    def not_supported(self, name: str) -> None:
        self.warnings.append(f"{name}: not supported by Grange yet, ignored")

    def obsolete(self, name: str) -> None:
        self.warnings.append(f"{name}: option of older Garage versions, ignored (as Garage v2 does)")

    # -- values; `name` is the dotted key used in messages

    def required(self, t: dict[str, Any], key: str, name: str) -> Any:
        if key not in t:
            raise ConfigError(f"missing required key '{name}' in {self.source}")
        return t[key]

    def string(self, t: dict[str, Any], key: str, name: str, *, required: bool = False) -> str | None:
        value = self.required(t, key, name) if required else t.get(key, None)
        if value is None:
            return None
        if not isinstance(value, str):
            raise ConfigError(f"{name} must be a string, got {_show(value)}")
        if not value.strip():
            raise ConfigError(f"{name} must not be empty")
        return value

    def boolean(self, t: dict[str, Any], key: str, name: str) -> bool:
        value = t.get(key, False)
        if not isinstance(value, bool):
            raise ConfigError(f"{name} must be true or false, got {_show(value)}")
        return value

    def integer(self, t: dict[str, Any], key: str, name: str, default: int, minimum: int = 1) -> int:
        value = t.get(key, default)
        if isinstance(value, bool) or not isinstance(value, int) or value < minimum:
            raise ConfigError(f"{name} must be an integer >= {minimum}, got {_show(value)}")
        return value

    def size(self, t: dict[str, Any], key: str, name: str, default: int | None) -> int | None:
        value = t.get(key, _MISSING)
        if value is _MISSING:
            return default
        try:
            return parse_size(value, name)
        except ValueError as e:
            raise ConfigError(str(e)) from None

    def positive_size(self, t: dict[str, Any], key: str, default: int) -> int:
        value = self.size(t, key, key, default)
        if not value:
            raise ConfigError(f"{key} must be greater than zero")
        return value

    def path(self, t: dict[str, Any], key: str, name: str, *, required: bool = False) -> str | None:
        value = self.string(t, key, name, required=required)
        return None if value is None else os.path.abspath(value)

    def bind_addr(self, t: dict[str, Any], key: str, name: str, *, required: bool = False) -> str | None:
        """An HTTP listener: HOST:PORT, or an absolute unix socket path (Garage's
        UnixOrTCPSocketAddress)."""
        value = self.string(t, key, name, required=required)
        if value is None or value.startswith("/"):
            return value
        try:
            split_host_port(value)
        except ValueError as e:
            raise ConfigError(
                f"{name} must be HOST:PORT or the absolute path of a unix socket, got {_show(value)} ({e})"
            ) from None
        return value

    def host_port(
        self, t: dict[str, Any], key: str, name: str, *, required: bool, public: bool
    ) -> str | None:
        value = self.string(t, key, name, required=required)
        if value is None:
            return None
        try:
            split_host_port(value, allow_port_zero=not public)
        except ValueError as e:
            raise ConfigError(f"{name} must be HOST:PORT, got {_show(value)} ({e})") from None
        return value

    def choice(self, t: dict[str, Any], key: str, name: str, default: str, choices: tuple[str, ...]) -> str:
        value = t.get(key, default)
        if value not in choices:
            raise ConfigError(f"{name} must be one of {_one_of(choices)}, got {_show(value)}")
        return value

    # -- whole document

    def parse(self, doc: dict[str, Any]) -> Config:
        self.check_keys(doc)
        metadata_dir = self.path(doc, "metadata_dir", "metadata_dir", required=True)
        assert metadata_dir is not None
        replication_factor, consistency_mode, replication_mode = self.replication(doc)
        allow_world_readable = self.allow_world_readable(doc)
        rpc_secret, rpc_secret_bytes = self.rpc_secret(doc, allow_world_readable)
        interval = self.string(doc, "metadata_auto_snapshot_interval", "metadata_auto_snapshot_interval")
        interval_s = None
        if interval is not None:
            try:
                interval_s = parse_duration(interval, "metadata_auto_snapshot_interval")
            except ValueError as e:
                raise ConfigError(str(e)) from None
        subnet = self.string(doc, "rpc_public_addr_subnet", "rpc_public_addr_subnet")
        if subnet is not None:
            try:
                ipaddress.ip_network(subnet, strict=False)
            except ValueError:
                raise ConfigError(
                    f'rpc_public_addr_subnet must be a subnet such as "10.0.0.0/8", got {_show(subnet)}'
                ) from None
        lmdb_map_size = self.size(doc, "lmdb_map_size", "lmdb_map_size", LMDB_MAP_SIZE_DEFAULT)
        return Config(
            metadata_dir=metadata_dir,
            data_dir=self.data_dir(doc),
            replication_factor=replication_factor,
            consistency_mode=consistency_mode,
            replication_mode=replication_mode,
            rpc_bind_addr=self.host_port(doc, "rpc_bind_addr", "rpc_bind_addr", required=True, public=False)
            or "",
            rpc_public_addr=self.host_port(
                doc, "rpc_public_addr", "rpc_public_addr", required=False, public=True
            ),
            rpc_secret=rpc_secret,
            rpc_secret_bytes=rpc_secret_bytes,
            rpc_secret_file=self.path(doc, "rpc_secret_file", "rpc_secret_file"),
            bootstrap_peers=self.bootstrap_peers(doc),
            rpc_ping_timeout_msec=self.integer(
                doc, "rpc_ping_timeout_msec", "rpc_ping_timeout_msec", RPC_PING_TIMEOUT_MSEC_DEFAULT
            ),
            rpc_timeout_msec=self.integer(
                doc, "rpc_timeout_msec", "rpc_timeout_msec", RPC_TIMEOUT_MSEC_DEFAULT
            ),
            db_engine=self.db_engine(doc),
            # 0 means "the default" in Garage (serde default of usize, then recommended_map_size()).
            lmdb_map_size=lmdb_map_size or LMDB_MAP_SIZE_DEFAULT,
            metadata_fsync=self.boolean(doc, "metadata_fsync", "metadata_fsync"),
            data_fsync=self.boolean(doc, "data_fsync", "data_fsync"),
            block_size=self.positive_size(doc, "block_size", BLOCK_SIZE_DEFAULT),
            block_ram_buffer_max=self.positive_size(
                doc, "block_ram_buffer_max", BLOCK_RAM_BUFFER_MAX_DEFAULT
            ),
            compression_level=self.compression_level(doc),
            disable_scrub=self.boolean(doc, "disable_scrub", "disable_scrub"),
            use_local_tz=self.boolean(doc, "use_local_tz", "use_local_tz"),
            allow_world_readable_secrets=allow_world_readable,
            allow_punycode=self.boolean(doc, "allow_punycode", "allow_punycode"),
            metadata_snapshots_dir=self.path(doc, "metadata_snapshots_dir", "metadata_snapshots_dir")
            or os.path.join(metadata_dir, "snapshots"),
            metadata_auto_snapshot_interval=interval,
            metadata_auto_snapshot_interval_s=interval_s,
            rpc_bind_outgoing=self.boolean(doc, "rpc_bind_outgoing", "rpc_bind_outgoing"),
            rpc_public_addr_subnet=subnet,
            fjall_block_cache_size=self.size(doc, "fjall_block_cache_size", "fjall_block_cache_size", None),
            block_max_concurrent_reads=self.integer(
                doc,
                "block_max_concurrent_reads",
                "block_max_concurrent_reads",
                BLOCK_MAX_CONCURRENT_READS_DEFAULT,
            ),
            block_max_concurrent_writes_per_request=self.integer(
                doc,
                "block_max_concurrent_writes_per_request",
                "block_max_concurrent_writes_per_request",
                BLOCK_MAX_CONCURRENT_WRITES_PER_REQUEST_DEFAULT,
            ),
            consul_discovery=self.consul(doc.get("consul_discovery")),
            kubernetes_discovery=self.kubernetes(doc.get("kubernetes_discovery")),
            s3_api=self.s3_api(doc.get("s3_api", {})),
            s3_web=self.s3_web(doc.get("s3_web")),
            k2v_api=self.k2v_api(doc.get("k2v_api")),
            admin=self.admin(doc.get("admin", {}), allow_world_readable),
            config_file=self.config_file,
            warnings=self.warnings,
        )

    def data_dir(self, doc: dict[str, Any]) -> tuple[DataDir, ...]:
        value = self.required(doc, "data_dir", "data_dir")
        if isinstance(value, str):
            return (DataDir(path=self.path(doc, "data_dir", "data_dir") or ""),)
        if not isinstance(value, list) or not value:
            raise ConfigError(
                "data_dir must be a path, or a list of {path, capacity} or {path, read_only = true} "
                f"tables, got {_show(value)}"
            )
        dirs: list[DataDir] = []
        for i, entry in enumerate(value):
            name = f"data_dir[{i}]"
            if not isinstance(entry, dict):
                raise ConfigError(
                    f'{name} must be a table such as {{path = "/d", capacity = "2T"}}, got {_show(entry)}'
                )
            for key in entry:
                if key not in DATA_DIR_KEYS:
                    raise ConfigError(
                        f"unknown key '{key}' in {name} of {self.source}{self.suggest(key, DATA_DIR_KEYS)}"
                    )
            path = self.path(entry, "path", f"{name}.path", required=True) or ""
            read_only = self.boolean(entry, "read_only", f"{name}.read_only")
            capacity = self.size(entry, "capacity", f"{name}.capacity", None)
            # Garage src/block/layout.rs: a capacity and not read-only, or read-only and no capacity.
            if read_only == (capacity is not None):
                raise ConfigError(
                    f"{name} ({path}) must have a capacity or be marked read_only = true, not both or neither"
                )
            if capacity == 0:
                raise ConfigError(f"{name}.capacity ({path}) must be greater than zero")
            if any(d.path == path for d in dirs):
                raise ConfigError(f"{name}: {path} is listed twice in data_dir")
            dirs.append(DataDir(path=path, capacity=capacity, read_only=read_only))
        if all(d.read_only for d in dirs):
            raise ConfigError("data_dir has no active directory: give at least one a capacity")
        return tuple(dirs)

    def replication(self, doc: dict[str, Any]) -> tuple[int, str, str | None]:
        """Garage's parse_replication_mode (src/rpc/replication_mode.rs)."""
        legacy = doc.get("replication_mode")
        factor = doc.get("replication_factor")
        if legacy is not None and factor is not None:
            raise ConfigError(
                "set either replication_factor (with consistency_mode) or the legacy replication_mode, not both"
            )
        if legacy is not None:
            mode = str(legacy) if isinstance(legacy, int) and not isinstance(legacy, bool) else legacy
            if mode not in LEGACY_REPLICATION_MODES:
                raise ConfigError(
                    f"replication_mode must be one of {_one_of(list(LEGACY_REPLICATION_MODES))}, got {_show(legacy)}"
                )
            if doc.get("consistency_mode", "consistent") != "consistent":
                raise ConfigError(
                    "the legacy replication_mode cannot be combined with consistency_mode: "
                    "use replication_factor and consistency_mode"
                )
            factor, consistency = LEGACY_REPLICATION_MODES[mode]
            self.warnings.append(
                f"replication_mode: legacy option, read as replication_factor = {factor} and consistency_mode = "
                f'"{consistency}"; please write those instead'
            )
            return factor, consistency, mode
        if factor is None:
            raise ConfigError(
                f"missing required key 'replication_factor' in {self.source} (e.g. replication_factor = 3)"
            )
        factor = self.integer(doc, "replication_factor", "replication_factor", 0)
        consistency = self.choice(
            doc, "consistency_mode", "consistency_mode", "consistent", CONSISTENCY_MODES
        )
        return factor, consistency, None

    def db_engine(self, doc: dict[str, Any]) -> str:
        value = doc.get("db_engine", "lmdb")
        if isinstance(value, str) and value in _DB_ENGINE_ALIASES:
            return _DB_ENGINE_ALIASES[value]
        if value == "fjall":
            raise ConfigError('db_engine "fjall" is not supported by Grange yet: use "lmdb" or "sqlite"')
        if value == "sled":
            raise ConfigError(
                'db_engine "sled" is no longer supported (Garage dropped it in v1.0): use "lmdb" or "sqlite"'
            )
        raise ConfigError(f"db_engine must be one of {_one_of(DB_ENGINES)}, got {_show(value)}")

    def compression_level(self, doc: dict[str, Any]) -> int | None:
        value = doc.get("compression_level", COMPRESSION_LEVEL_DEFAULT)
        if isinstance(value, str) and value.lower() == "none":
            return None
        if (
            isinstance(value, bool)
            or not isinstance(value, int)
            or not ZSTD_LEVEL_MIN <= value <= ZSTD_LEVEL_MAX
        ):
            raise ConfigError(
                f'compression_level must be a zstd level from {ZSTD_LEVEL_MIN} to {ZSTD_LEVEL_MAX}, or "none", '
                f"got {_show(value)}"
            )
        return value

    def bootstrap_peers(self, doc: dict[str, Any]) -> tuple[str, ...]:
        value = doc.get("bootstrap_peers", [])
        if not isinstance(value, list):
            raise ConfigError(
                f'bootstrap_peers must be a list of "NODE_ID@HOST:PORT" strings, got {_show(value)}'
            )
        for i, peer in enumerate(value):
            try:
                parse_peer_addr(peer)
            except ValueError as e:
                raise ConfigError(
                    f"bootstrap_peers[{i}] must be NODE_ID@HOST:PORT, got {_show(peer)} ({e})"
                ) from None
        return tuple(value)

    # -- secrets

    def env_value(self, name: str) -> str | None:
        value = self.env.get(name)
        return value if value else None

    def env_pair(self, suffix: str) -> tuple[str | None, str | None, str, str]:
        """The (value, file, value_var, file_var) of a secret in the environment; GRANGE_ wins."""
        for prefix in ("GRANGE_", "GARAGE_"):
            var, file_var = prefix + suffix, prefix + suffix + "_FILE"
            value, file = self.env_value(var), self.env_value(file_var)
            if value is not None or file is not None:
                return value, file, var, file_var
        return None, None, "GRANGE_" + suffix, "GRANGE_" + suffix + "_FILE"

    def allow_world_readable(self, doc: dict[str, Any]) -> bool:
        for var in ("GRANGE_ALLOW_WORLD_READABLE_SECRETS", "GARAGE_ALLOW_WORLD_READABLE_SECRETS"):
            value = self.env_value(var)
            if value is not None:
                lowered = value.strip().lower()
                if lowered in ("true", "1", "yes", "on"):
                    return True
                if lowered in ("false", "0", "no", "off"):
                    return False
                raise ConfigError(f"{var} must be true or false, got {_show(value)}")
        return self.boolean(doc, "allow_world_readable_secrets", "allow_world_readable_secrets")

    def secret(
        self, t: dict[str, Any], key: str, name: str, env_suffix: str, allow_world_readable: bool
    ) -> tuple[str | None, str]:
        """Garage's fill_secret: the environment replaces the file's value; within one source,
        setting both the value and the file is an error. Returns (value, where it came from)."""
        env_value, env_file, env_var, env_file_var = self.env_pair(env_suffix)
        if env_value is not None and env_file is not None:
            raise ConfigError(f"only one of {env_var} and {env_file_var} can be set")
        if env_value is not None:
            return env_value, env_var
        if env_file is not None:
            path = os.path.abspath(env_file)
            return read_secret_file(path, allow_world_readable=allow_world_readable, what=env_file_var), path
        value = self.string(t, key, name)
        file = self.path(t, key + "_file", name + "_file")
        if value is not None and file is not None:
            raise ConfigError(f"only one of {name} and {name}_file can be set")
        if file is not None:
            return read_secret_file(
                file, allow_world_readable=allow_world_readable, what=name + "_file"
            ), file
        return value, name

    def rpc_secret(self, doc: dict[str, Any], allow_world_readable: bool) -> tuple[str | None, bytes | None]:
        value, origin = self.secret(doc, "rpc_secret", "rpc_secret", "RPC_SECRET", allow_world_readable)
        if value is None:
            if self.require_secret:
                raise ConfigError(
                    "rpc_secret is required (set rpc_secret, rpc_secret_file or GRANGE_RPC_SECRET)"
                )
            return None, None
        decoded = _decode_hex32(value)
        if decoded is None:
            where = "" if origin == "rpc_secret" else f" (from {origin})"
            raise ConfigError(
                f"rpc_secret{where} must be 64 hexadecimal characters (32 bytes), e.g. from `openssl rand -hex 32`"
            )
        return value, decoded

    # -- sections

    def s3_api(self, t: dict[str, Any]) -> S3ApiConfig:
        return S3ApiConfig(
            api_bind_addr=self.bind_addr(t, "api_bind_addr", "s3_api.api_bind_addr"),
            s3_region=self.string(t, "s3_region", "s3_api.s3_region") or "garage",
            root_domain=self.string(t, "root_domain", "s3_api.root_domain"),
        )

    def s3_web(self, t: dict[str, Any] | None) -> S3WebConfig | None:
        if t is None:
            return None
        return S3WebConfig(
            bind_addr=self.bind_addr(t, "bind_addr", "s3_web.bind_addr", required=True) or "",
            root_domain=self.string(t, "root_domain", "s3_web.root_domain", required=True) or "",
            add_host_to_metrics=self.boolean(t, "add_host_to_metrics", "s3_web.add_host_to_metrics"),
        )

    def k2v_api(self, t: dict[str, Any] | None) -> K2vApiConfig | None:
        if t is None:
            return None
        return K2vApiConfig(
            api_bind_addr=self.bind_addr(t, "api_bind_addr", "k2v_api.api_bind_addr", required=True) or ""
        )

    def admin(self, t: dict[str, Any], allow_world_readable: bool) -> AdminConfig:
        admin_token, _ = self.secret(
            t, "admin_token", "admin.admin_token", "ADMIN_TOKEN", allow_world_readable
        )
        metrics_token, _ = self.secret(
            t, "metrics_token", "admin.metrics_token", "METRICS_TOKEN", allow_world_readable
        )
        return AdminConfig(
            api_bind_addr=self.bind_addr(t, "api_bind_addr", "admin.api_bind_addr"),
            admin_token=admin_token,
            admin_token_file=self.path(t, "admin_token_file", "admin.admin_token_file"),
            metrics_token=metrics_token,
            metrics_token_file=self.path(t, "metrics_token_file", "admin.metrics_token_file"),
            metrics_require_token=self.boolean(t, "metrics_require_token", "admin.metrics_require_token"),
            trace_sink=self.string(t, "trace_sink", "admin.trace_sink"),
        )

    def consul(self, t: dict[str, Any] | None) -> ConsulDiscoveryConfig | None:
        if t is None:
            return None
        n = "consul_discovery."
        tags = t.get("tags", [])
        if not isinstance(tags, list) or not all(isinstance(x, str) for x in tags):
            raise ConfigError(f"{n}tags must be a list of strings, got {_show(tags)}")
        meta = t.get("meta")
        if meta is not None and (
            not isinstance(meta, dict) or not all(isinstance(v, str) for v in meta.values())
        ):
            raise ConfigError(f"{n}meta must be a table of strings, got {_show(meta)}")
        return ConsulDiscoveryConfig(
            api=self.choice(t, "api", n + "api", "catalog", ("catalog", "agent")),
            consul_http_addr=self.string(t, "consul_http_addr", n + "consul_http_addr", required=True) or "",
            service_name=self.string(t, "service_name", n + "service_name", required=True) or "",
            ca_cert=self.string(t, "ca_cert", n + "ca_cert"),
            client_cert=self.string(t, "client_cert", n + "client_cert"),
            client_key=self.string(t, "client_key", n + "client_key"),
            token=self.string(t, "token", n + "token"),
            tls_skip_verify=self.boolean(t, "tls_skip_verify", n + "tls_skip_verify"),
            tags=tuple(tags),
            meta=dict(meta) if meta is not None else None,
        )

    def kubernetes(self, t: dict[str, Any] | None) -> KubernetesDiscoveryConfig | None:
        if t is None:
            return None
        n = "kubernetes_discovery."
        return KubernetesDiscoveryConfig(
            namespace=self.string(t, "namespace", n + "namespace", required=True) or "",
            service_name=self.string(t, "service_name", n + "service_name", required=True) or "",
            skip_crd=self.boolean(t, "skip_crd", n + "skip_crd"),
        )
