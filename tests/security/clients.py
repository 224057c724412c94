"""Round trips through each real client library with given security settings (shared by tests/security)."""

from __future__ import annotations

import asyncio
import time
from typing import Any

from confluent_kafka import OFFSET_BEGINNING, Consumer, KafkaError, Producer, TopicPartition

DEADLINE_S = 30
COUNT = 200


def values(count: int = COUNT, size: int = 100) -> list[bytes]:
    return [f"{i:06d}".encode() + b"x" * size for i in range(count)]


def confluent_round_trip(bootstrap: str, topic: str, settings: dict[str, Any], count: int = COUNT,
                         size: int = 100) -> list[bytes]:
    """Produce `count` records to partition 0 of `topic` and read them back; returns what was read."""
    base = {"bootstrap.servers": bootstrap, **settings}
    producer = Producer({**base, "linger.ms": 5, "acks": "all", "message.timeout.ms": DEADLINE_S * 1000})
    errors: list[Any] = []
    for value in values(count, size):
        producer.produce(topic, value=value, partition=0, on_delivery=lambda e, m: errors.append(e) if e else None)
    assert producer.flush(DEADLINE_S) == 0
    assert errors == []
    consumer = Consumer({**base, "group.id": "unused", "enable.auto.commit": False})
    consumer.assign([TopicPartition(topic, 0, OFFSET_BEGINNING)])
    received: list[bytes] = []
    deadline = time.monotonic() + DEADLINE_S
    try:
        while len(received) < count and time.monotonic() < deadline:
            msg = consumer.poll(0.5)
            if msg is None:
                continue
            if msg.error():
                assert msg.error().code() == KafkaError._PARTITION_EOF, msg.error()
                continue
            received.append(msg.value())
    finally:
        consumer.close()
    return received


def kafka_python_round_trip(bootstrap: str, topic: str, settings: dict[str, Any], count: int = COUNT) -> list[bytes]:
    from kafka import KafkaConsumer, KafkaProducer
    from kafka import TopicPartition as KTopicPartition

    producer = KafkaProducer(bootstrap_servers=bootstrap, acks="all", **settings)
    try:
        futures = [producer.send(topic, value=value, partition=0) for value in values(count)]
        producer.flush(DEADLINE_S)
        for future in futures:
            future.get(DEADLINE_S)
    finally:
        producer.close(DEADLINE_S)
    consumer = KafkaConsumer(bootstrap_servers=bootstrap, enable_auto_commit=False, consumer_timeout_ms=2000,
                             **settings)
    try:
        consumer.assign([KTopicPartition(topic, 0)])
        consumer.seek_to_beginning()
        received: list[bytes] = []
        deadline = time.monotonic() + DEADLINE_S
        while len(received) < count and time.monotonic() < deadline:
            for records in consumer.poll(timeout_ms=500).values():
                received.extend(r.value for r in records)
        return received
    finally:
        consumer.close()


def aiokafka_round_trip(bootstrap: str, topic: str, settings: dict[str, Any], count: int = COUNT) -> list[bytes]:
    from aiokafka import AIOKafkaConsumer, AIOKafkaProducer
    from aiokafka import TopicPartition as ATopicPartition

    async def run() -> list[bytes]:
        producer = AIOKafkaProducer(bootstrap_servers=bootstrap, acks="all", **settings)
        await producer.start()
        try:
            for value in values(count):
                await producer.send(topic, value=value, partition=0)
            await producer.flush()
        finally:
            await producer.stop()
        consumer = AIOKafkaConsumer(bootstrap_servers=bootstrap, enable_auto_commit=False, **settings)
        await consumer.start()
        try:
            partition = ATopicPartition(topic, 0)
            consumer.assign([partition])
            await consumer.seek_to_beginning(partition)
            received: list[bytes] = []
            deadline = time.monotonic() + DEADLINE_S
            while len(received) < count and time.monotonic() < deadline:
                for records in (await consumer.getmany(timeout_ms=500)).values():
                    received.extend(r.value for r in records)
            return received
        finally:
            await consumer.stop()

    return asyncio.run(asyncio.wait_for(run(), DEADLINE_S * 2))
