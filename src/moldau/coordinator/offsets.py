"""Committed offsets per group (Kafka's `OffsetMetadataManager` state), a fold over OffsetCommit records."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from moldau.coordinator.runtime import SnapshotRegistry


@dataclass(slots=True, frozen=True)
class OffsetAndMetadata:
    committed_offset: int
    leader_epoch: int  # -1 when unknown
    metadata: str
    commit_timestamp_ms: int
    expire_timestamp_ms: int = -1  # only OffsetCommit v1 clients set one


TopicPartition = tuple[str, int]


class OffsetStore:
    """group id -> (topic, partition) -> OffsetAndMetadata."""

    def __init__(self, registry: SnapshotRegistry | None = None) -> None:
        self._offsets: dict[str, dict[TopicPartition, OffsetAndMetadata]] = {}
        self.registry = registry or SnapshotRegistry()

    def replay(self, group_id: str, topic: str, partition: int, value: OffsetAndMetadata | None) -> None:
        """Apply one OffsetCommit record; a None value (tombstone) deletes the offset. Inside a runtime
        operation the previous value goes to the undo log, so a failed write puts it back."""
        if self.registry.active:
            previous = self.get(group_id, topic, partition)
            self.registry.record(lambda: self._put(group_id, topic, partition, previous))
        self._put(group_id, topic, partition, value)

    def _put(self, group_id: str, topic: str, partition: int, value: OffsetAndMetadata | None) -> None:
        if value is None:
            offsets = self._offsets.get(group_id)
            if offsets is not None:
                offsets.pop((topic, partition), None)
                if not offsets:
                    del self._offsets[group_id]
            return
        self._offsets.setdefault(group_id, {})[(topic, partition)] = value

    def get(self, group_id: str, topic: str, partition: int) -> OffsetAndMetadata | None:
        return self._offsets.get(group_id, {}).get((topic, partition))

    def of_group(self, group_id: str) -> dict[TopicPartition, OffsetAndMetadata]:
        return dict(self._offsets.get(group_id, {}))

    def has_offsets(self, group_id: str) -> bool:
        return bool(self._offsets.get(group_id))

    def groups(self) -> list[str]:
        return list(self._offsets)

    def drop_groups(self, keep: Callable[[str], bool]) -> None:
        """Forget the offsets of groups ``keep`` rejects (a shard being unloaded)."""
        for group_id in [g for g in self._offsets if not keep(g)]:
            del self._offsets[group_id]

    def expired(self, group_id: str, now_ms: int, retention_ms: int, base_ms: int | None) -> list[TopicPartition]:
        """Offsets past retention: from `base_ms` (when the group became empty) or else their commit time."""
        result = []
        for tp, offset in self._offsets.get(group_id, {}).items():
            if offset.expire_timestamp_ms >= 0:
                deadline = offset.expire_timestamp_ms
            else:
                deadline = (offset.commit_timestamp_ms if base_ms is None else base_ms) + retention_ms
            if now_ms >= deadline:
                result.append(tp)
        return result
