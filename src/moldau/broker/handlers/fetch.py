"""Fetch (1): read stored batches as they are, long-polling until `min_bytes` or `max_wait_ms`.

Stored bytes go out unchanged (file regions, sent with sendfile where possible). `max_bytes`
and `partition_max_bytes` are honoured, yet the first partition with data always returns at
least one whole batch (KIP-74). Incremental fetch sessions follow KIP-227.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from moldau.broker.errors import ApiError, as_api_error
from moldau.broker.fetch_session import (
    FINAL_EPOCH,
    INITIAL_EPOCH,
    CachedPartition,
    FetchSession,
    FetchSessionError,
    PartitionKey,
)
from moldau.broker.replica_manager import Partition
from moldau.protocol import messages
from moldau.protocol.errors import ErrorCode
from moldau.security.acl import AclOperation, ResourceType
from moldau.storage.errors import StorageError

API_KEY = 1
READ_COMMITTED = 1
Response = messages.FetchResponse
EMPTY = b""


@dataclass(slots=True)
class PartitionRead:
    key: PartitionKey
    data: Response.PartitionData
    size: int
    partition: Partition | None


def _requested(request: Any, by_id: bool) -> list[tuple[PartitionKey, CachedPartition]]:
    wanted = []
    for topic in request.topics:
        topic_key = topic.topic_id if by_id else topic.topic
        for p in topic.partitions:
            wanted.append(((topic_key, p.partition),
                           CachedPartition(p.fetch_offset, p.partition_max_bytes, p.current_leader_epoch)))
    return wanted


def _forgotten(request: Any, by_id: bool) -> list[PartitionKey]:
    return [
        (topic.topic_id if by_id else topic.topic, index)
        for topic in (request.forgotten_topics_data or ())
        for index in topic.partitions
    ]


async def handle(conn, header, request: messages.FetchRequest) -> Response:
    broker = conn.broker
    version = header.api_version
    by_id = version >= 13
    cache = broker.fetch_sessions
    session: FetchSession | None = None
    incremental = False
    session_id, epoch = (request.session_id, request.session_epoch) if version >= 7 else (0, FINAL_EPOCH)
    try:
        if epoch == FINAL_EPOCH:
            if session_id:
                cache.remove(session_id)
            wanted = dict(_requested(request, by_id))
        elif epoch == INITIAL_EPOCH:
            if session_id:
                cache.remove(session_id)
            session = cache.create()
            wanted = dict(_requested(request, by_id))
            if session is not None:
                session.partitions.update(wanted)
        else:
            session = cache.get(session_id, epoch)
            incremental = True
            for key in _forgotten(request, by_id):
                session.partitions.pop(key, None)
            for key, cached in _requested(request, by_id):
                previous = session.partitions.get(key)
                if previous is not None:
                    previous.fetch_offset = cached.fetch_offset
                    previous.max_bytes = cached.max_bytes
                    previous.current_leader_epoch = cached.current_leader_epoch
                else:
                    session.partitions[key] = cached
            wanted = session.partitions
    except FetchSessionError as exc:
        return Response(throttle_time_ms=0, error_code=exc.error_code, session_id=0, responses=[])

    isolation = request.isolation_level if version >= 4 else 0
    denied = _unreadable(conn, wanted, by_id)
    deadline = broker.loop.time() + max(request.max_wait_ms, 0) / 1000
    while True:
        reads, total, has_error = _read_all(broker, wanted, by_id, request.max_bytes, isolation, denied)
        remaining = deadline - broker.loop.time()
        if total >= request.min_bytes or has_error or remaining <= 0 or not reads:
            break
        await broker.replica_manager.wait_for_data(
            (r.partition for r in reads if r.partition is not None), remaining
        )
        if conn.transport is None or conn.transport.is_closing():
            break

    topics: list[Response.FetchableTopicResponse] = []
    for read in reads:
        if incremental:
            cached = wanted[read.key]
            data = read.data
            changed = cached.needs_response(data.high_watermark, data.last_stable_offset, data.log_start_offset)
            if not (read.size or changed or data.error_code):
                continue
        elif session is not None:
            data = read.data
            wanted[read.key].needs_response(data.high_watermark, data.last_stable_offset, data.log_start_offset)
        topic_key = read.key[0]
        if not topics or (topics[-1].topic_id if by_id else topics[-1].topic) != topic_key:
            entry = Response.FetchableTopicResponse(partitions=[])
            if by_id:
                entry.topic_id = topic_key
            else:
                entry.topic = topic_key
            topics.append(entry)
        topics[-1].partitions.append(read.data)
    return Response(
        throttle_time_ms=0,
        error_code=ErrorCode.NONE,
        session_id=session.session_id if session is not None else 0,
        responses=topics,
    )


def _unreadable(conn, wanted, by_id: bool) -> set[PartitionKey]:
    """The partitions of topics the principal may not READ (TOPIC_AUTHORIZATION_FAILED, per partition)."""
    if conn.session.authorizer is None:
        return set()
    names: dict[Any, bool] = {}
    denied = set()
    topics_by_id = conn.broker.replica_manager.topics_by_id
    for key in wanted:
        allowed = names.get(key[0])
        if allowed is None:
            name = key[0]
            if by_id:
                topic = topics_by_id.get(key[0])
                name = topic.name if topic is not None else None
            # An unknown topic id stays UNKNOWN_TOPIC_ID, as in Kafka.
            allowed = name is None or conn.session.allowed(AclOperation.READ, ResourceType.TOPIC, name)
            names[key[0]] = allowed
        if not allowed:
            denied.add(key)
    return denied


def _read_all(broker, wanted, by_id: bool, max_bytes: int, isolation: int, denied: set[PartitionKey]):
    manager = broker.replica_manager
    reads: list[PartitionRead] = []
    total = 0
    has_error = False
    for key, cached in wanted.items():
        data = Response.PartitionData(partition_index=key[1], error_code=ErrorCode.NONE, high_watermark=-1,
                                      last_stable_offset=-1, log_start_offset=-1, records=EMPTY)
        partition = None
        size = 0
        try:
            if key in denied:
                raise ApiError(ErrorCode.TOPIC_AUTHORIZATION_FAILED)
            if by_id:
                partition = manager.partition_by_id(key[0], key[1])
            else:
                partition = manager.partition(key[0], key[1])
            partition.check_leader_epoch(cached.current_leader_epoch)
            log = partition.log
            high_watermark = log.high_watermark
            data.high_watermark = high_watermark
            last_stable_offset = log.last_stable_offset
            data.last_stable_offset = last_stable_offset
            data.log_start_offset = log.log_start_offset
            # KIP-98: read_committed reads stop at the last stable offset.
            bound = last_stable_offset if isolation == READ_COMMITTED else high_watermark
            if isolation == READ_COMMITTED:
                data.aborted_transactions = []
            limit = min(cached.max_bytes, max_bytes - total)
            if limit > 0 or not total:
                info = log.read(cached.fetch_offset, max(limit, 0), max_offset=bound,
                                min_one_message=total == 0)
                if info.records is not None and info.records.size:
                    data.records = info.records
                    size = info.records.size
                    total += size
                    if isolation == READ_COMMITTED:
                        data.aborted_transactions = [
                            Response.AbortedTransaction(producer_id=t.producer_id, first_offset=t.first_offset)
                            for t in log.collect_aborted_transactions(cached.fetch_offset, bound)]
        except ApiError as exc:
            has_error = True
            data.error_code = exc.error_code
        except StorageError as exc:  # OFFSET_OUT_OF_RANGE, or KAFKA_STORAGE_ERROR for a failed disk
            has_error = True
            data.error_code = as_api_error(exc).error_code
        reads.append(PartitionRead(key, data, size, partition))
    return reads, total, has_error

