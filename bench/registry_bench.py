"""Schema registry latency: GET /schemas/ids/{id} and POST /subjects/{s}/versions (register), p50/p99.

Starts `moldau server` with the built-in registry (`schema.registry.listeners`) as a child process, so the
client's work does not share a GIL with the registry, and drives it over one keep-alive HTTP connection, as
confluent-kafka's SchemaRegistryClient does. Targets (issue 13): GET by id p99 < 5 ms, register p99 < 50 ms.

    python bench/registry_bench.py                  # 2000 GETs, 300 registrations
    python bench/registry_bench.py --gets 500 --registers 100
"""

from __future__ import annotations

import argparse
import http.client
import json
import os
import socket
import statistics
import subprocess
import sys
import tempfile
import time

CONTENT_TYPE = "application/vnd.schemaregistry.v1+json"

# A bare starlette/uvicorn endpoint answering `{}` in a child process: measured in the same run as the registry,
# it shows how much of the tail is this machine's scheduling rather than the registry's work.
BASELINE_SERVER = """
import asyncio, socket, sys
import uvicorn
from starlette.applications import Starlette
from starlette.responses import Response
from starlette.routing import Route

async def hello(request):
    return Response("{}", media_type="application/json")

sock = socket.socket()
sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
sock.bind(("127.0.0.1", int(sys.argv[1])))
sock.listen()
server = uvicorn.Server(uvicorn.Config(Starlette(routes=[Route("/", hello)]), log_level="warning", lifespan="off"))
asyncio.run(server.serve(sockets=[sock]))
"""


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def wait_for(port: int, timeout: float = 60.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            socket.create_connection(("127.0.0.1", port), timeout=0.5).close()
            return
        except OSError:
            time.sleep(0.05)
    raise TimeoutError(f"nothing listened on {port}")


def request(conn: http.client.HTTPConnection, method: str, path: str, body: object = None) -> tuple[float, object]:
    data = None if body is None else json.dumps(body)
    started = time.perf_counter()
    conn.request(method, path, body=data, headers={"Content-Type": CONTENT_TYPE})
    response = conn.getresponse()
    payload = response.read()
    elapsed = (time.perf_counter() - started) * 1000
    if response.status != 200:
        raise RuntimeError(f"{method} {path}: {response.status} {payload!r}")
    return elapsed, json.loads(payload)


def percentile(values: list[float], p: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(p / 100 * (len(ordered) - 1)))]


def schema(i: int) -> str:
    return json.dumps({"type": "record", "name": "Bench", "namespace": "bench",
                       "fields": [{"name": f"f{j}", "type": "string", "default": ""} for j in range(i % 7 + 1)]
                       + [{"name": "n", "type": "long", "default": i}]})


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--gets", type=int, default=2000)
    parser.add_argument("--registers", type=int, default=300)
    args = parser.parse_args()
    broker_port, registry_port = free_port(), free_port()
    with tempfile.TemporaryDirectory(prefix="moldau-registry-bench-") as data:
        process = subprocess.Popen(
            [sys.executable, "-m", "moldau.cli.main", "server", "--log-level", "WARNING",
             "--override", f"listeners=PLAINTEXT://127.0.0.1:{broker_port}", "--override", f"log.dirs={data}",
             "--override", f"schema.registry.listeners=http://127.0.0.1:{registry_port}"],
            env=dict(os.environ), stderr=subprocess.DEVNULL)
        try:
            wait_for(registry_port)
            conn = http.client.HTTPConnection("127.0.0.1", registry_port, timeout=30)
            request(conn, "PUT", "/config", {"compatibility": "NONE"})
            register_ms, ids = [], []
            for i in range(args.registers):
                elapsed, body = request(conn, "POST", f"/subjects/bench-{i % 10}/versions", {"schema": schema(i)})
                register_ms.append(elapsed)
                ids.append(body["id"])  # type: ignore[index]
            for _ in range(50):  # warm up the connection and caches
                request(conn, "GET", f"/schemas/ids/{ids[0]}")
            get_ms = [request(conn, "GET", f"/schemas/ids/{ids[i % len(ids)]}")[0] for i in range(args.gets)]
        finally:
            process.terminate()
            process.wait(30)
    baseline_port = free_port()
    baseline = subprocess.Popen([sys.executable, "-c", BASELINE_SERVER, str(baseline_port)])
    try:
        wait_for(baseline_port)
        conn = http.client.HTTPConnection("127.0.0.1", baseline_port, timeout=30)
        for _ in range(50):
            request(conn, "GET", "/")
        baseline_ms = [request(conn, "GET", "/")[0] for _ in range(args.gets)]
    finally:
        baseline.terminate()
        baseline.wait(30)
    cores = os.cpu_count()
    load = os.getloadavg()[0]
    print(f"schema registry latency, {cores} cores, load average {load:.1f}")
    for name, values, target in (("GET /schemas/ids/{id}", get_ms, 5.0), ("register", register_ms, 50.0),
                                 ("baseline: bare uvicorn GET", baseline_ms, None)):
        p99 = percentile(values, 99)
        verdict = "" if target is None else f"   target p99 < {target:g} ms: {'ok' if p99 < target else 'MISSED'}"
        print(f"  {name:<28} n={len(values):<5} p50 {statistics.median(values):6.2f} ms   p99 {p99:6.2f} ms   "
              f"max {max(values):6.2f} ms{verdict}")


if __name__ == "__main__":
    main()
