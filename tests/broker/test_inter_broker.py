"""How a cluster broker reaches the others (broker/inter_broker.py): configs read as Kafka reads them, and
the ones that cannot log in refused at start with the config to set."""

from __future__ import annotations

from pathlib import Path

import pytest

from moldau.broker.config import BrokerConfig
from moldau.broker.inter_broker import InterBrokerSecurity
from moldau.cluster.state import BrokerRegistration, Endpoint
from moldau.security.listeners import SecurityConfigError, SecurityProtocol
from moldau.testing_certs import Certificates, generate_certificates

JAAS = 'org.apache.kafka.common.security.scram.ScramLoginModule required username="broker" password="s3cret";'


@pytest.fixture(scope="module")
def certs(tmp_path_factory: pytest.TempPathFactory) -> Certificates:
    return generate_certificates(tmp_path_factory.mktemp("certs"))


def config(**values: object) -> BrokerConfig:
    return BrokerConfig({"listeners": "PLAINTEXT://127.0.0.1:9092,INTERNAL://127.0.0.1:9093",
                         "listener.security.protocol.map": "PLAINTEXT:PLAINTEXT,INTERNAL:SASL_SSL", **values})


def test_plaintext_by_default() -> None:
    security = InterBrokerSecurity.from_config(config())
    assert (security.listener, security.protocol, security.ssl_context, security.mechanism) == \
        ("PLAINTEXT", SecurityProtocol.PLAINTEXT, None, None)


def test_sasl_ssl_listener_with_listener_prefixed_tls_and_jaas(certs: Certificates, tmp_path: Path) -> None:
    security = InterBrokerSecurity.from_config(config(**{
        "inter.broker.listener.name": "INTERNAL", "sasl.enabled.mechanisms": "SCRAM-SHA-512",
        "sasl.mechanism.inter.broker.protocol": "SCRAM-SHA-512",
        "listener.name.internal.ssl.truststore.location": str(certs.ca),
        "ssl.keystore.location": str(certs.server_keystore),
        "listener.name.internal.scram-sha-512.sasl.jaas.config": JAAS}))
    assert (security.listener, security.protocol, security.mechanism, security.username, security.password) == \
        ("INTERNAL", SecurityProtocol.SASL_SSL, "SCRAM-SHA-512", "broker", "s3cret")
    assert security.ssl_context is not None and security.ssl_context.check_hostname
    registration = BrokerRegistration(2, (Endpoint("PLAINTEXT", "10.0.0.2", 9092), Endpoint("INTERNAL", "b2", 9093)))
    assert security.address(registration) == ("b2", 9093)


@pytest.mark.parametrize(("values", "message"), [
    ({}, "not supported for inter-broker connections.*GSSAPI"),  # Kafka's default mechanism
    ({"sasl.mechanism.inter.broker.protocol": "PLAIN"}, "must be included in sasl.enabled.mechanisms"),
    ({"sasl.mechanism.inter.broker.protocol": "SCRAM-SHA-512", "sasl.jaas.config": "x required;"},
     "listener.name.internal.scram-sha-512.sasl.jaas.config"),
])
def test_a_sasl_listener_that_cannot_log_in_is_refused(certs: Certificates, values: dict[str, str],
                                                       message: str) -> None:
    with pytest.raises(SecurityConfigError, match=message):
        InterBrokerSecurity.from_config(config(**{
            "inter.broker.listener.name": "INTERNAL", "sasl.enabled.mechanisms": "SCRAM-SHA-512",
            "ssl.truststore.location": str(certs.ca), **values}))
