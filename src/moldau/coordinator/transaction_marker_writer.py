"""Write transaction markers to the partitions of a transaction (Kafka's ``TransactionMarkerChannelManager``).

A partition led by this broker gets the control batch appended directly; in a cluster, partitions led
elsewhere get it through a `RemoteMarkers` channel (the broker sends WriteTxnMarkers to their leaders,
as Kafka's channel manager does). A control batch holds one control record
(key ``ControlRecordType``: version 0, type 0 abort / 1 commit; value ``EndTxnMarker``: version 0,
coordinator epoch), flagged transactional and control, with the producer's id and epoch. A marker on a
``__consumer_offsets`` partition also settles the transactional offsets pending there.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterable
from typing import Protocol

from moldau.clock import SYSTEM_CLOCK, Clock, wall_clock_ms
from moldau.coordinator.records import OFFSETS_TOPIC
from moldau.coordinator.runtime import PartitionWriter
from moldau.errors import ApiError
from moldau.protocol.errors import ErrorCode
from moldau.protocol.records import Record, build_batch
from moldau.storage.producer_state_manager import CONTROL_TYPE_ABORT, CONTROL_TYPE_COMMIT, encode_marker

log = logging.getLogger(__name__)

TopicPartition = tuple[str, int]
# (offsets partition, producer id, committed) -> None
OffsetsMarkerHook = Callable[[int, int, bool], None]


def marker_batch(producer_id: int, producer_epoch: int, coordinator_epoch: int, committed: bool,
                 timestamp_ms: int | None = None) -> bytes:
    """A control batch of one COMMIT/ABORT marker, stamped now (``timestamp_ms``, else the wall clock)."""
    key, value = encode_marker(CONTROL_TYPE_COMMIT if committed else CONTROL_TYPE_ABORT, coordinator_epoch)
    timestamp = wall_clock_ms() if timestamp_ms is None else timestamp_ms
    return build_batch([Record(0, timestamp, key, value)], producer_id=producer_id,
                       producer_epoch=producer_epoch, is_transactional=True, is_control=True)


class RemoteMarkers(Protocol):
    """Markers for partitions led by other brokers (WriteTxnMarkers to their leaders)."""

    def is_remote(self, topic: str, partition: int) -> bool: ...

    async def write(self, producer_id: int, producer_epoch: int, coordinator_epoch: int, committed: bool,
                    partitions: list[TopicPartition]) -> dict[TopicPartition, ErrorCode]: ...


class TransactionMarkerWriter:
    def __init__(self, writer: PartitionWriter, on_offsets_marker: OffsetsMarkerHook,
                 clock: Clock = SYSTEM_CLOCK) -> None:
        self.writer = writer
        self.clock = clock
        self.on_offsets_marker = on_offsets_marker
        self.remote: RemoteMarkers | None = None  # set by a broker in a cluster

    async def write(self, producer_id: int, producer_epoch: int, coordinator_epoch: int, committed: bool,
                    partitions: Iterable[TopicPartition]) -> dict[TopicPartition, ErrorCode]:
        """Append the marker to every partition; a partition that no longer exists is skipped (as Kafka
        does for deleted topics), other failures are returned for the caller to retry."""
        batch = marker_batch(producer_id, producer_epoch, coordinator_epoch, committed, self.clock.time_ms())
        errors: dict[TopicPartition, ErrorCode] = {}
        wanted = sorted(partitions)
        if self.remote is not None:
            remote = [tp for tp in wanted if self.remote.is_remote(*tp)]
            if remote:
                wanted = [tp for tp in wanted if tp not in set(remote)]
                errors.update(await self.remote.write(producer_id, producer_epoch, coordinator_epoch, committed,
                                                      remote))
        for topic, index in wanted:
            try:
                await self.writer.append_batch(topic, index, batch)
            except ApiError as exc:
                if exc.error_code == ErrorCode.UNKNOWN_TOPIC_OR_PARTITION:
                    log.warning("txn_marker.skipped topic=%s partition=%d producer_id=%d: partition is gone",
                                topic, index, producer_id)
                    errors[(topic, index)] = ErrorCode.NONE
                    continue
                log.warning("txn_marker.failed topic=%s partition=%d producer_id=%d error=%s", topic, index,
                            producer_id, exc)
                errors[(topic, index)] = exc.error_code
                continue
            errors[(topic, index)] = ErrorCode.NONE
            if topic == OFFSETS_TOPIC:
                self.on_offsets_marker(index, producer_id, committed)
        return errors
