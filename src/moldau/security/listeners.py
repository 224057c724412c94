"""Kafka's listener model: each listener name maps to a security protocol.

`listener.security.protocol.map` (default `PLAINTEXT:PLAINTEXT,SSL:SSL,SASL_PLAINTEXT:SASL_PLAINTEXT,
SASL_SSL:SASL_SSL`) says what a listener speaks, so `listeners=INTERNAL://:9093,EXTERNAL://:9094` with
`listener.security.protocol.map=INTERNAL:PLAINTEXT,EXTERNAL:SASL_SSL` serves both at once.
`inter.broker.listener.name` and `security.inter.broker.protocol` name the listener brokers use between
themselves; Kafka requires it to be one of the advertised listeners, and so do we.
"""

from __future__ import annotations

import enum
from collections.abc import Iterable

from moldau.errors import MoldauError


class SecurityConfigError(MoldauError):
    """A security config is inconsistent (unknown listener, missing keystore, unsupported mechanism)."""


class SecurityProtocol(enum.Enum):
    PLAINTEXT = "PLAINTEXT"
    SSL = "SSL"
    SASL_PLAINTEXT = "SASL_PLAINTEXT"
    SASL_SSL = "SASL_SSL"

    @property
    def uses_tls(self) -> bool:
        return self in (SecurityProtocol.SSL, SecurityProtocol.SASL_SSL)

    @property
    def uses_sasl(self) -> bool:
        return self in (SecurityProtocol.SASL_PLAINTEXT, SecurityProtocol.SASL_SSL)


def parse_protocol_map(entries: Iterable[str]) -> dict[str, SecurityProtocol]:
    result: dict[str, SecurityProtocol] = {}
    for entry in entries:
        name, sep, protocol = entry.partition(":")
        if not sep:
            raise SecurityConfigError(f"Invalid listener.security.protocol.map entry {entry!r}: expected NAME:PROTOCOL")
        try:
            result[name.strip().upper()] = SecurityProtocol(protocol.strip().upper())
        except ValueError:
            raise SecurityConfigError(
                f"Invalid listener.security.protocol.map entry {entry!r}: {protocol!r} is not one of "
                + ", ".join(p.value for p in SecurityProtocol)
            ) from None
    return result


def listener_protocols(listener_names: Iterable[str], protocol_map: Iterable[str]) -> dict[str, SecurityProtocol]:
    """The security protocol of each listener; a name missing from the map is an error, as in Kafka."""
    mapping = parse_protocol_map(protocol_map)
    result = {}
    for name in listener_names:
        if name not in mapping:
            raise SecurityConfigError(
                f"No security protocol defined for listener {name}: add {name}:<PROTOCOL> to "
                "listener.security.protocol.map"
            )
        result[name] = mapping[name]
    return result


def inter_broker_listener(advertised: dict[str, SecurityProtocol], listener_name: str | None,
                          inter_broker_protocol: str | None, protocol_explicit: bool) -> str:
    """Kafka's KafkaConfig.interBrokerListenerName rules: one of the two settings, naming an advertised listener."""
    if listener_name:
        if protocol_explicit:
            raise SecurityConfigError("Only one of inter.broker.listener.name and security.inter.broker.protocol "
                                      "should be set.")
        name = listener_name.upper()
    else:
        try:
            name = SecurityProtocol((inter_broker_protocol or "PLAINTEXT").upper()).value
        except ValueError:
            raise SecurityConfigError(f"Invalid security.inter.broker.protocol {inter_broker_protocol!r}") from None
    if name not in advertised:
        raise SecurityConfigError(
            f"inter.broker.listener.name must be a listener name defined in advertised.listeners. The valid "
            f"options based on currently configured listeners are {','.join(advertised)} (inter-broker listener: "
            f"{name}; set inter.broker.listener.name or security.inter.broker.protocol)"
        )
    return name
