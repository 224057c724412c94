"""Topics, partitions and their logs on this broker: append, read, wait for data.

Named after Kafka's `ReplicaManager`. On a single broker every partition is led here with
leader epoch 0 and the ISR is this broker alone, so the high watermark follows the log end offset.
Creating, growing and deleting topics is the controller's job (broker/controller.py).
"""

from __future__ import annotations

import asyncio
import logging
import time
import uuid
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field

from moldau.broker.config import BrokerConfig
from moldau.broker.errors import ApiError, as_api_error
from moldau.broker.topic_config import topic_log_config
from moldau.cluster.metadata_store import MetadataStore, TopicMetadata
from moldau.protocol.errors import ErrorCode
from moldau.protocol.records import InvalidRecordError
from moldau.storage.config import LogConfig
from moldau.storage.errors import StorageError
from moldau.storage.log import AppendInfo, Log
from moldau.storage.log_manager import LogManager

log = logging.getLogger(__name__)

INTERNAL_TOPICS = frozenset({"__consumer_offsets", "__transaction_state"})


@dataclass(slots=True, eq=False)
class Partition:
    topic: str
    index: int
    topic_id: uuid.UUID
    log: Log
    leader_epoch: int = 0
    waiters: set[asyncio.Future[None]] = field(default_factory=set)
    flush_lock: asyncio.Lock = field(default_factory=asyncio.Lock)  # one fsync at a time (group commit)

    def notify_waiters(self) -> None:
        for waiter in self.waiters:
            if not waiter.done():
                waiter.set_result(None)
        self.waiters.clear()

    def check_leader_epoch(self, requested: int) -> None:
        """KIP-320: a client that knows a newer epoch than ours is ahead of us; an older one is fenced."""
        if requested == -1 or requested == self.leader_epoch:
            return
        if requested > self.leader_epoch:
            raise ApiError(ErrorCode.UNKNOWN_LEADER_EPOCH)
        raise ApiError(ErrorCode.FENCED_LEADER_EPOCH)


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
    def __init__(self, config: BrokerConfig, log_manager: LogManager, store: MetadataStore) -> None:
        self.config = config
        self.log_manager = log_manager
        self.store = store
        self.default_log_config = log_manager.default_config
        self.topics: dict[str, Topic] = {}
        self.topics_by_id: dict[uuid.UUID, Topic] = {}

    # -- the topics this broker hosts (created, grown and deleted by broker/controller.py) ---------

    def open_partitions(self, metadata: TopicMetadata, indexes: Iterable[int]) -> list[Partition]:
        """Open the logs of a topic's partitions, creating missing ones: file work, so the controller
        calls this from a worker thread (LogManager is thread-safe)."""
        log_config = topic_log_config(self.default_log_config, metadata.configs)
        return [self._open_partition(metadata, index, log_config) for index in indexes]

    def _open_partition(self, metadata: TopicMetadata, index: int, log_config: LogConfig) -> Partition:
        partition_log = self.log_manager.get_or_create_log(metadata.name, index, log_config)
        if partition_log.config != log_config:  # opened at startup with the broker defaults
            partition_log.update_config(log_config)
        # One replica, so the ISR is just us: everything appended is committed.
        partition_log.update_high_watermark(partition_log.log_end_offset)
        return Partition(metadata.name, index, metadata.topic_id, partition_log)

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
            partition.notify_waiters()
        return topic

    def partition(self, topic: str, index: int) -> Partition:
        entry = self.topics.get(topic)
        if entry is None or not 0 <= index < len(entry.partitions):
            raise ApiError(ErrorCode.UNKNOWN_TOPIC_OR_PARTITION, "This server does not host this topic-partition.")
        return entry.partitions[index]

    def partition_by_id(self, topic_id: uuid.UUID, index: int) -> Partition:
        entry = self.topics_by_id.get(topic_id)
        if entry is None:
            raise ApiError(ErrorCode.UNKNOWN_TOPIC_ID, "This server does not host this topic ID.")
        if not 0 <= index < len(entry.partitions):
            raise ApiError(ErrorCode.UNKNOWN_TOPIC_OR_PARTITION, "This server does not host this topic-partition.")
        return entry.partitions[index]

    # -- produce ---------------------------------------------------------------------------------

    async def append(self, partition: Partition, records: bytes | memoryview, acks: int,
                     in_place: bool = False) -> AppendInfo:
        """Append a produced batch as leader; returns after fsync when the flush policy asks for it.

        `in_place`: `records` views a request frame nobody reads again, so offsets may be patched into it.
        """
        topic = self.topics.get(partition.topic)
        if acks == -1 and topic is not None:
            min_isr = int(topic.metadata.configs.get("min.insync.replicas", self.config["min.insync.replicas"]))
            if min_isr > 1:
                # One broker means an ISR of one (Kafka: NotEnoughReplicasException).
                raise ApiError(ErrorCode.NOT_ENOUGH_REPLICAS,
                               f"The size of the current ISR 1 is insufficient to satisfy the min.isr "
                               f"requirement of {min_isr} for partition {partition.topic}-{partition.index}")
        partition_log = partition.log
        compression_type = self.config["compression.type"] if topic is None else \
            topic.metadata.configs.get("compression.type", self.config["compression.type"])
        with _append_errors_as_api_errors():
            # Validation, compacted keys and recompression happen once, in storage's LogValidator.
            info = partition_log.append_as_leader(
                records, leader_epoch=partition.leader_epoch, now_ms=int(time.time() * 1000), in_place=in_place,
                compression_type=compression_type,
            )
            await self._after_append(partition)
        return info

    async def append_coordinator_batch(self, partition: Partition, batch: bytes) -> AppendInfo:
        """Append a batch a coordinator built: a transaction marker or transactional offsets (KIP-98)."""
        with _append_errors_as_api_errors():
            info = partition.log.append_as_coordinator(batch, leader_epoch=partition.leader_epoch,
                                                       now_ms=int(time.time() * 1000))
            await self._after_append(partition)
        return info

    async def _after_append(self, partition: Partition) -> None:
        partition_log = partition.log
        if partition_log.flush_messages_reached:  # the flush.messages part of Log.should_flush
            await self.flush(partition)
        partition_log.update_high_watermark(partition_log.log_end_offset)
        partition.notify_waiters()

    async def flush(self, partition: Partition) -> None:
        """fsync a partition's log in a worker thread; concurrent callers share one fsync (group commit)."""
        target = partition.log.log_end_offset
        async with partition.flush_lock:
            if partition.log.recovery_point >= target:
                return
            await asyncio.to_thread(partition.log.flush)

    # -- fetch -----------------------------------------------------------------------------------

    async def wait_for_data(self, partitions: Iterable[Partition], timeout_s: float) -> None:
        """Wake on the first append to any of `partitions`, or after `timeout_s`."""
        loop = asyncio.get_running_loop()
        waiter: asyncio.Future[None] = loop.create_future()
        watched = list(partitions)
        for partition in watched:
            partition.waiters.add(waiter)
        try:
            await asyncio.wait_for(waiter, timeout_s)
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
