"""Given a partition whose leader's broker is gone, when clients ask Metadata or get NOT_LEADER_OR_FOLLOWER,
then they are never pointed at that broker (ReplicaManager.live_leader serves both), and once the
controller elects a live leader both name it."""

from __future__ import annotations

import pytest

from moldau.client.client import Client
from moldau.protocol import messages
from moldau.protocol.errors import ErrorCode
from moldau.protocol.records import Record, build_batch
from tests.fixtures import unique_topic
from tests.replication.controller_for_tests import running_controller


@pytest.fixture
def cluster(tmp_path):
    with running_controller(tmp_path) as controller:
        yield controller


def _produce_error(client: Client, topic: str) -> tuple[int, int, int]:
    request = messages.ProduceRequest(acks=1, timeout_ms=5000, topic_data=[
        messages.ProduceRequest.TopicProduceData(name=topic, partition_data=[
            messages.ProduceRequest.PartitionProduceData(index=0, records=build_batch([Record(0, 0, None, b"v")]))])])
    result = client.send(0, request, 10).responses[0].partition_responses[0]
    return result.error_code, result.current_leader.leader_id, result.current_leader.leader_epoch


def test_a_gone_leader_is_named_nowhere_and_the_elected_one_everywhere(cluster):
    topic = unique_topic("live-leader")
    cluster.create_topic(topic)
    # Given broker 1, the leader, gone before the controller moved the partition:
    cluster.stop(1)
    with Client(cluster.bootstrap(2)) as client:
        partition = client.metadata([topic]).topics[0].partitions[0]
        assert (partition.error_code, partition.leader_id) == (ErrorCode.LEADER_NOT_AVAILABLE, -1)
        assert partition.offline_replicas == [1]
        assert _produce_error(client, topic) == (ErrorCode.NOT_LEADER_OR_FOLLOWER, -1, -1)  # no KIP-951 hint
        # When the controller elects broker 3, Metadata and the KIP-951 hint both name it.
        elected = cluster.elect(topic, 0, leader=3, isr=(2, 3))
        partition = client.metadata([topic]).topics[0].partitions[0]
        assert (partition.error_code, partition.leader_id, partition.leader_epoch) == \
            (ErrorCode.NONE, 3, elected.leader_epoch)
        assert _produce_error(client, topic) == (ErrorCode.NOT_LEADER_OR_FOLLOWER, 3, elected.leader_epoch)
