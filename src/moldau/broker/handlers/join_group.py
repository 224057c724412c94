"""JoinGroup (11): join a classic group; the response waits (parked) until the rebalance's join phase ends."""

from __future__ import annotations

from moldau.broker.errors import ApiError
from moldau.coordinator.group_coordinator import JoinRequest, JoinResult
from moldau.protocol import messages

API_KEY = 11
Response = messages.JoinGroupResponse


def client_host(conn) -> str:
    """Kafka reports the client's address as Java's `InetAddress.toString()`: "/127.0.0.1"."""
    return "/" + conn.peer.rpartition(":")[0]


async def handle(conn, header, request: messages.JoinGroupRequest) -> Response:
    version = header.api_version
    join = JoinRequest(
        group_id=request.group_id,
        member_id=request.member_id,
        group_instance_id=request.group_instance_id if version >= 5 else None,
        protocol_type=request.protocol_type,
        protocols=[(p.name, bytes(p.metadata)) for p in request.protocols],
        session_timeout_ms=request.session_timeout_ms,
        # v0 has no rebalance timeout: Kafka uses the session timeout.
        rebalance_timeout_ms=request.rebalance_timeout_ms if version >= 1 else request.session_timeout_ms,
        client_id=header.client_id or "",
        client_host=client_host(conn),
        require_known_member_id=version >= 4,
        supports_skip_assignment=version >= 9,
    )
    try:
        result = await conn.broker.group_coordinator.join_group(join)
    except ApiError as exc:
        result = JoinResult(exc.error_code, request.member_id)
    return Response(
        throttle_time_ms=0, error_code=result.error, generation_id=result.generation_id,
        protocol_type=result.protocol_type, 
        # protocol_name is nullable from v7 only.
        protocol_name=result.protocol_name if version >= 7 or result.protocol_name is not None else "",
        leader=result.leader, skip_assignment=result.skip_assignment, member_id=result.member_id,
        members=[Response.JoinGroupResponseMember(member_id=m, group_instance_id=i, metadata=d)
                 for m, i, d in result.members])
