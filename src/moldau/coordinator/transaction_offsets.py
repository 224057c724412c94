"""Transactional offset commits (KIP-98 TxnOffsetCommit) on the group coordinator's side.

TxnOffsetCommit writes ordinary OffsetCommit records to ``__consumer_offsets``, but in a transactional
batch carrying the producer's id and epoch; they stay pending (invisible to OffsetFetch) until the
transaction coordinator writes the commit marker to that partition, and an abort marker drops them
(Kafka's ``OffsetMetadataManager.replayEndTransactionMarker``). Loading applies the same rule: records of
a transactional batch are held per producer until the producer's marker says commit or abort.
"""

from __future__ import annotations

import logging
from collections.abc import Callable

from moldau.clock import wall_clock_ms
from moldau.coordinator.records import OffsetCommitKey, decode_key
from moldau.coordinator.runtime import KeyValue
from moldau.protocol.records import RecordBatchHeader, decode_batch
from moldau.storage.producer_state_manager import CONTROL_TYPE_COMMIT, control_marker

log = logging.getLogger(__name__)
Replay = Callable[[bytes, bytes | None, int], None]


class PendingTxnOffsets:
    """(offsets partition, producer id) -> the OffsetCommit records its open transaction wrote there."""

    def __init__(self) -> None:
        self._pending: dict[tuple[int, int], list[KeyValue]] = {}

    def add(self, offsets_partition: int, producer_id: int, records: list[KeyValue]) -> None:
        self._pending.setdefault((offsets_partition, producer_id), []).extend(records)

    def add_undoable(self, offsets_partition: int, producer_id: int, records: list[KeyValue],
                     ) -> Callable[[], None]:
        """``add``, returning the closure that takes the records out again (a failed write)."""
        key = (offsets_partition, producer_id)
        before = len(self._pending.get(key, []))
        self.add(offsets_partition, producer_id, records)

        def undo() -> None:
            held = self._pending.get(key)
            if held is not None:
                del held[before:]
                if not held:
                    del self._pending[key]
        return undo

    def complete(self, offsets_partition: int, producer_id: int, committed: bool, replay: Replay,
                 now: int | None = None) -> int:
        """Apply (commit) or drop (abort) a producer's pending records; returns how many there were."""
        records = self._pending.pop((offsets_partition, producer_id), [])
        if committed:
            now = wall_clock_ms() if now is None else now
            for key, value in records:
                replay(key, value, now)
        return len(records)

    def pending_partitions(self, group_id: str) -> set[tuple[str, int]]:
        """The (topic, partition) pairs with an uncommitted transactional offset of `group_id`."""
        result = set()
        for records in self._pending.values():
            for key, _ in records:
                decoded = decode_key(key)
                if isinstance(decoded, OffsetCommitKey) and decoded.group == group_id:
                    result.add((decoded.topic, decoded.partition))
        return result

    def drop_partition(self, offsets_partition: int) -> None:
        for key in [k for k in self._pending if k[0] == offsets_partition]:
            del self._pending[key]

    def has_pending(self, producer_id: int) -> bool:
        return any(pid == producer_id for _, pid in self._pending)


class OffsetsBatchReplayer:
    """Loads one ``__consumer_offsets`` partition batch by batch (``CoordinatorRuntime.load``), holding
    transactional records until their marker; those of still-open transactions end up in ``pending``."""

    def __init__(self, partition: int, replay: Replay, pending: PendingTxnOffsets) -> None:
        self.partition = partition
        self.replay = replay
        self.pending = pending
        self.held: dict[int, list[KeyValue]] = {}

    def __call__(self, data: bytes, pos: int, header: RecordBatchHeader) -> int:
        if header.is_control:
            marker = control_marker(data, pos)
            records = self.held.pop(header.producer_id, [])
            if marker is not None and marker[0] == CONTROL_TYPE_COMMIT:
                for key, value in records:
                    self.replay(key, value, header.max_timestamp)
            return 0
        batch = [(r.key, r.value, r.timestamp) for r in decode_batch(data, pos) if r.key is not None]
        if header.is_transactional:
            self.held.setdefault(header.producer_id, []).extend((k, v) for k, v, _ in batch)
        else:
            for key, value, timestamp in batch:
                self.replay(key, value, timestamp)
        return len(batch)

    def finish(self) -> None:
        for producer_id, records in self.held.items():
            self.pending.add(self.partition, producer_id, records)
        self.held.clear()
