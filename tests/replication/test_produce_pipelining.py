"""acks=all Produce requests pipelined on one connection (broker/connection.py, DeferredResponse): the leader
appends the next Produce while an earlier one waits for the ISR, answers in request order, and handles any
other request only after every earlier response is sent."""

from __future__ import annotations

import select
import socket

import pytest
from confluent_kafka import Producer
from kafka import KafkaConsumer, KafkaProducer
from kafka import TopicPartition as KafkaTopicPartition

from moldau.protocol import api, messages
from moldau.protocol.errors import ErrorCode
from moldau.protocol.records import Record, build_batch
from tests.broker.test_api import read_frame
from tests.fixtures import DEADLINE_S, clients, unique_topic, wait_until
from tests.replication.controller_for_tests import ControllerForTests, running_controller

PRODUCE, LIST_OFFSETS = 0, 2


@pytest.fixture
def cluster(tmp_path):
    # A long replica.lag.time.max.ms: a stopped follower stays in the ISR, so acks=all waits for it.
    with running_controller(tmp_path, replica_lag_time_max_ms=120000) as controller:
        yield controller


def _produce(topic: str, value: bytes, acks: int) -> messages.ProduceRequest:
    return messages.ProduceRequest(acks=acks, timeout_ms=DEADLINE_S * 1000, topic_data=[
        messages.ProduceRequest.TopicProduceData(name=topic, partition_data=[
            messages.ProduceRequest.PartitionProduceData(index=0, records=build_batch([Record(0, 0, None, value)]))])])


def _follower_3_down(cluster: ControllerForTests, name: str) -> str:
    """A new topic with min.insync.replicas=2 and the full ISR, then broker 3 stopped (still in the ISR)."""
    topic = unique_topic(name)
    cluster.create_topic(topic, configs={"min.insync.replicas": "2"})
    wait_until(lambda: cluster.state(topic).isr == (1, 2, 3), what="the full ISR")
    cluster.stop(3)
    return topic


def test_acks_all_produces_are_appended_while_earlier_ones_wait_and_answered_in_order(cluster):
    # Given follower 3 down but still in the ISR: the high watermark cannot pass what it lacks.
    topic = _follower_3_down(cluster, "pipeline")
    with socket.create_connection(("127.0.0.1", cluster.brokers[1].port), timeout=DEADLINE_S) as sock:
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        # When two acks=all Produce requests, an acks=1 Produce and a ListOffsets go out back to back on one
        # connection...
        requests = [(PRODUCE, 9, _produce(topic, b"a", -1)), (PRODUCE, 9, _produce(topic, b"b", -1)),
                    (PRODUCE, 9, _produce(topic, b"c", 1)),
                    (LIST_OFFSETS, 7, messages.ListOffsetsRequest(replica_id=-1, isolation_level=0, topics=[
                        messages.ListOffsetsRequest.ListOffsetsTopic(name=topic, partitions=[
                            messages.ListOffsetsRequest.ListOffsetsPartition(partition_index=0, timestamp=-1)])]))]
        sock.sendall(b"".join(api.encode_request(key, version, correlation_id, "pipelining-test", body)
                              for correlation_id, (key, version, body) in enumerate(requests, 1)))
        # ... then the leader appends all three produces without waiting for the first one's ISR ...
        wait_until(lambda: cluster.offsets(1, topic) == (0, 3), timeout=10,
                   what="the leader to append the three produced batches while the high watermark stays at 0")
        # ... and answers none of them yet: the first response is owed first, and it waits for broker 3.
        assert select.select([sock], [], [], 0.2)[0] == []
        # When broker 3 comes back and catches up, every response arrives, in request order.
        cluster.start(3)
        answers = []
        for correlation_id, (key, version, _) in enumerate(requests, 1):
            got_id, response = api.decode_response(key, version, read_frame(sock))
            assert got_id == correlation_id
            answers.append(response)
    produced = [r.responses[0].partition_responses[0] for r in answers[:3]]
    assert [(p.error_code, p.base_offset) for p in produced] == [(ErrorCode.NONE, 0), (ErrorCode.NONE, 1),
                                                                  (ErrorCode.NONE, 2)]
    # The ListOffsets was handled after the produces were answered: it sees them committed, as in Kafka.
    listed = answers[3].topics[0].partitions[0]
    assert (listed.error_code, listed.offset) == (ErrorCode.NONE, 3)
    assert cluster.offsets(1, topic) == (3, 3)


def test_a_failed_acks_all_produce_does_not_reorder_or_lose_later_answers(cluster):
    topic = _follower_3_down(cluster, "pipeline-timeout")
    with socket.create_connection(("127.0.0.1", cluster.brokers[1].port), timeout=DEADLINE_S) as sock:
        # A first produce that times out waiting for broker 3, then one to an unknown partition (refused at
        # once): the refusal is still answered second.
        first = _produce(topic, b"a", -1)
        first.timeout_ms = 300
        second = _produce(topic, b"b", -1)
        second.topic_data[0].partition_data[0].index = 7
        sock.sendall(api.encode_request(PRODUCE, 9, 1, "pipelining-test", first)
                     + api.encode_request(PRODUCE, 9, 2, "pipelining-test", second))
        answers = [api.decode_response(PRODUCE, 9, read_frame(sock)) for _ in range(2)]
    assert [correlation_id for correlation_id, _ in answers] == [1, 2]
    assert answers[0][1].responses[0].partition_responses[0].error_code == ErrorCode.REQUEST_TIMED_OUT
    assert answers[1][1].responses[0].partition_responses[0].error_code == ErrorCode.UNKNOWN_TOPIC_OR_PARTITION


@pytest.mark.parametrize("library", ["confluent-kafka", "kafka-python"])
def test_many_requests_in_flight_keep_their_order(cluster, library):
    """Clients with several acks=all requests in flight per connection: every record acknowledged once, at
    offsets in the order produced (idempotent producers, so a retry may not reorder either)."""
    topic = unique_topic("pipeline-order")
    cluster.create_topic(topic, configs={"min.insync.replicas": "2"})
    values = [f"{i:05d}".encode() * 20 for i in range(3000)]
    acked: list[tuple[bytes, int]] = []
    if library == "confluent-kafka":
        producer = clients.track(Producer({"bootstrap.servers": cluster.bootstrap(1), "acks": "all",
                                           "enable.idempotence": True, "linger.ms": 1, "batch.size": 4096,
                                           "max.in.flight.requests.per.connection": 5}))
        errors = []

        def report(err, msg):
            if err is not None:
                errors.append(err)
            else:
                acked.append((msg.value(), msg.offset()))
        for value in values:
            producer.produce(topic, value=value, partition=0, on_delivery=report)
            producer.poll(0)
        assert producer.flush(DEADLINE_S) == 0
        assert not errors, errors
    else:
        kafka_producer = clients.track(KafkaProducer(bootstrap_servers=cluster.bootstrap(1), acks="all",
                                                     linger_ms=1, batch_size=4096,
                                                     max_in_flight_requests_per_connection=5))
        futures = [(value, kafka_producer.send(topic, value=value, partition=0)) for value in values]
        kafka_producer.flush(DEADLINE_S)
        acked = [(value, future.get(DEADLINE_S).offset) for value, future in futures]
    assert sorted(offset for _, offset in acked) == list(range(len(values)))
    assert [value for value, _ in sorted(acked, key=lambda a: a[1])] == values
    # Every replica has the same log.
    wait_until(lambda: all(cluster.offsets(n, topic) == (len(values), len(values)) for n in (1, 2, 3)),
               what="every replica caught up")
    consumer = clients.track(KafkaConsumer(bootstrap_servers=cluster.bootstrap(2), enable_auto_commit=False,
                                           consumer_timeout_ms=500))
    consumer.assign([KafkaTopicPartition(topic, 0)])
    consumer.seek_to_beginning()
    read: list[bytes] = []
    wait_until(lambda: read.extend(r.value for rs in consumer.poll(timeout_ms=200).values() for r in rs)
               or len(read) >= len(values), what="reading every record back")
    assert read == values
