"""Given a broker that flushes every message, when it is SIGKILLed again and again under an acks=all
producer, then every acknowledged record is still there, in order. When a segment's tail is damaged,
the broker truncates it on start and serves everything before the damage."""

from __future__ import annotations

import random
import time
from pathlib import Path

from confluent_kafka import Producer

from moldau.client.client import Client
from moldau.protocol.records import Record, build_batch, decode_batch, iter_batches
from tests.fixtures import BrokerProcess, free_port

TOPIC = "crash"
CYCLES = 5


def fetched_values(bootstrap: str, topic: str) -> list[bytes]:
    """Values of partition 0 through raw Fetch requests (moldau's own client), not librdkafka: a damaged batch
    served after a crash must fail this test, and librdkafka aborts the whole process on one."""
    values: list[bytes] = []
    with Client(bootstrap) as client:
        end = client.list_offset(topic, 0, -1)
        offset = client.list_offset(topic, 0, -2)
        while offset < end:
            data = bytes(client.fetch(topic, 0, offset, max_wait_ms=0).records or b"")
            assert data, f"no data at offset {offset} below the high watermark {end}"
            for pos, header in iter_batches(data):
                for record in decode_batch(data[pos : pos + header.size_in_bytes]):
                    if record.offset >= offset:
                        values.append(record.value)
                offset = header.last_offset + 1
    return values


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
