"""Topics, partitions and their logs on this broker: append, read, wait for data, replicate.

Named after Kafka's `ReplicaManager`. On a single broker (no partition state applied) every partition is
led here with leader epoch 0 and the ISR is this broker alone, so the high watermark follows the log end
offset. In a cluster, the metadata store's partition states drive it (`apply_partition_state`): the leader
tracks its followers and the ISR (broker/partition.py), followers fetch (broker/replica_fetcher.py).
Creating, growing and deleting topics is the controller's job (broker/controller.py).
"""

from __future__ import annotations

import asyncio
import logging
import uuid
from collections.abc import Awaitable, Callable, Iterable, Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass

from moldau.broker.config import BrokerConfig
from moldau.broker.errors import ApiError, as_api_error
from moldau.broker.inter_broker import InterBrokerSecurity, inter_broker_listener_name
from moldau.broker.partition import Partition, Transition
from moldau.broker.replica_fetcher import ReplicaFetcherManager
from moldau.broker.replication_quota import ReplicationQuotas
from moldau.broker.topic_config import topic_log_config
from moldau.clock import SYSTEM_CLOCK, Clock
from moldau.cluster.metadata_store import MetadataStore, TopicMetadata
from moldau.cluster.state import NO_LEADER, BrokerRegistration, PartitionState
from moldau.protocol.errors import ErrorCode
from moldau.protocol.records import InvalidRecordError
from moldau.storage.config import LogConfig
from moldau.storage.errors import StorageError
from moldau.storage.log import AppendInfo, Log
from moldau.storage.log_manager import LogManager

log = logging.getLogger(__name__)

INTERNAL_TOPICS = frozenset({"__consumer_offsets", "__transaction_state"})

# The metadata store's compare-and-set of one partition's state (Kafka's AlterPartition, KIP-497).
# `proposed` is `current.with_changes(isr=...)`: its partition_epoch is one more than the state it was made
# from, and the store accepts it only if that is still the stored state. Returns the stored state, or None
# (or raises) when fenced; the leader then waits for the newer state to be applied.
AlterPartition = Callable[[str, int, PartitionState], Awaitable[PartitionState | None]]

__all__ = ["INTERNAL_TOPICS", "AlterPartition", "Partition", "ReplicaManager", "Topic", "Transition"]


@dataclass(slots=True, eq=False)
class Topic:
    metadata: TopicMetadata
    partitions: list[Partition]

    @property
    def name(self) -> str:
        return self.metadata.name

    @property
    def topic_id(self) -> uuid.UUID:
        return self.metadata.topic_id


class ReplicaManager:
    def __init__(self, config: BrokerConfig, log_manager: LogManager, store: MetadataStore,
                 alter_partition: AlterPartition | None = None, clock: Clock | None = None) -> None:
        self.config = config
        self.clock: Clock = clock or SYSTEM_CLOCK
        self.node_id = config.node_id
        self.log_manager = log_manager
        self.store = store
        self.default_log_config = log_manager.default_config
        self.topics: dict[str, Topic] = {}
        self.topics_by_id: dict[uuid.UUID, Topic] = {}
        # The live brokers of the cluster (the store's registrations); empty on a single broker.
        self.brokers: dict[int, BrokerRegistration] = {}
        # Injected by whoever owns the metadata store; without it the ISR never changes.
        self.alter_partition: AlterPartition | None = alter_partition
        self.replica_lag_time_max_ms: int = int(config["replica.lag.time.max.ms"])
        self.quotas = ReplicationQuotas(config)  # KIP-73 replication throttles (broker/replication_quota.py)
        # How followers reach their leaders; a cluster broker replaces it with the full one (TLS, SASL) at start.
        self.inter_broker = InterBrokerSecurity(inter_broker_listener_name(config))
        self.fetchers = ReplicaFetcherManager(self)
        self._isr_task: asyncio.Task[None] | None = None
        self._alter_tasks: set[asyncio.Task[None]] = set()

    # -- the topics this broker hosts (created, grown and deleted by broker/controller.py) ---------

    def open_partitions(self, metadata: TopicMetadata, indexes: Iterable[int]) -> list[Partition]:
        """Open the logs of a topic's partitions, creating missing ones: file work, so the controller
        calls this from a worker thread (LogManager is thread-safe)."""
        log_config = topic_log_config(self.default_log_config, metadata.configs)
        partitions = []
        for index in indexes:
            partition_log = self._open_log(metadata, index, log_config)
            checkpointed = partition_log.high_watermark
            # One replica, so the ISR is just us: everything appended is committed.
            partition_log.update_high_watermark(partition_log.log_end_offset)
            partition = self._new_partition(metadata, index, partition_log)
            partition.checkpointed_high_watermark = checkpointed
            partitions.append(partition)
        return partitions

    def _open_log(self, metadata: TopicMetadata, index: int, log_config: LogConfig) -> Log:
        partition_log = self.log_manager.get_or_create_log(metadata.name, index, log_config)
        if partition_log.config != log_config:  # opened at startup with the broker defaults
            partition_log.update_config(log_config)
        return partition_log

    def _new_partition(self, metadata: TopicMetadata, index: int, partition_log: Log | None) -> Partition:
        return Partition(metadata.name, index, metadata.topic_id, partition_log, node_id=self.node_id,
                         replica_lag_time_max_ms=self.replica_lag_time_max_ms, is_eligible=self._is_eligible)

    def _is_eligible(self, replica_id: int) -> bool:
        """A registered broker (in a cluster); tests that play controller register none: everyone is."""
        return not self.brokers or replica_id in self.brokers

    def add_topic(self, topic: Topic) -> None:
        self.topics[topic.name] = topic
        self.topics_by_id[topic.topic_id] = topic

    def add_partitions(self, metadata: TopicMetadata, partitions: list[Partition]) -> None:
        topic = self.topics[metadata.name]
        topic.metadata = metadata
        topic.partitions.extend(partitions)

    def remove_topic(self, name: str) -> Topic:
        """Stop serving a topic; waiting fetches wake up and find it gone. Its logs are the caller's."""
        topic = self.topics.pop(name)
        del self.topics_by_id[topic.topic_id]
        for partition in topic.partitions:
            self.fetchers.remove_partition(partition)
            partition.notify_waiters()
            partition.notify_hw_waiters()
        return topic

    def hosted_partition(self, topic: str, index: int) -> Partition:
        """The partition whatever this broker's role (Kafka's `getPartitionOrException`)."""
        entry = self.topics.get(topic)
        if entry is None or not 0 <= index < len(entry.partitions):
            raise ApiError(ErrorCode.UNKNOWN_TOPIC_OR_PARTITION, "This server does not host this topic-partition.")
        return entry.partitions[index]

    def partition(self, topic: str, index: int) -> Partition:
        """The partition, if this broker leads it: NOT_LEADER_OR_FOLLOWER otherwise."""
        partition = self.hosted_partition(topic, index)
        partition.leader_log()
        return partition

    def partition_by_id(self, topic_id: uuid.UUID, index: int, leader_only: bool = True) -> Partition:
        entry = self.topics_by_id.get(topic_id)
        if entry is None:
            raise ApiError(ErrorCode.UNKNOWN_TOPIC_ID, "This server does not host this topic ID.")
        if not 0 <= index < len(entry.partitions):
            raise ApiError(ErrorCode.UNKNOWN_TOPIC_OR_PARTITION, "This server does not host this topic-partition.")
        partition = entry.partitions[index]
        if leader_only:
            partition.leader_log()
        return partition

    # -- leadership, driven by the metadata store (Kafka's becomeLeaderOrFollower / applyDelta) -----

    def update_brokers(self, brokers: Mapping[int, BrokerRegistration]) -> None:
        """The live brokers (Metadata's broker list, the fetchers' leader addresses)."""
        self.brokers = dict(brokers)
        self.fetchers.brokers_changed()

    async def apply_partition_state(self, metadata: TopicMetadata, index: int, state: PartitionState,
                                    brokers: Mapping[int, BrokerRegistration] | None = None) -> Transition:
        """Act on a partition's state from the metadata store: lead it, follow its leader, or stop hosting it.

        A state older than the one applied (leader epoch, then partition epoch) is ignored. The local log is
        opened or created (in a worker thread) when this broker is one of the replicas.
        """
        if brokers is not None:
            self.update_brokers(brokers)
        partition = self._known_partition(metadata, index)
        async with partition.state_lock:
            current = partition.state
            if current is not None and (state.leader_epoch, state.partition_epoch) <= \
                    (current.leader_epoch, current.partition_epoch):
                return Transition.UNCHANGED  # stale: a newer state was applied already
            if self.node_id not in state.replicas:
                return self._stop_hosting(partition, state)
            if partition.log is None:
                log_config = topic_log_config(self.default_log_config, metadata.configs)
                partition.log = await asyncio.to_thread(self._open_log, metadata, index, log_config)
            elif current is None and partition.checkpointed_high_watermark is not None:
                # Led alone until now with HW = LEO; with replicas, only the checkpointed HW is known committed.
                partition.log.update_high_watermark(partition.checkpointed_high_watermark)
            partition.checkpointed_high_watermark = None
            self._ensure_isr_checks()
            if state.leader == self.node_id:
                return self._make_leader(partition, current, state)
            return self._make_follower(partition, current, state)

    def _known_partition(self, metadata: TopicMetadata, index: int) -> Partition:
        """Every partition of a topic is known, hosted here or not, so that Metadata can describe it."""
        topic = self.topics.get(metadata.name)
        if topic is None:
            topic = Topic(metadata, [])
            self.add_topic(topic)
        elif topic.topic_id != metadata.topic_id:
            # The cluster's metadata is the truth: a topic opened from local metadata takes the cluster's id.
            log.warning("topic %s: id %s replaced by the cluster's %s", metadata.name, topic.topic_id,
                        metadata.topic_id)
            self.topics_by_id.pop(topic.topic_id, None)
            topic.metadata = metadata
            self.topics_by_id[metadata.topic_id] = topic
            for partition in topic.partitions:
                partition.topic_id = metadata.topic_id
        elif metadata.num_partitions > topic.metadata.num_partitions:
            topic.metadata = metadata
        count = max(index + 1, metadata.num_partitions)
        while len(topic.partitions) < count:
            topic.partitions.append(self._new_partition(metadata, len(topic.partitions), None))
        return topic.partitions[index]

    def _make_leader(self, partition: Partition, current: PartitionState | None,
                     state: PartitionState) -> Transition:
        now_ms = self.clock.time_ms()
        if current is not None and current.leader == self.node_id and current.leader_epoch == state.leader_epoch:
            partition.update_committed_state(state)  # an ISR change (ours, committed) or a reassignment
            partition.maybe_increment_high_watermark(now_ms)
            return Transition.UNCHANGED
        self.fetchers.remove_partition(partition)
        partition.make_leader(state, now_ms)
        log.info("partition.become_leader topic_partition=%s-%d leader_epoch=%d isr=%s high_watermark=%d "
                 "log_end_offset=%d", partition.topic, partition.index, state.leader_epoch, list(state.isr),
                 partition.log.high_watermark if partition.log else -1,
                 partition.log.log_end_offset if partition.log else -1)
        return Transition.BECAME_LEADER

    def _make_follower(self, partition: Partition, current: PartitionState | None,
                       state: PartitionState) -> Transition:
        same_leader = current is not None and current.leader == state.leader and \
            current.leader_epoch == state.leader_epoch and partition.is_follower
        partition.make_follower(state)
        if same_leader:
            return Transition.UNCHANGED
        # Produces waiting for acks and fetches waiting for data find they are no longer served here.
        partition.notify_hw_waiters()
        partition.notify_waiters()
        self.fetchers.remove_partition(partition)
        if state.leader != NO_LEADER:
            self.fetchers.add_partition(partition, state.leader)  # truncates first (KIP-101/279), then fetches
        log.info("partition.become_follower topic_partition=%s-%d leader=%d leader_epoch=%d log_end_offset=%d",
                 partition.topic, partition.index, state.leader, state.leader_epoch,
                 partition.log.log_end_offset if partition.log else -1)
        return Transition.BECAME_FOLLOWER

    def _stop_hosting(self, partition: Partition, state: PartitionState) -> Transition:
        hosted = partition.log is not None and partition.state is not None and \
            self.node_id in partition.state.replicas
        partition.stop_hosting(state)
        self.fetchers.remove_partition(partition)
        partition.notify_hw_waiters()
        partition.notify_waiters()
        if partition.log is not None:
            log.info("partition.removed topic_partition=%s-%d: this broker is no longer a replica (log kept)",
                     partition.topic, partition.index)
            partition.log = None  # the files stay; deleting them is the controller's decision
        return Transition.REMOVED if hosted else Transition.UNCHANGED

    # -- leader: follower fetches, ISR changes (KIP-497), high watermark -------------------------

    def record_follower_fetch(self, partition: Partition, replica_id: int, fetch_offset: int) -> None:
        """Kafka's `updateFollowerFetchState`: what a follower has, then ISR expansion and the high watermark."""
        partition.leader_log()
        now_ms = self.clock.time_ms()
        partition.record_follower_fetch(replica_id, fetch_offset, now_ms)
        expanded = partition.isr_expansion()
        if expanded is not None:
            self._propose_isr(partition, expanded)
        partition.maybe_increment_high_watermark(now_ms)

    def _propose_isr(self, partition: Partition, isr: tuple[int, ...]) -> None:
        if self.alter_partition is None or partition.state is None or partition.inflight is not None:
            return
        proposed = partition.state.with_changes(isr=isr)
        partition.inflight = proposed
        task = asyncio.get_running_loop().create_task(self._alter(partition, proposed))
        self._alter_tasks.add(task)
        task.add_done_callback(self._alter_tasks.discard)

    async def _alter(self, partition: Partition, proposed: PartitionState) -> None:
        assert self.alter_partition is not None
        log.info("partition.alter_isr topic_partition=%s-%d isr=%s partition_epoch=%d", partition.topic,
                 partition.index, list(proposed.isr), proposed.partition_epoch)
        try:
            committed = await self.alter_partition(partition.topic, partition.index, proposed)
        except Exception as exc:  # noqa: BLE001 - the store is down or refused: retry at the next check
            log.warning("partition.alter_isr failed topic_partition=%s-%d: %s", partition.topic, partition.index,
                        exc)
            if partition.inflight is proposed:
                partition.inflight = None
            return
        if committed is None:
            # Fenced (INVALID_UPDATE_VERSION): a newer state exists; it clears the in-flight change when applied.
            log.info("partition.alter_isr fenced topic_partition=%s-%d", partition.topic, partition.index)
            return
        topic = self.topics.get(partition.topic)
        if topic is not None:
            await self.apply_partition_state(topic.metadata, partition.index, committed)

    def _ensure_isr_checks(self) -> None:
        if self._isr_task is None or self._isr_task.done():
            self._isr_task = asyncio.get_running_loop().create_task(self._isr_checks())

    async def _isr_checks(self) -> None:
        """Kafka's `isr-expiration` task: every replica.lag.time.max.ms / 2, drop followers that lag."""
        while True:
            await asyncio.sleep(self.replica_lag_time_max_ms / 2000)
            try:
                self.maybe_shrink_isr()
            except Exception:
                log.exception("ISR check failed; retrying")

    def maybe_shrink_isr(self) -> None:
        now_ms = self.clock.time_ms()
        for topic in list(self.topics.values()):
            for partition in topic.partitions:
                if partition.state is None or not partition.is_leader:
                    continue
                out = partition.out_of_sync_replicas(now_ms)
                if out:
                    log.info("partition.shrink_isr topic_partition=%s-%d out_of_sync=%s", partition.topic,
                             partition.index, sorted(out))
                    self._propose_isr(partition, tuple(r for r in partition.isr if r not in out))

    async def shutdown(self) -> None:
        """Stop the replica fetchers and the ISR checks (before the logs close)."""
        tasks = [t for t in (self._isr_task, *self._alter_tasks) if t is not None]
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        await self.fetchers.shutdown()

    def leader_hint(self, topic: str | None = None, index: int = -1,
                    topic_id: uuid.UUID | None = None) -> tuple[int, int] | None:
        """KIP-951: (leader id, leader epoch) of a partition we don't lead, for NOT_LEADER_OR_FOLLOWER."""
        entry = self.topics.get(topic) if topic is not None else self.topics_by_id.get(topic_id)  # type: ignore[arg-type]
        if entry is None or not 0 <= index < len(entry.partitions):
            return None
        state = entry.partitions[index].state
        leader = self.live_leader(state)
        if state is None or leader == NO_LEADER:
            return None  # no hint toward a broker that is gone (its node endpoint could not be given either)
        return leader, state.leader_epoch

    def live_leader(self, state: PartitionState | None) -> int:
        """The leader clients may be sent to (Metadata, KIP-951 hints): the state's leader while it is a
        registered, live broker, else NO_LEADER. A client must never be told of a leader missing from the
        brokers list: kafka-python fails every send to such a partition until its metadata changes, and no
        endpoint could be given for it. Kafka answers LEADER_NOT_AVAILABLE from when the leader's broker is
        gone until the controller has moved its partitions. With no broker registered (tests that play the
        controller) every leader counts as live."""
        if state is None or state.leader == NO_LEADER or (self.brokers and state.leader not in self.brokers):
            return NO_LEADER
        return state.leader

    # -- produce ---------------------------------------------------------------------------------

    def check_min_isr(self, partition: Partition, acks: int) -> None:
        """acks=all needs `min.insync.replicas` in the ISR before the append (Kafka: NotEnoughReplicasException)."""
        if acks != -1:
            return
        min_isr = self._min_isr(partition)
        isr_size = len(partition.isr)
        if isr_size < min_isr:
            raise ApiError(ErrorCode.NOT_ENOUGH_REPLICAS,
                           f"The size of the current ISR {isr_size} is insufficient to satisfy the min.isr "
                           f"requirement of {min_isr} for partition {partition.topic}-{partition.index}")

    def _min_isr(self, partition: Partition) -> int:
        topic = self.topics.get(partition.topic)
        configs = topic.metadata.configs if topic is not None else {}
        return int(configs.get("min.insync.replicas", self.config["min.insync.replicas"]))

    async def append(self, partition: Partition, records: bytes | memoryview, acks: int,
                     in_place: bool = False) -> AppendInfo:
        """Append a produced batch as leader; returns after fsync when the flush policy asks for it.
        For acks=all, `wait_for_replication` then waits for the followers.

        `in_place`: `records` views a request frame nobody reads again, so offsets may be patched into it.
        """
        partition_log = partition.leader_log()
        self.check_min_isr(partition, acks)
        topic = self.topics.get(partition.topic)
        compression_type = self.config["compression.type"] if topic is None else \
            topic.metadata.configs.get("compression.type", self.config["compression.type"])
        with _append_errors_as_api_errors():
            # Validation, compacted keys and recompression happen once, in storage's LogValidator.
            info = partition_log.append_as_leader(
                records, leader_epoch=partition.leader_epoch, now_ms=self.clock.time_ms(), in_place=in_place,
                compression_type=compression_type,
            )
            await self._after_append(partition)
        return info

    async def wait_for_replication(self, partition: Partition, required_offset: int, deadline: float) -> None:
        """Kafka's DelayedProduce for acks=all: wait until the high watermark reaches `required_offset`
        (the end of the appended batch), by `deadline` (loop time). Raises REQUEST_TIMED_OUT,
        NOT_LEADER_OR_FOLLOWER, or NOT_ENOUGH_REPLICAS_AFTER_APPEND when the ISR shrank under
        min.insync.replicas meanwhile (Kafka's `checkEnoughReplicasReachOffset`)."""
        loop = asyncio.get_running_loop()
        while True:
            partition_log = partition.leader_log()
            if partition_log.high_watermark >= required_offset:
                min_isr = self._min_isr(partition)
                if len(partition.isr) < min_isr:
                    raise ApiError(ErrorCode.NOT_ENOUGH_REPLICAS_AFTER_APPEND,
                                   f"The size of the current ISR {len(partition.isr)} is insufficient to satisfy "
                                   f"the min.isr requirement of {min_isr} for partition "
                                   f"{partition.topic}-{partition.index}")
                return
            remaining = deadline - loop.time()
            if remaining <= 0:
                raise ApiError(ErrorCode.REQUEST_TIMED_OUT,
                               f"The followers of {partition.topic}-{partition.index} did not reach offset "
                               f"{required_offset} within the request's timeout_ms")
            waiter: asyncio.Future[None] = loop.create_future()
            partition.hw_waiters.add(waiter)
            try:
                async with asyncio.timeout(remaining):
                    await waiter
            except TimeoutError:
                pass
            finally:
                partition.hw_waiters.discard(waiter)

    async def append_replicated(self, partition: Partition, batch: bytes, *, coordinator: bool,
                                timeout_s: float) -> AppendInfo:
        """An acks=all append of the broker's own writers (coordinator records, transaction markers): it
        returns once the ISR has it, as Kafka's coordinators and WriteTxnMarkers append with acks=-1, so that
        what they acknowledge survives a failover. `coordinator`: a batch the coordinator built itself."""
        if coordinator:
            self.check_min_isr(partition, -1)
            info = await self.append_coordinator_batch(partition, batch)
        else:
            info = await self.append(partition, batch, acks=-1)
        if partition.state is not None:  # a cluster: followers must have it too
            deadline = asyncio.get_running_loop().time() + timeout_s
            await self.wait_for_replication(partition, info.last_offset + 1, deadline)
        return info

    async def append_coordinator_batch(self, partition: Partition, batch: bytes) -> AppendInfo:
        """Append a batch a coordinator built: a transaction marker or transactional offsets (KIP-98)."""
        partition_log = partition.leader_log()
        with _append_errors_as_api_errors():
            info = partition_log.append_as_coordinator(batch, leader_epoch=partition.leader_epoch,
                                                       now_ms=self.clock.time_ms())
            await self._after_append(partition)
        return info

    async def _after_append(self, partition: Partition) -> None:
        partition_log = partition.leader_log()
        if partition_log.flush_messages_reached:  # the flush.messages part of Log.should_flush
            await self.flush(partition)
        if partition.state is None:
            partition_log.update_high_watermark(partition_log.log_end_offset)
        else:
            partition.maybe_increment_high_watermark(self.clock.time_ms())  # the ISR may be this broker alone
        partition.notify_waiters()

    async def flush(self, partition: Partition) -> None:
        """fsync a partition's log in a worker thread; concurrent callers share one fsync (group commit)."""
        partition_log = partition.log
        if partition_log is None:
            return
        target = partition_log.log_end_offset
        async with partition.flush_lock:
            if partition_log.recovery_point >= target:
                return
            await asyncio.to_thread(partition_log.flush)

    # -- fetch -----------------------------------------------------------------------------------

    async def wait_for_data(self, partitions: Iterable[Partition], timeout_s: float) -> None:
        """Wake on the first append to any of `partitions`, or after `timeout_s`."""
        loop = asyncio.get_running_loop()
        waiter: asyncio.Future[None] = loop.create_future()
        watched = list(partitions)
        for partition in watched:
            partition.waiters.add(waiter)
        try:
            async with asyncio.timeout(timeout_s):
                await waiter
        except TimeoutError:
            pass
        finally:
            for partition in watched:
                partition.waiters.discard(waiter)


@contextmanager
def _append_errors_as_api_errors() -> Iterator[None]:
    """What storage refuses on append or flush becomes the Kafka error code the producer sees: a full or
    failed disk is KAFKA_STORAGE_ERROR for this partition, and the connection stays open."""
    try:
        yield
    except (InvalidRecordError, StorageError) as exc:
        raise as_api_error(exc) from None
