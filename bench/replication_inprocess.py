"""Produce throughput with replication factor 3 and acks=all, next to replication factor 1, on three
in-process brokers (tests/replication/controller_for_tests.py: one Python process, so the three broker
event loops and librdkafka share one GIL; a rough figure until the etcd cluster runs brokers as processes).

    PYTHONPATH=src python3 bench/replication_inprocess.py [--records 50000] [--size 1024]

One confluent-kafka producer (acks=all, idempotent, linger.ms=5) for all runs, alternating, to a one-partition topic led by
broker 1; the clock runs from the first produce() to the end of flush().
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from pathlib import Path

from confluent_kafka import Producer

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
from tests.replication.controller_for_tests import ControllerForTests


def run(producer: Producer, topic: str, records: int, size: int) -> float:
    payload = b"x" * size
    started = time.perf_counter()
    for _ in range(records):
        while True:
            try:
                producer.produce(topic, payload, partition=0)
                break
            except BufferError:
                producer.poll(0.01)
        producer.poll(0)
    assert producer.flush(60) == 0
    return time.perf_counter() - started


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--records", type=int, default=50000)
    parser.add_argument("--size", type=int, default=1024)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        cluster = ControllerForTests(Path(tmp), replica_fetch_wait_max_ms=100).start_all()
        try:
            cluster.create_topic("rf1", replicas=(1,))
            cluster.create_topic("rf3", configs={"min.insync.replicas": "2"})
            # One producer for every run: each broker still allocates producer ids on its own (no cluster-wide
            # blocks yet), so two producers could share an id and fence each other's sequence numbers.
            producer = Producer({"bootstrap.servers": cluster.bootstrap(1), "acks": "all",
                                 "enable.idempotence": True, "linger.ms": 5, "batch.size": 1048576})
            for topic in ("rf1", "rf3", "rf1", "rf3", "rf1", "rf3"):
                seconds = run(producer, topic, args.records, args.size)
                print(f"{topic} acks=all: {args.records / seconds:,.0f} records/s, "
                      f"{args.records * args.size / seconds / 1e6:.1f} MB/s ({seconds:.2f} s)")
        finally:
            cluster.stop_all()


if __name__ == "__main__":
    main()
