"""The `__consumer_offsets` records of consumer groups (KIP-848) and their replay into `ConsumerGroup`s.

Record types (Kafka's `CoordinatorRecordType`): 3 ConsumerGroupMetadata (group epoch), 4 PartitionMetadata
(subscribed topics' metadata), 5 MemberMetadata (subscription), 6 TargetAssignmentMetadata (assignment
epoch), 7 TargetAssignmentMember, 8 CurrentMemberAssignment. `replay` is the only way state changes: the
heartbeat builds records, replays them and writes them; loading replays what was written.
"""

from __future__ import annotations

import struct
import uuid
from collections.abc import Callable
from typing import Any

from moldau.coordinator.consumer_group import (
    AssignmentEpochs,
    ConsumerGroup,
    ConsumerGroupMember,
    MemberState,
    Partitions,
)
from moldau.coordinator.records import CoordinatorRecordError, decode_value, encode_value
from moldau.protocol import api, messages
from moldau.protocol.errors import ProtocolError

KeyValue = tuple[bytes, bytes | None]
GROUP_METADATA, PARTITION_METADATA, MEMBER_METADATA = 3, 4, 5
TARGET_ASSIGNMENT_METADATA, TARGET_ASSIGNMENT_MEMBER, CURRENT_MEMBER_ASSIGNMENT = 6, 7, 8
_NAMES = {GROUP_METADATA: "ConsumerGroupMetadata", PARTITION_METADATA: "ConsumerGroupPartitionMetadata",
          MEMBER_METADATA: "ConsumerGroupMemberMetadata",
          TARGET_ASSIGNMENT_METADATA: "ConsumerGroupTargetAssignmentMetadata",
          TARGET_ASSIGNMENT_MEMBER: "ConsumerGroupTargetAssignmentMember",
          CURRENT_MEMBER_ASSIGNMENT: "ConsumerGroupCurrentMemberAssignment"}
_INT16 = struct.Struct(">h")


def record_type(key: bytes) -> int:
    return _INT16.unpack_from(key, 0)[0] if len(key) >= 2 else -1


def _key(kind: int, group_id: str, member_id: str | None = None) -> bytes:
    name = _NAMES[kind] + "Key"
    body = getattr(messages, name)(group_id=group_id)
    if member_id is not None:
        body.member_id = member_id
    return _INT16.pack(kind) + api.encode_message(name, 0, body)


def _record(kind: int, group_id: str, member_id: str | None, value: Any) -> KeyValue:
    key = _key(kind, group_id, member_id)
    return key, None if value is None else encode_value(_NAMES[kind] + "Value", 0, value)


def _topic_partitions(cls: Any, parts: Partitions) -> list[Any]:
    return [cls(topic_id=t, partitions=sorted(ps)) for t, ps in sorted(parts.items()) if ps]


def _partitions(entries: list[Any]) -> Partitions:
    return {e.topic_id: set(e.partitions) for e in entries if e.partitions}


def _with_epochs(cls: Any, parts: Partitions, epochs: AssignmentEpochs) -> list[Any]:
    """KIP-1251: TopicPartitions with the tagged AssignmentEpochs, one per partition, in the same order."""
    entries = _topic_partitions(cls, parts)
    for entry in entries:
        if all((entry.topic_id, p) in epochs for p in entry.partitions):
            entry.assignment_epochs = [epochs[entry.topic_id, p] for p in entry.partitions]
    return entries


def _epochs(entries: list[Any]) -> AssignmentEpochs:
    """The assignment epochs a record carries; a record written before KIP-1251 has none."""
    return {(e.topic_id, p): epoch for e in entries if e.assignment_epochs is not None
            and len(e.assignment_epochs) == len(e.partitions) for p, epoch in zip(e.partitions, e.assignment_epochs)}


# -- builders ---------------------------------------------------------------------------------------


def group_epoch_record(group_id: str, epoch: int | None) -> KeyValue:
    value = None if epoch is None else messages.ConsumerGroupMetadataValue(epoch=epoch)
    return _record(GROUP_METADATA, group_id, None, value)


def partition_metadata_record(group_id: str, metadata: dict[str, tuple[uuid.UUID, int]] | None) -> KeyValue:
    value = None
    if metadata is not None:
        cls = messages.ConsumerGroupPartitionMetadataValue
        value = cls(topics=[cls.TopicMetadata(topic_id=tid, topic_name=name, num_partitions=count)
                            for name, (tid, count) in sorted(metadata.items())])
    return _record(PARTITION_METADATA, group_id, None, value)


def member_record(group_id: str, member: ConsumerGroupMember, tombstone: bool = False) -> KeyValue:
    value = None if tombstone else messages.ConsumerGroupMemberMetadataValue(
        instance_id=member.instance_id, rack_id=member.rack_id, client_id=member.client_id,
        client_host=member.client_host, subscribed_topic_names=list(member.subscribed_topic_names),
        subscribed_topic_regex=member.subscribed_topic_regex, rebalance_timeout_ms=member.rebalance_timeout_ms,
        server_assignor=member.server_assignor)
    return _record(MEMBER_METADATA, group_id, member.member_id, value)


def target_epoch_record(group_id: str, epoch: int | None, timestamp_ms: int = 0) -> KeyValue:
    value = None if epoch is None else messages.ConsumerGroupTargetAssignmentMetadataValue(
        assignment_epoch=epoch, assignment_timestamp=timestamp_ms)
    return _record(TARGET_ASSIGNMENT_METADATA, group_id, None, value)


def target_member_record(group_id: str, member_id: str, parts: Partitions | None) -> KeyValue:
    value = None
    if parts is not None:
        cls = messages.ConsumerGroupTargetAssignmentMemberValue
        value = cls(topic_partitions=_topic_partitions(cls.TopicPartition, parts))
    return _record(TARGET_ASSIGNMENT_MEMBER, group_id, member_id, value)


def current_assignment_record(group_id: str, member_id: str, epoch: int, previous_epoch: int, state: MemberState,
                              assigned: Partitions, pending: Partitions, tombstone: bool = False,
                              assignment_epochs: AssignmentEpochs | None = None) -> KeyValue:
    cls = messages.ConsumerGroupCurrentMemberAssignmentValue
    epochs = assignment_epochs or {}
    value = None if tombstone else cls(
        member_epoch=epoch, previous_member_epoch=previous_epoch, state=int(state),
        assigned_partitions=_with_epochs(cls.TopicPartitions, assigned, epochs),
        partitions_pending_revocation=_with_epochs(cls.TopicPartitions, pending, epochs))
    return _record(CURRENT_MEMBER_ASSIGNMENT, group_id, member_id, value)


def member_removal_records(group_id: str, member: ConsumerGroupMember) -> list[KeyValue]:
    """Kafka's order for a leaving member: current assignment, target assignment, then metadata tombstones."""
    return [current_assignment_record(group_id, member.member_id, 0, 0, MemberState.STABLE, {}, {}, True),
            target_member_record(group_id, member.member_id, None),
            member_record(group_id, member, tombstone=True)]


# -- replay -----------------------------------------------------------------------------------------


def replay(groups: dict[str, ConsumerGroup], key_bytes: bytes, value_bytes: bytes | None,
           before: Callable[[str, str | None], None] | None = None) -> str | None:
    """Apply one consumer group record; returns the group id it touched (None if not a consumer group record).
    ``before`` sees the group id (and member id, for member records) before anything changes: the runtime's
    undo log snapshots what the record will change."""
    kind = record_type(key_bytes)
    if kind not in _NAMES:
        return None
    try:
        key, _ = api.decode_message(_NAMES[kind] + "Key", 0, key_bytes, 2)
    except ProtocolError as exc:
        raise CoordinatorRecordError(f"unreadable {_NAMES[kind]} key: {exc}") from None
    value: Any = None if value_bytes is None else decode_value(_NAMES[kind] + "Value", value_bytes)
    group_id = key.group_id
    if before is not None:
        before(group_id, getattr(key, "member_id", None))
    group = groups.get(group_id)
    if group is None:
        if value is None:
            return group_id
        group = groups[group_id] = ConsumerGroup(group_id)
    if kind == GROUP_METADATA:
        if value is None:
            del groups[group_id]
        else:
            group.group_epoch = value.epoch
    elif kind == PARTITION_METADATA:
        group.subscription_metadata = {} if value is None else {
            t.topic_name: (t.topic_id, t.num_partitions) for t in value.topics}
    elif kind == TARGET_ASSIGNMENT_METADATA:
        group.assignment_epoch = 0 if value is None else value.assignment_epoch
    else:
        _replay_member(group, kind, key.member_id, value)
    return group_id


def _replay_member(group: ConsumerGroup, kind: int, member_id: str, value: Any) -> None:
    member = group.members.get(member_id)
    if member is None:
        if value is None:
            return
        member = group.members[member_id] = ConsumerGroupMember(member_id)
    if kind == MEMBER_METADATA:
        if value is None:
            group.remove_member(member_id)
            return
        member.instance_id, member.rack_id = value.instance_id, value.rack_id
        member.client_id, member.client_host = value.client_id, value.client_host
        member.subscribed_topic_names = list(value.subscribed_topic_names)
        member.subscribed_topic_regex = value.subscribed_topic_regex
        member.rebalance_timeout_ms, member.server_assignor = value.rebalance_timeout_ms, value.server_assignor
    elif kind == TARGET_ASSIGNMENT_MEMBER:
        member.target = {} if value is None else _partitions(value.topic_partitions)
    elif value is None:
        group.update_current_assignment(member, 0, 0, MemberState.STABLE, {}, {})
    else:
        group.update_current_assignment(member, value.member_epoch, value.previous_member_epoch,
                                        _member_state(value.state), _partitions(value.assigned_partitions),
                                        _partitions(value.partitions_pending_revocation),
                                        _epochs(value.assigned_partitions + value.partitions_pending_revocation))


def _member_state(value: int) -> MemberState:
    try:
        return MemberState(value)
    except ValueError:
        return MemberState.UNKNOWN
