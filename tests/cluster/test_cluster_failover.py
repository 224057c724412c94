"""The cluster's promise: no acknowledged record is lost or duplicated while brokers die.

One etcd and three `moldau server` processes; confluent-kafka produces with idempotence, acks=all and
min.insync.replicas=2 to a topic of replication factor 3 while a loop SIGKILLs and restarts the leader
of a partition, and another broker is SIGSTOPped past its lease. Afterwards every partition holds every
acknowledged record exactly once, at its acknowledged offset, in order, and the ISR is whole again.
"""

from __future__ import annotations

import time
from collections import defaultdict

import confluent_kafka
import pytest
from confluent_kafka.admin import AdminClient, NewTopic

from moldau.cluster.etcd_server import find_etcd
from moldau.testing_cluster import RunningCluster, running_cluster
from tests.fixtures import AckedProducer, wait_until

pytestmark = pytest.mark.skipif(find_etcd() is None, reason="etcd is not installed (apt-get install etcd-server)")

TOPIC = "orders"
PARTITIONS = 3
KILLS = 20


def create_topic(cluster: RunningCluster, name: str, partitions: int, replication_factor: int) -> None:
    admin = AdminClient({"bootstrap.servers": cluster.bootstrap_servers})
    futures = admin.create_topics([NewTopic(name, partitions, replication_factor,
                                            config={"min.insync.replicas": "2"})])
    futures[name].result(30)
    cluster.wait_for_isr(name, replication_factor)


def read_everything(cluster: RunningCluster) -> dict[int, list[tuple[int, bytes]]]:
    consumer = confluent_kafka.Consumer({"bootstrap.servers": cluster.bootstrap_servers, "group.id": "verify",
                                         "enable.auto.commit": False, "enable.partition.eof": True,
                                         "isolation.level": "read_uncommitted"})
    consumer.assign([confluent_kafka.TopicPartition(TOPIC, p, confluent_kafka.OFFSET_BEGINNING)
                     for p in range(PARTITIONS)])
    seen: dict[int, list[tuple[int, bytes]]] = defaultdict(list)
    at_end: set[int] = set()
    deadline = time.monotonic() + 60
    try:
        while len(at_end) < PARTITIONS and time.monotonic() < deadline:
            for m in consumer.consume(1000, 0.5):
                if m.error() is None:
                    seen[m.partition()].append((m.offset(), m.value()))
                elif m.error().code() == confluent_kafka.KafkaError._PARTITION_EOF:
                    at_end.add(m.partition())
    finally:
        consumer.close()
    assert len(at_end) == PARTITIONS, "did not reach the end of every partition"
    return seen


def assert_exactly_once(acked: dict[tuple[int, int], bytes], stored: dict[int, list[tuple[int, bytes]]]) -> None:
    at = {(p, offset): value for p, records in stored.items() for offset, value in records}
    missing = {k: v for k, v in acked.items() if at.get(k) != v}
    assert not missing, f"{len(missing)} acknowledged record(s) not at their offset, e.g. {list(missing.items())[:5]}"
    values = [value for records in stored.values() for _, value in records]
    duplicates = len(values) - len(set(values))
    assert duplicates == 0, f"{duplicates} record(s) stored twice"
    for p, records in stored.items():
        offsets = [o for o, _ in records]
        assert offsets == sorted(offsets), f"partition {p} out of order"


@pytest.mark.timeout(600)
def test_leader_kills_and_a_paused_broker_lose_no_acknowledged_record(tmp_path):
    with running_cluster(3, data_dir=tmp_path, default_replication_factor=3, min_insync_replicas=2) as cluster:
        create_topic(cluster, TOPIC, PARTITIONS, 3)
        producer = AckedProducer(cluster.bootstrap_servers, TOPIC).start()
        try:
            wait_until(lambda: len(producer.acked) >= 200, 60, "the first acknowledgements")
            for i in range(KILLS):
                victim = cluster.leader_of(TOPIC, i % PARTITIONS)
                before = len(producer.acked)
                cluster.kill(victim)
                # Leadership moves and acknowledgements go on without the victim.
                wait_until(lambda i=i, victim=victim: cluster.leader_of(TOPIC, i % PARTITIONS) != victim, 30, "a new leader")
                wait_until(lambda before=before: len(producer.acked) > before, 60, "acknowledgements after the kill")
                cluster.restart(victim)
                cluster.wait_for_isr(TOPIC, 3)
            # A broker that stops answering past its lease, then comes back.
            paused = next(b for b in cluster.brokers if b != cluster.leader_of(TOPIC, 0))
            cluster.pause(paused)
            wait_until(lambda: all(paused not in p.isr_nodes for p in cluster.describe(TOPIC).values()), 60,
                       "the paused broker out of every ISR")
            before = len(producer.acked)
            wait_until(lambda: len(producer.acked) > before + 100, 60, "acknowledgements while paused")
            cluster.resume(paused)
        finally:
            producer.stop()
        assert not producer.fatal, producer.fatal
        cluster.wait_for_isr(TOPIC, 3)
        stored = read_everything(cluster)
    assert len(producer.acked) > 1000
    assert_exactly_once(producer.acked, stored)


@pytest.mark.timeout(300)
def test_kafka_python_idempotent_producer_survives_leader_kills(tmp_path):
    """The same promise with a second client library (kafka-python): its own metadata refresh, retries and
    idempotence against NOT_LEADER_OR_FOLLOWER and leader moves."""
    from kafka import KafkaProducer

    with running_cluster(3, data_dir=tmp_path, default_replication_factor=3, min_insync_replicas=2) as cluster:
        create_topic(cluster, TOPIC, PARTITIONS, 3)
        producer = KafkaProducer(bootstrap_servers=cluster.bootstrap_servers.split(","), acks="all",
                                 enable_idempotence=True, linger_ms=5, request_timeout_ms=30000,
                                 retry_backoff_ms=50, metadata_max_age_ms=1000, delivery_timeout_ms=120000)
        acked: dict[tuple[int, int], bytes] = {}
        futures = []
        try:
            for kill in range(5):
                futures += [(producer.send(TOPIC, f"k{kill}-{i}".encode()), f"k{kill}-{i}".encode())
                            for i in range(300)]
                victim = cluster.leader_of(TOPIC, kill % PARTITIONS)
                cluster.kill(victim)
                wait_until(lambda victim=victim, kill=kill: cluster.leader_of(TOPIC, kill % PARTITIONS) != victim,
                           30, "a new leader")
                futures += [(producer.send(TOPIC, f"a{kill}-{i}".encode()), f"a{kill}-{i}".encode())
                            for i in range(300)]
                cluster.restart(victim)
                cluster.wait_for_isr(TOPIC, 3)
            producer.flush(120)
            for future, value in futures:
                metadata = future.get(timeout=60)  # raises if it was not acknowledged
                acked[(metadata.partition, metadata.offset)] = value
        finally:
            producer.close(30)
        stored = read_everything(cluster)
    assert len(acked) == 3000
    assert_exactly_once(acked, stored)
