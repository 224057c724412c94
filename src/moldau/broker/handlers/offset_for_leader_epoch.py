"""OffsetForLeaderEpoch (23): where a leader epoch ends in the leader's log (KIP-101, KIP-279, KIP-320).

A follower asks for its latest epoch and truncates to the answer before fetching; a consumer (KIP-320)
asks for the epoch of its last consumed record to detect a log that was truncated under it. The end
offset of an epoch is the start offset of the next larger one, or the log end offset for the current
epoch; an epoch newer than any known gives UNDEFINED (-1, -1). Only the leader answers.
"""

from __future__ import annotations

from moldau.broker.errors import ApiError
from moldau.protocol import messages
from moldau.protocol.errors import ErrorCode
from moldau.security.acl import CLUSTER_NAME, AclOperation, ResourceType

API_KEY = 23
UNDEFINED = -1
Response = messages.OffsetForLeaderEpochResponse


async def handle(conn, header, request: messages.OffsetForLeaderEpochRequest) -> Response:
    manager = conn.broker.replica_manager
    topics = []
    # Kafka: a follower (replica id >= 0) needs CLUSTER_ACTION on the cluster, a consumer DESCRIBE on the topic.
    follower = header.api_version >= 3 and request.replica_id >= 0
    cluster_action = follower and conn.session.allowed(AclOperation.CLUSTER_ACTION, ResourceType.CLUSTER,
                                                       CLUSTER_NAME)
    for topic in request.topics:
        allowed = cluster_action if follower else \
            conn.session.allowed(AclOperation.DESCRIBE, ResourceType.TOPIC, topic.topic)
        partitions = []
        for p in topic.partitions:
            result = Response.EpochEndOffset(error_code=ErrorCode.NONE, partition=p.partition,
                                             leader_epoch=UNDEFINED, end_offset=UNDEFINED)
            try:
                if not allowed:
                    raise ApiError(ErrorCode.TOPIC_AUTHORIZATION_FAILED)
                partition = manager.partition(topic.topic, p.partition)
                partition.check_leader_epoch(p.current_leader_epoch)
                found = partition.leader_log().end_offset_for_epoch(p.leader_epoch)
                if found is not None:
                    result.end_offset, result.leader_epoch = found
            except ApiError as exc:
                result.error_code = exc.error_code
            partitions.append(result)
        topics.append(Response.OffsetForLeaderTopicResult(topic=topic.topic, partitions=partitions))
    return Response(throttle_time_ms=0, topics=topics)
