"""Topic creation by source connectors (KIP-158; Kafka's TopicCreationConfig, TopicCreationGroup, TopicCreation).

With `topic.creation.enable=true` on the worker (the default) and any `topic.creation.*` key in a source
connector's config, the worker creates each topic the connector writes to, before its first record, when the
topic does not exist yet. The topic's settings come from the first group in `topic.creation.groups` whose
`include` regexes match the topic and whose `exclude` regexes do not (full matches, as Java's `matches()`), or
else from the `default` group (which matches every topic). `replication.factor` and `partitions` are required
for `default` (-1: the broker's default) and inherited from it by other groups; any other key under
`topic.creation.<group>.` is a topic config (`cleanup.policy`, `retention.ms`, ...).

    topic.creation.default.replication.factor=1
    topic.creation.default.partitions=3
    topic.creation.groups=compacted
    topic.creation.compacted.include=status-.*
    topic.creation.compacted.cleanup.policy=compact
"""

from __future__ import annotations

import logging
import re
from dataclasses import dataclass, field
from typing import Any

from moldau.connect.api.config import ConfigDef, ConfigException, ConfigValue, Importance, Type, valid_regex
from moldau.connect.api.errors import ConnectException

log = logging.getLogger(__name__)

PREFIX = "topic.creation."
DEFAULT_GROUP = "default"
GROUP = "Topic Creation"
_STRUCTURAL = ("include", "exclude", "replication.factor", "partitions")


def uses_topic_creation(config: dict[str, str]) -> bool:
    """SourceConnectorConfig.usesTopicCreation: any key under `topic.creation.`."""
    return any(key.startswith(PREFIX) for key in config)


def _groups(config: dict[str, str]) -> list[str]:
    names = [g.strip() for g in str(config.get(PREFIX + "groups", "") or "").split(",") if g.strip()]
    if DEFAULT_GROUP in names:
        log.warning("'%s' topic creation group always exists and does not need to be listed explicitly",
                    DEFAULT_GROUP)
    return list(dict.fromkeys(n for n in names if n != DEFAULT_GROUP))


def _replication_factor(name: str, value: Any) -> None:
    """TopicCreationConfig.validateReplicationFactor: -1 (the broker's default) or at least 1."""
    if value is not None and int(value) != -1 and int(value) < 1:
        raise ConfigException(name, value, "Replication factor must be positive and not larger than the number "
                                           "of brokers in the Kafka cluster, or -1 to use the broker's default")


def _partitions(name: str, value: Any) -> None:
    """TopicCreationConfig.validatePartitions: -1 (the broker's default) or at least 1."""
    if value is not None and int(value) != -1 and int(value) < 1:
        raise ConfigException(name, value, "Number of partitions must be positive, or -1 to use the broker's "
                                           "default")


def config_def(config: dict[str, str]) -> ConfigDef:
    """The `topic.creation.*` keys this config declares (SourceConnectorConfig.enrich): required for `default`,
    defaulting to `default`'s values for the other groups."""
    definition = ConfigDef()
    if not uses_topic_creation(config):
        return definition
    prefix = f"{PREFIX}{DEFAULT_GROUP}."
    definition.define(prefix + "replication.factor", Type.SHORT, validator=_replication_factor,
                      importance=Importance.LOW, group=GROUP,
                      documentation="Replication factor for new topics (-1: the broker's default).")
    definition.define(prefix + "partitions", Type.INT, validator=_partitions, importance=Importance.LOW,
                      group=GROUP, documentation="Partitions of new topics (-1: the broker's default).")
    default_rf, default_partitions = config.get(prefix + "replication.factor"), config.get(prefix + "partitions")
    for group in _groups(config):
        prefix = f"{PREFIX}{group}."
        section = f"{GROUP}: {group}"
        definition.define(prefix + "include", Type.LIST, "", importance=Importance.LOW, group=section,
                          documentation="Regexes of topics this group applies to.")
        definition.define(prefix + "exclude", Type.LIST, "", importance=Importance.LOW, group=section,
                          documentation="Regexes of topics this group does not apply to.")
        definition.define(prefix + "replication.factor", Type.SHORT, default_rf, validator=_replication_factor,
                          importance=Importance.LOW, group=section)
        definition.define(prefix + "partitions", Type.INT, default_partitions, validator=_partitions,
                          importance=Importance.LOW, group=section)
    return definition


def validate_regexes(config: dict[str, str], results: dict[str, ConfigValue]) -> None:
    for group in _groups(config):
        for kind in ("include", "exclude"):
            key = f"{PREFIX}{group}.{kind}"
            for pattern in [p.strip() for p in config.get(key, "").split(",") if p.strip()]:
                try:
                    valid_regex(key, pattern)
                except Exception as exc:  # noqa: BLE001 - reported as a validation error
                    if key in results:
                        results[key].errors.append(str(exc))


@dataclass(slots=True)
class TopicCreationGroup:
    name: str
    replication_factor: int
    partitions: int
    include: list[re.Pattern[str]] = field(default_factory=list)
    exclude: list[re.Pattern[str]] = field(default_factory=list)
    configs: dict[str, str] = field(default_factory=dict)

    def matches(self, topic: str) -> bool:
        return (any(p.fullmatch(topic) for p in self.include)
                and not any(p.fullmatch(topic) for p in self.exclude))


def _patterns(value: str) -> list[re.Pattern[str]]:
    return [re.compile(p.strip()) for p in value.split(",") if p.strip()]


def _group_configs(config: dict[str, str], group: str) -> dict[str, str]:
    prefix = f"{PREFIX}{group}."
    return {key[len(prefix):]: str(value) for key, value in config.items()
            if key.startswith(prefix) and key[len(prefix):] not in _STRUCTURAL}


class TopicCreation:
    """The groups of one source connector, in declared order, then `default`."""

    def __init__(self, groups: list[TopicCreationGroup], default: TopicCreationGroup) -> None:
        self.groups, self.default = groups, default

    @classmethod
    def from_config(cls, worker_enabled: bool, config: dict[str, str]) -> TopicCreation | None:
        if not uses_topic_creation(config):
            return None
        if not worker_enabled:
            log.warning("Connector %s sets topic.creation.* but the worker has topic.creation.enable=false: "
                        "topics are not created", config.get("name"))
            return None
        prefix = f"{PREFIX}{DEFAULT_GROUP}."
        try:
            rf, partitions = int(config[prefix + "replication.factor"]), int(config[prefix + "partitions"])
        except (KeyError, ValueError):
            raise ConnectException(f"Topic creation needs {prefix}replication.factor and {prefix}partitions") \
                from None
        default = TopicCreationGroup(DEFAULT_GROUP, rf, partitions, [re.compile(".*")], [],
                                     _group_configs(config, DEFAULT_GROUP))
        groups = [TopicCreationGroup(
            name, int(config.get(f"{PREFIX}{name}.replication.factor", rf)),
            int(config.get(f"{PREFIX}{name}.partitions", partitions)),
            _patterns(config.get(f"{PREFIX}{name}.include", "")), _patterns(config.get(f"{PREFIX}{name}.exclude", "")),
            _group_configs(config, name)) for name in _groups(config)]
        return cls(groups, default)

    def group_for(self, topic: str) -> TopicCreationGroup:
        """TopicCreation.findFirstGroup: the first declared group that matches, else `default`."""
        return next((g for g in self.groups if g.matches(topic)), self.default)


class TopicCreator:
    """Per source task (WorkerSourceTask.maybeCreateTopic): look the topic up once, create it when missing."""

    def __init__(self, creation: TopicCreation, admin_config: dict[str, Any], timeout_s: float = 30.0) -> None:
        self.creation, self.admin_config, self.timeout_s = creation, admin_config, timeout_s
        self.known: set[str] = set()  # topics seen or created: no further look-ups (Kafka's topicCache)
        self._admin: Any = None

    def maybe_create(self, topic: str) -> None:
        if topic in self.known:
            return
        from confluent_kafka import KafkaError, KafkaException
        from confluent_kafka.admin import AdminClient, NewTopic

        if self._admin is None:
            self._admin = AdminClient(self.admin_config)
        if topic in self._admin.list_topics(timeout=self.timeout_s).topics:
            self.known.add(topic)
            return
        group = self.creation.group_for(topic)
        new = NewTopic(topic, num_partitions=group.partitions, replication_factor=group.replication_factor,
                       config=group.configs)
        try:
            self._admin.create_topics([new], request_timeout=self.timeout_s)[topic].result(self.timeout_s)
            log.info("Created topic %s (group %s: partitions=%d, replication.factor=%d, configs=%s)", topic,
                     group.name, group.partitions, group.replication_factor, group.configs)
        except KafkaException as exc:
            if exc.args[0].code() != KafkaError.TOPIC_ALREADY_EXISTS:  # another task won the race: fine
                raise ConnectException(f"Error while creating topic {topic!r}: {exc.args[0].str()}") from exc
        self.known.add(topic)
