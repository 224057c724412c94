"""Metadata (3): brokers, cluster id, controller, and topics with their partitions' leaders.

In a cluster each partition is described by the state the metadata store gave it (leader, leader epoch,
replicas, ISR, and the replicas on brokers that are not registered as offline); a single broker leads
everything itself.
"""

from __future__ import annotations

from moldau.broker.errors import ApiError
from moldau.broker.partition import Partition
from moldau.broker.replica_manager import ReplicaManager, Topic
from moldau.broker.topic_config import validate_topic_name
from moldau.protocol import messages
from moldau.protocol.errors import ErrorCode
from moldau.security.acl import CLUSTER_NAME, AclOperation, ResourceType

API_KEY = 3

# With no authorizer every operation is allowed; these are the AclOperation bits Kafka reports then.
TOPIC_OPERATIONS = sum(1 << op for op in (3, 4, 5, 6, 7, 8, 10, 11))
CLUSTER_OPERATIONS = sum(1 << op for op in (5, 7, 8, 9, 10, 11, 12, 13, 14))
UNSET_OPERATIONS = -(2**31)

Response = messages.MetadataResponse


def partition_entry(p: Partition, manager: ReplicaManager, live: frozenset[int]) -> Response.MetadataResponsePartition:
    state = p.state
    if state is None:
        return Response.MetadataResponsePartition(
            error_code=ErrorCode.NONE, partition_index=p.index, leader_id=p.node_id, leader_epoch=p.leader_epoch,
            replica_nodes=[p.node_id], isr_nodes=[p.node_id], offline_replicas=[])
    # Kafka: LEADER_NOT_AVAILABLE while no ISR member is alive to lead, and while the leader's broker is gone.
    leader = manager.live_leader(state)
    return Response.MetadataResponsePartition(
        error_code=ErrorCode.NONE if leader >= 0 else ErrorCode.LEADER_NOT_AVAILABLE,
        partition_index=p.index, leader_id=leader, leader_epoch=state.leader_epoch,
        replica_nodes=list(state.replicas), isr_nodes=list(state.isr), offline_replicas=p.offline_replicas(live))


def topic_entry(topic: Topic, node_id: int, include_operations: bool, session, manager: ReplicaManager,
                live: frozenset[int]) -> Response.MetadataResponseTopic:
    operations = UNSET_OPERATIONS
    if include_operations:
        operations = TOPIC_OPERATIONS
        if session is not None and session.authorizer is not None:
            operations = session.authorized_operations(ResourceType.TOPIC, topic.name)
    return Response.MetadataResponseTopic(
        error_code=ErrorCode.NONE,
        name=topic.name,
        topic_id=topic.topic_id,
        is_internal=topic.metadata.is_internal,
        partitions=[partition_entry(p, manager, live) for p in topic.partitions],
        topic_authorized_operations=operations,
    )


def error_entry(name: str | None, error: ErrorCode, topic_id=None) -> Response.MetadataResponseTopic:
    entry = Response.MetadataResponseTopic(error_code=error, name=name, partitions=[])
    if topic_id is not None:
        entry.topic_id = topic_id
    return entry


async def handle(conn, header, request: messages.MetadataRequest) -> Response:
    broker = conn.broker
    manager = broker.replica_manager
    version = header.api_version
    include_operations = bool(request.include_topic_authorized_operations)
    topics: list[Response.MetadataResponseTopic] = []
    # v0: an empty list means all topics; v1+: null means all topics.
    session = conn.session
    if request.topics is None or (version == 0 and not request.topics):
        # Topics the principal may not DESCRIBE are left out of "all topics", as in Kafka.
        live = frozenset(manager.brokers)
        topics = [topic_entry(t, broker.node_id, include_operations, session, manager, live)
                  for t in manager.topics.values()
                  if session.allowed(AclOperation.DESCRIBE, ResourceType.TOPIC, t.name)]
    else:
        allow_auto_create = version < 4 or request.allow_auto_topic_creation
        for wanted in request.topics:
            topics.append(await _lookup(broker, wanted, allow_auto_create, include_operations, session))
    cluster_operations = UNSET_OPERATIONS
    if request.include_cluster_authorized_operations:
        cluster_operations = session.authorized_operations(ResourceType.CLUSTER, CLUSTER_NAME)
        if cluster_operations is None:
            cluster_operations = CLUSTER_OPERATIONS
    return Response(
        throttle_time_ms=0,
        brokers=[
            Response.MetadataResponseBroker(node_id=e.node_id, host=e.host, port=e.port, rack=e.rack)
            for e in broker.endpoints(conn.listener_name)
        ],
        cluster_id=broker.cluster_id,
        controller_id=broker.controller_id,
        topics=topics,
        cluster_authorized_operations=cluster_operations,
    )


async def _lookup(broker, wanted, allow_auto_create: bool, include_operations: bool, session):
    manager, node_id = broker.replica_manager, broker.node_id
    name = wanted.name
    if name is None:
        topic = manager.topics_by_id.get(wanted.topic_id)
        if topic is None:
            return error_entry(None, ErrorCode.UNKNOWN_TOPIC_ID, wanted.topic_id)
        if not session.allowed(AclOperation.DESCRIBE, ResourceType.TOPIC, topic.name):
            return error_entry(None, ErrorCode.TOPIC_AUTHORIZATION_FAILED, wanted.topic_id)
        return topic_entry(topic, node_id, include_operations, session, manager, frozenset(manager.brokers))
    if not session.allowed(AclOperation.DESCRIBE, ResourceType.TOPIC, name):
        return error_entry(name, ErrorCode.TOPIC_AUTHORIZATION_FAILED)
    topic = manager.topics.get(name)
    if topic is None:
        if validate_topic_name(name):
            return error_entry(name, ErrorCode.INVALID_TOPIC_EXCEPTION)
        if not allow_auto_create:
            return error_entry(name, ErrorCode.UNKNOWN_TOPIC_OR_PARTITION)
        if not (session.allowed(AclOperation.CREATE, ResourceType.CLUSTER, CLUSTER_NAME)
                or session.allowed(AclOperation.CREATE, ResourceType.TOPIC, name)):
            return error_entry(name, ErrorCode.TOPIC_AUTHORIZATION_FAILED)
        try:
            topic = await broker.controller.auto_create(name)
        except ApiError as exc:
            return error_entry(name, exc.error_code)
        if topic is None:
            return error_entry(name, ErrorCode.UNKNOWN_TOPIC_OR_PARTITION)
    return topic_entry(topic, node_id, include_operations, session, manager, frozenset(manager.brokers))
