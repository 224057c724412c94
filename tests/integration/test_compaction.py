"""Given a broker with the log cleaner on and a compacted topic, when confluent-kafka producers write
gzip and zstd batches with updates and tombstones, then a consumer reading from the start sees exactly
the latest value of each key at increasing offsets, and deleted keys disappear after
delete.retention.ms; records without a key are refused with INVALID_RECORD."""

from __future__ import annotations

import time

import pytest
from confluent_kafka import OFFSET_BEGINNING, Consumer, KafkaError, Producer, TopicPartition
from confluent_kafka.admin import AdminClient, NewTopic

from moldau.testing import running_broker
from tests.fixtures import unique_topic

DEADLINE_S = 60
KEYS = 300
DELETED = {f"key-{k:04d}" for k in range(0, KEYS, 10)}
DELETE_RETENTION_MS = 300
VALUE_PAD = "x" * 200


@pytest.fixture(scope="module")
def compacting_broker():
    with running_broker(log_cleaner_backoff_ms=50) as embedded:
        yield embedded


def create_compacted_topic(bootstrap: str, topic: str) -> None:
    admin = AdminClient({"bootstrap.servers": bootstrap})
    configs = {"cleanup.policy": "compact", "segment.bytes": str(1024 * 1024),
               "min.cleanable.dirty.ratio": "0.01", "delete.retention.ms": str(DELETE_RETENTION_MS)}
    futures = admin.create_topics([NewTopic(topic, num_partitions=1, replication_factor=1, config=configs)])
    futures[topic].result(DEADLINE_S)


def produce(bootstrap: str, topic: str, records: list[tuple[str | None, str | None]], codec: str) -> list:
    producer = Producer({"bootstrap.servers": bootstrap, "compression.type": codec, "linger.ms": 5,
                         "enable.idempotence": False, "message.send.max.retries": 0})
    errors: list = []
    for key, value in records:
        producer.produce(topic, key=key, value=value,
                         on_delivery=lambda err, _msg: errors.append(err) if err else None)
    assert producer.flush(DEADLINE_S) == 0
    return errors


def read_all(bootstrap: str, topic: str) -> list[tuple[int, str, str | None]]:
    consumer = Consumer({"bootstrap.servers": bootstrap, "group.id": "compaction-check",
                         "enable.auto.commit": False, "enable.partition.eof": True})
    consumer.assign([TopicPartition(topic, 0, OFFSET_BEGINNING)])
    out: list[tuple[int, str, str | None]] = []
    deadline = time.monotonic() + DEADLINE_S
    try:
        while time.monotonic() < deadline:
            msg = consumer.poll(0.5)
            if msg is None:
                continue
            if msg.error():
                if msg.error().code() == KafkaError._PARTITION_EOF:
                    return out
                raise AssertionError(msg.error())
            value = msg.value()
            out.append((msg.offset(), msg.key().decode(), None if value is None else value.decode()))
    finally:
        consumer.close()
    raise AssertionError("did not reach the end of the partition in time")


def wait_for_clean(embedded, cleans: int) -> None:
    deadline = time.monotonic() + DEADLINE_S
    while embedded.broker.log_cleaner.cleans < cleans:
        assert time.monotonic() < deadline, "the log cleaner did not clean in time"
        time.sleep(0.05)  # polling a counter on another thread: there is no event to await


def filler(round_: int, count: int = 4500) -> list[tuple[str | None, str | None]]:
    """Enough distinct-key data to roll a 1 MiB segment (sent uncompressed), so that the data before it
    becomes cleanable."""
    return [(f"filler-{round_}-{i}", VALUE_PAD) for i in range(count)]


def test_compacted_topic_keeps_the_latest_value_per_key(compacting_broker) -> None:
    bootstrap = compacting_broker.bootstrap_servers
    topic = unique_topic("compacted")
    create_compacted_topic(bootstrap, topic)
    expected: dict[str, str | None] = {}
    for round_ in range(6):
        records = [(f"key-{k:04d}", f"{round_}-{k}-{VALUE_PAD}") for k in range(KEYS)]
        assert produce(bootstrap, topic, records, "gzip" if round_ % 2 else "zstd") == []
        expected.update(records)
    tombstones: list[tuple[str | None, str | None]] = [(key, None) for key in sorted(DELETED)]
    assert produce(bootstrap, topic, tombstones, "zstd") == []
    expected.update(tombstones)
    for round_ in range(2):
        fill = filler(round_)
        assert produce(bootstrap, topic, fill, "none") == []
        expected.update(fill)

    errors = produce(bootstrap, topic, [(None, "keyless")], "none")
    assert [e.code() for e in errors] == [KafkaError.INVALID_RECORD]

    cleans = compacting_broker.broker.log_cleaner.cleans
    wait_for_clean(compacting_broker, max(cleans, 1))
    records = read_all(bootstrap, topic)
    offsets = [offset for offset, _, _ in records]
    assert offsets == sorted(set(offsets))
    latest = {key: value for _, key, value in records}
    assert latest == expected
    assert len([r for r in records if r[1].startswith("key-")]) < 6 * KEYS  # something was compacted away

    # Deleted keys go once delete.retention.ms has passed since their batch was first cleaned.
    deadline = time.monotonic() + DEADLINE_S
    round_ = 2
    while DELETED & {key for _, key, _ in read_all(bootstrap, topic)}:
        assert time.monotonic() < deadline, "tombstones outlived delete.retention.ms"
        cleans = compacting_broker.broker.log_cleaner.cleans
        fill = filler(round_)
        assert produce(bootstrap, topic, fill, "none") == []
        expected.update(fill)
        round_ += 1
        wait_for_clean(compacting_broker, cleans + 1)
    live = {key: value for key, value in expected.items() if value is not None}
    assert {key: value for _, key, value in read_all(bootstrap, topic)} == live
