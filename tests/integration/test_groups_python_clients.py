"""Given a broker, when aiokafka and kafka-python consumers share a topic in a group, then they split its
partitions, rebalance when a member leaves, and resume from committed offsets."""

from __future__ import annotations

import asyncio
import threading
from concurrent.futures import ThreadPoolExecutor

import kafka.errors as kafka_errors
from aiokafka import AIOKafkaConsumer
from kafka import KafkaConsumer, TopicPartition

from tests.fixtures import (
    DEADLINE_S,
    GROUP_PARTITIONS,
    clients,
    create_topic,
    produce_values,
    unique_topic,
    wait_until,
)

PARTITIONS = GROUP_PARTITIONS

POLL_MS = 2000


def test_aiokafka_group_splits_rebalances_and_commits(group_broker):
    bootstrap = group_broker.bootstrap_servers
    topic, group = unique_topic("aio"), unique_topic("g")
    create_topic(bootstrap, topic, PARTITIONS)
    produce_values(bootstrap, topic, range(120))

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
    produce_values(bootstrap, topic, range(60))
    seen: list[int] = []
    done = threading.Event()

    def make() -> KafkaConsumer:
        return KafkaConsumer(topic, bootstrap_servers=bootstrap, group_id=group, enable_auto_commit=False,
                             auto_offset_reset="earliest", session_timeout_ms=3000, heartbeat_interval_ms=300)

    def run(c: KafkaConsumer) -> None:
        # One thread per consumer, each poll long enough to see its own JoinGroup and SyncGroup through.
        # kafka-python 3.0.12 drops a join that completes after the poll() awaiting it timed out and sends a
        # new JoinGroup (coordinator/base.py, join_group_async); a JoinGroup from the group leader makes
        # Kafka's coordinator rebalance again (GroupMetadataManager.classicGroupJoinExistingMember), and ours.
        # Two consumers polled in turn for 50 ms in one thread hit that on most joins on a loaded machine,
        # and the group rebalanced endlessly.
        while not done.is_set():
            for records in c.poll(timeout_ms=POLL_MS).values():
                seen.extend(int(r.value) for r in records)
            try:
                c.commit()
            except (kafka_errors.RebalanceInProgressError, kafka_errors.CommitFailedError):
                pass  # Kafka's answer to a commit racing a rebalance; the next poll rejoins

    def committed() -> int:
        async def total() -> int:
            offsets = group_broker.broker.group_coordinator.fetch_offsets(group, None)
            return sum(o.committed_offset for o in offsets.values() if o is not None)
        return group_broker.call(total())

    a = clients.track(make())
    b = clients.track(make())
    with ThreadPoolExecutor(2) as pool:
        futures = [pool.submit(run, c) for c in (a, b)]
        try:
            wait_until(lambda: any(f.done() for f in futures) or (
                len(seen) >= 60 and a.assignment() and b.assignment() and committed() == 60), DEADLINE_S,
                "both members to hold partitions and all 60 records to be committed")
        finally:
            done.set()
        for f in futures:
            f.result(DEADLINE_S)  # a member's exception fails the test here
    # A record handed out just before a rebalance may be handed out again to its new owner.
    assert set(seen) == set(range(60))
    assert not {tp.partition for tp in a.assignment()} & {tp.partition for tp in b.assignment()}
    a.close()
    b.close()
    c = clients.track(KafkaConsumer(bootstrap_servers=bootstrap, group_id=group, enable_auto_commit=False))
    assert sum(c.committed(TopicPartition(topic, p)) or 0 for p in range(PARTITIONS)) == 60
