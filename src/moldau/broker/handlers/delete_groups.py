"""DeleteGroups (42): delete empty groups and their offsets (NON_EMPTY_GROUP while members remain)."""

from __future__ import annotations

from moldau.broker.errors import ApiError
from moldau.protocol import messages
from moldau.protocol.errors import ErrorCode
from moldau.security.acl import AclOperation, ResourceType

API_KEY = 42
Response = messages.DeleteGroupsResponse


async def handle(conn, header, request: messages.DeleteGroupsRequest) -> Response:
    results = []
    for group_id in request.groups_names:
        if not conn.session.allowed(AclOperation.DELETE, ResourceType.GROUP, group_id):
            results.append(Response.DeletableGroupResult(group_id=group_id,
                                                         error_code=ErrorCode.GROUP_AUTHORIZATION_FAILED))
            continue
        try:
            error = (await conn.broker.group_coordinator.delete_groups([group_id]))[group_id]
        except ApiError as exc:
            error = exc.error_code
        results.append(Response.DeletableGroupResult(group_id=group_id, error_code=error))
    return Response(throttle_time_ms=0, results=results)
