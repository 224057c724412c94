"""ListOffsets (2): offsets by timestamp, plus earliest (-2), latest (-1), max timestamp (-3) and friends.

Only the leader answers (NOT_LEADER_OR_FOLLOWER elsewhere). A consumer's latest is the high watermark; a
follower (replica id >= 0) and the debugging replica id -2 see the log end offset, as in Kafka.
"""

from __future__ import annotations

from moldau.broker.errors import ApiError
from moldau.protocol import messages
from moldau.protocol.errors import ErrorCode
from moldau.security.acl import AclOperation, ResourceType

API_KEY = 2
LATEST = -1
READ_COMMITTED = 1
Response = messages.ListOffsetsResponse


async def handle(conn, header, request: messages.ListOffsetsRequest) -> Response:
    manager = conn.broker.replica_manager
    topics = []
    for topic in request.topics:
        partitions = []
        describable = conn.session.allowed(AclOperation.DESCRIBE, ResourceType.TOPIC, topic.name)
        for p in topic.partitions:
            result = Response.ListOffsetsPartitionResponse(partition_index=p.partition_index,
                                                           error_code=ErrorCode.NONE, timestamp=-1, offset=-1)
            try:
                if not describable:
                    raise ApiError(ErrorCode.TOPIC_AUTHORIZATION_FAILED)
                partition = manager.partition(topic.name, p.partition_index)
                partition.check_leader_epoch(p.current_leader_epoch)
                log = partition.leader_log()
                if p.timestamp == LATEST:
                    # A consumer's "latest" is the high watermark (the last stable offset when
                    # read_committed); only a follower or a debugging replica id (-2) may see the log end.
                    if request.replica_id == -2 or request.replica_id >= 0:
                        result.offset = log.log_end_offset
                    elif header.api_version >= 2 and request.isolation_level == READ_COMMITTED:
                        result.offset = log.last_stable_offset
                    else:
                        result.offset = log.high_watermark
                    result.leader_epoch = partition.leader_epoch
                else:
                    found = log.fetch_offset_by_timestamp(p.timestamp)
                    if found is not None:
                        result.offset, result.timestamp, result.leader_epoch = found
            except ApiError as exc:
                result.error_code = exc.error_code
            partitions.append(result)
        topics.append(Response.ListOffsetsTopicResponse(name=topic.name, partitions=partitions))
    return Response(throttle_time_ms=0, topics=topics)
