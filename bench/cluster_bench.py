"""Cluster throughput: replication's cost, and several brokers as the way to use several cores.

    bash bench/setup.sh            # once: builds librdkafka's rdkafka_performance
    python bench/cluster_bench.py [--mb 200] [--size 1024] [--repeat 3]

All in one run, on this machine, with librdkafka's rdkafka_performance (1 KiB records, one producer):
  1. replication: a 3-broker cluster, 3-partition topics with replication factor 1 and 3, acks=all
     (-a -1), produce MB/s;
  2. scaling: a 3-partition topic with replication factor 1, acks=1, produced to (a) one single broker
     (`metadata.store=local`), (b) a 1-broker cluster, (c) a 3-broker cluster where each broker leads one
     partition. One broker is one Python event loop, so (c) over (a) is how much more of the machine's cores
     Moldau uses; the number of cores is printed with the results.
"""

from __future__ import annotations

import argparse
import os
import re
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "src"))
sys.path.insert(0, str(Path(__file__).resolve().parent))

from clients import rdkafka_performance  # noqa: E402

from moldau.client.client import Client, ClientError  # noqa: E402
from moldau.protocol.errors import ErrorCode  # noqa: E402
from moldau.testing_cluster import running_cluster  # noqa: E402

PRODUCED = re.compile(r"% (\d+) messages produced \((\d+) bytes\), (\d+) delivered .* in (\d+)ms")


def produce_mb_s(bootstrap: str, topic: str, count: int, size: int, acks: int) -> float:
    argv = [rdkafka_performance(), "-P", "-t", topic, "-b", bootstrap, "-c", str(count), "-s", str(size),
            "-a", str(acks), "-X", "linger.ms=5", "-X", "batch.size=1000000"]
    out = subprocess.run(argv, capture_output=True, text=True, timeout=600).stdout
    found = PRODUCED.findall(out)
    if not found:
        raise SystemExit(f"no summary from rdkafka_performance: {out[-400:]}")
    _, _, delivered, ms = map(int, found[-1])
    if delivered < count:
        raise SystemExit(f"only {delivered} of {count} delivered")
    return delivered * size / (max(ms, 1) / 1000) / 1e6


def create(bootstrap: str, topic: str, partitions: int, rf: int) -> None:
    deadline = time.monotonic() + 30
    with Client(bootstrap.split(",")[0]) as client:
        while True:
            try:
                client.create_topic(topic, partitions, rf)
                break
            except ClientError as exc:
                # A broker that is listening may not see every registration yet (a loaded machine).
                if exc.error_code != ErrorCode.INVALID_REPLICATION_FACTOR or time.monotonic() > deadline:
                    raise
                time.sleep(0.2)
    time.sleep(0.5)  # leaders elected and followers connected (rdkafka retries anyway)


def single_broker(tmp: Path) -> tuple[subprocess.Popen[bytes], str]:
    from moldau.testing_cluster import _free_port

    port = _free_port()
    process = subprocess.Popen([sys.executable, "-m", "moldau.cli.main", "server", "--override",
                                f"listeners=PLAINTEXT://127.0.0.1:{port}", "--override", f"log.dirs={tmp}"],
                               stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        try:
            with Client(f"127.0.0.1:{port}", timeout=1):
                return process, f"127.0.0.1:{port}"
        except OSError:
            time.sleep(0.05)
    process.kill()
    raise SystemExit("single broker did not start")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--mb", type=int, default=200, help="MB produced per measurement")
    parser.add_argument("--size", type=int, default=1024)
    parser.add_argument("--repeat", type=int, default=3)
    args = parser.parse_args()
    count = args.mb * 1_000_000 // args.size
    results: dict[str, list[float]] = {}

    def record(name: str, value: float) -> None:
        results.setdefault(name, []).append(value)
        print(f"  {name}: {value:.1f} MB/s", flush=True)

    for round_ in range(args.repeat):
        print(f"round {round_ + 1}", flush=True)
        with tempfile.TemporaryDirectory() as tmp:
            process, bootstrap = single_broker(Path(tmp))
            try:
                create(bootstrap, f"s{round_}", 3, 1)
                record("single broker (local store), rf=1 acks=1", produce_mb_s(bootstrap, f"s{round_}", count,
                                                                                 args.size, 1))
            finally:
                process.terminate()
                process.wait(30)
        for brokers in (1, 3):
            with tempfile.TemporaryDirectory() as tmp, running_cluster(brokers, data_dir=Path(tmp)) as cluster:
                create(cluster.bootstrap_servers, "rf1", 3, 1)
                record(f"{brokers}-broker cluster, rf=1 acks=1",
                       produce_mb_s(cluster.bootstrap_servers, "rf1", count, args.size, 1))
                if brokers == 3:
                    record("3-broker cluster, rf=1 acks=all",
                           produce_mb_s(cluster.bootstrap_servers, "rf1", count, args.size, -1))
                    create(cluster.bootstrap_servers, "rf3", 3, 3)
                    record("3-broker cluster, rf=3 acks=all",
                           produce_mb_s(cluster.bootstrap_servers, "rf3", count, args.size, -1))
    print(f"\n{os.cpu_count()} cores; {args.mb} MB of {args.size}-byte records per run; median of {args.repeat}")
    for name, values in results.items():
        print(f"{name:45s} {statistics.median(values):7.1f} MB/s   runs: "
              + ", ".join(f"{v:.1f}" for v in values))


if __name__ == "__main__":
    main()
