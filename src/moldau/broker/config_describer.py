"""DescribeConfigs entries: each config's value, source, synonyms, type and documentation.

Sources and precedence are Kafka's: a topic override (DYNAMIC_TOPIC_CONFIG) wins over the broker
synonyms, which come from this broker's dynamic configs (DYNAMIC_BROKER_CONFIG), the cluster-wide
dynamic default (DYNAMIC_DEFAULT_BROKER_CONFIG), the server.properties/flags (STATIC_BROKER_CONFIG),
and finally the built-in default (DEFAULT_CONFIG).
"""

from __future__ import annotations

import enum
from collections.abc import Iterable
from dataclasses import dataclass, field

from moldau.broker.config import BROKER_CONFIGS, INT_MAX
from moldau.broker.dynamic_config import DYNAMIC_BROKER_CONFIGS, ConfigManager
from moldau.broker.topic_config import CONFIG_TYPES, TOPIC_CONFIGS, format_value
from moldau.security.config import is_sensitive


class ConfigSource(enum.IntEnum):
    UNKNOWN = 0
    DYNAMIC_TOPIC_CONFIG = 1
    DYNAMIC_BROKER_CONFIG = 2
    DYNAMIC_DEFAULT_BROKER_CONFIG = 3
    STATIC_BROKER_CONFIG = 4
    DEFAULT_CONFIG = 5


# A broker config and the lower-precedence names that set the same thing (Kafka's broker synonyms).
BROKER_SYNONYMS: dict[str, tuple[str, ...]] = {
    "log.retention.ms": ("log.retention.ms", "log.retention.minutes", "log.retention.hours"),
    "log.retention.minutes": ("log.retention.minutes", "log.retention.hours"),
    "log.roll.ms": ("log.roll.ms", "log.roll.hours"),
    "log.flush.interval.ms": ("log.flush.interval.ms", "log.flush.scheduler.interval.ms"),
}


@dataclass(slots=True)
class ConfigEntry:
    name: str
    value: str | None
    source: ConfigSource
    read_only: bool = False
    is_sensitive: bool = False
    config_type: int = 0
    documentation: str | None = None
    synonyms: list[tuple[str, str | None, ConfigSource]] = field(default_factory=list)


def _broker_config_type(name: str) -> int:
    kind = BROKER_CONFIGS[name].type
    if kind is int:
        default = BROKER_CONFIGS[name].default
        wide = name.endswith(".ms") or (isinstance(default, int) and default > INT_MAX)
        return CONFIG_TYPES["long" if wide else "int"]
    return CONFIG_TYPES.get({bool: "bool", float: "float", list: "list"}.get(kind, "str"), 2)


class ConfigDescriber:
    def __init__(self, manager: ConfigManager) -> None:
        self.manager = manager
        self.config = manager.config

    def broker_synonyms(self, names: Iterable[str]) -> list[tuple[str, str | None, ConfigSource]]:
        """Every layer that sets one of `names`, highest precedence first."""
        node, cluster = self.manager.node_configs(), self.manager.cluster_defaults()
        found: list[tuple[str, str | None, ConfigSource]] = []
        for name in names:
            if name in node:
                found.append((name, node[name], ConfigSource.DYNAMIC_BROKER_CONFIG))
            if name in cluster:
                found.append((name, cluster[name], ConfigSource.DYNAMIC_DEFAULT_BROKER_CONFIG))
            if self.config.is_set(name):
                found.append((name, self.config.originals[name], ConfigSource.STATIC_BROKER_CONFIG))
            definition = BROKER_CONFIGS.get(name)
            if definition is not None and definition.default is not None:
                found.append((name, format_value(definition.default), ConfigSource.DEFAULT_CONFIG))
        return found

    def topic_entries(self, overrides: dict[str, str], keys: list[str] | None) -> list[ConfigEntry]:
        entries = []
        for name, definition in sorted(TOPIC_CONFIGS.items()):
            if keys is not None and name not in keys:
                continue
            synonyms = self.broker_synonyms(definition.synonyms)
            value: str | None
            if name in overrides:
                synonyms.insert(0, (name, overrides[name], ConfigSource.DYNAMIC_TOPIC_CONFIG))
                value = overrides[name]
            else:
                value = format_value(definition.default_from(self.config))
            source = synonyms[0][2] if synonyms else ConfigSource.DEFAULT_CONFIG
            entries.append(ConfigEntry(name, value, source, config_type=CONFIG_TYPES[definition.kind],
                                       documentation=definition.doc, synonyms=synonyms))
        return entries

    def broker_entries(self, per_broker: bool, keys: list[str] | None) -> list[ConfigEntry]:
        """This broker's configs, or with `per_broker=False` only the cluster-wide dynamic defaults."""
        if per_broker:
            names = sorted(BROKER_CONFIGS)
        else:
            names = sorted(self.manager.cluster_defaults())
        entries = []
        for name in names:
            if keys is not None and name not in keys:
                continue
            synonyms = self.broker_synonyms(BROKER_SYNONYMS.get(name, (name,)))
            if not per_broker:
                synonyms = [s for s in synonyms if s[2] != ConfigSource.DYNAMIC_BROKER_CONFIG]
            own = [s for s in synonyms if s[0] == name]
            source = own[0][2] if own else ConfigSource.DEFAULT_CONFIG
            value = format_value(self.config[name]) if per_broker else (own[0][1] if own else None)
            sensitive = is_sensitive(name)
            if sensitive:  # Kafka's PASSWORD configs: no value, in the entry or its synonyms
                value, synonyms = None, [(n, None, s) for n, _, s in synonyms]
            entries.append(ConfigEntry(name, value, source, read_only=name not in DYNAMIC_BROKER_CONFIGS,
                                       is_sensitive=sensitive,
                                       config_type=_broker_config_type(name),
                                       documentation=BROKER_CONFIGS[name].doc, synonyms=synonyms))
        return entries
