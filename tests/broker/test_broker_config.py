"""Broker configuration: Kafka's names, file < environment < overrides, and invalid values refused."""

from __future__ import annotations

from pathlib import Path

import pytest

from moldau.broker.config import ConfigError, load_config, parse_properties


def test_properties_syntax():
    text = "# comment\n! also a comment\nlog.dirs = /a,/b\nnum.partitions: 4\nlisteners=PLAINTEXT://h:1\\\n234\n"
    assert parse_properties(text) == {"log.dirs": "/a,/b", "num.partitions": "4",
                                      "listeners": "PLAINTEXT://h:1234"}


def test_precedence_file_then_environment_then_overrides(tmp_path):
    path = tmp_path / "server.properties"
    path.write_text("num.partitions=2\nlog.dirs=/from-file\nauto.create.topics.enable=false\n")
    config = load_config(path, {"num.partitions": "8"},
                         environ={"MOLDAU_NUM_PARTITIONS": "5", "MOLDAU_LOG_DIRS": "/from-env"})
    assert config["num.partitions"] == 8
    assert [str(d) for d in config.log_dirs] == ["/from-env"]
    assert config["auto.create.topics.enable"] is False


def test_toml_file(tmp_path):
    path = tmp_path / "moldau.toml"
    path.write_text('[log]\ndirs = "/data"\n[num]\npartitions = 3\n')
    config = load_config(path, environ={})
    assert config["num.partitions"] == 3 and [str(d) for d in config.log_dirs] == ["/data"]


@pytest.mark.parametrize("key,value", [
    ("num.partitions", "zero"),
    ("num.partitions", "0"),
    ("log.segment.bytes", "1000"),  # KIP-1030: at least 1 MiB
    ("auto.create.topics.enable", "maybe"),
    ("log.message.timestamp.type", "WallClock"),
    ("listeners", "localhost:9092"),
])
def test_invalid_values_are_refused(key, value):
    with pytest.raises(ConfigError) as info:
        load_config(None, {key: value}, environ={})
    assert key in str(info.value) or "listener" in str(info.value)


def test_flush_intervals_follow_kafka():
    from moldau.broker.log_flusher import DEFAULT_FLUSH_CHECK_MS, LogFlusher
    from moldau.storage.config import LogConfig
    from moldau.storage.log_manager import LogManager

    default = load_config(None, {}, environ={})
    assert default["log.flush.offset.checkpoint.interval.ms"] == 60000
    assert default["log.flush.start.offset.checkpoint.interval.ms"] == 60000
    assert default.log_flush_interval_ms == 2**63 - 1
    # Kafka's KafkaConfig.logFlushIntervalMs: unset, log.flush.interval.ms is the scheduler interval.
    tuned = load_config(None, {"log.flush.scheduler.interval.ms": "250"}, environ={})
    assert tuned.log_flush_interval_ms == 250
    manager = LogManager([Path("/nonexistent")], LogConfig())
    assert LogFlusher(default, manager).flush_check_interval_ms() == DEFAULT_FLUSH_CHECK_MS
    assert LogFlusher(tuned, manager).flush_check_interval_ms() == 250
