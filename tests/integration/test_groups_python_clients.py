"""Given a broker, when aiokafka and kafka-python consumers share a topic in a group, then they split its
partitions, rebalance when a member leaves, and resume from committed offsets."""

from __future__ import annotations

import asyncio
import time

import kafka.errors as kafka_errors
from aiokafka import AIOKafkaConsumer
from kafka import KafkaConsumer

from tests import fixtures
from tests.fixtures import unique_topic
from tests.integration.test_confluent import create_topic
from tests.integration.test_groups_confluent import PARTITIONS, produce

group_broker = fixtures.group_broker
DEADLINE_S = 30


def test_aiokafka_group_splits_rebalances_and_commits(group_broker):
    bootstrap = group_broker.bootstrap_servers
    topic, group = unique_topic("aio"), unique_topic("g")
    create_topic(bootstrap, topic, PARTITIONS)
    produce(bootstrap, topic, range(120))

    def make() -> AIOKafkaConsumer:
        return AIOKafkaConsumer(topic, bootstrap_servers=bootstrap, group_id=group, enable_auto_commit=False,
                                auto_offset_reset="earliest", session_timeout_ms=3000, heartbeat_interval_ms=300)

    async def scenario() -> None:
        a, b = make(), make()
        await asyncio.gather(a.start(), b.start())
        seen: list[int] = []

        async def drain(c: AIOKafkaConsumer, count: int) -> None:
            while len(seen) < count:
                batches = await c.getmany(timeout_ms=100)
                for records in batches.values():
                    seen.extend(int(r.value) for r in records)
                await c.commit()

        async def split() -> None:
            while not (len(a.assignment()) == 3 and len(b.assignment()) == 3):
                await asyncio.gather(a.getmany(timeout_ms=50), b.getmany(timeout_ms=50))
        await asyncio.wait_for(split(), DEADLINE_S)
        assert not {tp.partition for tp in a.assignment()} & {tp.partition for tp in b.assignment()}
        await b.stop()  # leaves the group: a gets everything and resumes from b's commits
        await asyncio.wait_for(drain(a, 120), DEADLINE_S)
        assert len(a.assignment()) == PARTITIONS
        await a.stop()
        c = make()
        await c.start()
        committed = [await c.committed(tp) for tp in a.assignment()]
        assert sum(committed) == 120
        await c.stop()

    asyncio.run(scenario())


def test_kafka_python_group_consumes_and_commits(group_broker):
    bootstrap = group_broker.bootstrap_servers
    topic, group = unique_topic("kp"), unique_topic("g")
    create_topic(bootstrap, topic, PARTITIONS)
    produce(bootstrap, topic, range(60))

    def make() -> KafkaConsumer:
        return KafkaConsumer(topic, bootstrap_servers=bootstrap, group_id=group, enable_auto_commit=False,
                             auto_offset_reset="earliest", session_timeout_ms=3000, heartbeat_interval_ms=300)

    a, b = make(), make()
    seen: list[int] = []
    deadline = time.monotonic() + DEADLINE_S
    while len(seen) < 60 or not (a.assignment() and b.assignment()):
        assert time.monotonic() < deadline
        for c in (a, b):
            for records in c.poll(timeout_ms=50).values():
                seen.extend(int(r.value) for r in records)
            try:
                c.commit()
            except (kafka_errors.RebalanceInProgressError, kafka_errors.CommitFailedError):
                pass  # Kafka's answer to a commit racing a rebalance; the next poll rejoins
    # A record handed out just before a rebalance may be handed out again to its new owner.
    assert set(seen) == set(range(60))
    assert not {tp.partition for tp in a.assignment()} & {tp.partition for tp in b.assignment()}
    a.close()
    b.close()
    c = make()
    from kafka import TopicPartition

    assert sum(c.committed(TopicPartition(topic, p)) or 0 for p in range(PARTITIONS)) == 60
    c.close()
