"""Given a broker, when kafka-python produces and consumes, then it sees Kafka's behaviour."""

from __future__ import annotations

import time

import pytest
from kafka import KafkaConsumer, KafkaProducer, TopicPartition
from kafka.admin import KafkaAdminClient, NewTopic

from tests.fixtures import DEADLINE_S, unique_topic
from tests.integration.scenario import (
    BASE_TIMESTAMP_MS,
    COMPRESSIONS,
    NUM_PARTITIONS,
    Received,
    check_received,
    records_to_send,
)


def create_topic(bootstrap: str, topic: str) -> None:
    """Through kafka-python's own admin client (CreateTopics as it sends it), not fixtures.create_topic."""
    admin = KafkaAdminClient(bootstrap_servers=bootstrap)
    try:
        admin.create_topics([NewTopic(topic, num_partitions=NUM_PARTITIONS, replication_factor=1)])
    finally:
        admin.close()


def consume(bootstrap: str, topic: str, expected: int, start: dict[int, int] | None = None) -> list[Received]:
    consumer = KafkaConsumer(bootstrap_servers=bootstrap, enable_auto_commit=False, group_id=None)
    partitions = [TopicPartition(topic, p) for p in range(NUM_PARTITIONS)]
    consumer.assign(partitions)
    consumer.seek_to_beginning()
    for p, offset in (start or {}).items():
        consumer.seek(TopicPartition(topic, p), offset)
    received: list[Received] = []
    deadline = time.monotonic() + DEADLINE_S
    try:
        while len(received) < expected and time.monotonic() < deadline:
            for tp, messages in consumer.poll(timeout_ms=500).items():
                for m in messages:
                    received.append(Received(tp.partition, m.offset, m.key.decode(), m.value.decode(),
                                             m.timestamp, dict(m.headers)["h"].decode()))
    finally:
        consumer.close()
    return received


@pytest.mark.parametrize("compression", COMPRESSIONS)
def test_keyed_records_with_headers_round_trip(broker, compression):
    topic = unique_topic(compression)
    create_topic(broker.bootstrap_servers, topic)
    # kafka-python 3 turns idempotence on by default: this goes through InitProducerId.
    producer = KafkaProducer(bootstrap_servers=broker.bootstrap_servers, acks="all", linger_ms=5,
                             compression_type=None if compression == "none" else compression)
    try:
        futures = [
            producer.send(topic, key=s.key.encode(), value=s.value.encode(), timestamp_ms=s.timestamp,
                          headers=[("h", s.header.encode())])
            for s in records_to_send()
        ]
        producer.flush(DEADLINE_S)
        for future in futures:
            future.get(DEADLINE_S)
    finally:
        producer.close(DEADLINE_S)
    received = consume(broker.bootstrap_servers, topic, len(records_to_send()))
    check_received(records_to_send(), received)

    # Replay: offsets_for_times finds the first record at or after a time; seeking there replays the rest.
    cutoff = BASE_TIMESTAMP_MS + 60_000
    consumer = KafkaConsumer(bootstrap_servers=broker.bootstrap_servers, group_id=None)
    try:
        found = consumer.offsets_for_times({TopicPartition(topic, p): cutoff for p in range(NUM_PARTITIONS)})
        end = consumer.end_offsets([TopicPartition(topic, p) for p in range(NUM_PARTITIONS)])
    finally:
        consumer.close()
    start = {}
    for tp, offset_and_ts in found.items():
        after = sorted((r for r in received if r.partition == tp.partition and r.timestamp >= cutoff),
                       key=lambda r: r.offset)
        if after:
            assert offset_and_ts.offset == after[0].offset
            start[tp.partition] = offset_and_ts.offset
        else:
            assert offset_and_ts is None
            start[tp.partition] = end[tp]
    expected = [r for r in received if r.timestamp >= cutoff]
    replayed = consume(broker.bootstrap_servers, topic, len(expected), start)
    assert sorted(r.value for r in replayed) == sorted(r.value for r in expected)
