"""A consumer group of the KIP-848 protocol: Kafka's `ConsumerGroup`, `ConsumerGroupMember` and
`CurrentAssignmentBuilder`.

The group has a group epoch (bumped whenever membership, subscriptions or the subscribed topics' metadata
change), a target assignment computed at an assignment epoch, and each member's current assignment at its
member epoch. A member moves towards its target only once it has revoked what it must give up, and a
partition is only handed to a new owner once no other member holds it (assigned or pending revocation).

>>> T = uuid.UUID(int=1)
>>> member = ConsumerGroupMember("m1", subscribed_topic_names=["t"])
>>> reconcile(member, target_epoch=1, target={T: {0, 1}}, owned=None, partition_owner=lambda t, p: None)
>>> (member.state, member.member_epoch, member.assigned_partitions)
(<MemberState.STABLE: 0>, 1, {UUID('00000000-0000-0000-0000-000000000001'): {0, 1}})
"""

from __future__ import annotations

import enum
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field

# topic id -> partitions
Partitions = dict[uuid.UUID, set[int]]
# (topic id, partition) -> the member epoch at which the member was given the partition (KIP-1251)
AssignmentEpochs = dict[tuple[uuid.UUID, int], int]
LEAVE_GROUP_MEMBER_EPOCH = -1
LEAVE_GROUP_STATIC_MEMBER_EPOCH = -2


class ConsumerGroupState(enum.Enum):
    EMPTY = "Empty"
    ASSIGNING = "Assigning"
    RECONCILING = "Reconciling"
    STABLE = "Stable"
    DEAD = "Dead"


class MemberState(enum.IntEnum):
    """Kafka's `MemberState` (its byte value is stored in ConsumerGroupCurrentMemberAssignmentValue.State)."""
    STABLE = 0
    UNREVOKED_PARTITIONS = 1
    UNRELEASED_PARTITIONS = 2
    UNKNOWN = 127


@dataclass(slots=True)
class ConsumerGroupMember:
    member_id: str
    instance_id: str | None = None
    rack_id: str | None = None
    client_id: str = ""
    client_host: str = ""
    subscribed_topic_names: list[str] = field(default_factory=list)
    subscribed_topic_regex: str | None = None
    rebalance_timeout_ms: int = -1
    server_assignor: str | None = None
    # current assignment (ConsumerGroupCurrentMemberAssignment)
    member_epoch: int = 0
    previous_member_epoch: int = 0
    state: MemberState = MemberState.STABLE
    assigned_partitions: Partitions = field(default_factory=dict)
    partitions_pending_revocation: Partitions = field(default_factory=dict)
    # KIP-1251: the assignment epoch of each partition held (assigned or pending revocation); a commit with an
    # older member epoch is accepted for a partition the member held since that epoch
    assignment_epochs: AssignmentEpochs = field(default_factory=dict)
    # target assignment (ConsumerGroupTargetAssignmentMember)
    target: Partitions = field(default_factory=dict)
    # KIP-848 subscriptions resolved against the topics that exist (names + regex), not stored
    resolved_topics: set[str] = field(default_factory=set)


@dataclass(slots=True)
class ConsumerGroup:
    group_id: str
    group_epoch: int = 0
    assignment_epoch: int = 0
    members: dict[str, ConsumerGroupMember] = field(default_factory=dict)
    # topic name -> (topic id, partition count) of the subscribed topics at the group epoch
    subscription_metadata: dict[str, tuple[uuid.UUID, int]] = field(default_factory=dict)
    # (topic id, partition) -> epoch of the member holding it (assigned or pending revocation)
    partition_epochs: dict[tuple[uuid.UUID, int], int] = field(default_factory=dict)
    state_timestamp_ms: int = -1

    @property
    def state(self) -> ConsumerGroupState:
        if not self.members:
            return ConsumerGroupState.EMPTY
        if self.assignment_epoch != self.group_epoch:
            return ConsumerGroupState.ASSIGNING
        if any(m.member_epoch != self.assignment_epoch or m.state != MemberState.STABLE
               for m in self.members.values()):
            return ConsumerGroupState.RECONCILING
        return ConsumerGroupState.STABLE

    def static_member(self, instance_id: str) -> ConsumerGroupMember | None:
        for member in self.members.values():
            if member.instance_id == instance_id:
                return member
        return None

    def partition_owner_epoch(self, topic_id: uuid.UUID, partition: int) -> int | None:
        return self.partition_epochs.get((topic_id, partition))

    def update_current_assignment(self, member: ConsumerGroupMember, epoch: int, previous_epoch: int,
                                  state: MemberState, assigned: Partitions, pending: Partitions,
                                  assignment_epochs: AssignmentEpochs | None = None) -> None:
        """Replace a member's current assignment, keeping the partition epochs in step (Kafka's
        `updateMember` -> `maybeUpdatePartitionEpoch`). Partitions without an assignment epoch get the member
        epoch (never below 0), as Kafka reads a record written before KIP-1251."""
        self._release(member)
        member.member_epoch, member.previous_member_epoch, member.state = epoch, previous_epoch, state
        member.assigned_partitions, member.partitions_pending_revocation = assigned, pending
        member.assignment_epochs = _held_epochs(assigned, pending, assignment_epochs or {}, max(epoch, 0))
        for parts in (assigned, pending):
            for topic_id, partitions in parts.items():
                for p in partitions:
                    self.partition_epochs[topic_id, p] = epoch

    def remove_member(self, member_id: str) -> None:
        member = self.members.pop(member_id, None)
        if member is not None:
            self._release(member)

    def _release(self, member: ConsumerGroupMember) -> None:
        for parts in (member.assigned_partitions, member.partitions_pending_revocation):
            for topic_id, partitions in parts.items():
                for p in partitions:
                    if self.partition_epochs.get((topic_id, p)) == member.member_epoch:
                        del self.partition_epochs[topic_id, p]


def _held_epochs(assigned: Partitions, pending: Partitions, epochs: AssignmentEpochs,
                 default: int) -> AssignmentEpochs:
    return {(t, p): epochs.get((t, p), default) for parts in (assigned, pending) for t, ps in parts.items()
            for p in ps}


def _minus(a: Partitions, b: Partitions) -> Partitions:
    return {t: rest for t, ps in a.items() if (rest := ps - b.get(t, set()))}


def _intersect(a: Partitions, b: Partitions) -> Partitions:
    return {t: common for t, ps in a.items() if (common := ps & b.get(t, set()))}


def _overlaps(a: Partitions, b: Partitions) -> bool:
    return any(ps & b.get(t, set()) for t, ps in a.items())


@dataclass(slots=True)
class NextAssignment:
    member_epoch: int
    previous_member_epoch: int
    state: MemberState
    assigned: Partitions
    pending_revocation: Partitions
    # KIP-1251: kept and revoking partitions keep their assignment epoch; new ones get the new member epoch
    assignment_epochs: AssignmentEpochs = field(default_factory=dict)


def next_assignment(member: ConsumerGroupMember, target_epoch: int, target: Partitions, owned: Partitions | None,
                    partition_owner: Callable[[uuid.UUID, int], int | None]) -> NextAssignment | None:
    """Kafka's `CurrentAssignmentBuilder.build`: the member's next state, or None if it stays as it is.

    `owned` is what the member reported in this heartbeat (None: not reported, assume it still owns all).
    `partition_owner(topic_id, p)` is the epoch of whoever else holds the partition, None if free.
    """
    if member.state == MemberState.UNREVOKED_PARTITIONS:
        if owned is None or _overlaps(member.partitions_pending_revocation, owned):
            return None  # still revoking
        return _compute(member, min(member.member_epoch + 1, target_epoch), member.assigned_partitions,
                        target_epoch, target, owned, partition_owner)
    if member.state == MemberState.STABLE and member.member_epoch == target_epoch:
        return None
    return _compute(member, member.member_epoch, member.assigned_partitions, target_epoch, target, owned,
                    partition_owner)


def _compute(member: ConsumerGroupMember, epoch: int, assigned: Partitions, target_epoch: int, target: Partitions,
             owned: Partitions | None, partition_owner: Callable[[uuid.UUID, int], int | None]) -> NextAssignment | None:
    kept = _intersect(assigned, target)
    revoke = _minus(assigned, target)
    if revoke and (owned is None or _overlaps(revoke, owned)):
        # Revoke first; the member keeps its epoch until it reports the partitions gone.
        result = NextAssignment(epoch, member.member_epoch, MemberState.UNREVOKED_PARTITIONS, kept, revoke,
                                _held_epochs(kept, revoke, member.assignment_epochs, member.member_epoch))
    else:
        new_assigned = {t: set(ps) for t, ps in kept.items()}
        unreleased = False
        for topic_id, partitions in _minus(target, assigned).items():
            for p in partitions:
                holder = partition_owner(topic_id, p)
                if holder is None or (member.member_id and (topic_id, p) in _pairs(member)):
                    new_assigned.setdefault(topic_id, set()).add(p)
                else:
                    unreleased = True
        state = MemberState.UNRELEASED_PARTITIONS if unreleased else MemberState.STABLE
        result = NextAssignment(target_epoch, member.member_epoch, state, new_assigned, {},
                                _held_epochs(new_assigned, {}, member.assignment_epochs, target_epoch))
    if (result.member_epoch, result.state, result.assigned, result.pending_revocation) == (
            member.member_epoch, member.state, member.assigned_partitions, member.partitions_pending_revocation):
        return None
    return result


def _pairs(member: ConsumerGroupMember) -> set[tuple[uuid.UUID, int]]:
    return {(t, p) for parts in (member.assigned_partitions, member.partitions_pending_revocation)
            for t, ps in parts.items() for p in ps}


def reconcile(member: ConsumerGroupMember, target_epoch: int, target: Partitions, owned: Partitions | None,
              partition_owner: Callable[[uuid.UUID, int], int | None]) -> None:
    """Apply `next_assignment` to a standalone member (no group partition epochs); for tests and docs."""
    nxt = next_assignment(member, target_epoch, target, owned, partition_owner)
    if nxt is not None:
        member.member_epoch, member.previous_member_epoch, member.state = (
            nxt.member_epoch, nxt.previous_member_epoch, nxt.state)
        member.assigned_partitions, member.partitions_pending_revocation = nxt.assigned, nxt.pending_revocation
        member.assignment_epochs = nxt.assignment_epochs
