"""ElectLeaders (KIP-183 preferred, KIP-460 unclean) and the controller's automatic preferred-leader
rebalance (auto.leader.rebalance.enable), on a real cluster (etcd + three `moldau server` processes) with
confluent-kafka's and kafka-python's admin clients; and a single broker, answering as Kafka does for a
one-replica partition."""

from __future__ import annotations

import json

import confluent_kafka
import pytest
from confluent_kafka import ElectionType, KafkaError
from confluent_kafka import TopicPartition as CkTopicPartition
from confluent_kafka.admin import AdminClient, NewTopic
from kafka.admin import KafkaAdminClient

from moldau.client.client import Client
from moldau.cluster.etcd_server import find_etcd
from moldau.testing_cluster import RunningCluster, running_cluster
from tests.cli.runner import moldau
from tests.fixtures import wait_until

needs_etcd = pytest.mark.skipif(find_etcd() is None, reason="etcd is not installed (apt-get install etcd-server)")


def elect(bootstrap: str, election_type: ElectionType, partitions: list[tuple[str, int]] | None,
          ) -> dict[tuple[str, int], int]:
    """confluent-kafka's elect_leaders: (topic, partition) -> Kafka error code (0 when elected)."""
    admin = AdminClient({"bootstrap.servers": bootstrap})
    wanted = None if partitions is None else [CkTopicPartition(t, p) for t, p in partitions]
    result = admin.elect_leaders(election_type, wanted).result(60)
    codes = {}
    for tp, error in result.items():
        codes[(tp.topic, tp.partition)] = 0 if error is None else error.code()
    return codes


def create_topic(cluster: RunningCluster, name: str, partitions: int, replication_factor: int) -> None:
    admin = AdminClient({"bootstrap.servers": cluster.bootstrap_servers})
    admin.create_topics([NewTopic(name, partitions, replication_factor)])[name].result(30)
    cluster.wait_for_isr(name, replication_factor)


def preferred(cluster: RunningCluster, topic: str, partition: int) -> int:
    return int(cluster.describe(topic)[partition].replica_nodes[0])


def test_single_broker_answers_election_not_needed(broker):
    confluent = elect(broker.bootstrap_servers, ElectionType.PREFERRED, [("solo", 0)])
    assert confluent == {("solo", 0): KafkaError.UNKNOWN_TOPIC_OR_PART}
    creator = AdminClient({"bootstrap.servers": broker.bootstrap_servers})
    creator.create_topics([NewTopic("solo", 2, 1)])["solo"].result(30)
    for election_type in (ElectionType.PREFERRED, ElectionType.UNCLEAN):
        codes = elect(broker.bootstrap_servers, election_type, [("solo", 0), ("solo", 1)])
        assert codes == {("solo", 0): KafkaError.ELECTION_NOT_NEEDED, ("solo", 1): KafkaError.ELECTION_NOT_NEEDED}
    assert elect(broker.bootstrap_servers, ElectionType.PREFERRED, None) == {}  # all: only those that needed one
    admin = KafkaAdminClient(bootstrap_servers=broker.bootstrap_servers)
    try:
        response = admin.elect_leaders(0, {"solo": [0]}, raise_errors=False)
        codes = [(p[0], p[1]) for r in response.replica_election_results for p in r[1]]
        assert codes == [(0, 84)]  # ELECTION_NOT_NEEDED
    finally:
        admin.close()


@needs_etcd
@pytest.mark.timeout(240)
def test_preferred_election_after_a_restart_restores_the_preferred_leader(tmp_path):
    topic = "prefs"
    with running_cluster(3, data_dir=tmp_path, auto_leader_rebalance_enable=False) as cluster:
        create_topic(cluster, topic, 3, 3)
        owner = preferred(cluster, topic, 0)
        assert cluster.leader_of(topic, 0) == owner
        cluster.kill(owner)
        wait_until(lambda: cluster.leader_of(topic, 0) != owner, 30, "leadership moving off the killed broker")
        # Its preferred replica is down: nothing eligible.
        assert elect(cluster.bootstrap_servers, ElectionType.PREFERRED, [(topic, 0)]) == \
            {(topic, 0): KafkaError.PREFERRED_LEADER_NOT_AVAILABLE}
        cluster.restart(owner)
        cluster.wait_for_isr(topic, 3)
        assert cluster.leader_of(topic, 0) != owner  # no automatic rebalance here
        # (The broker asked may apply the ISR change a moment after the one that described it.)
        wait_until(lambda: elect(cluster.bootstrap_servers, ElectionType.PREFERRED, [(topic, 0)]) == {(topic, 0): 0},
                   30, "the preferred election")
        assert cluster.leader_of(topic, 0) == owner
        codes = elect(cluster.bootstrap_servers, ElectionType.PREFERRED, [(topic, p) for p in range(3)])
        assert codes == {(topic, p): KafkaError.ELECTION_NOT_NEEDED for p in range(3)}  # each preferred leads
        # kafka-python names the partitions: each answers ELECTION_NOT_NEEDED now.
        admin = KafkaAdminClient(bootstrap_servers=cluster.bootstrap_servers.split(","))
        try:
            response = admin.elect_leaders(0, {topic: [0, 1, 2]}, raise_errors=False)
            assert sorted((p[0], p[1]) for r in response.replica_election_results for p in r[1]) == \
                [(0, 84), (1, 84), (2, 84)]
        finally:
            admin.close()
        # A null partition list (every partition) leaves out those that needed no election, as Kafka does.
        with Client(cluster.broker(owner).bootstrap_servers) as client:
            assert client.elect_leaders(None) == {}


@needs_etcd
@pytest.mark.timeout(240)
def test_auto_leader_rebalance_gives_a_restarted_broker_its_leaderships_back(tmp_path):
    topic = "auto"
    with running_cluster(3, data_dir=tmp_path, leader_imbalance_check_interval_seconds=1) as cluster:
        create_topic(cluster, topic, 3, 3)
        owner = preferred(cluster, topic, 0)
        cluster.kill(owner)
        wait_until(lambda: cluster.leader_of(topic, 0) != owner, 30, "leadership moving off the killed broker")
        cluster.restart(owner)
        try:
            wait_until(lambda: cluster.leader_of(topic, 0) == owner, 60, "the preferred leader back, automatically")
        except TimeoutError as exc:
            controller_lines = [line for b in cluster.brokers.values() for line in b.log_text().splitlines()
                                if "controller" in line or f"{topic}-0" in line]
            raise AssertionError(f"{exc}; partition: {cluster.describe(topic).get(0)}; logs:\n"
                                 + "\n".join(controller_lines[-40:])) from None
        assert "preferred leaders restored" in "".join(b.log_text() for b in cluster.brokers.values())


@needs_etcd
@pytest.mark.timeout(240)
def test_unclean_election_of_an_offline_partition(tmp_path):
    topic = "unclean"
    with running_cluster(3, data_dir=tmp_path) as cluster:
        create_topic(cluster, topic, 1, 2)
        replicas = list(cluster.describe(topic)[0].replica_nodes)
        leader = cluster.leader_of(topic, 0)
        follower = next(r for r in replicas if r != leader)
        producer = confluent_kafka.Producer({"bootstrap.servers": cluster.bootstrap_servers, "acks": "all"})
        producer.produce(topic, b"before", partition=0)
        assert producer.flush(30) == 0
        cluster.kill(follower)
        wait_until(lambda: list(cluster.describe(topic)[0].isr_nodes) == [leader], 30, "the ISR shrunk to the leader")
        cluster.kill(leader)
        wait_until(lambda: cluster.describe(topic)[0].leader_id == -1, 30, "the partition offline")
        survivor = next(b for b in cluster.brokers if b not in replicas)
        # Clients are told the broker they ask is the controller (KRaft names a live broker): never a dead one.
        with Client(cluster.broker(survivor).bootstrap_servers) as client:
            assert client.metadata([]).controller_id == survivor
        # The operator's view (DescribeCluster): the elected controller, the survivor (the only live broker),
        # and the offline partition.
        status = json.loads(moldau("cluster", "status", "--json", "-b", cluster.broker(survivor).bootstrap_servers
                                   ).stdout)
        assert status["controller"] == survivor == cluster.controller_id()
        assert [(p["topic"], p["partition"], p["leader"]) for p in status["offline"]] == [(topic, 0, -1)]
        assert elect(cluster.bootstrap_servers, ElectionType.UNCLEAN, [(topic, 0)]) == \
            {(topic, 0): KafkaError.ELIGIBLE_LEADERS_NOT_AVAILABLE}
        cluster.restart(follower)
        # Out of the ISR and unclean.leader.election.enable=false: the controller leaves it offline...
        assert cluster.describe(topic)[0].leader_id == -1
        assert elect(cluster.bootstrap_servers, ElectionType.PREFERRED, [(topic, 0)]) == \
            {(topic, 0): KafkaError.PREFERRED_LEADER_NOT_AVAILABLE}
        # ...until an operator asks for an unclean election.
        wait_until(lambda: elect(cluster.bootstrap_servers, ElectionType.UNCLEAN, [(topic, 0)]) ==
                   {(topic, 0): 0}, 30, "the unclean election")
        assert cluster.leader_of(topic, 0) == follower
        producer.produce(topic, b"after", partition=0)
        assert producer.flush(30) == 0
