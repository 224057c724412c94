"""The classic-protocol group coordinator: JoinGroup, SyncGroup, Heartbeat, LeaveGroup and the rebalance.

Follows Kafka's `GroupMetadataManager` (group-coordinator module) for classic groups. State changes are
applied in memory inside a runtime operation; GroupMetadata records go to `__consumer_offsets` through the
`CoordinatorRuntime`, which reverts the change when the write fails, and the in-memory state after a
restart is a replay of them (`state.py`). Parked JoinGroup/SyncGroup
responses are futures that the rebalance completes. Offsets and admin calls live in `group_admin.py`.
"""

from __future__ import annotations

import asyncio
import logging
import uuid
from collections.abc import Callable

from moldau.coordinator.append_errors import coordinator_append_error
from moldau.coordinator.classic_group import (  # JoinRequest/JoinResult/SyncResult: the handlers import them here
    ClassicGroup,
    ClassicGroupMember,
    GroupState,
    JoinRequest,
    JoinResult,
    SyncResult,
    snapshot_classic,
    subscription_topics,
)
from moldau.coordinator.state import CoordinatorState
from moldau.errors import MoldauError
from moldau.protocol.errors import ErrorCode

log = logging.getLogger(__name__)

NEW_MEMBER_JOIN_TIMEOUT_MS = 300_000  # Kafka's classicGroupNewMemberJoinTimeoutMs
E = ErrorCode


class ClassicGroupCoordinator:
    """The classic groups of this broker (Kafka's `GroupMetadataManager`, classic part), over the shared
    `CoordinatorState`. Use from the broker's event loop."""

    def __init__(self, state: CoordinatorState) -> None:
        self.state = state
        state.on_loaded_hooks.append(self._on_loaded)

    def _on_loaded(self, partition: int) -> None:
        """Arm the session timers of the loaded members (Kafka's onLoaded)."""
        for group in self.state.groups.values():
            if self.state.log.partition_of(group.group_id) == partition:
                for member in group.members.values():
                    self._reschedule_heartbeat(group, member)

    # -- timers -------------------------------------------------------------------------------------

    def _reschedule_heartbeat(self, group: ClassicGroup, member: ClassicGroupMember, timeout_ms: int | None = None,
                              ) -> None:
        self.state.schedule(("heartbeat", group.group_id, member.member_id),
                       member.session_timeout_ms if timeout_ms is None else timeout_ms,
                       lambda: self._on_heartbeat_expiry(group.group_id, member.member_id))

    def _on_heartbeat_expiry(self, group_id: str, member_id: str) -> None:
        group = self.state.groups.get(group_id)
        if group is None:
            return
        if member_id in group.pending_members:
            log.info("pending member %s of group %s expired before joining", member_id, group_id)
            group.pending_members.discard(member_id)
            self._maybe_complete_join(group)
            return
        member = group.members.get(member_id)
        if member is None:
            return
        if not member.is_new and (member.is_awaiting_join or member.is_awaiting_sync):
            self._reschedule_heartbeat(group, member)  # parked in JoinGroup/SyncGroup: it cannot heartbeat
            return
        log.info("member %s of group %s expired (session timeout %d ms); rebalancing", member_id, group_id,
                 member.session_timeout_ms)
        self._remove_member_and_update(group, member, "session timeout")

    # -- JoinGroup ----------------------------------------------------------------------------------

    async def join_group(self, request: JoinRequest) -> JoinResult:
        future = self._join(request)
        if isinstance(future, JoinResult):
            return future
        return await asyncio.shield(future)

    def _join(self, req: JoinRequest) -> JoinResult | asyncio.Future[JoinResult]:
        self.state.check_available(req.group_id)
        if not req.group_id:
            return JoinResult(E.INVALID_GROUP_ID, req.member_id)
        if req.group_id in self.state.consumer_groups:
            # A KIP-848 consumer group: no online downgrade to the classic protocol here.
            return JoinResult(E.INCONSISTENT_GROUP_PROTOCOL, req.member_id)
        if not self.state.min_session_ms <= req.session_timeout_ms <= self.state.max_session_ms:
            return JoinResult(E.INVALID_SESSION_TIMEOUT, req.member_id)
        group = self.state.groups.get(req.group_id)
        if group is None:
            if req.member_id:
                return JoinResult(E.UNKNOWN_MEMBER_ID, req.member_id)
            group = self.state.create_group(req.group_id)
        if not group.supports_protocols(req.protocol_type, req.protocols):
            return JoinResult(E.INCONSISTENT_GROUP_PROTOCOL, req.member_id)
        is_new = not req.member_id or req.member_id in group.pending_members
        if is_new and len(group.members) + len(group.pending_members) >= self.state.max_group_size and \
                not (req.group_instance_id and req.group_instance_id in group.static_members):
            return JoinResult(E.GROUP_MAX_SIZE_REACHED, req.member_id)
        if not req.member_id:
            return self._join_new_member(group, req)
        return self._join_existing_member(group, req)

    def _join_new_member(self, group: ClassicGroup, req: JoinRequest) -> JoinResult | asyncio.Future[JoinResult]:
        if group.is_in(GroupState.DEAD):
            return JoinResult(E.COORDINATOR_NOT_AVAILABLE)
        prefix = req.group_instance_id if req.group_instance_id is not None else req.client_id
        member_id = f"{prefix}-{uuid.uuid4()}"
        if req.group_instance_id is not None:
            if req.group_instance_id in group.static_members:
                return self._update_static_member(group, req, member_id)
        elif req.require_known_member_id:
            # KIP-394: hand out the id first; the member joins for real with it.
            group.pending_members.add(member_id)
            self.state.schedule(("heartbeat", group.group_id, member_id), req.session_timeout_ms,
                           lambda: self._on_heartbeat_expiry(group.group_id, member_id))
            return JoinResult(E.MEMBER_ID_REQUIRED, member_id)
        return self._add_member_and_rebalance(group, req, member_id)

    def _join_existing_member(self, group: ClassicGroup, req: JoinRequest,
                              ) -> JoinResult | asyncio.Future[JoinResult]:
        if group.is_in(GroupState.DEAD):
            return JoinResult(E.COORDINATOR_NOT_AVAILABLE, req.member_id)
        if req.member_id in group.pending_members:
            group.pending_members.discard(req.member_id)
            return self._add_member_and_rebalance(group, req, req.member_id)
        error = self._validate_member(group, req.member_id, req.group_instance_id)
        if error is not None:
            return JoinResult(error, req.member_id)
        member = group.members[req.member_id]
        if group.is_in(GroupState.PREPARING_REBALANCE):
            return self._update_member_and_rebalance(group, member, req)
        if group.is_in(GroupState.COMPLETING_REBALANCE):
            if member.matches(req.protocols):
                # A retried JoinGroup of this generation: answer it again.
                return self._join_response(group, member, E.NONE)
            return self._update_member_and_rebalance(group, member, req)
        if group.is_in(GroupState.STABLE):
            if member.member_id == group.leader_id or not member.matches(req.protocols):
                return self._update_member_and_rebalance(group, member, req)
            return self._join_response(group, member, E.NONE)
        return JoinResult(E.UNKNOWN_MEMBER_ID, req.member_id)

    def _add_member_and_rebalance(self, group: ClassicGroup, req: JoinRequest, member_id: str,
                                  ) -> asyncio.Future[JoinResult]:
        member = ClassicGroupMember(
            member_id, req.group_instance_id, req.client_id, req.client_host, req.rebalance_timeout_ms,
            req.session_timeout_ms, req.protocol_type, req.protocols, is_new=True)
        member.join_future = self.state.loop.create_future()
        group.add(member)
        if group.is_in(GroupState.PREPARING_REBALANCE) and group.previous_state == GroupState.EMPTY:
            group.new_member_added = True
        # A new member cannot heartbeat until it has joined; time it out if it never finishes (Kafka).
        self._reschedule_heartbeat(group, member, NEW_MEMBER_JOIN_TIMEOUT_MS)
        future = member.join_future
        self._maybe_prepare_rebalance_or_complete_join(group, f"member {member_id} joined")
        return future

    def _update_member_and_rebalance(self, group: ClassicGroup, member: ClassicGroupMember, req: JoinRequest,
                                     ) -> asyncio.Future[JoinResult]:
        self._set_member_protocols(group, member, req)
        if member.join_future is not None and not member.join_future.done():
            member.join_future.set_result(JoinResult(E.REBALANCE_IN_PROGRESS, member.member_id))
        member.join_future = future = self.state.loop.create_future()
        self._maybe_prepare_rebalance_or_complete_join(group, f"member {member.member_id} rejoined")
        return future

    @staticmethod
    def _set_member_protocols(group: ClassicGroup, member: ClassicGroupMember, req: JoinRequest) -> None:
        member.protocols = req.protocols
        member.rebalance_timeout_ms = req.rebalance_timeout_ms
        member.session_timeout_ms = req.session_timeout_ms
        member.client_id, member.client_host = req.client_id, req.client_host

    def _update_static_member(self, group: ClassicGroup, req: JoinRequest, new_id: str,
                              ) -> JoinResult | asyncio.Future[JoinResult]:
        """KIP-345: a restarted static member takes over its old member id's place."""
        instance_id = req.group_instance_id
        assert instance_id is not None
        old_id = group.static_members[instance_id]
        old = group.members[old_id]
        old_topics = set(subscription_topics(old.metadata(group.protocol_name)))
        self.state.cancel(("heartbeat", group.group_id, old_id))
        for attr in ("join_future", "sync_future"):
            fut = getattr(old, attr)
            if fut is not None and not fut.done():
                fut.set_result(JoinResult(E.FENCED_INSTANCE_ID, old_id) if attr == "join_future"
                               else SyncResult(E.FENCED_INSTANCE_ID))
            setattr(old, attr, None)
        restore = snapshot_classic(group)  # before the replacement: a failed write puts the old member back
        member = group.replace_static_member(instance_id, old_id, new_id)
        self._set_member_protocols(group, member, req)
        self._reschedule_heartbeat(group, member)
        log.info("static member %s of group %s replaced member id %s with %s", instance_id, group.group_id,
                 old_id, new_id)
        if group.is_in(GroupState.STABLE):
            unchanged = group.select_protocol() == group.protocol_name and (
                group.protocol_type != "consumer"
                or set(subscription_topics(member.metadata(group.protocol_name))) == old_topics)
            if unchanged:
                result = self._join_response(group, member, E.NONE, skip_assignment=req.supports_skip_assignment)
                return self._store_then(group, member, result, restore)
            member.join_future = future = self.state.loop.create_future()
            self._prepare_rebalance(group, f"static member {instance_id} changed its protocols")
            return future
        member.join_future = future = self.state.loop.create_future()
        if group.is_in(GroupState.COMPLETING_REBALANCE):
            # The leader may be assigning to the old member id: the new one needs a new generation.
            self._prepare_rebalance(group, f"static member {instance_id} rejoined during CompletingRebalance")
        else:
            self._maybe_prepare_rebalance_or_complete_join(group, f"static member {instance_id} rejoined")
        return future

    def _store_then(self, group: ClassicGroup, member: ClassicGroupMember, result: JoinResult,
                    restore: Callable[[], None]) -> asyncio.Future[JoinResult]:
        """Answer ``result`` once the group's record is written; a failed write reverts the group to
        ``restore`` (taken before the change) and answers the mapped append error (Kafka's
        ``appendGroupMetadataErrorToResponseError``)."""
        future: asyncio.Future[JoinResult] = self.state.loop.create_future()

        async def store() -> None:
            try:
                await self.state.store_group(group, restore=restore)
            except (MoldauError, OSError) as exc:
                self._reschedule_heartbeat(group, member)  # the restored member keeps its session
                future.set_result(JoinResult(coordinator_append_error(exc), result.member_id))
            else:
                future.set_result(result)

        task = self.state.loop.create_task(store())
        future.add_done_callback(lambda _: task)  # keep the task referenced until answered
        return future

    def _join_response(self, group: ClassicGroup, member: ClassicGroupMember, error: ErrorCode,
                       skip_assignment: bool = False) -> JoinResult:
        is_leader = member.member_id == group.leader_id
        members = []
        if is_leader:
            members = [(m.member_id, m.group_instance_id, m.metadata(group.protocol_name))
                       for m in group.members.values()]
        return JoinResult(error, member.member_id, group.generation_id, group.protocol_type, group.protocol_name,
                          group.leader_id or "", skip_assignment and is_leader, members)

    # -- the rebalance ------------------------------------------------------------------------------

    def _maybe_prepare_rebalance_or_complete_join(self, group: ClassicGroup, reason: str) -> None:
        if group.can_rebalance():
            self._prepare_rebalance(group, reason)
        elif group.is_in(GroupState.PREPARING_REBALANCE):
            self._maybe_complete_join(group)

    def _prepare_rebalance(self, group: ClassicGroup, reason: str) -> None:
        if group.is_in(GroupState.COMPLETING_REBALANCE):
            self._propagate_assignment(group, E.REBALANCE_IN_PROGRESS)
        self.state.cancel(("sync", group.group_id))
        initial = group.is_in(GroupState.EMPTY)
        group.transition_to(GroupState.PREPARING_REBALANCE, self.state.now_ms())
        log.info("preparing to rebalance group %s in generation %d (%s)", group.group_id, group.generation_id,
                 reason)
        if initial:
            # group.initial.rebalance.delay.ms: give the other members of a new group time to join.
            delay = self.state.initial_rebalance_delay_ms
            remaining = max(group.rebalance_timeout_ms - delay, 0)
            group.new_member_added = False
            self.state.schedule(("join", group.group_id), delay,
                           lambda: self._initial_join_expired(group.group_id, delay, remaining))
        else:
            self._maybe_complete_join_else_schedule(group)

    def _initial_join_expired(self, group_id: str, delay_ms: int, remaining_ms: int) -> None:
        group = self.state.groups.get(group_id)
        if group is None:
            return
        if group.new_member_added and remaining_ms:
            group.new_member_added = False
            next_delay = min(self.state.initial_rebalance_delay_ms, remaining_ms)
            next_remaining = max(remaining_ms - delay_ms, 0)
            self.state.schedule(("join", group_id), next_delay,
                           lambda: self._initial_join_expired(group_id, next_delay, next_remaining))
        else:
            self._complete_join(group)

    def _maybe_complete_join_else_schedule(self, group: ClassicGroup) -> None:
        if group.has_all_members_joined():
            self._complete_join(group)
        else:
            self.state.schedule(("join", group.group_id), group.rebalance_timeout_ms,
                           lambda: self._complete_join(group))

    def _maybe_complete_join(self, group: ClassicGroup) -> None:
        if (group.is_in(GroupState.PREPARING_REBALANCE) and group.has_all_members_joined()
                and group.previous_state != GroupState.EMPTY):
            self._complete_join(group)

    def _complete_join(self, group: ClassicGroup) -> None:
        self.state.cancel(("join", group.group_id))
        if group is not self.state.groups.get(group.group_id) or not group.is_in(GroupState.PREPARING_REBALANCE):
            return
        for member in [m for m in group.members.values() if not m.is_awaiting_join]:
            log.info("removing member %s from group %s: it did not rejoin within the rebalance timeout",
                     member.member_id, group.group_id)
            self.state.cancel(("heartbeat", group.group_id, member.member_id))
            group.remove(member.member_id)
        for pending in list(group.pending_members):
            self.state.cancel(("heartbeat", group.group_id, pending))
        group.pending_members.clear()
        group.generation_id += 1
        now = self.state.now_ms()
        if not group.members:
            group.protocol_name = None
            group.leader_id = None
            group.transition_to(GroupState.EMPTY, now)
            log.info("group %s is empty in generation %d", group.group_id, group.generation_id)
            self.state.store_group_in_background(group)
            return
        group.protocol_name = group.select_protocol()
        group.transition_to(GroupState.COMPLETING_REBALANCE, now)
        log.info("group %s completed its join phase: generation %d, protocol %s, leader %s, %d member(s)",
                 group.group_id, group.generation_id, group.protocol_name, group.leader_id, len(group.members))
        for member in group.members.values():
            member.assignment = b""
            result = self._join_response(group, member, E.NONE)
            if member.join_future is not None and not member.join_future.done():
                member.join_future.set_result(result)
            member.join_future = None
            member.is_new = False
            self._reschedule_heartbeat(group, member)
        group.pending_sync_members = set(group.members)
        generation = group.generation_id
        self.state.schedule(("sync", group.group_id), group.rebalance_timeout_ms,
                       lambda: self._sync_expired(group.group_id, generation))

    def _sync_expired(self, group_id: str, generation: int) -> None:
        """Members that got a JoinGroup response but never sent SyncGroup are removed (Kafka's pending sync)."""
        group = self.state.groups.get(group_id)
        if group is None or group.generation_id != generation or not group.pending_sync_members:
            return
        if not group.is_in(GroupState.COMPLETING_REBALANCE, GroupState.STABLE):
            return
        missing = list(group.pending_sync_members)
        log.info("removing member(s) %s from group %s: no SyncGroup within the rebalance timeout", missing,
                 group_id)
        for member_id in missing:
            self.state.cancel(("heartbeat", group_id, member_id))
            group.remove(member_id)
        self._prepare_rebalance(group, "members failed to sync")

    def _propagate_assignment(self, group: ClassicGroup, error: ErrorCode) -> None:
        for member in group.members.values():
            if member.sync_future is not None and not member.sync_future.done():
                assignment = member.assignment if error == E.NONE else b""
                member.sync_future.set_result(SyncResult(error, group.protocol_type, group.protocol_name,
                                                         assignment))
            member.sync_future = None
            if error == E.NONE:
                self._reschedule_heartbeat(group, member)

    def _remove_member_and_update(self, group: ClassicGroup, member: ClassicGroupMember, reason: str) -> None:
        self.state.cancel(("heartbeat", group.group_id, member.member_id))
        if member.join_future is not None and not member.join_future.done():
            member.join_future.set_result(JoinResult(E.UNKNOWN_MEMBER_ID, member.member_id))
        if member.sync_future is not None and not member.sync_future.done():
            member.sync_future.set_result(SyncResult(E.UNKNOWN_MEMBER_ID))
        group.remove(member.member_id)
        if group.is_in(GroupState.STABLE, GroupState.COMPLETING_REBALANCE):
            self._prepare_rebalance(group, reason)
        elif group.is_in(GroupState.PREPARING_REBALANCE):
            self._maybe_complete_join(group)

    # -- SyncGroup ----------------------------------------------------------------------------------

    async def sync_group(self, group_id: str, member_id: str, instance_id: str | None, generation_id: int,
                         protocol_type: str | None, protocol_name: str | None,
                         assignments: dict[str, bytes]) -> SyncResult:
        self.state.check_available(group_id)
        group = self.state.groups.get(group_id)
        if group is None:
            return SyncResult(E.UNKNOWN_MEMBER_ID)
        error = self._validate_member(group, member_id, instance_id)
        if error is None and generation_id != group.generation_id:
            error = E.ILLEGAL_GENERATION
        if error is None and ((protocol_type is not None and protocol_type != group.protocol_type)
                              or (protocol_name is not None and protocol_name != group.protocol_name)):
            error = E.INCONSISTENT_GROUP_PROTOCOL
        if error is not None:
            return SyncResult(error)
        member = group.members[member_id]
        if group.is_in(GroupState.PREPARING_REBALANCE):
            return SyncResult(E.REBALANCE_IN_PROGRESS)
        if group.is_in(GroupState.STABLE):
            group.pending_sync_members.discard(member_id)
            return SyncResult(E.NONE, group.protocol_type, group.protocol_name, member.assignment)
        if not group.is_in(GroupState.COMPLETING_REBALANCE):
            return SyncResult(E.UNKNOWN_MEMBER_ID)
        group.pending_sync_members.discard(member_id)
        if member.sync_future is not None and not member.sync_future.done():
            member.sync_future.set_result(SyncResult(E.REBALANCE_IN_PROGRESS))
        member.sync_future = future = self.state.loop.create_future()
        if member_id == group.leader_id:
            await self._apply_leader_assignment(group, assignments)
        return await asyncio.shield(future)

    async def _apply_leader_assignment(self, group: ClassicGroup, assignments: dict[str, bytes]) -> None:
        """The leader's assignment makes the group stable: one runtime operation, so a failed write puts
        the group back in CompletingRebalance (then rebalanced, as Kafka does)."""
        generation = group.generation_id
        pending = {mid: assignments.get(mid, b"") for mid in group.members}

        def stabilize() -> None:
            if group.generation_id != generation or not group.is_in(GroupState.COMPLETING_REBALANCE):
                return
            for member_id, assignment in pending.items():
                if member_id in group.members:
                    group.members[member_id].assignment = assignment
            group.transition_to(GroupState.STABLE, self.state.now_ms())

        try:
            await self.state.store_group(group, pending, change=stabilize)
        except (MoldauError, OSError) as exc:
            log.debug("storing the assignment of group %s failed: %s", group.group_id, exc)
            if group.generation_id == generation and group.is_in(GroupState.COMPLETING_REBALANCE):
                self._propagate_assignment(group, coordinator_append_error(exc))
                self._prepare_rebalance(group, "storing the assignment failed")
            return
        if group.generation_id != generation or not group.is_in(GroupState.STABLE):
            return
        self._propagate_assignment(group, E.NONE)
        log.info("group %s is stable in generation %d", group.group_id, generation)

    # -- Heartbeat and LeaveGroup -------------------------------------------------------------------

    def heartbeat(self, group_id: str, member_id: str, instance_id: str | None, generation_id: int) -> ErrorCode:
        self.state.check_available(group_id)
        group = self.state.groups.get(group_id)
        if group is None or group.is_in(GroupState.EMPTY):
            return E.UNKNOWN_MEMBER_ID
        error = self._validate_member(group, member_id, instance_id)
        if error is not None:
            return error
        if generation_id != group.generation_id:
            return E.ILLEGAL_GENERATION
        self._reschedule_heartbeat(group, group.members[member_id])
        if group.is_in(GroupState.PREPARING_REBALANCE):
            return E.REBALANCE_IN_PROGRESS
        return E.NONE

    def leave_group(self, group_id: str, leaving: list[tuple[str, str | None]]) -> tuple[ErrorCode, list[ErrorCode]]:
        """LeaveGroup for (member id, group instance id) pairs; a static member may leave by instance id."""
        self.state.check_available(group_id)
        group = self.state.groups.get(group_id)
        if group is None or group.is_in(GroupState.DEAD):
            return E.NONE, [E.UNKNOWN_MEMBER_ID] * len(leaving)
        errors = []
        for member_id, instance_id in leaving:
            if instance_id is not None:
                known = group.static_members.get(instance_id)
                if known is None:
                    errors.append(E.UNKNOWN_MEMBER_ID)
                    continue
                if member_id and member_id != known:
                    errors.append(E.FENCED_INSTANCE_ID)
                    continue
                member_id = known
            if member_id in group.pending_members:
                group.pending_members.discard(member_id)
                self.state.cancel(("heartbeat", group_id, member_id))
                self._maybe_complete_join(group)
                errors.append(E.NONE)
                continue
            member = group.members.get(member_id)
            if member is None:
                errors.append(E.UNKNOWN_MEMBER_ID)
                continue
            log.info("member %s left group %s", member_id, group_id)
            self._remove_member_and_update(group, member, f"member {member_id} left the group")
            errors.append(E.NONE)
        return E.NONE, errors

    @staticmethod
    def _validate_member(group: ClassicGroup, member_id: str, instance_id: str | None) -> ErrorCode | None:
        if group.is_in(GroupState.DEAD):
            return E.COORDINATOR_NOT_AVAILABLE
        if instance_id is not None:
            known = group.static_members.get(instance_id)
            if known is not None and known != member_id:
                return E.FENCED_INSTANCE_ID
        if member_id not in group.members:
            return E.UNKNOWN_MEMBER_ID
        return None
