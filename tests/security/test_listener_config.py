"""Unit tests of the listener model, TLS config translation and SSL principal mapping."""

from __future__ import annotations

import pytest

from moldau.broker.config import BrokerConfig
from moldau.broker.server import listener_security
from moldau.security.listeners import SecurityConfigError, SecurityProtocol
from moldau.security.principal import SslPrincipalMapper, rfc2253_name
from moldau.security.ssl_context import openssl_cipher_name


def test_listener_names_map_to_protocols_and_inter_broker_listener_must_exist():
    config = BrokerConfig({"listeners": "INTERNAL://127.0.0.1:0,EXTERNAL://127.0.0.1:0",
                           "listener.security.protocol.map": "INTERNAL:PLAINTEXT,EXTERNAL:SASL_PLAINTEXT",
                           "inter.broker.listener.name": "INTERNAL", "sasl.enabled.mechanisms": "PLAIN"})
    result = listener_security(config)
    assert {name: s.protocol for name, s in result.items()} == {
        "INTERNAL": SecurityProtocol.PLAINTEXT, "EXTERNAL": SecurityProtocol.SASL_PLAINTEXT}
    with pytest.raises(SecurityConfigError, match="No security protocol defined for listener OTHER"):
        listener_security(BrokerConfig({"listeners": "OTHER://127.0.0.1:0"}))
    with pytest.raises(SecurityConfigError, match="inter.broker.listener.name must be a listener"):
        listener_security(BrokerConfig({"listeners": "SASL_PLAINTEXT://127.0.0.1:0",
                                        "sasl.enabled.mechanisms": "PLAIN"}))
    with pytest.raises(SecurityConfigError, match="Only one of"):
        listener_security(BrokerConfig({"listeners": "PLAINTEXT://127.0.0.1:0", "inter.broker.listener.name":
                                        "PLAINTEXT", "security.inter.broker.protocol": "PLAINTEXT"}))


def test_sasl_listener_refuses_gssapi_and_ssl_listener_needs_a_keystore():
    with pytest.raises(SecurityConfigError, match="GSSAPI"):
        listener_security(BrokerConfig({"listeners": "PLAINTEXT://127.0.0.1:0,SASL_PLAINTEXT://127.0.0.1:0"}))
    with pytest.raises(SecurityConfigError, match="ssl.keystore.location"):
        listener_security(BrokerConfig({"listeners": "PLAINTEXT://127.0.0.1:0,SSL://127.0.0.1:0"}))
    with pytest.raises(SecurityConfigError, match="PEM"):
        listener_security(BrokerConfig({"listeners": "PLAINTEXT://127.0.0.1:0,SSL://127.0.0.1:0",
                                        "ssl.keystore.type": "JKS", "ssl.keystore.location": "/x.jks"}))


def test_listener_prefixed_configs_win():
    config = BrokerConfig({"listeners": "PLAINTEXT://127.0.0.1:0,SASL_PLAINTEXT://127.0.0.1:0",
                           "sasl.enabled.mechanisms": "SCRAM-SHA-256",
                           "listener.name.sasl_plaintext.sasl.enabled.mechanisms": "PLAIN,SCRAM-SHA-512"})
    assert listener_security(config)["SASL_PLAINTEXT"].mechanisms == ["PLAIN", "SCRAM-SHA-512"]


def test_rfc2253_names_put_the_last_rdn_first_and_escape():
    subject = ((("countryName", "US"),), (("organizationName", "Acme, Inc."),), (("commonName", "alice"),))
    assert rfc2253_name(subject) == "CN=alice,O=Acme\\, Inc.,C=US"


@pytest.mark.parametrize("rules, dn, expected", [
    ("DEFAULT", "CN=alice,O=Acme", "CN=alice,O=Acme"),
    ("RULE:^CN=(.*?),OU=ServiceUsers.*$/$1/,DEFAULT", "CN=svc,OU=ServiceUsers,O=Acme", "svc"),
    ("RULE:^CN=(.*?),OU=ServiceUsers.*$/$1/,DEFAULT", "CN=bob,OU=People", "CN=bob,OU=People"),
    ("RULE:^CN=(.*?),OU=(.*?),O=.*$/$1@$2/L", "CN=Adam,OU=Admins,O=Acme", "adam@admins"),
    ("RULE:^.*[Cc][Nn]=([a-zA-Z0-9.]*).*$/$1/U", "cn=duke,ou=x", "DUKE"),
    ("RULE:^CN=(.*?)\\/x,.*$/$1/", "CN=a/x,O=b", "a"),  # "\/" is a slash inside a rule
])
def test_ssl_principal_mapping_rules(rules, dn, expected):
    assert SslPrincipalMapper(rules).name(dn) == expected


def test_no_matching_rule_is_an_authentication_failure():
    with pytest.raises(PermissionError):
        SslPrincipalMapper("RULE:^CN=x$/y/").name("CN=z")
    with pytest.raises(SecurityConfigError):
        SslPrincipalMapper("RULE:broken")


@pytest.mark.parametrize("java, openssl", [
    ("TLS_ECDHE_RSA_WITH_AES_256_GCM_SHA384", "ECDHE-RSA-AES256-GCM-SHA384"),
    ("TLS_ECDHE_ECDSA_WITH_AES_128_GCM_SHA256", "ECDHE-ECDSA-AES128-GCM-SHA256"),
    ("TLS_RSA_WITH_AES_128_CBC_SHA", "AES128-SHA"),
    ("TLS_ECDHE_RSA_WITH_CHACHA20_POLY1305_SHA256", "ECDHE-RSA-CHACHA20-POLY1305-SHA256"),
    ("ECDHE-RSA-AES128-GCM-SHA256", "ECDHE-RSA-AES128-GCM-SHA256"),
])
def test_cipher_suite_names(java, openssl):
    assert openssl_cipher_name(java) == openssl
