"""Given a broker with default flush settings, when segments roll, then each rolled segment is fsynced and
the recovery point moves past it (Kafka's ``UnifiedLog.roll`` schedules ``"flush-log"``); after a SIGKILL
the broker rescans only the unflushed tail, and no acknowledged record is lost.

Only ``log.flush.offset.checkpoint.interval.ms`` is shortened (Kafka's default writes the recovery point
file every 60 s; it was hard-coded before and the override ignored)."""

from __future__ import annotations

import re
import time
from pathlib import Path

from confluent_kafka import Producer
from kafka import KafkaProducer

from moldau.client.client import Client
from moldau.storage.checkpoint_file import CheckpointFile
from tests.fixtures import BrokerProcess, fetched_values, free_port

TOPIC = "rolls"
SEGMENT_BYTES = 1 << 20  # KIP-1030's minimum log.segment.bytes
VALUE = b"x" * 1000
RECOVERING = re.compile(r"log_loader recovering unflushed segment segment=\S*/(\d{20})\.log")


def _recovery_point(data_dir: Path) -> int:
    for topic, partition, offset in CheckpointFile(data_dir / "recovery-point-offset-checkpoint", 3).read():
        if (topic, partition) == (TOPIC, "0"):
            return int(offset)
    return 0


def _segment_bases(data_dir: Path) -> list[int]:
    return sorted(int(p.name[:20]) for p in (data_dir / f"{TOPIC}-0").glob("*.log"))


def test_sigkill_after_rolls_recovers_only_the_unflushed_tail(tmp_path: Path) -> None:
    data_dir = tmp_path / "data"
    port = free_port()
    broker = BrokerProcess(data_dir, port=port, log_segment_bytes=SEGMENT_BYTES,
                           log_flush_offset_checkpoint_interval_ms=200)
    acked: list[bytes] = []

    def on_delivery(err: object, msg: object) -> None:
        if err is None:
            acked.append(msg.value())  # type: ignore[attr-defined]

    broker.start()
    try:
        with Client(broker.bootstrap_servers) as client:
            client.create_topic(TOPIC, 1)
        producer = Producer({"bootstrap.servers": broker.bootstrap_servers, "acks": "all", "linger.ms": 5})
        for i in range(3 * SEGMENT_BYTES // len(VALUE) + 200):  # three rolls and a bit
            while True:
                try:
                    producer.produce(TOPIC, value=b"%08d" % i + VALUE, partition=0, on_delivery=on_delivery)
                    break
                except BufferError:
                    producer.poll(0.1)
            producer.poll(0)
        assert producer.flush(60) == 0
        bases = _segment_bases(data_dir)
        assert len(bases) >= 4, f"expected three rolls, got segments {bases}"
        # The rolled segments' flushes and the next recovery point checkpoint (200 ms) come on their own:
        # no fsync was asked for by the producer (flush.messages and flush.ms are Kafka's "never").
        deadline = time.monotonic() + 30
        while _recovery_point(data_dir) < bases[-1] and time.monotonic() < deadline:
            time.sleep(0.05)  # another process's file: there is no event to await
        assert _recovery_point(data_dir) >= bases[-1], "the recovery point did not move past the rolled segments"
        # An unflushed tail, from a second client library.
        tail = KafkaProducer(bootstrap_servers=broker.bootstrap_servers, acks="all")
        for i in range(50):
            tail.send(TOPIC, value=b"tail-%02d" % i, partition=0).get(timeout=30)
            acked.append(b"tail-%02d" % i)
        tail.close(timeout=10)
    finally:
        broker.kill()
    log_before = len(broker.log_text())

    broker = BrokerProcess(data_dir, port=port)
    broker.start()
    try:
        stored = fetched_values(broker.bootstrap_servers, TOPIC)
    finally:
        assert broker.stop() == 0
    rescanned = [int(m) for m in RECOVERING.findall(broker.log_text()[log_before:])]
    assert rescanned == [bases[-1]], f"recovered {rescanned}; only the active segment {bases[-1]} was unflushed"
    assert len(acked) > 3 * SEGMENT_BYTES // len(VALUE)
    missing = set(acked) - set(stored)
    assert not missing, f"{len(missing)} acknowledged records lost, e.g. {sorted(missing)[:3]}"
    assert stored[-50:] == [b"tail-%02d" % i for i in range(50)]
