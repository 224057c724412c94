"""DescribeProducers (61): the active idempotent producers of partitions (KIP-664)."""

from __future__ import annotations

from moldau.broker.errors import ApiError
from moldau.protocol import messages
from moldau.protocol.errors import ErrorCode
from moldau.security.acl import AclOperation, ResourceType

API_KEY = 61

Response = messages.DescribeProducersResponse


def _partition(manager, topic: str, index: int) -> messages.DescribeProducersResponse.PartitionResponse:
    result = Response.PartitionResponse(partition_index=index, error_code=0, error_message=None,
                                        active_producers=[])
    try:
        partition = manager.partition(topic, index)
    except ApiError as exc:
        result.error_code = exc.error_code
        result.error_message = exc.message
        return result
    result.active_producers = [
        Response.ProducerState(
            producer_id=entry.producer_id,
            producer_epoch=entry.producer_epoch,
            last_sequence=entry.last_seq,
            last_timestamp=entry.last_timestamp,
            coordinator_epoch=entry.coordinator_epoch,
            current_txn_start_offset=-1 if entry.current_txn_first_offset is None
            else entry.current_txn_first_offset,
        )
        for entry in sorted(partition.log.active_producers(), key=lambda e: e.producer_id)
    ]
    return result


async def handle(conn, header, request: messages.DescribeProducersRequest) -> messages.DescribeProducersResponse:
    manager = conn.broker.replica_manager
    return Response(
        throttle_time_ms=0,
        topics=[
            Response.TopicResponse(name=topic.name, partitions=[
                _partition(manager, topic.name, i) if conn.session.allowed(AclOperation.READ, ResourceType.TOPIC,
                                                                           topic.name)
                else Response.PartitionResponse(partition_index=i, error_code=ErrorCode.TOPIC_AUTHORIZATION_FAILED,
                                                active_producers=[])
                for i in topic.partition_indexes])
            for topic in request.topics
        ],
    )
