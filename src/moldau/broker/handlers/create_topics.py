"""CreateTopics (19): create topics with partitions, replication factor and configs; `validate_only`."""

from __future__ import annotations

import logging
from collections import Counter

from moldau.broker.errors import ApiError
from moldau.protocol import messages
from moldau.protocol.errors import ErrorCode
from moldau.security.acl import CLUSTER_NAME, AclOperation, ResourceType

API_KEY = 19
CONFIG_SOURCE_TOPIC = 1  # DescribeConfigs' DYNAMIC_TOPIC_CONFIG
CONFIG_SOURCE_DEFAULT = 5
Response = messages.CreateTopicsResponse

log = logging.getLogger(__name__)


def _requested_partitions(request: messages.CreateTopicsRequest, default: int) -> int:
    """Partitions the whole request asks for, counted as KRaft's `validateTotalNumberOfPartitions` does."""
    total = 0
    for topic in request.topics:
        if topic.assignments:
            total += len(topic.assignments)
        elif topic.num_partitions == -1:
            total += default
        elif topic.num_partitions > 0:
            total += topic.num_partitions
    return total


async def handle(conn, header, request: messages.CreateTopicsRequest) -> Response:
    controller = conn.broker.controller
    version = header.api_version
    try:
        controller.check_request_partitions(_requested_partitions(request, conn.broker.config["num.partitions"]))
    except ApiError as exc:  # the whole request fails, every topic with the same error (as in KRaft)
        log.info("create topics refused: %s", exc)
        return Response(throttle_time_ms=0, topics=[
            Response.CreatableTopicResult(name=t.name, error_code=exc.error_code, error_message=exc.message)
            for t in request.topics])
    counts = Counter(t.name for t in request.topics)
    results = []
    cluster_create = conn.session.allowed(AclOperation.CREATE, ResourceType.CLUSTER, CLUSTER_NAME)
    for topic in request.topics:
        result = Response.CreatableTopicResult(name=topic.name, error_code=ErrorCode.NONE)
        try:
            if counts[topic.name] > 1:
                raise ApiError(ErrorCode.INVALID_REQUEST, f"Create topics request from client contains "
                                                          f"multiple entries for topic {topic.name}")
            if not (cluster_create or conn.session.allowed(AclOperation.CREATE, ResourceType.TOPIC, topic.name)):
                raise ApiError(ErrorCode.TOPIC_AUTHORIZATION_FAILED, "Authorization failed.")
            num_partitions, replication_factor = topic.num_partitions, topic.replication_factor
            if topic.assignments:
                if num_partitions != -1 or replication_factor != -1:
                    raise ApiError(ErrorCode.INVALID_REQUEST, "Both numPartitions or replicationFactor and "
                                   "replicasAssignments were set. Both cannot be used at the same time.")
                num_partitions, replication_factor = _check_assignments(topic.assignments, conn.broker.node_id)
            created = await controller.create_topic(
                topic.name,
                num_partitions,
                replication_factor,
                {c.name: c.value for c in topic.configs},
                validate_only=request.validate_only,
            )
            result.topic_id = created.topic_id
            result.num_partitions = created.num_partitions
            result.replication_factor = created.replication_factor
            if version >= 5:
                result.configs = [
                    Response.CreatableTopicConfigs(name=name, value=value, read_only=False,
                                                   config_source=CONFIG_SOURCE_TOPIC, is_sensitive=False)
                    for name, value in sorted(created.configs.items())
                ]
        except ApiError as exc:
            result.error_code = exc.error_code
            result.error_message = exc.message
            log.info("create topic %r failed: %s", topic.name, exc)
        results.append(result)
    return Response(throttle_time_ms=0, topics=results)


def _check_assignments(assignments, node_id: int) -> tuple[int, int]:
    indexes = sorted(a.partition_index for a in assignments)
    if indexes != list(range(len(indexes))):
        raise ApiError(ErrorCode.INVALID_REPLICA_ASSIGNMENT,
                       "Partitions should be a consecutive 0-based integer sequence")
    factors = {len(a.broker_ids) for a in assignments}
    if len(factors) != 1:
        raise ApiError(ErrorCode.INVALID_REPLICA_ASSIGNMENT,
                       "All partitions should have the same number of replicas")
    for a in assignments:
        unknown = [b for b in a.broker_ids if b != node_id]
        if unknown:
            raise ApiError(ErrorCode.INVALID_REPLICA_ASSIGNMENT,
                           f"Replica assignment of partition {a.partition_index} names unknown brokers {unknown}")
    return len(indexes), factors.pop()
