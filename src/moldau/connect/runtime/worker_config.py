"""Worker configs with Kafka's names and defaults (WorkerConfig, StandaloneConfig, DistributedConfig)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from moldau.connect.api.config import AbstractConfig, ConfigDef, Importance, Range, Type, ValidString
from moldau.connect.runtime.override_policy import OverridePolicy
from moldau.security.sasl.jaas import parse_jaas_options

JSON_CONVERTER = "org.apache.kafka.connect.json.JsonConverter"


def worker_config_def() -> ConfigDef:
    return (ConfigDef()
            .define("bootstrap.servers", Type.LIST, "localhost:9092", importance=Importance.HIGH)
            .define("group.id", Type.STRING, None, importance=Importance.HIGH,
                    documentation="The Connect cluster this worker belongs to (distributed mode).")
            # Kafka requires both converters; JSON is what its sample worker configs use.
            .define("key.converter", Type.CLASS, JSON_CONVERTER, importance=Importance.HIGH)
            .define("value.converter", Type.CLASS, JSON_CONVERTER, importance=Importance.HIGH)
            .define("header.converter", Type.CLASS, "org.apache.kafka.connect.storage.SimpleHeaderConverter",
                    importance=Importance.LOW)
            .define("offset.flush.interval.ms", Type.LONG, 60000, validator=Range.at_least(1),
                    importance=Importance.LOW)
            .define("offset.flush.timeout.ms", Type.LONG, 5000, importance=Importance.LOW)
            .define("task.shutdown.graceful.timeout.ms", Type.LONG, 5000, importance=Importance.LOW)
            .define("listeners", Type.LIST, "http://:8083", importance=Importance.LOW)
            .define("rest.advertised.host.name", Type.STRING, None, importance=Importance.LOW)
            .define("rest.advertised.port", Type.INT, None, importance=Importance.LOW)
            .define("rest.advertised.listener", Type.STRING, None, importance=Importance.LOW)
            .define("offset.storage.file.filename", Type.STRING, None, importance=Importance.HIGH)
            .define("config.storage.topic", Type.STRING, None, importance=Importance.HIGH)
            .define("offset.storage.topic", Type.STRING, None, importance=Importance.HIGH)
            .define("status.storage.topic", Type.STRING, None, importance=Importance.HIGH)
            .define("config.storage.replication.factor", Type.SHORT, 3, importance=Importance.LOW)
            .define("offset.storage.replication.factor", Type.SHORT, 3, importance=Importance.LOW)
            .define("status.storage.replication.factor", Type.SHORT, 3, importance=Importance.LOW)
            .define("offset.storage.partitions", Type.INT, 25, importance=Importance.LOW)
            .define("status.storage.partitions", Type.INT, 5, importance=Importance.LOW)
            .define("session.timeout.ms", Type.INT, 10000, importance=Importance.HIGH)
            .define("heartbeat.interval.ms", Type.INT, 3000, importance=Importance.HIGH)
            .define("rebalance.timeout.ms", Type.INT, 60000, importance=Importance.HIGH)
            .define("scheduled.rebalance.max.delay.ms", Type.INT, 300000, importance=Importance.LOW)
            .define("connect.protocol", Type.STRING, "sessioned", importance=Importance.LOW,
                    validator=ValidString.in_("eager", "compatible", "sessioned"))
            # KIP-507: the session key that signs internal requests under connect.protocol=sessioned.
            .define("inter.worker.key.generation.algorithm", Type.STRING, "HmacSHA256", importance=Importance.LOW,
                    validator=ValidString.in_("HmacSHA256", "HmacSHA384", "HmacSHA512", "HmacSHA1"))
            .define("inter.worker.key.size", Type.INT, None, importance=Importance.LOW)
            .define("inter.worker.key.ttl.ms", Type.INT, 3600000, validator=Range.at_least(0),
                    importance=Importance.LOW)
            .define("inter.worker.signature.algorithm", Type.STRING, "HmacSHA256", importance=Importance.LOW,
                    validator=ValidString.in_("HmacSHA256", "HmacSHA384", "HmacSHA512", "HmacSHA1"))
            .define("inter.worker.verification.algorithms", Type.LIST, "HmacSHA256", importance=Importance.LOW)
            .define("exactly.once.source.support", Type.STRING, "disabled", importance=Importance.HIGH,
                    validator=ValidString.in_("disabled", "preparing", "enabled", case_insensitive=True))
            .define("topic.creation.enable", Type.BOOLEAN, True, importance=Importance.LOW,
                    documentation="Whether source connectors may create their topics (KIP-158), as their "
                                  "topic.creation.* configs say.")
            .define("connector.client.config.override.policy", Type.STRING, "All", importance=Importance.MEDIUM,
                    validator=_valid_policy,
                    documentation="Which client settings connector configs may override (KIP-458): All, "
                                  "Principal or None.")
            .define("plugin.path", Type.LIST, "", importance=Importance.LOW,
                    documentation="Accepted for compatibility; Python plugins are found through entry points."))


def _valid_policy(_name: str, value: Any) -> None:
    OverridePolicy.named(str(value))


class WorkerConfig(AbstractConfig):
    def __init__(self, props: dict[str, Any]) -> None:
        super().__init__(worker_config_def(), props)

    @property
    def distributed(self) -> bool:
        return bool(self.get("group.id"))

    @property
    def bootstrap_servers(self) -> str:
        return ",".join(self.get("bootstrap.servers"))

    @property
    def override_policy(self) -> OverridePolicy:
        return OverridePolicy.named(str(self.get("connector.client.config.override.policy")))

    def client_config(self, kind: str) -> dict[str, Any]:
        """Settings for the worker's producers/consumers/admin: bootstrap plus `producer.`-style overrides,
        restricted to names librdkafka knows (Java-only names are dropped)."""
        settings: dict[str, Any] = {"bootstrap.servers": self.bootstrap_servers}
        for key in ("security.protocol", "sasl.mechanism", "sasl.username", "sasl.password", "ssl.ca.location",
                    "sasl.jaas.config"):
            if key in self.originals:
                settings[key] = self.originals[key]
        settings = librdkafka_settings(settings)
        settings.update(librdkafka_settings(self.originals_with_prefix(f"{kind}.")))
        return settings


# Java client settings librdkafka does not understand, which worker files commonly carry.
_JAVA_ONLY = {"key.serializer", "value.serializer", "key.deserializer", "value.deserializer",
              "interceptor.classes", "sasl.jaas.config", "buffer.memory", "max.block.ms",
              "override.policy", "ssl.endpoint.identification.algorithm"}


def librdkafka_settings(props: dict[str, Any]) -> dict[str, Any]:
    """`props` without the Java-only names; a `sasl.jaas.config` with a username and password becomes
    librdkafka's `sasl.username` and `sasl.password` (unless those are set too)."""
    settings = {k: v for k, v in props.items() if k not in _JAVA_ONLY}
    if props.get("sasl.jaas.config"):
        options = parse_jaas_options(str(props["sasl.jaas.config"]))
        for option in ("username", "password"):
            if option in options:
                settings.setdefault(f"sasl.{option}", options[option])
    return settings


def read_properties(path: str | Path) -> dict[str, str]:
    """A Java .properties file: `key=value` or `key: value`, `#`/`!` comments, `\\` line continuations."""
    props: dict[str, str] = {}
    pending = ""
    for raw in Path(path).read_text(encoding="utf-8").splitlines():
        line = pending + raw.strip()
        pending = ""
        if not line or line[0] in "#!":
            continue
        if line.endswith("\\") and not line.endswith("\\\\"):
            pending = line[:-1]
            continue
        split = min((i for i in (line.find("="), line.find(":")) if i >= 0), default=-1)
        key, value = (line[:split], line[split + 1:]) if split >= 0 else (line, "")
        props[key.strip()] = value.strip()
    return props
