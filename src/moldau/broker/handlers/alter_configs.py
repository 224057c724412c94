"""AlterConfigs (33): replace a topic's or broker's whole set of dynamic configs; `validate_only`."""

from __future__ import annotations

from moldau.broker.dynamic_config import alter_resources
from moldau.broker.errors import ApiError
from moldau.protocol import messages
from moldau.protocol.errors import ErrorCode

API_KEY = 33
Response = messages.AlterConfigsResponse


def _configs(resource) -> dict[str, str]:
    names = [c.name for c in resource.configs]
    if len(set(names)) != len(names):
        raise ApiError(ErrorCode.INVALID_REQUEST, "Error due to duplicate config keys")
    for c in resource.configs:
        if c.value is None:
            raise ApiError(ErrorCode.INVALID_REQUEST, f"Null value not supported for : {c.name}")
    return {c.name: c.value for c in resource.configs}


async def handle(conn, header, request: messages.AlterConfigsRequest) -> Response:
    responses = await alter_resources(conn.broker.config_manager, request.resources, _configs, request.validate_only,
                                Response.AlterConfigsResourceResponse, "alter configs", conn.session)
    return Response(throttle_time_ms=0, responses=responses)
