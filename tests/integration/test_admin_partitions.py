"""Given a broker, when admin clients add partitions, delete records and describe log dirs, then producers and
consumers see the new partitions and the new log start offsets, and bad requests get Kafka's error codes."""

from __future__ import annotations

import json
import time

import pytest
from confluent_kafka import Consumer, KafkaError, KafkaException, Producer, TopicPartition
from confluent_kafka.admin import AdminClient, NewPartitions, NewTopic
from typer.testing import CliRunner

from moldau.cli.main import app as cli
from tests.fixtures import DEADLINE_S, unique_topic


@pytest.fixture
def admin(broker):
    return AdminClient({"bootstrap.servers": broker.bootstrap_servers})


def new_topic(admin: AdminClient, partitions: int = 1) -> str:
    topic = unique_topic("adm")
    admin.create_topics([NewTopic(topic, partitions)])[topic].result(DEADLINE_S)
    return topic


def produce(bootstrap: str, topic: str, per_partition: int, partitions: list[int]) -> None:
    producer = Producer({"bootstrap.servers": bootstrap, "acks": "all", "linger.ms": 0})
    for p in partitions:
        for i in range(per_partition):
            producer.produce(topic, value=f"{p}-{i}".encode(), partition=p)
    assert producer.flush(DEADLINE_S) == 0


def first_offsets(bootstrap: str, topic: str, partitions: list[int], start: int = 0) -> dict[int, int]:
    """The first offset a consumer positioned at `start` receives on each partition (auto.offset.reset=earliest)."""
    consumer = Consumer({"bootstrap.servers": bootstrap, "group.id": "assign-only", "enable.auto.commit": False,
                         "auto.offset.reset": "earliest"})
    consumer.assign([TopicPartition(topic, p, start) for p in partitions])
    found: dict[int, int] = {}
    deadline = time.monotonic() + DEADLINE_S
    try:
        while len(found) < len(partitions) and time.monotonic() < deadline:
            msg = consumer.poll(0.5)
            if msg is not None and not msg.error():
                found.setdefault(msg.partition(), msg.offset())
    finally:
        consumer.close()
    return found


def test_create_partitions_then_produce_and_consume_on_the_new_ones(admin, broker):
    topic = new_topic(admin, 1)
    admin.create_partitions([NewPartitions(topic, 3)], validate_only=True)[topic].result(DEADLINE_S)
    assert len(admin.list_topics(topic, timeout=DEADLINE_S).topics[topic].partitions) == 1
    admin.create_partitions([NewPartitions(topic, 3)])[topic].result(DEADLINE_S)
    assert len(admin.list_topics(topic, timeout=DEADLINE_S).topics[topic].partitions) == 3
    produce(broker.bootstrap_servers, topic, 5, [1, 2])
    assert first_offsets(broker.bootstrap_servers, topic, [1, 2]) == {1: 0, 2: 0}


@pytest.mark.parametrize(("count", "code"), [(1, KafkaError.INVALID_PARTITIONS), (2, KafkaError.INVALID_PARTITIONS)])
def test_create_partitions_never_shrinks(admin, count, code):
    topic = new_topic(admin, 2)
    with pytest.raises(KafkaException) as info:
        admin.create_partitions([NewPartitions(topic, count)])[topic].result(DEADLINE_S)
    assert info.value.args[0].code() == code


def test_create_partitions_with_assignments(admin, broker):
    node = broker.broker.node_id
    topic = new_topic(admin, 1)
    with pytest.raises(KafkaException) as info:
        admin.create_partitions([NewPartitions(topic, 2, [[node + 7]])])[topic].result(DEADLINE_S)
    assert info.value.args[0].code() == KafkaError.INVALID_REPLICA_ASSIGNMENT
    admin.create_partitions([NewPartitions(topic, 2, [[node]])])[topic].result(DEADLINE_S)
    assert len(broker.broker.replica_manager.topics[topic].partitions) == 2


def test_delete_records_moves_the_log_start_offset(admin, broker):
    topic = new_topic(admin, 2)
    produce(broker.bootstrap_servers, topic, 10, [0, 1])
    result = admin.delete_records([TopicPartition(topic, 0, 4), TopicPartition(topic, 1, -1)])
    lows = {tp.partition: future.result(DEADLINE_S).low_watermark for tp, future in result.items()}
    assert lows == {0: 4, 1: 10}
    produce(broker.bootstrap_servers, topic, 1, [1])
    # A consumer positioned below the log start offset gets OFFSET_OUT_OF_RANGE and resets to earliest.
    assert first_offsets(broker.bootstrap_servers, topic, [0, 1]) == {0: 4, 1: 10}
    beyond = admin.delete_records([TopicPartition(topic, 0, 99)])
    with pytest.raises(KafkaException) as info:
        next(iter(beyond.values())).result(DEADLINE_S)
    assert info.value.args[0].code() == KafkaError.OFFSET_OUT_OF_RANGE


def test_kafka_python_delete_records_and_describe_log_dirs(admin, broker):
    from kafka import KafkaAdminClient
    from kafka import TopicPartition as KpPartition

    topic = new_topic(admin, 1)
    produce(broker.bootstrap_servers, topic, 10, [0])
    client = KafkaAdminClient(bootstrap_servers=broker.bootstrap_servers, request_timeout_ms=DEADLINE_S * 1000)
    try:
        result = client.delete_records({KpPartition(topic, 0): 6})
        assert result[KpPartition(topic, 0)]["low_watermark"] == 6
        client.create_partitions({topic: 2})
        dirs = client.describe_log_dirs()
    finally:
        client.close()
    [entry] = dirs
    [log_dir] = entry["log_dirs"]
    assert log_dir["error_code"] == 0 and log_dir["total_bytes"] >= log_dir["usable_bytes"] > 0
    [mine] = [t for t in log_dir["topics"] if t["name"] == topic]
    sizes = {p["partition_index"]: p["partition_size"] for p in mine["partitions"]}
    assert sizes[0] > 0 and sizes[1] == 0
    assert first_offsets(broker.bootstrap_servers, topic, [0]) == {0: 6}


def test_cli_topic_admin_commands(admin, broker):
    runner = CliRunner()
    topic = new_topic(admin, 1)
    bootstrap = ["--bootstrap-server", broker.bootstrap_servers]
    produce(broker.bootstrap_servers, topic, 5, [0])

    result = runner.invoke(cli, ["topic", "alter-config", topic, "--set", "retention.ms=60000", "--append",
                                 "cleanup.policy=compact", *bootstrap])
    assert result.exit_code == 0, result.output
    result = runner.invoke(cli, ["topic", "describe-config", topic, "--overrides", "--json", *bootstrap])
    configs = {c["name"]: (c["value"], c["source"]) for c in json.loads(result.output)["configs"]}
    assert configs == {"retention.ms": ("60000", "topic"), "cleanup.policy": ("delete,compact", "topic")}
    result = runner.invoke(cli, ["topic", "describe-config", topic, *bootstrap])
    assert result.exit_code == 0 and "retention.ms" in result.output

    result = runner.invoke(cli, ["topic", "alter-config", topic, "--set", "segment.bytes=12", *bootstrap])
    assert result.exit_code == 1 and "INVALID_CONFIG" in result.output

    result = runner.invoke(cli, ["topic", "add-partitions", topic, "--count", "4", "--json", *bootstrap])
    assert json.loads(result.output) == {"topic": topic, "partitions": 4, "validate_only": False}
    result = runner.invoke(cli, ["topic", "delete-records", topic, "--partition", "0", "--offset", "3", *bootstrap])
    assert result.exit_code == 0 and f"{topic}-0: log start offset is now 3" in result.output
    result = runner.invoke(cli, ["topic", "delete-records", topic, "--offset", "-1", "--json", *bootstrap])
    assert json.loads(result.output)["low_watermarks"] == {"0": 5, "1": 0, "2": 0, "3": 0}


def test_fetch_below_the_log_start_offset_is_out_of_range_and_auto_create_uses_num_partitions(broker):
    from moldau.client.client import Client, ClientError
    from moldau.protocol.errors import ErrorCode

    topic = unique_topic("oor")
    with Client(broker.bootstrap_servers) as client:
        entry = client.metadata([topic], auto_create=True).topics[0]
        assert len(entry.partitions) == 3  # num.partitions of the fixture broker
        produce(broker.bootstrap_servers, topic, 4, [0])
        assert client.delete_records(topic, {0: 2}) == {0: 2}
        with pytest.raises(ClientError) as info:
            client.fetch(topic, 0, 1, max_wait_ms=0)
        assert info.value.error_code == ErrorCode.OFFSET_OUT_OF_RANGE
        assert client.fetch(topic, 0, 2, max_wait_ms=0).log_start_offset == 2


def test_delete_records_of_a_compacted_topic_is_a_policy_violation(admin, broker):
    topic = unique_topic("compact")
    admin.create_topics([NewTopic(topic, 1, config={"cleanup.policy": "compact"})])[topic].result(DEADLINE_S)
    result = admin.delete_records([TopicPartition(topic, 0, -1)])  # Kafka checks the policy first
    with pytest.raises(KafkaException) as info:
        next(iter(result.values())).result(DEADLINE_S)
    assert info.value.args[0].code() == KafkaError.POLICY_VIOLATION
