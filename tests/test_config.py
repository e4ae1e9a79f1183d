"""Config file and size/duration parsing: a Garage operator's file must load, mistakes must not.

Every refusal is checked for the one thing an operator needs: the message names the key.
"""

from __future__ import annotations

import os
import stat

import pytest
from hypothesis import given
from hypothesis import strategies as st

from grange.util.config import (
    ALL_KEYS,
    NOT_YET_SUPPORTED,
    SECTION_KEYS,
    TOP_LEVEL_KEYS,
    Config,
    ConfigError,
    DataDir,
    load_config,
    parse_config,
    parse_peer_addr,
    split_host_port,
)
from grange.util.sizes import (
    EB,
    GB,
    GIB,
    KB,
    KIB,
    MB,
    MIB,
    PB,
    PIB,
    TB,
    TIB,
    format_size,
    format_size_iec,
    parse_duration,
    parse_size,
)

SECRET = "4425f5c26c5e11581d3223904324dcb5b5d5dfb14e5e7f35e38c595424f5f1e6"
OTHER_SECRET = "ab" * 32
NODE_ID = "563e1ac825ee3323aa441e72c26d1030d6d4414aeb3dd25287c531e7fc2bc95d"

OPERATOR_CONFIG = f"""
metadata_dir = "/tmp/n0/meta"
data_dir = "/tmp/n0/data"
db_engine = "lmdb"
replication_factor = 3
rpc_bind_addr = "127.0.0.1:3901"
rpc_public_addr = "127.0.0.1:3901"
rpc_secret = "{SECRET}"

[s3_api]
s3_region = "garage"
api_bind_addr = "127.0.0.1:3900"
root_domain = ".s3.localhost"

[s3_web]
bind_addr = "127.0.0.1:3902"
root_domain = ".web.localhost"

[admin]
api_bind_addr = "127.0.0.1:3903"
admin_token = "abc"
"""

# The smallest file that loads: what the other tests add one line to.
MINIMAL = f"""
metadata_dir = "/m"
data_dir = "/d"
replication_factor = 1
rpc_bind_addr = "[::]:3901"
rpc_secret = "{SECRET}"
"""

# Garage v2's reference example (doc/book/reference-manual/configuration.md), every option,
# plus the v2.1-v2.2 keys of reference §8.
GARAGE_FULL_EXAMPLE = f"""
replication_factor = 3
consistency_mode = "consistent"

metadata_dir = "/var/lib/garage/meta"
data_dir = "/var/lib/garage/data"
metadata_snapshots_dir = "/var/lib/garage/snapshots"
metadata_fsync = true
data_fsync = false
disable_scrub = false
use_local_tz = false
metadata_auto_snapshot_interval = "6h"

db_engine = "lmdb"

block_size = "1M"
block_ram_buffer_max = "256MiB"
block_max_concurrent_reads = 16
block_max_concurrent_writes_per_request = 10
fjall_block_cache_size = "1G"

lmdb_map_size = "1T"

compression_level = 1

rpc_secret = "{SECRET}"
rpc_bind_addr = "[::]:3901"
rpc_bind_outgoing = false
rpc_public_addr = "[fc00:1::1]:3901"
rpc_public_addr_subnet = "fc00:1::/64"
rpc_ping_timeout_msec = 5000
rpc_timeout_msec = 60000

allow_world_readable_secrets = false
allow_punycode = false

bootstrap_peers = [
    "{NODE_ID}@[fc00:1::1]:3901",
    "86f0f26ae4afbd59aaf9cfb059eefac844951efd5b8caeec0d53f4ed6c85f332@[fc00:1::2]:3901",
    "212fd62eeaca72c122b45a7f4fa0f55e012aa5e24ac384a72a3016413fa724ff@garage3.example.org:3901",
]

[consul_discovery]
api = "catalog"
consul_http_addr = "http://127.0.0.1:8500"
service_name = "garage-daemon"
ca_cert = "/etc/consul/consul-ca.crt"
client_cert = "/etc/consul/consul-client.crt"
client_key = "/etc/consul/consul-key.crt"
token = "abcdef-01234-56789"
tls_skip_verify = false
tags = [ "dns-enabled" ]
meta = {{ dns-acl = "allow trusted" }}

[kubernetes_discovery]
namespace = "garage"
service_name = "garage-daemon"
skip_crd = false

[s3_api]
api_bind_addr = "[::]:3900"
s3_region = "garage"
root_domain = ".s3.garage"

[s3_web]
bind_addr = "[::]:3902"
root_domain = ".web.garage"
add_host_to_metrics = true

[k2v_api]
api_bind_addr = "[::]:3904"

[admin]
api_bind_addr = "0.0.0.0:3903"
metrics_token = "BCAdFjoa9G0KJR0WXnHHm7fs1ZAbfpI8iIZ+Z/a2NgI="
metrics_require_token = true
admin_token = "UkLeGWEvHnXBqnueR3ISEMWpOnm40jH2tM2HnnL/0F4="
trace_sink = "http://localhost:4317"
"""


def parse(text: str, env: dict[str, str] | None = None, **kwargs: object) -> Config:
    return parse_config(text, env or {}, "grange.toml", **kwargs)  # type: ignore[arg-type]


def error_of(text: str, env: dict[str, str] | None = None, **kwargs: object) -> str:
    with pytest.raises(ConfigError) as info:
        parse(text, env, **kwargs)
    message = str(info.value)
    assert "\n" not in message, "a config error is one line"
    return message


def without(text: str, key: str) -> str:
    return "\n".join(line for line in text.splitlines() if not line.startswith(f"{key} =")) + "\n"


def write_secret(path: os.PathLike[str] | str, content: str, mode: int = 0o600) -> str:
    with open(path, "w") as f:
        f.write(content)
    os.chmod(path, mode)
    return str(path)


# --- the happy paths ---------------------------------------------------------------------------


def test_operator_config_parses_into_typed_sections() -> None:
    c = parse(OPERATOR_CONFIG)
    assert c.metadata_dir == "/tmp/n0/meta"
    assert c.data_dir == (DataDir(path="/tmp/n0/data", capacity=None, read_only=False),)
    assert (c.db_engine, c.replication_factor, c.consistency_mode) == ("lmdb", 3, "consistent")
    assert (c.rpc_bind_addr, c.rpc_public_addr) == ("127.0.0.1:3901", "127.0.0.1:3901")
    assert c.rpc_secret_bytes == bytes.fromhex(SECRET)
    assert c.s3_api.s3_region == "garage"
    assert c.s3_api.api_bind_addr == "127.0.0.1:3900"
    assert c.s3_api.root_domain == ".s3.localhost"
    assert c.s3_web is not None and c.s3_web.bind_addr == "127.0.0.1:3902"
    assert c.s3_web.root_domain == ".web.localhost" and not c.s3_web.add_host_to_metrics
    assert c.k2v_api is None
    assert c.admin.api_bind_addr == "127.0.0.1:3903" and c.admin.admin_token == "abc"
    assert c.warnings == []


def test_defaults_follow_garage() -> None:
    c = parse(MINIMAL)
    assert c.db_engine == "lmdb"
    assert c.lmdb_map_size == 1 * TIB
    assert c.block_size == 1 * MIB
    assert c.block_ram_buffer_max == 256 * MIB
    assert c.compression_level == 1
    assert (c.metadata_fsync, c.data_fsync) == (False, False)
    assert (c.rpc_ping_timeout_msec, c.rpc_timeout_msec) == (10_000, 300_000)
    assert c.consistency_mode == "consistent"
    assert c.metadata_snapshots_dir == "/m/snapshots"
    assert (c.block_max_concurrent_reads, c.block_max_concurrent_writes_per_request) == (16, 10)
    assert c.s3_api.s3_region == "garage" and c.s3_api.api_bind_addr is None
    assert c.s3_web is None and c.admin.admin_token is None
    assert c.bootstrap_peers == ()


def test_garage_reference_example_with_every_key_parses_and_warns_about_unimplemented_ones() -> None:
    c = parse(GARAGE_FULL_EXAMPLE)
    assert c.block_size == MB and c.block_ram_buffer_max == 256 * MIB and c.lmdb_map_size == TB
    assert c.metadata_fsync and c.metadata_auto_snapshot_interval_s == 6 * 3600
    assert c.rpc_public_addr == "[fc00:1::1]:3901"
    assert len(c.bootstrap_peers) == 3
    assert c.consul_discovery is not None and c.consul_discovery.meta == {"dns-acl": "allow trusted"}
    assert c.kubernetes_discovery is not None and c.kubernetes_discovery.namespace == "garage"
    assert c.k2v_api is not None and c.k2v_api.api_bind_addr == "[::]:3904"
    assert c.admin.metrics_require_token and c.s3_web is not None and c.s3_web.add_host_to_metrics
    # rpc_bind_outgoing = false asks for nothing Grange lacks, so it is not reported.
    assert sorted(w.split(":")[0] for w in c.warnings) == sorted(NOT_YET_SUPPORTED - {"rpc_bind_outgoing"})
    assert all(w.endswith(": not supported by Grange yet, ignored") for w in c.warnings)


def test_key_tables_cover_garage_v2_and_its_later_keys() -> None:
    assert len(ALL_KEYS) == 57
    assert {
        "fjall_block_cache_size",
        "block_max_concurrent_reads",
        "block_max_concurrent_writes_per_request",
    } <= TOP_LEVEL_KEYS
    assert NOT_YET_SUPPORTED <= ALL_KEYS | SECTION_KEYS.keys()


def test_secrets_are_not_shown_by_repr() -> None:
    c = parse(OPERATOR_CONFIG)
    assert SECRET not in repr(c) and "'abc'" not in repr(c)
    assert "<redacted>" in repr(c.admin)


def test_compression_level_none_disables_compression() -> None:
    assert parse(MINIMAL + 'compression_level = "none"').compression_level is None
    assert parse(MINIMAL + "compression_level = -5").compression_level == -5


@pytest.mark.parametrize(
    "alias, engine", [("lmdb", "lmdb"), ("heed", "lmdb"), ("sqlite", "sqlite"), ("sqlite3", "sqlite")]
)
def test_db_engine_accepts_garage_aliases(alias: str, engine: str) -> None:
    assert parse(MINIMAL + f'db_engine = "{alias}"').db_engine == engine


def test_unix_socket_paths_are_accepted_for_http_listeners() -> None:
    c = parse(MINIMAL + '[s3_api]\napi_bind_addr = "/run/grange/s3.sock"')
    assert c.s3_api.api_bind_addr == "/run/grange/s3.sock"


def test_obsolete_garage_keys_are_ignored_with_a_warning() -> None:
    c = parse(
        MINIMAL
        + 'sled_cache_capacity = "128MiB"\n[s3_web]\nbind_addr = "[::]:3902"\nroot_domain = ".web"\nindex = "index.html"'
    )
    assert [w.split(":")[0] for w in c.warnings] == ["sled_cache_capacity", "s3_web.index"]


def test_relative_paths_are_made_absolute_against_the_current_directory(
    tmp_path: os.PathLike[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    c = parse(
        without(without(MINIMAL, "metadata_dir"), "data_dir") + '\nmetadata_dir = "meta"\ndata_dir = "./data"'
    )
    assert c.metadata_dir == os.path.join(os.fspath(tmp_path), "meta")
    assert c.data_dir[0].path == os.path.join(os.fspath(tmp_path), "data")


# --- data_dir ---------------------------------------------------------------------------------


def test_data_dir_list_form() -> None:
    text = (
        without(MINIMAL, "data_dir")
        + """
data_dir = [
    { path = "/d1", capacity = "2T" },
    { path = "/d2", capacity = 1000000000 },
    { path = "/old", read_only = true },
]
"""
    )
    assert parse(text).data_dir == (
        DataDir(path="/d1", capacity=2 * TB),
        DataDir(path="/d2", capacity=GB),
        DataDir(path="/old", read_only=True),
    )


def test_data_dir_array_of_tables_form() -> None:
    text = without(MINIMAL, "data_dir") + '[[data_dir]]\npath = "/d1"\ncapacity = "1TiB"\n'
    assert parse(text).data_dir == (DataDir(path="/d1", capacity=TIB),)


@pytest.mark.parametrize(
    "entries, fragment",
    [
        ('{ path = "/d1" }', "data_dir[0] (/d1) must have a capacity or be marked read_only = true"),
        ('{ path = "/d1", capacity = "1T", read_only = true }', "data_dir[0] (/d1) must have a capacity"),
        ('{ path = "/d1", read_only = true }', "data_dir has no active directory"),
        ('{ path = "/d1", capacity = "1T" }, { path = "/d1", capacity = "1T" }', "/d1 is listed twice"),
        ('{ path = "/d1", capacity = 0 }', "data_dir[0].capacity (/d1) must be greater than zero"),
        ('{ path = "/d1", capacity = "lots" }', "data_dir[0].capacity"),
        (
            '{ path = "/d1", capacty = "1T" }',
            "unknown key 'capacty' in data_dir[0] of grange.toml (did you mean 'capacity'?)",
        ),
        ('{ capacity = "1T" }', "missing required key 'data_dir[0].path'"),
        ('"/d1"', "data_dir[0] must be a table"),
    ],
)
def test_data_dir_list_errors(entries: str, fragment: str) -> None:
    assert fragment in error_of(without(MINIMAL, "data_dir") + f"\ndata_dir = [{entries}]")


def test_empty_data_dir_list_is_refused() -> None:
    assert error_of(without(MINIMAL, "data_dir") + "\ndata_dir = []").startswith("data_dir must be a path")


# --- unknown keys --------------------------------------------------------------------------------


def test_unknown_top_level_key_suggests_the_closest_one() -> None:
    message = error_of(MINIMAL + "rpc_secrte = 1")
    assert message == "unknown key 'rpc_secrte' in grange.toml (did you mean 'rpc_secret'?)"


def test_unknown_key_in_a_section_suggests_the_closest_one() -> None:
    message = error_of(MINIMAL + '[s3_api]\ns3_regon = "garage"')
    assert message == "unknown key 's3_regon' in section [s3_api] of grange.toml (did you mean 's3_region'?)"


def test_unknown_key_without_close_match_has_no_suggestion() -> None:
    assert error_of(MINIMAL + "zzz = 1") == "unknown key 'zzz' in grange.toml"


def test_misspelled_section_name_is_caught() -> None:
    assert "did you mean 's3_api'?" in error_of(MINIMAL + '[s3_apii]\ns3_region = "garage"')


def test_section_key_at_top_level_says_which_section() -> None:
    message = error_of(MINIMAL + 'bind_addr = "[::]:3902"')
    assert message == "unknown key 'bind_addr' in grange.toml (it belongs in a section: [s3_web])"


def test_top_level_key_written_after_a_section_header_says_so() -> None:
    message = error_of(without(MINIMAL, "replication_factor") + "[admin]\nreplication_factor = 3")
    assert "unknown key 'replication_factor' in section [admin]" in message
    assert "top-level key" in message


def test_section_given_as_a_value_is_refused() -> None:
    assert error_of(MINIMAL + 's3_api = "x"').startswith("s3_api must be a table")


# --- invalid values ----------------------------------------------------------------------------


@pytest.mark.parametrize(
    "line, message",
    [
        ('rpc_bind_addr = "localhost"', 'rpc_bind_addr must be HOST:PORT, got "localhost"'),
        ('rpc_bind_addr = "::1:3901"', "put an IPv6 address in brackets"),
        ('rpc_bind_addr = "1.2.3.400:3901"', "rpc_bind_addr must be HOST:PORT"),
        ('rpc_bind_addr = "host:99999"', "rpc_bind_addr must be HOST:PORT"),
        ("rpc_bind_addr = 3901", "rpc_bind_addr must be a string, got 3901"),
        ('replication_factor = "three"', 'replication_factor must be an integer >= 1, got "three"'),
        ("replication_factor = 0", "replication_factor must be an integer >= 1, got 0"),
        ("replication_factor = true", "replication_factor must be an integer >= 1, got true"),
        ('rpc_secret = "abc"', "rpc_secret must be 64 hexadecimal characters (32 bytes)"),
        (f'rpc_secret = "{"zz" * 32}"', "rpc_secret must be 64 hexadecimal characters (32 bytes)"),
    ],
)
def test_invalid_required_values_name_the_key(line: str, message: str) -> None:
    key = line.split(" ")[0]
    assert message in error_of(without(MINIMAL, key) + "\n" + line)


def test_invalid_rpc_secret_is_not_echoed() -> None:
    assert "not-a-secret-value" not in error_of(
        without(MINIMAL, "rpc_secret") + '\nrpc_secret = "not-a-secret-value"'
    )


@pytest.mark.parametrize(
    "line, message",
    [
        ('block_size = "1X"', 'block_size has an unknown unit "X"'),
        ('block_size = "big"', "block_size must be a byte size"),
        ("block_size = 0", "block_size must be greater than zero"),
        ("block_size = -1", "block_size must not be negative"),
        ("block_size = 1.5", "block_size must be a byte size"),
        ('lmdb_map_size = "1 TB TB"', "lmdb_map_size"),
        ('block_ram_buffer_max = "256 MiBs"', "block_ram_buffer_max"),
        (
            'consistency_mode = "strict"',
            'consistency_mode must be one of "consistent", "degraded" or "dangerous"',
        ),
        ('db_engine = "rocksdb"', 'db_engine must be one of "lmdb" or "sqlite", got "rocksdb"'),
        ('db_engine = "fjall"', 'db_engine "fjall" is not supported by Grange yet'),
        ('db_engine = "sled"', 'db_engine "sled" is no longer supported'),
        (
            'compression_level = "fast"',
            'compression_level must be a zstd level from -131072 to 22, or "none"',
        ),
        ("compression_level = 23", "compression_level must be a zstd level"),
        ('metadata_fsync = "yes"', 'metadata_fsync must be true or false, got "yes"'),
        ('rpc_public_addr = "example.org"', 'rpc_public_addr must be HOST:PORT, got "example.org"'),
        ('rpc_public_addr = "example.org:0"', "rpc_public_addr must be HOST:PORT"),
        ("rpc_timeout_msec = 0", "rpc_timeout_msec must be an integer >= 1"),
        ('bootstrap_peers = "x"', "bootstrap_peers must be a list"),
        ('bootstrap_peers = ["abc@127.0.0.1:3901"]', "bootstrap_peers[0] must be NODE_ID@HOST:PORT"),
        (f'bootstrap_peers = ["{NODE_ID}@127.0.0.1"]', "bootstrap_peers[0] must be NODE_ID@HOST:PORT"),
        (f'bootstrap_peers = ["{NODE_ID}"]', "bootstrap_peers[0] must be NODE_ID@HOST:PORT"),
        ('metadata_auto_snapshot_interval = "often"', "metadata_auto_snapshot_interval"),
        ('rpc_public_addr_subnet = "10.0.0.0/33"', "rpc_public_addr_subnet must be a subnet"),
        ('metadata_dir = ""', "metadata_dir must not be empty"),
        ("data_dir = 5", "data_dir must be a path"),
        (
            '[s3_api]\napi_bind_addr = "nowhere"',
            "s3_api.api_bind_addr must be HOST:PORT or the absolute path",
        ),
        ("[s3_api]\ns3_region = 1", "s3_api.s3_region must be a string"),
        ('[admin]\napi_bind_addr = ":3903"', "admin.api_bind_addr must be HOST:PORT"),
        ('[admin]\nadmin_token = ""', "admin.admin_token must not be empty"),
        ('[admin]\nmetrics_require_token = "no"', "admin.metrics_require_token must be true or false"),
        ('[s3_web]\nbind_addr = "[::]:3902"', "missing required key 's3_web.root_domain'"),
        ("[k2v_api]", "missing required key 'k2v_api.api_bind_addr'"),
        (
            '[consul_discovery]\nservice_name = "g"',
            "missing required key 'consul_discovery.consul_http_addr'",
        ),
        (
            '[consul_discovery]\napi = "x"\nconsul_http_addr = "h"\nservice_name = "g"',
            "consul_discovery.api must be one of",
        ),
        (
            '[kubernetes_discovery]\nnamespace = "g"',
            "missing required key 'kubernetes_discovery.service_name'",
        ),
    ],
)
def test_invalid_values_name_the_key_and_what_is_expected(line: str, message: str) -> None:
    key = line.split(" ")[0]
    text = without(MINIMAL, key) if key in TOP_LEVEL_KEYS else MINIMAL
    assert message in error_of(text + "\n" + line)


@pytest.mark.parametrize("key", ["metadata_dir", "data_dir", "rpc_bind_addr", "replication_factor"])
def test_missing_required_key_is_named(key: str) -> None:
    assert f"missing required key '{key}' in grange.toml" in error_of(without(MINIMAL, key))


def test_missing_rpc_secret_is_refused_unless_not_required() -> None:
    text = without(MINIMAL, "rpc_secret")
    assert error_of(text) == "rpc_secret is required (set rpc_secret, rpc_secret_file or GRANGE_RPC_SECRET)"
    c = parse(text, require_secret=False)
    assert c.rpc_secret is None and c.rpc_secret_bytes is None


# --- files and TOML -----------------------------------------------------------------------------


def test_missing_config_file() -> None:
    with pytest.raises(ConfigError) as info:
        load_config("/x/y.toml", {})
    assert str(info.value) == "cannot read config file /x/y.toml: No such file or directory"


def test_toml_syntax_error_gives_the_line() -> None:
    message = error_of(MINIMAL + "\nblock_size = = 1\n")
    assert message.startswith("grange.toml is not valid TOML:") and "line 8" in message


def test_load_config_reads_the_file_and_records_it(tmp_path: os.PathLike[str]) -> None:
    path = os.path.join(tmp_path, "grange.toml")
    with open(path, "w") as f:
        f.write(OPERATOR_CONFIG)
    assert load_config(path, {}).config_file == path


def test_config_file_from_environment_grange_first(tmp_path: os.PathLike[str]) -> None:
    grange, garage = os.path.join(tmp_path, "grange.toml"), os.path.join(tmp_path, "garage.toml")
    for path, factor in ((grange, 1), (garage, 2)):
        with open(path, "w") as f:
            f.write(without(MINIMAL, "replication_factor") + f"\nreplication_factor = {factor}")
    assert (
        load_config(None, {"GRANGE_CONFIG_FILE": grange, "GARAGE_CONFIG_FILE": garage}).replication_factor
        == 1
    )
    assert load_config(None, {"GARAGE_CONFIG_FILE": garage}).replication_factor == 2
    if not os.path.exists("/etc/grange.toml"):
        with pytest.raises(ConfigError, match="^cannot read config file /etc/grange.toml:"):
            load_config(None, {})


# --- secrets ----------------------------------------------------------------------------------


def test_rpc_secret_file_is_read_and_stripped(tmp_path: os.PathLike[str]) -> None:
    path = write_secret(os.path.join(tmp_path, "secret"), f"  {SECRET}\n\n")
    c = parse(without(MINIMAL, "rpc_secret") + f'\nrpc_secret_file = "{path}"')
    assert c.rpc_secret == SECRET and c.rpc_secret_file == path


@pytest.mark.parametrize("mode", [0o644, 0o640, 0o604])
def test_world_readable_secret_file_is_refused(tmp_path: os.PathLike[str], mode: int) -> None:
    path = write_secret(os.path.join(tmp_path, "secret"), SECRET, mode)
    message = error_of(without(MINIMAL, "rpc_secret") + f'\nrpc_secret_file = "{path}"')
    assert message == (
        f"secret file {path} is world-readable (mode {mode:04o}): chmod 600 it, "
        "or set allow_world_readable_secrets = true"
    )


def test_world_readable_secret_file_is_accepted_with_the_flag(tmp_path: os.PathLike[str]) -> None:
    path = write_secret(os.path.join(tmp_path, "secret"), SECRET, 0o644)
    text = without(MINIMAL, "rpc_secret") + f'\nrpc_secret_file = "{path}"'
    assert parse(text + "\nallow_world_readable_secrets = true").rpc_secret == SECRET
    assert parse(text, {"GRANGE_ALLOW_WORLD_READABLE_SECRETS": "true"}).rpc_secret == SECRET
    assert parse(text, {"GARAGE_ALLOW_WORLD_READABLE_SECRETS": "true"}).rpc_secret == SECRET
    # The environment also overrides the file's permission the other way, as in Garage.
    env_false = {"GRANGE_ALLOW_WORLD_READABLE_SECRETS": "false"}
    assert "world-readable" in error_of(text + "\nallow_world_readable_secrets = true", env_false)
    assert "must be true or false" in error_of(text, {"GRANGE_ALLOW_WORLD_READABLE_SECRETS": "maybe"})


def test_missing_secret_file_names_the_setting(tmp_path: os.PathLike[str]) -> None:
    path = os.path.join(tmp_path, "nope")
    message = error_of(without(MINIMAL, "rpc_secret") + f'\nrpc_secret_file = "{path}"')
    assert message == f"cannot read secret file {path} (rpc_secret_file): No such file or directory"


def test_empty_secret_file_is_refused(tmp_path: os.PathLike[str]) -> None:
    path = write_secret(os.path.join(tmp_path, "secret"), "\n")
    assert "is empty" in error_of(without(MINIMAL, "rpc_secret") + f'\nrpc_secret_file = "{path}"')


def test_rpc_secret_and_rpc_secret_file_together_are_refused(tmp_path: os.PathLike[str]) -> None:
    path = write_secret(os.path.join(tmp_path, "secret"), SECRET)
    assert (
        error_of(MINIMAL + f'\nrpc_secret_file = "{path}"')
        == "only one of rpc_secret and rpc_secret_file can be set"
    )


def test_environment_rpc_secret_overrides_the_file() -> None:
    assert parse(MINIMAL, {"GRANGE_RPC_SECRET": OTHER_SECRET}).rpc_secret == OTHER_SECRET
    assert parse(MINIMAL, {"GARAGE_RPC_SECRET": OTHER_SECRET}).rpc_secret == OTHER_SECRET
    both = {"GRANGE_RPC_SECRET": OTHER_SECRET, "GARAGE_RPC_SECRET": SECRET}
    assert parse(without(MINIMAL, "rpc_secret"), both).rpc_secret == OTHER_SECRET


def test_environment_rpc_secret_file(tmp_path: os.PathLike[str]) -> None:
    path = write_secret(os.path.join(tmp_path, "secret"), OTHER_SECRET + "\n")
    assert parse(MINIMAL, {"GRANGE_RPC_SECRET_FILE": path}).rpc_secret_bytes == bytes.fromhex(OTHER_SECRET)
    env = {"GRANGE_RPC_SECRET_FILE": path, "GRANGE_RPC_SECRET": OTHER_SECRET}
    assert error_of(MINIMAL, env) == "only one of GRANGE_RPC_SECRET and GRANGE_RPC_SECRET_FILE can be set"
    # GRANGE_ wins as a pair: the GARAGE_ spelling is not mixed in.
    assert (
        parse(MINIMAL, {"GRANGE_RPC_SECRET_FILE": path, "GARAGE_RPC_SECRET": SECRET}).rpc_secret
        == OTHER_SECRET
    )


def test_invalid_environment_rpc_secret_names_the_variable() -> None:
    message = error_of(MINIMAL, {"GRANGE_RPC_SECRET": "short"})
    assert message.startswith("rpc_secret (from GRANGE_RPC_SECRET) must be 64 hexadecimal characters")


def test_admin_and_metrics_tokens_from_files_and_environment(tmp_path: os.PathLike[str]) -> None:
    admin_file = write_secret(os.path.join(tmp_path, "admin"), "from-file\n")
    text = MINIMAL + f'[admin]\nadmin_token_file = "{admin_file}"\nmetrics_token = "m1"\n'
    c = parse(text)
    assert (c.admin.admin_token, c.admin.admin_token_file, c.admin.metrics_token) == (
        "from-file",
        admin_file,
        "m1",
    )
    c = parse(text, {"GRANGE_ADMIN_TOKEN": "from-env", "GARAGE_METRICS_TOKEN": "m2"})
    assert (c.admin.admin_token, c.admin.metrics_token) == ("from-env", "m2")
    both = MINIMAL + f'[admin]\nadmin_token_file = "{admin_file}"\nadmin_token = "x"\n'
    assert error_of(both) == "only one of admin.admin_token and admin.admin_token_file can be set"


# --- legacy replication_mode --------------------------------------------------------------------


@pytest.mark.parametrize(
    "mode, factor, consistency",
    [
        ('"none"', 1, "consistent"),
        ('"1"', 1, "consistent"),
        ('"2"', 2, "consistent"),
        ('"3"', 3, "consistent"),
        ("3", 3, "consistent"),
        ('"3-degraded"', 3, "degraded"),
        ('"2-dangerous"', 2, "dangerous"),
    ],
)
def test_legacy_replication_mode_is_mapped_with_a_warning(mode: str, factor: int, consistency: str) -> None:
    c = parse(without(MINIMAL, "replication_factor") + f"\nreplication_mode = {mode}")
    assert (c.replication_factor, c.consistency_mode) == (factor, consistency)
    assert len(c.warnings) == 1 and c.warnings[0].startswith("replication_mode: legacy option")


def test_legacy_replication_mode_conflicts_are_refused() -> None:
    assert "not both" in error_of(MINIMAL + '\nreplication_mode = "3"')
    legacy = without(MINIMAL, "replication_factor") + '\nreplication_mode = "3"'
    assert "cannot be combined with consistency_mode" in error_of(legacy + '\nconsistency_mode = "degraded"')
    assert 'replication_mode must be one of "none", "1"' in error_of(legacy.replace('"3"', '"4"'))


# --- address helpers ----------------------------------------------------------------------------


@pytest.mark.parametrize(
    "text, expected",
    [
        ("127.0.0.1:3901", ("127.0.0.1", 3901)),
        ("[::]:3901", ("::", 3901)),
        ("[fc00:1::1]:80", ("fc00:1::1", 80)),
        ("garage.example.org:3901", ("garage.example.org", 3901)),
        ("localhost:0", ("localhost", 0)),
    ],
)
def test_split_host_port(text: str, expected: tuple[str, int]) -> None:
    assert split_host_port(text) == expected


@pytest.mark.parametrize(
    "text", ["localhost", ":80", "[::1]", "[nope]:80", "a b:80", "h:-1", "h:65536", "::1:80"]
)
def test_split_host_port_refuses(text: str) -> None:
    with pytest.raises(ValueError):
        split_host_port(text)


def test_parse_peer_addr() -> None:
    assert parse_peer_addr(f"{NODE_ID}@[::1]:3901") == (bytes.fromhex(NODE_ID), "::1", 3901)
    with pytest.raises(ValueError, match="64 hexadecimal"):
        parse_peer_addr(f"{NODE_ID[:-2]}@[::1]:3901")


# --- sizes and durations ------------------------------------------------------------------------


@pytest.mark.parametrize(
    "text, expected",
    [
        (0, 0),
        (1048576, 1048576),
        ("100000", 100000),
        ("0", 0),
        ("1B", 1),
        ("1K", KB),
        ("1KB", KB),
        ("1kb", KB),
        ("1Ki", KIB),
        ("1KiB", KIB),
        ("1.5KiB", 1536),
        ("1M", MB),
        ("1MB", MB),
        ("1MiB", MIB),
        ("256MiB", 256 * MIB),
        ("1.5G", 1_500_000_000),
        ("10 GB", 10 * GB),
        ("4 GiB", 4 * GIB),
        ("1T", TB),
        ("521TiB", 521 * TIB),
        ("8P", 8 * PB),
        ("12 PiB", 12 * PIB),
        ("1.0 EB", EB),
        (" 1M ", MB),
        (".5K", 500),
        ("1.0005K", 1000),  # truncated toward zero, as bytesize does
    ],
)
def test_parse_size(text: int | str, expected: int) -> None:
    assert parse_size(text, "x") == expected


@pytest.mark.parametrize(
    "bad", ["", "M", "1.5", "1X", "-1M", "1 000", "1.2.3M", "1e3", "a124GB", "20E", -1, True, 1.5, None]
)
def test_parse_size_refuses_with_the_setting_name(bad: object) -> None:
    with pytest.raises(ValueError, match="^block_size"):
        parse_size(bad, "block_size")  # type: ignore[arg-type]


@pytest.mark.parametrize(
    "n, decimal, iec",
    [
        (0, "0 B", "0 B"),
        (999, "999 B", "999 B"),
        (1000, "1.0 KB", "1000 B"),
        (1024, "1.0 KB", "1.0 KiB"),
        (1500, "1.5 KB", "1.5 KiB"),
        (MIB, "1.0 MB", "1.0 MiB"),
        (GB, "1.0 GB", "953.7 MiB"),
        (TIB, "1.1 TB", "1.0 TiB"),
        (2**64 - 1, "18.4 EB", "16.0 EiB"),
    ],
)
def test_format_size(n: int, decimal: str, iec: str) -> None:
    assert (format_size(n), format_size_iec(n)) == (decimal, iec)


@given(st.integers(min_value=0, max_value=15 * 2**60))  # rounding 15.99 EiB up would overflow u64
def test_format_then_parse_size_is_within_the_printed_precision(n: int) -> None:
    # One decimal of a unit >= 1: at most 5% off, plus the byte truncation may lose.
    for shown in (format_size(n), format_size_iec(n)):
        assert abs(parse_size(shown) - n) <= n * 0.05 + 1


@given(
    st.integers(min_value=0, max_value=10**6),
    st.sampled_from(["", "B", "K", "kb", "M", "MB", "g", "GB", "Ki", "KiB", "mib", "GiB", "TiB"]),
    st.sampled_from(["", " "]),
)
def test_parse_size_of_whole_units_is_exact(k: int, unit: str, space: str) -> None:
    factors = {"": 1, "b": 1, "k": KB, "kb": KB, "m": MB, "mb": MB, "g": GB, "gb": GB}
    factors |= {"ki": KIB, "kib": KIB, "mib": MIB, "gib": GIB, "tib": TIB}
    text = f"{k}{space if unit else ''}{unit}"
    assert parse_size(text) == k * factors[unit.lower()]


@pytest.mark.parametrize(
    "text, seconds",
    [
        ("6h", 6 * 3600),
        ("30d", 30 * 86400),
        ("1h30m", 5400),
        ("90s", 90),
        ("90", 90),
        (90, 90),
        ("1.5h", 5400),
        ("500ms", 0.5),
        ("2w", 14 * 86400),
        ("1 day 2 hours", 93600),
        ("1 hour, 15 minutes, 29 seconds", 4529),
        ("1m", 60),
        ("1M", 2_629_746),  # parse_duration: capital M is a month
        ("1y", 31_556_952),
    ],
)
def test_parse_duration(text: str | int, seconds: float) -> None:
    assert parse_duration(text) == pytest.approx(seconds)


@pytest.mark.parametrize("bad", ["", "h", "6x", "1h 30", "-1h", "abc", "1h and 2m", True, -5, None])
def test_parse_duration_refuses_with_the_setting_name(bad: object) -> None:
    with pytest.raises(ValueError, match="^interval"):
        parse_duration(bad, "interval")  # type: ignore[arg-type]


@given(st.integers(0, 1000), st.integers(0, 59), st.integers(0, 59), st.sampled_from(["", " "]))
def test_parse_duration_adds_its_terms(h: int, m: int, s: int, sep: str) -> None:
    assert parse_duration(f"{h}h{sep}{m}m{sep}{s}s") == h * 3600 + m * 60 + s


def test_file_mode_constant_matches_garage() -> None:
    # Garage (src/garage/secrets.rs) refuses mode & 0o077: group bits too, not only "other".
    from grange.util.config import SECRET_FILE_FORBIDDEN_MODE_BITS

    assert SECRET_FILE_FORBIDDEN_MODE_BITS == stat.S_IRWXG | stat.S_IRWXO
