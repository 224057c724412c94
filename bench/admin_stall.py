"""Worst event-loop stall of a broker while it creates and deletes topics (issue 9 item 5, issue 10 item 5).

Starts a real `moldau server` per run on a free loopback port and a fresh data directory. A probe thread
sends ApiVersions back to back on its own connection and records each round trip; meanwhile the main thread
sends one CreateTopics of `--create-partitions` partitions, then one DeleteTopics of a topic of
`--delete-partitions` partitions (created beforehand). A round trip that spans an operation is as long as
the longest time the event loop could not answer, so the worst round trip during an operation is its
worst stall. Idle is the worst round trip over the same time with no admin request.

    python bench/admin_stall.py [--create-partitions 1000] [--delete-partitions 100] [--repeat 3]
        [--src /path/to/other/checkout/src]     # measure another checkout's broker (e.g. main, "before")

Prints one JSON line per run, then the median over runs in ms.
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
from typing import Self

from moldau.client.client import Client
from moldau.protocol import messages


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def start_broker(data_dir: Path, src: str | None) -> tuple[subprocess.Popen, str]:
    port = free_port()
    env = dict(os.environ)
    if src:
        env["PYTHONPATH"] = src
    args = [sys.executable, "-m", "moldau.cli.main", "server", "--log-level", "WARNING",
            "--override", f"listeners=PLAINTEXT://127.0.0.1:{port}", "--override", f"log.dirs={data_dir}"]
    proc = subprocess.Popen(args, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, env=env)
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        try:
            socket.create_connection(("127.0.0.1", port), timeout=0.5).close()
            return proc, f"127.0.0.1:{port}"
        except OSError:
            time.sleep(0.05)
    proc.kill()
    raise TimeoutError("moldau server did not listen within 30 s")


class Probe:
    """ApiVersions round trips back to back on one connection, as (start, end) perf_counter pairs."""

    def __init__(self, bootstrap: str) -> None:
        self.client = Client(bootstrap, client_id="stall-probe", timeout=120)
        self.samples: list[tuple[float, float]] = []
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def _run(self) -> None:
        while not self._stop.is_set():
            start = time.perf_counter()
            self.client.send(18, messages.ApiVersionsRequest(), version=0)
            self.samples.append((start, time.perf_counter()))
            time.sleep(0.0005)  # leave the broker's core some air; 0.5 ms bounds the resolution

    def __enter__(self) -> Self:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join(130)
        self.client.close()

    def worst_ms(self, start: float, end: float) -> float:
        """The longest round trip that overlapped [start, end]."""
        overlapping = [e - s for s, e in self.samples if e >= start and s <= end]
        return max(overlapping, default=0.0) * 1000


def timed(probe: Probe, action) -> tuple[float, float]:
    start = time.perf_counter()
    action()
    end = time.perf_counter()
    time.sleep(0.05)  # let the probe's round trip in flight at the end finish
    return (end - start) * 1000, probe.worst_ms(start, end)


def run(args: argparse.Namespace) -> dict:
    with tempfile.TemporaryDirectory(prefix="moldau-stall-bench-") as tmp:
        proc, bootstrap = start_broker(Path(tmp), args.src)
        try:
            with Client(bootstrap, timeout=300) as admin, Probe(bootstrap) as probe:
                admin.create_topic("doomed", args.delete_partitions)
                time.sleep(0.5)
                create_ms, create_stall = timed(probe, lambda: admin.create_topic("big", args.create_partitions))
                delete_ms, delete_stall = timed(probe, lambda: admin.delete_topic("doomed"))
                _, idle_stall = timed(probe, lambda: time.sleep(max(create_ms, delete_ms, 200) / 1000))
            return {"create_ms": create_ms, "create_stall_ms": create_stall, "delete_ms": delete_ms,
                    "delete_stall_ms": delete_stall, "idle_stall_ms": idle_stall}
        finally:
            proc.terminate()
            try:
                proc.wait(30)
            except subprocess.TimeoutExpired:
                proc.kill()


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--create-partitions", type=int, default=1000)
    ap.add_argument("--delete-partitions", type=int, default=100)
    ap.add_argument("--repeat", type=int, default=3)
    ap.add_argument("--src", help="PYTHONPATH for the broker process (another checkout's src/)")
    args = ap.parse_args()
    runs = []
    for _ in range(args.repeat):
        result = run(args)
        print(json.dumps({k: round(v, 2) for k, v in result.items()}), flush=True)
        runs.append(result)
    print(f"median of {len(runs)} runs [ms]:")
    for key in runs[0]:
        print(f"  {key:16} {statistics.median(r[key] for r in runs):10.1f}")


if __name__ == "__main__":
    main()
