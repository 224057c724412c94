"""Fetch (1): read stored batches as they are, long-polling until `min_bytes` or `max_wait_ms`.

Stored bytes go out unchanged (file regions, sent with sendfile where possible). `max_bytes`
and `partition_max_bytes` are honoured, yet the first partition with data always returns at
least one whole batch (KIP-74). Incremental fetch sessions follow KIP-227.

A follower's fetch (a replica id >= 0: `ReplicaId` before v15, `ReplicaState` from v15, KIP-903) reads up
to the log end offset rather than the high watermark, and tells the leader how far that follower has got
(Kafka's `updateFollowerFetchState`): the ISR and the high watermark move from there. Followers serve a
consumer's Fetch v11+ up to their high watermark (KIP-392, see broker/replica_selector.py), leaders serve
every fetch; other brokers answer NOT_LEADER_OR_FOLLOWER with the leader they know (KIP-951, v12+).
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
from moldau.broker.partition import Partition
from moldau.broker.replica_selector import RACK_AWARE, preferred_read_replica
from moldau.broker.replication_quota import leader_throttled
from moldau.protocol import messages
from moldau.protocol.errors import ErrorCode
from moldau.security.acl import CLUSTER_NAME, AclOperation, ResourceType
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
    replica_id = request.replica_state.replica_id if version >= 15 else request.replica_id
    if replica_id >= 0:
        # Kafka's handleFetchRequest: a follower needs CLUSTER_ACTION on the cluster (and no topic READ);
        # without it every partition answers TOPIC_AUTHORIZATION_FAILED and its position is not recorded.
        denied = set() if conn.session.allowed(AclOperation.CLUSTER_ACTION, ResourceType.CLUSTER, CLUSTER_NAME) \
            else set(wanted)
        if not denied:
            _record_follower_fetch(broker, wanted, by_id, replica_id)
    else:
        denied = _unreadable(conn, wanted, by_id)
    # KIP-392: a consumer's Fetch v11+ carries its rack (maybe empty) and may be served by a follower.
    client_rack = request.rack_id if version >= 11 and replica_id < 0 else None
    deadline = broker.loop.time() + max(request.max_wait_ms, 0) / 1000
    while True:
        reads, total, has_error = _read_all(broker, wanted, by_id, request.max_bytes, isolation, denied,
                                            replica_id >= 0, replica_id, client_rack)
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
            if not (read.size or changed or data.error_code or data.preferred_read_replica >= 0):
                continue  # (Kafka's CachedPartition.maybeUpdateResponseData: a redirect must be sent)
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
    response = Response(
        throttle_time_ms=0,
        error_code=ErrorCode.NONE,
        session_id=session.session_id if session is not None else 0,
        responses=topics,
    )
    if version >= 16:
        leaders = {r.data.current_leader.leader_id for r in reads if r.data.current_leader.leader_id >= 0}
        if leaders:
            response.node_endpoints = [
                Response.NodeEndpoint(node_id=e.node_id, host=e.host, port=e.port, rack=e.rack)
                for e in broker.endpoints(conn.listener_name) if e.node_id in leaders]
    return response


def _record_follower_fetch(broker, wanted, by_id: bool, replica_id: int) -> None:
    """The leader learns each follower's log end offset from the offsets it fetches from."""
    manager = broker.replica_manager
    for key, cached in wanted.items():
        try:
            partition = manager.partition_by_id(key[0], key[1]) if by_id else manager.partition(key[0], key[1])
            partition.check_leader_epoch(cached.current_leader_epoch)
            manager.record_follower_fetch(partition, replica_id, cached.fetch_offset)
        except ApiError:
            pass  # answered per partition by the read


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


def _read_all(broker, wanted, by_id: bool, max_bytes: int, isolation: int, denied: set[PartitionKey],
              from_follower: bool = False, replica_id: int = -1, client_rack: str | None = None):
    """`client_rack`: None for a Fetch only leaders answer; else (a consumer's v11+) followers answer it too,
    and a leader with a replica selector may name a closer replica instead of reading (KIP-392)."""
    manager = broker.replica_manager
    selecting = bool(client_rack) and broker.config["replica.selector.class"] == RACK_AWARE
    racks = {b: registration.rack for b, registration in manager.brokers.items()} if selecting else {}
    reads: list[PartitionRead] = []
    total = 0
    has_error = False
    leader_quota = manager.quotas.leader
    quota_exceeded: bool | None = None  # computed once, at the first throttled replica
    for key, cached in wanted.items():
        data = Response.PartitionData(partition_index=key[1], error_code=ErrorCode.NONE, high_watermark=-1,
                                      last_stable_offset=-1, log_start_offset=-1, records=EMPTY)
        partition = None
        size = 0
        try:
            if key in denied:
                raise ApiError(ErrorCode.TOPIC_AUTHORIZATION_FAILED)
            if by_id:
                partition = manager.partition_by_id(key[0], key[1], leader_only=False)
            else:
                partition = manager.hosted_partition(key[0], key[1])
            partition.check_leader_epoch(cached.current_leader_epoch)
            log = partition.readable_log(followers_too=client_rack is not None)
            high_watermark = log.high_watermark
            data.high_watermark = high_watermark
            last_stable_offset = log.last_stable_offset
            data.last_stable_offset = last_stable_offset
            data.log_start_offset = log.log_start_offset
            if selecting and partition.is_leader:
                assert client_rack is not None
                preferred = preferred_read_replica(partition, cached.fetch_offset, client_rack, racks,
                                                   broker.clock.time_ms())
                if preferred is not None:  # Kafka's readFromLog: no records, the client goes there next
                    data.preferred_read_replica = preferred
                    reads.append(PartitionRead(key, data, 0, partition))
                    continue
            # KIP-98: read_committed reads stop at the last stable offset; followers read to the log end.
            if from_follower:
                isolation, bound = 0, log.log_end_offset
            else:
                bound = last_stable_offset if isolation == READ_COMMITTED else high_watermark
            if isolation == READ_COMMITTED:
                data.aborted_transactions = []
            limit = min(cached.max_bytes, max_bytes - total)
            throttled = from_follower and partition.state is not None and leader_throttled(
                _topic_configs(manager, partition.topic), partition.index, manager.node_id, partition.state.isr,
                replica_id)
            if throttled:
                if quota_exceeded is None:
                    quota_exceeded = leader_quota.exceeded()
                if quota_exceeded:
                    limit = -1  # KIP-73 leader side: nothing for this replica until the rate drops
            if (limit > 0 or not total) and limit >= 0:
                info = log.read(cached.fetch_offset, max(limit, 0), max_offset=bound,
                                min_one_message=total == 0)
                if info.records is not None and info.records.size:
                    data.records = info.records
                    size = info.records.size
                    total += size
                    if throttled:
                        leader_quota.record(size)
                    if isolation == READ_COMMITTED:
                        data.aborted_transactions = [
                            Response.AbortedTransaction(producer_id=t.producer_id, first_offset=t.first_offset)
                            for t in log.collect_aborted_transactions(cached.fetch_offset, bound)]
        except ApiError as exc:
            has_error = True
            data.error_code = exc.error_code
            if exc.error_code in (ErrorCode.NOT_LEADER_OR_FOLLOWER, ErrorCode.FENCED_LEADER_EPOCH):
                hint = manager.leader_hint(None if by_id else key[0], key[1], key[0] if by_id else None)
                if hint is not None:  # KIP-951: the client goes to the new leader without a Metadata round
                    data.current_leader = Response.LeaderIdAndEpoch(leader_id=hint[0], leader_epoch=hint[1])
        except StorageError as exc:  # OFFSET_OUT_OF_RANGE, or KAFKA_STORAGE_ERROR for a failed disk
            has_error = True
            data.error_code = as_api_error(exc).error_code
        reads.append(PartitionRead(key, data, size, partition))
    return reads, total, has_error



def _topic_configs(manager, name: str) -> dict[str, str]:
    topic = manager.topics.get(name)
    return topic.metadata.configs if topic is not None else {}
