"""TxnOffsetCommit (28): offsets committed as part of a transaction (KIP-98, KIP-447).

The offsets are written to the group's ``__consumer_offsets`` partition in a transactional batch of the
producer and stay pending until the transaction's marker reaches that partition (see
``moldau.coordinator.transaction_offsets``). Only v0-v4: v5 is for transaction.version 2 clients.
"""

from __future__ import annotations

import logging

from moldau.broker.errors import ApiError
from moldau.coordinator.offsets import OffsetAndMetadata
from moldau.errors import MoldauError
from moldau.protocol import messages
from moldau.protocol.errors import ErrorCode
from moldau.security.acl import AclOperation, ResourceType

API_KEY = 28
VERSIONS = (0, 4)
Response = messages.TxnOffsetCommitResponse

log = logging.getLogger(__name__)


def _coordinates(transactions, transactional_id: str) -> bool:
    try:
        transactions.state.check(transactional_id)
    except ApiError:
        return False
    return True


def _group_error(conn, header, request: messages.TxnOffsetCommitRequest) -> ErrorCode:
    if not request.group_id:
        return ErrorCode.INVALID_GROUP_ID
    transactions = conn.broker.transaction_coordinator
    if _coordinates(transactions, request.transactional_id):
        # The producer is checked where its transaction coordinator lives. In a cluster it may live on another
        # broker: then, as Kafka's group coordinator (before KIP-890), the offsets wait as pending for the
        # producer's marker, which only its current epoch can cause.
        error = transactions.check_producer(request.transactional_id, request.producer_id, request.producer_epoch)
        if error != ErrorCode.NONE:
            return ErrorCode.INVALID_PRODUCER_EPOCH if error == ErrorCode.PRODUCER_FENCED else error
    coordinator = conn.broker.group_coordinator
    try:
        # KIP-447: v3+ carries the consumer's generation, checked like a member's OffsetCommit.
        if header.api_version >= 3 and (request.generation_id >= 0 or request.member_id):
            topics = conn.broker.replica_manager.topics
            committed = [(topics[t.name].topic_id, p.partition_index) for t in request.topics
                         if t.name in topics for p in t.partitions]
            return coordinator.validate_commit(request.group_id, request.member_id, request.group_instance_id,
                                               request.generation_id, committed)
        coordinator.check_available(request.group_id)
    except ApiError as exc:
        return exc.error_code
    return ErrorCode.NONE


async def handle(conn, header, request: messages.TxnOffsetCommitRequest) -> Response:
    broker = conn.broker
    coordinator = broker.group_coordinator
    group_error = _group_error(conn, header, request)
    max_metadata = broker.config["offset.metadata.max.bytes"]
    now = broker.clock.time_ms()
    errors: dict[tuple[int, int], ErrorCode] = {}
    records = []
    for ti, topic in enumerate(request.topics):
        entry = broker.replica_manager.topics.get(topic.name)
        readable = conn.session.allowed(AclOperation.READ, ResourceType.TOPIC, topic.name)
        for pi, p in enumerate(topic.partitions):
            if group_error:
                errors[ti, pi] = group_error
            elif not readable:
                errors[ti, pi] = ErrorCode.TOPIC_AUTHORIZATION_FAILED
            elif entry is None or not 0 <= p.partition_index < len(entry.partitions):
                errors[ti, pi] = ErrorCode.UNKNOWN_TOPIC_OR_PARTITION
            elif p.committed_metadata is not None and len(p.committed_metadata.encode()) > max_metadata:
                errors[ti, pi] = ErrorCode.OFFSET_METADATA_TOO_LARGE
            else:
                errors[ti, pi] = ErrorCode.NONE
                offset = OffsetAndMetadata(p.committed_offset,
                                           p.committed_leader_epoch if header.api_version >= 2 else -1,
                                           p.committed_metadata or "", now)
                records.append(coordinator.offset_record(request.group_id, topic.name, p.partition_index, offset))
    if records:
        try:
            await coordinator.commit_transactional_offsets(request.group_id, request.producer_id,
                                                           request.producer_epoch, records)
        except (MoldauError, OSError) as exc:
            log.warning("txn offset commit for group %s failed: %s", request.group_id, exc)
            code = exc.error_code if isinstance(exc, ApiError) else ErrorCode.COORDINATOR_NOT_AVAILABLE
            errors = {k: (code if v == ErrorCode.NONE else v) for k, v in errors.items()}
    topics = [Response.TxnOffsetCommitResponseTopic(name=topic.name, partitions=[
        Response.TxnOffsetCommitResponsePartition(partition_index=p.partition_index, error_code=errors[ti, pi])
        for pi, p in enumerate(topic.partitions)]) for ti, topic in enumerate(request.topics)]
    return Response(throttle_time_ms=0, topics=topics)
