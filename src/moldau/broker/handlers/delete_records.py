"""DeleteRecords (21): move partitions' log start offsets forward; -1 means the high watermark.

Segments wholly below the new log start offset are removed by the next retention check, as in Kafka.
"""

from __future__ import annotations

from moldau.broker.errors import ApiError
from moldau.protocol import messages
from moldau.protocol.errors import ErrorCode
from moldau.security.acl import AclOperation, ResourceType
from moldau.storage.errors import OffsetOutOfRangeError

API_KEY = 21
HIGH_WATERMARK = -1
Response = messages.DeleteRecordsResponse


def delete_records(manager, topic: str, index: int, offset: int) -> int:
    """Returns the new low watermark (log start offset) of the partition."""
    partition = manager.partition(topic, index)
    log = partition.log
    if not log.config.delete:
        # Kafka's ReplicaManager.deleteRecordsOnLocalLog: only logs whose cleanup.policy includes delete.
        raise ApiError(ErrorCode.POLICY_VIOLATION, f"Records of partition {topic}-{index} can not be deleted due "
                                                   "to the configured policy")
    target = log.high_watermark if offset == HIGH_WATERMARK else offset
    if target < 0:
        raise ApiError(ErrorCode.OFFSET_OUT_OF_RANGE, f"The offset {offset} for partition {topic}-{index} is "
                                                      "not valid")
    try:
        log.maybe_increment_log_start_offset(target)
    except OffsetOutOfRangeError as exc:
        raise ApiError(ErrorCode.OFFSET_OUT_OF_RANGE, str(exc)) from None
    return log.log_start_offset


async def handle(conn, header, request: messages.DeleteRecordsRequest) -> Response:
    manager = conn.broker.replica_manager
    topics = []
    for topic in request.topics:
        partitions = []
        deletable = conn.session.allowed(AclOperation.DELETE, ResourceType.TOPIC, topic.name)
        for p in topic.partitions:
            result = Response.DeleteRecordsPartitionResult(partition_index=p.partition_index,
                                                           low_watermark=-1, error_code=ErrorCode.NONE)
            try:
                if not deletable:
                    raise ApiError(ErrorCode.TOPIC_AUTHORIZATION_FAILED)
                result.low_watermark = delete_records(manager, topic.name, p.partition_index, p.offset)
            except ApiError as exc:
                result.error_code = exc.error_code
            partitions.append(result)
        topics.append(Response.DeleteRecordsTopicResult(name=topic.name, partitions=partitions))
    return Response(throttle_time_ms=0, topics=topics)
