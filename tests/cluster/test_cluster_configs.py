"""Dynamic configs and security metadata hold cluster-wide: written through one broker, enforced on all.

One etcd and three `moldau server` processes with an authorizer and a SASL_PLAINTEXT listener beside the
PLAINTEXT one (whose ANONYMOUS principal is a super user: the inter-broker and admin listener). Each
change is made through one broker with confluent-kafka or kafka-python, and each check asks every broker
on its own (Moldau's client holds one connection to one broker), so a change that stayed on the broker
that received it fails the check on the others. The last test stops a broker, changes everything while it
is down, and restarts it: it takes the cluster's state from etcd.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Iterator
from pathlib import Path

import confluent_kafka
import pytest
from confluent_kafka.admin import (
    AclBinding,
    AclBindingFilter,
    AclOperation,
    AclPermissionType,
    AdminClient,
    AlterConfigOpType,
    ConfigEntry,
    ConfigResource,
    NewTopic,
    ResourcePatternType,
    ResourceType,
    ScramCredentialInfo,
    ScramMechanism,
    UserScramCredentialUpsertion,
)

from moldau.client.client import Client
from moldau.client.security import ClientSecurity
from moldau.client.security_admin import alter_quota, describe_quotas
from moldau.cluster.config_store import EtcdConfigStore
from moldau.cluster.etcd_server import find_etcd
from moldau.cluster.etcd_store import EtcdClusterStore
from moldau.cluster.image import ConfigChanged
from moldau.protocol.errors import ErrorCode
from moldau.security.acl import AclBinding as MoldauAcl
from moldau.security.acl import AclOperation as MoldauOp
from moldau.security.acl import AclPermissionType as MoldauPerm
from moldau.security.acl import PatternType as MoldauPattern
from moldau.security.acl import ResourceType as MoldauResource
from moldau.security.authorizer import STANDARD_AUTHORIZER, StandardAuthorizer
from moldau.security.principal import KafkaPrincipal
from moldau.testing_cluster import ClusterBroker, RunningCluster, running_cluster
from tests.cluster.events import until
from tests.fixtures import wait_until

pytestmark = pytest.mark.skipif(find_etcd() is None, reason="etcd is not installed (apt-get install etcd-server)")

TOPIC_TYPE, BROKER_TYPE = 2, 4
SET, DELETE = 0, 1  # IncrementalAlterConfigs' OpType
DYNAMIC_BROKER_CONFIG, DYNAMIC_DEFAULT_BROKER_CONFIG = 2, 3  # DescribeConfigs' ConfigSource (Kafka's DescribeConfigsResponse)
PROPAGATION_S = 20
SETTINGS = {
    "listeners": "PLAINTEXT://127.0.0.1:{port},SASL_PLAINTEXT://127.0.0.1:{sasl_port}",
    "sasl.enabled.mechanisms": "SCRAM-SHA-256,SCRAM-SHA-512",
    "authorizer.class.name": STANDARD_AUTHORIZER,
    "super.users": "User:ANONYMOUS",
    "log.retention.check.interval.ms": 300,
    "offsets.topic.replication.factor": 3,
}


@pytest.fixture(scope="module")
def cluster(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RunningCluster]:
    with running_cluster(3, data_dir=tmp_path_factory.mktemp("configs"), **SETTINGS) as running:
        yield running


def admin(broker: ClusterBroker) -> AdminClient:
    return AdminClient({"bootstrap.servers": broker.bootstrap_servers})


def through(broker: ClusterBroker, method: str, *args: object) -> dict:
    """confluent-kafka's AdminClient `method` through `broker`, waited for (the client outlives its futures)."""
    client = admin(broker)
    futures = getattr(client, method)(*args)
    return {key: future.result(30) for key, future in futures.items()}


def scram(user: str, password: str, mechanism: str = "SCRAM-SHA-256") -> ClientSecurity:
    return ClientSecurity(protocol="SASL_PLAINTEXT", mechanism=mechanism, username=user, password=password)


def as_user(broker: ClusterBroker, user: str, password: str, mechanism: str = "SCRAM-SHA-256") -> Client:
    """One SASL connection to exactly this broker (raises when it refuses the credentials)."""
    return Client(broker.sasl_bootstrap_servers, timeout=10, security=scram(user, password, mechanism))


def authenticates(broker: ClusterBroker, user: str, password: str, mechanism: str = "SCRAM-SHA-256") -> bool:
    try:
        as_user(broker, user, password, mechanism).close()
    except Exception:  # noqa: BLE001 - any refusal (SASL_AUTHENTICATION_FAILED, closed connection) is "no"
        return False
    return True


def topic_error(broker: ClusterBroker, user: str, password: str, topic: str) -> int:
    """The Metadata error this broker gives `user` for `topic` (0: described, 29: not authorized)."""
    with as_user(broker, user, password) as client:
        entry = next(t for t in client.metadata([topic]).topics if t.name == topic)
        return int(entry.error_code)


def described(broker: ClusterBroker, resource_type: int, name: str, key: str) -> tuple[str | None, int] | None:
    with Client(broker.bootstrap_servers, timeout=10) as client:
        result = client.describe_configs(resource_type, name, [key])
    for entry in result.configs:
        if entry.name == key:
            return entry.value, entry.config_source
    return None


def everywhere(cluster: RunningCluster, check, what: str, timeout: float = PROPAGATION_S) -> None:
    """Until `check(broker)` holds on every running broker."""
    wait_until(lambda: all(check(b) for b in cluster.brokers.values() if b.running), timeout, what)


def create_topic(cluster: RunningCluster, name: str, partitions: int = 1, replication_factor: int = 3,
                 config: dict[str, str] | None = None) -> None:
    through(cluster.broker(1), "create_topics", [NewTopic(name, partitions, replication_factor, config=config or {})])
    cluster.wait_for_isr(name, replication_factor)


def create_scram_user_confluent(broker: ClusterBroker, user: str, password: str) -> None:
    through(broker, "alter_user_scram_credentials", [UserScramCredentialUpsertion(
        user, ScramCredentialInfo(ScramMechanism.SCRAM_SHA_256, 4096), password.encode())])


def test_scram_user_created_through_one_broker_authenticates_on_every_broker(cluster: RunningCluster) -> None:
    from kafka.admin import KafkaAdminClient
    from kafka.admin import ScramMechanism as KScramMechanism
    from kafka.admin import UserScramCredentialUpsertion as KUp

    assert not authenticates(cluster.broker(2), "alice", "alice-secret")
    create_scram_user_confluent(cluster.broker(1), "alice", "alice-secret")
    everywhere(cluster, lambda b: authenticates(b, "alice", "alice-secret"), "alice to log in on every broker")
    assert not authenticates(cluster.broker(3), "alice", "wrong")
    # kafka-python creates bob (SCRAM-SHA-512) through broker 2; confluent-kafka logs in as bob on broker 3.
    kadmin = KafkaAdminClient(bootstrap_servers=cluster.broker(2).bootstrap_servers, request_timeout_ms=30000)
    try:
        errors = kadmin.alter_user_scram_credentials([KUp("bob", KScramMechanism.SCRAM_SHA_512, "bob-secret")])
        assert not any(errors.values()), errors
    finally:
        kadmin.close()
    everywhere(cluster, lambda b: authenticates(b, "bob", "bob-secret", "SCRAM-SHA-512"), "bob on every broker")
    bob = AdminClient({"bootstrap.servers": cluster.broker(3).sasl_bootstrap_servers,
                       "security.protocol": "SASL_PLAINTEXT", "sasl.mechanism": "SCRAM-SHA-512",
                       "sasl.username": "bob", "sasl.password": "bob-secret"})
    bob.list_topics(timeout=15)  # raises when the broker refuses bob


def test_acls_created_through_one_broker_are_enforced_on_every_broker(cluster: RunningCluster) -> None:
    from kafka.admin import (
        ACLFilter,
        ACLOperation,
        ACLPermissionType,
        ACLResourcePatternType,
        KafkaAdminClient,
        ResourcePatternFilter,
    )
    from kafka.admin import ResourceType as KResourceType

    create_scram_user_confluent(cluster.broker(1), "carol", "carol-secret")
    everywhere(cluster, lambda b: authenticates(b, "carol", "carol-secret"), "carol to log in everywhere")
    create_topic(cluster, "acl-topic")
    denied = int(ErrorCode.TOPIC_AUTHORIZATION_FAILED)
    assert all(topic_error(b, "carol", "carol-secret", "acl-topic") == denied for b in cluster.brokers.values())
    binding = AclBinding(ResourceType.TOPIC, "acl-topic", ResourcePatternType.LITERAL, "User:carol", "*",
                         AclOperation.DESCRIBE, AclPermissionType.ALLOW)
    through(cluster.broker(1), "create_acls", [binding])
    everywhere(cluster, lambda b: topic_error(b, "carol", "carol-secret", "acl-topic") == 0,
               "the ACL to let carol describe acl-topic on every broker")
    client = admin(cluster.broker(3))
    listed = client.describe_acls(AclBindingFilter(
        ResourceType.TOPIC, "acl-topic", ResourcePatternType.LITERAL, None, None, AclOperation.ANY,
        AclPermissionType.ANY)).result(30)
    assert [b.principal for b in listed] == ["User:carol"]
    # kafka-python deletes it through broker 2: denied again everywhere.
    kadmin = KafkaAdminClient(bootstrap_servers=cluster.broker(2).bootstrap_servers, request_timeout_ms=30000)
    try:
        results = kadmin.delete_acls([ACLFilter("User:carol", "*", ACLOperation.ANY, ACLPermissionType.ANY,
                                                ResourcePatternFilter(KResourceType.TOPIC, "acl-topic",
                                                                      ACLResourcePatternType.LITERAL))])
        assert len(results[0][1]) == 1, results
    finally:
        kadmin.close()
    everywhere(cluster, lambda b: topic_error(b, "carol", "carol-secret", "acl-topic") == denied,
               "the deleted ACL to deny carol on every broker")


def segment_files(broker: ClusterBroker, topic: str, partition: int = 0) -> list[str]:
    directory = broker.data_dir / f"{topic}-{partition}"
    return sorted(p.name for p in directory.glob("*.log")) if directory.exists() else []


def test_topic_config_altered_through_one_broker_applies_on_every_broker(cluster: RunningCluster) -> None:
    from kafka.admin import ConfigResource as KConfigResource
    from kafka.admin import ConfigResourceType, KafkaAdminClient

    create_topic(cluster, "retained", config={"segment.bytes": str(1024 * 1024)})
    producer = confluent_kafka.Producer({"bootstrap.servers": cluster.bootstrap_servers, "acks": "all",
                                         "linger.ms": 5})
    for _ in range(30):  # 3 MB: at least three 1 MB segments on every replica
        producer.produce("retained", value=b"x" * 100_000, partition=0)
    assert producer.flush(60) == 0
    everywhere(cluster, lambda b: len(segment_files(b, "retained")) >= 3, "three segments on every replica")
    # kafka-python alters it through broker 2 (IncrementalAlterConfigs).
    kadmin = KafkaAdminClient(bootstrap_servers=cluster.broker(2).bootstrap_servers, request_timeout_ms=30000)
    try:
        kadmin.alter_configs([KConfigResource(ConfigResourceType.TOPIC, "retained", configs={"retention.ms": "1"})],
                             incremental=True)
    finally:
        kadmin.close()
    everywhere(cluster, lambda b: described(b, TOPIC_TYPE, "retained", "retention.ms") == ("1", 1),
               "retention.ms=1 (DYNAMIC_TOPIC_CONFIG) described by every broker")
    resource = ConfigResource(ResourceType.TOPIC, "retained")
    seen = through(cluster.broker(3), "describe_configs", [resource])[resource]
    assert seen["retention.ms"].value == "1"
    # Applied to the hosted logs: every replica deletes its old segments (only the active one is left).
    everywhere(cluster, lambda b: len(segment_files(b, "retained")) == 1, "retention on every replica")


def test_cluster_default_broker_config_applies_on_every_broker(cluster: RunningCluster) -> None:
    create_topic(cluster, "bounded", partitions=3, replication_factor=1)
    leaders = {cluster.leader_of("bounded", p) for p in range(3)}
    # The cluster default is resource "" (confluent-kafka's AdminClient refuses an empty broker name).
    with Client(cluster.broker(1).bootstrap_servers, timeout=10) as client:
        client.incremental_alter_configs(BROKER_TYPE, "", [("message.max.bytes", SET, "20000")])
    everywhere(cluster, lambda b: described(b, BROKER_TYPE, str(b.broker_id), "message.max.bytes")
               == ("20000", DYNAMIC_DEFAULT_BROKER_CONFIG), "the cluster default on every broker")
    # Applied: every partition (led by different brokers) refuses a record larger than the new default.
    errors: list[confluent_kafka.KafkaError] = []
    producer = confluent_kafka.Producer({"bootstrap.servers": cluster.bootstrap_servers, "retries": 0})
    for partition in range(3):
        producer.produce("bounded", value=b"y" * 50_000, partition=partition,
                         on_delivery=lambda err, msg: errors.append(err))
    assert producer.flush(30) == 0
    assert len(leaders) == 3 and [e.code() if e else None for e in errors] == \
        [confluent_kafka.KafkaError.MSG_SIZE_TOO_LARGE] * 3
    with Client(cluster.broker(2).bootstrap_servers, timeout=10) as client:
        client.incremental_alter_configs(BROKER_TYPE, "", [("message.max.bytes", DELETE, None)])
    everywhere(cluster, lambda b: described(b, BROKER_TYPE, str(b.broker_id), "message.max.bytes")[1]
               != DYNAMIC_DEFAULT_BROKER_CONFIG, "the cluster default removed on every broker")


def test_per_broker_config_applies_to_that_broker_only(cluster: RunningCluster) -> None:
    from kafka.admin import ConfigResource as KConfigResource
    from kafka.admin import ConfigResourceType, KafkaAdminClient

    kadmin = KafkaAdminClient(bootstrap_servers=cluster.bootstrap_servers, request_timeout_ms=30000)
    try:  # kafka-python sends broker 2's resource to broker 2 (Kafka's layout: /config/brokers/2)
        kadmin.alter_configs([KConfigResource(ConfigResourceType.BROKER, "2",
                                              configs={"log.retention.bytes": "55555555"})], incremental=True)
    finally:
        kadmin.close()
    assert described(cluster.broker(2), BROKER_TYPE, "2", "log.retention.bytes") == ("55555555",
                                                                                    DYNAMIC_BROKER_CONFIG)
    for other in (1, 3):
        assert described(cluster.broker(other), BROKER_TYPE, str(other), "log.retention.bytes")[1] \
            != DYNAMIC_BROKER_CONFIG
    with Client(cluster.broker(2).bootstrap_servers, timeout=10) as client:
        client.incremental_alter_configs(BROKER_TYPE, "2", [("log.retention.bytes", DELETE, None)])
    assert described(cluster.broker(2), BROKER_TYPE, "2", "log.retention.bytes")[1] != DYNAMIC_BROKER_CONFIG


def test_client_quotas_altered_through_one_broker_are_seen_by_every_broker(cluster: RunningCluster) -> None:
    with Client(cluster.broker(3).bootstrap_servers, timeout=10) as client:
        alter_quota(client, [("client-id", "metered")], {"producer_byte_rate": 4096})

    def has_quota(broker: ClusterBroker) -> bool:
        with Client(broker.bootstrap_servers, timeout=10) as client:
            return any(dict(values).get("producer_byte_rate") == 4096 for _, values in describe_quotas(client))

    everywhere(cluster, has_quota, "the quota described by every broker")


def test_a_broker_restarted_later_takes_every_change_from_etcd(cluster: RunningCluster) -> None:
    create_topic(cluster, "late")
    cluster.stop(3)

    # Clients send "controller" requests to a broker that Metadata names: a live one, never the stopped one.
    with Client(cluster.broker(1).bootstrap_servers, timeout=10) as client:
        assert client.metadata([]).controller_id == 1
    create_scram_user_confluent(cluster.broker(1), "dave", "dave-secret")
    binding = AclBinding(ResourceType.TOPIC, "late", ResourcePatternType.LITERAL, "User:dave", "*",
                         AclOperation.DESCRIBE, AclPermissionType.ALLOW)
    through(cluster.broker(2), "create_acls", [binding])
    topic = ConfigResource(ResourceType.TOPIC, "late", incremental_configs=[
        ConfigEntry("retention.bytes", "123456789", incremental_operation=AlterConfigOpType.SET)])
    through(cluster.broker(1), "incremental_alter_configs", [topic])
    with Client(cluster.broker(2).bootstrap_servers, timeout=10) as client:
        client.incremental_alter_configs(BROKER_TYPE, "", [("log.retention.bytes", SET, "987654321")])
    try:
        started = time.monotonic()
        late = cluster.broker(3)
        late.start()
        late.wait_listening()
        assert authenticates(late, "dave", "dave-secret")
        assert topic_error(late, "dave", "dave-secret", "late") == 0
        assert described(late, TOPIC_TYPE, "late", "retention.bytes") == ("123456789", 1)
        assert described(late, BROKER_TYPE, "3", "log.retention.bytes") == ("987654321",
                                                                           DYNAMIC_DEFAULT_BROKER_CONFIG)
        assert time.monotonic() - started < 60
    finally:
        with Client(cluster.broker(1).bootstrap_servers, timeout=10) as client:
            client.incremental_alter_configs(BROKER_TYPE, "", [("log.retention.bytes", DELETE, None)])


async def test_concurrent_acl_creations_through_two_brokers_all_land(etcd_url: str) -> None:
    """Two brokers' authorizers write the one ACL list at once: compare-and-set keeps every binding, and
    each broker's authorizer reloads the other's through the watch (as ClusterMember forwards it)."""
    stores = [await EtcdClusterStore.connect(etcd_url) for _ in range(2)]
    try:
        configs = [EtcdConfigStore() for _ in stores]
        authorizers = [StandardAuthorizer(c, frozenset(), allow_if_no_acl=False) for c in configs]
        forwarders = []
        for store, config in zip(stores, configs, strict=True):
            config.attach(store)
            events = store.subscribe()

            async def forward(events=events, config=config) -> None:
                while True:
                    event = await events.get()
                    if isinstance(event, ConfigChanged):
                        config.changed(event.kind, event.name)

            forwarders.append(asyncio.get_running_loop().create_task(forward()))

        def acl(side: int, i: int) -> MoldauAcl:
            return MoldauAcl(MoldauResource.TOPIC, f"t{side}-{i}", MoldauPattern.LITERAL, f"User:u{side}", "*",
                             MoldauOp.READ, MoldauPerm.ALLOW)

        await asyncio.gather(*(authorizers[side].create([acl(side, i)]) for i in range(10) for side in (0, 1)))
        await until(stores[0], lambda: len(stores[0].image.security["acls"]) == 20, what="20 ACLs in the image")
        for authorizer in authorizers:
            deadline = time.monotonic() + PROPAGATION_S
            while len(authorizer.acls()) != 20 and time.monotonic() < deadline:
                await asyncio.sleep(0.01)  # the forwarder task applies the watch's events
            assert len(authorizer.acls()) == 20
        assert authorizers[1].authorize(KafkaPrincipal("User", "u0"), "h", MoldauOp.READ, MoldauResource.TOPIC,
                                        "t0-3")
        for task in forwarders:
            task.cancel()
    finally:
        for store in stores:
            await store.close()


def test_cluster_members_keep_no_local_copy_of_configs_or_security(cluster: RunningCluster) -> None:
    """The local metadata file of a cluster member holds none of it: etcd is the one copy."""
    for broker in cluster.brokers.values():
        text = (Path(broker.data_dir) / "__moldau_metadata.json").read_text()
        assert "alice" not in text and "acl-topic" not in text and "retention.ms" not in text
