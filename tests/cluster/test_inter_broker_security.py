"""Brokers replicate and write transaction markers over a SASL_SSL inter-broker listener with SCRAM.

Given three brokers whose only listener is SASL_SSL (throw-away certificates; PLAIN for the admin, SCRAM-SHA-512
for the brokers' own login, an authorizer with both principals as super users), when the admin creates the
brokers' SCRAM credential and a topic with `min.insync.replicas=3`, then an `acks=all` producer succeeds (the
high watermark moves only once both followers fetched it over TLS with SCRAM), the ISR is 3, and a
transaction across partitions led by different brokers commits (a read_committed consumer sees every record
only once the remote leaders wrote their markers). With a wrong inter-broker password the followers drop out
of the ISR and never rejoin, and each broker says so in one log line, not one per retry.
"""

from __future__ import annotations

import re
import time
from contextlib import AbstractContextManager
from pathlib import Path

import confluent_kafka
import pytest
from confluent_kafka.admin import (
    AclBinding,
    AclOperation,
    AclPermissionType,
    AdminClient,
    NewTopic,
    ResourcePatternType,
    ResourceType,
    ScramCredentialInfo,
    ScramMechanism,
    UserScramCredentialUpsertion,
)

from moldau.cluster.etcd_server import find_etcd
from moldau.security.authorizer import STANDARD_AUTHORIZER
from moldau.testing_certs import Certificates, generate_certificates
from moldau.testing_cluster import RunningCluster, running_cluster
from tests.fixtures import wait_until

pytestmark = [pytest.mark.skipif(find_etcd() is None, reason="etcd is not installed (apt-get install etcd-server)"),
              pytest.mark.timeout(240)]

BROKER_PASSWORD = "broker-secret"
AUTH_FAILED = "inter_broker.authentication_failed"


@pytest.fixture(scope="module")
def certs(tmp_path_factory: pytest.TempPathFactory) -> Certificates:
    return generate_certificates(tmp_path_factory.mktemp("certs"))


def client_config(certs: Certificates) -> dict[str, str]:
    """The admin's login, in property names both librdkafka and Moldau's client read."""
    return {"security.protocol": "SASL_SSL", "ssl.ca.location": str(certs.ca), "sasl.mechanism": "PLAIN",
            "sasl.username": "admin", "sasl.password": "admin-secret"}


def sasl_ssl_settings(certs: Certificates, inter_broker_password: str, **extra: object) -> dict[str, object]:
    return {
        "super.users": "User:admin;User:broker",  # the broker principal needs CLUSTER_ACTION (docs/security.md)
        "listeners": "SASL_SSL://127.0.0.1:{port}",
        "security.inter.broker.protocol": "SASL_SSL",
        "ssl.keystore.location": str(certs.server_keystore),
        "ssl.truststore.location": str(certs.ca),
        "sasl.enabled.mechanisms": "PLAIN,SCRAM-SHA-512",
        "sasl.mechanism.inter.broker.protocol": "SCRAM-SHA-512",
        "listener.name.sasl_ssl.plain.sasl.jaas.config":
            'org.apache.kafka.common.security.plain.PlainLoginModule required user_admin="admin-secret";',
        "listener.name.sasl_ssl.scram-sha-512.sasl.jaas.config":
            'org.apache.kafka.common.security.scram.ScramLoginModule required '
            f'username="broker" password="{inter_broker_password}";',
        "authorizer.class.name": STANDARD_AUTHORIZER,
        "transaction.state.log.replication.factor": 3,
        "transaction.state.log.num.partitions": 3,
        **extra,
    }


def secured_cluster(tmp_path: Path, certs: Certificates, inter_broker_password: str,
                    **extra: object) -> AbstractContextManager[RunningCluster]:
    return running_cluster(3, data_dir=tmp_path, client_config=client_config(certs),
                           **sasl_ssl_settings(certs, inter_broker_password, **extra))  # type: ignore[arg-type]


def admin(cluster: RunningCluster, certs: Certificates) -> AdminClient:
    return AdminClient({"bootstrap.servers": cluster.bootstrap_servers, **client_config(certs)})


def add_broker_user(cluster: RunningCluster, certs: Certificates) -> None:
    """What an operator does before the brokers replicate (Kafka: `kafka-storage format --add-scram`, or
    kafka-configs against ZooKeeper): the brokers' own SCRAM credential."""
    client = admin(cluster, certs)  # held until the futures are done: they die with it
    futures = client.alter_user_scram_credentials([UserScramCredentialUpsertion(
        "broker", ScramCredentialInfo(ScramMechanism.SCRAM_SHA_512, 8192), BROKER_PASSWORD.encode())])
    for future in futures.values():
        future.result(30)


def create_topic(cluster: RunningCluster, certs: Certificates, name: str, min_insync_replicas: int) -> None:
    client = admin(cluster, certs)
    futures = client.create_topics([NewTopic(
        name, 3, 3, config={"min.insync.replicas": str(min_insync_replicas)})])
    for future in futures.values():
        future.result(30)
    cluster.leader_of(name, 2)


def leaders(cluster: RunningCluster, topic: str) -> set[int]:
    return {int(p.leader_id) for p in cluster.describe(topic).values()}


def auth_failures(cluster: RunningCluster) -> dict[int, list[str]]:
    return {i: [line for line in b.log_text().splitlines() if AUTH_FAILED in line] for i, b in cluster.brokers.items()}


def read_committed(cluster: RunningCluster, certs: Certificates, topic: str, count: int) -> list[str]:
    consumer = confluent_kafka.Consumer({
        "bootstrap.servers": cluster.bootstrap_servers, **client_config(certs), "group.id": "checker",
        "isolation.level": "read_committed", "enable.auto.commit": False})
    consumer.assign([confluent_kafka.TopicPartition(topic, p, confluent_kafka.OFFSET_BEGINNING) for p in range(3)])
    seen: list[str] = []
    try:
        deadline = time.monotonic() + 60
        while len(seen) < count and time.monotonic() < deadline:
            for message in consumer.consume(100, 0.5):
                assert message.error() is None, message.error()
                seen.append(message.value().decode())
    finally:
        consumer.close()
    return seen


def test_replication_and_transactions_over_sasl_ssl_with_scram(tmp_path: Path, certs: Certificates) -> None:
    with secured_cluster(tmp_path, certs, BROKER_PASSWORD) as cluster:
        add_broker_user(cluster, certs)
        create_topic(cluster, certs, "orders", min_insync_replicas=3)
        producer = confluent_kafka.Producer({"bootstrap.servers": cluster.bootstrap_servers, **client_config(certs),
                                             "acks": "all", "enable.idempotence": True})
        errors: list[object] = []
        for i in range(300):
            producer.produce("orders", value=str(i).encode(), partition=i % 3,
                             on_delivery=lambda err, _msg: errors.append(err) if err is not None else None)
        assert producer.flush(90) == 0
        # acks=all with min.insync.replicas=3: acknowledged only once both followers fetched each record.
        assert errors == []
        cluster.wait_for_isr("orders", 3)

        create_topic(cluster, certs, "payments", min_insync_replicas=2)
        assert len(leaders(cluster, "payments")) >= 2  # the markers go to at least one remote leader
        transactional = confluent_kafka.Producer({"bootstrap.servers": cluster.bootstrap_servers,
                                                  **client_config(certs), "transactional.id": "payments-1"})
        transactional.init_transactions(60)
        transactional.begin_transaction()
        for i in range(30):
            transactional.produce("payments", value=f"p{i}".encode(), partition=i % 3)
        transactional.commit_transaction(60)
        # read_committed sees a partition's records only once its leader wrote the commit marker.
        assert sorted(read_committed(cluster, certs, "payments", 30)) == sorted(f"p{i}" for i in range(30))
        assert auth_failures(cluster) == {1: [], 2: [], 3: []}


def test_a_wrong_inter_broker_password_keeps_followers_out_of_the_isr(tmp_path: Path, certs: Certificates) -> None:
    # A short lag time so the ISR (all replicas at creation, as in Kafka) shrinks soon; a short backoff so the
    # followers retry many times in the window below.
    settings = {"replica.lag.time.max.ms": 2000, "replica.fetch.backoff.ms": 200}
    with secured_cluster(tmp_path, certs, "not-the-broker-password", **settings) as cluster:
        add_broker_user(cluster, certs)
        create_topic(cluster, certs, "orders", min_insync_replicas=1)
        followed = {b: leaders(cluster, "orders") - {b} for b in cluster.brokers}
        wait_until(lambda: all(len(auth_failures(cluster)[b]) >= len(followed[b]) for b in cluster.brokers), 60,
                   "every follower to log its refused login")
        wait_until(lambda: all(len(p.isr_nodes) == 1 for p in cluster.describe("orders").values()), 60,
                   "the ISR to shrink to the leaders")
        # The followers never get in: watched for 3 s, about 15 refused logins per follower and leader.
        watch_until = time.monotonic() + 3
        while time.monotonic() < watch_until:
            assert all(len(p.isr_nodes) == 1 for p in cluster.describe("orders").values())
        assert all(broker.running for broker in cluster.brokers.values())  # refused, not crashed
        for broker_id, lines in auth_failures(cluster).items():
            # One clear line per leader followed, not one per retry.
            named = [int(m.group(1)) for line in lines if (m := re.search(r"broker=(\d+)", line))]
            assert sorted(named) == sorted(followed[broker_id]), lines
            assert all("SCRAM-SHA-512 as broker" in line for line in lines), lines


def test_followers_need_cluster_action_then_rejoin_the_isr(tmp_path: Path, certs: Certificates) -> None:
    """Kafka's rule for follower fetches: CLUSTER_ACTION on the cluster, from super.users or an ACL."""
    settings = {"super.users": "User:admin", "replica.lag.time.max.ms": 2000, "replica.fetch.backoff.ms": 200}
    with secured_cluster(tmp_path, certs, BROKER_PASSWORD, **settings) as cluster:
        add_broker_user(cluster, certs)
        create_topic(cluster, certs, "orders", min_insync_replicas=1)

        def denied_lines() -> dict[int, list[str]]:
            return {i: [line for line in b.log_text().splitlines() if "replica_fetcher.not_authorized" in line]
                    for i, b in cluster.brokers.items()}

        wait_until(lambda: all(denied_lines().values()), 60, "every follower to log that it is not authorized")
        wait_until(lambda: all(len(p.isr_nodes) == 1 for p in cluster.describe("orders").values()), 60,
                   "the ISR to shrink to the leaders: an unauthorized fetch does not count")
        client = admin(cluster, certs)
        futures = client.create_acls([AclBinding(
            ResourceType.BROKER, "kafka-cluster", ResourcePatternType.LITERAL, "User:broker", "*",
            AclOperation.CLUSTER_ACTION, AclPermissionType.ALLOW)])
        for future in futures.values():
            future.result(30)
        cluster.wait_for_isr("orders", 3)
        # Logged once per leader followed, not once per retry.
        assert all(len(lines) <= 2 for lines in denied_lines().values()), denied_lines()
        assert auth_failures(cluster) == {1: [], 2: [], 3: []}
