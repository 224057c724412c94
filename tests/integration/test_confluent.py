"""Given a broker, when librdkafka (confluent-kafka) produces and consumes, then it sees Kafka's behaviour."""

from __future__ import annotations

import time

import pytest
from confluent_kafka import OFFSET_BEGINNING, Consumer, KafkaError, Producer, TopicPartition

from tests.fixtures import DEADLINE_S, create_topic, unique_topic
from tests.integration.scenario import (
    BASE_TIMESTAMP_MS,
    COMPRESSIONS,
    NUM_PARTITIONS,
    Received,
    check_received,
    records_to_send,
)


def produce_all(bootstrap: str, topic: str, compression: str = "none") -> None:
    producer = Producer({"bootstrap.servers": bootstrap, "compression.type": compression, "linger.ms": 5,
                         "acks": "all"})
    errors = []
    for sent in records_to_send():
        producer.produce(topic, key=sent.key, value=sent.value, timestamp=sent.timestamp,
                         headers=[("h", sent.header.encode())],
                         on_delivery=lambda err, msg: errors.append(err) if err else None)
    assert producer.flush(DEADLINE_S) == 0
    assert errors == []


def consume(bootstrap: str, assignments: list[TopicPartition], expected: int) -> list[Received]:
    consumer = Consumer({"bootstrap.servers": bootstrap, "group.id": "unused-assign-only",
                         "enable.auto.commit": False})
    consumer.assign(assignments)
    received: list[Received] = []
    deadline = time.monotonic() + DEADLINE_S
    try:
        while len(received) < expected and time.monotonic() < deadline:
            msg = consumer.poll(0.5)
            if msg is None:
                continue
            if msg.error():
                assert msg.error().code() == KafkaError._PARTITION_EOF, msg.error()
                continue
            header = dict(msg.headers() or [])["h"].decode()
            received.append(Received(msg.partition(), msg.offset(), msg.key().decode(), msg.value().decode(),
                                     msg.timestamp()[1], header))
    finally:
        consumer.close()
    return received


@pytest.mark.parametrize("compression", COMPRESSIONS)
def test_keyed_records_with_headers_round_trip(broker, compression):
    topic = unique_topic(compression)
    create_topic(broker.bootstrap_servers, topic)
    produce_all(broker.bootstrap_servers, topic, compression)
    received = consume(broker.bootstrap_servers,
                       [TopicPartition(topic, p, OFFSET_BEGINNING) for p in range(NUM_PARTITIONS)],
                       len(records_to_send()))
    check_received(records_to_send(), received)


def test_replay_from_offset_and_timestamp(broker):
    topic = unique_topic("replay")
    create_topic(broker.bootstrap_servers, topic)
    produce_all(broker.bootstrap_servers, topic)
    everything = consume(broker.bootstrap_servers,
                         [TopicPartition(topic, p, OFFSET_BEGINNING) for p in range(NUM_PARTITIONS)],
                         len(records_to_send()))
    per_partition = {p: sorted((r for r in everything if r.partition == p), key=lambda r: r.offset)
                     for p in range(NUM_PARTITIONS)}

    # From an offset: exactly the records at and after it.
    partition = max(per_partition, key=lambda p: len(per_partition[p]))
    start = len(per_partition[partition]) // 2
    replayed = consume(broker.bootstrap_servers, [TopicPartition(topic, partition, start)],
                       len(per_partition[partition]) - start)
    assert [r.offset for r in replayed] == [r.offset for r in per_partition[partition][start:]]

    # From a timestamp: offsets_for_times finds the first record at or after it, in every partition.
    cutoff = BASE_TIMESTAMP_MS + 60_000
    consumer = Consumer({"bootstrap.servers": broker.bootstrap_servers, "group.id": "unused"})
    try:
        found = consumer.offsets_for_times([TopicPartition(topic, p, cutoff) for p in range(NUM_PARTITIONS)],
                                           timeout=DEADLINE_S)
    finally:
        consumer.close()
    for tp in found:
        after = [r for r in per_partition[tp.partition] if r.timestamp >= cutoff]
        expected_offset = after[0].offset if after else len(per_partition[tp.partition])
        assert tp.offset == expected_offset, (tp.partition, tp.offset, expected_offset)


def test_watermarks_are_last_offset_plus_one(broker):
    topic = unique_topic("wm")
    create_topic(broker.bootstrap_servers, topic, partitions=1)
    producer = Producer({"bootstrap.servers": broker.bootstrap_servers, "linger.ms": 50})
    for i in range(7):
        producer.produce(topic, value=b"x%d" % i, partition=0)
    assert producer.flush(DEADLINE_S) == 0
    consumer = Consumer({"bootstrap.servers": broker.bootstrap_servers, "group.id": "unused"})
    try:
        low, high = consumer.get_watermark_offsets(TopicPartition(topic, 0), timeout=DEADLINE_S)
    finally:
        consumer.close()
    assert (low, high) == (0, 7)
