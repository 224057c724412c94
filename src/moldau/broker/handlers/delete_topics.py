"""DeleteTopics (20): delete topics by name, or by topic id (v6+)."""

from __future__ import annotations

import uuid

from moldau.broker.errors import ApiError
from moldau.protocol import messages
from moldau.protocol.errors import ErrorCode
from moldau.security.acl import AclOperation, ResourceType

API_KEY = 20
Response = messages.DeleteTopicsResponse


async def handle(conn, header, request: messages.DeleteTopicsRequest) -> Response:
    manager = conn.broker.replica_manager
    wanted: list[tuple[str | None, uuid.UUID | None]]
    if header.api_version >= 6:
        wanted = [(t.name, t.topic_id) for t in request.topics]
    else:
        wanted = [(name, None) for name in request.topic_names]
    results = []
    for name, topic_id in wanted:
        result = Response.DeletableTopicResult(name=name, error_code=ErrorCode.NONE)
        try:
            if name is None:
                topic = manager.topics_by_id.get(topic_id)
                if topic is None:
                    raise ApiError(ErrorCode.UNKNOWN_TOPIC_ID, "This server does not host this topic ID.")
                name = result.name = topic.name
            if topic_id is not None:
                result.topic_id = topic_id
            if not conn.session.allowed(AclOperation.DELETE, ResourceType.TOPIC, name):
                raise ApiError(ErrorCode.TOPIC_AUTHORIZATION_FAILED, "Authorization failed.")
            deleted = await conn.broker.controller.delete_topic(name)
            result.topic_id = deleted.topic_id
        except ApiError as exc:
            result.error_code = exc.error_code
            result.error_message = exc.message
        results.append(result)
    return Response(throttle_time_ms=0, responses=results)
