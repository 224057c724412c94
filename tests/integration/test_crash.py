"""Given a broker that flushes every message, when it is SIGKILLed again and again under an acks=all
producer, then every acknowledged record is still there, in order. When a segment's tail is damaged,
the broker truncates it on start and serves everything before the damage."""

from __future__ import annotations

import random
import time
from pathlib import Path

from confluent_kafka import Producer

from moldau.client.client import Client
from moldau.protocol.records import Record, build_batch, iter_batches
from tests.fixtures import BrokerProcess, fetched_values, free_port

TOPIC = "crash"
CYCLES = 5


def test_sigkill_under_acks_all_loses_no_acknowledged_record(tmp_path: Path):
    rng = random.Random(1234)
    data_dir = tmp_path / "data"
    port = free_port()
    acked: list[int] = []
    sequence = 0
    for cycle in range(CYCLES):
        broker = BrokerProcess(data_dir, port=port, log_flush_interval_messages=1, num_partitions=1).start()
        try:
            if cycle == 0:
                with Client(broker.bootstrap_servers) as client:
                    client.create_topic(TOPIC, 1)
            producer = Producer({"bootstrap.servers": broker.bootstrap_servers, "acks": "all", "linger.ms": 0,
                                 "message.timeout.ms": 3000, "enable.idempotence": False,
                                 "max.in.flight": 5, "retries": 0})

            def on_delivery(err, msg):
                if err is None:
                    acked.append(int(msg.value()))

            kill_at = time.monotonic() + rng.uniform(0.3, 1.5)
            while time.monotonic() < kill_at:
                try:
                    producer.produce(TOPIC, value=str(sequence).encode(), partition=0, on_delivery=on_delivery)
                    sequence += 1
                except BufferError:
                    pass
                producer.poll(0.001)
        finally:
            broker.kill()
        producer.flush(10)  # the rest fail: they were never acknowledged
    broker = BrokerProcess(data_dir, port=port).start()
    try:
        stored = [int(v) for v in fetched_values(broker.bootstrap_servers, TOPIC)]
    finally:
        broker.stop()
    assert len(acked) > 50, "the producer barely got going; the test proves nothing"
    missing = set(acked) - set(stored)
    assert not missing, f"{len(missing)} acknowledged records lost, e.g. {sorted(missing)[:5]}"
    first_seen = list(dict.fromkeys(stored))
    assert first_seen == sorted(first_seen), "records out of order after restarts"


def test_damaged_segment_tail_is_truncated_and_the_rest_served(tmp_path: Path):
    rng = random.Random(99)
    data_dir = tmp_path / "data"
    port = free_port()
    broker = BrokerProcess(data_dir, port=port).start()
    try:
        with Client(broker.bootstrap_servers) as client:
            client.create_topic("damaged", 1)
            for i in range(50):
                client.produce("damaged", 0, build_batch([Record(0, 1000 + i, None, b"v%d" % i, [])]))
    finally:
        broker.kill()
    segment = data_dir / "damaged-0" / "00000000000000000000.log"
    content = bytearray(segment.read_bytes())
    batches = list(iter_batches(bytes(content)))
    damage_at = rng.randrange(batches[10][0], len(content))
    if rng.random() < 0.5:
        content = content[:damage_at]  # a torn write
    else:
        content[damage_at:] = rng.randbytes(len(content) - damage_at)  # garbage pages at the tail
    segment.write_bytes(bytes(content))
    intact = sum(1 for pos, h in batches if pos + h.size_in_bytes <= damage_at)

    broker = BrokerProcess(data_dir, port=port).start()
    try:
        values = fetched_values(broker.bootstrap_servers, "damaged")
        with Client(broker.bootstrap_servers) as client:
            after = client.produce("damaged", 0, build_batch([Record(0, 0, None, b"after", [])]))
    finally:
        broker.stop()
    assert values == [b"v%d" % i for i in range(intact)]
    assert after.base_offset == len(values)


def test_damage_in_the_last_batch_after_a_clean_stop_is_cut_before_librdkafka_reads_it(tmp_path: Path):
    from confluent_kafka import Consumer, KafkaError, TopicPartition

    data_dir = tmp_path / "data"
    port = free_port()
    broker = BrokerProcess(data_dir, port=port).start()
    try:
        producer = Producer({"bootstrap.servers": broker.bootstrap_servers, "linger.ms": 0})
        for i in range(20):  # one batch each
            producer.produce("rot", value=b"record-%02d" % i + b"." * 200, partition=0)
            assert producer.flush(10) == 0
    finally:
        assert broker.stop() == 0  # a clean shutdown: the marker vouches for the logs
    segment = data_dir / "rot-0" / "00000000000000000000.log"
    content = bytearray(segment.read_bytes())
    last_pos, last = list(iter_batches(bytes(content)))[-1]
    content[last_pos + last.size_in_bytes - 50] ^= 0x5A  # a flipped byte inside the last record, at rest
    segment.write_bytes(bytes(content))

    broker = BrokerProcess(data_dir, port=port).start()
    try:
        expected = [b"record-%02d" % i + b"." * 200 for i in range(19)]
        assert fetched_values(broker.bootstrap_servers, "rot") == expected  # the damaged batch is gone
        consumer = Consumer({"bootstrap.servers": broker.bootstrap_servers, "group.id": "rot-reader",
                             "enable.auto.commit": False, "enable.partition.eof": True,
                             "check.crcs": True})
        try:
            consumer.assign([TopicPartition("rot", 0, 0)])
            values: list[bytes] = []
            deadline = time.monotonic() + 30
            while time.monotonic() < deadline:
                msg = consumer.poll(1.0)
                if msg is None:
                    continue
                if msg.error():
                    assert msg.error().code() == KafkaError._PARTITION_EOF, msg.error()
                    break
                values.append(msg.value())
        finally:
            consumer.close()
        assert values == expected
    finally:
        broker.kill()  # SIGKILL after the cut: the next start recovers, and the cut stays
    assert "fails its CRC after a clean shutdown" in broker.log_text()
    broker = BrokerProcess(data_dir, port=port).start()
    try:
        assert fetched_values(broker.bootstrap_servers, "rot") == expected
    finally:
        assert broker.stop() == 0
