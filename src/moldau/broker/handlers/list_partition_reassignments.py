"""ListPartitionReassignments (46): the ongoing reassignments (KIP-455), as KRaft lists them: partitions
with adding or removing replicas, with the current replica set; topics and partitions that don't exist
are left out. A single broker never has one."""

from __future__ import annotations

from moldau.cluster.reassignment import in_progress
from moldau.protocol import messages
from moldau.protocol.errors import ErrorCode
from moldau.security.acl import CLUSTER_NAME, AclOperation, ResourceType

API_KEY = 46
Response = messages.ListPartitionReassignmentsResponse


async def handle(conn, header, request: messages.ListPartitionReassignmentsRequest) -> Response:
    if not conn.session.allowed(AclOperation.DESCRIBE, ResourceType.CLUSTER, CLUSTER_NAME):
        return Response(throttle_time_ms=0, error_code=ErrorCode.CLUSTER_AUTHORIZATION_FAILED,
                        error_message="Cluster authorization failed.", topics=[])
    cluster = conn.broker.cluster
    partitions = cluster.store.image.partitions if cluster is not None else {}
    if request.topics is None:
        wanted = sorted(partitions)
    else:
        wanted = [(t.name, p) for t in request.topics for p in t.partition_indexes]
    by_topic: dict[str, list] = {}
    for tp in wanted:
        state = partitions.get(tp)
        if state is None or not in_progress(state):
            continue
        by_topic.setdefault(tp[0], []).append(Response.OngoingPartitionReassignment(
            partition_index=tp[1], replicas=list(state.replicas), adding_replicas=list(state.adding),
            removing_replicas=list(state.removing)))
    return Response(throttle_time_ms=0, error_code=ErrorCode.NONE, error_message=None, topics=[
        Response.OngoingTopicReassignment(name=name, partitions=parts) for name, parts in by_topic.items()])
