"""One module per Kafka API: each exports `API_KEY`, optional `VERSIONS` caps, and `async def handle`.

A handler is a function from a decoded request (plus the connection, which leads to the broker)
to a response object, or None when the API sends no response (Produce with acks=0).
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from types import ModuleType
from typing import Any

from moldau.broker.handlers import (
    api_versions,
    create_topics,
    delete_topics,
    describe_cluster,
    fetch,
    list_offsets,
    metadata,
    produce,
)
from moldau.protocol import api

Handler = Callable[[Any, Any, Any], Awaitable[Any]]

MODULES: tuple[ModuleType, ...] = (
    api_versions,
    create_topics,
    delete_topics,
    describe_cluster,
    fetch,
    list_offsets,
    metadata,
    produce,
)

HANDLERS: dict[int, Handler] = {module.API_KEY: module.handle for module in MODULES}


def supported_versions() -> dict[int, tuple[int, int]]:
    """The (min, max) version of each API we serve: the schema's range, capped where a handler says so."""
    result = {}
    for module in MODULES:
        spec = api.APIS[module.API_KEY]
        low, high = getattr(module, "VERSIONS", (spec.min_version, spec.max_version))
        high = min(high, spec.max_version - 1 if spec.latest_version_unstable else spec.max_version)
        result[module.API_KEY] = (max(low, spec.min_version), high)
    return result
