"""Given a broker with a short log.retention.check.interval.ms, when an operator shrinks retention at run time,
then old segments are deleted within one check, the log start offset moves, and consumers whose position
was deleted recover with auto.offset.reset=earliest."""

from __future__ import annotations

import time

import pytest
from confluent_kafka import Consumer, Producer, TopicPartition
from confluent_kafka.admin import AdminClient, AlterConfigOpType, ConfigEntry, ConfigResource, NewTopic

from moldau.client.client import Client
from tests.fixtures import DEADLINE_S, embedded_broker, unique_topic

CHECK_INTERVAL_MS = 200
HOUR_MS = 3_600_000
SEGMENT_BYTES = 1024 * 1024  # the minimum (KIP-1030)
VALUE = b"x" * 1000


@pytest.fixture
def retention_broker():
    with embedded_broker(log_retention_check_interval_ms=CHECK_INTERVAL_MS) as embedded:
        yield embedded


def produce(bootstrap: str, topic: str, count: int, timestamp_ms: int) -> None:
    producer = Producer({"bootstrap.servers": bootstrap, "acks": "all", "linger.ms": 5,
                         "compression.type": "none"})
    for _ in range(count):
        producer.produce(topic, value=VALUE, partition=0, timestamp=timestamp_ms)
    assert producer.flush(DEADLINE_S) == 0


def alter(bootstrap: str, topic: str, key: str, value: str) -> None:
    admin = AdminClient({"bootstrap.servers": bootstrap})
    resource = ConfigResource("TOPIC", topic, incremental_configs=[
        ConfigEntry(key, value, incremental_operation=AlterConfigOpType.SET)])
    admin.incremental_alter_configs([resource])[resource].result(DEADLINE_S)


def wait_for_log_start(bootstrap: str, topic: str, above: int) -> tuple[int, float]:
    """Poll ListOffsets(earliest) until it passes `above`; returns it and how long that took."""
    started = time.monotonic()
    with Client(bootstrap) as client:
        while time.monotonic() - started < DEADLINE_S:
            earliest = client.list_offset(topic, 0, -2)
            if earliest > above:
                return earliest, time.monotonic() - started
            time.sleep(CHECK_INTERVAL_MS / 4000)  # polling another process's state: there is no event to await
    raise TimeoutError(f"log start offset of {topic}-0 stayed at {above}")


def first_offset(bootstrap: str, topic: str, position: int) -> int:
    consumer = Consumer({"bootstrap.servers": bootstrap, "group.id": "assign-only", "enable.auto.commit": False,
                         "auto.offset.reset": "earliest"})
    consumer.assign([TopicPartition(topic, 0, position)])
    deadline = time.monotonic() + DEADLINE_S
    try:
        while time.monotonic() < deadline:
            msg = consumer.poll(0.5)
            if msg is not None and not msg.error():
                return msg.offset()
    finally:
        consumer.close()
    raise TimeoutError("the consumer received nothing")


def old_and_new_segments(bootstrap: str, topic: str) -> int:
    """Fill more than one segment with 2-hour-old records, then add fresh ones; returns the fresh offset."""
    now = int(time.time() * 1000)
    admin = AdminClient({"bootstrap.servers": bootstrap})
    admin.create_topics([NewTopic(topic, 1, config={"segment.bytes": str(SEGMENT_BYTES)})])[topic].result(DEADLINE_S)
    old = SEGMENT_BYTES // len(VALUE) + 200
    produce(bootstrap, topic, old, now - 2 * HOUR_MS)
    produce(bootstrap, topic, 10, now)
    return old


def test_shrinking_retention_ms_deletes_old_segments_and_consumers_recover(retention_broker):
    bootstrap = retention_broker.bootstrap_servers
    topic = unique_topic("ret")
    old_and_new_segments(bootstrap, topic)
    log = retention_broker.broker.replica_manager.partition(topic, 0).log
    assert len(log.segments) >= 2 and log.log_start_offset == 0

    alter(bootstrap, topic, "retention.ms", str(HOUR_MS))
    log_start, took = wait_for_log_start(bootstrap, topic, 0)
    assert took < 2 * CHECK_INTERVAL_MS / 1000 + 1.0
    assert log_start == log.segments[0].base_offset
    assert log.segments[0].largest_timestamp >= int(time.time() * 1000) - HOUR_MS  # the fresh one survives
    assert first_offset(bootstrap, topic, 0) == log_start  # OFFSET_OUT_OF_RANGE, then reset to earliest


def test_retention_bytes_keeps_the_newest_segments(retention_broker):
    bootstrap = retention_broker.bootstrap_servers
    topic = unique_topic("ret-bytes")
    old_and_new_segments(bootstrap, topic)
    alter(bootstrap, topic, "retention.bytes", str(SEGMENT_BYTES // 10))  # below the 2nd segment
    log_start, _ = wait_for_log_start(bootstrap, topic, 0)
    log = retention_broker.broker.replica_manager.partition(topic, 0).log
    assert log_start == log.segments[0].base_offset and log.size_in_bytes < SEGMENT_BYTES


def test_delete_records_segments_go_at_the_next_check(retention_broker):
    bootstrap = retention_broker.bootstrap_servers
    topic = unique_topic("ret-dr")
    old_and_new_segments(bootstrap, topic)
    log = retention_broker.broker.replica_manager.partition(topic, 0).log
    second_segment = log.segments[1].base_offset
    with Client(bootstrap) as client:
        assert client.delete_records(topic, {0: second_segment + 5}) == {0: second_segment + 5}
    deadline = time.monotonic() + DEADLINE_S
    while log.segments[0].base_offset != second_segment and time.monotonic() < deadline:
        time.sleep(CHECK_INTERVAL_MS / 4000)  # the retention task runs on its own schedule
    assert log.segments[0].base_offset == second_segment
    assert first_offset(bootstrap, topic, 0) == second_segment + 5
