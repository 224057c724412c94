"""Connector client config override policies (KIP-458).

A connector config may set its own clients' settings with `producer.override.*`, `consumer.override.*` and
`admin.override.*`. The worker's `connector.client.config.override.policy` says which it may set:

- `All` (the default, as in Kafka 3.0+): any setting;
- `Principal`: only who the client is (`sasl.jaas.config`, `sasl.mechanism`, `security.protocol`, and
  librdkafka's spellings of the same principal, `sasl.username` and `sasl.password`);
- `None`: nothing.

Kafka's class names (`org.apache.kafka.connect.connector.policy.NoneConnectorClientConfigOverridePolicy`...)
name the same policies. A refused override is a validation error on the prefixed key, with Kafka's message,
so that creating or updating the connector fails with 400 and `/config/validate` counts it.
"""

from __future__ import annotations

from dataclasses import dataclass

from moldau.connect.api.config import ConfigException, ConfigValue
from moldau.connect.runtime import topic_creation

CLIENT_PREFIXES = {"producer": "producer.override.", "consumer": "consumer.override.", "admin": "admin.override."}
_JAVA_CLASS = "org.apache.kafka.connect.connector.policy.{}ConnectorClientConfigOverridePolicy"
_PRINCIPAL_KEYS = frozenset({"sasl.jaas.config", "sasl.mechanism", "security.protocol",
                             "sasl.username", "sasl.password"})


@dataclass(frozen=True, slots=True)
class OverridePolicy:
    name: str  # All, Principal or None

    @classmethod
    def named(cls, value: str) -> OverridePolicy:
        """The policy an alias or Kafka class name names; ConfigException for anything else."""
        for name in ("All", "Principal", "None"):
            if value.strip() in (name, _JAVA_CLASS.format(name)):
                return cls(name)
        raise ConfigException("connector.client.config.override.policy", value,
                              "expected All, Principal, None or one of Kafka's policy class names")

    def allows(self, key: str) -> bool:
        return self.name == "All" or (self.name == "Principal" and key in _PRINCIPAL_KEYS)

    def validate(self, config: dict[str, str], is_sink: bool) -> dict[str, ConfigValue]:
        """Every override of the clients this connector uses, by prefixed key, with Kafka's error where the
        policy refuses it (AbstractHerder.validateClientOverrides). Overrides of clients the connector does
        not use are not checked, as in Kafka."""
        results: dict[str, ConfigValue] = {}
        for client in clients_used(config, is_sink):
            prefix = CLIENT_PREFIXES[client]
            for key, value in config.items():
                if key.startswith(prefix):
                    name = key[len(prefix):]
                    refusal = (f"The '{self.name}' policy does not allow '{name}' to be overridden in the "
                               "connector configuration.")
                    results[key] = ConfigValue(key, value, errors=[] if self.allows(name) else [refusal])
        return results


ALL = OverridePolicy("All")


def clients_used(config: dict[str, str], is_sink: bool) -> list[str]:
    """Which clients a connector's tasks get (AbstractHerder.connectorUses*): a sink's consumer, and a producer
    and admin for its dead letter queue; a source's producer, and an admin when it creates topics."""
    if is_sink:
        has_dlq = bool(str(config.get("errors.deadletterqueue.topic.name", "")).strip())
        return ["consumer", "producer", "admin"] if has_dlq else ["consumer"]
    return ["producer", "admin"] if topic_creation.uses_topic_creation(config) else ["producer"]
