"""Broker startup time: process start -> TCP accept -> ApiVersions answered, against Python's own floor.

    python bench/startup_bench.py                 # 15 starts of each, medians and [min-max]
    python bench/startup_bench.py --runs 30 --importtime   # also the 15 slowest imports of one start

Rows, all in one run so that they share the machine's load:
- ``python -c pass``: interpreter start and exit, the floor of any Python program;
- ``python listen``: interpreter start, ``asyncio`` import and a listening socket: the floor of a
  Python server;
- ``moldau server`` as the tests start it (``python -m moldau.cli.main server``), on an empty data dir,
  until a TCP connect succeeds and until ApiVersions v0 is answered.

The process start is the ``Popen`` call; readiness is polled every 2 ms (bench/brokers.py).
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).parent))
import brokers as B  # noqa: E402

LISTEN_FLOOR = (
    "import asyncio, socket, sys, time\n"
    "s = socket.create_server(('127.0.0.1', int(sys.argv[1])))\n"
    "time.sleep(30)\n"
)


def time_exit(argv: list[str], runs: int) -> list[float]:
    out = []
    for _ in range(runs):
        t0 = time.monotonic()
        subprocess.run(argv, check=True, stdin=subprocess.DEVNULL)
        out.append(time.monotonic() - t0)
    return out


def time_listen_floor(runs: int) -> list[float]:
    out = []
    for _ in range(runs):
        port = B.free_port()
        t0 = time.monotonic()
        proc = subprocess.Popen([sys.executable, "-c", LISTEN_FLOOR, str(port)], stdin=subprocess.DEVNULL)
        try:
            ready = B.wait_tcp(port, proc, 30)
            if ready is None:
                raise SystemExit("the listen floor did not listen")
            out.append(ready - t0)
        finally:
            proc.kill()
            proc.wait()
    return out


def importtime(workdir: Path) -> str:
    """The slowest imports of one broker start (``-X importtime``), cumulative microseconds."""
    port = B.free_port()
    argv = [sys.executable, "-X", "importtime", "-m", "moldau.cli.main", "server", "--override",
            f"listeners=PLAINTEXT://127.0.0.1:{port}", "--override", f"log.dirs={workdir / 'importtime'}"]
    proc = subprocess.Popen(argv, stderr=subprocess.PIPE, stdin=subprocess.DEVNULL, text=True)
    try:
        B.wait_tcp(port, proc, 30)
    finally:
        proc.terminate()
        _, err = proc.communicate(timeout=30)
    rows = []
    for line in err.splitlines():
        if line.startswith("import time:") and "|" in line and "cumulative" not in line:
            self_us, cum_us, name = line.removeprefix("import time:").split("|")
            rows.append((int(cum_us), int(self_us), name.rstrip()))
    rows.sort(reverse=True)
    return "\n".join(f"{cum / 1000:8.1f} ms cumulative {s / 1000:6.1f} ms self {n}" for cum, s, n in rows[:15])


def stat(values: list[float]) -> str:
    ms = [v * 1000 for v in values]
    return f"{statistics.median(ms):7.1f} ms  [{min(ms):.1f}-{max(ms):.1f}]  n={len(ms)}"


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--runs", type=int, default=15)
    ap.add_argument("--cmd", default=f"{sys.executable} -m moldau.cli.main server",
                    help="the broker command; listeners and log.dirs overrides are appended")
    ap.add_argument("--importtime", action="store_true", help="also print the slowest imports")
    args = ap.parse_args()
    spec = B.moldau_spec(args.cmd)
    with tempfile.TemporaryDirectory(prefix="moldau-startup-") as tmp:
        workdir = Path(tmp)
        floor = time_exit([sys.executable, "-c", "pass"], args.runs)
        listen = time_listen_floor(args.runs)
        moldau = B.startup_times(spec, workdir, args.runs, timeout=60)
        if moldau["error"]:
            print(f"moldau server failed: {moldau['error']}", file=sys.stderr)
            return 1
        print(f"python: {sys.version.split()[0]}, cpus: {os.cpu_count()}, load: {os.getloadavg()[0]:.2f}")
        print(f"python -c pass                      {stat(floor)}")
        print(f"python listen (asyncio + socket)    {stat(listen)}")
        print(f"moldau server -> TCP accept         {stat(moldau['tcp_s'])}")
        print(f"moldau server -> ApiVersions        {stat(moldau['api_s'])}")
        if args.importtime:
            print(importtime(workdir))
    return 0


if __name__ == "__main__":
    sys.exit(main())
