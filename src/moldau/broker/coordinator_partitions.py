"""The broker's side of the coordinator runtime: a ``PartitionWriter``/``CoordinatorLoader`` over
``ReplicaManager`` (Kafka's ``CoordinatorPartitionWriter`` / ``CoordinatorLoaderImpl``), and the
construction of the group and transaction coordinators from ``BrokerConfig``.

coordinator/ never imports the broker; this module is where the two meet.
"""

from __future__ import annotations

import logging
import uuid
from collections.abc import Iterator
from typing import TYPE_CHECKING

from moldau.broker.config import BrokerConfig
from moldau.broker.controller import Controller
from moldau.broker.errors import ApiError
from moldau.broker.producer_id_manager import ProducerIdManager
from moldau.broker.replica_manager import ReplicaManager
from moldau.clock import Clock
from moldau.coordinator.config import GroupCoordinatorConfig, TransactionCoordinatorConfig
from moldau.coordinator.runtime import CoordinatorError, KeyValue
from moldau.protocol.records import Record, RecordBatchHeader, build_batch, iter_batches

if TYPE_CHECKING:
    from moldau.coordinator.service import Coordinator
    from moldau.coordinator.transaction_coordinator import TransactionCoordinator

log = logging.getLogger(__name__)
READ_CHUNK_BYTES = 1 << 20


class ReplicaManagerPartitionWriter:
    """Appends with acks=-1 through ``ReplicaManager.append``, so the log's flush policy decides whether a
    record is fsynced before the coordinator's response goes out."""

    def __init__(self, replica_manager: ReplicaManager, controller: Controller) -> None:
        self.replica_manager = replica_manager
        self.controller = controller
        # Kafka's offsets.commit.timeout.ms: how long a coordinator write waits for the ISR.
        self.write_timeout_s = replica_manager.config["offsets.commit.timeout.ms"] / 1000

    def partition_count(self, topic: str) -> int | None:
        entry = self.replica_manager.topics.get(topic)
        return None if entry is None else len(entry.partitions)

    async def create_topic(self, topic: str, num_partitions: int, replication_factor: int,
                           configs: dict[str, str]) -> None:
        await self.controller.create_internal_topic(topic, num_partitions, replication_factor, dict(configs))

    async def append(self, topic: str, partition: int, records: list[KeyValue], timestamp_ms: int, *,
                     producer_id: int = -1, producer_epoch: int = -1) -> int:
        batch = build_batch([Record(0, timestamp_ms, key, value) for key, value in records], producer_id=producer_id,
                            producer_epoch=producer_epoch, is_transactional=producer_id >= 0)
        # A transactional batch (TxnOffsetCommit, KIP-98) is the coordinator's own, like a marker.
        return await self._append(topic, partition, batch, coordinator=producer_id >= 0)

    async def append_batch(self, topic: str, partition: int, batch: bytes) -> int:
        return await self._append(topic, partition, batch, coordinator=True)

    async def _append(self, topic: str, partition: int, batch: bytes, *, coordinator: bool) -> int:
        """acks=-1, waiting for the ISR; storage and replication errors become the coordinator's errors."""
        try:
            info = await self.replica_manager.append_replicated(
                self.replica_manager.partition(topic, partition), batch, coordinator=coordinator,
                timeout_s=self.write_timeout_s)
        except ApiError as exc:
            raise CoordinatorError(exc.error_code, exc.message) from exc
        return info.last_offset

    # -- CoordinatorLoader ------------------------------------------------------------------------

    def log_start_offset(self, topic: str, partition: int) -> int:
        return self.replica_manager.partition(topic, partition).leader_log().log_start_offset

    def read_batches(self, topic: str, partition: int) -> Iterator[tuple[bytes, int, RecordBatchHeader]]:
        """Every complete batch up to the log end, as ``(data, position, header)``.

        The log end, not the high watermark, as Kafka's CoordinatorLoaderImpl: a new leader's high watermark
        trails until its followers fetch again, but everything in its log was replicated to it and is what
        this partition now holds, commits acknowledged under the previous leader included."""
        log_ = self.replica_manager.partition(topic, partition).leader_log()
        offset = log_.log_start_offset
        end = log_.log_end_offset
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
                log.warning("stopped loading %s-%d at offset %d: no complete batch", topic, partition, offset)
                break

    # -- topic metadata for KIP-848 subscriptions -------------------------------------------------

    def topics(self) -> dict[str, tuple[uuid.UUID, int]]:
        return {name: (t.topic_id, len(t.partitions)) for name, t in self.replica_manager.topics.items()}


def group_coordinator_config(config: BrokerConfig) -> GroupCoordinatorConfig:
    return GroupCoordinatorConfig(
        offsets_topic_num_partitions=config["offsets.topic.num.partitions"],
        offsets_topic_replication_factor=config["offsets.topic.replication.factor"],
        offsets_retention_minutes=config["offsets.retention.minutes"],
        offsets_retention_check_interval_ms=config["offsets.retention.check.interval.ms"],
        group_initial_rebalance_delay_ms=config["group.initial.rebalance.delay.ms"],
        group_min_session_timeout_ms=config["group.min.session.timeout.ms"],
        group_max_session_timeout_ms=config["group.max.session.timeout.ms"],
        group_max_size=config["group.max.size"],
        group_consumer_assignors=list(config["group.consumer.assignors"]),
        group_consumer_heartbeat_interval_ms=config["group.consumer.heartbeat.interval.ms"],
        group_consumer_max_size=config["group.consumer.max.size"],
        group_consumer_session_timeout_ms=config["group.consumer.session.timeout.ms"],
    )


def transaction_coordinator_config(config: BrokerConfig) -> TransactionCoordinatorConfig:
    return TransactionCoordinatorConfig(
        transaction_state_log_num_partitions=config["transaction.state.log.num.partitions"],
        transaction_state_log_replication_factor=config["transaction.state.log.replication.factor"],
        transaction_max_timeout_ms=config["transaction.max.timeout.ms"],
        transaction_abort_timed_out_transaction_cleanup_interval_ms=config[
            "transaction.abort.timed.out.transaction.cleanup.interval.ms"],
        transactional_id_expiration_ms=config["transactional.id.expiration.ms"],
        transaction_remove_expired_transaction_cleanup_interval_ms=config[
            "transaction.remove.expired.transaction.cleanup.interval.ms"],
    )


def build_group_coordinator(config: BrokerConfig, replica_manager: ReplicaManager, controller: Controller,
                            clock: Clock | None = None) -> Coordinator:
    from moldau.coordinator.service import Coordinator

    writer = ReplicaManagerPartitionWriter(replica_manager, controller)
    return Coordinator(group_coordinator_config(config), writer, writer, writer, clock)


def build_transaction_coordinator(config: BrokerConfig, replica_manager: ReplicaManager, controller: Controller,
                                  producer_id_manager: ProducerIdManager, group_coordinator: Coordinator,
                                  clock: Clock | None = None) -> TransactionCoordinator:
    from moldau.coordinator.transaction_coordinator import TransactionCoordinator

    writer = ReplicaManagerPartitionWriter(replica_manager, controller)
    return TransactionCoordinator(transaction_coordinator_config(config), writer, writer, producer_id_manager,
                                  group_coordinator, clock)
