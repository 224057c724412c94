"""Throughput cost of transactions: a confluent-kafka producer with acks=all against one committing a
transaction every 100 ms, both writing to a 3-partition topic of a fresh `moldau server` process.

    python bench/txn_bench.py                 # 10 s per mode, 100-byte values
    python bench/txn_bench.py --seconds 5 --value-size 1000

Each mode gets its own topic on the same broker. Prints records/s, MB/s and, for transactions, how many
commits there were and their mean/max duration (commit_transaction flushes, then EndTxn writes markers).
"""

from __future__ import annotations

import argparse
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from confluent_kafka import Producer
from confluent_kafka.admin import AdminClient, NewTopic

PARTITIONS = 3


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def start_broker(data_dir: Path) -> tuple[subprocess.Popen, str]:
    port = free_port()
    process = subprocess.Popen([sys.executable, "-m", "moldau.cli.main", "server", "--log-level", "WARNING",
                                "--override", f"listeners=PLAINTEXT://127.0.0.1:{port}",
                                "--override", f"log.dirs={data_dir}",
                                "--override", "transaction.state.log.num.partitions=3"])
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        try:
            socket.create_connection(("127.0.0.1", port), 0.2).close()
            return process, f"127.0.0.1:{port}"
        except OSError:
            time.sleep(0.05)
    process.kill()
    raise SystemExit("moldau server did not start")


def run(bootstrap: str, topic: str, transactional: bool, seconds: float, value_size: int) -> dict[str, float]:
    config = {"bootstrap.servers": bootstrap, "acks": "all", "linger.ms": 5, "enable.idempotence": True}
    if transactional:
        config["transactional.id"] = f"bench-{topic}"
    producer = Producer(config)
    value = b"x" * value_size
    commits: list[float] = []
    if transactional:
        producer.init_transactions(30)
        producer.begin_transaction()
    sent = 0
    start = last_commit = time.monotonic()
    while (now := time.monotonic()) - start < seconds:
        try:
            producer.produce(topic, value=value, partition=sent % PARTITIONS)
            sent += 1
        except BufferError:
            producer.poll(0.001)  # the local queue is full: serve delivery reports
        if sent % 1000 == 0:
            producer.poll(0)
        if transactional and now - last_commit >= 0.1:
            began = time.monotonic()
            producer.commit_transaction(30)
            commits.append(time.monotonic() - began)
            producer.begin_transaction()
            last_commit = time.monotonic()
    if transactional:
        producer.commit_transaction(30)
    else:
        producer.flush(30)
    elapsed = time.monotonic() - start
    result = {"records_per_s": sent / elapsed, "mb_per_s": sent * value_size / elapsed / 1e6}
    if commits:
        result.update(commits=len(commits), commit_ms_mean=1000 * sum(commits) / len(commits),
                      commit_ms_max=1000 * max(commits))
    return result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--seconds", type=float, default=10)
    parser.add_argument("--value-size", type=int, default=100)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        process, bootstrap = start_broker(Path(tmp))
        try:
            admin = AdminClient({"bootstrap.servers": bootstrap})
            for topic in ("warmup", "plain", "txn"):
                admin.create_topics([NewTopic(topic, PARTITIONS, 1)])[topic].result(30)
            run(bootstrap, "warmup", False, min(args.seconds, 3), args.value_size)  # page cache, JIT-free warmup
            results = {"acks=all (idempotent)": run(bootstrap, "plain", False, args.seconds, args.value_size),
                       "transactions, commit every 100 ms": run(bootstrap, "txn", True, args.seconds,
                                                                args.value_size)}
        finally:
            process.terminate()
            process.wait(30)
    base = results["acks=all (idempotent)"]["records_per_s"]
    print(f"| mode ({args.value_size}-byte values, {args.seconds:g} s) | records/s | MB/s | vs acks=all | commits "
          "| commit ms mean / max |")
    print("| --- | --- | --- | --- | --- | --- |")
    for mode, r in results.items():
        commit = f"{r['commit_ms_mean']:.1f} / {r['commit_ms_max']:.1f}" if "commits" in r else "-"
        print(f"| {mode} | {r['records_per_s']:,.0f} | {r['mb_per_s']:.1f} | {r['records_per_s'] / base:.2f} | "
              f"{int(r.get('commits', 0)) or '-'} | {commit} |")


if __name__ == "__main__":
    main()
