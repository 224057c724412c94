"""OffsetCommit (8): validate the committer's generation and member, then write the offsets (acks=-1)."""

from __future__ import annotations

import logging

from moldau.broker.errors import ApiError
from moldau.coordinator.append_errors import coordinator_append_error
from moldau.coordinator.offsets import OffsetAndMetadata
from moldau.errors import MoldauError
from moldau.protocol import messages
from moldau.protocol.errors import ErrorCode
from moldau.security.acl import AclOperation, ResourceType

API_KEY = 8
Response = messages.OffsetCommitResponse

log = logging.getLogger(__name__)


async def handle(conn, header, request: messages.OffsetCommitRequest) -> Response:
    broker = conn.broker
    coordinator = broker.group_coordinator
    version = header.api_version
    by_id = version >= 10
    max_metadata = broker.config["offset.metadata.max.bytes"]
    now = broker.clock.time_ms()
    # OffsetCommit v2-v4 carry a retention time; -1 means the broker's offsets.retention.minutes.
    retention = request.retention_time_ms if 2 <= version <= 4 else -1
    entries = [broker.replica_manager.topics_by_id.get(topic.topic_id) if by_id
               else broker.replica_manager.topics.get(topic.name) for topic in request.topics]
    committed = [(entry.topic_id, p.partition_index) for entry, topic in zip(entries, request.topics)
                 if entry is not None for p in topic.partitions]
    try:
        group_error = coordinator.validate_commit(request.group_id, request.member_id,
                                                  request.group_instance_id if version >= 7 else None,
                                                  request.generation_id_or_member_epoch, committed)
    except ApiError as exc:
        group_error = exc.error_code
    if not request.group_id:
        group_error = ErrorCode.INVALID_GROUP_ID
    errors: dict[tuple[int, int], ErrorCode] = {}
    offsets: dict[tuple[str, int], OffsetAndMetadata] = {}
    for ti, (topic, entry) in enumerate(zip(request.topics, entries)):
        name = entry.name if by_id and entry is not None else topic.name
        readable = name is None or conn.session.allowed(AclOperation.READ, ResourceType.TOPIC, name)
        for pi, p in enumerate(topic.partitions):
            if group_error:
                errors[ti, pi] = group_error
            elif not readable:
                errors[ti, pi] = ErrorCode.TOPIC_AUTHORIZATION_FAILED
            elif entry is None:
                errors[ti, pi] = ErrorCode.UNKNOWN_TOPIC_ID if by_id else ErrorCode.UNKNOWN_TOPIC_OR_PARTITION
            elif not 0 <= p.partition_index < len(entry.partitions):
                errors[ti, pi] = ErrorCode.UNKNOWN_TOPIC_OR_PARTITION
            elif p.committed_metadata is not None and len(p.committed_metadata.encode()) > max_metadata:
                errors[ti, pi] = ErrorCode.OFFSET_METADATA_TOO_LARGE
            else:
                errors[ti, pi] = ErrorCode.NONE
                offsets[entry.name, p.partition_index] = OffsetAndMetadata(
                    p.committed_offset, p.committed_leader_epoch if version >= 6 else -1,
                    p.committed_metadata or "", now, now + retention if retention >= 0 else -1)
    if offsets:
        try:
            await coordinator.commit_offsets(request.group_id, offsets)
        except (MoldauError, OSError) as exc:
            # Debug only: a full disk fails every commit, and the log dir's failure was logged once.
            log.debug("commit of %d offset(s) for group %s failed: %s", len(offsets), request.group_id, exc)
            failed = coordinator_append_error(exc)
            errors = {k: (failed if v == ErrorCode.NONE else v) for k, v in errors.items()}
    topics = []
    for ti, topic in enumerate(request.topics):
        partitions = [Response.OffsetCommitResponsePartition(partition_index=p.partition_index,
                                                             error_code=errors[ti, pi])
                      for pi, p in enumerate(topic.partitions)]
        topics.append(Response.OffsetCommitResponseTopic(name=topic.name, topic_id=topic.topic_id,
                                                         partitions=partitions))
    return Response(throttle_time_ms=0, topics=topics)
