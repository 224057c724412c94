"""Given a broker with a transaction coordinator, when producers use transactions, then consumers see
Kafka's isolation: read_committed only committed records, read_uncommitted everything (KIP-98)."""

from __future__ import annotations

import asyncio
import json
import time

import pytest
from confluent_kafka import Consumer, KafkaError, KafkaException, Producer, TopicPartition

from tests.cli.test_cli import moldau
from tests.fixtures import (
    DEADLINE_S,
    clients,
    create_topic,
    embedded_broker,
    read_all,
    unique_topic,
    values_of,
)

PARTITIONS = 3
# Few internal partitions keep startup quick; short group timers keep rebalances fast.
TXN_OVERRIDES = {"num_partitions": PARTITIONS, "offsets_topic_num_partitions": 3,
                 "transaction_state_log_num_partitions": 3, "group_initial_rebalance_delay_ms": 100,
                 "group_min_session_timeout_ms": 500,
                 "transaction_abort_timed_out_transaction_cleanup_interval_ms": 200}


@pytest.fixture
def txn_broker():
    with embedded_broker(**TXN_OVERRIDES) as embedded:
        yield embedded


def txn_producer(bootstrap: str, transactional_id: str, **extra: object) -> Producer:
    producer = clients.track(Producer({"bootstrap.servers": bootstrap, "transactional.id": transactional_id,
                                       "linger.ms": 5, **extra}))
    producer.init_transactions(DEADLINE_S)
    return producer


def read_values(bootstrap: str, topic: str, isolation: str, expected: int, idle_s: float = 1.0) -> list[str]:
    """Values of `topic` from the beginning: at least `expected`, then whatever comes within `idle_s`."""
    return values_of(read_all(bootstrap, topic, PARTITIONS, isolation=isolation, expected=expected, idle_s=idle_s))


def test_commit_and_abort_isolation_with_confluent(txn_broker):
    bootstrap = txn_broker.bootstrap_servers
    topic = unique_topic("txn")
    create_topic(bootstrap, topic)
    group = unique_topic("txn-group")
    producer = txn_producer(bootstrap, unique_topic("tid"))

    # Given a committed transaction over 3 partitions that also commits the group's offsets
    producer.begin_transaction()
    for i in range(30):
        producer.produce(topic, value=f"committed-{i}".encode(), partition=i % PARTITIONS)
    consumer = Consumer({"bootstrap.servers": bootstrap, "group.id": group, "enable.auto.commit": False})
    offsets = [TopicPartition(topic, p, 10 + p) for p in range(PARTITIONS)]
    producer.send_offsets_to_transaction(offsets, consumer.consumer_group_metadata(), DEADLINE_S)
    producer.commit_transaction(DEADLINE_S)

    # and an aborted one
    producer.begin_transaction()
    for i in range(9):
        producer.produce(topic, value=f"aborted-{i}".encode(), partition=i % PARTITIONS)
    producer.flush(DEADLINE_S)
    producer.abort_transaction(DEADLINE_S)

    # Then read_committed sees only the committed records, read_uncommitted both
    committed = read_values(bootstrap, topic, "read_committed", 30)
    assert sorted(committed) == sorted(f"committed-{i}" for i in range(30))
    uncommitted = read_values(bootstrap, topic, "read_uncommitted", 39)
    assert len(uncommitted) == 39 and sum(v.startswith("aborted") for v in uncommitted) == 9

    # and the transactional offsets are the group's committed offsets
    committed_offsets = consumer.committed([TopicPartition(topic, p) for p in range(PARTITIONS)], DEADLINE_S)
    assert [tp.offset for tp in committed_offsets] == [10, 11, 12]
    consumer.close()

    # When a transaction stays open, ListOffsets latest honours the isolation level
    producer.begin_transaction()
    producer.produce(topic, value=b"open", partition=0)
    producer.flush(DEADLINE_S)
    low_uncommitted = Consumer({"bootstrap.servers": bootstrap, "group.id": "x", "isolation.level":
                                "read_uncommitted"})
    low_committed = Consumer({"bootstrap.servers": bootstrap, "group.id": "x", "isolation.level":
                              "read_committed"})
    try:
        high_uncommitted = low_uncommitted.get_watermark_offsets(TopicPartition(topic, 0), DEADLINE_S)[1]
        high_committed = low_committed.get_watermark_offsets(TopicPartition(topic, 0), DEADLINE_S)[1]
        # partition 0: 10 committed + 1 marker + 3 aborted + 1 marker, then the open record
        assert high_uncommitted == 16
        assert high_committed == 15
    finally:
        low_uncommitted.close()
        low_committed.close()
    producer.commit_transaction(DEADLINE_S)


def test_aiokafka_read_committed_skips_aborted(txn_broker):
    from aiokafka import AIOKafkaConsumer

    bootstrap = txn_broker.bootstrap_servers
    topic = unique_topic("txn-aio")
    create_topic(bootstrap, topic)
    producer = txn_producer(bootstrap, unique_topic("tid"))
    for committed in (True, False, True):
        producer.begin_transaction()
        for p in range(PARTITIONS):
            producer.produce(topic, value=f"{'c' if committed else 'a'}-{p}".encode(), partition=p)
        if committed:
            producer.commit_transaction(DEADLINE_S)
        else:
            producer.flush(DEADLINE_S)
            producer.abort_transaction(DEADLINE_S)

    async def consume(isolation: str, expected: int) -> list[str]:
        consumer = AIOKafkaConsumer(topic, bootstrap_servers=bootstrap, isolation_level=isolation,
                                    auto_offset_reset="earliest", enable_auto_commit=False)
        await consumer.start()
        values: list[str] = []
        try:
            async with asyncio.timeout(DEADLINE_S):
                while len(values) < expected:
                    batch = await consumer.getmany(timeout_ms=500)
                    values += [m.value.decode() for records in batch.values() for m in records]
            # nothing more arrives
            batch = await consumer.getmany(timeout_ms=500)
            values += [m.value.decode() for records in batch.values() for m in records]
        finally:
            await consumer.stop()
        return values

    committed = asyncio.run(consume("read_committed", 6))
    assert sorted(committed) == sorted(f"c-{p}" for p in range(PARTITIONS) for _ in range(2))
    everything = asyncio.run(consume("read_uncommitted", 9))
    assert len(everything) == 9


def test_second_producer_fences_the_first(txn_broker):
    bootstrap = txn_broker.bootstrap_servers
    topic = unique_topic("txn-fence")
    create_topic(bootstrap, topic)
    transactional_id = unique_topic("tid")
    first = txn_producer(bootstrap, transactional_id)
    first.begin_transaction()
    first.produce(topic, value=b"zombie", partition=0)
    first.flush(DEADLINE_S)

    # When a second producer with the same transactional.id starts
    second = txn_producer(bootstrap, transactional_id)

    # Then the first one's open transaction is aborted and its next commit is fenced
    first.produce(topic, value=b"zombie-2", partition=1)
    with pytest.raises(KafkaException) as fenced:
        first.commit_transaction(DEADLINE_S)
    assert fenced.value.args[0].code() in (KafkaError._FENCED, KafkaError.PRODUCER_FENCED,
                                           KafkaError.INVALID_PRODUCER_EPOCH), fenced.value

    second.begin_transaction()
    second.produce(topic, value=b"live", partition=0)
    second.commit_transaction(DEADLINE_S)
    assert read_values(bootstrap, topic, "read_committed", 1) == ["live"]


def test_timed_out_transaction_is_aborted_and_shown_by_the_cli(txn_broker):
    bootstrap = txn_broker.bootstrap_servers
    topic = unique_topic("txn-timeout")
    create_topic(bootstrap, topic)
    transactional_id = unique_topic("tid")
    # A long timeout, so that a loaded machine cannot time the transaction out before the CLI looks at it;
    # the abort below is triggered with the coordinator's clock moved past it.
    producer = txn_producer(bootstrap, transactional_id, **{"transaction.timeout.ms": 60000})
    producer.begin_transaction()
    producer.produce(topic, value=b"left-open", partition=2)
    producer.flush(DEADLINE_S)

    # Given an open transaction, the CLI shows it with its partition
    described = json.loads(moldau("txn", "describe", transactional_id, "--json", "-b", bootstrap).stdout)
    assert described["state"] == "Ongoing" and described["partitions"] == [f"{topic}-2"]
    listed = json.loads(moldau("txn", "list", "--state", "Ongoing", "--json", "-b", bootstrap).stdout)
    assert transactional_id in [t["transactional_id"] for t in listed]

    # When it outlives transaction.timeout.ms, the coordinator aborts it and the LSO moves past it
    coordinator = txn_broker.broker.transaction_coordinator
    log = txn_broker.broker.replica_manager.partition(topic, 2).log
    assert txn_broker.call(coordinator.abort_timed_out_transactions(now_ms=int(time.time() * 1000) + 30_000)) == []
    aborted = txn_broker.call(coordinator.abort_timed_out_transactions(now_ms=int(time.time() * 1000) + 61_000))
    assert aborted == [transactional_id]
    assert coordinator.transactions[transactional_id].state.display_name == "CompleteAbort"
    assert log.last_stable_offset == log.high_watermark == 2
    assert read_values(bootstrap, topic, "read_committed", 0, idle_s=0.5) == []
    with pytest.raises(KafkaException):
        producer.commit_transaction(DEADLINE_S)


def test_offset_fetch_require_stable_reports_open_transactional_offsets(txn_broker):
    """KIP-447: while a transaction's offsets are pending, a require_stable OffsetFetch answers
    UNSTABLE_OFFSET_COMMIT for those partitions; after the commit it returns them."""
    from moldau.client.client import Client
    from moldau.protocol import messages
    from moldau.protocol.errors import ErrorCode

    bootstrap = txn_broker.bootstrap_servers
    topic, group = unique_topic("stable"), unique_topic("stable-group")
    create_topic(bootstrap, topic)
    producer = txn_producer(bootstrap, unique_topic("tid"))
    consumer = Consumer({"bootstrap.servers": bootstrap, "group.id": group, "enable.auto.commit": False})
    producer.begin_transaction()
    producer.produce(topic, value=b"x", partition=0)
    producer.send_offsets_to_transaction([TopicPartition(topic, 0, 5)], consumer.consumer_group_metadata(),
                                         DEADLINE_S)

    def fetch(require_stable: bool):
        request_type = messages.OffsetFetchRequest
        with Client(bootstrap) as client:
            request = request_type(groups=[request_type.OffsetFetchRequestGroup(
                group_id=group, topics=[request_type.OffsetFetchRequestTopics(name=topic, partition_indexes=[0])])],
                require_stable=require_stable)
            partition = client.send(9, request, 9).groups[0].topics[0].partitions[0]
        return partition.error_code, partition.committed_offset

    assert fetch(True) == (ErrorCode.UNSTABLE_OFFSET_COMMIT, -1)
    assert fetch(False) == (ErrorCode.NONE, -1)  # nothing committed yet, and not waiting for it
    producer.commit_transaction(DEADLINE_S)
    assert fetch(True) == (ErrorCode.NONE, 5)
    consumer.close()
