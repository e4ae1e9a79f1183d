"""RPC between two processes on loopback, next to a plain TCP echo and a bare TLS echo.

Prints one JSON line per measurement:
  {"bench": "rpc_small_rtt", "impl": "grange-rpc"|"tcp-echo"|"tls-echo", "n": ..., "p50_us": ..., "p99_us": ...}
  {"bench": "stream_1mib", "impl": ..., "mib": ..., "mb_per_s": ...}

The server side runs in a child process (`python rpc_bench.py serve KIND PORTFILE`) so that
the two ends do not share one event loop or one core. Loops are bounded in count.
Usage: python benchmarks/rpc_bench.py [--n 5000] [--mib 256]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import subprocess
import sys
import tempfile
import time

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from grange.net.conn import Reply
from grange.net.frame import Priority
from grange.net.keys import make_tls_identity
from grange.net.netapp import NetApp

MIB = 1024 * 1024
SECRET = bytes.fromhex(os.environ.get("BENCH_SECRET", "11" * 32))
# Fixed server key so that the client knows which node id to expect.
SERVER_KEY_SEED = bytes(range(32))


# ---------------------------------------------------------------------- servers (child process)
async def serve(kind: str, portfile: str) -> None:
    if kind == "grange-rpc":
        netapp = NetApp(make_tls_identity(Ed25519PrivateKey.from_private_bytes(SERVER_KEY_SEED), SECRET))

        async def ping(peer, body, stream):
            return body

        async def sink(peer, body, stream):
            n = 0
            async for chunk in stream:
                n += len(chunk)
            return n

        async def source(peer, body, stream):
            block = os.urandom(MIB)

            async def gen():
                for _ in range(body):
                    yield block

            return Reply(body, gen())

        netapp.register("ping", ping)
        netapp.register("sink", sink)
        netapp.register("source", source)
        port = await netapp.listen("127.0.0.1", 0)
    else:
        ctx = None
        if kind == "tls-echo":
            ctx = make_tls_identity(Ed25519PrivateKey.from_private_bytes(SERVER_KEY_SEED), SECRET).server_context

        async def handle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
            # Echo protocol: 4-byte length + payload; a length with the top bit set means
            # "count and swallow this many bytes, answer 4 bytes" (the upload test).
            try:
                while True:
                    hdr = await reader.readexactly(4)
                    n = int.from_bytes(hdr, "big")
                    if n & 0x80000000:
                        remaining = n & 0x7FFFFFFF
                        while remaining:
                            chunk = await reader.read(min(remaining, 256 * 1024))
                            if not chunk:
                                return
                            remaining -= len(chunk)
                        writer.write(b"done")
                    else:
                        writer.write(hdr + await reader.readexactly(n))
                    await writer.drain()
            except (asyncio.IncompleteReadError, ConnectionError):
                writer.close()

        server = await asyncio.start_server(handle, "127.0.0.1", 0, ssl=ctx)
        port = server.sockets[0].getsockname()[1]
    with open(portfile, "w") as f:
        f.write(str(port))
    await asyncio.Event().wait()


# ---------------------------------------------------------------------- clients
def pct(samples: list[float], q: float) -> float:
    s = sorted(samples)
    return s[min(len(s) - 1, int(q * len(s)))]


async def bench_grange(port: int, n: int, mib: int) -> list[dict]:
    client = NetApp(make_tls_identity(Ed25519PrivateKey.generate(), SECRET))
    server_id = make_tls_identity(Ed25519PrivateKey.from_private_bytes(SERVER_KEY_SEED), SECRET).node_id
    await client.connect(server_id, f"127.0.0.1:{port}")
    msg = {"key": "x" * 64, "n": 1}
    for _ in range(200):
        await client.call(server_id, "ping", msg, prio=Priority.INTERACTIVE)
    lat = []
    for _ in range(n):
        t0 = time.perf_counter()
        await client.call(server_id, "ping", msg, prio=Priority.INTERACTIVE)
        lat.append(time.perf_counter() - t0)
    out = [{"bench": "rpc_small_rtt", "impl": "grange-rpc", "n": n,
            "p50_us": round(pct(lat, 0.5) * 1e6, 1), "p99_us": round(pct(lat, 0.99) * 1e6, 1)}]
    block = os.urandom(MIB)

    async def gen():
        for _ in range(mib):
            yield block

    t0 = time.perf_counter()
    got = await client.call(server_id, "sink", None, stream=gen(), prio=Priority.NORMAL, timeout_s=600)
    dt = time.perf_counter() - t0
    assert got == mib * MIB
    out.append({"bench": "stream_1mib_upload", "impl": "grange-rpc", "mib": mib, "mb_per_s": round(mib * MIB / dt / 1e6, 1)})
    t0 = time.perf_counter()
    _, stream = await client.call_stream(server_id, "source", mib, prio=Priority.NORMAL, timeout_s=600)
    total = 0
    async for chunk in stream:
        total += len(chunk)
    dt = time.perf_counter() - t0
    assert total == mib * MIB
    out.append({"bench": "stream_1mib_download", "impl": "grange-rpc", "mib": mib, "mb_per_s": round(mib * MIB / dt / 1e6, 1)})
    await client.close()
    return out


async def bench_echo(kind: str, port: int, n: int, mib: int) -> list[dict]:
    ctx = None
    if kind == "tls-echo":
        ctx = make_tls_identity(Ed25519PrivateKey.generate(), SECRET).client_context
    reader, writer = await asyncio.open_connection("127.0.0.1", port, ssl=ctx)
    payload = json.dumps({"key": "x" * 64, "n": 1}).encode()
    frame = len(payload).to_bytes(4, "big") + payload

    async def one() -> None:
        writer.write(frame)
        await writer.drain()
        hdr = await reader.readexactly(4)
        await reader.readexactly(int.from_bytes(hdr, "big"))

    for _ in range(200):
        await one()
    lat = []
    for _ in range(n):
        t0 = time.perf_counter()
        await one()
        lat.append(time.perf_counter() - t0)
    out = [{"bench": "rpc_small_rtt", "impl": kind, "n": n,
            "p50_us": round(pct(lat, 0.5) * 1e6, 1), "p99_us": round(pct(lat, 0.99) * 1e6, 1)}]
    block = os.urandom(MIB)
    t0 = time.perf_counter()
    writer.write((0x80000000 | (mib * MIB)).to_bytes(4, "big") if mib * MIB < 0x80000000 else b"")
    for _ in range(mib):
        writer.write(block)
        await writer.drain()
    assert await reader.readexactly(4) == b"done"
    dt = time.perf_counter() - t0
    out.append({"bench": "stream_1mib_upload", "impl": kind, "mib": mib, "mb_per_s": round(mib * MIB / dt / 1e6, 1)})
    writer.close()
    return out


async def run_client(kind: str, port: int, n: int, mib: int) -> list[dict]:
    if kind == "grange-rpc":
        return await bench_grange(port, n, mib)
    return await bench_echo(kind, port, n, mib)


def main() -> None:
    if len(sys.argv) > 1 and sys.argv[1] == "serve":
        asyncio.run(serve(sys.argv[2], sys.argv[3]))
        return
    ap = argparse.ArgumentParser()
    ap.add_argument("--n", type=int, default=5000, help="round trips per implementation")
    ap.add_argument("--mib", type=int, default=256, help="MiB streamed per implementation (< 2048)")
    a = ap.parse_args()
    for kind in ("tcp-echo", "tls-echo", "grange-rpc"):
        with tempfile.TemporaryDirectory() as d:
            portfile = os.path.join(d, "port")
            proc = subprocess.Popen([sys.executable, __file__, "serve", kind, portfile])
            try:
                deadline = time.monotonic() + 20
                while not os.path.exists(portfile) or not open(portfile).read():
                    if time.monotonic() > deadline:
                        raise RuntimeError(f"{kind} server did not start")
                    time.sleep(0.05)
                port = int(open(portfile).read())
                for row in asyncio.run(run_client(kind, port, a.n, a.mib)):
                    print(json.dumps(row), flush=True)
            finally:
                proc.kill()
                proc.wait()
    print(json.dumps({"bench": "machine", "cpus": os.cpu_count(), "python": sys.version.split()[0],
                      "median_of": "single run", "date": time.strftime("%Y-%m-%d")}))


if __name__ == "__main__":
    main()
