"""Dynamic configs: validate, persist and apply topic and broker config changes without a restart.

Topic overrides live in the topic's metadata; dynamic broker configs in the config store under ""
(the cluster-wide default) or the node id, as Kafka keeps them. The config store (cluster/config_store.py)
is the broker's local metadata file, or etcd in a cluster: a change written through any broker reaches
every broker, which applies it (`_changed`: the dynamic broker layers; topic configs arrive with the
topic, cluster_member). Applying a change updates the live `Log` configs at once; nothing restarts.
Invalid values are refused with INVALID_CONFIG before anything is stored (Kafka's
`ConfigurationControlManager`). Writes are awaited, never blocking the event loop.
"""

from __future__ import annotations

import logging
from collections import Counter
from collections.abc import Callable, Mapping
from dataclasses import replace
from typing import TYPE_CHECKING

from moldau.broker.config import BROKER_CONFIGS, BrokerConfig, ConfigError
from moldau.broker.errors import ApiError
from moldau.broker.topic_config import (
    TOPIC_CONFIG_OF_SYNONYM,
    TOPIC_CONFIGS,
    broker_default_log_config,
    format_value,
    parse_value,
    topic_log_config,
    validate_topic_configs,
)
from moldau.cluster.metadata_store import UnknownTopicError
from moldau.errors import MoldauError
from moldau.protocol.errors import ErrorCode
from moldau.security.acl import AclOperation
from moldau.security.config import listener_keystore_config, masked

if TYPE_CHECKING:
    from moldau.broker.replica_manager import ReplicaManager
    from moldau.cluster.config_store import ConfigStore

log = logging.getLogger(__name__)

TOPIC, BROKER = 2, 4  # Kafka's ConfigResource.Type ids
SET, DELETE, APPEND, SUBTRACT = 0, 1, 2, 3  # IncrementalAlterConfigs' OpType
OP_NAMES = {SET: "SET", DELETE: "DELETE", APPEND: "APPEND", SUBTRACT: "SUBTRACT"}
CLUSTER_DEFAULT = ""
# A resource's new config set computed from its current one (AlterConfigs ignores it: the set is replaced).
ConfigChange = Callable[[Mapping[str, str]], dict[str, str]]

# Broker configs that can change at run time (Kafka's DynamicBrokerConfig: DynamicLogConfig, the log
# cleaner's reconfigurable configs, DynamicThreadPool); every other broker config is read-only.
DYNAMIC_BROKER_CONFIGS = frozenset(TOPIC_CONFIG_OF_SYNONYM) | {
    "message.max.bytes", "log.cleaner.threads", "log.cleaner.backoff.ms", "log.cleaner.dedupe.buffer.size",
    "num.io.threads", "num.network.threads",
    "leader.replication.throttled.rate", "follower.replication.throttled.rate",
}


def broker_resource(name: str | None, node_id: int) -> str:
    """The store key of a BROKER resource name: "" (cluster default) or this node's id."""
    if not name:
        return CLUSTER_DEFAULT
    try:
        requested = int(name)
    except ValueError:
        raise ApiError(ErrorCode.INVALID_REQUEST, f"Broker id must be an integer, but it is: {name}") from None
    if requested != node_id:
        raise ApiError(ErrorCode.INVALID_REQUEST,
                       f"Unexpected broker id, expected {node_id} or empty string, but received {name}")
    return str(node_id)


def parse_broker_config(name: str, raw: str | None) -> object:
    """Validate a dynamic broker config value; broker synonyms of topic configs follow the topic rules."""
    if listener_keystore_config(name) is not None and raw is not None:
        return raw  # a listener's new keystore, checked by loading it (ConfigManager.keystore_hook)
    definition = BROKER_CONFIGS.get(name)
    if definition is None:
        raise ConfigError(f"Unknown broker config name: {name}")
    if name not in DYNAMIC_BROKER_CONFIGS:
        raise ConfigError(f"Cannot update these configs dynamically: {name}")
    if raw is None:
        raise ConfigError(f"Null value not supported for broker config: {name}")
    topic_def = TOPIC_CONFIG_OF_SYNONYM.get(name)
    if topic_def is not None and name not in ("log.roll.hours", "log.retention.hours", "log.retention.minutes"):
        parse_value(topic_def, name, raw)
    return definition.parse(raw)


def _is_list(resource_type: int, name: str) -> bool:
    if resource_type == TOPIC:
        definition = TOPIC_CONFIGS.get(name)
        return definition is not None and definition.kind == "list"
    broker_def = BROKER_CONFIGS.get(name)
    return broker_def is not None and broker_def.type is list


def apply_incremental(resource_type: int, current: Mapping[str, str], defaults: Mapping[str, str | None],
                      ops: list[tuple[str, int, str | None]]) -> dict[str, str]:
    """The new override set after IncrementalAlterConfigs' SET/DELETE/APPEND/SUBTRACT on `current`."""
    names = [name for name, _, _ in ops]
    duplicates = sorted({n for n in names if names.count(n) > 1})
    if duplicates:
        raise ApiError(ErrorCode.INVALID_REQUEST, f"Error due to duplicate config keys: {', '.join(duplicates)}")
    result = dict(current)
    for name, op, value in ops:
        if op == SET:
            if value is None:
                raise ApiError(ErrorCode.INVALID_REQUEST, f"Null value not supported for : {name}")
            result[name] = value
        elif op == DELETE:
            result.pop(name, None)
        elif op in (APPEND, SUBTRACT):
            if not _is_list(resource_type, name):
                raise ApiError(ErrorCode.INVALID_CONFIG,
                               f"Can't {OP_NAMES[op]} to key {name} because its type is not LIST.")
            base = result.get(name, defaults.get(name)) or ""
            parts = [p.strip() for p in base.split(",") if p.strip()]
            changes = [p.strip() for p in (value or "").split(",") if p.strip()]
            if op == APPEND:
                parts += [c for c in changes if c not in parts]
            else:
                parts = [p for p in parts if p not in changes]
            result[name] = ",".join(parts)
        else:
            raise ApiError(ErrorCode.INVALID_REQUEST, f"Unknown config operation {op} for {name}")
    return result


class ConfigManager:
    """Alters topic and broker configs; reads the layers DescribeConfigs reports."""

    def __init__(self, config: BrokerConfig, replica_manager: ReplicaManager, store: ConfigStore) -> None:
        self.config = config
        self.replica_manager = replica_manager
        self.store = store
        self.node_id = config.node_id
        # (listener.name.<l>.ssl.keystore.* values, validate_only) -> None; raises when a keystore won't load.
        self.keystore_hook: Callable[[dict[str, str], bool], None] | None = None
        store.subscribe(self._changed)

    def _changed(self, kind: str, name: str) -> None:
        """A dynamic broker config changed (here, or through another broker of the cluster): the cluster
        default and this node's own resource are this broker's layers (Kafka's DynamicBrokerConfig)."""
        if kind == "brokers" and name in (CLUSTER_DEFAULT, str(self.node_id)):
            self._apply_broker_layers()

    def load(self) -> None:
        """Apply the persisted dynamic broker configs (call before the logs are opened)."""
        self._apply_broker_layers()

    # -- layers --------------------------------------------------------------------------------------------

    def cluster_defaults(self) -> dict[str, str]:
        return self.store.broker_configs().get(CLUSTER_DEFAULT, {})

    def node_configs(self) -> dict[str, str]:
        return self.store.broker_configs().get(str(self.node_id), {})

    def topic_defaults(self) -> dict[str, str | None]:
        """Each topic config's broker-level effective value, as a string (for APPEND/SUBTRACT)."""
        return {name: format_value(d.default_from(self.config)) for name, d in TOPIC_CONFIGS.items()}

    def broker_values(self) -> dict[str, str | None]:
        return {name: format_value(self.config[name]) for name in BROKER_CONFIGS}

    # -- topics --------------------------------------------------------------------------------------------

    async def alter_topic(self, name: str, new_configs: ConfigChange, validate_only: bool) -> None:
        """Replace the topic's overrides with `new_configs(current overrides)`: the whole set for AlterConfigs,
        the current set merged with the operations for IncrementalAlterConfigs. The store calls it with the
        stored set inside its compare-and-set, so concurrent alters through other brokers are merged, not lost."""
        topic = self.replica_manager.topics.get(name)
        if topic is None:
            raise ApiError(ErrorCode.UNKNOWN_TOPIC_OR_PARTITION,
                           f"The topic '{name}' does not exist.")

        def checked(current: Mapping[str, str]) -> dict[str, str]:
            try:
                return validate_topic_configs(new_configs(current))
            except ConfigError as exc:
                raise ApiError(ErrorCode.INVALID_CONFIG, str(exc)) from None

        if validate_only:
            checked(topic.metadata.configs)
            return
        try:
            metadata = await self.store.update_topic_configs(topic.metadata, checked)
        except UnknownTopicError:
            raise ApiError(ErrorCode.UNKNOWN_TOPIC_OR_PARTITION, f"The topic '{name}' does not exist.") from None
        # The stored topic (in a cluster, its partition count may have grown meanwhile); the watch brings the
        # same change again, harmlessly (cluster_member._topic_configs_changed).
        topic.metadata = replace(topic.metadata, configs=metadata.configs)
        log_config = topic_log_config(self.replica_manager.default_log_config, metadata.configs)
        for partition in topic.partitions:
            if partition.log is not None:  # None: a partition of the cluster this broker hosts no replica of
                partition.log.update_config(log_config)
        log.info("altered configs of topic %s: %s", name, metadata.configs)

    # -- brokers -------------------------------------------------------------------------------------------

    async def alter_broker(self, resource_name: str | None, new_configs: ConfigChange, validate_only: bool) -> None:
        """The broker resource's configs become `new_configs(current configs)`, merged in the store as topics."""
        resource = broker_resource(resource_name, self.node_id)

        def checked(current: Mapping[str, str]) -> dict[str, str]:
            configs = new_configs(current)
            try:
                for key, raw in configs.items():
                    parse_broker_config(key, raw)
            except ConfigError as exc:
                raise ApiError(ErrorCode.INVALID_CONFIG, str(exc)) from None
            return configs

        configs = checked(self.store.broker_configs().get(resource, {}))
        keystores = {k: v for k, v in configs.items() if listener_keystore_config(k) is not None}
        if keystores and self.keystore_hook is not None:
            try:
                self.keystore_hook(keystores, True)  # load the new keystores before anything is stored
            except MoldauError as exc:
                raise ApiError(ErrorCode.INVALID_CONFIG, str(exc)) from None
        if validate_only:
            return
        configs = await self.store.update_broker_configs(resource, checked)  # -> _changed on every broker
        if keystores and self.keystore_hook is not None:
            self.keystore_hook(keystores, False)
        log.info("altered dynamic broker configs of %s: %s", resource or "<cluster default>", masked(configs))

    def _apply_broker_layers(self) -> None:
        layers = {**self.cluster_defaults(), **self.node_configs()}
        try:
            self.config.set_dynamic(layers)
        except ConfigError as exc:  # a store written by another version; keep the static values
            log.error("ignoring invalid dynamic broker configs %s: %s", layers, exc)
            self.config.set_dynamic({})
        defaults = broker_default_log_config(self.config)
        manager = self.replica_manager
        manager.default_log_config = defaults
        manager.log_manager.default_config = defaults
        for topic in manager.topics.values():
            log_config = topic_log_config(defaults, topic.metadata.configs)
            for partition in topic.partitions:
                if partition.log is not None:
                    partition.log.update_config(log_config)


def duplicate_resources(resources) -> set[tuple[int, str]]:
    counts = Counter((r.resource_type, r.resource_name) for r in resources)
    return {key for key, count in counts.items() if count > 1}


def _replacing(configs: Mapping[str, str]) -> ConfigChange:
    return lambda _current: dict(configs)


async def alter(manager, resource_type: int, resource_name: str, change: ConfigChange,
                validate_only: bool) -> None:
    if resource_type == TOPIC:
        await manager.alter_topic(resource_name, change, validate_only)
    elif resource_type == BROKER:
        await manager.alter_broker(resource_name, change, validate_only)
    else:
        raise ApiError(ErrorCode.INVALID_REQUEST, f"Unsupported resource type: {resource_type}")


async def alter_resources(manager, resources, new_configs, validate_only: bool, result_type, what: str,
                          session=None) -> list:
    """AlterConfigs and IncrementalAlterConfigs alike: each resource gets `new_configs(resource)` (a
    ConfigChange, or the whole new set) or an error.

    With a `session`, each resource needs ALTER_CONFIGS on its topic (or on the cluster for brokers).
    """
    duplicates = duplicate_resources(resources)
    results = []
    for resource in resources:
        result = result_type(error_code=ErrorCode.NONE, error_message=None,
                             resource_type=resource.resource_type, resource_name=resource.resource_name)
        try:
            if (resource.resource_type, resource.resource_name) in duplicates:
                raise ApiError(ErrorCode.INVALID_REQUEST, "Duplicate resource in the request")
            refused = session is not None and session.config_resource_error(
                AclOperation.ALTER_CONFIGS, resource.resource_type, resource.resource_name)
            if refused:
                raise ApiError(refused)
            change = new_configs(resource)
            if not callable(change):
                change = _replacing(change)
            await alter(manager, resource.resource_type, resource.resource_name, change, validate_only)
        except ApiError as exc:
            result.error_code, result.error_message = exc.error_code, exc.message
            log.info("%s of %d:%r failed: %s", what, resource.resource_type, resource.resource_name, exc)
        results.append(result)
    return results
