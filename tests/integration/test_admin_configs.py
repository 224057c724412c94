"""Given a broker, when admin clients describe and alter topic and broker configs, then they see Kafka's behaviour:
sources and synonyms, whole-set and incremental changes, Kafka's error codes, and nothing invalid stored."""

from __future__ import annotations

import pytest
from confluent_kafka import KafkaError, KafkaException
from confluent_kafka.admin import (
    AdminClient,
    AlterConfigOpType,
    ConfigEntry,
    ConfigResource,
    ConfigSource,
    NewTopic,
)

from moldau.client.client import Client, ClientError
from moldau.protocol.errors import ErrorCode
from tests.fixtures import DEADLINE_S, embedded_broker, unique_topic

SET, DELETE, APPEND, SUBTRACT = (AlterConfigOpType.SET, AlterConfigOpType.DELETE, AlterConfigOpType.APPEND,
                                 AlterConfigOpType.SUBTRACT)


def new_topic(admin: AdminClient, configs: dict[str, str] | None = None) -> str:
    topic = unique_topic("cfg")
    admin.create_topics([NewTopic(topic, 1, config=configs or {})])[topic].result(DEADLINE_S)
    return topic


def describe(admin: AdminClient, kind: str, name: str) -> dict[str, ConfigEntry]:
    resource = ConfigResource(kind, name)
    return admin.describe_configs([resource])[resource].result(DEADLINE_S)


def incremental(admin: AdminClient, kind: str, name: str, *ops: tuple[str, AlterConfigOpType, str | None],
                validate_only: bool = False) -> None:
    resource = ConfigResource(kind, name, incremental_configs=[
        ConfigEntry(key, value, incremental_operation=op) for key, op, value in ops])
    admin.incremental_alter_configs([resource], validate_only=validate_only)[resource].result(DEADLINE_S)


def set_cluster_default(bootstrap: str, key: str, value: str) -> None:
    """librdkafka refuses an empty BROKER resource name, so the cluster-wide default goes via our client."""
    with Client(bootstrap) as client:
        client.incremental_alter_configs(4, "", [(key, 0, value)])


def error_of(call) -> KafkaError:
    with pytest.raises(KafkaException) as info:
        call()
    return info.value.args[0]


@pytest.fixture
def admin(broker):
    return AdminClient({"bootstrap.servers": broker.bootstrap_servers})


def test_topic_defaults_come_from_the_broker_with_their_synonyms(admin):
    topic = new_topic(admin)
    configs = describe(admin, "TOPIC", topic)
    retention = configs["retention.ms"]
    assert retention.value == "604800000"
    assert retention.source == ConfigSource.DEFAULT_CONFIG.value
    assert list(retention.synonyms) == ["log.retention.hours"]
    assert configs["segment.bytes"].value == "1073741824"
    assert configs["cleanup.policy"].value == "delete"
    assert configs["compression.type"].value == "producer"
    assert not retention.is_read_only and not retention.is_sensitive


def test_incremental_set_delete_append_subtract_on_a_topic(admin, broker):
    topic = new_topic(admin)
    incremental(admin, "TOPIC", topic, ("retention.ms", SET, "3600000"), ("cleanup.policy", APPEND, "compact"))
    configs = describe(admin, "TOPIC", topic)
    assert configs["retention.ms"].value == "3600000"
    assert configs["retention.ms"].source == ConfigSource.DYNAMIC_TOPIC_CONFIG.value
    assert list(configs["retention.ms"].synonyms) == ["retention.ms", "log.retention.hours"]
    assert configs["cleanup.policy"].value == "delete,compact"
    live = broker.broker.replica_manager.topics[topic].partitions[0].log.config
    assert live.retention_ms == 3600000 and live.cleanup_policy == "delete,compact"

    incremental(admin, "TOPIC", topic, ("cleanup.policy", SUBTRACT, "delete"), ("retention.ms", DELETE, None))
    configs = describe(admin, "TOPIC", topic)
    assert configs["cleanup.policy"].value == "compact"
    assert configs["retention.ms"].value == "604800000"
    assert configs["retention.ms"].source == ConfigSource.DEFAULT_CONFIG.value
    assert broker.broker.replica_manager.topics[topic].partitions[0].log.config.retention_ms == 604800000


@pytest.mark.filterwarnings("ignore:alter_configs has been deprecated")
def test_alter_configs_replaces_the_whole_set(admin):
    topic = new_topic(admin, {"retention.ms": "1000000", "max.message.bytes": "2000000"})
    resource = ConfigResource("TOPIC", topic, set_config={"retention.bytes": "10485760"})
    admin.alter_configs([resource])[resource].result(DEADLINE_S)
    configs = describe(admin, "TOPIC", topic)
    assert configs["retention.bytes"].value == "10485760"
    assert configs["retention.ms"].source == ConfigSource.DEFAULT_CONFIG.value
    assert configs["max.message.bytes"].value == "1048588"


@pytest.mark.parametrize(("key", "op", "value", "code"), [
    ("segment.bytes", SET, "1000", KafkaError.INVALID_CONFIG),  # KIP-1030: at least 1 MiB
    ("retention.ms", SET, "soon", KafkaError.INVALID_CONFIG),
    ("min.cleanable.dirty.ratio", SET, "1.1", KafkaError.INVALID_CONFIG),
    ("cleanup.policy", SET, "delete,shred", KafkaError.INVALID_CONFIG),
    ("compression.type", SET, "brotli", KafkaError.INVALID_CONFIG),
    ("no.such.config", SET, "1", KafkaError.INVALID_CONFIG),
    ("retention.ms", APPEND, "1000", KafkaError.INVALID_CONFIG),  # KRaft: not a LIST config
])
def test_invalid_topic_values_are_refused_and_not_stored(admin, key, op, value, code):
    topic = new_topic(admin)
    before = {k: (e.value, e.source) for k, e in describe(admin, "TOPIC", topic).items()}
    error = error_of(lambda: incremental(admin, "TOPIC", topic, ("retention.bytes", SET, "5"), (key, op, value)))
    assert error.code() == code
    after = {k: (e.value, e.source) for k, e in describe(admin, "TOPIC", topic).items()}
    assert after == before  # nothing of the resource was applied, not even the valid retention.bytes


def test_validate_only_and_unknown_topics(admin):
    topic = new_topic(admin)
    incremental(admin, "TOPIC", topic, ("retention.ms", SET, "5000"), validate_only=True)
    assert describe(admin, "TOPIC", topic)["retention.ms"].value == "604800000"
    error = error_of(lambda: incremental(admin, "TOPIC", "no-such-topic", ("retention.ms", SET, "5000")))
    assert error.code() == KafkaError.UNKNOWN_TOPIC_OR_PART
    error = error_of(lambda: describe(admin, "TOPIC", "no-such-topic"))
    assert error.code() == KafkaError.UNKNOWN_TOPIC_OR_PART


def test_broker_configs_per_broker_and_cluster_default(admin, broker):
    node = str(broker.broker.node_id)
    topic = new_topic(admin)
    set_cluster_default(broker.bootstrap_servers, "log.retention.ms", "7200000")
    configs = describe(admin, "TOPIC", topic)
    assert configs["retention.ms"].value == "7200000"
    assert configs["retention.ms"].source == ConfigSource.DYNAMIC_DEFAULT_BROKER_CONFIG.value
    assert broker.broker.replica_manager.topics[topic].partitions[0].log.config.retention_ms == 7200000

    incremental(admin, "BROKER", node, ("log.retention.ms", SET, "3600000"))
    configs = describe(admin, "TOPIC", topic)
    assert configs["retention.ms"].value == "3600000"
    assert configs["retention.ms"].source == ConfigSource.DYNAMIC_BROKER_CONFIG.value
    assert list(configs["retention.ms"].synonyms) == ["log.retention.ms", "log.retention.hours"]
    broker_configs = describe(admin, "BROKER", node)
    assert broker_configs["log.retention.ms"].value == "3600000"
    assert broker_configs["log.retention.ms"].source == ConfigSource.DYNAMIC_BROKER_CONFIG.value
    assert broker_configs["log.dirs"].is_read_only
    assert broker_configs["log.dirs"].source == ConfigSource.STATIC_BROKER_CONFIG.value
    with Client(broker.bootstrap_servers) as client:
        defaults = client.describe_configs(4, "", synonyms=True).configs
    assert [(c.name, c.value, c.config_source) for c in defaults] == [
        ("log.retention.ms", "7200000", ConfigSource.DYNAMIC_DEFAULT_BROKER_CONFIG.value)]

    assert error_of(lambda: incremental(admin, "BROKER", node, ("log.dirs", SET, "/tmp/x"))).code() == \
        KafkaError.INVALID_CONFIG
    assert error_of(lambda: incremental(admin, "BROKER", node, ("log.segment.bytes", SET, "1024"))).code() == \
        KafkaError.INVALID_CONFIG
    with Client(broker.bootstrap_servers) as client, pytest.raises(ClientError) as info:
        client.incremental_alter_configs(4, "1234", [("log.retention.ms", 0, "1")])  # not this broker's id
    assert info.value.error_code == ErrorCode.INVALID_REQUEST
    assert describe(admin, "BROKER", node)["log.segment.bytes"].value == "1073741824"


def test_configs_survive_a_restart(tmp_path):
    with embedded_broker(tmp_path) as broker:
        admin = AdminClient({"bootstrap.servers": broker.bootstrap_servers})
        topic = new_topic(admin)
        incremental(admin, "TOPIC", topic, ("retention.ms", SET, "123456"), ("segment.bytes", SET, "2097152"))
        set_cluster_default(broker.bootstrap_servers, "log.retention.bytes", "99999999")
    with embedded_broker(tmp_path) as broker:
        admin = AdminClient({"bootstrap.servers": broker.bootstrap_servers})
        configs = describe(admin, "TOPIC", topic)
        assert configs["retention.ms"].value == "123456"
        assert configs["segment.bytes"].value == "2097152"
        assert configs["retention.bytes"].value == "99999999"
        assert configs["retention.bytes"].source == ConfigSource.DYNAMIC_DEFAULT_BROKER_CONFIG.value
        live = broker.broker.replica_manager.topics[topic].partitions[0].log.config
        assert (live.retention_ms, live.segment_bytes, live.retention_bytes) == (123456, 2097152, 99999999)


def test_kafka_python_describe_and_alter(broker):
    from kafka import KafkaAdminClient
    from kafka.admin import ConfigResource as KpResource
    from kafka.admin import ConfigResourceType

    admin = KafkaAdminClient(bootstrap_servers=broker.bootstrap_servers, request_timeout_ms=DEADLINE_S * 1000)
    try:
        topic = new_topic(AdminClient({"bootstrap.servers": broker.bootstrap_servers}))
        resource = KpResource(ConfigResourceType.TOPIC, topic)
        for incremental_alter, value in ((False, "111111"), (True, "222222")):
            result = admin.alter_configs([KpResource(ConfigResourceType.TOPIC, topic, {"retention.ms": value})],
                                         incremental=incremental_alter)
            assert result == {"topic": {topic: "OK"}}
            modified = admin.describe_configs([resource])["topic"][topic]
            assert modified == {"retention.ms": {
                "value": value, "read_only": False, "config_source": "DYNAMIC_TOPIC_CONFIG", "is_sensitive": False,
                "synonyms": [], "config_type": "LONG", "documentation": None}}
        bad = admin.alter_configs([KpResource(ConfigResourceType.TOPIC, topic, {"segment.bytes": "10"})],
                                  raise_on_unknown=False)
        assert bad["topic"][topic].startswith("[Error 40] InvalidConfigurationError")
        everything = admin.describe_configs([resource], include_synonyms=True, config_filter="all")["topic"][topic]
        assert everything["segment.bytes"]["value"] == "1073741824"
        assert everything["segment.bytes"]["synonyms"] == [
            {"name": "log.segment.bytes", "value": "1073741824", "source": "DEFAULT_CONFIG"}]
        assert everything["retention.ms"]["synonyms"][0] == {
            "name": "retention.ms", "value": "222222", "source": "DYNAMIC_TOPIC_CONFIG"}
    finally:
        admin.close()
