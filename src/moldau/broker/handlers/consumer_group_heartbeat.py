"""ConsumerGroupHeartbeat (68): join, heartbeat in and leave a KIP-848 consumer group.

v1 (KIP-1082) has the client generate its member id; v0 let the coordinator assign one on join, which this
broker still does when a v0 client sends an empty id.
"""

from __future__ import annotations

import uuid

from moldau.broker.errors import ApiError
from moldau.broker.handlers.join_group import client_host
from moldau.coordinator.consumer_group import Partitions
from moldau.coordinator.consumer_group_coordinator import HeartbeatRequest, HeartbeatResult
from moldau.protocol import messages
from moldau.protocol.errors import ErrorCode
from moldau.security.acl import AclOperation, ResourceType

API_KEY = 68
Response = messages.ConsumerGroupHeartbeatResponse


def _member_id(header, request: messages.ConsumerGroupHeartbeatRequest) -> str:
    if header.api_version == 0 and not request.member_id and request.member_epoch == 0:
        return str(uuid.uuid4())
    return request.member_id


async def handle(conn, header, request: messages.ConsumerGroupHeartbeatRequest,
                 ) -> messages.ConsumerGroupHeartbeatResponse:
    if request.subscribed_topic_names and conn.session.authorizer is not None:
        # Kafka: every subscribed topic must be DESCRIBE-able (TOPIC_AUTHORIZATION_FAILED names them).
        hidden = sorted(t for t in request.subscribed_topic_names
                        if not conn.session.allowed(AclOperation.DESCRIBE, ResourceType.TOPIC, t))
        if hidden:
            return Response(throttle_time_ms=0, error_code=ErrorCode.TOPIC_AUTHORIZATION_FAILED,
                            error_message=f"The member is not authorized to access topics: {hidden}",
                            member_id=request.member_id, member_epoch=request.member_epoch)
    owned: Partitions | None = None
    if request.topic_partitions is not None:
        owned = {}
        for tp in request.topic_partitions:
            if tp.partitions:
                owned.setdefault(tp.topic_id, set()).update(tp.partitions)
    req = HeartbeatRequest(
        group_id=request.group_id, member_id=_member_id(header, request), member_epoch=request.member_epoch,
        instance_id=request.instance_id, rack_id=request.rack_id,
        rebalance_timeout_ms=request.rebalance_timeout_ms,
        subscribed_topic_names=request.subscribed_topic_names,
        subscribed_topic_regex=request.subscribed_topic_regex if header.api_version >= 1 else None,
        server_assignor=request.server_assignor, owned=owned, client_id=header.client_id or "",
        client_host=client_host(conn))
    try:
        result = await conn.broker.group_coordinator.consumer_group_heartbeat(req)
    except ApiError as exc:
        result = HeartbeatResult(exc.error_code, None, req.member_id, req.member_epoch)
    assignment = None
    if result.assignment is not None:
        assignment = Response.Assignment(topic_partitions=[
            Response.TopicPartitions(topic_id=t, partitions=sorted(ps))
            for t, ps in sorted(result.assignment.items()) if ps])
    return Response(throttle_time_ms=0, error_code=result.error, error_message=result.message,
                    member_id=result.member_id, member_epoch=result.member_epoch,
                    heartbeat_interval_ms=result.heartbeat_interval_ms, assignment=assignment)
