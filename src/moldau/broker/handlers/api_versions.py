"""ApiVersions (18): the APIs and version ranges this broker serves (KIP-35, KIP-511)."""

from __future__ import annotations

import re

from moldau.broker.handlers import produce
from moldau.protocol import messages
from moldau.protocol.errors import ErrorCode

API_KEY = 18
ADVERTISED_MIN = {produce.API_KEY: produce.ADVERTISED_MIN_VERSION}

# KIP-511: client software names and versions must match this.
SOFTWARE_PATTERN = re.compile(r"^[a-zA-Z0-9](?:[a-zA-Z0-9\-.]*[a-zA-Z0-9])?$")


async def handle(conn, header, request: messages.ApiVersionsRequest) -> messages.ApiVersionsResponse:
    response_type = messages.ApiVersionsResponse
    if header.api_version >= 3 and not (
        SOFTWARE_PATTERN.match(request.client_software_name or "")
        and SOFTWARE_PATTERN.match(request.client_software_version or "")
    ):
        return response_type(error_code=ErrorCode.INVALID_REQUEST)
    return response_type(
        error_code=ErrorCode.NONE,
        api_keys=[
            response_type.ApiVersion(api_key=key, min_version=ADVERTISED_MIN.get(key, low), max_version=high)
            for key, (low, high) in sorted(conn.broker.supported_versions.items())
        ],
        throttle_time_ms=0,
    )
