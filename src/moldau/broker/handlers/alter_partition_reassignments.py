"""AlterPartitionReassignments (45): start, replace or cancel partition reassignments (KIP-455).

Only in a cluster: the broker that receives the request writes the new partition states to etcd
(ClusterController.alter_reassignment, cluster/reassignment.py); the adding replicas then catch up by
fetching from the leader and the controller completes each reassignment once its target is in sync.
The answer comes when the reassignment is *started* (as in Kafka); ListPartitionReassignments shows it
until it completes. On a single broker there is nowhere to move a replica: every target other than the
broker itself is INVALID_REPLICA_ASSIGNMENT, and cancelling answers NO_REASSIGNMENT_IN_PROGRESS.
"""

from __future__ import annotations

import logging

from moldau.cluster.reassignment import validate_target
from moldau.errors import ApiError
from moldau.protocol import messages
from moldau.protocol.errors import ErrorCode
from moldau.security.acl import CLUSTER_NAME, AclOperation, ResourceType

API_KEY = 45
Response = messages.AlterPartitionReassignmentsResponse

log = logging.getLogger(__name__)


async def handle(conn, header, request: messages.AlterPartitionReassignmentsRequest) -> Response:
    allow_rf_change = request.allow_replication_factor_change if header.api_version >= 1 else True
    topics = []
    authorized = conn.session.allowed(AclOperation.ALTER, ResourceType.CLUSTER, CLUSTER_NAME)
    for topic in request.topics:
        partitions = []
        for wanted in topic.partitions:
            result = Response.ReassignablePartitionResponse(
                partition_index=wanted.partition_index, error_code=ErrorCode.NONE, error_message=None)
            try:
                if not authorized:
                    raise ApiError(ErrorCode.CLUSTER_AUTHORIZATION_FAILED, "Cluster authorization failed.")
                await _alter(conn.broker, topic.name, wanted.partition_index, wanted.replicas, allow_rf_change)
            except ApiError as exc:
                result.error_code, result.error_message = exc.error_code, exc.message
                log.info("reassignment of %s-%d refused: %s", topic.name, wanted.partition_index, exc.message)
            partitions.append(result)
        topics.append(Response.ReassignableTopicResponse(name=topic.name, partitions=partitions))
    if not authorized:
        return Response(throttle_time_ms=0, allow_replication_factor_change=allow_rf_change,
                        error_code=ErrorCode.CLUSTER_AUTHORIZATION_FAILED, error_message=None, responses=topics)
    return Response(throttle_time_ms=0, allow_replication_factor_change=allow_rf_change, error_code=ErrorCode.NONE,
                    error_message=None, responses=topics)


async def _alter(broker, topic: str, index: int, target: list[int] | None, allow_rf_change: bool) -> None:
    cluster = broker.cluster
    if cluster is not None and cluster.controller is not None:
        await cluster.controller.alter_reassignment((topic, index), target,
                                                   allow_replication_factor_change=allow_rf_change)
        return
    entry = broker.replica_manager.topics.get(topic)
    if entry is None or not 0 <= index < len(entry.partitions):
        raise ApiError(ErrorCode.UNKNOWN_TOPIC_OR_PARTITION, f"Unable to find partition {topic}-{index}.")
    if target is None:
        raise ApiError(ErrorCode.NO_REASSIGNMENT_IN_PROGRESS, "No reassignment is in progress for this partition.")
    validate_target(target, [broker.node_id], [broker.node_id], allow_rf_change)  # only [this broker] is valid
