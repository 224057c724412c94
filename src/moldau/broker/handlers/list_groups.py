"""ListGroups (16): every group this coordinator knows; v4 filters by state, v5 by type (classic or consumer)."""

from __future__ import annotations

from moldau.coordinator.consumer_group_coordinator import GROUP_TYPE_CONSUMER
from moldau.coordinator.service import GROUP_TYPE_CLASSIC
from moldau.protocol import messages
from moldau.protocol.errors import ErrorCode
from moldau.security.acl import CLUSTER_NAME, AclOperation, ResourceType

API_KEY = 16
Response = messages.ListGroupsResponse


async def handle(conn, header, request: messages.ListGroupsRequest) -> Response:
    coordinator = conn.broker.group_coordinator
    if not coordinator.loaded:
        return Response(throttle_time_ms=0, error_code=ErrorCode.COORDINATOR_LOAD_IN_PROGRESS, groups=[])
    version = header.api_version
    groups = coordinator.list_groups(request.states_filter if version >= 4 else [],
                                     request.types_filter if version >= 5 else [])
    listed = [Response.ListedGroup(group_id=g.group_id, protocol_type=g.protocol_type or "",
                                   group_state=g.state.value, group_type=GROUP_TYPE_CLASSIC) for g in groups]
    # KIP-848 consumer groups: protocol type "consumer", states Empty/Assigning/Reconciling/Stable.
    listed += [Response.ListedGroup(group_id=g.group_id, protocol_type=GROUP_TYPE_CONSUMER,
                                    group_state=g.state.value, group_type=GROUP_TYPE_CONSUMER)
               for g in coordinator.list_consumer_groups(request.states_filter if version >= 4 else [],
                                                         request.types_filter if version >= 5 else [])]
    session = conn.session
    if not session.allowed(AclOperation.DESCRIBE, ResourceType.CLUSTER, CLUSTER_NAME):
        # Kafka: without DESCRIBE on the cluster, only the groups the principal may DESCRIBE.
        listed = [g for g in listed if session.allowed(AclOperation.DESCRIBE, ResourceType.GROUP, g.group_id)]
    return Response(throttle_time_ms=0, error_code=ErrorCode.NONE,
                    groups=sorted(listed, key=lambda g: g.group_id))
