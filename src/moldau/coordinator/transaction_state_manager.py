"""The transaction coordinator's log and state (Kafka's ``TransactionStateManager``).

Every state change of a transactional id is one record in ``__transaction_state`` (compacted, partition
``abs(hashCode(transactional_id)) % transaction.state.log.num.partitions``). The in-memory map is a
replay of those records: loading replays the log, and ``write`` is a ``CoordinatorRuntime`` operation —
replay the record, append it (acks=-1), revert the map if the append fails — the one commit order of
every coordinator.
"""

from __future__ import annotations

import logging

from moldau.clock import Clock
from moldau.coordinator.config import TransactionCoordinatorConfig
from moldau.coordinator.runtime import (
    CoordinatorLoader,
    CoordinatorResult,
    CoordinatorRuntime,
    PartitionWriter,
    SnapshotRegistry,
    TopicSpec,
)
from moldau.coordinator.transaction_metadata import (
    TRANSACTION_STATE_TOPIC,
    TransactionMetadata,
    TransactionRecordError,
    decode_key,
    decode_value,
    encode_key,
    encode_value,
)

log = logging.getLogger(__name__)

# Kafka's transaction.state.log.* defaults for the topic itself (segment.bytes 100 MiB, compacted).
TRANSACTION_STATE_TOPIC_CONFIGS = {"cleanup.policy": "compact", "segment.bytes": "104857600"}


class TransactionStateManager:
    def __init__(self, config: TransactionCoordinatorConfig, writer: PartitionWriter, loader: CoordinatorLoader,
                 clock: Clock | None = None) -> None:
        self.registry = SnapshotRegistry()
        self.runtime = CoordinatorRuntime(
            TopicSpec(TRANSACTION_STATE_TOPIC, config.transaction_state_log_num_partitions,
                      config.transaction_state_log_replication_factor, TRANSACTION_STATE_TOPIC_CONFIGS),
            writer, loader, self.replay, clock, self.registry)
        self.transactions: dict[str, TransactionMetadata] = {}

    @property
    def partition_count(self) -> int:
        return self.runtime.partition_count

    def partition_of(self, transactional_id: str) -> int:
        return self.runtime.partition_of(transactional_id)

    async def ensure_topic(self) -> None:
        """Create ``__transaction_state`` on first use, as Kafka does on the first FindCoordinator."""
        await self.runtime.ensure_topic()

    def load(self) -> int:
        """Load every partition (this broker leads them all)."""
        return self.runtime.load_all()

    def load_partition(self, partition: int) -> int:
        return self.runtime.load(partition)

    def unload_partition(self, partition: int) -> None:
        """Stop coordinating the transactional ids of ``partition`` (requests get NOT_COORDINATOR)."""
        self.runtime.unload(partition)
        for transactional_id in [t for t in self.transactions if self.partition_of(t) == partition]:
            del self.transactions[transactional_id]

    def check(self, transactional_id: str) -> None:
        self.runtime.check(self.partition_of(transactional_id))

    def replay(self, key: bytes, value: bytes | None, timestamp_ms: int = -1) -> None:
        try:
            transactional_id = decode_key(key)
            if self.registry.active:
                previous = self.transactions.get(transactional_id)
                self.registry.record(lambda: self._put(transactional_id, previous))
            self._put(transactional_id, None if value is None else decode_value(transactional_id, value))
        except TransactionRecordError as exc:
            log.warning("skipping a __transaction_state record: %s", exc)

    def _put(self, transactional_id: str, metadata: TransactionMetadata | None) -> None:
        if metadata is None:
            self.transactions.pop(transactional_id, None)
        else:
            self.transactions[transactional_id] = metadata

    async def remove(self, transactional_id: str) -> None:
        """Forget an expired transactional id: a tombstone through the runtime."""
        await self.runtime.write(transactional_id,
                                 lambda: CoordinatorResult([(encode_key(transactional_id), None)], None))

    async def write(self, metadata: TransactionMetadata) -> None:
        """Make ``metadata`` the state of its transactional id: replayed, appended (acks=-1), reverted if
        the append fails (then CoordinatorError with the coordinator's error code, e.g. NOT_COORDINATOR)."""
        record = (encode_key(metadata.transactional_id), encode_value(metadata))
        await self.runtime.write(metadata.transactional_id, lambda: CoordinatorResult([record], None))
        log.debug("txn_state transactional_id=%s state=%s producer_id=%d epoch=%d partitions=%d",
                  metadata.transactional_id, metadata.state.display_name, metadata.producer_id,
                  metadata.producer_epoch, len(metadata.partitions))
