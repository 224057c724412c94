"""The group coordinator as the broker uses it: membership (`GroupCoordinator`) plus offsets and admin.

Offsets follow Kafka's `OffsetMetadataManager`: commits are validated against the group's generation and
member, and committed through the `CoordinatorRuntime` like every other change: replayed into memory by
the same `replay` the loader uses, appended (acks=-1), reverted if the append fails.
`offsets.retention.minutes` expires the offsets of empty groups.
"""

from __future__ import annotations

import asyncio
import logging
import uuid
from collections.abc import Collection
from functools import partial

from moldau.clock import Clock
from moldau.coordinator.classic_group import ClassicGroup, GroupState, snapshot_classic
from moldau.coordinator.config import GroupCoordinatorConfig
from moldau.coordinator.consumer_group import ConsumerGroup
from moldau.coordinator.consumer_group_coordinator import ConsumerGroupCoordinator
from moldau.coordinator.group_coordinator import ClassicGroupCoordinator
from moldau.coordinator.offsets import OffsetAndMetadata, OffsetStore, TopicPartition
from moldau.coordinator.records import GroupMetadataKey, encode_key
from moldau.coordinator.runtime import (
    CoordinatorLoader,
    CoordinatorResult,
    CoordinatorRuntime,
    KeyValue,
    PartitionWriter,
)
from moldau.coordinator.state import CoordinatorState, TopicMetadata
from moldau.coordinator.transaction_offsets import PendingTxnOffsets
from moldau.protocol.errors import ErrorCode

log = logging.getLogger(__name__)
E = ErrorCode
GROUP_TYPE_CLASSIC = "classic"


class Coordinator:
    """The group coordinator: one `CoordinatorState` (the shards of `__consumer_offsets`) shared by the
    classic groups (`ClassicGroupCoordinator`), the KIP-848 groups (`ConsumerGroupCoordinator`) and the
    offsets and admin calls here (Kafka's `GroupCoordinatorShard`: `GroupMetadataManager` +
    `OffsetMetadataManager`). Composition, not inheritance: each part sees the state, not the others."""

    def __init__(self, config: GroupCoordinatorConfig, writer: PartitionWriter, loader: CoordinatorLoader,
                 topic_metadata: TopicMetadata, clock: Clock | None = None) -> None:
        self.state = CoordinatorState(config, writer, loader, topic_metadata, clock)
        self.classic = ClassicGroupCoordinator(self.state)
        self.consumer = ConsumerGroupCoordinator(self.state)
        # The request API of the parts, as the broker's handlers call it.
        self.join_group = self.classic.join_group
        self.sync_group = self.classic.sync_group
        self.heartbeat = self.classic.heartbeat
        self.leave_group = self.classic.leave_group
        self.consumer_group_heartbeat = self.consumer.consumer_group_heartbeat
        self.validate_consumer_fetch = self.consumer.validate_consumer_fetch
        self.list_consumer_groups = self.consumer.list_consumer_groups
        self.describe_consumer_group = self.consumer.describe_consumer_group
        self.delete_consumer_group = self.consumer.delete_consumer_group
        self.preferred_assignor = self.consumer.preferred_assignor
        self.topic_names = self.consumer.topic_names
        self.check_available = self.state.check_available
        self.load = self.state.load
        self.load_partition = self.state.load_partition
        self.unload_partition = self.state.unload_partition
        self.shutdown = self.state.shutdown
        self.replay = self.state.replay
        self.offset_record = self.state.offset_record
        self.now_ms = self.state.now_ms

    # -- the state, as handlers and the transaction coordinator read it --------------------------------

    @property
    def config(self) -> GroupCoordinatorConfig:
        return self.state.config

    @property
    def log(self) -> CoordinatorRuntime:
        return self.state.log

    @property
    def loaded(self) -> bool:
        return self.state.loaded

    @property
    def groups(self) -> dict[str, ClassicGroup]:
        return self.state.groups

    @property
    def consumer_groups(self) -> dict[str, ConsumerGroup]:
        return self.state.consumer_groups

    @property
    def offsets(self) -> OffsetStore:
        return self.state.offsets

    @property
    def pending_txn_offsets(self) -> PendingTxnOffsets:
        return self.state.pending_txn_offsets

    # -- offsets ------------------------------------------------------------------------------------

    def validate_commit(self, group_id: str, member_id: str, instance_id: str | None, generation_id: int,
                        partitions: Collection[tuple[uuid.UUID, int]] = ()) -> ErrorCode:
        """Kafka's `ClassicGroup.validateOffsetCommit`; may create a simple group for a non-member commit.
        `partitions` (topic id, partition) are the ones committed, which KIP-1251 checks for consumer groups."""
        self.state.check_available(group_id)
        consumer_group = self.state.consumer_groups.get(group_id)
        if consumer_group is not None:
            return self.consumer.validate_consumer_commit(consumer_group, member_id, generation_id, partitions)
        group = self.state.groups.get(group_id)
        if group is None:
            if generation_id >= 0:
                return E.ILLEGAL_GENERATION  # a member commit for a group this coordinator does not know
            self.state.create_group(group_id)
            return E.NONE
        if group.is_in(GroupState.DEAD):
            return E.COORDINATOR_NOT_AVAILABLE
        if generation_id < 0 and group.is_in(GroupState.EMPTY):
            return E.NONE  # a simple consumer's commit (assign(), no group management)
        if generation_id >= 0 or member_id or instance_id is not None:
            error = self.classic._validate_member(group, member_id, instance_id)
            if error is not None:
                return error
            if generation_id != group.generation_id:
                return E.ILLEGAL_GENERATION
        elif not group.is_in(GroupState.EMPTY):
            return E.UNKNOWN_MEMBER_ID
        if group.is_in(GroupState.COMPLETING_REBALANCE):
            return E.REBALANCE_IN_PROGRESS
        if member_id in group.members:
            self.classic._reschedule_heartbeat(group, group.members[member_id])  # a commit counts as a heartbeat
        return E.NONE

    async def commit_offsets(self, group_id: str, offsets: dict[TopicPartition, OffsetAndMetadata]) -> None:
        """Commit validated offsets; raises CoordinatorError if the append fails (the runtime reverts them)."""
        if not offsets:
            return
        await self.state.write(group_id, [self.state.offset_record(group_id, t, p, o) for (t, p), o in offsets.items()])

    async def commit_transactional_offsets(self, group_id: str, producer_id: int, producer_epoch: int,
                                           records: list[KeyValue]) -> None:
        """TxnOffsetCommit (KIP-98): the OffsetCommit records go in the producer's transactional batch and
        are held until its marker (``PendingTxnOffsets``); a failed write takes them out again."""
        partition = self.state.log.partition_of(group_id)

        def operation() -> CoordinatorResult[None]:
            self.state.registry.record(self.state.pending_txn_offsets.add_undoable(partition, producer_id, records))
            return CoordinatorResult(records, None, replayed=True, producer_id=producer_id,
                                     producer_epoch=producer_epoch)

        if records:
            await self.state.log.write(group_id, operation)

    def fetch_offsets(self, group_id: str, partitions: list[TopicPartition] | None,
                      ) -> dict[TopicPartition, OffsetAndMetadata | None]:
        """Committed offsets of `partitions`, or of every partition the group has offsets for (None)."""
        self.state.check_available(group_id)
        if partitions is None:
            return dict(self.state.offsets.of_group(group_id))
        return {tp: self.state.offsets.get(group_id, *tp) for tp in partitions}

    async def delete_offsets(self, group_id: str, partitions: list[TopicPartition],
                             ) -> tuple[ErrorCode, dict[TopicPartition, ErrorCode]]:
        """OffsetDelete: refused for topics a non-empty consumer group still subscribes to."""
        self.state.check_available(group_id)

        def operation() -> CoordinatorResult[tuple[ErrorCode, dict[TopicPartition, ErrorCode]]]:
            group = self.state.groups.get(group_id)
            if group is None or group.is_in(GroupState.DEAD):
                return CoordinatorResult([], (E.GROUP_ID_NOT_FOUND, {}))
            subscribed: set[str] = set()
            if not group.is_in(GroupState.EMPTY):
                topics = group.subscribed_topics()
                if topics is None:
                    return CoordinatorResult([], (E.NON_EMPTY_GROUP, {}))
                subscribed = topics
            errors: dict[TopicPartition, ErrorCode] = {}
            records = []
            for tp in partitions:
                if tp[0] in subscribed:
                    errors[tp] = E.GROUP_SUBSCRIBED_TO_TOPIC
                    continue
                errors[tp] = E.NONE
                if self.state.offsets.get(group_id, *tp) is not None:
                    records.append(self.state.offset_record(group_id, tp[0], tp[1], None))
            return CoordinatorResult(records, (E.NONE, errors))

        return await self.state.log.write(group_id, operation)

    # -- admin --------------------------------------------------------------------------------------

    def list_groups(self, states: list[str], types: list[str]) -> list[ClassicGroup]:
        wanted_states = {s.lower() for s in states}
        wanted_types = {t.lower() for t in types}
        if wanted_types and GROUP_TYPE_CLASSIC not in wanted_types:
            return []
        return [g for g in self.state.groups.values()
                if not wanted_states or g.state.value.lower() in wanted_states]

    def describe_group(self, group_id: str) -> ClassicGroup | None:
        self.state.check_available(group_id)
        return self.state.groups.get(group_id)

    async def delete_groups(self, group_ids: list[str]) -> dict[str, ErrorCode]:
        """DeleteGroups: only empty groups; their offsets and metadata get tombstones."""
        results: dict[str, ErrorCode] = {}
        for group_id in group_ids:
            self.state.check_available(group_id)
            group = self.state.groups.get(group_id)
            if group_id in self.state.consumer_groups:
                results[group_id] = await self.consumer.delete_consumer_group(group_id)
            elif group is None or group.is_in(GroupState.DEAD):
                results[group_id] = E.GROUP_ID_NOT_FOUND
            elif not group.is_in(GroupState.EMPTY):
                results[group_id] = E.NON_EMPTY_GROUP
            else:
                await self._delete_group(group)
                results[group_id] = E.NONE
        return results

    async def _delete_group(self, group: ClassicGroup) -> None:
        def operation() -> CoordinatorResult[None]:
            self.state.registry.record_once(("classic", group.group_id), lambda: snapshot_classic(group))
            group.transition_to(GroupState.DEAD, self.state.now_ms())
            records = [self.state.offset_record(group.group_id, t, p, None) for t, p in self.state.offsets.of_group(group.group_id)]
            records.append((encode_key(GroupMetadataKey(group.group_id)), None))
            return CoordinatorResult(records, None)

        await self.state.log.write(group.group_id, operation)
        self.state.cancel_group_timers(group.group_id)
        log.info("deleted group %s", group.group_id)

    # -- offsets.retention.minutes ------------------------------------------------------------------

    async def expire_offsets(self, now_ms: int | None = None) -> int:
        """Tombstone offsets of empty groups (classic and KIP-848) older than the retention; drop groups left
        with nothing. One runtime operation per group."""
        now = self.state.now_ms() if now_ms is None else now_ms
        retention_ms = self.state.config.offsets_retention_minutes * 60_000
        expired_total = 0
        for group_id in list(self.state.groups):
            expired_total += await self.state.log.write(group_id, partial(self._expire_classic, group_id, now,
                                                                    retention_ms))
        for group_id, consumer_group in list(self.state.consumer_groups.items()):
            if consumer_group.members:
                continue
            # KIP-848 groups: an empty group's offsets expire by their commit time (Kafka's
            # ConsumerGroup.offsetExpirationCondition); an empty group left without offsets is deleted.
            expired = await self.state.log.write(group_id, partial(self._expire_tombstones, group_id, now,
                                                             retention_ms, None))
            if expired and not self.state.offsets.has_offsets(group_id) and group_id in self.state.consumer_groups:
                await self.consumer.delete_consumer_group(group_id)
            expired_total += expired
        if expired_total:
            log.info("expired %d offset(s) (offsets.retention.minutes)", expired_total)
        return expired_total

    def _expire_tombstones(self, group_id: str, now: int, retention_ms: int, base: int | None,
                           ) -> CoordinatorResult[int]:
        expired = self.state.offsets.expired(group_id, now, retention_ms, base)
        return CoordinatorResult([self.state.offset_record(group_id, t, p, None) for t, p in expired], len(expired))

    def _expire_classic(self, group_id: str, now: int, retention_ms: int) -> CoordinatorResult[int]:
        group = self.state.groups.get(group_id)
        if group is None or not group.is_in(GroupState.EMPTY):
            return CoordinatorResult([], 0)
        # A group that used group management counts from when it became empty; a simple one from commits.
        base = group.state_timestamp_ms if group.protocol_type else None
        expired = self.state.offsets.expired(group_id, now, retention_ms, base)
        records: list[KeyValue] = [self.state.offset_record(group_id, t, p, None) for t, p in expired]
        if len(expired) == len(self.state.offsets.of_group(group_id)) and group.generation_id >= 0:
            self.state.registry.record_once(("classic", group_id), lambda: snapshot_classic(group))
            group.transition_to(GroupState.DEAD, now)
            records.append((encode_key(GroupMetadataKey(group_id)), None))
        return CoordinatorResult(records, len(expired))

    async def run_expiry(self) -> None:
        interval = self.state.config.offsets_retention_check_interval_ms / 1000
        while True:
            await asyncio.sleep(interval)
            try:
                await self.expire_offsets()
            except Exception:
                log.exception("offset expiration failed; retrying")
