"""KIP-467: given a compacted topic or one with timestamp bounds, when a batch holds some bad records, then the
batch fails as a whole and the response names each bad record by its index (librdkafka's test 0011)."""

from __future__ import annotations

import time

import pytest
from confluent_kafka import KafkaError, Producer
from confluent_kafka.admin import AdminClient, NewTopic

from moldau.client.client import Client
from moldau.protocol import messages
from moldau.protocol.errors import ErrorCode
from moldau.protocol.records import Record, build_batch
from tests.fixtures import unique_topic

DEADLINE_S = 30
HOUR_MS = 3_600_000


def new_topic(broker, **configs: str) -> str:
    topic = unique_topic("kip467")
    admin = AdminClient({"bootstrap.servers": broker.bootstrap_servers})
    admin.create_topics([NewTopic(topic, 1, config=configs)])[topic].result(DEADLINE_S)
    return topic


def produce_raw(broker, topic: str, records: list[Record]):
    request = messages.ProduceRequest
    body = request(acks=-1, timeout_ms=30000, topic_data=[request.TopicProduceData(
        name=topic, partition_data=[request.PartitionProduceData(index=0, records=build_batch(records))])])
    with Client(broker.bootstrap_servers) as client:
        return client.send(0, body, version=min(client.version_for(0), 12)).responses[0].partition_responses[0]


def test_keyless_records_in_a_compacted_topic_are_named_in_the_response(broker):
    topic = new_topic(broker, **{"cleanup.policy": "compact"})
    now = int(time.time() * 1000)
    records = [Record(i, now, None if i % 10 == 3 else f"k{i}".encode(), b"v") for i in range(100)]
    result = produce_raw(broker, topic, records)
    assert result.error_code == ErrorCode.INVALID_RECORD
    why = f"Compacted topic cannot accept message without key in topic partition {topic}-0."
    assert [(e.batch_index, e.batch_index_error_message) for e in result.record_errors] == \
        [(i, why) for i in range(3, 100, 10)]
    assert result.error_message == (
        "One or more records have been rejected due to 10 record errors in total, and only showing the first "
        f"three errors at most: [RecordError(batchIndex=3, message='{why}'), RecordError(batchIndex=13, "
        f"message='{why}'), RecordError(batchIndex=23, message='{why}')]")


def test_records_out_of_the_timestamp_bounds_are_named_in_the_response(broker):
    topic = new_topic(broker, **{"message.timestamp.before.max.ms": str(HOUR_MS)})
    now = int(time.time() * 1000)
    stale = now - 2 * HOUR_MS
    records = [Record(i, stale if i in (0, 5) else now, b"k", b"v") for i in range(8)]
    result = produce_raw(broker, topic, records)
    assert result.error_code == ErrorCode.INVALID_TIMESTAMP
    assert result.error_message == "One or more records have been rejected due to invalid timestamp"
    assert [e.batch_index for e in result.record_errors] == [0, 5]
    message = result.record_errors[1].batch_index_error_message
    assert message.startswith(f"Timestamp {stale} of message with offset 5 is out of range. The timestamp "
                              "should be within [")


def produce_with_librdkafka(broker, topic: str, messages_: list[tuple[bytes | None, int | None]]) -> list:
    """One batch of records through librdkafka; returns each record's delivery error (None when delivered)."""
    producer = Producer({"bootstrap.servers": broker.bootstrap_servers, "linger.ms": 500,
                         "batch.num.messages": len(messages_), "enable.idempotence": False, "retries": 0})
    errors: list = [...] * len(messages_)

    def report(index: int):
        def delivered(err, msg):
            errors[index] = err
        return delivered

    for index, (key, timestamp) in enumerate(messages_):
        producer.produce(topic, b"v", key=key, partition=0, timestamp=timestamp or 0, on_delivery=report(index))
    assert producer.flush(DEADLINE_S) == 0
    return errors


def test_librdkafka_fails_exactly_the_keyless_records(broker):
    """librdkafka's 0011: the bad records get INVALID_RECORD, the others of their batch
    _INVALID_DIFFERENT_RECORD ("an invalid record in the same batch caused the failure")."""
    topic = new_topic(broker, **{"cleanup.policy": "compact"})
    errors = produce_with_librdkafka(broker, topic, [(None if i % 10 == 3 else b"k", None) for i in range(100)])
    codes = [e.code() if e is not None else None for e in errors]
    assert [i for i, c in enumerate(codes) if c == KafkaError.INVALID_RECORD] == list(range(3, 100, 10))
    assert codes.count(KafkaError._INVALID_DIFFERENT_RECORD) == 90


@pytest.mark.parametrize("bad", [[0], [2, 7]])
def test_a_stale_record_anywhere_in_a_batch_fails_it(broker, bad):
    """Kafka checks each record's timestamp, not only the first one's, and the whole batch fails."""
    topic = new_topic(broker, **{"message.timestamp.before.max.ms": str(HOUR_MS)})
    now = int(time.time() * 1000)
    errors = produce_with_librdkafka(broker, topic, [(b"k", now - 2 * HOUR_MS if i in bad else now)
                                                     for i in range(10)])
    codes = [e.code() if e is not None else None for e in errors]
    assert None not in codes
    # librdkafka reports the named records as INVALID_RECORD and the rest as _INVALID_DIFFERENT_RECORD, or,
    # when only the first record is named, every record as INVALID_TIMESTAMP.
    named = [i for i, c in enumerate(codes) if c != KafkaError._INVALID_DIFFERENT_RECORD]
    assert named == (list(range(10)) if bad == [0] else bad)
    records = [Record(i, now - 2 * HOUR_MS if i in bad else now, b"k", b"v") for i in range(10)]
    assert [e.batch_index for e in produce_raw(broker, topic, records).record_errors] == bad
