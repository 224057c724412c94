"""Given two brokers, a Connect worker on the target runs MirrorSource and MirrorCheckpoint connectors: the
topic is copied record for record, and a consumer group's committed offsets are translated to the target."""

from __future__ import annotations

import confluent_kafka

from moldau.connect.runtime.standalone import standalone_herder
from moldau.testing import running_broker
from tests.connect.connect_fixtures import FAST_WORKER, create_topic, read_topic, wait_until
from tests.fixtures import GROUP_TEST_OVERRIDES, unique_topic

BYTES = "org.apache.kafka.connect.converters.ByteArrayConverter"


def test_mirror_copies_a_topic_and_a_groups_offsets():
    overrides = {k.replace(".", "_"): v for k, v in GROUP_TEST_OVERRIDES.items()}
    with running_broker(num_partitions=2, **overrides) as source, running_broker(num_partitions=2, **overrides) as target:
        topic = create_topic(source.bootstrap_servers, unique_topic("orders"), partitions=2)
        producer = confluent_kafka.Producer({"bootstrap.servers": source.bootstrap_servers})
        for i in range(40):
            producer.produce(topic, key=f"k{i}".encode(), value=f"v{i}".encode(), partition=i % 2,
                             headers=[("h", b"x")])
        assert producer.flush(30) == 0
        # A group on the source that has read 15 records of partition 0 and 5 of partition 1.
        group = unique_topic("billing")
        consumer = confluent_kafka.Consumer({"bootstrap.servers": source.bootstrap_servers, "group.id": group,
                                             "enable.auto.commit": False})
        consumer.commit(offsets=[confluent_kafka.TopicPartition(topic, 0, 15),
                                 confluent_kafka.TopicPartition(topic, 1, 5)], asynchronous=False)
        consumer.close()

        herder = standalone_herder({"bootstrap.servers": target.bootstrap_servers, "key.converter": BYTES,
                                    "value.converter": BYTES, **FAST_WORKER})
        clusters = {"source.cluster.alias": "east", "target.cluster.alias": "west",
                    "source.cluster.bootstrap.servers": source.bootstrap_servers,
                    "target.cluster.bootstrap.servers": target.bootstrap_servers, "topics": topic}
        try:
            herder.put_connector_config("mm2-source", {
                "connector.class": "org.apache.kafka.connect.mirror.MirrorSourceConnector", "tasks.max": "2",
                **clusters}, allow_replace=False)
            remote = f"east.{topic}"
            copied = wait_until(lambda: len(m := read_topic(target.bootstrap_servers, remote, 40, 5)) == 40 and m,
                                60, "40 mirrored records")
            by_partition = {p: [(m.key(), m.value()) for m in copied if m.partition() == p] for p in (0, 1)}
            assert by_partition[0] == [(f"k{i}".encode(), f"v{i}".encode()) for i in range(0, 40, 2)]
            assert by_partition[1] == [(f"k{i}".encode(), f"v{i}".encode()) for i in range(1, 40, 2)]
            assert all(m.headers() == [("h", b"x")] for m in copied)

            herder.put_connector_config("mm2-checkpoint", {
                "connector.class": "MirrorCheckpointConnector", "emit.checkpoints.interval.seconds": "1",
                "sync.group.offsets.enabled": "true", "groups": group, **clusters}, allow_replace=False)
            admin = confluent_kafka.admin.AdminClient({"bootstrap.servers": target.bootstrap_servers})

            def target_offsets():
                request = confluent_kafka.ConsumerGroupTopicPartitions(group)
                try:
                    result = admin.list_consumer_group_offsets([request])[group].result(10)
                except confluent_kafka.KafkaException:
                    return None
                return {(tp.topic, tp.partition): tp.offset for tp in result.topic_partitions if tp.offset >= 0}

            assert wait_until(target_offsets, 60, "translated group offsets") == {(remote, 0): 15, (remote, 1): 5}
        finally:
            herder.stop()
