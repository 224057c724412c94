"""DescribeGroups (15): state, protocol and members of classic groups (metadata and assignment when Stable)."""

from __future__ import annotations

from moldau.broker.errors import ApiError
from moldau.coordinator.classic_group import GroupState
from moldau.protocol import messages
from moldau.protocol.errors import ErrorCode
from moldau.security.acl import AclOperation, ResourceType

API_KEY = 15
Response = messages.DescribeGroupsResponse
AUTHORIZED_OPERATIONS_OMITTED = -2147483648  # Kafka's Integer.MIN_VALUE


def _describe(conn, group_id: str, version: int):
    result = Response.DescribedGroup(group_id=group_id, error_code=ErrorCode.NONE, group_state="Dead",
                                     protocol_type="", protocol_data="",
                                     authorized_operations=AUTHORIZED_OPERATIONS_OMITTED)
    if not conn.session.allowed(AclOperation.DESCRIBE, ResourceType.GROUP, group_id):
        result.error_code = ErrorCode.GROUP_AUTHORIZATION_FAILED
        return result
    try:
        group = conn.broker.group_coordinator.describe_group(group_id)
    except ApiError as exc:
        result.error_code = exc.error_code
        return result
    if group is None or group.is_in(GroupState.DEAD):
        if version >= 6:
            result.error_code = ErrorCode.GROUP_ID_NOT_FOUND
            result.error_message = (f"Group {group_id} is not a classic group."  # a KIP-848 consumer group
                                    if group_id in conn.broker.group_coordinator.consumer_groups
                                    else f"Group {group_id} not found.")
        return result
    stable = group.is_in(GroupState.STABLE)
    result.group_state = group.state.value
    result.protocol_type = group.protocol_type or ""
    result.protocol_data = (group.protocol_name or "") if stable else ""
    result.members = [Response.DescribedGroupMember(
        member_id=m.member_id, group_instance_id=m.group_instance_id, client_id=m.client_id,
        client_host=m.client_host, member_metadata=m.metadata(group.protocol_name) if stable else b"",
        member_assignment=m.assignment if stable else b"") for m in group.members.values()]
    return result


async def handle(conn, header, request: messages.DescribeGroupsRequest) -> Response:
    groups = [_describe(conn, g, header.api_version) for g in request.groups]
    if header.api_version >= 3 and request.include_authorized_operations:
        for group in groups:
            if group.error_code == ErrorCode.NONE:
                group.authorized_operations = conn.session.operations_bitfield(ResourceType.GROUP, group.group_id)
    return Response(throttle_time_ms=0, groups=groups)
