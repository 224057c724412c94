"""AlterConfigs (33): replace a topic's or broker's whole set of dynamic configs; `validate_only`."""

from __future__ import annotations

import logging
from collections import Counter

from moldau.broker.dynamic_config import BROKER, TOPIC
from moldau.broker.errors import ApiError
from moldau.protocol import messages
from moldau.protocol.errors import ErrorCode

API_KEY = 33
Response = messages.AlterConfigsResponse

log = logging.getLogger(__name__)


def duplicate_resources(resources) -> set[tuple[int, str]]:
    counts = Counter((r.resource_type, r.resource_name) for r in resources)
    return {key for key, count in counts.items() if count > 1}


def alter(manager, resource_type: int, resource_name: str, configs: dict[str, str], validate_only: bool) -> None:
    if resource_type == TOPIC:
        manager.alter_topic(resource_name, configs, validate_only)
    elif resource_type == BROKER:
        manager.alter_broker(resource_name, configs, validate_only)
    else:
        raise ApiError(ErrorCode.INVALID_REQUEST, f"Unsupported resource type: {resource_type}")


def _configs(resource) -> dict[str, str]:
    names = [c.name for c in resource.configs]
    if len(set(names)) != len(names):
        raise ApiError(ErrorCode.INVALID_REQUEST, "Error due to duplicate config keys")
    for c in resource.configs:
        if c.value is None:
            raise ApiError(ErrorCode.INVALID_REQUEST, f"Null value not supported for : {c.name}")
    return {c.name: c.value for c in resource.configs}


async def handle(conn, header, request: messages.AlterConfigsRequest) -> Response:
    manager = conn.broker.config_manager
    duplicates = duplicate_resources(request.resources)
    responses = []
    for resource in request.resources:
        result = Response.AlterConfigsResourceResponse(error_code=ErrorCode.NONE, error_message=None,
                                                       resource_type=resource.resource_type,
                                                       resource_name=resource.resource_name)
        try:
            if (resource.resource_type, resource.resource_name) in duplicates:
                raise ApiError(ErrorCode.INVALID_REQUEST, "Duplicate resource in the request")
            alter(manager, resource.resource_type, resource.resource_name, _configs(resource),
                  request.validate_only)
        except ApiError as exc:
            result.error_code, result.error_message = exc.error_code, exc.message
            log.info("alter configs of %d:%r failed: %s", resource.resource_type, resource.resource_name, exc)
        responses.append(result)
    return Response(throttle_time_ms=0, responses=responses)
