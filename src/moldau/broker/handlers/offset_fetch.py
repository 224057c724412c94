"""OffsetFetch (9): committed offsets of one group (v1-v7) or of a batch of groups (v8+).

With `require_stable` (v7+), a partition whose group has a transactional offset commit still open answers
UNSTABLE_OFFSET_COMMIT, and the client retries (KIP-447), as Kafka does.
"""

from __future__ import annotations

from moldau.broker.errors import ApiError
from moldau.protocol import messages
from moldau.protocol.errors import ErrorCode
from moldau.security.acl import AclOperation, ResourceType

API_KEY = 9
Response = messages.OffsetFetchResponse
NO_OFFSET = -1


def _fetch_group(conn, group_id: str, topics, by_id: bool, require_stable: bool = False
                 ) -> tuple[ErrorCode, list[tuple]]:
    """(group error, [(topic name, topic id, [(partition, offset|None, error)])])."""
    session = conn.session
    if not session.allowed(AclOperation.DESCRIBE, ResourceType.GROUP, group_id):
        return ErrorCode.GROUP_AUTHORIZATION_FAILED, []
    error, result = _fetch_group_offsets(conn, group_id, topics, by_id)
    if session.authorizer is not None:
        # Kafka leaves undescribable topics out of "all topics" and refuses them when named.
        def describable(name: str) -> bool:
            return not name or session.allowed(AclOperation.DESCRIBE, ResourceType.TOPIC, name)
        if topics is None:
            result = [entry for entry in result if describable(entry[0])]
        else:
            result = [(name, topic_id, parts if describable(name) else
                       [(p, None, ErrorCode.TOPIC_AUTHORIZATION_FAILED) for p, _, _ in parts])
                      for name, topic_id, parts in result]
    if require_stable and not error:
        unstable = conn.broker.group_coordinator.pending_txn_offsets.pending_partitions(group_id)
        if unstable:
            result = [(name, topic_id, [(p, None, ErrorCode.UNSTABLE_OFFSET_COMMIT) if (name, p) in unstable
                                        else (p, o, e) for p, o, e in parts])
                      for name, topic_id, parts in result]
    return error, result


def _fetch_group_offsets(conn, group_id: str, topics, by_id: bool) -> tuple[ErrorCode, list[tuple]]:
    broker = conn.broker
    manager = broker.replica_manager
    name: str | None  # None: a v10 topic id that names no topic
    try:
        if topics is None:
            found = broker.group_coordinator.fetch_offsets(group_id, None)
            by_topic: dict[str, list] = {}
            for (topic, partition), offset in sorted(found.items()):
                by_topic.setdefault(topic, []).append((partition, offset, ErrorCode.NONE))
            result = []
            for name, parts in by_topic.items():
                entry = manager.topics.get(name)
                if by_id and entry is None:
                    continue  # a v10 client can only name topics that still exist
                result.append((name, entry.topic_id if entry else None, parts))
            return ErrorCode.NONE, result
        result = []
        for topic in topics:
            if by_id:
                entry = manager.topics_by_id.get(topic.topic_id)
                name = entry.name if entry else None
            else:
                name = topic.name
            if name is None:
                parts = [(p, None, ErrorCode.UNKNOWN_TOPIC_ID) for p in topic.partition_indexes]
            else:
                found = broker.group_coordinator.fetch_offsets(group_id, [(name, p) for p in topic.partition_indexes])
                parts = [(p, found[name, p], ErrorCode.NONE) for p in topic.partition_indexes]
            result.append((name or "", topic.topic_id if by_id else None, parts))
        return ErrorCode.NONE, result
    except ApiError as exc:
        return exc.error_code, []


def _partitions(cls, parts) -> list:
    return [cls(partition_index=p, committed_offset=o.committed_offset if o else NO_OFFSET,
                committed_leader_epoch=o.leader_epoch if o else -1, metadata=o.metadata if o else "",
                error_code=error) for p, o, error in parts]


async def handle(conn, header, request: messages.OffsetFetchRequest) -> Response:
    version = header.api_version
    if version >= 8:
        groups = []
        for group in request.groups:
            error, topics = _fetch_group(conn, group.group_id, group.topics, version >= 10, request.require_stable)
            if version >= 9 and not error:
                # KIP-848: a consumer group member's fetch carries its member id and epoch.
                error = conn.broker.group_coordinator.validate_consumer_fetch(group.group_id, group.member_id,
                                                                              group.member_epoch)
                topics = [] if error else topics
            groups.append(Response.OffsetFetchResponseGroup(group_id=group.group_id, error_code=error, topics=[
                Response.OffsetFetchResponseTopics(name=name, topic_id=topic_id,
                                                   partitions=_partitions(Response.OffsetFetchResponsePartitions,
                                                                          parts))
                for name, topic_id, parts in topics]))
        return Response(throttle_time_ms=0, groups=groups)
    error, topics = _fetch_group(conn, request.group_id, request.topics, False,
                                 version >= 7 and request.require_stable)
    response_topics = [
        Response.OffsetFetchResponseTopic(name=name, partitions=_partitions(Response.OffsetFetchResponsePartition,
                                                                            parts))
        for name, _, parts in topics]
    if error and version < 2:
        # v1 has no top-level error code: Kafka puts the group error on every partition.
        for topic in response_topics:
            for p in topic.partitions:
                p.error_code = error
    return Response(throttle_time_ms=0, error_code=error, topics=response_topics)
