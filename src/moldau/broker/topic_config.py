"""Topic-level configs: Kafka's names, their broker-level synonyms, validation, and the `LogConfig` they make.

Each topic config has broker-level synonyms (Kafka's `ServerTopicConfigSynonyms`): `retention.ms` falls back
to `log.retention.ms`, then `log.retention.minutes`, then `log.retention.hours`. A topic without an override
gets the broker's effective value, which DescribeConfigs reports with the synonym's source.
"""

from __future__ import annotations

import dataclasses
import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass, replace

from moldau.broker.config import LONG_MAX, BrokerConfig, ConfigError
from moldau.storage.config import LogConfig

# KIP-1030 (Kafka 4.0) raised the minimum segment size to 1 MiB.
MIN_SEGMENT_BYTES = 1024 * 1024

LEGAL_TOPIC_CHARS = re.compile(r"^[a-zA-Z0-9._-]+$")
MAX_TOPIC_NAME_LENGTH = 249

COMPRESSION_TYPES = ("uncompressed", "zstd", "lz4", "snappy", "gzip", "producer")
_LOG_CONFIG_FIELDS = frozenset(f.name for f in dataclasses.fields(LogConfig))


@dataclass(slots=True, frozen=True)
class TopicConfigDef:
    name: str
    kind: str  # "int", "long", "str", "list", "bool", "float"
    log_field: str | None  # the LogConfig field it sets, if storage uses it
    at_least: float | None = None
    choices: tuple[str, ...] | None = None
    synonyms: tuple[str, ...] = ()  # broker configs, highest precedence first
    doc: str = ""
    at_most: float | None = None
    # The broker-level effective value when it is not simply `broker[synonyms[0]]`.
    broker_value: Callable[[BrokerConfig], object] | None = None

    def default_from(self, broker: BrokerConfig) -> object:
        if self.broker_value is not None:
            return self.broker_value(broker)
        return broker[self.synonyms[0]] if self.synonyms else None


def _def(name: str, kind: str, log_field: str | None, at_least: float | None = None,
         choices: tuple[str, ...] | None = None, *, synonyms: tuple[str, ...], doc: str,
         at_most: float | None = None, broker_value: Callable[[BrokerConfig], object] | None = None
         ) -> TopicConfigDef:
    return TopicConfigDef(name, kind, log_field, at_least, choices, synonyms, doc, at_most, broker_value)


TOPIC_CONFIGS: dict[str, TopicConfigDef] = {
    d.name: d
    for d in (
        _def("segment.bytes", "int", "segment_bytes", MIN_SEGMENT_BYTES, synonyms=("log.segment.bytes",),
             doc="The segment file size of the log; retention and compaction work a segment at a time."),
        _def("segment.ms", "long", "segment_ms", 1, synonyms=("log.roll.ms", "log.roll.hours"),
             doc="Roll a new segment after this many ms even if the segment is not full.",
             broker_value=lambda b: b.log_roll_ms),
        _def("segment.index.bytes", "int", "segment_index_bytes", 4, synonyms=("log.index.size.max.bytes",),
             doc="The size of the index that maps offsets to file positions."),
        _def("index.interval.bytes", "int", "index_interval_bytes", 0, synonyms=("log.index.interval.bytes",),
             doc="How often an index entry is added to the offset index."),
        _def("flush.messages", "long", "flush_messages", 1, synonyms=("log.flush.interval.messages",),
             doc="fsync the log after this many messages."),
        _def("flush.ms", "long", "flush_ms", 0,
             synonyms=("log.flush.interval.ms", "log.flush.scheduler.interval.ms"),
             doc="fsync the log after this many ms.", broker_value=lambda b: b.log_flush_interval_ms),
        _def("retention.ms", "long", "retention_ms", -1,
             synonyms=("log.retention.ms", "log.retention.minutes", "log.retention.hours"),
             doc="Delete old segments after this many ms (cleanup.policy=delete); -1 means no time limit.",
             broker_value=lambda b: b.log_retention_ms),
        _def("retention.bytes", "long", "retention_bytes", synonyms=("log.retention.bytes",),
             doc="Delete old segments when a partition grows beyond this size; -1 means no size limit."),
        _def("max.message.bytes", "int", "max_message_bytes", 0, synonyms=("message.max.bytes",),
             doc="The largest record batch size allowed."),
        _def("message.timestamp.type", "str", "message_timestamp_type", None, ("CreateTime", "LogAppendTime"),
             synonyms=("log.message.timestamp.type",), doc="CreateTime or LogAppendTime."),
        _def("message.timestamp.before.max.ms", "long", "message_timestamp_before_max_ms", 0,
             synonyms=("log.message.timestamp.before.max.ms",),
             doc="How far a CreateTime timestamp may lie in the past (KIP-937)."),
        _def("message.timestamp.after.max.ms", "long", "message_timestamp_after_max_ms", 0,
             synonyms=("log.message.timestamp.after.max.ms",),
             doc="How far a CreateTime timestamp may lie in the future (KIP-937)."),
        _def("cleanup.policy", "list", "cleanup_policy", None, ("delete", "compact"),
             synonyms=("log.cleanup.policy",), doc="delete, compact, or both (comma-separated)."),
        _def("compression.type", "str", None, None, COMPRESSION_TYPES, synonyms=("compression.type",),
             doc="Final compression of the topic's data; producer keeps the producer's codec."),
        _def("min.insync.replicas", "int", None, 1, synonyms=("min.insync.replicas",),
             doc="Replicas that must acknowledge a write with acks=all."),
        _def("delete.retention.ms", "long", "delete_retention_ms", 0,
             synonyms=("log.cleaner.delete.retention.ms",),
             doc="How long delete tombstones are kept in compacted topics."),
        _def("min.compaction.lag.ms", "long", "min_compaction_lag_ms", 0,
             synonyms=("log.cleaner.min.compaction.lag.ms",),
             doc="The minimum time a message stays uncompacted."),
        _def("max.compaction.lag.ms", "long", "max_compaction_lag_ms", 1,
             synonyms=("log.cleaner.max.compaction.lag.ms",),
             doc="The maximum time a message stays ineligible for compaction."),
        _def("min.cleanable.dirty.ratio", "float", "min_cleanable_dirty_ratio", 0,
             synonyms=("log.cleaner.min.cleanable.ratio",), at_most=1,
             doc="The dirty fraction of the log that makes it eligible for cleaning."),
        _def("file.delete.delay.ms", "long", "file_delete_delay_ms", 0, synonyms=("log.segment.delete.delay.ms",),
             doc="How long a deleted segment's files stay on disk (renamed *.deleted)."),
        _def("preallocate", "bool", "preallocate", synonyms=("log.preallocate",),
             doc="Accepted for compatibility; segments are never preallocated."),
        _def("unclean.leader.election.enable", "bool", None, synonyms=("unclean.leader.election.enable",),
             doc="Whether a replica outside the ISR may become leader."),
        # KIP-73: which replicas of the topic the brokers' replication.throttled.rate applies to:
        # "partition:broker,..." or "*" (kafka-reassign-partitions sets them for the moving replicas).
        _def("leader.replication.throttled.replicas", "list", None, synonyms=(), broker_value=lambda b: [],
             doc="Replicas (partition:broker or *) whose leader-side replication is throttled."),
        _def("follower.replication.throttled.replicas", "list", None, synonyms=(), broker_value=lambda b: [],
             doc="Replicas (partition:broker or *) whose follower-side replication is throttled."),
    )
}

# Kafka's ConfigType (DescribeConfigs v3+).
CONFIG_TYPES = {"bool": 1, "str": 2, "int": 3, "long": 5, "float": 6, "list": 7}

# The topic config each broker synonym stands for: lets broker-level values reuse the topic validation.
TOPIC_CONFIG_OF_SYNONYM: dict[str, TopicConfigDef] = {
    synonym: d for d in TOPIC_CONFIGS.values() for synonym in d.synonyms
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


def _number(bound: float) -> str:
    return str(int(bound)) if float(bound).is_integer() else str(bound)


def parse_value(definition: TopicConfigDef, name: str, raw: str) -> object:
    """Parse and range-check `raw` by `definition`'s rules; `name` is what the error message calls it."""
    text = raw.strip()
    value: object
    try:
        if definition.kind in ("int", "long"):
            # Kafka's ConfigDef.parseType words a non-number and an out-of-range number alike.
            not_a_number = f"Not a number of type {definition.kind.upper()}"
            try:
                value = int(text)
            except ValueError:
                raise ValueError(not_a_number) from None
            if definition.kind == "int" and not -(2**31) <= value < 2**31:
                raise ValueError(not_a_number)
            if not -(2**63) <= value < 2**63:
                raise ValueError(not_a_number)
        elif definition.kind == "float":
            try:
                value = float(text)
            except ValueError:
                raise ValueError("Not a number of type DOUBLE") from None
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
    if isinstance(value, (int, float)) and not isinstance(value, bool):
        if definition.at_least is not None and value < definition.at_least:
            raise ConfigError(f"Invalid value {raw} for configuration {name}: Value must be at least "
                              f"{_number(definition.at_least)}")
        if definition.at_most is not None and value > definition.at_most:
            raise ConfigError(f"Invalid value {raw} for configuration {name}: Value must be no more than "
                              f"{_number(definition.at_most)}")
    if definition.choices is not None:
        items = value if isinstance(value, list) else [value]
        for item in items:
            if item not in definition.choices:
                raise ConfigError(f"Invalid value {raw} for configuration {name}: String must be one of: "
                                  + ", ".join(definition.choices))
    return value


def parse_topic_config(name: str, raw: str | None) -> object:
    """Validate one topic config value; raise ConfigError naming what is wrong."""
    definition = TOPIC_CONFIGS.get(name)
    if definition is None:
        raise ConfigError(f"Unknown topic config name: {name}")
    if raw is None:
        raise ConfigError(f"Null value not supported for topic configs: {name}")
    return parse_value(definition, name, raw)


def validate_topic_configs(configs: Mapping[str, str | None]) -> dict[str, str]:
    """Check every value and the rules between them (Kafka's `LogConfig.validate`); return them as strings."""
    parsed = {name: parse_topic_config(name, raw) for name, raw in configs.items()}
    min_lag, max_lag = parsed.get("min.compaction.lag.ms"), parsed.get("max.compaction.lag.ms")
    if isinstance(min_lag, int) and isinstance(max_lag, int) and min_lag > max_lag:
        raise ConfigError(f"conflict topic config setting min.compaction.lag.ms ({min_lag}) > "
                          f"max.compaction.lag.ms ({max_lag})")
    return {name: str(raw).strip() for name, raw in configs.items()}


def format_value(value: object) -> str | None:
    """A config value as DescribeConfigs shows it (Kafka's `ConfigDef.convertToString`)."""
    if value is None:
        return None
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, (list, tuple)):
        return ",".join(str(v) for v in value)
    return str(value)


def broker_default_log_config(broker: BrokerConfig) -> LogConfig:
    """The LogConfig a topic without overrides gets, from the broker's effective `log.*` settings."""
    values: dict[str, object] = {}
    for definition in TOPIC_CONFIGS.values():
        field = definition.log_field
        if field is None or field not in _LOG_CONFIG_FIELDS:
            continue
        value = definition.default_from(broker)
        if value is None:
            continue
        values[field] = format_value(value) if definition.kind == "list" else value
    if values.get("flush_ms") is None:
        values["flush_ms"] = LONG_MAX
    return LogConfig(**values)  # type: ignore[arg-type]


def topic_log_config(defaults: LogConfig, overrides: Mapping[str, str]) -> LogConfig:
    values: dict[str, object] = {}
    for name, raw in overrides.items():
        definition = TOPIC_CONFIGS.get(name)
        if definition is not None and definition.log_field in _LOG_CONFIG_FIELDS:
            value = parse_topic_config(name, raw)
            values[definition.log_field] = format_value(value) if definition.kind == "list" else value
    return replace(defaults, **values) if values else defaults  # type: ignore[arg-type]
