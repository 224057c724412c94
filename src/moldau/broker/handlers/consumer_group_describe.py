"""ConsumerGroupDescribe (69): epochs, assignor and members (current and target assignment) of consumer groups."""

from __future__ import annotations

from typing import Any

from moldau.broker.errors import ApiError
from moldau.coordinator.consumer_group import ConsumerGroupState, Partitions
from moldau.protocol import messages
from moldau.protocol.errors import ErrorCode
from moldau.security.acl import AclOperation, ResourceType

API_KEY = 69
Response = messages.ConsumerGroupDescribeResponse
Group = Response.DescribedGroup
MEMBER_TYPE_CONSUMER = 1


def _assignment(parts: Partitions, names: dict) -> Any:
    return Response.Assignment(topic_partitions=[
        Response.TopicPartitions(topic_id=t, topic_name=names.get(t, ""), partitions=sorted(ps))
        for t, ps in sorted(parts.items()) if ps])


def _describe(conn, group_id: str) -> Any:
    coordinator = conn.broker.group_coordinator
    if not conn.session.allowed(AclOperation.DESCRIBE, ResourceType.GROUP, group_id):
        return Group(group_id=group_id, error_code=ErrorCode.GROUP_AUTHORIZATION_FAILED, group_state="")
    try:
        group = coordinator.describe_consumer_group(group_id)
    except ApiError as exc:
        return Group(group_id=group_id, error_code=exc.error_code, group_state="")
    if group is None:
        message = (f"Group {group_id} is not a consumer group." if group_id in coordinator.groups
                   else f"Group {group_id} not found.")
        return Group(group_id=group_id, error_code=ErrorCode.GROUP_ID_NOT_FOUND, error_message=message,
                     group_state=ConsumerGroupState.DEAD.value)
    names = coordinator.topic_names()
    return Group(
        group_id=group_id, error_code=ErrorCode.NONE, group_state=group.state.value, group_epoch=group.group_epoch,
        assignment_epoch=group.assignment_epoch, assignor_name=coordinator.preferred_assignor(group),
        members=[Response.Member(
            member_id=m.member_id, instance_id=m.instance_id, rack_id=m.rack_id, member_epoch=m.member_epoch,
            client_id=m.client_id, client_host=m.client_host, subscribed_topic_names=list(m.subscribed_topic_names),
            subscribed_topic_regex=m.subscribed_topic_regex, assignment=_assignment(m.assigned_partitions, names),
            target_assignment=_assignment(m.target, names), member_type=MEMBER_TYPE_CONSUMER)
            for m in group.members.values()])


async def handle(conn, header, request: messages.ConsumerGroupDescribeRequest) -> messages.ConsumerGroupDescribeResponse:
    return Response(throttle_time_ms=0, groups=[_describe(conn, g) for g in request.group_ids])
