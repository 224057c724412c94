"""Kafka's security configs: names, types and defaults, and listener-prefixed lookups.

`broker/config.py` registers `SECURITY_CONFIGS` with the other broker configs. Most of them can also be
set per listener as `listener.name.<listener>.<config>` (lower-case listener name), and the SASL JAAS
config per listener and mechanism as `listener.name.<listener>.<mechanism>.sasl.jaas.config`, as in Kafka.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping
from typing import Any

DEFAULT_PROTOCOL_MAP = ["PLAINTEXT:PLAINTEXT", "SSL:SSL", "SASL_PLAINTEXT:SASL_PLAINTEXT", "SASL_SSL:SASL_SSL"]

# (name, type, default, doc[, at_least]) in the order of `broker.config.ConfigDef`'s fields.
SECURITY_CONFIGS: tuple[tuple[Any, ...], ...] = (
    ("listener.security.protocol.map", list, DEFAULT_PROTOCOL_MAP, "Listener name to security protocol"),
    ("inter.broker.listener.name", str, None, "Listener brokers use between themselves"),
    ("security.inter.broker.protocol", str, "PLAINTEXT", "Security protocol brokers use between themselves"),
    # TLS. Python's ssl reads PEM only, so PEM is the default keystore type (Kafka's default is JKS).
    ("ssl.keystore.type", str, "PEM", "Keystore format; only PEM (KIP-651) is supported"),
    ("ssl.keystore.location", str, None, "PEM file with the PKCS#8 private key and the certificate chain"),
    ("ssl.keystore.password", str, None, "Accepted for compatibility; PEM keystores have no store password"),
    ("ssl.key.password", str, None, "Password of an encrypted private key"),
    ("ssl.keystore.key", str, None, "The PEM private key itself (KIP-651)"),
    ("ssl.keystore.certificate.chain", str, None, "The PEM certificate chain itself (KIP-651)"),
    ("ssl.truststore.type", str, "PEM", "Truststore format; only PEM is supported"),
    ("ssl.truststore.location", str, None, "PEM file with the CA certificates trusted for client certificates"),
    ("ssl.truststore.password", str, None, "Accepted for compatibility; PEM truststores have no password"),
    ("ssl.truststore.certificates", str, None, "The trusted PEM certificates themselves (KIP-651)"),
    ("ssl.client.auth", str, "none", "Client certificates: none, requested or required"),
    ("ssl.enabled.protocols", list, ["TLSv1.2", "TLSv1.3"], "TLS versions accepted"),
    ("ssl.protocol", str, "TLSv1.3", "Accepted for compatibility; ssl.enabled.protocols decides"),
    ("ssl.cipher.suites", list, [], "TLS 1.2 cipher suites (IANA or OpenSSL names); empty means the defaults"),
    ("ssl.principal.mapping.rules", str, "DEFAULT", "Rules mapping a certificate's DN to a user name"),
    ("ssl.endpoint.identification.algorithm", str, "https", "Inter-broker TLS host name check; empty: off"),
    # SASL.
    ("sasl.enabled.mechanisms", list, ["GSSAPI"], "SASL mechanisms the broker offers"),
    ("sasl.mechanism.inter.broker.protocol", str, "GSSAPI", "SASL mechanism between brokers"),
    ("sasl.jaas.config", str, None, "JAAS login module config (PLAIN users: user_<name>=\"<password>\")"),
    ("connections.max.reauth.ms", int, 0, "KIP-368: sessions last this long before re-authentication", 0),
    ("sasl.server.max.receive.size", int, 524288, "Largest SASL token accepted before authentication", 1),
    ("sasl.oauthbearer.jwks.endpoint.url", str, None, "JWKS URL (https://, http:// or file://) for JWTs"),
    ("sasl.oauthbearer.expected.audience", list, [], "Accepted JWT audiences; empty accepts any"),
    ("sasl.oauthbearer.expected.issuer", str, None, "Required JWT issuer"),
    ("sasl.oauthbearer.sub.claim.name", str, "sub", "JWT claim naming the principal"),
    ("sasl.oauthbearer.scope.claim.name", str, "scope", "JWT claim with the scopes"),
    ("sasl.oauthbearer.clock.skew.seconds", int, 30, "Tolerated clock difference for exp/iat/nbf", 0),
    ("sasl.oauthbearer.jwks.endpoint.refresh.ms", int, 3600000, "How often the JWKS is refetched", 1),
    # Authorization.
    ("authorizer.class.name", str, "", ("Set to org.apache.kafka.metadata.authorizer.StandardAuthorizer "
     "to check ACLs; empty allows everything")),
    ("super.users", str, "", "Semicolon-separated principals allowed everything, e.g. User:admin;User:ANONYMOUS"),
    ("allow.everyone.if.no.acl.found", bool, False, "Allow access to resources that have no ACL at all"),
    # Quotas (KIP-612 connection rates; client quotas are dynamic, see AlterClientQuotas).
    ("max.connection.creation.rate", int, 2**31 - 1, "KIP-612: new connections per second, per listener", 0),
    ("max.connections", int, 2**31 - 1, "Most connections the broker accepts", 0),
    ("max.connections.per.ip", int, 2**31 - 1, "Most connections from one address", 0),
    ("quota.window.num", int, 11, "Samples in a quota rate window", 1),
    ("quota.window.size.seconds", int, 1, "Length of one quota sample", 1),
)

_TYPES = {spec[0]: spec[1] for spec in SECURITY_CONFIGS}
# Kafka's PASSWORD-type configs: DescribeConfigs reports them as sensitive, with no value; logs mask them.
SENSITIVE_CONFIGS = ("ssl.key.password", "ssl.keystore.password", "ssl.truststore.password", "ssl.keystore.key",
                     "sasl.jaas.config")
# Per-broker dynamic configs that replace a listener's certificate without a restart (Kafka's
# DynamicBrokerConfig: `listener.name.<l>.ssl.keystore.*`).
DYNAMIC_KEYSTORE_CONFIGS = ("ssl.keystore.type", "ssl.keystore.location", "ssl.keystore.password", "ssl.key.password",
                            "ssl.keystore.key", "ssl.keystore.certificate.chain")
_LISTENER_KEY = re.compile(r"listener\.name\.([a-z0-9_]+)\.(.+)")


def is_sensitive(name: str) -> bool:
    return name.endswith(SENSITIVE_CONFIGS)


def masked(configs: Mapping[str, Any]) -> dict[str, Any]:
    return {key: "[hidden]" if is_sensitive(key) else value for key, value in configs.items()}


def is_listener_config(name: str) -> bool:
    """`listener.name.<l>.<security config>` or `listener.name.<l>.<mechanism>.sasl.jaas.config`: read by
    ListenerConfig, so known although not in the broker's config table."""
    match = _LISTENER_KEY.fullmatch(name)
    if match is None:
        return False
    key = match.group(2)
    return key in _TYPES or re.fullmatch(r"[a-z0-9-]+\.sasl\.jaas\.config", key) is not None


def listener_keystore_config(name: str) -> str | None:
    """The listener (lower-case) a `listener.name.<l>.ssl.keystore.*` config names, else None."""
    match = _LISTENER_KEY.fullmatch(name)
    if match is None or match.group(2) not in DYNAMIC_KEYSTORE_CONFIGS:
        return None
    return match.group(1)


def coerce(kind: type, raw: Any) -> Any:
    """A raw (string) value as `kind`, the way broker configs are parsed."""
    if raw is None or not isinstance(raw, str):
        return raw
    if kind is list:
        return [part.strip() for part in raw.split(",") if part.strip()]
    if kind is int:
        return int(raw.strip())
    if kind is bool:
        return raw.strip().lower() == "true"
    return raw.strip()


class ListenerConfig:
    """The security configs of one listener: `listener.name.<l>.<key>` when set, else the broker's `<key>`."""

    def __init__(self, listener: str, lookup: Callable[[str], Any], raw: Mapping[str, str]) -> None:
        self.listener = listener
        self._lookup = lookup
        self._raw = raw
        self._prefix = f"listener.name.{listener.lower()}."

    def __getitem__(self, key: str) -> Any:
        prefixed = self._raw.get(self._prefix + key)
        if prefixed is not None:
            return coerce(_TYPES.get(key, str), prefixed)
        return self._lookup(key)

    def with_overrides(self, raw: Mapping[str, str]) -> ListenerConfig:
        """This listener's configs with `raw` (e.g. dynamic `listener.name.<l>.*` values) on top."""
        return ListenerConfig(self.listener, self._lookup, {**self._raw, **raw})

    def mechanism(self, mechanism: str, key: str) -> Any:
        """`listener.name.<l>.<mechanism>.<key>` (e.g. `...plain.sasl.jaas.config`), else as `[key]`."""
        value = self._raw.get(f"{self._prefix}{mechanism.lower()}.{key}")
        return value if value is not None else self[key]
