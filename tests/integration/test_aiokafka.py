"""Given a broker, when aiokafka (the oldest protocol versions) produces and consumes, then all arrives."""

from __future__ import annotations

import asyncio

import pytest
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, TopicPartition
from aiokafka.admin import AIOKafkaAdminClient, NewTopic

from tests.fixtures import DEADLINE_S, unique_topic
from tests.integration.scenario import (
    BASE_TIMESTAMP_MS,
    COMPRESSIONS,
    NUM_PARTITIONS,
    Received,
    check_received,
    records_to_send,
)


async def consume(bootstrap: str, topic: str, expected: int, start: dict[int, int] | None = None):
    consumer = AIOKafkaConsumer(bootstrap_servers=bootstrap, enable_auto_commit=False, group_id=None,
                                auto_offset_reset="earliest")
    await consumer.start()
    received: list[Received] = []
    try:
        wanted = sorted(start) if start is not None else range(NUM_PARTITIONS)
        partitions = [TopicPartition(topic, p) for p in wanted]
        consumer.assign(partitions)
        await consumer.seek_to_beginning(*partitions)
        for p, offset in (start or {}).items():
            consumer.seek(TopicPartition(topic, p), offset)

        async def collect():
            while len(received) < expected:
                batch = await consumer.getmany(timeout_ms=500)
                for tp, messages in batch.items():
                    for m in messages:
                        received.append(Received(tp.partition, m.offset, m.key.decode(), m.value.decode(),
                                                 m.timestamp, dict(m.headers)["h"].decode()))

        await asyncio.wait_for(collect(), DEADLINE_S)
    finally:
        await consumer.stop()
    return received


@pytest.mark.parametrize("compression", COMPRESSIONS)
async def test_keyed_records_with_headers_round_trip(broker, compression):
    topic = unique_topic(compression)
    admin = AIOKafkaAdminClient(bootstrap_servers=broker.bootstrap_servers)
    await admin.start()
    try:
        await admin.create_topics([NewTopic(topic, num_partitions=NUM_PARTITIONS, replication_factor=1)])
    finally:
        await admin.close()
    producer = AIOKafkaProducer(bootstrap_servers=broker.bootstrap_servers, acks="all", linger_ms=5,
                                compression_type=None if compression == "none" else compression)
    await producer.start()
    try:
        futures = [
            await producer.send(topic, key=s.key.encode(), value=s.value.encode(), timestamp_ms=s.timestamp,
                                headers=[("h", s.header.encode())])
            for s in records_to_send()
        ]
        await asyncio.wait_for(asyncio.gather(*futures), DEADLINE_S)
    finally:
        await producer.stop()
    received = await consume(broker.bootstrap_servers, topic, len(records_to_send()))
    check_received(records_to_send(), received)

    cutoff = BASE_TIMESTAMP_MS + 60_000
    consumer = AIOKafkaConsumer(bootstrap_servers=broker.bootstrap_servers, group_id=None)
    await consumer.start()
    try:
        found = await consumer.offsets_for_times({TopicPartition(topic, p): cutoff
                                                  for p in range(NUM_PARTITIONS)})
    finally:
        await consumer.stop()
    start = {}
    for tp, offset_and_ts in found.items():
        after = sorted((r for r in received if r.partition == tp.partition and r.timestamp >= cutoff),
                       key=lambda r: r.offset)
        assert (offset_and_ts.offset if offset_and_ts else None) == (after[0].offset if after else None)
        if after:
            start[tp.partition] = after[0].offset
    expected = [r for r in received if r.timestamp >= cutoff and r.partition in start]
    replayed = await consume(broker.bootstrap_servers, topic, len(expected), start)
    assert sorted(r.value for r in replayed) == sorted(r.value for r in expected)
