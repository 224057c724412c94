"""IncrementalAlterConfigs (44): SET, DELETE, APPEND and SUBTRACT single configs of a topic or broker."""

from __future__ import annotations

import logging

from moldau.broker.dynamic_config import (
    BROKER,
    TOPIC,
    ConfigChange,
    alter_resources,
    apply_incremental,
    broker_resource,
)
from moldau.broker.errors import ApiError
from moldau.protocol import messages
from moldau.protocol.errors import ErrorCode

API_KEY = 44
Response = messages.IncrementalAlterConfigsResponse

log = logging.getLogger(__name__)


def _merged(broker, resource) -> ConfigChange:
    """The operations applied to whatever the stored set is when the store writes it (compare-and-set)."""
    manager = broker.config_manager
    ops = [(c.name, c.config_operation, c.value) for c in resource.configs]
    if resource.resource_type == TOPIC:
        topic = broker.replica_manager.topics.get(resource.resource_name)
        if topic is None:
            raise ApiError(ErrorCode.UNKNOWN_TOPIC_OR_PARTITION,
                           f"The topic '{resource.resource_name}' does not exist.")
        topic_defaults = manager.topic_defaults()
        apply_incremental(TOPIC, topic.metadata.configs, topic_defaults, ops)  # refuse bad operations now
        return lambda current: apply_incremental(TOPIC, current, topic_defaults, ops)
    if resource.resource_type == BROKER:
        key = broker_resource(resource.resource_name, broker.node_id)
        broker_values = manager.broker_values()
        apply_incremental(BROKER, manager.store.broker_configs().get(key, {}), broker_values, ops)
        return lambda current: apply_incremental(BROKER, current, broker_values, ops)
    raise ApiError(ErrorCode.INVALID_REQUEST, f"Unsupported resource type: {resource.resource_type}")


async def handle(conn, header, request: messages.IncrementalAlterConfigsRequest) -> Response:
    broker = conn.broker
    responses = await alter_resources(broker.config_manager, request.resources, lambda r: _merged(broker, r),
                                request.validate_only, Response.AlterConfigsResourceResponse,
                                "incremental alter configs", conn.session)
    return Response(throttle_time_ms=0, responses=responses)
