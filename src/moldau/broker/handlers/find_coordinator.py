"""FindCoordinator (10): this broker coordinates every group; v4+ answers a batch of `coordinator_keys`.

Like Kafka, the first lookup of a group creates `__consumer_offsets`, and the first lookup of a
transactional id (key type 1) creates `__transaction_state`.
"""

from __future__ import annotations

import logging
from typing import Any

from moldau.broker.errors import ApiError
from moldau.protocol import messages
from moldau.protocol.errors import ErrorCode
from moldau.security.acl import AclOperation, ResourceType

API_KEY = 10
KEY_TYPE_GROUP, KEY_TYPE_TRANSACTION = 0, 1
Response = messages.FindCoordinatorResponse

log = logging.getLogger(__name__)


async def _lookup(conn, key: str, key_type: int) -> tuple[ErrorCode, str | None, Any]:
    """(error, message, the coordinator's endpoint): the leader of the key's internal-topic partition."""
    broker = conn.broker
    coordinators = {
        # key type: (what the key names, the internal topic its coordinator writes, created on first use,
        # the partition of that topic a key belongs to)
        KEY_TYPE_GROUP: ("group id", "__consumer_offsets", broker.group_coordinator.log.ensure_topic,
                         broker.group_coordinator.log.partition_of),
        KEY_TYPE_TRANSACTION: ("transactional id", "__transaction_state",
                               broker.transaction_coordinator.state.ensure_topic,
                               broker.transaction_coordinator.state.partition_of),
    }
    if key_type not in coordinators:
        return ErrorCode.INVALID_REQUEST, f"Unknown coordinator key type {key_type}", None
    what, topic, ensure_topic, partition_of = coordinators[key_type]
    if not key:
        return ErrorCode.INVALID_REQUEST, f"The {what} must not be empty", None
    resource = ResourceType.GROUP if key_type == KEY_TYPE_GROUP else ResourceType.TRANSACTIONAL_ID
    if not conn.session.allowed(AclOperation.DESCRIBE, resource, key):
        error = (ErrorCode.GROUP_AUTHORIZATION_FAILED if key_type == KEY_TYPE_GROUP
                 else ErrorCode.TRANSACTIONAL_ID_AUTHORIZATION_FAILED)
        return error, None, None
    try:
        await ensure_topic()
    except ApiError as exc:
        log.warning("cannot create %s: %s", topic, exc)
        return ErrorCode.COORDINATOR_NOT_AVAILABLE, exc.message, None
    endpoints = broker.endpoints(conn.listener_name)
    if broker.cluster is None:
        return ErrorCode.NONE, None, endpoints[0]
    # In a cluster the coordinator is the leader of the key's partition (Kafka's FindCoordinator).
    try:
        leader = broker.replica_manager.hosted_partition(topic, partition_of(key)).leader_id
    except ApiError:
        leader = -1
    endpoint = next((e for e in endpoints if e.node_id == leader), None)
    if endpoint is None:
        return ErrorCode.COORDINATOR_NOT_AVAILABLE, "The coordinator is not available.", None
    return ErrorCode.NONE, None, endpoint


async def handle(conn, header, request: messages.FindCoordinatorRequest) -> Response:
    if header.api_version < 4:
        error, message, endpoint = await _lookup(conn, request.key, request.key_type)
        found = endpoint is not None
        return Response(throttle_time_ms=0, error_code=error, error_message=message,
                        node_id=endpoint.node_id if found else -1, host=endpoint.host if found else "",
                        port=endpoint.port if found else -1)
    coordinators = []
    for key in request.coordinator_keys:
        error, message, endpoint = await _lookup(conn, key, request.key_type)
        found = endpoint is not None
        coordinators.append(Response.Coordinator(
            key=key, node_id=endpoint.node_id if found else -1, host=endpoint.host if found else "",
            port=endpoint.port if found else -1, error_code=error, error_message=message))
    return Response(throttle_time_ms=0, coordinators=coordinators)
