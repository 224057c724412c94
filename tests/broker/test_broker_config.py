"""Broker configuration: Kafka's names, file < environment < overrides, and invalid values refused."""

from __future__ import annotations

import logging
import subprocess
import sys
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


def test_unknown_config_is_warned_with_the_nearest_known_name(caplog):
    with caplog.at_level(logging.WARNING, logger="moldau.broker.config"):
        config = load_config(None, {"log.retention.hour": "1", "frobnicate": "x"}, environ={})
    assert config.log_retention_ms == 168 * 3_600_000  # ignored, as Kafka does, but not silently
    messages = [r.getMessage() for r in caplog.records if r.levelno == logging.WARNING]
    assert "unknown broker config 'log.retention.hour' is ignored; did you mean 'log.retention.hours'?" in messages
    assert "unknown broker config 'frobnicate' is ignored" in messages


def test_a_toml_table_with_no_known_config_is_an_error(tmp_path):
    path = tmp_path / "moldau.toml"
    path.write_text('[server]\nport = 9092\n')
    with pytest.raises(ConfigError, match=r"table \[server\] holds no known broker config"):
        load_config(path, environ={})
    path.write_text('log.retention.hours = 1\n[log.cleaner]\nthreads = 2\n')  # dotted keys and tables are fine
    config = load_config(path, environ={})
    assert config.log_retention_ms == 3_600_000 and config["log.cleaner.threads"] == 2


@pytest.mark.parametrize("args,expected", [
    (["-o", "num.partitions=abc"], "error: Invalid value abc for configuration num.partitions: Not a number"),
    (["-o", "log.cleaner.min.cleanable.ratio=half"], "Not a number of type DOUBLE"),
    (["-o", "listeners=PLAINTEXT://localhost:99999"], "port 99999 is not between 0 and 65535"),
    (["-o", "listeners=SSL://localhost:9093"], "inter.broker.listener.name must be a listener name"),
    (["-c", "{toml_table}"], "table [server] holds no known broker config"),
    (["-c", "{toml_syntax}"], "invalid TOML"),
])
def test_bad_configs_stop_the_server_with_one_line(tmp_path, args, expected):
    (tmp_path / "table.toml").write_text("[server]\nport = 1\n")
    (tmp_path / "syntax.toml").write_text("num.partitions = = 3\n")
    args = [a.format(toml_table=tmp_path / "table.toml", toml_syntax=tmp_path / "syntax.toml") for a in args]
    if not any(a.startswith("listeners=") for a in args):  # if it did start, not on a port in use
        args += ["-o", "listeners=PLAINTEXT://127.0.0.1:0"]
    done = subprocess.run([sys.executable, "-m", "moldau.cli.main", "server", *args,
                           "-o", f"log.dirs={tmp_path / 'data'}"], check=False, capture_output=True, text=True,
                          timeout=60)
    assert done.returncode != 0
    lines = done.stderr.strip().splitlines()
    assert len(lines) == 1 and expected in lines[0], done.stderr
    assert "Traceback" not in done.stderr and "invalid literal" not in done.stderr


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
