"""OffsetDelete (47): delete a group's committed offsets for topics it no longer consumes."""

from __future__ import annotations

from moldau.broker.errors import ApiError
from moldau.protocol import messages
from moldau.protocol.errors import ErrorCode
from moldau.security.acl import AclOperation, ResourceType

API_KEY = 47
Response = messages.OffsetDeleteResponse


async def handle(conn, header, request: messages.OffsetDeleteRequest) -> Response:
    manager = conn.broker.replica_manager
    wanted = [(t.name, p.partition_index) for t in request.topics for p in t.partitions]
    # Kafka: topics the principal may not READ answer TOPIC_AUTHORIZATION_FAILED and are left alone.
    unreadable = {t.name for t in request.topics
                  if not conn.session.allowed(AclOperation.READ, ResourceType.TOPIC, t.name)}
    known = [tp for tp in wanted if tp[0] not in unreadable and tp[0] in manager.topics and
             0 <= tp[1] < len(manager.topics[tp[0]].partitions)]
    try:
        error, errors = await conn.broker.group_coordinator.delete_offsets(request.group_id, known)
    except ApiError as exc:
        error, errors = exc.error_code, {}
    if error:
        return Response(error_code=error, throttle_time_ms=0, topics=[])
    topics = [Response.OffsetDeleteResponseTopic(name=t.name, partitions=[
        Response.OffsetDeleteResponsePartition(
            partition_index=p.partition_index,
            error_code=ErrorCode.TOPIC_AUTHORIZATION_FAILED if t.name in unreadable
            else errors.get((t.name, p.partition_index), ErrorCode.UNKNOWN_TOPIC_OR_PARTITION))
        for p in t.partitions]) for t in request.topics]
    return Response(error_code=ErrorCode.NONE, throttle_time_ms=0, topics=topics)
