"""Given a broker with SASL_PLAINTEXT and SASL_SSL listeners, when real clients authenticate with PLAIN,
SCRAM-SHA-256/512 and OAUTHBEARER, then they produce and consume as that principal; a wrong password is
refused with SASL_AUTHENTICATION_FAILED."""

from __future__ import annotations

import ssl
import time
from contextlib import contextmanager

import pytest
from confluent_kafka import KafkaError, KafkaException, Producer
from confluent_kafka.admin import (
    AdminClient,
    ScramCredentialInfo,
    ScramMechanism,
    UserScramCredentialDeletion,
    UserScramCredentialUpsertion,
)

from moldau.testing import running_broker
from moldau.testing_certs import generate_certificates
from tests.fixtures import unique_topic
from tests.security.clients import aiokafka_round_trip, confluent_round_trip, kafka_python_round_trip, values

JAAS = ('org.apache.kafka.common.security.plain.PlainLoginModule required username="admin" '
        'password="admin-secret" user_admin="admin-secret" user_alice="alice-secret";')


@pytest.fixture(scope="module")
def certs(tmp_path_factory):
    return generate_certificates(tmp_path_factory.mktemp("certs"))


@pytest.fixture(scope="module")
def sasl_broker(certs):
    with running_broker(
        listeners="PLAINTEXT://127.0.0.1:0,SASL_PLAINTEXT://127.0.0.1:0,SASL_SSL://127.0.0.1:0",
        sasl_enabled_mechanisms="PLAIN,SCRAM-SHA-256,SCRAM-SHA-512,OAUTHBEARER",
        num_partitions=1,
        ssl_keystore_location=str(certs.server_keystore),
        **{"listener.name.sasl_ssl.plain.sasl.jaas.config": JAAS, "sasl.jaas.config": JAAS},
    ) as broker:
        yield broker


def sasl_principals(broker) -> set[str]:
    return {str(c.session.principal) for c in broker.broker.connections if c.session.sasl is not None}


def confluent_sasl(certs, mechanism: str, user: str, password: str, tls: bool = True) -> dict:
    settings = {"security.protocol": "SASL_SSL" if tls else "SASL_PLAINTEXT", "sasl.mechanism": mechanism,
                "sasl.username": user, "sasl.password": password}
    if tls:
        settings["ssl.ca.location"] = str(certs.ca)
    return settings


def python_sasl(certs, mechanism: str, user: str, password: str) -> dict:
    return {"security_protocol": "SASL_SSL", "ssl_context": ssl.create_default_context(cafile=str(certs.ca)),
            "sasl_mechanism": mechanism, "sasl_plain_username": user, "sasl_plain_password": password}


def refused(bootstrap: str, settings: dict) -> str:
    """The authentication error librdkafka reports (through error_cb) when the broker refuses it."""
    errors: list[KafkaError] = []
    producer = Producer({"bootstrap.servers": bootstrap, "error_cb": errors.append, "log_level": 0, **settings})
    deadline = time.monotonic() + 15
    while time.monotonic() < deadline and not any(e.code() == KafkaError._AUTHENTICATION for e in errors):
        producer.poll(0.2)
    auth = [e for e in errors if e.code() == KafkaError._AUTHENTICATION]
    assert auth, f"no authentication error, got {errors}"
    return auth[0].str()


def test_plain_with_three_clients_and_a_wrong_password(sasl_broker, certs):
    bootstrap = sasl_broker.bootstrap("SASL_SSL")
    settings = confluent_sasl(certs, "PLAIN", "alice", "alice-secret")
    assert confluent_round_trip(bootstrap, unique_topic("plain"), settings) == values()
    assert kafka_python_round_trip(bootstrap, unique_topic("plain-kp"),
                                   python_sasl(certs, "PLAIN", "alice", "alice-secret")) == values()
    assert aiokafka_round_trip(bootstrap, unique_topic("plain-aio"),
                               python_sasl(certs, "PLAIN", "alice", "alice-secret")) == values()
    message = refused(bootstrap, confluent_sasl(certs, "PLAIN", "alice", "wrong"))
    assert "Authentication failed" in message or "Invalid username or password" in message
    # SASL_PLAINTEXT uses the unprefixed sasl.jaas.config.
    assert confluent_round_trip(sasl_broker.bootstrap("SASL_PLAINTEXT"), unique_topic("plain-pt"),
                                confluent_sasl(certs, "PLAIN", "admin", "admin-secret", tls=False)) == values()


@pytest.mark.parametrize("mechanism", [ScramMechanism.SCRAM_SHA_256, ScramMechanism.SCRAM_SHA_512])
def test_scram_users_created_through_the_admin_api(sasl_broker, certs, mechanism):
    name = {ScramMechanism.SCRAM_SHA_256: "SCRAM-SHA-256", ScramMechanism.SCRAM_SHA_512: "SCRAM-SHA-512"}[mechanism]
    user = f"bob-{name.lower()}"
    admin = AdminClient({"bootstrap.servers": sasl_broker.bootstrap("PLAINTEXT")})
    futures = admin.alter_user_scram_credentials([
        UserScramCredentialUpsertion(user, ScramCredentialInfo(mechanism, 8192), b"bob-secret")])
    futures[user].result(10)
    description = admin.describe_user_scram_credentials([user])[user].result(10)
    assert [(i.mechanism, i.iterations) for i in description.scram_credential_infos] == [(mechanism, 8192)]

    bootstrap = sasl_broker.bootstrap("SASL_SSL")
    assert confluent_round_trip(bootstrap, unique_topic("scram"),
                                confluent_sasl(certs, name, user, "bob-secret")) == values()
    assert kafka_python_round_trip(bootstrap, unique_topic("scram-kp"),
                                   python_sasl(certs, name, user, "bob-secret")) == values()
    assert aiokafka_round_trip(bootstrap, unique_topic("scram-aio"),
                               python_sasl(certs, name, user, "bob-secret")) == values()
    assert "Invalid user credentials" in refused(bootstrap, confluent_sasl(certs, name, user, "wrong"))

    admin.alter_user_scram_credentials([UserScramCredentialDeletion(user, mechanism)])[user].result(10)
    assert "Invalid user credentials" in refused(bootstrap, confluent_sasl(certs, name, user, "bob-secret"))


def test_scram_admin_errors(sasl_broker):
    admin = AdminClient({"bootstrap.servers": sasl_broker.bootstrap("PLAINTEXT")})
    futures = admin.alter_user_scram_credentials([
        UserScramCredentialUpsertion("few", ScramCredentialInfo(ScramMechanism.SCRAM_SHA_256, 100), b"pw"),
        UserScramCredentialDeletion("nobody", ScramMechanism.SCRAM_SHA_512)])
    with pytest.raises(KafkaException, match="iterations"):
        futures["few"].result(10)
    with pytest.raises(KafkaException, match="does not exist"):
        futures["nobody"].result(10)


def test_unsecured_oauthbearer_token(sasl_broker):
    settings = {"security.protocol": "SASL_PLAINTEXT", "sasl.mechanism": "OAUTHBEARER",
                "enable.sasl.oauthbearer.unsecure.jwt": True, "sasl.oauthbearer.config": "principal=carol"}
    assert confluent_round_trip(sasl_broker.bootstrap("SASL_PLAINTEXT"), unique_topic("oauth"), settings) == values()


@pytest.mark.parametrize("served", ["file", "http"])
def test_signed_oauthbearer_tokens_against_a_jwks(certs, tmp_path, served):
    import json

    import jwt
    from cryptography.hazmat.primitives.asymmetric import rsa

    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    jwk = json.loads(jwt.algorithms.RSAAlgorithm.to_jwk(key.public_key()))
    jwk.update({"kid": "test-key", "use": "sig", "alg": "RS256"})
    jwks = tmp_path / "jwks.json"
    jwks.write_text(json.dumps({"keys": [jwk]}))
    other = rsa.generate_private_key(public_exponent=65537, key_size=2048)

    def token(signing_key, audience="moldau", issuer="https://issuer.test") -> str:
        now = int(time.time())
        return jwt.encode({"sub": "dave", "aud": audience, "iss": issuer, "iat": now, "exp": now + 600},
                          signing_key, algorithm="RS256", headers={"kid": "test-key"})

    with jwks_url(jwks, served) as url, running_broker(
            listeners="PLAINTEXT://127.0.0.1:0,SASL_PLAINTEXT://127.0.0.1:0", sasl_enabled_mechanisms="OAUTHBEARER",
            num_partitions=1, **{"sasl.oauthbearer.jwks.endpoint.url": url,
                           "sasl.oauthbearer.expected.audience": "moldau",
                           "sasl.oauthbearer.expected.issuer": "https://issuer.test"}) as broker:
        bootstrap = broker.bootstrap("SASL_PLAINTEXT")

        def settings(signed: str) -> dict:
            return {"security.protocol": "SASL_PLAINTEXT", "sasl.mechanism": "OAUTHBEARER",
                    "oauth_cb": lambda _config: (signed, time.time() + 600)}

        assert confluent_round_trip(bootstrap, unique_topic("jwt"), settings(token(key))) == values()
        connected = Producer({"bootstrap.servers": bootstrap, **settings(token(key))})
        assert connected.list_topics(timeout=10).cluster_id  # a live connection, to see its principal
        assert "User:dave" in sasl_principals(broker)
        for bad in (token(other), token(key, audience="someone-else"), token(key, issuer="https://evil")):
            refused(bootstrap, settings(bad))


@contextmanager
def jwks_url(path, served: str):
    """The JWKS as a file:// URL (a local key set) or from an HTTP server on loopback (an identity provider)."""
    if served == "file":
        yield path.as_uri()
        return
    import functools
    import http.server
    import threading

    class Quiet(http.server.SimpleHTTPRequestHandler):
        def log_message(self, *args: object) -> None:
            pass

    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0),
                                             functools.partial(Quiet, directory=str(path.parent)))
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}/{path.name}"
    finally:
        server.shutdown()
        thread.join(10)


def test_reauthentication_keeps_a_producer_going(sasl_broker, certs):
    """KIP-368: with connections.max.reauth.ms the client re-authenticates on the same connection."""
    with running_broker(listeners="PLAINTEXT://127.0.0.1:0,SASL_PLAINTEXT://127.0.0.1:0",
                        sasl_enabled_mechanisms="PLAIN", sasl_jaas_config=JAAS, connections_max_reauth_ms=1500,
                        num_partitions=1) as broker:
        settings = confluent_sasl(certs, "PLAIN", "alice", "alice-secret", tls=False)
        producer = Producer({"bootstrap.servers": broker.bootstrap("SASL_PLAINTEXT"), **settings})
        topic = unique_topic("reauth")
        delivered: list[object] = []
        deadline = time.monotonic() + 5
        while time.monotonic() < deadline:  # spans three session lifetimes
            producer.produce(topic, b"v", on_delivery=lambda e, m: delivered.append(e))
            producer.flush(10)
        assert delivered and all(e is None for e in delivered)
        sessions = [c.session.sasl for c in broker.broker.connections if c.session.sasl is not None]
        assert sessions and all(s.session_expires_ms is not None for s in sessions)
        assert max(s.reauthentications for s in sessions) >= 2


def unsecured_jwt(subject: str, lifetime_s: int = 600) -> str:
    """Kafka's unsecured JWS (alg none, empty signature), as OAuthBearerUnsecuredLoginCallbackHandler makes."""
    import base64
    import json

    def part(doc: dict) -> str:
        return base64.urlsafe_b64encode(json.dumps(doc).encode()).decode().rstrip("=")

    now = int(time.time())
    return f"{part({'alg': 'none'})}.{part({'sub': subject, 'iat': now, 'exp': now + lifetime_s})}."


def test_unsecured_oauthbearer_with_python_clients(sasl_broker):
    from aiokafka.abc import AbstractTokenProvider as AsyncTokenProvider
    from kafka.net.sasl.oauth import AbstractTokenProvider

    class Token(AbstractTokenProvider):
        def token(self) -> str:
            return unsecured_jwt("frank")

    class AsyncToken(AsyncTokenProvider):
        async def token(self) -> str:
            return unsecured_jwt("grace")

    bootstrap = sasl_broker.bootstrap("SASL_PLAINTEXT")
    common = {"security_protocol": "SASL_PLAINTEXT", "sasl_mechanism": "OAUTHBEARER"}
    assert kafka_python_round_trip(bootstrap, unique_topic("oauth-kp"),
                                   {**common, "sasl_oauth_token_provider": Token()}) == values()
    assert aiokafka_round_trip(bootstrap, unique_topic("oauth-aio"),
                               {**common, "sasl_oauth_token_provider": AsyncToken()}) == values()
    expired = {"security.protocol": "SASL_PLAINTEXT", "sasl.mechanism": "OAUTHBEARER",
               "oauth_cb": lambda _config: (unsecured_jwt("henry", -3600), time.time() + 600)}
    assert "expired" in refused(bootstrap, expired)
