"""The transaction coordinator's log and state (Kafka's ``TransactionStateManager``).

Every state change of a transactional id is one record in ``__transaction_state`` (compacted, partition
``abs(hashCode(transactional_id)) % transaction.state.log.num.partitions``), written with acks=-1 through
``ReplicaManager.append``. The in-memory map is a replay of those records: ``load`` replays the log on
start, ``write`` appends a record and then replays it — one code path for both.
"""

from __future__ import annotations

import logging
import time

from moldau.broker.config import BrokerConfig
from moldau.broker.errors import ApiError
from moldau.broker.replica_manager import Partition, ReplicaManager
from moldau.coordinator.append_errors import coordinator_append_error
from moldau.coordinator.records import partition_for
from moldau.coordinator.runtime import CreateTopic, no_topic_creation, replay_topic
from moldau.coordinator.transaction_metadata import (
    TRANSACTION_STATE_TOPIC,
    TransactionMetadata,
    TransactionRecordError,
    decode_key,
    decode_value,
    encode_key,
    encode_value,
)
from moldau.protocol.records import Record, build_batch

log = logging.getLogger(__name__)

# Kafka's transaction.state.log.* defaults for the topic itself (segment.bytes 100 MiB, compacted).
TRANSACTION_STATE_TOPIC_CONFIGS = {"cleanup.policy": "compact", "segment.bytes": "104857600"}


class TransactionStateManager:
    def __init__(self, config: BrokerConfig, replica_manager: ReplicaManager) -> None:
        self.replica_manager = replica_manager
        self.num_partitions: int = config["transaction.state.log.num.partitions"]
        self.replication_factor: int = config["transaction.state.log.replication.factor"]
        self.transactions: dict[str, TransactionMetadata] = {}
        self.create_topic: CreateTopic = no_topic_creation  # the broker gives its controller's

    @property
    def partition_count(self) -> int:
        topic = self.replica_manager.topics.get(TRANSACTION_STATE_TOPIC)
        return len(topic.partitions) if topic is not None else self.num_partitions

    def partition_of(self, transactional_id: str) -> int:
        return partition_for(transactional_id, self.partition_count)

    async def ensure_topic(self) -> None:
        """Create ``__transaction_state`` on first use, as Kafka does on the first FindCoordinator."""
        if TRANSACTION_STATE_TOPIC not in self.replica_manager.topics:
            await self.create_topic(TRANSACTION_STATE_TOPIC, self.num_partitions, self.replication_factor,
                              dict(TRANSACTION_STATE_TOPIC_CONFIGS))

    def load(self) -> int:
        return replay_topic(self.replica_manager, TRANSACTION_STATE_TOPIC,
                            lambda key, record: self.replay(key, record.value))

    def replay(self, key: bytes, value: bytes | None) -> None:
        try:
            transactional_id = decode_key(key)
            if value is None:
                self.transactions.pop(transactional_id, None)
            else:
                self.transactions[transactional_id] = decode_value(transactional_id, value)
        except TransactionRecordError as exc:
            log.warning("skipping a __transaction_state record: %s", exc)

    async def remove(self, transactional_id: str) -> None:
        """Write a tombstone for an expired transactional id, then forget it."""
        await self.ensure_topic()
        key = encode_key(transactional_id)
        partition = self.replica_manager.partition(TRANSACTION_STATE_TOPIC, self.partition_of(transactional_id))
        await self._append(partition, build_batch([Record(0, int(time.time() * 1000), key, None)]))
        self.replay(key, None)

    async def _append(self, partition: Partition, batch: bytes) -> None:
        try:
            await self.replica_manager.append(partition, batch, acks=-1)
        except ApiError as exc:  # Kafka's TransactionStateManager: e.g. KAFKA_STORAGE_ERROR -> NOT_COORDINATOR
            raise ApiError(coordinator_append_error(exc), exc.message) from None

    async def write(self, metadata: TransactionMetadata) -> None:
        """Append the new state of a transactional id (acks=-1), then make it the in-memory state."""
        await self.ensure_topic()
        key, value = encode_key(metadata.transactional_id), encode_value(metadata)
        partition = self.replica_manager.partition(TRANSACTION_STATE_TOPIC,
                                                   self.partition_of(metadata.transactional_id))
        batch = build_batch([Record(0, int(time.time() * 1000), key, value)])
        await self._append(partition, batch)
        self.replay(key, value)
        log.debug("txn_state transactional_id=%s state=%s producer_id=%d epoch=%d partitions=%d",
                  metadata.transactional_id, metadata.state.display_name, metadata.producer_id,
                  metadata.producer_epoch, len(metadata.partitions))
