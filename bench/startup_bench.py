"""Broker startup time: process start -> TCP accept -> ApiVersions answered, against Python's own floor.

    python bench/startup_bench.py                          # 15 starts of each row, medians [min-max]
    python bench/startup_bench.py --compare /tmp/old/src   # also another source tree, interleaved
    python bench/startup_bench.py --importtime             # also the slowest imports of one start

Rows, all measured in one run, interleaved, so that they share the machine's load:
- ``python -c pass``: interpreter start and exit, the floor of any Python program here;
- ``python listen``: interpreter start, ``import asyncio`` and a listening socket: the floor of a
  Python server;
- ``moldau`` (and ``--compare``): ``python -m moldau.cli.main server`` (as the tests start it) on an empty
  data dir, until a TCP connect succeeds, until ApiVersions v0 is answered, and the broker's CPU time
  (user + system) at TCP accept, which a loaded machine disturbs less than wall time.

Two bytecode modes (``--bytecode``): ``cached`` is how an installed package runs (pip writes .pyc files at
install; here a private PYTHONPYCACHEPREFIX, warmed by one untimed start); ``none`` compiles every module
from source at each start (PYTHONDONTWRITEBYTECODE=1 with no cache, as in some dev and CI shells).
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

import brokers as B  # bench/ is on sys.path when this runs as a script

SRC = Path(__file__).resolve().parent.parent / "src"
LISTEN_FLOOR = "import asyncio, socket, sys, time\ns = socket.create_server(('127.0.0.1', int(sys.argv[1])))\n" \
               "time.sleep(60)\n"


def env_for(src: Path | None, bytecode: str, pycache: Path) -> dict[str, str]:
    env = dict(os.environ)
    if src is not None:
        env["PYTHONPATH"] = str(src)
    env.pop("PYTHONPYCACHEPREFIX", None)
    if bytecode == "cached":
        env.pop("PYTHONDONTWRITEBYTECODE", None)
        env["PYTHONPYCACHEPREFIX"] = str(pycache)
    else:
        env["PYTHONDONTWRITEBYTECODE"] = "1"
    return env


def cpu_s(pid: int) -> float:
    """user + system CPU seconds of a running process (/proc/PID/stat fields 14 and 15)."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / B.HZ


def start_once(argv: list[str], env: dict[str, str], port: int, api: bool) -> tuple[float, float, float]:
    """Seconds to TCP accept, seconds to ApiVersions (or nan), CPU seconds at TCP accept."""
    t0 = time.monotonic()
    proc = subprocess.Popen(argv, env=env, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
                            stderr=subprocess.PIPE)
    try:
        ready = B.wait_tcp(port, proc, 60)
        if ready is None:
            raise SystemExit(f"{' '.join(argv)} did not listen: {proc.communicate(timeout=10)[1][-2000:]!r}")
        cpu = cpu_s(proc.pid)
        api_s = float("nan")
        if api:
            while not B.api_versions_ok(port):
                if time.monotonic() - t0 > 60:
                    raise SystemExit("no ApiVersions answer within 60 s")
                time.sleep(0.002)
            api_s = time.monotonic() - t0
        return ready - t0, api_s, cpu
    finally:
        proc.terminate()
        try:
            proc.communicate(timeout=30)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.communicate()


def broker_argv(port: int, data_dir: Path) -> list[str]:
    return [sys.executable, "-m", "moldau.cli.main", "server", "--log-level", "WARNING",
            "--override", f"listeners=PLAINTEXT://{B.HOST}:{port}", "--override", f"log.dirs={data_dir}"]


def importtime(src: Path, workdir: Path) -> str:
    """The slowest imports of one broker start (``-X importtime``), cumulative."""
    port = B.free_port()
    argv = broker_argv(port, workdir / "importtime")
    argv[1:1] = ["-X", "importtime"]
    env = env_for(src, "cached", workdir / "pyc-importtime")
    for _ in range(2):  # the first start writes the bytecode cache
        proc = subprocess.Popen(argv, env=env, stderr=subprocess.PIPE, stdin=subprocess.DEVNULL, text=True)
        try:
            B.wait_tcp(port, proc, 60)
        finally:
            proc.terminate()
            _, err = proc.communicate(timeout=30)
    rows = []
    for line in err.splitlines():
        if line.startswith("import time:") and "cumulative" not in line:
            self_us, cum_us, name = line.removeprefix("import time:").split("|")
            rows.append((int(cum_us), int(self_us), name.rstrip()))
    rows.sort(reverse=True)
    return "\n".join(f"{cum / 1000:8.1f} ms cumulative {s / 1000:6.1f} ms self {n}" for cum, s, n in rows[:20])


def stat(values: list[float], unit_ms: bool = True) -> str:
    ms = [v * 1000 for v in values]
    return f"{statistics.median(ms):7.1f} [{min(ms):.0f}-{max(ms):.0f}]"


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--runs", type=int, default=15)
    ap.add_argument("--bytecode", choices=["cached", "none", "both"], default="both")
    ap.add_argument("--compare", type=Path, help="another source tree (its src/) to measure alongside")
    ap.add_argument("--importtime", action="store_true", help="also print the slowest imports")
    args = ap.parse_args()
    trees = {"moldau": SRC}
    if args.compare:
        trees[f"moldau ({args.compare})"] = args.compare.resolve()
    modes = ["cached", "none"] if args.bytecode == "both" else [args.bytecode]
    with tempfile.TemporaryDirectory(prefix="moldau-startup-") as tmp:
        workdir = Path(tmp)
        rows: dict[str, list[tuple[float, float, float]]] = {}
        for mode in modes:
            envs = {label: env_for(src, mode, workdir / f"pyc-{i}") for i, (label, src) in enumerate(trees.items())}
            floor_env = env_for(None, mode, workdir / "pyc-floor")
            if mode == "cached":  # warm each bytecode cache, untimed
                for label, env in envs.items():
                    port = B.free_port()
                    start_once(broker_argv(port, workdir / f"warm-{port}"), env, port, api=True)
            for i in range(args.runs):
                t0 = time.monotonic()
                subprocess.run([sys.executable, "-c", "pass"], env=floor_env, check=True)
                rows.setdefault(f"python -c pass [{mode}]", []).append((time.monotonic() - t0, 0, 0))
                port = B.free_port()
                rows.setdefault(f"python listen [{mode}]", []).append(
                    start_once([sys.executable, "-c", LISTEN_FLOOR, str(port)], floor_env, port, api=False))
                for label, env in envs.items():
                    port = B.free_port()
                    rows.setdefault(f"{label} [{mode}]", []).append(
                        start_once(broker_argv(port, workdir / f"data-{port}"), env, port, api=True))
        print(f"python {sys.version.split()[0]}, {os.cpu_count()} cpus, load average {os.getloadavg()[0]:.2f}, "
              f"{args.runs} starts per row; ms, median [min-max]")
        print(f"{'':44} {'-> TCP accept':>20} {'-> ApiVersions':>20} {'CPU at accept':>20}")
        for name, values in rows.items():
            tcp, api, cpu = zip(*values, strict=True)
            cols = [stat(list(tcp)), stat(list(api)) if api[0] == api[0] and api[0] else "",
                    stat(list(cpu)) if cpu[0] else ""]
            print(f"{name:44} {cols[0]:>20} {cols[1]:>20} {cols[2]:>20}")
        if args.importtime:
            print(importtime(SRC, workdir))
    return 0


if __name__ == "__main__":
    sys.exit(main())
