"""DescribeConfigs (32): topic and broker configs with their sources, synonyms, types and documentation."""

from __future__ import annotations

from moldau.broker.config_describer import ConfigDescriber, ConfigEntry
from moldau.broker.dynamic_config import BROKER, TOPIC, broker_resource
from moldau.broker.errors import ApiError
from moldau.broker.topic_config import validate_topic_name
from moldau.protocol import messages
from moldau.protocol.errors import ErrorCode
from moldau.security.acl import AclOperation

API_KEY = 32
VERSIONS = (1, 4)
Response = messages.DescribeConfigsResponse


def _entry(entry: ConfigEntry, synonyms: bool, documentation: bool) -> Response.DescribeConfigsResourceResult:
    return Response.DescribeConfigsResourceResult(
        name=entry.name,
        value=None if entry.is_sensitive else entry.value,
        read_only=entry.read_only,
        config_source=int(entry.source),
        is_sensitive=entry.is_sensitive,
        synonyms=[Response.DescribeConfigsSynonym(name=n, value=v, source=int(s)) for n, v, s in entry.synonyms]
        if synonyms else [],
        config_type=entry.config_type,
        documentation=entry.documentation if documentation else None,
    )


def describe(broker, resource) -> list[ConfigEntry]:
    describer = ConfigDescriber(broker.config_manager)
    keys = None if resource.configuration_keys is None else list(resource.configuration_keys)
    if resource.resource_type == TOPIC:
        name = resource.resource_name
        problem = validate_topic_name(name)
        if problem:
            raise ApiError(ErrorCode.INVALID_TOPIC_EXCEPTION, problem)
        topic = broker.replica_manager.topics.get(name)
        if topic is None:
            raise ApiError(ErrorCode.UNKNOWN_TOPIC_OR_PARTITION, f"The topic '{name}' does not exist.")
        return describer.topic_entries(topic.metadata.configs, keys)
    if resource.resource_type == BROKER:
        per_broker = broker_resource(resource.resource_name, broker.node_id) != ""
        return describer.broker_entries(per_broker, keys)
    raise ApiError(ErrorCode.INVALID_REQUEST, f"Unsupported resource type: {resource.resource_type}")


async def handle(conn, header, request: messages.DescribeConfigsRequest) -> Response:
    documentation = header.api_version >= 3 and bool(request.include_documentation)
    results = []
    for resource in request.resources:
        result = Response.DescribeConfigsResult(error_code=ErrorCode.NONE, error_message=None,
                                                resource_type=resource.resource_type,
                                                resource_name=resource.resource_name, configs=[])
        try:
            refused = conn.session.config_resource_error(AclOperation.DESCRIBE_CONFIGS, resource.resource_type,
                                                         resource.resource_name)
            if refused:
                raise ApiError(refused)
            entries = describe(conn.broker, resource)
            result.configs = [_entry(e, bool(request.include_synonyms), documentation) for e in entries]
        except ApiError as exc:
            result.error_code = exc.error_code
            result.error_message = exc.message
        results.append(result)
    return Response(throttle_time_ms=0, results=results)
