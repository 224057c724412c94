"""Given a broker with an SSL listener next to a PLAINTEXT one, when real clients connect over TLS
(server authentication, then mutual authentication), then records round-trip and the principal is the
certificate's mapped name."""

from __future__ import annotations

import socket
import ssl
from collections.abc import Iterator
from contextlib import contextmanager

import pytest

from moldau.testing import running_broker
from moldau.testing_certs import generate_certificates
from tests.fixtures import unique_topic
from tests.security.clients import aiokafka_round_trip, confluent_round_trip, kafka_python_round_trip, values


@pytest.fixture(scope="module")
def certs(tmp_path_factory):
    return generate_certificates(tmp_path_factory.mktemp("certs"))


def tls_broker(certs, **overrides):
    settings = {"listeners": "PLAINTEXT://127.0.0.1:0,SSL://127.0.0.1:0",
                "ssl_keystore_location": str(certs.server_keystore),
                "ssl_truststore_location": str(certs.ca), "num_partitions": 1}
    settings.update(overrides)
    return running_broker(**settings)


def confluent_ssl(certs, mutual: bool = False) -> dict:
    settings = {"security.protocol": "SSL", "ssl.ca.location": str(certs.ca)}
    if mutual:
        settings.update({"ssl.certificate.location": str(certs.client_cert),
                         "ssl.key.location": str(certs.client_key)})
    return settings


def principals(embedded) -> set[str]:
    return {str(c.session.principal) for c in embedded.broker.connections if c.listener_name == "SSL"}


def test_server_authentication_with_three_clients(certs):
    with tls_broker(certs) as broker:
        bootstrap = broker.bootstrap("SSL")
        topic = unique_topic("tls")
        # 2,000 records of 1 KiB: fetches large enough that the TLS path (no sendfile) carries many regions.
        got = confluent_round_trip(bootstrap, topic, confluent_ssl(certs), count=2000, size=1024)
        assert got == values(2000, 1024)
        assert principals(broker) <= {"User:ANONYMOUS"}
        context = ssl.create_default_context(cafile=str(certs.ca))
        assert kafka_python_round_trip(bootstrap, unique_topic("tls-kp"),
                                       {"security_protocol": "SSL", "ssl_context": context}) == values()
        assert aiokafka_round_trip(bootstrap, unique_topic("tls-aio"),
                                   {"security_protocol": "SSL", "ssl_context": context}) == values()
        # The PLAINTEXT listener keeps serving next to it.
        assert confluent_round_trip(broker.bootstrap("PLAINTEXT"), unique_topic("plain"), {}) == values()


def test_mutual_authentication_maps_the_certificate_to_a_principal(certs):
    rules = "RULE:^CN=([a-z]+),OU=Tests,.*$/$1-user/U,DEFAULT"
    with tls_broker(certs, ssl_client_auth="required", ssl_principal_mapping_rules=rules) as broker:
        bootstrap = broker.bootstrap("SSL")
        assert confluent_round_trip(bootstrap, unique_topic("mtls"), confluent_ssl(certs, mutual=True)) == values()
        context = ssl.create_default_context(cafile=str(certs.ca))
        context.load_cert_chain(str(certs.client_cert), str(certs.client_key))
        assert kafka_python_round_trip(bootstrap, unique_topic("mtls-kp"),
                                       {"security_protocol": "SSL", "ssl_context": context}) == values()
        assert aiokafka_round_trip(bootstrap, unique_topic("mtls-aio"),
                                   {"security_protocol": "SSL", "ssl_context": context}) == values()
        # A client without a certificate fails the handshake.
        bare = ssl.create_default_context(cafile=str(certs.ca))
        with pytest.raises((ssl.SSLError, ConnectionError)), tls_connect(bare, bootstrap) as tls:
            tls.sendall(b"\x00\x00\x00\x00")
            if not tls.recv(1):  # TLS 1.3: the refusal arrives after the handshake
                raise ConnectionError("closed")


def test_mutual_authentication_principal(certs):
    rules = "RULE:^CN=([a-z]+),OU=Tests,.*$/$1-user/U,DEFAULT"
    with tls_broker(certs, ssl_client_auth="requested", ssl_principal_mapping_rules=rules) as broker:
        context = ssl.create_default_context(cafile=str(certs.ca))
        context.load_cert_chain(str(certs.client_cert), str(certs.client_key))
        with tls_connect(context, broker.bootstrap("SSL")):
            assert wait_for(lambda: "User:CLIENT-USER" in principals(broker))
            # Fetch must not sendfile plaintext bytes into a TLS stream.
            assert not any(c.sendfile_ok for c in broker.broker.connections if c.listener_name == "SSL")
        # requested: a client without a certificate is ANONYMOUS.
        with tls_connect(ssl.create_default_context(cafile=str(certs.ca)), broker.bootstrap("SSL")):
            assert wait_for(lambda: "User:ANONYMOUS" in principals(broker))


@contextmanager
def tls_connect(context: ssl.SSLContext, bootstrap: str) -> Iterator[ssl.SSLSocket]:
    host, port = bootstrap.split(":")
    with socket.create_connection((host, int(port)), timeout=10) as raw, \
            context.wrap_socket(raw, server_hostname="localhost") as tls:
        yield tls


def wait_for(condition, timeout: float = 10.0) -> bool:
    import time

    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if condition():
            return True
        time.sleep(0.02)  # the broker's loop runs in another thread; there is no event to await here
    return False


def test_inline_pem_keystore_and_encrypted_key(certs, tmp_path):
    encrypted = generate_certificates(tmp_path / "enc", key_password="s3cret")
    inline = {"ssl_keystore_key": encrypted.server_key.read_text(), "ssl_key_password": "s3cret",
              "ssl_keystore_certificate_chain": encrypted.server_chain.read_text(), "ssl_keystore_location": None}
    with tls_broker(encrypted, **inline) as broker:
        settings = {"security.protocol": "SSL", "ssl.ca.location": str(encrypted.ca)}
        assert confluent_round_trip(broker.bootstrap("SSL"), unique_topic("inline"), settings) == values()


def test_keystore_reload_without_restart_and_passwords_stay_hidden(certs, tmp_path):
    """Kafka's dynamic `listener.name.<l>.ssl.keystore.location` (AlterConfigs on the broker)."""
    from moldau.client.client import Client, ClientError
    from moldau.protocol.errors import ErrorCode

    renewed = generate_certificates(tmp_path / "renewed")  # a new CA: only its clients trust the new certificate
    with tls_broker(certs, ssl_key_password="unused-but-secret") as broker:
        old_ca = ssl.create_default_context(cafile=str(certs.ca))
        new_ca = ssl.create_default_context(cafile=str(renewed.ca))
        with tls_connect(old_ca, broker.bootstrap("SSL")) as established, Client(broker.bootstrap_servers) as admin:
            key = "listener.name.ssl.ssl.keystore.location"
            with pytest.raises(ClientError) as bad:
                admin.incremental_alter_configs(4, "1", [(key, 0, str(tmp_path / "missing.pem"))])
            assert bad.value.error_code == ErrorCode.INVALID_CONFIG
            with tls_connect(old_ca, broker.bootstrap("SSL")):
                pass  # a failed alter changed nothing
            admin.incremental_alter_configs(4, "1", [(key, 0, str(renewed.server_keystore))])
            with tls_connect(new_ca, broker.bootstrap("SSL")):
                pass
            with pytest.raises(ssl.SSLError), tls_connect(old_ca, broker.bootstrap("SSL")):
                pass
            established.sendall(b"")  # connections made before the change keep their session
            entries = {e.name: e for e in admin.describe_configs(4, "1", synonyms=True).configs}
            assert entries["ssl.key.password"].is_sensitive and entries["ssl.key.password"].value is None
            assert all(s.value is None for s in entries["ssl.key.password"].synonyms)
