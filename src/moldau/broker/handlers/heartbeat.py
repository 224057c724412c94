"""Heartbeat (12): keep a member's session alive; REBALANCE_IN_PROGRESS tells it to rejoin."""

from __future__ import annotations

from moldau.broker.errors import ApiError
from moldau.protocol import messages

API_KEY = 12
Response = messages.HeartbeatResponse


async def handle(conn, header, request: messages.HeartbeatRequest) -> Response:
    try:
        error = conn.broker.group_coordinator.heartbeat(
            request.group_id, request.member_id,
            request.group_instance_id if header.api_version >= 3 else None, request.generation_id)
    except ApiError as exc:
        error = exc.error_code
    return Response(throttle_time_ms=0, error_code=error)
