"""Given a SASL_SSL broker, when kcat and the Java client authenticate with SCRAM over TLS, then they produce
and consume; and a real `moldau server` process configured as in the README serves SASL_SSL."""

from __future__ import annotations

import shutil
import subprocess
import time

import pytest

from moldau.client.client import Client
from moldau.client.security_admin import create_acls, upsert_scram_user
from moldau.security.acl import AclBinding, AclOperation, AclPermissionType, PatternType, ResourceType
from moldau.testing import running_secure_broker
from moldau.testing_certs import generate_certificates
from tests.fixtures import free_port, unique_topic
from tests.integration.test_java_client import JAVA, JAVAC, classpath, events, java  # noqa: F401 (fixture)
from tests.security.clients import confluent_round_trip, values

KCAT = shutil.which("kcat")


@pytest.mark.skipif(KCAT is None, reason="kcat is not installed: scripts/test.sh apt-installs it")
def test_kcat_over_sasl_ssl_with_scram():
    with running_secure_broker(users={"alice": "alice-secret"}) as broker:
        topic = unique_topic("kcat-sasl")
        with Client(broker.admin_bootstrap_servers) as admin:
            admin.create_topic(topic, 1)
        security = ["-X", "security.protocol=SASL_SSL", "-X", "sasl.mechanisms=SCRAM-SHA-512",
                    "-X", "sasl.username=alice", "-X", "sasl.password=alice-secret",
                    "-X", f"ssl.ca.location={broker.ca_location}"]
        run = [KCAT, "-b", broker.bootstrap_servers, *security]
        produced = subprocess.run([*run, "-P", "-t", topic], input="one\ntwo\nthree\n", text=True,
                                  capture_output=True, timeout=60, check=False)
        assert produced.returncode == 0, produced.stderr
        consumed = subprocess.run([*run, "-C", "-t", topic, "-e", "-q"], text=True, capture_output=True,
                                  timeout=60, check=False)
        assert consumed.stdout.split() == ["one", "two", "three"], consumed.stderr
        wrong = [arg.replace("alice-secret", "nope") for arg in run]
        refused = subprocess.run([*wrong, "-L", "-m", "5"], text=True, capture_output=True, timeout=60, check=False)
        assert refused.returncode != 0 and "Authentication failed" in refused.stderr


@pytest.mark.skipif(JAVA is None or JAVAC is None, reason="java/javac (JDK 17+) not installed")
@pytest.mark.timeout(240)  # three JVM starts; each java call is bounded by PROCESS_TIMEOUT_S
def test_java_client_over_sasl_ssl_with_scram(classpath):  # noqa: F811 (the fixture)
    with running_secure_broker(users={"alice": "alice-secret"}) as broker:
        topic = unique_topic("java-sasl")
        settings = {"security.protocol": "SASL_SSL", "sasl.mechanism": "SCRAM-SHA-512",
                    "sasl.jaas.config": 'org.apache.kafka.common.security.scram.ScramLoginModule required '
                                        'username="alice" password="alice-secret";',
                    "ssl.truststore.type": "PEM", "ssl.truststore.location": broker.ca_location}
        client_args = {f"{role}.{k}": v for role in ("admin", "producer", "consumer") for k, v in settings.items()}
        java(classpath, "admin", broker.bootstrap_servers, topic=topic, partitions=1, **client_args)
        lines = "".join(f"k{i}\tv{i}\t{1_700_000_000_000 + i}\th\n" for i in range(20))
        sent = events(java(classpath, "produce", broker.bootstrap_servers, stdin=lines, topic=topic, **client_args),
                      "sent")
        assert len(sent) == 20
        output = java(classpath, "consume", broker.bootstrap_servers, topic=topic, expected=20, **client_args)
        assert [e["value"] for e in events(output, "record")] == [f"v{i}" for i in range(20)]


def test_readme_sasl_ssl_setup_in_a_broker_process(broker_process, tmp_path):
    """The README's server.properties, as a real process: SCRAM users and ACLs over the admin listener."""
    certs = generate_certificates(tmp_path / "certs")
    admin_port, sasl_port = free_port(), free_port()
    broker = broker_process(port=admin_port, **{
        "listeners": f"ADMIN://127.0.0.1:{admin_port},SASL_SSL://127.0.0.1:{sasl_port}",
        "listener.security.protocol.map": "ADMIN:PLAINTEXT,SASL_SSL:SASL_SSL",
        "inter.broker.listener.name": "ADMIN",
        "ssl.keystore.location": str(certs.server_keystore),
        "sasl.enabled.mechanisms": "SCRAM-SHA-512",
        "authorizer.class.name": "org.apache.kafka.metadata.authorizer.StandardAuthorizer",
        "super.users": "User:ANONYMOUS;User:admin"})
    topic = unique_topic("readme")
    with Client(broker.bootstrap_servers) as admin:
        upsert_scram_user(admin, "alice", "alice-secret")
        create_acls(admin, [AclBinding(ResourceType.TOPIC, topic, PatternType.LITERAL, "User:alice", "*",
                                       AclOperation.ALL, AclPermissionType.ALLOW),
                            AclBinding(ResourceType.GROUP, "unused", PatternType.LITERAL, "User:alice", "*",
                                       AclOperation.READ, AclPermissionType.ALLOW)])
        admin.create_topic(topic, 1)
    settings = {"security.protocol": "SASL_SSL", "sasl.mechanism": "SCRAM-SHA-512", "sasl.username": "alice",
                "sasl.password": "alice-secret", "ssl.ca.location": str(certs.ca)}
    started = time.monotonic()
    assert confluent_round_trip(f"127.0.0.1:{sasl_port}", topic, settings) == values()
    assert time.monotonic() - started < 60
    assert "SASL_SSL://127.0.0.1" in broker.log_text() and "(SASL_SSL)" in broker.log_text()


@pytest.mark.skipif(JAVA is None or JAVAC is None, reason="java/javac (JDK 17+) not installed")
@pytest.mark.timeout(240)  # three JVM starts; each java call is bounded by PROCESS_TIMEOUT_S
def test_java_client_with_mutual_tls_and_pem_stores(classpath, tmp_path):  # noqa: F811 (the fixture)
    """KIP-651 on the client side too: the Java client's PEM keystore is one file with key and chain."""
    from moldau.testing import running_broker

    certs = generate_certificates(tmp_path / "certs", client_cn="javaclient")
    keystore = tmp_path / "client.keystore.pem"
    keystore.write_text(certs.client_key.read_text() + certs.client_cert.read_text())
    rules = "RULE:^CN=([a-z]+),.*$/$1/,DEFAULT"
    with running_broker(listeners="PLAINTEXT://127.0.0.1:0,SSL://127.0.0.1:0", num_partitions=1,
                        ssl_keystore_location=str(certs.server_keystore), ssl_truststore_location=str(certs.ca),
                        ssl_client_auth="required", ssl_principal_mapping_rules=rules) as broker:
        topic = unique_topic("java-mtls")
        settings = {"security.protocol": "SSL", "ssl.truststore.type": "PEM",
                    "ssl.truststore.location": str(certs.ca), "ssl.keystore.type": "PEM",
                    "ssl.keystore.location": str(keystore)}
        client_args = {f"{role}.{k}": v for role in ("admin", "producer", "consumer") for k, v in settings.items()}
        bootstrap = broker.bootstrap("SSL")
        java(classpath, "admin", bootstrap, topic=topic, partitions=1, **client_args)
        lines = "".join(f"k{i}\tv{i}\t{1_700_000_000_000 + i}\th\n" for i in range(10))
        assert len(events(java(classpath, "produce", bootstrap, stdin=lines, topic=topic, **client_args),
                          "sent")) == 10
        output = java(classpath, "consume", bootstrap, topic=topic, expected=10, **client_args)
        assert [e["value"] for e in events(output, "record")] == [f"v{i}" for i in range(10)]
