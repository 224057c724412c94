"""CreatePartitions (37): add partitions to existing topics, optionally with explicit assignments."""

from __future__ import annotations

import logging
from collections import Counter

from moldau.broker.errors import ApiError
from moldau.protocol import messages
from moldau.protocol.errors import ErrorCode
from moldau.security.acl import AclOperation, ResourceType

API_KEY = 37
Response = messages.CreatePartitionsResponse

log = logging.getLogger(__name__)


def _check_assignments(topic, count: int, assignments, node_id: int) -> None:
    added = count - len(topic.partitions)
    if len(assignments) != added:
        raise ApiError(ErrorCode.INVALID_REPLICA_ASSIGNMENT, f"Increasing the number of partitions by {added} "
                                                             f"but {len(assignments)} assignments provided.")
    factor = topic.metadata.replication_factor
    for i, assignment in enumerate(assignments):
        brokers = list(assignment.broker_ids)
        unknown = sorted({b for b in brokers if b != node_id})
        if unknown:
            raise ApiError(ErrorCode.INVALID_REPLICA_ASSIGNMENT,
                           f"Unknown broker(s) in replica assignment: {', '.join(map(str, unknown))}.")
        if len(set(brokers)) != len(brokers):
            raise ApiError(ErrorCode.INVALID_REPLICA_ASSIGNMENT,
                           f"Duplicate brokers not allowed in replica assignment: {brokers} for partition "
                           f"{len(topic.partitions) + i}.")
        if len(brokers) != factor:
            raise ApiError(ErrorCode.INVALID_REPLICA_ASSIGNMENT,
                           f"Inconsistent replication factor between partitions, partition 0 has {factor} while "
                           f"partition {len(topic.partitions) + i} has {len(brokers)}.")


async def handle(conn, header, request: messages.CreatePartitionsRequest) -> Response:
    manager = conn.broker.replica_manager
    controller = conn.broker.controller
    added = sum(max(0, t.count - len(manager.topics[t.name].partitions))
                for t in request.topics if t.name in manager.topics)
    try:
        controller.check_request_partitions(added)
    except ApiError as exc:
        log.info("create partitions refused: %s", exc)
        return Response(throttle_time_ms=0, results=[
            Response.CreatePartitionsTopicResult(name=t.name, error_code=exc.error_code, error_message=exc.message)
            for t in request.topics])
    counts = Counter(t.name for t in request.topics)
    results = []
    for wanted in request.topics:
        result = Response.CreatePartitionsTopicResult(name=wanted.name, error_code=ErrorCode.NONE,
                                                      error_message=None)
        try:
            if counts[wanted.name] > 1:
                raise ApiError(ErrorCode.INVALID_REQUEST, "Duplicate topic in request.")
            if not conn.session.allowed(AclOperation.ALTER, ResourceType.TOPIC, wanted.name):
                raise ApiError(ErrorCode.TOPIC_AUTHORIZATION_FAILED, "Authorization failed.")
            topic = manager.topics.get(wanted.name)
            if topic is not None and wanted.assignments is not None and wanted.count > len(topic.partitions):
                _check_assignments(topic, wanted.count, wanted.assignments, conn.broker.node_id)
            await controller.create_partitions(wanted.name, wanted.count, validate_only=request.validate_only)
        except ApiError as exc:
            result.error_code, result.error_message = exc.error_code, exc.message
            log.info("create partitions for %r failed: %s", wanted.name, exc)
        results.append(result)
    return Response(throttle_time_ms=0, results=results)
