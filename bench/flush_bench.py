"""What `log.flush.interval.messages=1` (fsync before every acknowledgement) costs, against the default
(acknowledge from the page cache, fsync later), with several concurrent producers; and the physical limit:
the raw fsync rate of the same disk, measured in the same run.

Each producer is a thread with its own connection (Moldau's blocking client) sending one batch of one
100-byte record per Produce request, acks=all, and waiting for the answer before the next: the worst case
for flush-per-write, since nothing is batched by the client. Layouts: `same` (every producer on one
partition: the broker's group commit can cover several producers with one fsync) and `spread` (one
partition each: one fsync per partition). The raw fsync rate is 1 KiB `write` + `fsync` per file, with
1 and with N threads (own file each), in a directory next to the broker's data.

    python bench/flush_bench.py [--producers 1,4,16] [--seconds 3] [--repeat 3] [--layouts same,spread]
        [--dir /var/tmp] [--compare-src /path/to/other/checkout/src]

The brokers run side by side and the cases are interleaved (this machine is shared and noisy). Prints one
JSON line per run, then the medians.
"""

from __future__ import annotations

import argparse
import json
import os
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

from moldau.client.client import Client
from moldau.protocol.records import Record, build_batch

VALUE = b"v" * 100
MODES: dict[str, dict[str, str]] = {"default": {}, "flush-every-message": {"log.flush.interval.messages": "1"}}


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def start_broker(data_dir: Path, overrides: dict[str, str], src: str | None = None) -> tuple[subprocess.Popen, str]:
    port = free_port()
    args = [sys.executable, "-m", "moldau.cli.main", "server", "--log-level", "WARNING",
            "--override", f"listeners=PLAINTEXT://127.0.0.1:{port}", "--override", f"log.dirs={data_dir}"]
    for key, value in overrides.items():
        args += ["--override", f"{key}={value}"]
    env = dict(os.environ, PYTHONPATH=src) if src else None
    proc = subprocess.Popen(args, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, env=env)
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        try:
            socket.create_connection(("127.0.0.1", port), timeout=0.5).close()
            return proc, f"127.0.0.1:{port}"
        except OSError:
            time.sleep(0.05)  # polling a port of another process: nothing to await
    proc.kill()
    raise TimeoutError("moldau server did not listen within 30 s")


def raw_fsync_rate(directory: Path, threads: int, seconds: float) -> float:
    """Appends of 1 KiB, each followed by fsync, per second over all threads (one file each)."""
    counts = [0] * threads
    stop = time.monotonic() + seconds

    def worker(i: int) -> None:
        fd = os.open(directory / f"fsync-{i}", os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o644)
        try:
            while time.monotonic() < stop:
                os.write(fd, b"x" * 1024)
                os.fsync(fd)
                counts[i] += 1
        finally:
            os.close(fd)

    pool = [threading.Thread(target=worker, args=(i,)) for i in range(threads)]
    for t in pool:
        t.start()
    for t in pool:
        t.join()
    return sum(counts) / seconds


def produce_load(bootstrap: str, producers: int, layout: str, seconds: float) -> tuple[float, float, float]:
    """Acknowledged requests per second, p50 and p99 latency (ms)."""
    latencies: list[list[float]] = [[] for _ in range(producers)]
    start_gate = threading.Barrier(producers + 1)
    stop_at: list[float] = [0.0]

    def worker(i: int) -> None:
        partition = 0 if layout == "same" else i
        with Client(bootstrap, client_id=f"flush-bench-{i}") as client:
            batch = build_batch([Record(0, int(time.time() * 1000), None, VALUE)])
            client.produce("bench", partition, batch)  # connected and warm
            start_gate.wait()
            while (sent := time.perf_counter()) < stop_at[0]:
                client.produce("bench", partition, batch, acks=-1)
                latencies[i].append(time.perf_counter() - sent)

    pool = [threading.Thread(target=worker, args=(i,)) for i in range(producers)]
    for t in pool:
        t.start()
    stop_at[0] = time.perf_counter() + seconds + 0.5
    start_gate.wait()
    for t in pool:
        t.join()
    ms = sorted(x * 1000 for lat in latencies for x in lat)
    q = statistics.quantiles(ms, n=100)
    return len(ms) / (seconds + 0.5), q[49], q[98]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--producers", default="1,4,16")
    parser.add_argument("--seconds", type=float, default=3.0)
    parser.add_argument("--repeat", type=int, default=3, help="rounds; every round runs every case once")
    parser.add_argument("--layouts", default="same,spread")
    parser.add_argument("--dir", default=None, help="parent of the data directories (default: $TMPDIR)")
    parser.add_argument("--compare-src", default=None,
                        help="also run flush-every-message with the moldau package under this src directory "
                             "(e.g. a checkout of main) for a before/after comparison")
    args = parser.parse_args()
    counts = [int(x) for x in args.producers.split(",")]
    modes: dict[str, tuple[dict[str, str], str | None]] = {name: (o, None) for name, o in MODES.items()}
    if args.compare_src:
        modes["flush-every-message (compare-src)"] = (MODES["flush-every-message"], args.compare_src)
    results: dict[tuple, list[tuple[float, float, float]]] = {}
    with tempfile.TemporaryDirectory(prefix="moldau-flush-bench-", dir=args.dir) as tmp:
        root = Path(tmp)
        brokers = {}
        try:
            for name, (overrides, src) in modes.items():  # all running at once, cases interleaved
                brokers[name] = start_broker(root / name.replace(" ", "_"), overrides, src)
                with Client(brokers[name][1]) as client:
                    client.create_topic("bench", max(counts))
            for round_ in range(args.repeat):
                for threads in sorted({1, max(counts)}):
                    rate = raw_fsync_rate(root, threads, 1.0)
                    results.setdefault(("raw write+fsync", "-", threads), []).append((rate, 0.0, 0.0))
                for layout in args.layouts.split(","):
                    for producers in counts:
                        for name in modes:
                            measured = produce_load(brokers[name][1], producers, layout, args.seconds)
                            results.setdefault((name, layout, producers), []).append(measured)
                            print(json.dumps({"round": round_, "mode": name, "layout": layout,
                                              "producers": producers, "per_s": round(measured[0]),
                                              "p50_ms": round(measured[1], 2), "p99_ms": round(measured[2], 2)}),
                                  flush=True)
        finally:
            for proc, _ in brokers.values():
                proc.terminate()
                proc.wait(30)
    print(f"\nmedians of {args.repeat} rounds, {args.seconds} s each")
    print(f"{'mode':36} {'layout':>6} {'producers':>9} {'acks/s':>8} {'p50 ms':>7} {'p99 ms':>7}")
    for (name, layout, producers), runs in results.items():
        rate = statistics.median(r[0] for r in runs)
        if name.startswith("raw"):
            print(f"{name + ' (threads)':36} {layout:>6} {producers:>9} {rate:>8.0f}")
        else:
            p50, p99 = statistics.median(r[1] for r in runs), statistics.median(r[2] for r in runs)
            print(f"{name:36} {layout:>6} {producers:>9} {rate:>8.0f} {p50:>7.2f} {p99:>7.2f}")


if __name__ == "__main__":
    main()
