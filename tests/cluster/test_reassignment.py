"""Partition reassignment (KIP-455) on a real cluster: etcd and three `moldau server` processes.

kafka-python's admin client (confluent-kafka's Python API has no reassignment call) starts, lists and
cancels reassignments; confluent-kafka produces with acks=all and idempotence while a partition moves, and
reads every acknowledged record back from each new replica as leader. The replica that was moved away
deletes its log directory; the follower.replication.throttled.* configs slow the catch-up down.
"""

from __future__ import annotations

import json
import time
from pathlib import Path

import confluent_kafka
import pytest
from confluent_kafka.admin import AdminClient, NewTopic
from kafka import TopicPartition
from kafka.admin import KafkaAdminClient

from moldau.client.client import Client
from moldau.cluster.etcd_server import find_etcd
from moldau.protocol.errors import ErrorCode
from moldau.testing_cluster import RunningCluster, running_cluster
from tests.fixtures import AckedProducer, wait_until

pytestmark = pytest.mark.skipif(find_etcd() is None, reason="etcd is not installed (apt-get install etcd-server)")


def create_topic(cluster: RunningCluster, name: str, replication_factor: int = 2,
                 config: dict[str, str] | None = None) -> list[int]:
    admin = AdminClient({"bootstrap.servers": cluster.bootstrap_servers})
    admin.create_topics([NewTopic(name, 1, replication_factor, config=config or {})])[name].result(30)
    cluster.wait_for_isr(name, replication_factor)
    return list(cluster.describe(name)[0].replica_nodes)


def kafka_python_admin(cluster: RunningCluster) -> KafkaAdminClient:
    return KafkaAdminClient(bootstrap_servers=cluster.bootstrap_servers.split(","), request_timeout_ms=30000)


def replica_dirs(data_dir: Path, broker_id: int, topic: str) -> list[str]:
    return sorted(p.name for p in (data_dir / f"broker-{broker_id}").iterdir() if p.name.startswith(f"{topic}-0"))


def wait_for_replicas(cluster: RunningCluster, topic: str, replicas: list[int], timeout: float = 90,
                      ordered: bool = True) -> None:
    def moved() -> bool:
        entry = cluster.describe(topic).get(0)
        current = list(entry.replica_nodes) if entry is not None else []
        return entry is not None and (current == replicas if ordered else sorted(current) == sorted(replicas)) and \
            sorted(entry.isr_nodes) == sorted(replicas) and entry.leader_id in replicas
    wait_until(moved, timeout, f"{topic}-0 on {replicas}, all in sync")


def read_all(bootstrap: str, topic: str) -> dict[int, bytes]:
    consumer = confluent_kafka.Consumer({"bootstrap.servers": bootstrap, "group.id": f"verify-{time.monotonic()}",
                                         "enable.auto.commit": False, "enable.partition.eof": True})
    consumer.assign([confluent_kafka.TopicPartition(topic, 0, confluent_kafka.OFFSET_BEGINNING)])
    records: dict[int, bytes] = {}
    deadline = time.monotonic() + 60
    try:
        while time.monotonic() < deadline:
            m = consumer.poll(0.5)
            if m is None:
                continue
            if m.error() is None:
                records[m.offset()] = m.value()
            elif m.error().code() == confluent_kafka.KafkaError._PARTITION_EOF:
                return records
    finally:
        consumer.close()
    raise AssertionError(f"did not reach the end of {topic}-0")


def assert_has_every_acked(acked: dict[int, bytes], stored: dict[int, bytes], where: str) -> None:
    missing = {o: v for o, v in acked.items() if stored.get(o) != v}
    assert not missing, f"{len(missing)} acknowledged record(s) not on {where}, e.g. {list(missing.items())[:5]}"


@pytest.mark.timeout(300)
def test_move_a_partition_under_produce_load(tmp_path):
    topic = "moving"
    with running_cluster(3, data_dir=tmp_path) as cluster:
        old = create_topic(cluster, topic)  # e.g. [1, 2]
        new_broker = next(b for b in cluster.brokers if b not in old)
        target = [old[1], new_broker]  # e.g. [2, 3]: one replica stays, one moves
        producer = AckedProducer(cluster.bootstrap_servers, topic, partition=0).start()
        admin = kafka_python_admin(cluster)
        try:
            wait_until(lambda: len(producer.acked) >= 300, 60, "the first acknowledgements")
            result = admin.alter_partition_reassignments({TopicPartition(topic, 0): target})
            assert result == {TopicPartition(topic, 0): None}
            wait_for_replicas(cluster, topic, target)
            wait_until(lambda: not replica_dirs(tmp_path, old[0], topic), 30, "the moved replica's log deleted")
            assert admin.list_partition_reassignments() == {}
            before = len(producer.acked)
            wait_until(lambda: len(producer.acked) > before + 200, 60, "acknowledgements after the move")
        finally:
            producer.stop()
            admin.close()
        assert not producer.errors, producer.errors[:5]
        assert replica_dirs(tmp_path, new_broker, topic) == [f"{topic}-0"]
        # Every acknowledged record is on each new replica: read it from one leader, then from the other.
        cluster.wait_for_isr(topic, 2)
        first = cluster.leader_of(topic, 0)
        assert_has_every_acked({o: v for (_, o), v in producer.acked.items()}, read_all(cluster.bootstrap_servers, topic), f"broker {first}")
        cluster.kill(first)
        wait_until(lambda: cluster.leader_of(topic, 0) != first, 30, "the other new replica leading")
        second = cluster.leader_of(topic, 0)
        assert second in target and second != first
        assert_has_every_acked({o: v for (_, o), v in producer.acked.items()}, read_all(cluster.bootstrap_servers, topic), f"broker {second}")
    assert len(producer.acked) > 500


@pytest.mark.timeout(180)
def test_cancel_a_throttled_reassignment_and_errors(tmp_path):
    """A throttled catch-up stays listed (ListPartitionReassignments) until cancelled; cancelling puts the
    replicas back and the replica that was being added deletes its partial log."""
    topic = "throttled"
    with running_cluster(3, data_dir=tmp_path, follower_replication_throttled_rate=20000,
                         replication_quota_window_num=2, replica_fetch_max_bytes=16384,
                         replica_fetch_backoff_ms=100) as cluster:
        old = create_topic(cluster, topic, config={"follower.replication.throttled.replicas": "*"})
        new_broker = next(b for b in cluster.brokers if b not in old)
        fill(cluster, topic, 1_000_000)
        admin = kafka_python_admin(cluster)
        try:
            target = [old[1], new_broker]
            assert admin.alter_partition_reassignments({TopicPartition(topic, 0): target}) == \
                {TopicPartition(topic, 0): None}
            listed = admin.list_partition_reassignments()[TopicPartition(topic, 0)]
            assert listed["replicas"] == [*target, old[0]]
            assert (listed["adding_replicas"], listed["removing_replicas"]) == ([new_broker], [old[0]])
            wait_until(lambda: replica_dirs(tmp_path, new_broker, topic), 30, "the adding replica's log")
            # At 20 kB/s, 1 MB takes ~50 s: still catching up when cancelled.
            with Client(cluster.broker(old[0]).bootstrap_servers) as client:
                assert client.list_partition_reassignments() != {}
                assert client.alter_partition_reassignments({(topic, 0): None}) == {(topic, 0): (ErrorCode.NONE, None)}
                assert client.alter_partition_reassignments({(topic, 0): None})[(topic, 0)][0] \
                    == ErrorCode.NO_REASSIGNMENT_IN_PROGRESS
                assert client.alter_partition_reassignments({(topic, 0): [old[0], 99]})[(topic, 0)][0] \
                    == ErrorCode.INVALID_REPLICA_ASSIGNMENT
                assert client.alter_partition_reassignments({("nope", 0): [1]})[("nope", 0)][0] \
                    == ErrorCode.UNKNOWN_TOPIC_OR_PARTITION
            # KRaft's revert keeps the replicas in their reassignment order (target first): compare as sets.
            wait_for_replicas(cluster, topic, old, ordered=False)
            wait_until(lambda: not replica_dirs(tmp_path, new_broker, topic), 30, "the partial replica deleted")
            assert admin.list_partition_reassignments() == {}
        finally:
            admin.close()


def fill(cluster: RunningCluster, topic: str, nbytes: int) -> None:
    producer = confluent_kafka.Producer({"bootstrap.servers": cluster.bootstrap_servers, "acks": "all",
                                         "linger.ms": 20, "compression.type": "none",
                                         "batch.size": 16384})  # small batches: a fetch can't take it all at once
    value = b"x" * 1000
    for _ in range(nbytes // len(value)):
        while True:
            try:
                producer.produce(topic, value=value, partition=0)
                break
            except BufferError:
                producer.poll(0.05)
    assert producer.flush(60) == 0


@pytest.mark.timeout(180)
@pytest.mark.parametrize("side", ["follower", "leader"])
def test_throttled_catch_up_is_bounded_by_the_rate(tmp_path, side):
    """{follower,leader}.replication.throttled.rate bounds a throttled replica's catch-up: 600 kB at
    150 kB/s takes at least ~3 s (unthrottled it takes about 0.1 s here)."""
    topic = "slow"
    rate = 150_000
    with running_cluster(3, data_dir=tmp_path, replication_quota_window_num=2, replica_fetch_max_bytes=32768,
                         replica_fetch_backoff_ms=50, **{f"{side}_replication_throttled_rate": rate}) as cluster:
        old = create_topic(cluster, topic, config={f"{side}.replication.throttled.replicas": "*"})
        new_broker = next(b for b in cluster.brokers if b not in old)
        fill(cluster, topic, 600_000)
        admin = kafka_python_admin(cluster)
        try:
            started = time.monotonic()
            admin.alter_partition_reassignments({TopicPartition(topic, 0): [old[0], old[1], new_broker]})
            wait_for_replicas(cluster, topic, [old[0], old[1], new_broker])
            elapsed = time.monotonic() - started
        finally:
            admin.close()
    # The quota window (2 x 1 s) lets about one window's worth through before it bites.
    assert elapsed >= (600_000 - 2 * rate) / rate * 0.8, f"caught up in {elapsed:.1f} s: not throttled"


@pytest.mark.timeout(240)
def test_reassignment_survives_a_controller_failover(tmp_path):
    """The controller is killed while a (throttled) reassignment is catching up; once the throttle is lifted
    (the adding broker's follower.replication.throttled.rate raised at run time), the new controller
    completes the reassignment."""
    topic = "failover"
    with running_cluster(3, data_dir=tmp_path, follower_replication_throttled_rate=20000,
                         replication_quota_window_num=2, replica_fetch_max_bytes=16384,
                         replica_fetch_backoff_ms=100) as cluster:
        old = create_topic(cluster, topic, config={"follower.replication.throttled.replicas": "*"})
        new_broker = next(b for b in cluster.brokers if b not in old)
        target = [old[1], new_broker]
        fill(cluster, topic, 1_000_000)
        with Client(cluster.broker(new_broker).bootstrap_servers) as client:
            assert client.alter_partition_reassignments({(topic, 0): target}) == {(topic, 0): (ErrorCode.NONE, None)}
            assert list(client.list_partition_reassignments()) == [(topic, 0)]
            controller = cluster.controller_id()
            assert controller is not None and client.describe_cluster().controller_id == controller
        cluster.kill(controller)
        survivor = next(b for b in cluster.brokers if b != controller)
        wait_until(lambda: cluster.controller_id() not in (None, controller), 30, "a new controller")
        with Client(cluster.broker(survivor).bootstrap_servers) as client:
            assert list(client.list_partition_reassignments()) == [(topic, 0)]  # still going
        cluster.restart(controller)
        with Client(cluster.broker(new_broker).bootstrap_servers) as client:  # lift the throttle at run time
            client.incremental_alter_configs(4, str(new_broker), [("follower.replication.throttled.rate", 0,
                                                                   "1000000000")])
        wait_for_replicas(cluster, topic, target)
        wait_until(lambda: not replica_dirs(tmp_path, old[0], topic), 30, "the moved replica's log deleted")
        with Client(cluster.broker(survivor).bootstrap_servers) as client:
            assert client.list_partition_reassignments() == {}


@pytest.mark.timeout(180)
def test_cli_reassign_describe_and_elect_leaders(tmp_path):
    """`moldau topic reassign`, `moldau topic describe` (leader, replicas, ISR, offline replicas) and
    `moldau cluster elect-leaders` against a running cluster."""
    from tests.cli.runner import moldau

    topic = "cli"
    with running_cluster(3, data_dir=tmp_path, auto_leader_rebalance_enable=False) as cluster:
        old = create_topic(cluster, topic)
        new_broker = next(b for b in cluster.brokers if b not in old)
        target = [new_broker, old[0]]
        server = ["--bootstrap-server", cluster.broker(old[1]).bootstrap_servers]
        out = moldau("topic", "reassign", topic, "-p", "0", "--replicas", ",".join(map(str, target)), *server).stdout
        assert f"Reassigning {topic}-0 to {target}" in out
        wait_for_replicas(cluster, topic, target)
        described = json.loads(moldau("topic", "describe", topic, "--json", *server).stdout)["partitions"][0]
        assert (described["replicas"], described["offline"], described["adding"]) == (target, [], [])
        assert described["leader"] in target and sorted(described["isr"]) == sorted(target)
        cluster.kill(new_broker)
        wait_until(lambda: json.loads(moldau("topic", "describe", topic, "--json", *server).stdout)
                   ["partitions"][0]["offline"] == [new_broker], 30, "the killed replica shown offline")
        cluster.restart(new_broker)
        cluster.wait_for_isr(topic, 2)
        wait_until(lambda: f"{topic}-0: elected" in moldau("cluster", "elect-leaders", "--topic", topic,
                                                            *server).stdout, 30, "the preferred election")
        assert cluster.leader_of(topic, 0) == new_broker
        failed = moldau("topic", "reassign", topic, "-p", "0", "--cancel", *server, check=False)
        assert failed.returncode == 1 and "NO_REASSIGNMENT_IN_PROGRESS" in failed.stderr


@pytest.mark.timeout(180)
def test_a_replica_moved_away_while_down_deletes_its_log_when_it_returns(tmp_path):
    """The replica being removed is dead: the reassignment completes without it (the remaining replica
    leads, the new one catches up from it), and when the dead broker starts again it deletes its stray log."""
    topic = "stray"
    with running_cluster(3, data_dir=tmp_path) as cluster:
        old = create_topic(cluster, topic)
        new_broker = next(b for b in cluster.brokers if b not in old)
        fill(cluster, topic, 100_000)
        cluster.kill(old[0])
        wait_until(lambda: cluster.leader_of(topic, 0) == old[1], 30, "the other replica leading")
        with Client(cluster.broker(old[1]).bootstrap_servers) as client:
            assert client.alter_partition_reassignments({(topic, 0): [old[1], new_broker]}) == \
                {(topic, 0): (ErrorCode.NONE, None)}
        wait_for_replicas(cluster, topic, [old[1], new_broker])
        assert replica_dirs(tmp_path, old[0], topic) == [f"{topic}-0"]  # down: nobody deleted it yet
        cluster.restart(old[0])
        wait_until(lambda: not replica_dirs(tmp_path, old[0], topic), 30, "the stray log deleted at start")
        assert "partition.stray" in cluster.broker(old[0]).log_text()
