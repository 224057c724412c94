"""The coordinator's state and its records: groups and offsets as a fold over `__consumer_offsets`.

`replay` is the one function that turns a stored record into state; loading calls it for every record,
and the coordinator runtime (`runtime.py`) calls it for the records every operation writes, reverting
the state through the undo log (`SnapshotRegistry`) when the write fails. Classic groups, as in Kafka,
change in memory directly while live (their changes are recorded in the undo log by `snapshot_classic`)
and are only rebuilt from GroupMetadata records on load.
"""

from __future__ import annotations

import asyncio
import copy
import dataclasses
import logging
import time
import uuid
from collections.abc import Callable
from typing import Any, Protocol

from moldau.clock import Clock, SystemClock
from moldau.coordinator import consumer_group_records as cgr
from moldau.coordinator.classic_group import (
    ClassicGroup,
    ClassicGroupMember,
    GroupState,
    JoinResult,
    SyncResult,
    member_to_record,
    snapshot_classic,
)
from moldau.coordinator.config import GroupCoordinatorConfig
from moldau.coordinator.consumer_group import ConsumerGroup
from moldau.coordinator.offsets import OffsetAndMetadata, OffsetStore
from moldau.coordinator.records import (
    GROUP_METADATA_VALUE_VERSION,
    OFFSET_COMMIT_VALUE_VERSION,
    OFFSETS_TOPIC,
    CoordinatorRecordError,
    GroupMetadataKey,
    OffsetCommitKey,
    decode_key,
    decode_value,
    encode_key,
    encode_value,
)
from moldau.coordinator.runtime import (
    CoordinatorError,
    CoordinatorLoader,
    CoordinatorResult,
    CoordinatorRuntime,
    KeyValue,
    PartitionWriter,
    SnapshotRegistry,
    TopicSpec,
)
from moldau.coordinator.transaction_offsets import OffsetsBatchReplayer, PendingTxnOffsets
from moldau.protocol import messages
from moldau.protocol.errors import ErrorCode

log = logging.getLogger(__name__)


# Kafka's offsets.topic.* defaults for the topic itself.
OFFSETS_TOPIC_CONFIGS = {"cleanup.policy": "compact", "segment.bytes": "104857600"}


class TopicMetadata(Protocol):
    """What KIP-848 subscriptions need to know of the cluster's topics: name -> (topic id, partitions)."""

    def topics(self) -> dict[str, tuple[uuid.UUID, int]]: ...


class CoordinatorState:
    def __init__(self, config: GroupCoordinatorConfig, writer: PartitionWriter, loader: CoordinatorLoader,
                 topic_metadata: TopicMetadata, clock: Clock | None = None) -> None:
        self.config = config
        self.clock: Clock = clock or SystemClock()
        self.registry = SnapshotRegistry()
        self.topic_metadata = topic_metadata
        # `log`: the shards of __consumer_offsets (handlers use its ensure_topic / partition_of).
        self.log = CoordinatorRuntime(
            TopicSpec(OFFSETS_TOPIC, config.offsets_topic_num_partitions, config.offsets_topic_replication_factor,
                      OFFSETS_TOPIC_CONFIGS), writer, loader, self.replay, self.clock, self.registry)
        self.groups: dict[str, ClassicGroup] = {}
        self.consumer_groups: dict[str, ConsumerGroup] = {}  # KIP-848 groups: consumer_group_coordinator.py
        self.offsets = OffsetStore(self.registry)
        self.pending_txn_offsets = PendingTxnOffsets()  # KIP-98 TxnOffsetCommit, until the txn marker
        self.loop: asyncio.AbstractEventLoop = None  # type: ignore[assignment]
        self._timers: dict[tuple[str, ...], asyncio.TimerHandle] = {}
        self.on_loaded_hooks: list[Callable[[int], None]] = []  # re-arm timers of a loaded shard's members
        self.loaded = False
        self.initial_rebalance_delay_ms = config.group_initial_rebalance_delay_ms
        self.min_session_ms = config.group_min_session_timeout_ms
        self.max_session_ms = config.group_max_session_timeout_ms
        self.max_group_size = config.group_max_size

    def now_ms(self) -> int:
        return self.clock.time_ms()

    # -- lifecycle (Kafka's CoordinatorShard.onLoaded / onUnloaded) ----------------------------------

    def load(self) -> None:
        """Load every __consumer_offsets partition (this broker leads them all), then arm the loaded
        members' session timers."""
        self.loop = asyncio.get_running_loop()
        started = time.monotonic()
        count = sum(self.load_partition(p) for p in range(self.log.writer.partition_count(OFFSETS_TOPIC) or 0))
        self.loaded = True
        log.info("group coordinator loaded %d record(s): %d group(s), %d with offsets, in %.0f ms", count,
                 len(self.groups), len(self.offsets.groups()), (time.monotonic() - started) * 1000)

    def load_partition(self, partition: int) -> int:
        """Become the coordinator of the groups of one __consumer_offsets partition."""
        self.loop = asyncio.get_running_loop()
        replayer = OffsetsBatchReplayer(partition, self.replay, self.pending_txn_offsets)
        count = self.log.load(partition, replayer)
        replayer.finish()
        self.on_loaded(partition)
        return count

    def on_loaded(self, partition: int) -> None:
        for hook in self.on_loaded_hooks:
            hook(partition)

    def unload_partition(self, partition: int) -> None:
        """Stop coordinating the groups of ``partition``: their requests get NOT_COORDINATOR and their
        state and timers go (this broker stopped leading the partition)."""
        self.log.unload(partition)

        def mine(group_id: str) -> bool:
            return self.log.partition_of(group_id) == partition

        for group_id in [g for g in self.groups if mine(g)]:
            self.cancel_group_timers(group_id)
            # Kafka's onUnloaded: parked JoinGroup/SyncGroup requests are answered NOT_COORDINATOR.
            for member in self.groups.pop(group_id).members.values():
                if member.join_future is not None and not member.join_future.done():
                    member.join_future.set_result(JoinResult(ErrorCode.NOT_COORDINATOR, member.member_id))
                if member.sync_future is not None and not member.sync_future.done():
                    member.sync_future.set_result(SyncResult(ErrorCode.NOT_COORDINATOR))
        for group_id in [g for g in self.consumer_groups if mine(g)]:
            self.cancel_group_timers(group_id)
            del self.consumer_groups[group_id]
        self.offsets.drop_groups(lambda g: not mine(g))
        self.pending_txn_offsets.drop_partition(partition)

    def shutdown(self) -> None:
        for handle in self._timers.values():
            handle.cancel()
        self._timers.clear()

    def check_available(self, group_id: str) -> None:
        """COORDINATOR_LOAD_IN_PROGRESS before loading, NOT_COORDINATOR once the group's shard is unloaded."""
        if not self.loaded:
            raise CoordinatorError(ErrorCode.COORDINATOR_LOAD_IN_PROGRESS)
        self.log.check(self.log.partition_of(group_id))

    # -- timers (session, join, sync, revocation), keyed (kind, group id, ...) -----------------------

    def schedule(self, key: tuple[str, ...], delay_ms: int, callback: Callable[[], None]) -> None:
        self.cancel(key)
        self._timers[key] = self.loop.call_later(max(delay_ms, 0) / 1000, self._fire, key, callback)

    def _fire(self, key: tuple[str, ...], callback: Callable[[], None]) -> None:
        self._timers.pop(key, None)
        try:
            callback()
        except Exception:
            log.exception("group coordinator timer %s failed", key)

    def cancel(self, key: tuple[str, ...]) -> None:
        handle = self._timers.pop(key, None)
        if handle is not None:
            handle.cancel()

    def has_timer(self, key: tuple[str, ...]) -> bool:
        return key in self._timers

    def cancel_group_timers(self, group_id: str) -> None:
        for key in [k for k in self._timers if k[1] == group_id]:
            self.cancel(key)

    # -- replay -------------------------------------------------------------------------------------

    def replay(self, key_bytes: bytes, value_bytes: bytes | None, timestamp_ms: int = -1) -> None:
        try:
            key = decode_key(key_bytes)
            if isinstance(key, OffsetCommitKey):
                value = None if value_bytes is None else decode_value("OffsetCommitValue", value_bytes)
                self._replay_offset(key, value)
            elif isinstance(key, GroupMetadataKey):
                value = None if value_bytes is None else decode_value("GroupMetadataValue", value_bytes)
                self._replay_group(key.group, value, timestamp_ms)
            elif key is None:
                self.replay_other(key_bytes, value_bytes)
        except CoordinatorRecordError as exc:
            log.warning("skipping a __consumer_offsets record: %s", exc)

    def replay_other(self, key_bytes: bytes, value_bytes: bytes | None) -> None:
        """KIP-848 consumer group records (`consumer_group_records.replay`)."""
        group_id = cgr.replay(self.consumer_groups, key_bytes, value_bytes, before=self._snapshot_consumer_group)
        if group_id is not None and group_id in self.consumer_groups:
            classic = self.groups.get(group_id)
            if classic is not None and not classic.members:
                self._set_group(group_id, None)  # an empty classic group was converted (Kafka's online upgrade)

    def _snapshot_consumer_group(self, group_id: str, member_id: str | None) -> None:
        """Inside an operation, a record's first change to a group (its fields, its member map) and to a
        member (its fields) goes to the undo log. Replay replaces field values rather than mutating them, so
        shallow copies suffice: an operation costs O(members + partitions) of copying, not a deep copy."""
        if not self.registry.active:
            return

        def snapshot_group() -> Callable[[], None]:
            group = self.consumer_groups.get(group_id)
            if group is None:
                def drop() -> None:
                    self.consumer_groups.pop(group_id, None)
                return drop
            saved = {f.name: copy.copy(getattr(group, f.name)) for f in dataclasses.fields(group)}

            def restore() -> None:
                for name, value in saved.items():
                    setattr(group, name, value)
                self.consumer_groups[group_id] = group
            return restore

        self.registry.record_once(("consumer", group_id), snapshot_group)
        group = self.consumer_groups.get(group_id)
        member = group.members.get(member_id) if group is not None and member_id is not None else None
        if member is not None:
            def snapshot_member() -> Callable[[], None]:
                assert member is not None
                saved = {f.name: getattr(member, f.name) for f in dataclasses.fields(member)}

                def restore() -> None:
                    for name, value in saved.items():
                        setattr(member, name, value)
                return restore

            self.registry.record_once(("consumer-member", group_id, member_id), snapshot_member)

    def _replay_offset(self, key: OffsetCommitKey, value: Any) -> None:
        if value is None:
            self.offsets.replay(key.group, key.topic, key.partition, None)
            return
        self.offsets.replay(key.group, key.topic, key.partition, OffsetAndMetadata(
            value.offset, value.leader_epoch, value.metadata, value.commit_timestamp, value.expire_timestamp))
        if key.group not in self.groups and key.group not in self.consumer_groups:
            self.create_group(key.group)  # a simple (non-member) group exists through its offsets

    def _replay_group(self, group_id: str, value: Any, timestamp_ms: int) -> None:
        if value is None:
            self._set_group(group_id, None)
            return
        if self.registry.active:
            # Written by a live operation, which already changed the group in memory (and put its undo in the
            # log): classic groups are not rebuilt from their own records while live, as in Kafka.
            return
        group = ClassicGroup(group_id, generation_id=value.generation, protocol_type=value.protocol_type or None,
                             protocol_name=value.protocol)
        for record in value.members:
            session = record.session_timeout
            group.add(ClassicGroupMember(
                record.member_id, record.group_instance_id, record.client_id, record.client_host,
                record.rebalance_timeout if record.rebalance_timeout >= 0 else session, session,
                value.protocol_type, [(value.protocol or "", record.subscription)], record.assignment))
        group.protocol_type = value.protocol_type or None
        group.leader_id = value.leader
        stamp = value.current_state_timestamp if value.current_state_timestamp >= 0 else timestamp_ms
        group.transition_to(GroupState.STABLE if group.members else GroupState.EMPTY, stamp)
        self._set_group(group_id, group)

    def create_group(self, group_id: str) -> ClassicGroup:
        group = ClassicGroup(group_id, state_timestamp_ms=self.now_ms())
        self._set_group(group_id, group)
        return group

    def _set_group(self, group_id: str, group: ClassicGroup | None) -> None:
        """Add (or with None remove) a classic group, recording the undo inside an operation."""
        if self.registry.active:
            previous = self.groups.get(group_id)
            self.registry.record(lambda: self._put_group(group_id, previous))
        self._put_group(group_id, group)

    def _put_group(self, group_id: str, group: ClassicGroup | None) -> None:
        if group is None:
            self.groups.pop(group_id, None)
        else:
            self.groups[group_id] = group

    # -- records ------------------------------------------------------------------------------------

    @staticmethod
    def group_record(group: ClassicGroup, assignments: dict[str, bytes] | None = None) -> KeyValue:
        members = []
        for member in group.members.values():
            record = member_to_record(member, group.protocol_name)
            if assignments is not None:
                record.assignment = assignments.get(member.member_id, b"")
            members.append(record)
        value = messages.GroupMetadataValue(
            protocol_type=group.protocol_type or "", generation=group.generation_id, protocol=group.protocol_name,
            leader=group.leader_id, current_state_timestamp=group.state_timestamp_ms, members=members)
        return encode_key(GroupMetadataKey(group.group_id)), encode_value(
            "GroupMetadataValue", GROUP_METADATA_VALUE_VERSION, value)

    @staticmethod
    def offset_record(group_id: str, topic: str, partition: int, offset: OffsetAndMetadata | None) -> KeyValue:
        key = encode_key(OffsetCommitKey(group_id, topic, partition))
        if offset is None:
            return key, None
        version = 1 if offset.expire_timestamp_ms >= 0 else OFFSET_COMMIT_VALUE_VERSION
        value = messages.OffsetCommitValue(
            offset=offset.committed_offset, leader_epoch=offset.leader_epoch, metadata=offset.metadata,
            commit_timestamp=offset.commit_timestamp_ms, expire_timestamp=offset.expire_timestamp_ms)
        return key, encode_value("OffsetCommitValue", version, value)

    async def store_group(self, group: ClassicGroup, assignments: dict[str, bytes] | None = None,
                          change: Callable[[], None] | None = None,
                          restore: Callable[[], None] | None = None) -> None:
        """Write the group's GroupMetadata record through the runtime. ``change`` is the in-memory change
        the record stands for: it runs inside the operation, so a failed write reverts it; ``restore`` is
        a snapshot taken before a change already made (``snapshot_classic``)."""

        def operation() -> CoordinatorResult[None]:
            self.registry.record_once(("classic", group.group_id),
                                      (lambda: restore) if restore is not None else (lambda: snapshot_classic(group)))
            if change is not None:
                change()
            return CoordinatorResult([self.group_record(group, assignments)], None)

        await self.log.write(group.group_id, operation)

    def store_group_in_background(self, group: ClassicGroup) -> None:
        """Write the group's record from a timer (an emptied group); a failure is logged."""
        self.log.write_in_background(group.group_id, lambda: CoordinatorResult([self.group_record(group)], None))

    async def write(self, group_id: str, records: list[KeyValue]) -> None:
        """Write (and replay) ``records`` on the group's shard; raises CoordinatorError if the append fails,
        after reverting their replay."""
        await self.log.write(group_id, lambda: CoordinatorResult(records, None))
