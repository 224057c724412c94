"""Given clients made through tests/fixtures.py, when the test using them fails, then they are closed before
its broker stops, so that nothing is left retrying a broker that is gone."""

from __future__ import annotations

import pytest
from confluent_kafka import Consumer, Producer

from tests.fixtures import clients, create_topic, embedded_broker, read_all, unique_topic


def is_closed(consumer: Consumer) -> bool:
    try:
        consumer.assignment()
    except RuntimeError:  # librdkafka's "Consumer closed"
        return True
    return False


def test_a_failing_test_still_closes_its_clients_before_the_broker_stops():
    closed_when_stopping: list[bool] = []
    with pytest.raises(AssertionError, match="the test failed"), embedded_broker(num_partitions=1) as embedded:
        consumer = clients.track(Consumer({"bootstrap.servers": embedded.bootstrap_servers,
                                           "group.id": unique_topic("g")}))
        consumer.subscribe([unique_topic("t")])
        producer = clients.track(Producer({"bootstrap.servers": embedded.bootstrap_servers}))
        producer.produce(unique_topic("t"), b"never sent")
        stop = embedded.broker.stop

        async def recording_stop() -> None:
            closed_when_stopping.append(is_closed(consumer))
            await stop()

        embedded.broker.stop = recording_stop
        raise AssertionError("the test failed")
    assert closed_when_stopping == [True]
    assert len(producer) == 0  # purged rather than flushed against a stopped broker


def test_read_all_reads_every_partition_to_its_end(broker):
    topic = unique_topic("read")
    create_topic(broker.bootstrap_servers, topic, 2)
    producer = clients.track(Producer({"bootstrap.servers": broker.bootstrap_servers}))
    for i in range(10):
        producer.produce(topic, key=str(i).encode(), value=str(i).encode(), partition=i % 2)
    assert producer.flush(30) == 0
    reads = read_all(broker.bootstrap_servers, topic, 2)
    assert sorted(int(r.value) for r in reads) == list(range(10))
    assert [r.offset for r in reads if r.partition == 0] == [0, 1, 2, 3, 4]
