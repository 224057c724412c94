"""A classic-protocol group: members, generation, state and protocol selection (Kafka's `ClassicGroup`).

This module is state only; the rebalance logic that drives it (timers, parked JoinGroup/SyncGroup
responses, records) lives in `group_coordinator`.
"""

from __future__ import annotations

import asyncio
import copy
import enum
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field, fields
from typing import Any

from moldau.protocol import api, messages
from moldau.protocol.errors import ErrorCode, ProtocolError


class GroupState(enum.Enum):
    """Kafka's `ClassicGroupState`; the value is the name DescribeGroups and ListGroups report."""

    EMPTY = "Empty"
    PREPARING_REBALANCE = "PreparingRebalance"
    COMPLETING_REBALANCE = "CompletingRebalance"
    STABLE = "Stable"
    DEAD = "Dead"


@dataclass(slots=True, eq=False)
class ClassicGroupMember:
    member_id: str
    group_instance_id: str | None
    client_id: str
    client_host: str
    rebalance_timeout_ms: int
    session_timeout_ms: int
    protocol_type: str
    protocols: list[tuple[str, bytes]]  # (name, metadata) in the member's preference order
    assignment: bytes = b""
    join_future: asyncio.Future[Any] | None = None
    sync_future: asyncio.Future[Any] | None = None
    is_new: bool = False

    @property
    def is_awaiting_join(self) -> bool:
        return self.join_future is not None

    @property
    def is_awaiting_sync(self) -> bool:
        return self.sync_future is not None

    def metadata(self, protocol: str | None) -> bytes:
        for name, data in self.protocols:
            if name == protocol:
                return data
        return b""

    def matches(self, protocols: list[tuple[str, bytes]]) -> bool:
        return self.protocols == protocols

    def vote(self, candidates: set[str]) -> str:
        """The member's most preferred protocol among `candidates` (Kafka's `ClassicGroupMember.vote`)."""
        for name, _ in self.protocols:
            if name in candidates:
                return name
        raise ValueError(f"member {self.member_id} supports none of {sorted(candidates)}")


@dataclass(slots=True, eq=False)
class ClassicGroup:
    group_id: str
    state: GroupState = GroupState.EMPTY
    previous_state: GroupState | None = None
    state_timestamp_ms: int = -1
    generation_id: int = 0
    protocol_type: str | None = None
    protocol_name: str | None = None
    leader_id: str | None = None
    members: dict[str, ClassicGroupMember] = field(default_factory=dict)
    static_members: dict[str, str] = field(default_factory=dict)  # group.instance.id -> member id
    pending_members: set[str] = field(default_factory=set)  # KIP-394: told MEMBER_ID_REQUIRED, not joined
    pending_sync_members: set[str] = field(default_factory=set)
    new_member_added: bool = False

    # -- state --------------------------------------------------------------------------------------

    def transition_to(self, state: GroupState, now_ms: int) -> None:
        self.previous_state = self.state
        self.state = state
        self.state_timestamp_ms = now_ms

    def is_in(self, *states: GroupState) -> bool:
        return self.state in states

    def can_rebalance(self) -> bool:
        return self.state in (GroupState.STABLE, GroupState.COMPLETING_REBALANCE, GroupState.EMPTY)

    # -- members ------------------------------------------------------------------------------------

    def add(self, member: ClassicGroupMember) -> None:
        if not self.members:
            self.protocol_type = member.protocol_type
        self.members[member.member_id] = member
        if member.group_instance_id is not None:
            self.static_members[member.group_instance_id] = member.member_id
        if self.leader_id is None:
            self.leader_id = member.member_id

    def remove(self, member_id: str) -> ClassicGroupMember | None:
        member = self.members.pop(member_id, None)
        self.pending_sync_members.discard(member_id)
        if member is None:
            return None
        if member.group_instance_id is not None and self.static_members.get(member.group_instance_id) == member_id:
            del self.static_members[member.group_instance_id]
        if self.leader_id == member_id:
            # Kafka prefers a member that is already waiting in JoinGroup as the new leader.
            waiting = [m.member_id for m in self.members.values() if m.is_awaiting_join]
            candidates = waiting or list(self.members)
            self.leader_id = candidates[0] if candidates else None
        return member

    def replace_static_member(self, instance_id: str, old_id: str, new_id: str) -> ClassicGroupMember:
        member = self.members.pop(old_id)
        member.member_id = new_id
        self.members[new_id] = member
        self.static_members[instance_id] = new_id
        if self.leader_id == old_id:
            self.leader_id = new_id
        if old_id in self.pending_sync_members:
            self.pending_sync_members.discard(old_id)
            self.pending_sync_members.add(new_id)
        return member

    def has_all_members_joined(self) -> bool:
        return not self.pending_members and all(m.is_awaiting_join for m in self.members.values())

    @property
    def rebalance_timeout_ms(self) -> int:
        return max((m.rebalance_timeout_ms for m in self.members.values()), default=0)

    # -- protocols ----------------------------------------------------------------------------------

    def supports_protocols(self, protocol_type: str, protocols: list[tuple[str, bytes]]) -> bool:
        """Kafka's `supportsProtocols`: an empty group takes any; others need a protocol all members share."""
        if self.state == GroupState.EMPTY and not self.members:
            return bool(protocol_type) and bool(protocols)
        if protocol_type != self.protocol_type:
            return False
        names = {name for name, _ in protocols}
        return bool(names & self.candidate_protocols())

    def candidate_protocols(self) -> set[str]:
        sets = [{name for name, _ in m.protocols} for m in self.members.values()]
        return set.intersection(*sets) if sets else set()

    def select_protocol(self) -> str:
        """The candidate with most member votes; ties go to the first voted (Kafka's `selectProtocol`)."""
        candidates = self.candidate_protocols()
        if not candidates:
            raise ValueError(f"group {self.group_id} has no protocol that all members support")
        votes = Counter(m.vote(candidates) for m in self.members.values())
        return votes.most_common(1)[0][0]

    def subscribed_topics(self) -> set[str] | None:
        """The topics consumer members subscribe to, or None when unknown (not the consumer protocol)."""
        if self.protocol_type != "consumer" or self.protocol_name is None:
            return None
        topics: set[str] = set()
        for member in self.members.values():
            topics.update(subscription_topics(member.metadata(self.protocol_name)))
        return topics


def subscription_topics(metadata: bytes) -> list[str]:
    """Topics of a `ConsumerProtocolSubscription` (version-prefixed); [] when it cannot be read."""
    if len(metadata) < 2:
        return []
    version = int.from_bytes(metadata[:2], "big", signed=True)
    spec_max = 3
    try:
        body, _ = api.decode_message("ConsumerProtocolSubscription", min(max(version, 0), spec_max), metadata, 2)
    except ProtocolError:
        return []
    return list(body.topics)


def member_to_record(member: ClassicGroupMember, protocol: str | None) -> Any:
    return messages.GroupMetadataValue.MemberMetadata(
        member_id=member.member_id, group_instance_id=member.group_instance_id, client_id=member.client_id,
        client_host=member.client_host, rebalance_timeout=member.rebalance_timeout_ms,
        session_timeout=member.session_timeout_ms, subscription=member.metadata(protocol),
        assignment=member.assignment)


# -- the classic group requests as the coordinator takes and answers them --------------------------------


@dataclass(slots=True)
class JoinResult:
    error: ErrorCode
    member_id: str = ""
    generation_id: int = -1
    protocol_type: str | None = None
    protocol_name: str | None = None
    leader: str = ""
    skip_assignment: bool = False
    members: list[tuple[str, str | None, bytes]] = field(default_factory=list)  # leader only


@dataclass(slots=True)
class SyncResult:
    error: ErrorCode
    protocol_type: str | None = None
    protocol_name: str | None = None
    assignment: bytes = b""


@dataclass(slots=True)
class JoinRequest:
    group_id: str
    member_id: str
    group_instance_id: str | None
    protocol_type: str
    protocols: list[tuple[str, bytes]]
    session_timeout_ms: int
    rebalance_timeout_ms: int
    client_id: str
    client_host: str
    require_known_member_id: bool
    supports_skip_assignment: bool


_UNDONE_MEMBER_FIELDS = ("member_id", "protocols", "rebalance_timeout_ms", "session_timeout_ms", "client_id",
                         "client_host", "assignment", "is_new")


def snapshot_classic(group: ClassicGroup) -> Callable[[], None]:
    """The undo of every change an operation makes to ``group``'s persisted state (members, generation,
    protocol, leader, state, assignments); parked JoinGroup/SyncGroup futures are not state and stay.
    Kafka keeps classic groups outside its timeline structures; here a failed write reverts them too."""
    group_fields = {f.name: copy.copy(getattr(group, f.name)) for f in fields(group)}
    members = {id(m): (m, {name: getattr(m, name) for name in _UNDONE_MEMBER_FIELDS})
               for m in group.members.values()}

    def restore() -> None:
        for name, value in group_fields.items():
            setattr(group, name, copy.copy(value))
        for member, saved in members.values():
            for name, value in saved.items():
                setattr(member, name, value)

    return restore
