"""The ACL matrix: for each API family, a principal without ACLs is refused with Kafka's error code,
allowed once the matching ACL exists, and refused again when a DENY is added (deny beats allow).

Alice authenticates with SASL/PLAIN; the PLAINTEXT listener is an admin listener (`User:ANONYMOUS`
is a super user), as in a typical Kafka deployment.
"""

from __future__ import annotations

import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import pytest

from moldau.client.client import Client
from moldau.client.security import ClientSecurity
from moldau.client.security_admin import create_acls, delete_acls, describe_acls
from moldau.protocol import messages
from moldau.protocol.errors import ErrorCode
from moldau.protocol.records import Record, build_batch
from moldau.security.acl import (
    CLUSTER_NAME,
    AclBinding,
    AclBindingFilter,
    AclOperation,
    AclPermissionType,
    PatternType,
    ResourceType,
)
from moldau.testing import running_broker

JAAS = ('org.apache.kafka.common.security.plain.PlainLoginModule required '
        'user_alice="alice-secret" user_admin="admin-secret";')
ALICE = "User:alice"
TOPIC = "matrix-topic"
Op, Res = AclOperation, ResourceType


@pytest.fixture(scope="module")
def secured():
    with running_broker(listeners="PLAINTEXT://127.0.0.1:0,SASL_PLAINTEXT://127.0.0.1:0",
                        sasl_enabled_mechanisms="PLAIN", sasl_jaas_config=JAAS, num_partitions=1,
                        authorizer_class_name="org.apache.kafka.metadata.authorizer.StandardAuthorizer",
                        super_users="User:admin;User:ANONYMOUS", auto_create_topics_enable="false") as broker:
        with Client(broker.bootstrap("PLAINTEXT")) as admin:
            admin.create_topic(TOPIC, 1)
        yield broker


def alice(broker) -> Client:
    security = ClientSecurity.from_properties({"security.protocol": "SASL_PLAINTEXT", "sasl.mechanism": "PLAIN",
                                               "sasl.username": "alice", "sasl.password": "alice-secret"})
    return Client(broker.bootstrap("SASL_PLAINTEXT"), security=security)


def acl(resource_type: ResourceType, name: str, operation: AclOperation,
        permission: AclPermissionType = AclPermissionType.ALLOW, pattern: PatternType = PatternType.LITERAL):
    return AclBinding(resource_type, name, pattern, ALICE, "*", operation, permission)


# -- the actions, each returning the error code Alice gets --------------------------------------------

def produce(c: Client) -> int:
    r = messages.ProduceRequest
    batch = build_batch([Record(0, int(time.time() * 1000), b"k", b"v", [])])
    response = c.send(0, r(acks=-1, timeout_ms=5000, topic_data=[r.TopicProduceData(
        name=TOPIC, partition_data=[r.PartitionProduceData(index=0, records=batch)])]), version=9)
    return response.responses[0].partition_responses[0].error_code


def fetch(c: Client) -> int:
    r = messages.FetchRequest
    response = c.send(1, r(replica_id=-1, max_wait_ms=0, min_bytes=0, max_bytes=1 << 20, topics=[r.FetchTopic(
        topic=TOPIC, partitions=[r.FetchPartition(partition=0, fetch_offset=0, partition_max_bytes=1 << 20)])]),
        version=12)
    return response.responses[0].partitions[0].error_code


def join_group(c: Client) -> int:
    r = messages.JoinGroupRequest
    response = c.send(11, r(group_id="matrix-group", session_timeout_ms=10000, rebalance_timeout_ms=10000,
                            member_id="", protocol_type="consumer", protocols=[
                                r.JoinGroupRequestProtocol(name="range", metadata=b"")]), version=9)
    # KIP-394: a first join is answered MEMBER_ID_REQUIRED, which means the join was authorized.
    return ErrorCode.NONE if response.error_code == ErrorCode.MEMBER_ID_REQUIRED else response.error_code


def commit_offsets(c: Client) -> int:
    r = messages.OffsetCommitRequest
    response = c.send(8, r(group_id="matrix-group", generation_id_or_member_epoch=-1, member_id="", topics=[
        r.OffsetCommitRequestTopic(name=TOPIC, partitions=[
            r.OffsetCommitRequestPartition(partition_index=0, committed_offset=0)])]), version=8)
    return response.topics[0].partitions[0].error_code


def init_transactions(c: Client) -> int:
    response = c.send(22, messages.InitProducerIdRequest(transactional_id="matrix-txn",
                                                         transaction_timeout_ms=60000), version=4)
    return response.error_code


def init_idempotent_producer(c: Client) -> int:
    response = c.send(22, messages.InitProducerIdRequest(transactional_id=None, transaction_timeout_ms=60000),
                      version=4)
    return response.error_code


def create_topic(c: Client) -> int:
    r = messages.CreateTopicsRequest
    name = f"created-{uuid.uuid4().hex[:8]}"
    response = c.send(19, r(timeout_ms=5000, validate_only=True, topics=[
        r.CreatableTopic(name=name, num_partitions=1, replication_factor=1)]))
    return response.topics[0].error_code


def delete_topic(c: Client) -> int:
    r = messages.DeleteTopicsRequest
    response = c.send(20, r(topic_names=["matrix-doomed"], timeout_ms=5000), version=5)
    return response.responses[0].error_code


def describe_configs(c: Client) -> int:
    r = messages.DescribeConfigsRequest
    response = c.send(32, r(resources=[r.DescribeConfigsResource(resource_type=2, resource_name=TOPIC)]))
    return response.results[0].error_code


def alter_configs(c: Client) -> int:
    r = messages.IncrementalAlterConfigsRequest
    response = c.send(44, r(validate_only=True, resources=[r.AlterConfigsResource(
        resource_type=2, resource_name=TOPIC, configs=[
            r.AlterableConfig(name="retention.ms", config_operation=0, value="1000")])]))
    return response.responses[0].error_code


def describe_acls_action(c: Client) -> int:
    response = c.send(29, messages.DescribeAclsRequest(resource_type_filter=1, pattern_type_filter=1,
                                                       operation=1, permission_type=1))
    return response.error_code


def create_acls_action(c: Client) -> int:
    r = messages.CreateAclsRequest
    response = c.send(30, r(creations=[r.AclCreation(resource_type=2, resource_name="x", resource_pattern_type=3,
                                                     principal="User:bob", host="*", operation=3,
                                                     permission_type=3)]))
    return response.results[0].error_code


@dataclass(frozen=True)
class Row:
    family: str
    action: Callable[[Client], int]
    refused: ErrorCode
    grants: tuple[AclBinding, ...]
    deny: AclBinding
    setup: Callable[[Client], None] | None = None


ROWS = [
    Row("produce", produce, ErrorCode.TOPIC_AUTHORIZATION_FAILED, (acl(Res.TOPIC, TOPIC, Op.WRITE),),
        acl(Res.TOPIC, TOPIC, Op.WRITE, AclPermissionType.DENY)),
    Row("fetch", fetch, ErrorCode.TOPIC_AUTHORIZATION_FAILED, (acl(Res.TOPIC, "matrix-", Op.READ,
                                                                    pattern=PatternType.PREFIXED),),
        acl(Res.TOPIC, TOPIC, Op.READ, AclPermissionType.DENY)),
    Row("group join", join_group, ErrorCode.GROUP_AUTHORIZATION_FAILED, (acl(Res.GROUP, "matrix-group", Op.READ),),
        acl(Res.GROUP, "*", Op.ALL, AclPermissionType.DENY)),
    Row("group commit", commit_offsets, ErrorCode.GROUP_AUTHORIZATION_FAILED,
        (acl(Res.GROUP, "matrix-group", Op.READ), acl(Res.TOPIC, TOPIC, Op.READ)),
        acl(Res.GROUP, "matrix-", Op.READ, AclPermissionType.DENY, PatternType.PREFIXED)),
    Row("transactions", init_transactions, ErrorCode.TRANSACTIONAL_ID_AUTHORIZATION_FAILED,
        (acl(Res.TRANSACTIONAL_ID, "matrix-txn", Op.WRITE),),
        acl(Res.TRANSACTIONAL_ID, "matrix-txn", Op.WRITE, AclPermissionType.DENY)),
    # KIP-679: IDEMPOTENT_WRITE on the cluster (or WRITE on some topic) makes a producer idempotent.
    Row("idempotent producer", init_idempotent_producer, ErrorCode.CLUSTER_AUTHORIZATION_FAILED,
        (acl(Res.CLUSTER, CLUSTER_NAME, Op.IDEMPOTENT_WRITE),),
        acl(Res.CLUSTER, CLUSTER_NAME, Op.IDEMPOTENT_WRITE, AclPermissionType.DENY)),
    # CREATE on the cluster would allow every topic whatever the topic ACLs say (Kafka's CreateTopics).
    Row("create topics", create_topic, ErrorCode.TOPIC_AUTHORIZATION_FAILED,
        (acl(Res.TOPIC, "created-", Op.CREATE, pattern=PatternType.PREFIXED),),
        acl(Res.TOPIC, "*", Op.CREATE, AclPermissionType.DENY)),
    Row("delete topics", delete_topic, ErrorCode.TOPIC_AUTHORIZATION_FAILED, (acl(Res.TOPIC, "matrix-doomed",
                                                                                   Op.DELETE),),
        acl(Res.TOPIC, "matrix-doomed", Op.ALL, AclPermissionType.DENY),
        setup=lambda admin: admin.create_topic("matrix-doomed", 1)),
    Row("describe configs", describe_configs, ErrorCode.TOPIC_AUTHORIZATION_FAILED,
        (acl(Res.TOPIC, TOPIC, Op.ALTER_CONFIGS),),  # ALTER_CONFIGS implies DESCRIBE_CONFIGS
        acl(Res.TOPIC, TOPIC, Op.DESCRIBE_CONFIGS, AclPermissionType.DENY)),
    Row("alter configs", alter_configs, ErrorCode.TOPIC_AUTHORIZATION_FAILED, (acl(Res.TOPIC, TOPIC, Op.ALTER_CONFIGS),),
        acl(Res.TOPIC, TOPIC, Op.ALTER_CONFIGS, AclPermissionType.DENY)),
    Row("describe acls", describe_acls_action, ErrorCode.CLUSTER_AUTHORIZATION_FAILED,
        (acl(Res.CLUSTER, CLUSTER_NAME, Op.DESCRIBE),), acl(Res.CLUSTER, CLUSTER_NAME, Op.DESCRIBE,
                                                            AclPermissionType.DENY)),
    Row("create acls", create_acls_action, ErrorCode.CLUSTER_AUTHORIZATION_FAILED,
        (acl(Res.CLUSTER, CLUSTER_NAME, Op.ALTER),), acl(Res.CLUSTER, CLUSTER_NAME, Op.ALL, AclPermissionType.DENY)),
]


@pytest.mark.parametrize("row", ROWS, ids=[r.family for r in ROWS])
def test_acl_matrix(secured, row: Row):
    with Client(secured.bootstrap("PLAINTEXT")) as admin:
        delete_acls(admin, AclBindingFilter(Res.ANY, None, PatternType.ANY, ALICE, None, Op.ANY,
                                            AclPermissionType.ANY))
        if row.setup is not None:
            row.setup(admin)
        with alice(secured) as client:
            assert row.action(client) == row.refused, "refused without an ACL"
            create_acls(admin, list(row.grants))
            assert row.action(client) == ErrorCode.NONE, "allowed with the matching ACL"
            create_acls(admin, [row.deny])
            assert row.action(client) == row.refused, "a DENY wins over the ALLOW"
        assert len(describe_acls(admin, AclBindingFilter(Res.ANY, None, PatternType.ANY, ALICE, None, Op.ANY,
                                                         AclPermissionType.ANY))) == len(row.grants) + 1


def test_metadata_hides_topics_alice_may_not_describe(secured):
    with Client(secured.bootstrap("PLAINTEXT")) as admin:
        delete_acls(admin, AclBindingFilter(Res.ANY, None, PatternType.ANY, ALICE, None, Op.ANY,
                                            AclPermissionType.ANY))
        with alice(secured) as client:
            assert TOPIC not in {t.name for t in client.metadata(None).topics}
            assert client.metadata([TOPIC]).topics[0].error_code == ErrorCode.TOPIC_AUTHORIZATION_FAILED
            create_acls(admin, [acl(Res.TOPIC, TOPIC, Op.WRITE)])  # WRITE implies DESCRIBE
            assert TOPIC in {t.name for t in client.metadata(None).topics}
        assert TOPIC in {t.name for t in admin.metadata(None).topics}  # ANONYMOUS is a super user here


def test_acls_survive_a_restart(tmp_path):
    settings = {'listeners': "PLAINTEXT://127.0.0.1:0", 'authorizer_class_name': "StandardAuthorizer",
                    'super_users': "User:ANONYMOUS"}
    binding = acl(Res.TOPIC, "kept", Op.READ)
    with running_broker(data_dir=tmp_path, **settings) as broker, Client(broker.bootstrap_servers) as admin:
        create_acls(admin, [binding])
    with running_broker(data_dir=tmp_path, **settings) as broker, Client(broker.bootstrap_servers) as admin:
        everything = AclBindingFilter(Res.ANY, None, PatternType.ANY, None, None, Op.ANY, AclPermissionType.ANY)
        assert describe_acls(admin, everything) == [binding]


def test_real_clients_are_refused_then_allowed(secured):
    """librdkafka and kafka-python see TOPIC_AUTHORIZATION_FAILED, then produce once the ACL exists."""
    from confluent_kafka import KafkaError, Producer
    from kafka import KafkaProducer
    from kafka.errors import TopicAuthorizationFailedError

    topic = f"real-{uuid.uuid4().hex[:8]}"
    with Client(secured.bootstrap("PLAINTEXT")) as admin:
        admin.create_topic(topic, 1)
        bootstrap = secured.bootstrap("SASL_PLAINTEXT")
        settings = {"bootstrap.servers": bootstrap, "security.protocol": "SASL_PLAINTEXT", "sasl.mechanism": "PLAIN",
                    "sasl.username": "alice", "sasl.password": "alice-secret", "message.timeout.ms": 10000}
        results: list[Any] = []
        producer = Producer(settings)
        producer.produce(topic, b"v", on_delivery=lambda err, msg: results.append(err))
        producer.flush(15)
        assert results and results[0] is not None and results[0].code() == KafkaError.TOPIC_AUTHORIZATION_FAILED
        python = {"bootstrap_servers": bootstrap, "security_protocol": "SASL_PLAINTEXT", "sasl_mechanism": "PLAIN",
                  "sasl_plain_username": "alice", "sasl_plain_password": "alice-secret", "max_block_ms": 10000}
        # Not idempotent: an idempotent producer's InitProducerId would already fail with
        # CLUSTER_AUTHORIZATION_FAILED (it needs IDEMPOTENT_WRITE, or WRITE on some topic; KIP-679).
        python_producer = KafkaProducer(enable_idempotence=False, **python)
        try:
            with pytest.raises(TopicAuthorizationFailedError):
                python_producer.send(topic, b"v").get(15)
        finally:
            python_producer.close(5)
        create_acls(admin, [acl(Res.TOPIC, topic, Op.WRITE)])
        python_producer = KafkaProducer(**python)
        try:
            assert python_producer.send(topic, b"v").get(15).offset == 0
        finally:
            python_producer.close(5)
        results.clear()
        producer = Producer(settings)
        producer.produce(topic, b"v", on_delivery=lambda err, msg: results.append(err))
        producer.flush(15)
        assert results == [None]
