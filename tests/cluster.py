"""A real cluster: N `grange server` processes on 127.0.0.1, driven through the CLI.

Exactly what an operator does: a TOML file per node, `grange server`, `grange node id -q`,
`grange node connect`, `grange layout assign/apply`. Ports are picked free at run time, data
lives in a temp dir, processes are stopped by PID. Waits poll a condition with a deadline;
nothing sleeps for a fixed time.
"""

from __future__ import annotations

import json
import os
import secrets
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

GRANGE = str(Path(sys.executable).with_name("grange"))


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait_until(cond: Callable[[], Any], timeout: float = 30.0, what: str = "condition") -> Any:
    deadline = time.monotonic() + timeout
    last_exc: Exception | None = None
    while time.monotonic() < deadline:
        try:
            value = cond()
            if value:
                return value
        except Exception as e:  # the condition may fail while the cluster settles
            last_exc = e
        time.sleep(0.2)
    raise AssertionError(f"timed out after {timeout}s waiting for {what}" + (f" (last error: {last_exc})" if last_exc else ""))


class CliFailed(Exception):
    def __init__(self, args: tuple[str, ...], proc: subprocess.CompletedProcess[str]) -> None:
        super().__init__(f"grange {' '.join(args)} exited {proc.returncode}: {proc.stderr.strip() or proc.stdout.strip()}")
        self.proc = proc


class Node:
    def __init__(self, root: Path, index: int, secret: str, rf: int, extra_config: str = "",
                 env: dict[str, str] | None = None) -> None:
        self.index = index
        self.dir = root / f"node{index}"
        self.dir.mkdir(parents=True)
        self.rpc_port = free_port()
        self.s3_port = free_port()
        self.secret = secret
        self.rf = rf
        self.extra_config = extra_config
        self.env = {**os.environ, **(env or {})}
        self.config = self.dir / "grange.toml"
        self.write_config()
        self.proc: subprocess.Popen[bytes] | None = None
        self.id: str | None = None

    def write_config(self) -> None:
        self.config.write_text(f'''metadata_dir = "{self.dir}/meta"
data_dir = "{self.dir}/data"
db_engine = "lmdb"
replication_factor = {self.rf}
rpc_bind_addr = "127.0.0.1:{self.rpc_port}"
rpc_public_addr = "127.0.0.1:{self.rpc_port}"
rpc_secret = "{self.secret}"
{self.extra_config}
[s3_api]
s3_region = "garage"
api_bind_addr = "127.0.0.1:{self.s3_port}"
root_domain = ".s3.localhost"
''')

    @property
    def s3_endpoint(self) -> str:
        return f"http://127.0.0.1:{self.s3_port}"

    @property
    def addr(self) -> str:
        return f"127.0.0.1:{self.rpc_port}"

    @property
    def log_path(self) -> Path:
        return self.dir / "server.log"

    def start(self, *extra: str) -> None:
        assert self.proc is None or self.proc.poll() is not None
        log = open(self.log_path, "ab")
        self.proc = subprocess.Popen([GRANGE, "-c", str(self.config), "server", *extra], stdout=log, stderr=log,
                                     start_new_session=True, env=self.env)
        log.close()
        self.id = wait_until(self._read_id, 30, f"node {self.index} to start")

    def _read_id(self) -> str | None:
        assert self.proc is not None
        if self.proc.poll() is not None:
            raise RuntimeError(f"node {self.index} exited {self.proc.returncode}: {self.log_tail()}")
        r = self.cli_raw("node", "id", "-q")
        if r.returncode != 0:
            return None
        nid = r.stdout.strip().split("@")[0]
        # The key exists before the listener: wait until the node answers RPC too.
        return nid if self.cli_raw("json-api", "GetNodeInfo").returncode == 0 else None

    def log_tail(self, n: int = 20) -> str:
        try:
            return "".join(self.log_path.read_text().splitlines(keepends=True)[-n:])
        except OSError:
            return ""

    def error_lines(self) -> list[str]:
        """ERROR lines and tracebacks this node logged (an expected failure is a WARNING)."""
        try:
            text = self.log_path.read_text(errors="replace")
        except OSError:
            return []
        return [f"node {self.index}: {line}" for line in text.splitlines()
                if " ERROR " in line or line.startswith("Traceback")]

    def signal(self, sig: int) -> None:
        assert self.proc is not None
        os.kill(self.proc.pid, sig)

    def kill(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            os.kill(self.proc.pid, signal.SIGKILL)
            self.proc.wait(10)

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            os.kill(self.proc.pid, signal.SIGCONT)
            os.kill(self.proc.pid, signal.SIGTERM)
            try:
                self.proc.wait(15)
            except subprocess.TimeoutExpired:
                self.kill()

    def cli_raw(self, *args: str, timeout: float = 60, input: str | None = None) -> subprocess.CompletedProcess[str]:
        return subprocess.run([GRANGE, "-c", str(self.config), *args], capture_output=True, text=True,
                              timeout=timeout, input=input)

    def cli(self, *args: str, timeout: float = 60) -> str:
        r = self.cli_raw(*args, timeout=timeout)
        if r.returncode != 0:
            raise CliFailed(args, r)
        return r.stdout

    def api(self, op: str, body: Any = None) -> Any:
        args = ["json-api", op] + ([json.dumps(body)] if body is not None else [])
        return json.loads(self.cli(*args))

    def status(self) -> dict[str, Any]:
        return json.loads(self.cli("status", "--json"))

    def up_ids(self) -> set[str]:
        return {n["id"] for n in self.status()["nodes"] if n["isUp"]}


class Cluster:
    def __init__(self, root: Path, n: int, rf: int = 3, secret: str | None = None, extra_config: str = "",
                 env: dict[str, str] | None = None) -> None:
        self.secret = secret or secrets.token_hex(32)
        self.root, self.extra_config, self.env = root, extra_config, env
        self.nodes = [Node(root, i, self.secret, rf, extra_config, env) for i in range(n)]
        self.rf = rf

    def add_node(self) -> Node:
        node = Node(self.root, len(self.nodes), self.secret, self.rf, self.extra_config, self.env)
        self.nodes.append(node)
        node.start()
        return node

    def start(self) -> None:
        for node in self.nodes:
            node.start()

    def connect(self) -> None:
        first = self.nodes[0]
        for node in self.nodes[1:]:
            first.cli("node", "connect", f"{node.id}@{node.addr}")
        ids = {n.id for n in self.nodes}
        for node in self.nodes:
            wait_until(lambda node=node: ids <= node.up_ids(), 30, f"node {node.index} to see every node up")

    def assign_and_apply(self, zones: list[str], capacity: str = "1G") -> None:
        first = self.nodes[0]
        for node, zone in zip(self.nodes, zones, strict=True):
            first.cli("layout", "assign", "-z", zone, "-c", capacity, node.id[:12])
        first.cli("layout", "apply", "--version", "1")

    def stop(self) -> None:
        for node in self.nodes:
            node.stop()
        unexpected = [line for node in self.nodes for line in node.error_lines()]
        if unexpected:  # conventions: a test fails when a server logged an error it did not expect
            raise AssertionError("servers logged errors:\n" + "\n".join(unexpected[:20]))

    def kill_all(self) -> None:
        for node in self.nodes:
            node.kill()


class S3Access:
    """A key with read/write/owner on one bucket, created through the admin operations."""

    def __init__(self, node: Node, bucket: str = "test", key_name: str = "tester") -> None:
        key = node.api("CreateKey", {"name": key_name})
        node.api("UpdateKey", {"id": key["accessKeyId"], "allow": {"createBucket": True}})
        b = node.api("CreateBucket", {"globalAlias": bucket})
        node.api("AllowBucketKey", {"bucketId": b["id"], "accessKeyId": key["accessKeyId"],
                                    "permissions": {"read": True, "write": True, "owner": True}})
        self.key_id = key["accessKeyId"]
        self.secret = key["secretAccessKey"]
        self.bucket = bucket
        self.bucket_id = b["id"]

    def client(self, node: Node, **config: Any) -> Any:
        import boto3
        import botocore.config

        return boto3.client(
            "s3", endpoint_url=node.s3_endpoint, region_name="garage", aws_access_key_id=self.key_id,
            aws_secret_access_key=self.secret,
            config=botocore.config.Config(s3={"addressing_style": "path"}, retries={"max_attempts": 1},
                                          **config),
        )

    def env(self, node: Node) -> dict[str, str]:
        """Environment for the aws CLI and rclone (no config files: everything in env)."""
        return {**os.environ, "AWS_ACCESS_KEY_ID": self.key_id, "AWS_SECRET_ACCESS_KEY": self.secret,
                "AWS_DEFAULT_REGION": "garage", "AWS_ENDPOINT_URL": node.s3_endpoint,
                "AWS_CONFIG_FILE": "/dev/null", "AWS_SHARED_CREDENTIALS_FILE": "/dev/null",
                "RCLONE_CONFIG_GRANGE_TYPE": "s3", "RCLONE_CONFIG_GRANGE_PROVIDER": "Other",
                "RCLONE_CONFIG_GRANGE_ACCESS_KEY_ID": self.key_id,
                "RCLONE_CONFIG_GRANGE_SECRET_ACCESS_KEY": self.secret,
                "RCLONE_CONFIG_GRANGE_ENDPOINT": node.s3_endpoint, "RCLONE_CONFIG_GRANGE_REGION": "garage",
                "RCLONE_CONFIG_GRANGE_FORCE_PATH_STYLE": "true", "RCLONE_CONFIG": "/dev/null"}
