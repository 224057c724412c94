"""Followers fetch from their leaders (Kafka's `ReplicaFetcherManager` / `ReplicaFetcherThread`).

One fetcher task per source broker, on the broker's event loop, over one connection to it on the
inter-broker listener (broker/inter_broker.py: TLS and SASL as that listener asks). A partition added to a fetcher first *truncates* (KIP-101/279): OffsetsForLeaderEpoch for
its latest epoch tells where its log diverges from the leader's, and it truncates to
min(leader's end offset for that epoch, its log end offset); with no epoch known it truncates to its high
watermark. Then it *fetches*: Fetch with this broker's replica id, long-polling, appending what comes with
`Log.append_as_follower` (producer state and transaction markers come along, so a new leader keeps
deduplicating idempotent retries) and moving its high watermark to min(leader's, log end offset).

A leader that is down or not yet leader costs a backoff (`replica.fetch.backoff.ms`) and a reconnect.
"""

from __future__ import annotations

import asyncio
import logging
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from moldau.broker.inter_broker import BrokerConnection, BrokerUnavailable, InterBrokerAuthenticationError
from moldau.broker.replication_quota import FOLLOWER_REPLICAS, ReplicationQuota, is_throttled
from moldau.protocol import messages
from moldau.protocol.errors import ErrorCode
from moldau.protocol.records import read_batch_header
from moldau.storage.errors import StorageError, UnexpectedAppendOffsetError
from moldau.storage.leader_epoch_file_cache import UNDEFINED_EPOCH, UNDEFINED_EPOCH_OFFSET

if TYPE_CHECKING:
    from moldau.broker.partition import Partition
    from moldau.broker.replica_manager import ReplicaManager

log = logging.getLogger(__name__)

FETCH = 1
LIST_OFFSETS = 2
OFFSET_FOR_LEADER_EPOCH = 23
FETCH_VERSION = 12  # flexible, ReplicaId in the body, topics by name
LIST_OFFSETS_VERSION = 7
OFFSET_FOR_LEADER_EPOCH_VERSION = 4
EARLIEST, LATEST = -2, -1

# Errors after which the partition waits a backoff and tries again (the leader may learn its epoch soon).
_RETRIABLE = {ErrorCode.NOT_LEADER_OR_FOLLOWER, ErrorCode.UNKNOWN_LEADER_EPOCH, ErrorCode.LEADER_NOT_AVAILABLE,
              ErrorCode.UNKNOWN_TOPIC_OR_PARTITION, ErrorCode.KAFKA_STORAGE_ERROR, ErrorCode.REQUEST_TIMED_OUT}


@dataclass(slots=True, eq=False)
class FetchState:
    """Kafka's PartitionFetchState: truncating first, then fetching from `fetch_offset`."""

    partition: Partition
    leader_epoch: int
    truncating: bool = True
    fetch_offset: int = 0
    delayed_until: float = 0.0


class ReplicaFetcherManager:
    """The fetchers of this broker, one per leader it follows (Kafka's `ReplicaFetcherManager`)."""

    def __init__(self, manager: ReplicaManager) -> None:
        self.manager = manager
        self.fetchers: dict[int, ReplicaFetcher] = {}
        # KIP-73: one follower-side quota for every fetcher of this broker (Kafka's ReplicationQuotaManager).
        self.quota = manager.quotas.follower

    def add_partition(self, partition: Partition, leader_id: int) -> None:
        fetcher = self.fetchers.get(leader_id)
        if fetcher is None:
            fetcher = self.fetchers[leader_id] = ReplicaFetcher(self.manager, leader_id)
            fetcher.quota = self.quota
            fetcher.start()
        fetcher.add(partition)

    def remove_partition(self, partition: Partition) -> None:
        for fetcher in self.fetchers.values():
            fetcher.remove(partition)

    def brokers_changed(self) -> None:
        """A leader re-registered (a restart, a new port): reconnect to wherever it is now."""
        for fetcher in self.fetchers.values():
            fetcher.reconnect_if_moved()

    def fetcher_of(self, partition: Partition) -> ReplicaFetcher | None:
        for fetcher in self.fetchers.values():
            if fetcher.has(partition):
                return fetcher
        return None

    async def shutdown(self) -> None:
        fetchers = list(self.fetchers.values())
        self.fetchers.clear()
        await asyncio.gather(*(f.stop() for f in fetchers), return_exceptions=True)


class ReplicaFetcher:
    """Fetches every partition this broker follows from one leader (Kafka's `ReplicaFetcherThread`)."""

    def __init__(self, manager: ReplicaManager, leader_id: int) -> None:
        self.manager = manager
        self.leader_id = leader_id
        self.quota: ReplicationQuota | None = None  # the manager's, set by add_partition
        config = manager.config
        self.node_id = manager.node_id
        self.wait_max_ms = int(config["replica.fetch.wait.max.ms"])
        self.min_bytes = int(config["replica.fetch.min.bytes"])
        self.max_bytes = int(config["replica.fetch.max.bytes"])
        self.response_max_bytes = int(config["replica.fetch.response.max.bytes"])
        self.backoff_s = int(config["replica.fetch.backoff.ms"]) / 1000
        self.timeout_s = int(config["replica.socket.timeout.ms"]) / 1000
        self.partitions: dict[tuple[str, int], FetchState] = {}
        self._changed = asyncio.Event()
        self._task: asyncio.Task[None] | None = None
        self._connection: BrokerConnection | None = None
        self._denied = False  # a not-authorized answer was logged

    # -- partitions ------------------------------------------------------------------------------

    def start(self) -> None:
        self._task = asyncio.get_running_loop().create_task(self._run(), name=f"replica-fetcher-{self.leader_id}")

    def add(self, partition: Partition) -> None:
        self.partitions[(partition.topic, partition.index)] = FetchState(partition, partition.leader_epoch)
        self._changed.set()

    def remove(self, partition: Partition) -> None:
        state = self.partitions.get((partition.topic, partition.index))
        if state is not None and state.partition is partition:
            del self.partitions[(partition.topic, partition.index)]

    def has(self, partition: Partition) -> bool:
        return (partition.topic, partition.index) in self.partitions

    def reconnect_if_moved(self) -> None:
        address = self._leader_address()
        if self._connection is not None and address != (self._connection.host, self._connection.port):
            self._connection.close()
            self._connection = None

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            await asyncio.gather(self._task, return_exceptions=True)
        if self._connection is not None:
            self._connection.close()

    # -- the loop --------------------------------------------------------------------------------

    def _leader_address(self) -> tuple[str, int] | None:
        return self.manager.inter_broker.address(self.manager.brokers.get(self.leader_id))

    def _connect(self) -> BrokerConnection:
        address = self._leader_address()
        if address is None:
            raise BrokerUnavailable(f"broker {self.leader_id} is not registered")
        if self._connection is None:
            self._connection = BrokerConnection(self.leader_id, address[0], address[1],
                                                f"replica-fetcher-{self.node_id}", self.timeout_s,
                                                self.manager.inter_broker)
        return self._connection

    async def _run(self) -> None:
        while True:
            if not self.partitions:
                self._changed.clear()
                await self._changed.wait()
                continue
            try:
                connection = self._connect()
                await self._truncate(connection)
                if not await self._fetch(connection):
                    self._changed.clear()
                    try:
                        async with asyncio.timeout(self.backoff_s):
                            await self._changed.wait()
                    except TimeoutError:
                        pass
            except InterBrokerAuthenticationError as exc:
                # The connection logged it once (inter_broker.py); Kafka's fetcher backs off and retries.
                log.debug("replica_fetcher.authentication_failed leader=%d: %s", self.leader_id, exc)
                await asyncio.sleep(self.backoff_s)
            except BrokerUnavailable as exc:
                log.info("replica_fetcher.leader_unavailable leader=%d: %s; retrying in %.1f s", self.leader_id,
                         exc, self.backoff_s)
                await asyncio.sleep(self.backoff_s)
            except Exception:
                log.exception("replica_fetcher.failed leader=%d; retrying", self.leader_id)
                await asyncio.sleep(self.backoff_s)

    def _current(self, state: FetchState) -> bool:
        """Still fetched here with this epoch (not removed, re-added or made leader while we awaited)?"""
        return self.partitions.get((state.partition.topic, state.partition.index)) is state

    def _ready(self, truncating: bool) -> list[FetchState]:
        now = self.manager.clock.monotonic()
        return [s for s in self.partitions.values() if s.truncating == truncating and s.delayed_until <= now]

    def _delay(self, state: FetchState) -> None:
        state.delayed_until = self.manager.clock.monotonic() + self.backoff_s

    # -- truncation (KIP-101/279) ------------------------------------------------------------------

    async def _truncate(self, connection: BrokerConnection) -> None:
        states = self._ready(truncating=True)
        if not states:
            return
        by_topic: dict[str, list[Any]] = {}
        asked: dict[tuple[str, int], tuple[FetchState, int]] = {}
        for state in states:
            partition_log = state.partition.log
            if partition_log is None:
                continue
            latest = partition_log.leader_epoch_cache.latest_epoch()
            if latest is None:  # nothing to compare: the high watermark is safe
                self._truncation_done(state, partition_log.high_watermark)
                continue
            asked[(state.partition.topic, state.partition.index)] = (state, latest)
            by_topic.setdefault(state.partition.topic, []).append(
                messages.OffsetForLeaderEpochRequest.OffsetForLeaderPartition(
                    partition=state.partition.index, current_leader_epoch=state.leader_epoch, leader_epoch=latest))
        if not by_topic:
            return
        request = messages.OffsetForLeaderEpochRequest(replica_id=self.node_id, topics=[
            messages.OffsetForLeaderEpochRequest.OffsetForLeaderTopic(topic=t, partitions=p)
            for t, p in by_topic.items()])
        response = await connection.send(OFFSET_FOR_LEADER_EPOCH, OFFSET_FOR_LEADER_EPOCH_VERSION, request)
        for topic in response.topics:
            for result in topic.partitions:
                key = (topic.topic, result.partition)
                state, latest = asked[key]
                if self.partitions.get(key) is not state or not state.truncating:
                    continue  # removed or re-added (a newer epoch) while we asked: it asks again
                if result.error_code != ErrorCode.NONE:
                    self._on_partition_error(state, ErrorCode(result.error_code), "OffsetForLeaderEpoch")
                    continue
                self._truncate_to_epoch_end(state, latest, result.leader_epoch, result.end_offset)

    def _truncate_to_epoch_end(self, state: FetchState, asked_epoch: int, leader_epoch: int,
                               leader_end_offset: int) -> None:
        """Kafka's `AbstractFetcherThread.getOffsetTruncationState`."""
        partition_log = state.partition.log
        assert partition_log is not None
        end = partition_log.log_end_offset
        if leader_end_offset == UNDEFINED_EPOCH_OFFSET:
            self._truncation_done(state, partition_log.high_watermark)
            return
        if leader_epoch == UNDEFINED_EPOCH:
            self._truncation_done(state, min(leader_end_offset, end))
            return
        ours = partition_log.end_offset_for_epoch(leader_epoch)
        if ours is None:
            self._truncation_done(state, min(leader_end_offset, end))
            return
        follower_end, follower_epoch = ours
        if follower_epoch != leader_epoch:
            # We don't know the leader's epoch: cut to the end of our largest smaller one and ask again.
            self._truncate_log(state, min(follower_end, end))
            return
        self._truncation_done(state, min(follower_end, leader_end_offset, end))

    def _truncate_log(self, state: FetchState, offset: int) -> None:
        partition_log = state.partition.log
        assert partition_log is not None
        if partition_log.truncate_to(offset):
            log.info("replica_fetcher.truncated topic_partition=%s-%d offset=%d leader=%d",
                     state.partition.topic, state.partition.index, offset, self.leader_id)

    def _truncation_done(self, state: FetchState, offset: int) -> None:
        self._truncate_log(state, offset)
        assert state.partition.log is not None
        state.truncating = False
        state.fetch_offset = state.partition.log.log_end_offset

    # -- fetch ------------------------------------------------------------------------------------

    async def _fetch(self, connection: BrokerConnection) -> bool:
        """One Fetch for every partition ready to fetch; False when none was."""
        states = self._ready(truncating=False)
        if not states:
            return False
        by_topic: dict[str, list[Any]] = {}
        throttled: set[tuple[str, int]] = set()
        quota_exceeded = self.quota is not None and self.quota.exceeded()
        for state in states:
            partition_log = state.partition.log
            if partition_log is None:
                continue
            if self._throttled(state.partition):
                if quota_exceeded:
                    continue  # Kafka's shouldFollowerThrottle: left out of this fetch
                throttled.add((state.partition.topic, state.partition.index))
            by_topic.setdefault(state.partition.topic, []).append(messages.FetchRequest.FetchPartition(
                partition=state.partition.index, current_leader_epoch=state.leader_epoch,
                fetch_offset=state.fetch_offset, last_fetched_epoch=-1,
                log_start_offset=partition_log.log_start_offset, partition_max_bytes=self.max_bytes))
        request = messages.FetchRequest(
            replica_id=self.node_id, max_wait_ms=self.wait_max_ms, min_bytes=self.min_bytes,
            max_bytes=self.response_max_bytes, isolation_level=0, session_id=0, session_epoch=-1,
            topics=[messages.FetchRequest.FetchTopic(topic=t, partitions=p) for t, p in by_topic.items()],
            forgotten_topics_data=[], rack_id="")
        if not by_topic:
            return False  # every ready partition is throttled: back off (Kafka's fetchBackOffMs)
        response = await connection.send(FETCH, FETCH_VERSION, request, extra_timeout_s=self.wait_max_ms / 1000)
        if response.error_code != ErrorCode.NONE:
            raise BrokerUnavailable(f"Fetch failed with {ErrorCode(response.error_code).name}")
        for topic in response.responses:
            for data in topic.partitions:
                if self.quota is not None and (topic.topic, data.partition_index) in throttled \
                        and data.records is not None:
                    self.quota.record(len(data.records))
                fetched = self.partitions.get((topic.topic, data.partition_index))
                if fetched is None or fetched.truncating:
                    continue  # removed or re-added while the fetch was in flight
                await self._process(connection, fetched, data)
        return True

    def _throttled(self, partition: Partition) -> bool:
        """A replica outside the ISR that its topic's follower.replication.throttled.replicas names."""
        if partition.state is None or self.node_id in partition.state.isr:
            return False
        topic = self.manager.topics.get(partition.topic)
        return topic is not None and is_throttled(topic.metadata.configs, FOLLOWER_REPLICAS, partition.index,
                                                  self.node_id)

    async def _process(self, connection: BrokerConnection, state: FetchState, data: Any) -> None:
        error = ErrorCode(data.error_code)
        partition_log = state.partition.log
        if partition_log is None:
            return
        if error == ErrorCode.OFFSET_OUT_OF_RANGE:
            await self._handle_out_of_range(connection, state)
            return
        if error != ErrorCode.NONE:
            self._on_partition_error(state, error, "Fetch")
            return
        self._denied = False  # authorized again (CLUSTER_ACTION is all or nothing): a later denial is news
        records = data.records
        if records is not None and len(records):
            try:
                info = partition_log.append_as_follower(records)
            except UnexpectedAppendOffsetError:
                first = read_batch_header(records)
                end = partition_log.log_end_offset
                if not (end == partition_log.log_start_offset and first.base_offset < end <= first.last_offset):
                    log.warning("replica_fetcher.unexpected_offset topic_partition=%s-%d first_offset=%d "
                                "log_end_offset=%d; truncating again", state.partition.topic,
                                state.partition.index, first.base_offset, end)
                    state.truncating = True  # our log moved under us (a truncation): start over
                    self._delay(state)
                    return
                # Kafka's Partition.appendRecordsToFollowerOrFutureReplica: the leader's log start offset falls
                # inside the first batch we fetched into an empty log, so our log starts at that batch.
                partition_log.truncate_fully_and_start_at(first.base_offset, end)
                info = partition_log.append_as_follower(records)
            except StorageError as exc:
                log.error("replica_fetcher.append_failed topic_partition=%s-%d: %s", state.partition.topic,
                          state.partition.index, exc)
                self._delay(state)
                return
            if info.last_offset >= 0:
                state.fetch_offset = info.last_offset + 1
        before = partition_log.high_watermark
        partition_log.update_high_watermark(min(data.high_watermark, partition_log.log_end_offset))
        if partition_log.high_watermark != before:
            state.partition.notify_waiters()  # consumers reading from this follower (KIP-392) wait on it
        if data.log_start_offset > partition_log.log_start_offset:
            partition_log.maybe_increment_log_start_offset(
                min(data.log_start_offset, partition_log.high_watermark))

    async def _handle_out_of_range(self, connection: BrokerConnection, state: FetchState) -> None:
        """Kafka's `handleOutOfRangeError`: behind the leader's log start, start over there; past its end
        (an unclean election), truncate to it."""
        partition = state.partition
        partition_log = partition.log
        assert partition_log is not None
        leader_end = await self._leader_offset(connection, state, LATEST)
        if leader_end is None or not self._current(state):
            return
        if leader_end < partition_log.log_end_offset:
            self._truncate_log(state, leader_end)
        else:
            leader_start = await self._leader_offset(connection, state, EARLIEST)
            if leader_start is None or not self._current(state):
                return
            if leader_start > partition_log.log_end_offset or leader_start > state.fetch_offset:
                log.info("replica_fetcher.reset topic_partition=%s-%d to the leader's log start offset %d",
                         partition.topic, partition.index, leader_start)
                partition_log.truncate_fully_and_start_at(leader_start)
        state.fetch_offset = partition_log.log_end_offset

    async def _leader_offset(self, connection: BrokerConnection, state: FetchState, timestamp: int) -> int | None:
        request = messages.ListOffsetsRequest(replica_id=self.node_id, isolation_level=0, topics=[
            messages.ListOffsetsRequest.ListOffsetsTopic(name=state.partition.topic, partitions=[
                messages.ListOffsetsRequest.ListOffsetsPartition(
                    partition_index=state.partition.index, current_leader_epoch=state.leader_epoch,
                    timestamp=timestamp)])])
        response = await connection.send(LIST_OFFSETS, LIST_OFFSETS_VERSION, request)
        result = response.topics[0].partitions[0]
        if result.error_code != ErrorCode.NONE:
            self._on_partition_error(state, ErrorCode(result.error_code), "ListOffsets")
            return None
        return int(result.offset)

    def _on_partition_error(self, state: FetchState, error: ErrorCode, what: str) -> None:
        partition = state.partition
        if error == ErrorCode.FENCED_LEADER_EPOCH:
            # Our epoch is older than the leader's: wait for the newer state (it re-adds the partition).
            log.info("replica_fetcher.fenced topic_partition=%s-%d leader_epoch=%d by leader %d (%s)",
                     partition.topic, partition.index, state.leader_epoch, self.leader_id, what)
            self.remove(partition)
            return
        if error in (ErrorCode.TOPIC_AUTHORIZATION_FAILED, ErrorCode.CLUSTER_AUTHORIZATION_FAILED):
            # Kafka's leader answers a follower without CLUSTER_ACTION so; said once per fetcher, not per backoff.
            level = logging.DEBUG if self._denied else logging.ERROR
            self._denied = True
            log.log(level, "replica_fetcher.not_authorized leader=%d %s: %s; this broker's principal needs "
                    "CLUSTER_ACTION on the cluster (super.users or an ACL, see docs/security.md)", self.leader_id,
                    what, error.name)
            self._delay(state)
            return
        level = logging.DEBUG if error in _RETRIABLE else logging.WARNING
        log.log(level, "replica_fetcher.partition_error topic_partition=%s-%d leader=%d %s: %s; backing off",
                partition.topic, partition.index, self.leader_id, what, error.name)
        self._delay(state)
