"""Topic-level configs: Kafka's names, their broker-level defaults, validation, and the `LogConfig` they make."""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass, replace

from moldau.broker.config import LONG_MAX, BrokerConfig, ConfigError
from moldau.storage.config import LogConfig

# KIP-1030 (Kafka 4.0) raised the minimum segment size to 1 MiB.
MIN_SEGMENT_BYTES = 1024 * 1024

LEGAL_TOPIC_CHARS = re.compile(r"^[a-zA-Z0-9._-]+$")
MAX_TOPIC_NAME_LENGTH = 249


@dataclass(slots=True, frozen=True)
class TopicConfigDef:
    name: str
    kind: str  # "int", "str", "list", "bool", "float"
    log_field: str | None  # the LogConfig field it sets, if storage uses it
    at_least: float | None = None
    choices: tuple[str, ...] | None = None


TOPIC_CONFIGS: dict[str, TopicConfigDef] = {
    d.name: d
    for d in (
        TopicConfigDef("segment.bytes", "int", "segment_bytes", MIN_SEGMENT_BYTES),
        TopicConfigDef("segment.ms", "int", "segment_ms", 1),
        TopicConfigDef("segment.index.bytes", "int", "segment_index_bytes", 4),
        TopicConfigDef("index.interval.bytes", "int", "index_interval_bytes", 0),
        TopicConfigDef("flush.messages", "int", "flush_messages", 1),
        TopicConfigDef("flush.ms", "int", "flush_ms", 0),
        TopicConfigDef("retention.ms", "int", "retention_ms", -1),
        TopicConfigDef("retention.bytes", "int", "retention_bytes"),
        TopicConfigDef("max.message.bytes", "int", "max_message_bytes", 0),
        TopicConfigDef("message.timestamp.type", "str", "message_timestamp_type", None,
                       ("CreateTime", "LogAppendTime")),
        TopicConfigDef("cleanup.policy", "list", None, None, ("delete", "compact")),
        TopicConfigDef("compression.type", "str", None, None,
                       ("uncompressed", "zstd", "lz4", "snappy", "gzip", "producer")),
        TopicConfigDef("min.insync.replicas", "int", None, 1),
        TopicConfigDef("delete.retention.ms", "int", None, 0),
        TopicConfigDef("min.compaction.lag.ms", "int", None, 0),
        TopicConfigDef("max.compaction.lag.ms", "int", None, 1),
        TopicConfigDef("min.cleanable.dirty.ratio", "float", None, 0),
        TopicConfigDef("message.timestamp.before.max.ms", "int", None, 0),
        TopicConfigDef("message.timestamp.after.max.ms", "int", None, 0),
        TopicConfigDef("file.delete.delay.ms", "int", "file_delete_delay_ms", 0),
        TopicConfigDef("preallocate", "bool", "preallocate"),
        TopicConfigDef("unclean.leader.election.enable", "bool", None),
    )
}


def validate_topic_name(name: str | None) -> str | None:
    """Return why `name` is not a legal Kafka topic name, or None if it is (Kafka's `Topic.validate`)."""
    if not name:
        return "Topic name is illegal, it can't be empty"
    if name in (".", ".."):
        return "Topic name cannot be \".\" or \"..\""
    if len(name) > MAX_TOPIC_NAME_LENGTH:
        return f"Topic name is illegal, it can't be longer than {MAX_TOPIC_NAME_LENGTH} characters"
    if not LEGAL_TOPIC_CHARS.match(name):
        return (f"Topic name \"{name}\" is illegal, it contains a character other than ASCII alphanumerics,"
                " '.', '_' and '-'")
    return None


def parse_topic_config(name: str, raw: str | None) -> object:
    """Validate one topic config value; raise ConfigError naming what is wrong."""
    definition = TOPIC_CONFIGS.get(name)
    if definition is None:
        raise ConfigError(f"Unknown topic config name: {name}")
    if raw is None:
        raise ConfigError(f"Null value not supported for topic configs: {name}")
    text = raw.strip()
    value: object
    try:
        if definition.kind == "int":
            value = int(text)
        elif definition.kind == "float":
            value = float(text)
        elif definition.kind == "bool":
            if text.lower() not in ("true", "false"):
                raise ValueError("Expected value to be either true or false")
            value = text.lower() == "true"
        elif definition.kind == "list":
            value = [part.strip() for part in text.split(",") if part.strip()]
        else:
            value = text
    except ValueError as exc:
        raise ConfigError(f"Invalid value {raw} for configuration {name}: {exc}") from None
    if definition.at_least is not None and isinstance(value, (int, float)) and value < definition.at_least:
        raise ConfigError(f"Invalid value {raw} for configuration {name}: Value must be at least "
                          f"{definition.at_least:g}")
    if definition.choices is not None:
        items = value if isinstance(value, list) else [value]
        for item in items:
            if item not in definition.choices:
                raise ConfigError(f"Invalid value {raw} for configuration {name}: String must be one of: "
                                  + ", ".join(definition.choices))
    return value


def validate_topic_configs(configs: Mapping[str, str | None]) -> dict[str, str]:
    for name, raw in configs.items():
        parse_topic_config(name, raw)
    return {name: str(raw) for name, raw in configs.items()}


def broker_default_log_config(broker: BrokerConfig) -> LogConfig:
    """The LogConfig a topic without overrides gets, from the broker's `log.*` settings."""
    flush_ms = broker.log_flush_interval_ms
    return LogConfig(
        segment_bytes=broker["log.segment.bytes"],
        segment_ms=broker.log_roll_ms,
        segment_index_bytes=broker["log.index.size.max.bytes"],
        index_interval_bytes=broker["log.index.interval.bytes"],
        flush_messages=broker["log.flush.interval.messages"],
        flush_ms=flush_ms if flush_ms is not None else LONG_MAX,
        retention_ms=broker.log_retention_ms,
        retention_bytes=broker["log.retention.bytes"],
        max_message_bytes=broker["message.max.bytes"],
        message_timestamp_type=broker["log.message.timestamp.type"],
    )


def topic_log_config(defaults: LogConfig, overrides: Mapping[str, str]) -> LogConfig:
    values = {}
    for name, raw in overrides.items():
        definition = TOPIC_CONFIGS.get(name)
        if definition is not None and definition.log_field is not None:
            values[definition.log_field] = parse_topic_config(name, raw)
    return replace(defaults, **values) if values else defaults
