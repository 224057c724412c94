"""Topic and broker config validation, incremental operations, DescribeConfigs across versions, and the
topic-level compression.type applied on produce."""

from __future__ import annotations

import pytest

from moldau.broker.config import BrokerConfig, ConfigError
from moldau.broker.dynamic_config import (
    APPEND,
    BROKER,
    DELETE,
    SET,
    SUBTRACT,
    TOPIC,
    apply_incremental,
    broker_resource,
    parse_broker_config,
)
from moldau.broker.errors import ApiError
from moldau.broker.topic_config import broker_default_log_config, topic_log_config, validate_topic_configs
from moldau.client.client import Client
from moldau.protocol.errors import ErrorCode
from moldau.protocol.records import Record, build_batch, decode_batch, read_batch_header
from moldau.storage.config import LogConfig
from moldau.storage.log_validator import validate_records
from tests.fixtures import unique_topic


@pytest.mark.parametrize(("configs", "message"), [
    ({"segment.bytes": "1048575"}, "Value must be at least 1048576"),
    ({"retention.ms": "-2"}, "Value must be at least -1"),
    ({"max.compaction.lag.ms": "0"}, "Value must be at least 1"),
    ({"min.cleanable.dirty.ratio": "1.5"}, "Value must be no more than 1"),
    ({"message.timestamp.type": "WallClock"}, "String must be one of"),
    ({"cleanup.policy": "compact,archive"}, "String must be one of"),
    ({"segment.index.bytes": "99999999999"}, "Not a number of type INT"),
    ({"retention.ms": "abc"}, "^Invalid value abc for configuration retention.ms: Not a number of type LONG$"),
    ({"min.cleanable.dirty.ratio": "half"}, "Not a number of type DOUBLE$"),
    ({"preallocate": "yes"}, "either true or false"),
    ({"min.compaction.lag.ms": "10", "max.compaction.lag.ms": "5"}, "conflict topic config setting"),
    ({"retention.hours": "1"}, "Unknown topic config name: retention.hours"),
])
def test_invalid_topic_configs_name_what_is_wrong(configs, message):
    with pytest.raises(ConfigError, match=message):
        validate_topic_configs(configs)


def test_topic_overrides_and_dynamic_broker_defaults_make_the_log_config():
    broker = BrokerConfig({"log.retention.hours": "2", "log.cleanup.policy": "delete,compact"})
    defaults = broker_default_log_config(broker)
    assert defaults.retention_ms == 7_200_000 and defaults.cleanup_policy == "delete,compact"
    broker.set_dynamic({"log.retention.ms": "1000", "log.segment.bytes": "2097152"})
    defaults = broker_default_log_config(broker)
    assert (defaults.retention_ms, defaults.segment_bytes) == (1000, 2097152)
    assert topic_log_config(defaults, {"retention.ms": "5", "compression.type": "gzip"}).retention_ms == 5


def test_incremental_operations():
    current = {"cleanup.policy": "delete", "retention.ms": "10"}
    defaults = {"cleanup.policy": "delete"}
    ops = [("cleanup.policy", APPEND, "compact,delete"), ("retention.ms", DELETE, None), ("flush.ms", SET, "9")]
    assert apply_incremental(TOPIC, current, defaults, ops) == {"cleanup.policy": "delete,compact", "flush.ms": "9"}
    assert apply_incremental(TOPIC, {}, defaults, [("cleanup.policy", SUBTRACT, "delete")]) == {"cleanup.policy": ""}
    with pytest.raises(ApiError) as info:
        apply_incremental(TOPIC, {}, defaults, [("retention.ms", APPEND, "1")])
    assert info.value.error_code == ErrorCode.INVALID_CONFIG
    with pytest.raises(ApiError) as info:
        apply_incremental(TOPIC, {}, defaults, [("retention.ms", SET, "1"), ("retention.ms", DELETE, None)])
    assert info.value.error_code == ErrorCode.INVALID_REQUEST
    assert apply_incremental(BROKER, {}, {"log.cleanup.policy": "delete"},
                             [("log.cleanup.policy", APPEND, "compact")]) == {"log.cleanup.policy": "delete,compact"}


def test_broker_resources_and_dynamic_broker_configs():
    assert broker_resource("", 3) == "" and broker_resource("3", 3) == "3"
    for bad in ("4", "three"):
        with pytest.raises(ApiError) as info:
            broker_resource(bad, 3)
        assert info.value.error_code == ErrorCode.INVALID_REQUEST
    assert parse_broker_config("log.cleaner.min.cleanable.ratio", "0.25") == 0.25
    for name, value, message in [("log.dirs", "/x", "Cannot update these configs dynamically"),
                                 ("log.cleaner.min.cleanable.ratio", "2", "no more than 1"),
                                 ("log.segment.bytes", "100", "at least 1048576"),
                                 ("no.such.thing", "1", "Unknown broker config name")]:
        with pytest.raises(ConfigError, match=message):
            parse_broker_config(name, value)


@pytest.mark.parametrize("version", [1, 2, 3, 4])
def test_describe_configs_every_version(broker, version):
    topic = unique_topic("dc")
    with Client(broker.bootstrap_servers) as client:
        client.create_topic(topic, 1, configs={"retention.ms": "1000"})
        client.versions[32] = (1, version)  # make the client speak exactly this version
        result = client.describe_configs(2, topic, keys=["retention.ms", "cleanup.policy"], synonyms=True,
                                         documentation=True)
    configs = {c.name: c for c in result.configs}
    assert set(configs) == {"retention.ms", "cleanup.policy"}
    retention = configs["retention.ms"]
    assert (retention.value, retention.config_source) == ("1000", 1)
    assert [(s.name, s.source) for s in retention.synonyms] == [("retention.ms", 1), ("log.retention.hours", 5)]
    if version >= 3:
        assert retention.config_type == 5 and "Delete old segments" in retention.documentation
        assert configs["cleanup.policy"].config_type == 7


def test_topic_compression_type_recompresses_produced_batches(broker):
    topic = unique_topic("gz")
    records = [Record(0, 1_000 + i, b"k", b"v" * 100) for i in range(20)]
    with Client(broker.bootstrap_servers) as client:
        client.create_topic(topic, 1, configs={"compression.type": "gzip"})
        client.produce(topic, 0, build_batch(records))
        fetched = bytes(client.fetch(topic, 0, 0).records)
    header = read_batch_header(fetched)
    assert header.compression == 1 and header.records_count == 20
    assert [(r.offset, r.value) for r in decode_batch(fetched)] == [(i, b"v" * 100) for i in range(20)]


def test_recompress_leaves_matching_batches_alone():
    batch = build_batch([Record(0, 1, None, b"x")], compression=4)
    assert validate_records(batch, LogConfig(), 1, compression_type="zstd").records is batch
    rewritten = validate_records(batch, LogConfig(), 1, compression_type="uncompressed")
    assert rewritten.recompressed and read_batch_header(rewritten.records).compression == 0
