"""ConsumerGroupHeartbeat (KIP-848): Kafka's `GroupMetadataManager.consumerGroupHeartbeat` for this broker.

One heartbeat: validate the member and its epoch, record subscription changes (bumping the group epoch),
recompute the target assignment when the group epoch is ahead of the assignment epoch, then move the
member one step towards its target (`next_assignment`). Every change is a record: built here, replayed
into memory by `consumer_group_records.replay` (the same code the loader runs) and appended to
`__consumer_offsets` by the `CoordinatorRuntime` before the response goes out; a failed append reverts
the group to its snapshot (the runtime's undo log).
"""

from __future__ import annotations

import copy
import logging
import re
import time
import uuid
from collections.abc import Collection
from dataclasses import dataclass, field

from moldau.coordinator import consumer_group_records as cgr
from moldau.coordinator.append_errors import coordinator_append_error
from moldau.coordinator.assignors import ASSIGNORS, MemberSpec
from moldau.coordinator.consumer_group import (
    LEAVE_GROUP_MEMBER_EPOCH,
    LEAVE_GROUP_STATIC_MEMBER_EPOCH,
    ConsumerGroup,
    ConsumerGroupMember,
    MemberState,
    Partitions,
    next_assignment,
)
from moldau.coordinator.records import OFFSETS_TOPIC
from moldau.coordinator.runtime import CoordinatorResult
from moldau.coordinator.state import CoordinatorState
from moldau.errors import MoldauError
from moldau.protocol.errors import ErrorCode

log = logging.getLogger(__name__)
E = ErrorCode
GROUP_TYPE_CONSUMER = "consumer"


@dataclass(slots=True)
class HeartbeatRequest:
    group_id: str
    member_id: str
    member_epoch: int
    instance_id: str | None = None
    rack_id: str | None = None
    rebalance_timeout_ms: int = -1
    subscribed_topic_names: list[str] | None = None
    subscribed_topic_regex: str | None = None
    server_assignor: str | None = None
    owned: Partitions | None = None
    client_id: str = ""
    client_host: str = ""


@dataclass(slots=True)
class HeartbeatResult:
    error: ErrorCode
    message: str | None = None
    member_id: str | None = None
    member_epoch: int = 0
    heartbeat_interval_ms: int = 0
    assignment: Partitions | None = field(default=None)


class ConsumerGroupCoordinator:
    """The KIP-848 consumer groups of this broker, beside the classic ones, over the shared
    `CoordinatorState`."""

    def __init__(self, state: CoordinatorState) -> None:
        self.state = state
        state.on_loaded_hooks.append(self._on_loaded)

    def _on_loaded(self, partition: int) -> None:
        for group in self.state.consumer_groups.values():
            if self.state.log.partition_of(group.group_id) == partition:
                for member in group.members.values():
                    self._schedule_session(group.group_id, member.member_id)

    @property
    def heartbeat_interval_ms(self) -> int:
        return self.state.config.group_consumer_heartbeat_interval_ms

    # -- the heartbeat ------------------------------------------------------------------------------

    async def consumer_group_heartbeat(self, req: HeartbeatRequest) -> HeartbeatResult:
        self.state.check_available(req.group_id)
        error = self._validate_request(req)
        if error is not None:
            return error

        def operation() -> CoordinatorResult[HeartbeatResult]:
            records: list[cgr.KeyValue] = []
            if req.member_epoch in (LEAVE_GROUP_MEMBER_EPOCH, LEAVE_GROUP_STATIC_MEMBER_EPOCH):
                result = self._leave(req, records)
            else:
                result = self._heartbeat(req, records)
            return CoordinatorResult(records, result, replayed=True)

        try:
            return await self.state.log.write(req.group_id, operation)
        except (MoldauError, OSError) as exc:
            # The runtime reverted the group to its state before this heartbeat; the member retries.
            log.debug("writing consumer group %s records failed: %s", req.group_id, exc)
            return HeartbeatResult(coordinator_append_error(exc), str(exc), req.member_id, req.member_epoch)

    def _validate_request(self, req: HeartbeatRequest) -> HeartbeatResult | None:
        def invalid(message: str, code: ErrorCode = E.INVALID_REQUEST) -> HeartbeatResult:
            return HeartbeatResult(code, message, req.member_id or None, req.member_epoch)

        if not req.group_id:
            return invalid("GroupId can't be empty.", E.INVALID_GROUP_ID)
        if not req.member_id:
            return invalid("MemberId can't be empty.")
        if req.member_epoch == LEAVE_GROUP_STATIC_MEMBER_EPOCH and req.instance_id is None:
            return invalid("InstanceId can't be null when MemberEpoch is -2.")
        if req.member_epoch < LEAVE_GROUP_STATIC_MEMBER_EPOCH:
            return invalid(f"MemberEpoch {req.member_epoch} is invalid.")
        if req.member_epoch == 0:
            if req.rebalance_timeout_ms == -1:
                return invalid("RebalanceTimeoutMs must be provided in first request.")
            if req.owned:
                return invalid("TopicPartitions must be empty when (re-)joining.")
            if req.subscribed_topic_names is None and req.subscribed_topic_regex is None:
                return invalid("SubscribedTopicNames or SubscribedTopicRegex must be set in first request.")
        if req.subscribed_topic_regex:
            try:
                re.compile(req.subscribed_topic_regex)
            except re.error as exc:
                return invalid(f"SubscribedTopicRegex {req.subscribed_topic_regex!r} is invalid: {exc}",
                               E.INVALID_REGULAR_EXPRESSION)
        if req.server_assignor is not None and req.server_assignor not in self._assignor_names():
            return invalid(f"ServerAssignor {req.server_assignor} is not supported. Supported assignors: "
                           f"{', '.join(self._assignor_names())}.", E.UNSUPPORTED_ASSIGNOR)
        return None

    def _assignor_names(self) -> list[str]:
        return [n for n in self.state.config.group_consumer_assignors if n in ASSIGNORS] or ["uniform"]

    def _group_for(self, req: HeartbeatRequest) -> ConsumerGroup | HeartbeatResult:
        group = self.state.consumer_groups.get(req.group_id)
        if group is not None:
            return group
        classic = self.state.groups.get(req.group_id)
        if classic is not None and classic.members:
            return HeartbeatResult(E.GROUP_ID_NOT_FOUND, f"Group {req.group_id} is not a consumer group.",
                                   req.member_id, req.member_epoch)
        if req.member_epoch != 0:
            return HeartbeatResult(E.UNKNOWN_MEMBER_ID, f"Group {req.group_id} has no member {req.member_id}.",
                                   req.member_id, req.member_epoch)
        return ConsumerGroup(req.group_id)  # created in memory by the first replayed record

    def _heartbeat(self, req: HeartbeatRequest, records: list[cgr.KeyValue]) -> HeartbeatResult:
        group = self._group_for(req)
        if isinstance(group, HeartbeatResult):
            return group
        member = self._member_for(group, req, records)
        if isinstance(member, HeartbeatResult):
            return member
        is_new = member.member_id not in group.members
        updated = self._updated_member(member, req)
        bump = is_new or (updated.subscribed_topic_names, updated.subscribed_topic_regex) != (
            member.subscribed_topic_names, member.subscribed_topic_regex)
        if is_new or updated != member:
            self._apply(records, [cgr.member_record(group.group_id, updated)])
            group = self.state.consumer_groups[group.group_id]
            member = group.members[req.member_id]
        metadata = self._subscription_metadata(group)
        if metadata != group.subscription_metadata:
            self._apply(records, [cgr.partition_metadata_record(group.group_id, metadata)])
            bump = True
        if bump:
            self._apply(records, [cgr.group_epoch_record(group.group_id, group.group_epoch + 1)])
            log.info("consumer group %s moved to epoch %d (member %s %s)", group.group_id, group.group_epoch,
                     member.member_id, "joined" if is_new else "changed its subscription or topics changed")
        if group.group_epoch > group.assignment_epoch:
            self._compute_target_assignment(group, records)
        previous_assigned = member.assigned_partitions
        nxt = next_assignment(member, group.assignment_epoch, member.target, req.owned,
                              lambda t, p: group.partition_owner_epoch(t, p))
        if nxt is not None:
            self._apply(records, [cgr.current_assignment_record(
                group.group_id, member.member_id, nxt.member_epoch, nxt.previous_member_epoch, nxt.state,
                nxt.assigned, nxt.pending_revocation, assignment_epochs=nxt.assignment_epochs)])
        self._schedule_session(group.group_id, member.member_id)
        self._schedule_revocation(group, member, restart=nxt is not None)
        send = (req.member_epoch == 0 or member.assigned_partitions != previous_assigned
                or (req.owned is not None and req.owned != member.assigned_partitions))
        return HeartbeatResult(E.NONE, None, member.member_id, member.member_epoch, self.heartbeat_interval_ms,
                               member.assigned_partitions if send else None)

    def _member_for(self, group: ConsumerGroup, req: HeartbeatRequest, records: list[cgr.KeyValue],
                    ) -> ConsumerGroupMember | HeartbeatResult:
        member = group.members.get(req.member_id)
        if req.member_epoch == 0:
            if req.instance_id is not None:
                static = group.static_member(req.instance_id)
                if static is not None and static.member_id != req.member_id:
                    if static.member_epoch != LEAVE_GROUP_STATIC_MEMBER_EPOCH:
                        return HeartbeatResult(E.UNRELEASED_INSTANCE_ID, f"Static member {req.instance_id} "
                                               f"of group {group.group_id} is still in use by another member.",
                                               req.member_id, req.member_epoch)
                    return self._replace_static_member(group, static, req, records)
            if member is None and len(group.members) >= self.state.config.group_consumer_max_size:
                return HeartbeatResult(E.GROUP_MAX_SIZE_REACHED, f"Group {group.group_id} is full.",
                                       req.member_id, req.member_epoch)
            return member if member is not None else ConsumerGroupMember(req.member_id)
        if member is None:
            return HeartbeatResult(E.UNKNOWN_MEMBER_ID, f"Member {req.member_id} is not in group "
                                   f"{group.group_id}.", req.member_id, req.member_epoch)
        if req.member_epoch > member.member_epoch or (
                req.member_epoch < member.member_epoch and not (
                    req.member_epoch == member.previous_member_epoch and req.owned is not None
                    and all(ps <= member.assigned_partitions.get(t, set()) for t, ps in req.owned.items()))):
            return HeartbeatResult(E.FENCED_MEMBER_EPOCH, f"The member epoch {req.member_epoch} of member "
                                   f"{req.member_id} is fenced: the group has epoch {member.member_epoch}.",
                                   req.member_id, req.member_epoch)
        return member

    def _replace_static_member(self, group: ConsumerGroup, old: ConsumerGroupMember, req: HeartbeatRequest,
                               records: list[cgr.KeyValue]) -> ConsumerGroupMember:
        """KIP-848: a static member that left with epoch -2 comes back under a new member id and keeps its
        assignment."""
        self.state.cancel(("cg-session", group.group_id, old.member_id))
        new = ConsumerGroupMember(req.member_id, instance_id=old.instance_id, rack_id=old.rack_id,
                                  client_id=old.client_id, client_host=old.client_host,
                                  subscribed_topic_names=old.subscribed_topic_names,
                                  subscribed_topic_regex=old.subscribed_topic_regex,
                                  rebalance_timeout_ms=old.rebalance_timeout_ms, server_assignor=old.server_assignor)
        epoch = old.previous_member_epoch
        self._apply(records, cgr.member_removal_records(group.group_id, old) + [
            cgr.member_record(group.group_id, new),
            cgr.target_member_record(group.group_id, new.member_id, old.target),
            cgr.current_assignment_record(group.group_id, new.member_id, epoch, epoch, old.state,
                                          old.assigned_partitions, old.partitions_pending_revocation,
                                          assignment_epochs=old.assignment_epochs)])
        log.info("static member %s of group %s replaced member id %s with %s", old.instance_id, group.group_id,
                 old.member_id, new.member_id)
        return self.state.consumer_groups[group.group_id].members[new.member_id]

    @staticmethod
    def _updated_member(member: ConsumerGroupMember, req: HeartbeatRequest) -> ConsumerGroupMember:
        updated = copy.copy(member)
        if req.instance_id is not None:
            updated.instance_id = req.instance_id
        if req.rack_id is not None:
            updated.rack_id = req.rack_id
        if req.rebalance_timeout_ms != -1:
            updated.rebalance_timeout_ms = req.rebalance_timeout_ms
        if req.server_assignor is not None:
            updated.server_assignor = req.server_assignor
        if req.subscribed_topic_names is not None:
            updated.subscribed_topic_names = sorted(set(req.subscribed_topic_names))
        if req.subscribed_topic_regex is not None:
            updated.subscribed_topic_regex = req.subscribed_topic_regex or None
        updated.client_id, updated.client_host = req.client_id, req.client_host
        return updated

    # -- leaving and fencing ------------------------------------------------------------------------

    def _leave(self, req: HeartbeatRequest, records: list[cgr.KeyValue]) -> HeartbeatResult:
        group = self.state.consumer_groups.get(req.group_id)
        member = group.members.get(req.member_id) if group is not None else None
        if group is None or member is None:
            return HeartbeatResult(E.UNKNOWN_MEMBER_ID, f"Member {req.member_id} is not in group {req.group_id}.",
                                   req.member_id, req.member_epoch)
        if req.member_epoch == LEAVE_GROUP_STATIC_MEMBER_EPOCH:
            # KIP-848: a static member leaving temporarily keeps its assignment until its session expires.
            # KIP-1251 (Kafka's resetAssignedPartitionsEpochsToZero): the member that comes back with the
            # instance id holds the partitions from epoch 0.
            self._apply(records, [cgr.current_assignment_record(
                group.group_id, member.member_id, LEAVE_GROUP_STATIC_MEMBER_EPOCH, member.member_epoch,
                member.state, member.assigned_partitions, member.partitions_pending_revocation,
                assignment_epochs=dict.fromkeys(member.assignment_epochs, 0))])
            self._schedule_session(group.group_id, member.member_id)
            log.info("static member %s of group %s left temporarily", member.instance_id, group.group_id)
        else:
            self._remove_member(group, member, "left the group", records)
        return HeartbeatResult(E.NONE, None, req.member_id, req.member_epoch, 0)

    def _remove_member(self, group: ConsumerGroup, member: ConsumerGroupMember, reason: str,
                       records: list[cgr.KeyValue]) -> None:
        self.state.cancel(("cg-session", group.group_id, member.member_id))
        self.state.cancel(("cg-revoke", group.group_id, member.member_id))
        self._apply(records, cgr.member_removal_records(group.group_id, member))
        self._apply(records, [cgr.group_epoch_record(group.group_id, group.group_epoch + 1)])
        log.info("member %s of consumer group %s %s; group epoch %d", member.member_id, group.group_id, reason,
                 group.group_epoch)

    def _fence(self, group_id: str, member_id: str, expected_epoch: int | None, reason: str) -> None:
        group = self.state.consumer_groups.get(group_id)
        member = group.members.get(member_id) if group is not None else None
        if group is None or member is None:
            return
        if expected_epoch is not None and (member.member_epoch != expected_epoch
                                           or member.state != MemberState.UNREVOKED_PARTITIONS):
            return

        def operation() -> CoordinatorResult[None]:
            records: list[cgr.KeyValue] = []
            current = self.state.consumer_groups.get(group_id)
            fenced = current.members.get(member_id) if current is not None else None
            if current is not None and fenced is not None:
                self._remove_member(current, fenced, reason, records)
            return CoordinatorResult(records, None, replayed=True)

        self.state.log.write_in_background(group_id, operation)

    def _schedule_session(self, group_id: str, member_id: str) -> None:
        timeout = self.state.config.group_consumer_session_timeout_ms
        self.state.schedule(("cg-session", group_id, member_id), timeout,
                       lambda: self._fence(group_id, member_id, None,
                                           f"was fenced: no heartbeat within {timeout} ms (session timeout)"))

    def _schedule_revocation(self, group: ConsumerGroup, member: ConsumerGroupMember, restart: bool) -> None:
        """Kafka: a member has its rebalance timeout to revoke partitions, counted from the revocation."""
        key = ("cg-revoke", group.group_id, member.member_id)
        if member.state != MemberState.UNREVOKED_PARTITIONS:
            self.state.cancel(key)
            return
        if self.state.has_timer(key) and not restart:
            return
        epoch, timeout = member.member_epoch, max(member.rebalance_timeout_ms, 0)
        self.state.schedule(key, timeout, lambda: self._fence(
            group.group_id, member.member_id, epoch, f"was fenced: partitions not revoked within {timeout} ms"))

    # -- assignment ---------------------------------------------------------------------------------

    def _apply(self, records: list[cgr.KeyValue], new: list[cgr.KeyValue]) -> None:
        for key, value in new:
            self.state.replay(key, value)
        records.extend(new)

    def _resolved_topics(self, member: ConsumerGroupMember) -> set[str]:
        topics = set(member.subscribed_topic_names)
        if member.subscribed_topic_regex:
            pattern = re.compile(member.subscribed_topic_regex)
            topics.update(t for t in self.state.topic_metadata.topics()
                          if t != OFFSETS_TOPIC and not t.startswith("__") and pattern.fullmatch(t))
        return topics

    def _subscription_metadata(self, group: ConsumerGroup) -> dict[str, tuple[uuid.UUID, int]]:
        result = {}
        topics = self.state.topic_metadata.topics()
        for member in group.members.values():
            member.resolved_topics = self._resolved_topics(member)
            for name in member.resolved_topics:
                topic = topics.get(name)
                if topic is not None:
                    result[name] = topic
        return result

    def _compute_target_assignment(self, group: ConsumerGroup, records: list[cgr.KeyValue]) -> None:
        """Kafka's `TargetAssignmentBuilder`: run the group's assignor, record what changed, then the epoch."""
        ids = {name: tid for name, (tid, _) in group.subscription_metadata.items()}
        names = {tid: name for name, tid in ids.items()}
        topics = {name: count for name, (_, count) in group.subscription_metadata.items()}
        specs = {m.member_id: MemberSpec(m.resolved_topics or self._resolved_topics(m),
                                         {names[t]: set(ps) for t, ps in m.target.items() if t in names})
                 for m in group.members.values()}
        assignor = ASSIGNORS[self.preferred_assignor(group)]
        started = time.monotonic()
        assignment = assignor.assign(specs, topics)
        new = []
        for member_id, parts in assignment.items():
            target = {ids[name]: ps for name, ps in parts.items() if ps}
            if target != group.members[member_id].target:
                new.append(cgr.target_member_record(group.group_id, member_id, target))
        new.append(cgr.target_epoch_record(group.group_id, group.group_epoch, self.state.now_ms()))
        self._apply(records, new)
        log.info("consumer group %s: target assignment at epoch %d by %s for %d member(s) in %.1f ms",
                 group.group_id, group.group_epoch, assignor.name, len(specs),
                 (time.monotonic() - started) * 1000)

    def preferred_assignor(self, group: ConsumerGroup) -> str:
        """Kafka: the server assignor most members ask for, else the first of `group.consumer.assignors`."""
        counts: dict[str, int] = {}
        for member in group.members.values():
            if member.server_assignor:
                counts[member.server_assignor] = counts.get(member.server_assignor, 0) + 1
        if counts:
            return max(sorted(counts), key=lambda n: counts[n])
        return self._assignor_names()[0]

    # -- offsets and admin --------------------------------------------------------------------------

    def validate_consumer_commit(self, group: ConsumerGroup, member_id: str, member_epoch: int,
                                 partitions: Collection[tuple[uuid.UUID, int]] = ()) -> ErrorCode:
        """Kafka 4.3's `ConsumerGroup.validateOffsetCommit` (OffsetCommit v9+ carries the member epoch).

        KIP-1251: the member's epoch commits anything; a newer one is stale; an older one commits a partition
        only if the member still holds it (assigned or pending revocation) and was given it at or before that
        epoch (`createAssignmentEpochValidator`). A member commits with the epoch it knows while the heartbeat
        that bumps it is in flight, so an exact match alone would fence a member that did nothing wrong.
        """
        if member_epoch < 0 and not group.members:
            return E.NONE
        member = group.members.get(member_id)
        if member is None:
            return E.UNKNOWN_MEMBER_ID
        if member_epoch == member.member_epoch:
            return E.NONE
        if member_epoch > member.member_epoch:
            return E.STALE_MEMBER_EPOCH
        for tp in partitions:
            assigned_at = member.assignment_epochs.get(tp)
            if assigned_at is None or member_epoch < assigned_at:
                return E.STALE_MEMBER_EPOCH
        return E.NONE

    def validate_consumer_fetch(self, group_id: str, member_id: str | None, member_epoch: int) -> ErrorCode:
        """Kafka's `ConsumerGroup.validateOffsetFetch`: a member fetch must come from a current member."""
        group = self.state.consumer_groups.get(group_id)
        if group is None or member_epoch < 0:
            return E.NONE
        member = group.members.get(member_id or "")
        if member is None:
            return E.UNKNOWN_MEMBER_ID
        return E.NONE if member_epoch == member.member_epoch else E.STALE_MEMBER_EPOCH

    async def delete_consumer_group(self, group_id: str) -> ErrorCode:
        """DeleteGroups for a consumer group: only when empty; its offsets and records get tombstones."""
        def operation() -> CoordinatorResult[ErrorCode]:
            group = self.state.consumer_groups.get(group_id)
            if group is None:
                return CoordinatorResult([], E.GROUP_ID_NOT_FOUND)
            if group.members:
                return CoordinatorResult([], E.NON_EMPTY_GROUP)
            records = [self.state.offset_record(group_id, t, p, None) for t, p in self.state.offsets.of_group(group_id)]
            records += [cgr.target_epoch_record(group_id, None), cgr.partition_metadata_record(group_id, None),
                        cgr.group_epoch_record(group_id, None)]
            return CoordinatorResult(records, E.NONE)

        error = await self.state.log.write(group_id, operation)
        if error is E.NONE:
            self.state.cancel_group_timers(group_id)
            log.info("deleted consumer group %s", group_id)
        return error

    def list_consumer_groups(self, states: list[str], types: list[str]) -> list[ConsumerGroup]:
        wanted_states = {s.lower() for s in states}
        if types and GROUP_TYPE_CONSUMER not in {t.lower() for t in types}:
            return []
        return [g for g in self.state.consumer_groups.values()
                if not wanted_states or g.state.value.lower() in wanted_states]

    def topic_names(self) -> dict[uuid.UUID, str]:
        return {tid: name for name, (tid, _) in self.state.topic_metadata.topics().items()}

    def describe_consumer_group(self, group_id: str) -> ConsumerGroup | None:
        self.state.check_available(group_id)
        return self.state.consumer_groups.get(group_id)
