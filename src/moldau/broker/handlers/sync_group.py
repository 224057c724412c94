"""SyncGroup (14): the leader hands in the assignment; every member's response waits for it."""

from __future__ import annotations

from moldau.broker.errors import ApiError
from moldau.coordinator.group_coordinator import SyncResult
from moldau.protocol import messages

API_KEY = 14
Response = messages.SyncGroupResponse


async def handle(conn, header, request: messages.SyncGroupRequest) -> Response:
    version = header.api_version
    assignments = {a.member_id: bytes(a.assignment) for a in request.assignments}
    try:
        result = await conn.broker.group_coordinator.sync_group(
            request.group_id, request.member_id, request.group_instance_id if version >= 3 else None,
            request.generation_id, request.protocol_type if version >= 5 else None,
            request.protocol_name if version >= 5 else None, assignments)
    except ApiError as exc:
        result = SyncResult(exc.error_code)
    return Response(throttle_time_ms=0, error_code=result.error, protocol_type=result.protocol_type,
                    protocol_name=result.protocol_name, assignment=result.assignment)
