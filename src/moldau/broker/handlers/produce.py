"""Produce (0): validate and append one record batch per partition; acks 0, 1 and -1 (all).

Only the partition's leader appends; others answer NOT_LEADER_OR_FOLLOWER with the leader they know and
its endpoint (KIP-951, v10+). acks=all refuses with NOT_ENOUGH_REPLICAS when the ISR is smaller than
`min.insync.replicas`, and otherwise answers once the high watermark passes the batch (Kafka's
DelayedProduce), or REQUEST_TIMED_OUT after the request's `timeout_ms`.
"""

from __future__ import annotations

import asyncio
import logging

from moldau.broker.connection import CloseConnection, DeferredResponse
from moldau.broker.errors import ApiError
from moldau.protocol import messages
from moldau.protocol.errors import ErrorCode
from moldau.protocol.records import HEADER_SIZE, read_batch_header
from moldau.security.acl import AclOperation, ResourceType

API_KEY = 0
# KAFKA-18659: Kafka 4.x rejects Produce v0-v2 yet advertises min 0, because librdkafka before 2.10
# (kcat 1.7 included) enables gzip/snappy/lz4 only when Produce v0 appears in ApiVersions.
ADVERTISED_MIN_VERSION = 0

log = logging.getLogger(__name__)
Response = messages.ProduceResponse


async def handle(conn, header, request: messages.ProduceRequest) -> Response | DeferredResponse | None:
    manager = conn.broker.replica_manager
    version = header.api_version
    acks = request.acks
    by_id = version >= 13
    responses = []
    failed = False
    session = conn.session
    if request.transactional_id is not None and not session.allowed(
            AclOperation.WRITE, ResourceType.TRANSACTIONAL_ID, request.transactional_id):
        # Kafka fails every partition of a transactional produce the principal may not write as that id.
        if acks == 0:
            raise CloseConnection
        return _refuse_all(request, by_id, ErrorCode.TRANSACTIONAL_ID_AUTHORIZATION_FAILED)
    if (session.authorizer is not None and request.transactional_id is None and _idempotent(request)
            and not session.idempotent_write_allowed()):
        # KIP-679: idempotent batches need IDEMPOTENT_WRITE on the cluster or WRITE on some topic.
        if acks == 0:
            raise CloseConnection
        return _refuse_all(request, by_id, ErrorCode.CLUSTER_AUTHORIZATION_FAILED)
    replicating = []  # acks=all appends waiting for the followers: (result, partition, required offset)
    for topic_data in request.topic_data:
        partitions = []
        writable = session.authorizer is None or _topic_allowed(conn, topic_data, by_id)
        for partition_data in topic_data.partition_data:
            result = Response.PartitionProduceResponse(index=partition_data.index, base_offset=-1)
            try:
                if acks not in (0, 1, -1):
                    raise ApiError(ErrorCode.INVALID_REQUIRED_ACKS)
                if not writable:
                    raise ApiError(ErrorCode.TOPIC_AUTHORIZATION_FAILED)
                if by_id:
                    partition = manager.partition_by_id(topic_data.topic_id, partition_data.index)
                else:
                    partition = manager.partition(topic_data.name, partition_data.index)
                records = partition_data.records
                if not records:
                    raise ApiError(ErrorCode.INVALID_RECORD, "Produce request has no record batch")
                info = await manager.append(partition, records, acks, in_place=True)
                result.error_code = ErrorCode.NONE
                result.base_offset = info.first_offset
                result.log_append_time_ms = info.log_append_time
                result.log_start_offset = info.log_start_offset
                if acks == -1 and partition.state is not None:
                    replicating.append((result, partition, info.last_offset + 1))
            except ApiError as exc:
                failed = True
                _fail(result, exc, version, manager, topic_data, partition_data.index, by_id)
                log.debug("produce to %s-%d by %s failed: %s", topic_data.name or topic_data.topic_id,
                          partition_data.index, header.client_id, exc)
            partitions.append(result)
        topic_response = Response.TopicProduceResponse(partition_responses=partitions)
        if by_id:
            topic_response.topic_id = topic_data.topic_id
        else:
            topic_response.name = topic_data.name
        responses.append(topic_response)
    if acks == 0:
        if failed:
            # Kafka closes the connection so an acks=0 producer notices and refreshes its metadata.
            raise CloseConnection
        return None
    if replicating:
        deadline = conn.broker.loop.time() + max(request.timeout_ms, 0) / 1000
        replicated = _replicated_response(conn, manager, responses, replicating, deadline, version)
        if conn.can_defer_response():
            # Appended: the connection may append the producer's next request while this one waits for the
            # ISR (connection.py); responses still leave in request order.
            return DeferredResponse(replicated)
        return await replicated
    return _response(conn, responses, version)


async def _replicated_response(conn, manager, responses, replicating, deadline: float, version: int) -> Response:
    """Kafka's DelayedProduce: the response once the high watermark passes every acks=all batch."""
    await asyncio.gather(*(_replicated(manager, r, p, offset, deadline, version) for r, p, offset in replicating))
    return _response(conn, responses, version)


def _response(conn, responses, version: int) -> Response:
    response = Response(responses=responses, throttle_time_ms=0)
    if version >= 10:
        leaders = {p.current_leader.leader_id for t in responses for p in t.partition_responses
                   if p.current_leader.leader_id >= 0}
        if leaders:
            response.node_endpoints = [
                Response.NodeEndpoint(node_id=e.node_id, host=e.host, port=e.port, rack=e.rack)
                for e in conn.broker.endpoints(conn.listener_name) if e.node_id in leaders]
    return response


async def _replicated(manager, result, partition, required_offset: int, deadline: float, version: int) -> None:
    try:
        await manager.wait_for_replication(partition, required_offset, deadline)
    except ApiError as exc:
        _fail(result, exc, version, manager, None, partition.index, False, partition.topic)


def _fail(result, exc: ApiError, version: int, manager, topic_data, index: int, by_id: bool,
          topic: str | None = None) -> None:
    result.error_code = exc.error_code
    result.error_message = exc.message
    if exc.error_code == ErrorCode.NOT_LEADER_OR_FOLLOWER:
        result.base_offset = -1
        if version >= 10:  # KIP-951: the new leader, so the producer moves without waiting for Metadata
            hint = manager.leader_hint(topic if topic_data is None else (None if by_id else topic_data.name), index,
                                       topic_data.topic_id if topic_data is not None and by_id else None)
            if hint is not None:
                result.current_leader = Response.LeaderIdAndEpoch(leader_id=hint[0], leader_epoch=hint[1])
    if exc.record_errors and version >= 8:
        result.record_errors = [
            Response.BatchIndexAndErrorMessage(batch_index=i, batch_index_error_message=message)
            for i, message in exc.record_errors]


def _idempotent(request: messages.ProduceRequest) -> bool:
    """Does any batch carry a producer id (only read when an authorizer is on)?"""
    for topic_data in request.topic_data:
        for partition_data in topic_data.partition_data:
            records = partition_data.records
            if records and len(records) >= HEADER_SIZE and read_batch_header(records).producer_id >= 0:
                return True
    return False


def _topic_allowed(conn, topic_data, by_id: bool) -> bool:
    name = topic_data.name
    if by_id:
        topic = conn.broker.replica_manager.topics_by_id.get(topic_data.topic_id)
        if topic is None:
            return True  # UNKNOWN_TOPIC_ID follows
        name = topic.name
    return conn.session.allowed(AclOperation.WRITE, ResourceType.TOPIC, name)


def _refuse_all(request: messages.ProduceRequest, by_id: bool, error: ErrorCode) -> messages.ProduceResponse:
    responses = []
    for topic_data in request.topic_data:
        entry = Response.TopicProduceResponse(partition_responses=[
            Response.PartitionProduceResponse(index=p.index, error_code=error, base_offset=-1)
            for p in topic_data.partition_data])
        if by_id:
            entry.topic_id = topic_data.topic_id
        else:
            entry.name = topic_data.name
        responses.append(entry)
    return Response(responses=responses, throttle_time_ms=0)
