"""Given a broker with the log cleaner on and a compacted topic, when confluent-kafka producers write
gzip and zstd batches with updates and tombstones, then a consumer reading from the start sees exactly
the latest value of each key at increasing offsets, and deleted keys disappear after
delete.retention.ms; records without a key are refused with INVALID_RECORD."""

from __future__ import annotations

import time

import pytest
from confluent_kafka import KafkaError, Producer

from tests.fixtures import clients, create_topic, embedded_broker, read_all, unique_topic, wait_until

DEADLINE_S = 60
KEYS = 300
DELETED = {f"key-{k:04d}" for k in range(0, KEYS, 10)}
DELETE_RETENTION_MS = 300
VALUE_PAD = "x" * 200


@pytest.fixture(scope="module")
def compacting_broker():
    with embedded_broker(log_cleaner_backoff_ms=50) as embedded:
        yield embedded


def create_compacted_topic(bootstrap: str, topic: str) -> None:
    create_topic(bootstrap, topic, 1, config={
        "cleanup.policy": "compact", "segment.bytes": str(1024 * 1024), "min.cleanable.dirty.ratio": "0.01",
        "delete.retention.ms": str(DELETE_RETENTION_MS)})


def produce(bootstrap: str, topic: str, records: list[tuple[str | None, str | None]], codec: str) -> list:
    producer = clients.track(Producer({"bootstrap.servers": bootstrap, "compression.type": codec, "linger.ms": 5,
                                       "enable.idempotence": False, "message.send.max.retries": 0}))
    errors: list = []
    for key, value in records:
        producer.produce(topic, key=key, value=value,
                         on_delivery=lambda err, _msg: errors.append(err) if err else None)
    assert producer.flush(DEADLINE_S) == 0
    return errors


def read_compacted(bootstrap: str, topic: str) -> list[tuple[int, str, str | None]]:
    """(offset, key, value or None) of every record of the one partition, read to its end."""
    return [(r.offset, (r.key or b"").decode(), None if r.value is None else r.value.decode())
            for r in read_all(bootstrap, topic, timeout=DEADLINE_S)]


def wait_for_clean(embedded, cleans: int) -> None:
    wait_until(lambda: embedded.broker.log_cleaner.cleans >= cleans, DEADLINE_S,
               f"{cleans} clean(s) of the log cleaner")


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
    records = read_compacted(bootstrap, topic)
    offsets = [offset for offset, _, _ in records]
    assert offsets == sorted(set(offsets))
    latest = {key: value for _, key, value in records}
    assert latest == expected
    assert len([r for r in records if r[1].startswith("key-")]) < 6 * KEYS  # something was compacted away

    # Deleted keys go once delete.retention.ms has passed since their batch was first cleaned.
    deadline = time.monotonic() + DEADLINE_S
    round_ = 2
    while DELETED & {key for _, key, _ in read_compacted(bootstrap, topic)}:
        assert time.monotonic() < deadline, "tombstones outlived delete.retention.ms"
        cleans = compacting_broker.broker.log_cleaner.cleans
        fill = filler(round_)
        assert produce(bootstrap, topic, fill, "none") == []
        expected.update(fill)
        round_ += 1
        wait_for_clean(compacting_broker, cleans + 1)
    live = {key: value for key, value in expected.items() if value is not None}
    assert {key: value for _, key, value in read_compacted(bootstrap, topic)} == live
