"""The coordinator's state and its records: groups and offsets as a fold over `__consumer_offsets`.

`replay` is the one function that turns a stored record into state; loading on start calls it for every
record, and OffsetCommit calls it for the records it writes. Classic groups, as in Kafka, change in
memory directly while live and are only rebuilt from GroupMetadata records on load.
"""

from __future__ import annotations

import asyncio
import logging
import time
from typing import Any

from moldau.broker.config import BrokerConfig
from moldau.broker.replica_manager import ReplicaManager
from moldau.coordinator.classic_group import ClassicGroup, ClassicGroupMember, GroupState, member_to_record
from moldau.coordinator.offsets import OffsetAndMetadata, OffsetStore
from moldau.coordinator.records import (
    GROUP_METADATA_VALUE_VERSION,
    OFFSET_COMMIT_VALUE_VERSION,
    CoordinatorRecordError,
    GroupMetadataKey,
    OffsetCommitKey,
    decode_key,
    decode_value,
    encode_key,
    encode_value,
)
from moldau.coordinator.runtime import CoordinatorLog, KeyValue
from moldau.coordinator.transaction_offsets import PendingTxnOffsets, load_offsets
from moldau.protocol import messages
from moldau.protocol.errors import ErrorCode

log = logging.getLogger(__name__)


class CoordinatorState:
    def __init__(self, config: BrokerConfig, replica_manager: ReplicaManager) -> None:
        self.config = config
        self.log = CoordinatorLog(replica_manager, config["offsets.topic.num.partitions"],
                                  config["offsets.topic.replication.factor"])
        self.groups: dict[str, ClassicGroup] = {}
        self.consumer_groups: dict[str, Any] = {}  # KIP-848 groups: consumer_group_coordinator.py
        self.offsets = OffsetStore()
        self.pending_txn_offsets = PendingTxnOffsets()  # KIP-98 TxnOffsetCommit, until the txn marker
        self.loop: asyncio.AbstractEventLoop = None  # type: ignore[assignment]
        self._timers: dict[tuple[str, ...], asyncio.TimerHandle] = {}
        self._tasks: set[asyncio.Task[Any]] = set()
        self.loaded = False
        self.initial_rebalance_delay_ms: int = config["group.initial.rebalance.delay.ms"]
        self.min_session_ms: int = config["group.min.session.timeout.ms"]
        self.max_session_ms: int = config["group.max.session.timeout.ms"]
        self.max_group_size: int = config["group.max.size"]

    # -- lifecycle ----------------------------------------------------------------------------------

    def load(self) -> None:
        """Rebuild groups and offsets from `__consumer_offsets`, then arm the loaded members' session timers."""
        self.loop = asyncio.get_running_loop()
        started = time.monotonic()
        count = load_offsets(self.log, self.replay, self.pending_txn_offsets)
        self.loaded = True
        for group in self.groups.values():
            for member in group.members.values():
                self._reschedule_heartbeat(group, member)
        log.info("group coordinator loaded %d record(s): %d group(s), %d with offsets, in %.0f ms", count,
                 len(self.groups), len(self.offsets.groups()), (time.monotonic() - started) * 1000)

    def shutdown(self) -> None:
        for handle in self._timers.values():
            handle.cancel()
        self._timers.clear()
        for task in self._tasks:
            task.cancel()

    def _reschedule_heartbeat(self, group: ClassicGroup, member: ClassicGroupMember,
                              timeout_ms: int | None = None) -> None:
        raise NotImplementedError

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
        """Records of other group kinds (KIP-848 consumer groups); see `ConsumerGroupCoordinator`."""

    def _replay_offset(self, key: OffsetCommitKey, value: Any) -> None:
        if value is None:
            self.offsets.replay(key.group, key.topic, key.partition, None)
            return
        self.offsets.replay(key.group, key.topic, key.partition, OffsetAndMetadata(
            value.offset, value.leader_epoch, value.metadata, value.commit_timestamp, value.expire_timestamp))
        if key.group not in self.groups and key.group not in self.consumer_groups:
            self._create_group(key.group)  # a simple (non-member) group exists through its offsets

    def _replay_group(self, group_id: str, value: Any, timestamp_ms: int) -> None:
        if value is None:
            self.groups.pop(group_id, None)
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
        self.groups[group_id] = group

    def _create_group(self, group_id: str) -> ClassicGroup:
        group = ClassicGroup(group_id, state_timestamp_ms=int(time.time() * 1000))
        self.groups[group_id] = group
        return group

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

    def store_group(self, group: ClassicGroup, assignments: dict[str, bytes] | None = None) -> asyncio.Task[None]:
        """Write the group's GroupMetadata record; the task completes when the append is done."""
        return self.write(group.group_id, [self.group_record(group, assignments)])

    def write(self, group_id: str, records: list[KeyValue]) -> asyncio.Task[None]:
        task = self.loop.create_task(self.log.append(group_id, records))
        self._tasks.add(task)
        task.add_done_callback(self._write_done)
        return task

    def _write_done(self, task: asyncio.Task[None]) -> None:
        self._tasks.discard(task)
        if not task.cancelled() and task.exception() is not None:
            exc = task.exception()
            # A failed log dir was logged once when it went offline; its every refused write is not news.
            offline = getattr(exc, "error_code", None) == ErrorCode.KAFKA_STORAGE_ERROR
            log.log(logging.DEBUG if offline else logging.ERROR, "writing to __consumer_offsets failed: %s", exc)
