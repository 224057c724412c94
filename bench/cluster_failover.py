"""Controller failover time: SIGKILL the controller broker of a 3-broker cluster, N times.

    python bench/cluster_failover.py [--kills 20] [--partitions 30] [--session-timeout-ms 1000]

Each round: find the controller (DescribeCluster via Metadata's controller id), SIGKILL it, and time
  - `controller`: until a live broker reports another controller;
  - `leaders`:    until every partition the dead broker led has a live leader in Metadata (what clients need);
then restart it and wait for every ISR to be whole. Prints p50/p99/max of both, in milliseconds.
The floor is the broker session timeout (the etcd lease TTL): a dead broker is noticed when its lease
expires, which etcd checks every ~500 ms.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "src"))

from moldau.client.client import Client
from moldau.testing_cluster import RunningCluster, running_cluster

TOPIC = "failover-bench"


def metadata(cluster: RunningCluster, exclude: int) -> object | None:
    for broker in cluster.brokers.values():
        if broker.broker_id == exclude or not broker.running:
            continue
        try:
            with Client(broker.bootstrap_servers, timeout=2) as client:
                return client.metadata([TOPIC])
        except OSError:
            continue
    return None


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, max(0, round(q * (len(ordered) - 1))))]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--kills", type=int, default=20)
    parser.add_argument("--partitions", type=int, default=30)
    parser.add_argument("--session-timeout-ms", type=int, default=None, help="default: the broker's default")
    args = parser.parse_args()
    overrides = {}
    if args.session_timeout_ms:
        overrides["broker_session_timeout_ms"] = args.session_timeout_ms
    controller_ms: list[float] = []
    leaders_ms: list[float] = []
    with tempfile.TemporaryDirectory() as tmp, running_cluster(3, data_dir=Path(tmp), **overrides) as cluster:
        with Client(cluster.brokers[1].bootstrap_servers) as client:
            client.create_topic(TOPIC, args.partitions, 3)
        cluster.wait_for_isr(TOPIC, 3)
        for round_ in range(args.kills):
            before = metadata(cluster, exclude=-1)
            assert before is not None
            victim = cluster.controller_id()  # the elected one (clients are told a live broker instead)
            assert victim is not None
            led = {p.partition_index for t in before.topics for p in t.partitions if p.leader_id == victim}
            started = time.monotonic()
            cluster.kill(victim)
            controller_done = leaders_done = None
            while controller_done is None or leaders_done is None:
                now = metadata(cluster, exclude=victim)
                elapsed = (time.monotonic() - started) * 1000
                if now is not None:
                    if controller_done is None and cluster.controller_id() not in (None, victim):
                        controller_done = elapsed
                    partitions = {p.partition_index: p for t in now.topics for p in t.partitions}
                    if leaders_done is None and all(partitions[i].leader_id not in (-1, victim) for i in led):
                        leaders_done = elapsed
                if elapsed > 60000:
                    raise SystemExit(f"round {round_}: no failover within 60 s")
                time.sleep(0.01)
            controller_ms.append(controller_done)
            leaders_ms.append(leaders_done)
            print(f"round {round_ + 1}: killed controller {victim} (led {len(led)} partitions): new controller "
                  f"after {controller_done:.0f} ms, all its partitions led again after {leaders_done:.0f} ms",
                  flush=True)
            cluster.restart(victim)
            cluster.wait_for_isr(TOPIC, 3)
    for name, values in (("controller", controller_ms), ("leaders", leaders_ms)):
        print(f"{name}: p50 {statistics.median(values):.0f} ms, p99 {percentile(values, 0.99):.0f} ms, "
              f"max {max(values):.0f} ms over {len(values)} kills")


if __name__ == "__main__":
    main()
