"""The coordinator's log: append records to `__consumer_offsets` and read them back on load.

Writes go through the broker's normal append path (`ReplicaManager.append`, acks=-1), so the log's
flush policy decides whether a record is fsynced before the caller's response goes out.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Awaitable, Callable, Iterator

from moldau.broker.replica_manager import Partition, ReplicaManager
from moldau.coordinator.records import OFFSETS_TOPIC, partition_for
from moldau.protocol.records import Record, RecordBatchHeader, build_batch, decode_batch, iter_batches

log = logging.getLogger(__name__)

READ_CHUNK_BYTES = 1 << 20
# Kafka's offsets.topic.* defaults for the topic itself.
OFFSETS_TOPIC_CONFIGS = {"cleanup.policy": "compact", "segment.bytes": "104857600"}

KeyValue = tuple[bytes, bytes | None]
# Creates an internal topic: (name, partitions, replication factor, configs). The broker sets it to its
# controller's; coordinators never create topics themselves.
CreateTopic = Callable[[str, int, int, dict[str, str | None]], Awaitable[None]]


async def no_topic_creation(name: str, num_partitions: int, replication_factor: int,
                            configs: dict[str, str | None]) -> None:
    raise RuntimeError(f"cannot create {name}: no controller was given to this coordinator")


class CoordinatorLog:
    def __init__(self, replica_manager: ReplicaManager, num_partitions: int, replication_factor: int = 1) -> None:
        self.replica_manager = replica_manager
        self.num_partitions = num_partitions
        self.replication_factor = replication_factor
        self.create_topic: CreateTopic = no_topic_creation

    def exists(self) -> bool:
        return OFFSETS_TOPIC in self.replica_manager.topics

    @property
    def partition_count(self) -> int:
        """The partition count of the existing topic (it may predate a config change), else the config."""
        topic = self.replica_manager.topics.get(OFFSETS_TOPIC)
        return len(topic.partitions) if topic is not None else self.num_partitions

    async def ensure_topic(self) -> None:
        """Create `__consumer_offsets` on first use, as Kafka does on the first FindCoordinator."""
        if not self.exists():
            await self.create_topic(OFFSETS_TOPIC, self.num_partitions, self.replication_factor,
                              dict(OFFSETS_TOPIC_CONFIGS))

    def partition_of(self, group_id: str) -> int:
        return partition_for(group_id, self.partition_count)

    async def append(self, group_id: str, records: list[KeyValue]) -> None:
        """Append one batch of key/value records (value None = tombstone) to the group's partition."""
        if not records:
            return
        await self.ensure_topic()
        partition = self.replica_manager.partition(OFFSETS_TOPIC, self.partition_of(group_id))
        now = int(time.time() * 1000)
        batch = build_batch([Record(0, now, key, value) for key, value in records])
        await self.replica_manager.append(partition, batch, acks=-1)

    def load(self, replay: Callable[[bytes, bytes | None, int], None]) -> int:
        """Replay every stored record, partition by partition; returns how many were read."""
        return replay_topic(self.replica_manager, OFFSETS_TOPIC,
                            lambda key, record: replay(key, record.value, record.timestamp))


def read_batches(partition: Partition) -> Iterator[tuple[bytes, int, RecordBatchHeader]]:
    """Every complete batch of an internal topic's partition up to its high watermark, as
    `(data, position, header)`: the one reader that coordinators replay their state with."""
    log_ = partition.log
    offset = log_.log_start_offset
    end = log_.high_watermark
    while offset < end:
        info = log_.read(offset, READ_CHUNK_BYTES, max_offset=end)
        if info.records is None:
            break
        data = info.records.read_bytes()
        advanced = False
        for pos, header in iter_batches(data):
            if header.last_offset < offset:
                continue
            yield data, pos, header
            offset = header.last_offset + 1
            advanced = True
        if not advanced:
            log.warning("stopped loading %s-%d at offset %d: no complete batch", partition.topic,
                        partition.index, offset)
            break


def replay_topic(replica_manager: ReplicaManager, topic_name: str,
                 replay: Callable[[bytes, Record], None]) -> int:
    """Hand every keyed record of an internal topic to `replay`, partition by partition; returns the count."""
    topic = replica_manager.topics.get(topic_name)
    if topic is None:
        return 0
    count = 0
    for partition in topic.partitions:
        for record in data_records(partition):
            if record.key is not None:
                replay(record.key, record)
                count += 1
    return count


def data_records(partition: Partition) -> Iterator[Record]:
    """The records of every non-control batch of `partition` (see `read_batches`)."""
    start = partition.log.log_start_offset  # a batch may straddle it (DeleteRecords)
    for data, pos, header in read_batches(partition):
        if not header.is_control:
            yield from (r for r in decode_batch(data, pos) if r.offset >= start)
