"""Connector configs every connector shares (Kafka's ConnectorConfig, SourceConnectorConfig, SinkConnectorConfig)
and the validation the REST API's `config/validate` returns (AbstractHerder.validateConnectorConfig)."""

from __future__ import annotations

from typing import Any

from moldau.connect.api.config import (
    ConfigDef,
    ConfigException,
    ConfigKey,
    ConfigValue,
    Importance,
    Range,
    Type,
    ValidString,
    non_empty_string,
    valid_regex,
)
from moldau.connect.api.connector import Connector, SinkConnector
from moldau.connect.api.errors import ConnectException
from moldau.connect.plugins import Plugins
from moldau.connect.runtime import override_policy, topic_creation
from moldau.connect.runtime.override_policy import OverridePolicy

COMMON, TRANSFORMS, PREDICATES, ERRORS, EOS = "Common", "Transforms", "Predicates", "Error Handling", "Exactly Once Support"


def _common() -> ConfigDef:
    return (ConfigDef()
            .define("name", Type.STRING, validator=non_empty_string, importance=Importance.HIGH, group=COMMON,
                    order=1, documentation="Globally unique name to use for this connector.")
            .define("connector.class", Type.STRING, importance=Importance.HIGH, group=COMMON, order=2,
                    documentation="Name or alias of the class for this connector.")
            .define("tasks.max", Type.INT, 1, validator=Range.at_least(1), importance=Importance.HIGH,
                    group=COMMON, order=3, documentation="Maximum number of tasks to use for this connector.")
            .define("tasks.max.enforce", Type.BOOLEAN, True, importance=Importance.LOW, group=COMMON, order=4)
            .define("key.converter", Type.CLASS, None, importance=Importance.LOW, group=COMMON, order=5,
                    documentation="Converter class for keys; overrides the worker's key.converter.")
            .define("value.converter", Type.CLASS, None, importance=Importance.LOW, group=COMMON, order=6)
            .define("header.converter", Type.CLASS, None, importance=Importance.LOW, group=COMMON, order=7)
            .define("config.action.reload", Type.STRING, "restart", importance=Importance.LOW, group=COMMON,
                    validator=ValidString.in_("none", "restart", case_insensitive=True), order=8)
            .define("transforms", Type.LIST, "", importance=Importance.LOW, group=TRANSFORMS,
                    documentation="Aliases for the transformations to be applied to records.")
            .define("predicates", Type.LIST, "", importance=Importance.LOW, group=PREDICATES,
                    documentation="Aliases for the predicates used by transformations.")
            .define("errors.retry.timeout", Type.LONG, 0, importance=Importance.MEDIUM, group=ERRORS, order=1,
                    documentation="Maximum ms a failed operation is retried; 0: no retries, -1: forever.")
            .define("errors.retry.delay.max.ms", Type.LONG, 60000, importance=Importance.MEDIUM, group=ERRORS,
                    order=2)
            .define("errors.tolerance", Type.STRING, "none", validator=ValidString.in_("none", "all"),
                    importance=Importance.MEDIUM, group=ERRORS, order=3,
                    documentation="none: any error fails the task; all: skip problematic records.")
            .define("errors.log.enable", Type.BOOLEAN, False, importance=Importance.MEDIUM, group=ERRORS, order=4)
            .define("errors.log.include.messages", Type.BOOLEAN, False, importance=Importance.MEDIUM,
                    group=ERRORS, order=5))


def source_config_def() -> ConfigDef:
    return (_common()
            .define("topic.creation.groups", Type.LIST, "", importance=Importance.LOW, group="Topic Creation")
            .define("exactly.once.support", Type.STRING, "requested", importance=Importance.MEDIUM, group=EOS,
                    validator=ValidString.in_("requested", "required", case_insensitive=True))
            .define("transaction.boundary", Type.STRING, "poll", importance=Importance.MEDIUM, group=EOS,
                    validator=ValidString.in_("poll", "interval", "connector", case_insensitive=True))
            .define("transaction.boundary.interval.ms", Type.LONG, None, importance=Importance.LOW, group=EOS)
            .define("offsets.storage.topic", Type.STRING, None, importance=Importance.LOW, group=EOS))


def sink_config_def() -> ConfigDef:
    return (_common()
            .define("topics", Type.LIST, "", importance=Importance.HIGH, group=COMMON, order=4,
                    documentation="List of topics to consume, separated by commas")
            .define("topics.regex", Type.STRING, "", validator=valid_regex, importance=Importance.HIGH,
                    group=COMMON, order=4, documentation="Regular expression giving topics to consume.")
            .define("errors.deadletterqueue.topic.name", Type.STRING, "", importance=Importance.MEDIUM,
                    group=ERRORS, order=6, documentation="Topic for records that failed processing.")
            .define("errors.deadletterqueue.topic.replication.factor", Type.SHORT, 3, importance=Importance.MEDIUM,
                    group=ERRORS, order=7)
            .define("errors.deadletterqueue.context.headers.enable", Type.BOOLEAN, False,
                    importance=Importance.MEDIUM, group=ERRORS, order=8,
                    documentation="Add headers with the error context to records in the DLQ."))


def is_sink(connector: Connector | type) -> bool:
    cls = connector if isinstance(connector, type) else type(connector)
    return issubclass(cls, SinkConnector)


def connector_type(connector: Connector | type) -> str:
    return "sink" if is_sink(connector) else "source"


def _plugin_defs(plugins: Plugins, config: dict[str, str], kind: str, prefix: str,
                 group: str) -> tuple[ConfigDef, dict[str, ConfigValue]]:
    """`transforms.<alias>.type` etc.: one definition per alias, plus the plugin's own config keys."""
    definition = ConfigDef()
    extra_errors: dict[str, ConfigValue] = {}
    aliases = [a.strip() for a in config.get(prefix, "").split(",") if a.strip()]
    for alias in aliases:
        type_key = f"{prefix}.{alias}.type"
        definition.define(type_key, Type.CLASS, importance=Importance.HIGH, group=f"{group}: {alias}",
                          documentation=f"Class for the '{alias}' {kind}.")
        if kind == "transformation":
            definition.define(f"{prefix}.{alias}.negate", Type.BOOLEAN, False, importance=Importance.MEDIUM,
                              group=f"{group}: {alias}")
            definition.define(f"{prefix}.{alias}.predicate", Type.STRING, None, importance=Importance.MEDIUM,
                              group=f"{group}: {alias}")
        class_name = config.get(type_key)
        if not class_name:
            continue
        try:
            plugin = plugins.new(kind, class_name)
        except ConnectException as exc:
            extra_errors[type_key] = ConfigValue(type_key, class_name, errors=[
                f"Invalid value {class_name} for configuration {type_key}: {exc}"])
            continue
        own: ConfigDef = plugin.config() if hasattr(plugin, "config") else ConfigDef()
        for key in own.keys.values():
            full = f"{prefix}.{alias}.{key.name}"
            if full not in definition.keys:
                definition.keys[full] = type(key)(full, key.type, key.default, key.validator, key.importance,
                                                  key.documentation, f"{group}: {alias}", key.order, key.width,
                                                  key.display_name, [], list(key.recommended))
    return definition, extra_errors


def validate_connector_config(plugins: Plugins, config: dict[str, str],
                              policy: OverridePolicy = override_policy.ALL) -> dict[str, Any]:
    """Kafka's ConfigInfos for a connector config: `{name, error_count, groups, configs}`, including the
    client overrides the worker's override `policy` refuses."""
    class_name = config.get("connector.class")
    if not class_name:
        raise ConnectException("Connector config " + str(config) + " contains no connector type")
    desc = plugins.find("connector", class_name)
    connector: Connector = desc.load()()
    base = sink_config_def() if is_sink(connector) else source_config_def()
    transforms_def, transform_errors = _plugin_defs(plugins, config, "transformation", "transforms", TRANSFORMS)
    predicates_def, predicate_errors = _plugin_defs(plugins, config, "predicate", "predicates", PREDICATES)
    framework = base.merge(transforms_def).merge(predicates_def)
    if not is_sink(connector):
        framework = framework.merge(topic_creation.config_def(config))
    results = framework.validate(config)
    if not is_sink(connector):
        topic_creation.validate_regexes(config, results)
    for key, value in {**transform_errors, **predicate_errors}.items():
        results[key] = value
    if is_sink(connector):
        _validate_sink_topics(config, results)
    own_def = connector.config()
    own_results = connector.validate(dict(config))
    infos = [(framework.keys[name], value) for name, value in results.items()]
    infos += [(own_def.keys[name], value) for name, value in own_results.items()
              if name in own_def.keys and name not in framework.keys]
    infos += [(_override_key(name), value) for name, value in policy.validate(config, is_sink(connector)).items()
              if name not in framework.keys]
    groups = framework.groups() + [g for g in own_def.groups() if g not in framework.groups()]
    configs = [{"definition": key.to_json(), "value": value.to_json(key.type)} for key, value in infos]
    return {"name": desc.class_name, "error_count": sum(len(v.errors) for _, v in infos),
            "groups": groups, "configs": configs}


def _override_key(name: str) -> ConfigKey:
    """A definition for a `<client>.override.<setting>` key: the client's own settings are librdkafka's."""
    return ConfigKey(name, Type.STRING, None, importance=Importance.LOW,
                     documentation="A setting of the connector's own client, over the worker's (KIP-458).")


def _validate_sink_topics(config: dict[str, str], results: dict[str, ConfigValue]) -> None:
    """SinkConnectorConfig.validate: exactly one of topics / topics.regex; the DLQ is not an input."""
    topics = [t.strip() for t in config.get("topics", "").split(",") if t.strip()]
    regex = config.get("topics.regex", "").strip()
    if topics and regex:
        message = "topics and topics.regex are mutually exclusive options, but both are set."
        results["topics"].errors.append(message)
        results["topics.regex"].errors.append(message)
    elif not topics and not regex:
        message = "Must configure one of topics or topics.regex"
        results["topics"].errors.append(message)
        results["topics.regex"].errors.append(message)
    dlq = config.get("errors.deadletterqueue.topic.name", "").strip()
    if dlq and dlq in topics:
        results["errors.deadletterqueue.topic.name"].errors.append(
            f"The DLQ topic '{dlq}' may not be included in the list of topics ('topics={','.join(topics)}') "
            "consumed by the connector")


def error_messages(infos: dict[str, Any]) -> list[str]:
    return [e for c in infos["configs"] for e in c["value"]["errors"]]


def check_connector_config(plugins: Plugins, config: dict[str, str],
                           policy: OverridePolicy = override_policy.ALL) -> dict[str, Any]:
    """Validate, and raise Kafka's BadRequest text when there are errors (AbstractHerder.maybeAddConfigErrors)."""
    infos = validate_connector_config(plugins, config, policy)
    if infos["error_count"]:
        lines = "\n".join(error_messages(infos))
        raise ConfigException("config", message=(
            f"Connector configuration is invalid and contains the following {infos['error_count']} error(s):\n"
            f"{lines}\nYou can also find the above list of errors at the endpoint "
            "`/connector-plugins/{connectorType}/config/validate`"))
    return infos
