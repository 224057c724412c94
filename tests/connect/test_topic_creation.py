"""KIP-158: a source connector's `topic.creation.*` configs make the worker create a missing topic, with the
partitions, replication factor and topic configs of the first matching group, before its first record."""

from __future__ import annotations

import pytest

from moldau.connect.api.config import ConfigException
from moldau.connect.runtime.standalone import standalone_herder
from moldau.connect.runtime.topic_creation import TopicCreation
from tests.connect.connect_fixtures import FAST_WORKER, read_topic
from tests.fixtures import unique_topic


def worker(broker, tmp_path, **extra):
    return standalone_herder({"bootstrap.servers": broker.bootstrap_servers,
                              "key.converter": "org.apache.kafka.connect.storage.StringConverter",
                              "value.converter": "org.apache.kafka.connect.storage.StringConverter",
                              "offset.storage.file.filename": str(tmp_path / "offsets.json"), **FAST_WORKER, **extra})


def described(bootstrap: str, topic: str) -> tuple[int, dict[str, str]]:
    """(partitions, topic configs) through confluent-kafka's AdminClient."""
    from confluent_kafka.admin import AdminClient, ConfigResource

    admin = AdminClient({"bootstrap.servers": bootstrap})
    partitions = len(admin.list_topics(topic, timeout=10).topics[topic].partitions)
    resource = ConfigResource(ConfigResource.Type.TOPIC, topic)
    entries = admin.describe_configs([resource])[resource].result(30)
    return partitions, {name: (entry.value, entry.source) for name, entry in entries.items()}


def kafka_python_modified_configs(bootstrap: str, topic: str) -> dict[str, str]:
    """The topic's non-default configs through kafka-python (its default `modified` filter)."""
    from kafka.admin import ConfigResource, ConfigResourceType, KafkaAdminClient

    admin = KafkaAdminClient(bootstrap_servers=bootstrap)
    try:
        found = admin.describe_configs([ConfigResource(ConfigResourceType.TOPIC, topic)])["topic"][topic]
        return {name: entry["value"] for name, entry in found.items()}
    finally:
        admin.close()


def test_groups_pick_the_first_match_and_default_matches_the_rest():
    creation = TopicCreation.from_config(True, {
        "topic.creation.default.replication.factor": "1", "topic.creation.default.partitions": "2",
        "topic.creation.default.include": "never-used", "topic.creation.groups": "compacted, logs",
        "topic.creation.compacted.include": "status-.*, config-.*", "topic.creation.compacted.exclude": ".*-tmp",
        "topic.creation.compacted.cleanup.policy": "compact", "topic.creation.logs.include": ".*",
        "topic.creation.logs.partitions": "5", "topic.creation.logs.retention.ms": "1000"})
    assert creation is not None
    assert creation.group_for("status-a").name == "compacted"
    assert creation.group_for("status-a").configs == {"cleanup.policy": "compact"}
    assert creation.group_for("status-a").partitions == 2  # inherited from default
    assert creation.group_for("status-a-tmp").name == "logs"  # excluded from the first group
    assert creation.group_for("xstatus-a").name == "logs"  # regexes match the whole name
    assert (creation.group_for("other").partitions, creation.group_for("other").configs) == (5, {"retention.ms":
                                                                                                  "1000"})
    assert TopicCreation.from_config(False, {"topic.creation.default.partitions": "1"}) is None
    assert TopicCreation.from_config(True, {"file": "x"}) is None


def test_file_source_creates_its_missing_topic_with_the_groups_settings(broker, tmp_path):
    topic = unique_topic("kip158-logs")
    source_file = tmp_path / "in.txt"
    source_file.write_text("".join(f"k{i}\n" for i in range(10)))
    herder = worker(broker, tmp_path)
    try:
        herder.put_connector_config("creating-source", {
            "connector.class": "FileStreamSource", "file": str(source_file), "topic": topic,
            "topic.creation.default.replication.factor": "1", "topic.creation.default.partitions": "1",
            "topic.creation.groups": "logs", "topic.creation.logs.include": "kip158-logs.*",
            "topic.creation.logs.partitions": "3", "topic.creation.logs.cleanup.policy": "delete",
            "topic.creation.logs.retention.ms": "3600000"}, allow_replace=False)
        records = read_topic(broker.bootstrap_servers, topic, 10)
        assert sorted(m.value() for m in records) == sorted(f"k{i}".encode() for i in range(10))
    finally:
        herder.stop()
    partitions, configs = described(broker.bootstrap_servers, topic)
    assert partitions == 3
    # FileStream records have no key, which a compacted topic refuses: so the policy set is `delete`, told apart
    # from the broker default by its source (set on the topic at creation).
    from confluent_kafka.admin import ConfigSource

    assert configs["cleanup.policy"] == ("delete", ConfigSource.DYNAMIC_TOPIC_CONFIG.value)
    assert configs["retention.ms"] == ("3600000", ConfigSource.DYNAMIC_TOPIC_CONFIG.value)
    assert kafka_python_modified_configs(broker.bootstrap_servers, topic) == {"cleanup.policy": "delete",
                                                                             "retention.ms": "3600000"}


def test_missing_default_group_settings_fail_validation(broker, tmp_path):
    herder = worker(broker, tmp_path)
    try:
        with pytest.raises(ConfigException, match="topic.creation.default.partitions"):
            herder.put_connector_config("bad-source", {
                "connector.class": "FileStreamSource", "file": str(tmp_path / "x"), "topic": "t",
                "topic.creation.default.replication.factor": "1"}, allow_replace=False)
        with pytest.raises(ConfigException, match="Number of partitions must be positive"):
            herder.put_connector_config("bad-source", {
                "connector.class": "FileStreamSource", "file": str(tmp_path / "x"), "topic": "t",
                "topic.creation.default.replication.factor": "1", "topic.creation.default.partitions": "0"},
                allow_replace=False)
    finally:
        herder.stop()
