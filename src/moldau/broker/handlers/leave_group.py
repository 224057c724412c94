"""LeaveGroup (13): one member (v0-v2) or a batch of members by id or group instance id (v3+, KIP-345)."""

from __future__ import annotations

from moldau.broker.errors import ApiError
from moldau.protocol import messages
from moldau.protocol.errors import ErrorCode

API_KEY = 13
Response = messages.LeaveGroupResponse


async def handle(conn, header, request: messages.LeaveGroupRequest) -> Response:
    batched = header.api_version >= 3
    leaving = ([(m.member_id, m.group_instance_id) for m in request.members] if batched
               else [(request.member_id, None)])
    try:
        error, errors = conn.broker.group_coordinator.leave_group(request.group_id, leaving)
    except ApiError as exc:
        error, errors = exc.error_code, []
    if not batched:
        return Response(throttle_time_ms=0, error_code=error if error else (errors or [ErrorCode.NONE])[0])
    return Response(throttle_time_ms=0, error_code=error, members=[
        Response.MemberResponse(member_id=m, group_instance_id=i, error_code=e)
        for (m, i), e in zip(leaving, errors, strict=False)])
