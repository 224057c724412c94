"""Fetch from the closest replica (KIP-392) on a real three-broker cluster, one rack per broker: with
`replica.selector.class=...RackAwareReplicaSelector`, a consumer that sets `client.rack` to a follower's rack
is sent to that follower by the leader (`preferred_read_replica`) and reads every record, in order, from
it; without a selector it stays on the leader. confluent-kafka (librdkafka's statistics name the broker a
partition is fetched from) and kafka-python (its per-node metrics show where the bytes came from)."""

from __future__ import annotations

import json
from typing import Any

import confluent_kafka
import pytest
from confluent_kafka.admin import AdminClient, NewTopic
from kafka import KafkaConsumer
from kafka import TopicPartition as KTopicPartition

from moldau.broker.replica_selector import RACK_AWARE
from moldau.cluster.etcd_server import find_etcd
from moldau.testing_cluster import RunningCluster, running_cluster
from tests.fixtures import wait_until

pytestmark = pytest.mark.skipif(find_etcd() is None, reason="etcd is not installed (apt-get install etcd-server)")

TOPIC = "near"
RECORDS = 2000


def fill(cluster: RunningCluster, first: int, count: int) -> None:
    producer = confluent_kafka.Producer({"bootstrap.servers": cluster.bootstrap_servers, "acks": "all",
                                         "linger.ms": 5})
    for i in range(first, first + count):
        producer.produce(TOPIC, value=f"v{i}".encode(), partition=0)
    assert producer.flush(30) == 0


def setup_topic(cluster: RunningCluster) -> tuple[int, int]:
    """(leader, a follower) of the topic's one partition, replicated to all three brokers."""
    admin = AdminClient({"bootstrap.servers": cluster.bootstrap_servers})
    admin.create_topics([NewTopic(TOPIC, 1, 3)])[TOPIC].result(30)
    cluster.wait_for_isr(TOPIC, 3)
    leader = cluster.leader_of(TOPIC, 0)
    follower = next(int(r) for r in cluster.describe(TOPIC)[0].replica_nodes if int(r) != leader)
    return leader, follower


def consume_with_librdkafka(cluster: RunningCluster, rack: str, stored: int,
                            produce_meanwhile: int = 0) -> tuple[list[bytes], set[int]]:
    """The `stored` records, then `produce_meanwhile` more produced while it reads, and the brokers
    librdkafka's statistics said the partition was fetched from."""
    fetched_from: set[int] = set()

    def on_stats(raw: str) -> None:
        stats: dict[str, Any] = json.loads(raw)
        partition = stats.get("topics", {}).get(TOPIC, {}).get("partitions", {}).get("0")
        if partition and partition.get("broker", -1) >= 0:
            fetched_from.add(partition["broker"])

    consumer = confluent_kafka.Consumer({"bootstrap.servers": cluster.bootstrap_servers, "group.id": f"g-{rack}",
                                         "client.rack": rack, "enable.auto.commit": False,
                                         "statistics.interval.ms": 100, "stats_cb": on_stats,
                                         "fetch.wait.max.ms": 100})
    consumer.assign([confluent_kafka.TopicPartition(TOPIC, 0, confluent_kafka.OFFSET_BEGINNING)])
    values: list[bytes] = []
    try:
        def read(target: int) -> bool:
            for m in consumer.consume(500, 0.2):
                if m.error() is None:
                    values.append(m.value())
            return len(values) >= target

        wait_until(lambda: read(stored), 60, f"{stored} records")
        fill(cluster, stored, produce_meanwhile)  # records arriving while it reads from the follower
        wait_until(lambda: read(stored + produce_meanwhile), 60, "the later records")
        wait_until(lambda: consumer.poll(0.1) is None and bool(fetched_from), 10, "statistics")
    finally:
        consumer.close()
    return values, fetched_from


@pytest.mark.timeout(240)
def test_consumers_read_from_the_in_sync_replica_in_their_rack(tmp_path):
    with running_cluster(3, data_dir=tmp_path, broker_rack="rack-{id}", replica_selector_class=RACK_AWARE) as cluster:
        leader, follower = setup_topic(cluster)
        fill(cluster, 0, RECORDS)
        values, fetched_from = consume_with_librdkafka(cluster, f"rack-{follower}", RECORDS, 500)
        assert values == [f"v{i}".encode() for i in range(RECORDS + 500)]  # all, in order, once
        assert follower in fetched_from, fetched_from
        # kafka-python: the leader names the follower as the preferred read replica, and it reads there.
        consumer = KafkaConsumer(bootstrap_servers=cluster.bootstrap_servers.split(","), client_rack=f"rack-{follower}",
                                 enable_auto_commit=False, consumer_timeout_ms=30000, fetch_max_wait_ms=100)
        try:
            tp = KTopicPartition(TOPIC, 0)
            consumer.assign([tp])
            consumer.seek_to_beginning(tp)
            got = []
            for message in consumer:
                got.append(message.value)
                if len(got) == RECORDS + 500:
                    break
            assert got == values
            # The records came from the follower: it sent this consumer far more bytes than the leader did.
            received = {node: consumer.metrics()[f"consumer-node-metrics.node-{node}"]["incoming-byte-rate"]
                        for node in (leader, follower)}
            assert received[follower] > 5 * received[leader], received
        finally:
            consumer.close()
        # A consumer in the leader's rack, or in a rack with no replica, stays on the leader.
        for rack in (f"rack-{leader}", "elsewhere"):
            values, fetched_from = consume_with_librdkafka(cluster, rack, RECORDS + 500)
            assert len(values) == RECORDS + 500 and fetched_from == {leader}, (rack, fetched_from)


@pytest.mark.timeout(240)
def test_without_a_replica_selector_consumers_read_from_the_leader(tmp_path):
    with running_cluster(3, data_dir=tmp_path, broker_rack="rack-{id}") as cluster:
        leader, follower = setup_topic(cluster)
        fill(cluster, 0, RECORDS)
        values, fetched_from = consume_with_librdkafka(cluster, f"rack-{follower}", RECORDS)
        assert len(values) == RECORDS and fetched_from == {leader}, fetched_from
