"""Coordinators move with the leadership of their internal-topic partitions.

A consumer group (classic and KIP-848) and a transactional consume-transform-produce loop keep working
while the broker that coordinates them is SIGKILLed: committed offsets survive, and the transactional
output holds every input record exactly once.
"""

from __future__ import annotations

import time

import confluent_kafka
import pytest
from confluent_kafka.admin import AdminClient, NewTopic

from moldau.client.client import Client
from moldau.cluster.etcd_server import find_etcd
from moldau.protocol import messages
from moldau.testing_cluster import RunningCluster, running_cluster
from tests.fixtures import wait_until

pytestmark = [pytest.mark.skipif(find_etcd() is None, reason="etcd is not installed (apt-get install etcd-server)"),
              pytest.mark.timeout(300)]

GROUP, TRANSACTION = 0, 1


def coordinator_of(cluster: RunningCluster, key: str, key_type: int) -> int:
    """The broker FindCoordinator names for `key` (a group id or a transactional id)."""
    def find() -> int | None:
        for broker in cluster.brokers.values():
            if not broker.running or broker.paused:
                continue
            try:
                with Client(broker.bootstrap_servers, timeout=5) as client:
                    response = client.send(10, messages.FindCoordinatorRequest(key=key, key_type=key_type), 3)
            except OSError:
                continue
            if response.error_code == 0 and cluster.brokers[response.node_id].running:
                return int(response.node_id)
        return None

    return wait_until(find, 30, f"a coordinator for {key}")


def create_topics(cluster: RunningCluster, *names: str, partitions: int = 3) -> None:
    admin = AdminClient({"bootstrap.servers": cluster.bootstrap_servers})
    for future in admin.create_topics([NewTopic(n, partitions, 3) for n in names]).values():
        future.result(30)
    for name in names:
        cluster.wait_for_isr(name, 3)


def produce_numbers(cluster: RunningCluster, topic: str, count: int) -> None:
    producer = confluent_kafka.Producer({"bootstrap.servers": cluster.bootstrap_servers, "acks": "all",
                                         "enable.idempotence": True})
    for i in range(count):
        producer.produce(topic, key=str(i).encode(), value=str(i).encode())
    assert producer.flush(60) == 0


@pytest.mark.parametrize("protocol", ["classic", "consumer"])
def test_consumer_group_survives_its_coordinator_being_killed(tmp_path, protocol):
    with running_cluster(3, data_dir=tmp_path, min_insync_replicas=2) as cluster:
        create_topics(cluster, "events")
        produce_numbers(cluster, "events", 3000)
        group = f"g-{protocol}"
        settings = {"bootstrap.servers": cluster.bootstrap_servers, "group.id": group,
                    "auto.offset.reset": "earliest", "enable.auto.commit": False, "group.protocol": protocol}
        if protocol == "classic":
            settings["session.timeout.ms"] = 6000
        consumer = confluent_kafka.Consumer(settings)
        consumer.subscribe(["events"])
        seen: set[bytes] = set()
        try:
            _consume_and_commit(consumer, seen, 1000)
            committed_before = _committed_total(consumer, "events")
            assert committed_before >= 1000
            killed = coordinator_of(cluster, group, GROUP)
            cluster.kill(killed)
            # The commits are in the replicated __consumer_offsets: the new coordinator has them all.
            wait_until(lambda: _committed_total(consumer, "events") >= committed_before, 60,
                       "the offsets committed before the kill, from the new coordinator")
            _consume_and_commit(consumer, seen, 3000)
            assert len(seen) == 3000
            assert wait_until(lambda: _committed_total(consumer, "events") == 3000, 60, "every offset committed")
        finally:
            consumer.close()
        assert coordinator_of(cluster, group, GROUP) != killed


def _consume_and_commit(consumer: confluent_kafka.Consumer, seen: set[bytes], until: int) -> None:
    """Consume until `until` distinct records were seen, committing each batch; a commit that fails because
    the coordinator moved is retried (the next commit carries the same offsets)."""
    deadline = time.monotonic() + 120
    pending = False
    while (len(seen) < until or pending) and time.monotonic() < deadline:
        batch = [m for m in consumer.consume(200, 0.5) if m.error() is None]
        seen.update(m.value() for m in batch)
        if batch or pending:
            try:
                consumer.commit(asynchronous=False)
                pending = False
            except confluent_kafka.KafkaException as exc:
                if exc.args[0].code() == confluent_kafka.KafkaError._NO_OFFSET:
                    pending = False
                else:
                    pending = True
    assert len(seen) >= until and not pending, f"consumed {len(seen)} of {until}, commit pending: {pending}"


def _committed_total(consumer: confluent_kafka.Consumer, topic: str) -> int:
    partitions = [confluent_kafka.TopicPartition(topic, p) for p in range(3)]
    try:
        return sum(max(tp.offset, 0) for tp in consumer.committed(partitions, timeout=10))
    except confluent_kafka.KafkaException:
        return -1


def test_transactional_copy_is_exactly_once_while_its_coordinators_are_killed(tmp_path):
    count = 2000
    # librdkafka 2.16 bug (confluentinc/librdkafka#5511): once a killed group coordinator leaves Metadata, its
    # decommissioned broker can stay cached as the coordinator, and send_offsets_to_transaction waits for any
    # broker state change to look again, ignoring its timeout. Idle connections closed after 10 s (Kafka's
    # default is 10 min, which is how long run 4 of the hog runs hung) are such a change.
    with running_cluster(3, data_dir=tmp_path, min_insync_replicas=2, connections_max_idle_ms=10000) as cluster:
        create_topics(cluster, "input", "output")
        produce_numbers(cluster, "input", count)
        consumer = confluent_kafka.Consumer({
            "bootstrap.servers": cluster.bootstrap_servers, "group.id": "copier", "auto.offset.reset": "earliest",
            "enable.auto.commit": False, "isolation.level": "read_committed"})
        consumer.subscribe(["input"])

        def new_producer() -> confluent_kafka.Producer:
            producer = confluent_kafka.Producer({"bootstrap.servers": cluster.bootstrap_servers,
                                                 "transactional.id": "copier-1", "transaction.timeout.ms": 30000})
            producer.init_transactions(60)
            return producer

        producer = new_producer()
        copied = 0
        kills: list[int] = []
        deadline = time.monotonic() + 180
        try:
            while copied < count and time.monotonic() < deadline:
                batch = [m for m in consumer.consume(100, 0.5) if m.error() is None]
                if not batch:
                    continue
                try:
                    producer.begin_transaction()
                    for m in batch:
                        producer.produce("output", key=m.key(), value=b"copy-" + m.value())
                    positions = consumer.position(consumer.assignment())
                    producer.send_offsets_to_transaction(positions, consumer.consumer_group_metadata(), 60)
                    producer.commit_transaction(60)
                    copied += len(batch)
                except confluent_kafka.KafkaException as exc:
                    error = exc.args[0]
                    print("TXN ERROR", copied, error, flush=True)
                    if error.txn_requires_abort():
                        producer.abort_transaction(60)
                    elif not error.retriable():
                        producer = new_producer()  # fatal (fenced): start again from the committed offsets
                    _rewind(consumer)
                    continue
                if len(kills) < 2 and copied >= (len(kills) + 1) * 500:
                    # First the transaction coordinator, then the group coordinator (maybe the same broker).
                    victim = coordinator_of(cluster, "copier-1", TRANSACTION) if not kills else \
                        coordinator_of(cluster, "copier", GROUP)
                    cluster.kill(victim)
                    kills.append(victim)
                    cluster.restart(victim)  # back as a follower: the next kill leaves two brokers again
        finally:
            consumer.close()
        assert len(kills) == 2
        out = _read_committed(cluster, "output", count)
    values = sorted(int(v[len(b"copy-"):]) for v in out)
    assert values == list(range(count)), (f"{len(values)} output records, {len(set(values))} distinct, "
                                          f"expected each of {count} once")


def _rewind(consumer: confluent_kafka.Consumer) -> None:
    """After an aborted transaction, go back to the group's committed offsets (Kafka's EOS recipe)."""
    assignment = consumer.assignment()
    for tp in consumer.committed(assignment, timeout=30):
        consumer.seek(confluent_kafka.TopicPartition(tp.topic, tp.partition,
                                                     tp.offset if tp.offset >= 0 else confluent_kafka.OFFSET_BEGINNING))


def _read_committed(cluster: RunningCluster, topic: str, count: int) -> list[bytes]:
    consumer = confluent_kafka.Consumer({"bootstrap.servers": cluster.bootstrap_servers, "group.id": "verify",
                                         "isolation.level": "read_committed", "enable.partition.eof": True,
                                         "enable.auto.commit": False})
    consumer.assign([confluent_kafka.TopicPartition(topic, p, confluent_kafka.OFFSET_BEGINNING) for p in range(3)])
    values: list[bytes] = []
    eof: set[int] = set()
    deadline = time.monotonic() + 60
    try:
        while len(eof) < 3 and time.monotonic() < deadline:
            for m in consumer.consume(1000, 0.5):
                if m.error() is None:
                    values.append(m.value())
                elif m.error().code() == confluent_kafka.KafkaError._PARTITION_EOF:
                    eof.add(m.partition())
    finally:
        consumer.close()
    return values
