"""Given a broker, when admin requests ask for too many partitions, colliding names, or the broker is killed
while it creates or deletes a topic, then it answers with Kafka's errors, keeps serving, and restarts with
each topic whole or absent (issue 9 items 5 and 6)."""

from __future__ import annotations

import json
import random
import threading
import time
import uuid
from pathlib import Path

import pytest
from confluent_kafka import Consumer, KafkaError, KafkaException, Producer, TopicPartition
from confluent_kafka.admin import AdminClient, NewPartitions, NewTopic

from moldau.client.client import Client, ClientError
from moldau.protocol import messages
from moldau.protocol.errors import ErrorCode
from tests.fixtures import BrokerProcess

DEADLINE_S = 30


def admin_for(process) -> AdminClient:
    return AdminClient({"bootstrap.servers": process.bootstrap_servers})


def create_error(admin: AdminClient, topic: NewTopic) -> KafkaError:
    with pytest.raises(KafkaException) as info:
        admin.create_topics([topic], request_timeout=DEADLINE_S)[topic.topic].result(DEADLINE_S)
    return info.value.args[0]


def test_oversized_create_topics_is_refused_and_the_broker_keeps_serving(broker_process):
    process = broker_process()
    with Client(process.bootstrap_servers) as client:  # what `moldau topic create huge -p 2147483647` sends
        with pytest.raises(ClientError) as refused:
            client.create_topic("huge", 2147483647)
        assert refused.value.error_code == ErrorCode.POLICY_VIOLATION
        assert "2147483647 requested, limit moldau.max.partitions.per.request=10000" in str(refused.value)
    admin = admin_for(process)
    error = create_error(admin, NewTopic("huge", 100000))  # librdkafka's own ceiling
    assert error.code() == KafkaError.POLICY_VIOLATION
    assert "huge" not in admin.list_topics(timeout=5).topics  # answered at once: the broker is not busy

    from kafka import KafkaAdminClient
    from kafka.errors import PolicyViolationError

    client = KafkaAdminClient(bootstrap_servers=process.bootstrap_servers, request_timeout_ms=DEADLINE_S * 1000)
    try:
        with pytest.raises(PolicyViolationError):
            client.create_topics({"huge2": {"num_partitions": 20000, "replication_factor": 1}})
    finally:
        client.close()
    assert process.log_text().count("create topics refused") == 3


def test_max_broker_partitions_applies_to_create_grow_and_auto_create(broker_process):
    process = broker_process(max_broker_partitions=10, num_partitions=4)
    admin = admin_for(process)
    admin.create_topics([NewTopic("six", 6)])["six"].result(DEADLINE_S)
    error = create_error(admin, NewTopic("five", 5))
    assert error.code() == KafkaError.POLICY_VIOLATION and "max.broker.partitions=10" in error.str()

    admin.create_partitions([NewPartitions("six", 9)])["six"].result(DEADLINE_S)
    with pytest.raises(KafkaException) as info:
        admin.create_partitions([NewPartitions("six", 11)])["six"].result(DEADLINE_S)
    assert info.value.args[0].code() == KafkaError.POLICY_VIOLATION

    with Client(process.bootstrap_servers) as client:  # num.partitions=4 no longer fits
        [entry] = client.metadata(["auto"], auto_create=True).topics
        assert entry.error_code == ErrorCode.POLICY_VIOLATION
        assert [t.name for t in client.metadata(None).topics] == ["six"]


def test_topic_names_colliding_by_dot_and_underscore_are_refused(broker_process):
    process = broker_process()
    admin = admin_for(process)
    admin.create_topics([NewTopic("ok.dot", 1)])["ok.dot"].result(DEADLINE_S)
    error = create_error(admin, NewTopic("ok_dot", 1))
    assert error.code() == KafkaError.TOPIC_EXCEPTION  # INVALID_TOPIC_EXCEPTION (17)
    assert "collides with existing topic: ok.dot" in error.str()

    from kafka import KafkaAdminClient
    from kafka.errors import InvalidTopicError

    client = KafkaAdminClient(bootstrap_servers=process.bootstrap_servers, request_timeout_ms=DEADLINE_S * 1000)
    try:
        with pytest.raises(InvalidTopicError):
            client.create_topics({"ok_dot": {"num_partitions": 1, "replication_factor": 1}})
    finally:
        client.close()
    with Client(process.bootstrap_servers) as client:  # auto-creation collides as well
        [entry] = client.metadata(["ok_dot"], auto_create=True).topics
        assert entry.error_code == ErrorCode.INVALID_TOPIC_EXCEPTION
        assert sorted(t.name for t in client.metadata(None).topics) == ["ok.dot"]


class Probe:
    """ApiVersions round trips back to back on their own connection: the longest is the worst stall."""

    def __init__(self, bootstrap: str) -> None:
        self.client = Client(bootstrap, client_id="probe", timeout=DEADLINE_S)
        self.samples: list[tuple[float, float]] = []
        self.stop = threading.Event()
        self.thread = threading.Thread(target=self.run, daemon=True)
        self.thread.start()

    def run(self) -> None:
        while not self.stop.is_set():
            start = time.perf_counter()
            self.client.send(18, messages.ApiVersionsRequest(), version=0)
            self.samples.append((start, time.perf_counter()))
            self.stop.wait(0.001)

    def worst(self, start: float, end: float) -> float:
        return max((e - s for s, e in self.samples if e >= start and s <= end), default=0.0)

    def close(self) -> None:
        self.stop.set()
        self.thread.join(DEADLINE_S)
        self.client.close()


def test_broker_keeps_answering_while_it_creates_and_deletes_many_partitions(broker_process):
    process = broker_process()
    with Client(process.bootstrap_servers, timeout=120) as admin:
        probe = Probe(process.bootstrap_servers)
        try:
            timings = {}
            for what, action in (("create", lambda: admin.create_topic("many", 300)),
                                 ("delete", lambda: admin.delete_topic("many"))):
                start = time.perf_counter()
                action()
                end = time.perf_counter()
                time.sleep(0.05)
                timings[what] = (end - start, probe.worst(start, end))
        finally:
            probe.close()
    # Done on the event loop, the longest stall is the whole operation; in a thread, a small part of it.
    for what, (duration, stall) in timings.items():
        assert stall < duration / 2, f"{what}: the broker stalled {stall:.3f} s of {duration:.3f} s"


def partition_dirs(data_dir: Path, topic: str) -> set[int]:
    return {int(d.name.rsplit("-", 1)[1]) for d in data_dir.iterdir()
            if d.is_dir() and d.name.rsplit("-", 1)[0] == topic}


def described(client: Client, topic: str) -> int | None:
    """Partitions of `topic` in Metadata, None when it does not exist."""
    [entry] = client.metadata([topic]).topics
    if entry.error_code == ErrorCode.UNKNOWN_TOPIC_OR_PARTITION:
        return None
    assert entry.error_code == ErrorCode.NONE
    return len(entry.partitions)


def test_sigkill_during_create_leaves_the_topic_whole_or_absent(broker_process, tmp_path):
    data_dir = tmp_path / "data"
    rng = random.Random(9)
    partitions = 40
    process = broker_process(data_dir)
    for round_ in range(3):
        topic = f"crash{round_}"
        with Client(process.bootstrap_servers) as client:
            request = messages.CreateTopicsRequest
            client.send(19, request(topics=[request.CreatableTopic(name=topic, num_partitions=partitions,
                                                                   replication_factor=1)],
                                    timeout_ms=30000, validate_only=False), expect_response=False)
            time.sleep(rng.uniform(0.0, 0.5))  # SIGKILL at a random point of the creation
            process.kill()
        process = broker_process(data_dir)
        with Client(process.bootstrap_servers) as client:
            count = described(client, topic)
            assert count in (None, partitions)
            assert len(partition_dirs(data_dir, topic)) == (count or 0)
            if count is None:  # absent means absent: it can be created again
                client.create_topic(topic, partitions)
            assert described(client, topic) == partitions
            client.delete_topic(topic)  # keeps every restart short


def test_sigkill_during_delete_never_resurrects_old_records(broker_process, tmp_path):
    PARTITIONS = 100
    data_dir = tmp_path / "data"
    process = broker_process(data_dir)
    admin = admin_for(process)
    admin.create_topics([NewTopic("reborn", PARTITIONS)])["reborn"].result(DEADLINE_S)
    producer = Producer({"bootstrap.servers": process.bootstrap_servers, "linger.ms": 5})
    for partition in range(PARTITIONS):
        producer.produce("reborn", b"old", partition=partition)
    assert producer.flush(DEADLINE_S) == 0
    with Client(process.bootstrap_servers) as client:
        request = messages.DeleteTopicsRequest
        client.send(20, request(topic_names=["reborn"], timeout_ms=30000), version=4, expect_response=False)
        time.sleep(0.03)  # SIGKILL while the partitions are being removed
        process.kill()
    process = broker_process(data_dir)
    with Client(process.bootstrap_servers) as client:
        if described(client, "reborn") is not None:
            client.delete_topic("reborn")
        client.create_topic("reborn", PARTITIONS)
    consumer = Consumer({"bootstrap.servers": process.bootstrap_servers, "group.id": "g",
                         "enable.partition.eof": True})
    consumer.assign([TopicPartition("reborn", p, 0) for p in range(PARTITIONS)])
    eofs, old = 0, 0
    deadline = time.monotonic() + DEADLINE_S
    try:
        while eofs < PARTITIONS and time.monotonic() < deadline:
            msg = consumer.poll(0.5)
            if msg is None:
                continue
            if msg.error() and msg.error().code() == KafkaError._PARTITION_EOF:
                eofs += 1
            elif not msg.error():
                old += 1
    finally:
        consumer.close()
    assert (eofs, old) == (PARTITIONS, 0)


def test_restart_never_recreates_a_huge_topic_before_listening(tmp_path):
    """A data dir written by a broker that stored `-p 2147483647` before creating the partitions."""
    data_dir = tmp_path / "data"
    data_dir.mkdir()
    topics = [{"name": "huge", "topic_id": str(uuid.uuid4()), "num_partitions": 2147483647,
               "replication_factor": 1, "configs": {}, "is_internal": False},
              {"name": "half", "topic_id": str(uuid.uuid4()), "num_partitions": 3, "replication_factor": 1,
               "configs": {}, "is_internal": False, "creating": True}]
    (data_dir / "__moldau_metadata.json").write_text(json.dumps({"cluster_id": "c", "topics": topics}))
    for index in range(5):
        (data_dir / f"huge-{index}").mkdir()
    (data_dir / "half-0").mkdir()
    process = BrokerProcess(data_dir)  # not the fixture: a broker that never listens must be stopped too
    try:
        process.start()  # fails if it does not listen within 30 s
        with Client(process.bootstrap_servers) as client:
            assert described(client, "huge") is None and described(client, "half") is None
        assert not partition_dirs(data_dir, "huge") and not partition_dirs(data_dir, "half")
        assert "removing topic huge" in process.log_text()
    finally:
        process.stop()


def test_a_client_hanging_up_mid_create_still_gets_a_whole_served_topic(broker_process):
    process = broker_process()
    request = messages.CreateTopicsRequest
    with Client(process.bootstrap_servers) as client:
        client.send(19, request(topics=[request.CreatableTopic(name="orphan", num_partitions=100,
                                                               replication_factor=1)],
                                timeout_ms=30000, validate_only=False), expect_response=False)
    with Client(process.bootstrap_servers) as client:  # the first connection is gone
        deadline = time.monotonic() + DEADLINE_S
        while described(client, "orphan") != 100:
            assert time.monotonic() < deadline, "the topic never appeared"
            time.sleep(0.1)  # polling another process over the protocol
        with pytest.raises(ClientError) as exists:
            client.create_topic("orphan", 1)
        assert exists.value.error_code == ErrorCode.TOPIC_ALREADY_EXISTS
