"""Partition reassignment (KIP-455): pure functions on PartitionState, as KRaft's ReplicationControlManager,
PartitionReassignmentReplicas and PartitionReassignmentRevert compute them.

A reassignment to `target` writes, in one partition state:

- `replicas` = target + the current replicas not in target (these are `removing`, kept at the end so the
  target's first replica is the preferred leader once done); the replicas of target not yet current are
  `adding`. The ISR and the leader do not change: the adding replicas start as followers and catch up by
  fetching; their leader adds them to the ISR (AlterPartition) once they reach its high watermark.
- Once every target replica is in the ISR the reassignment completes (`maybe_complete`, applied by the
  controller on every change, or at once by the writer when the target is already in sync): replicas =
  target, ISR = ISR ∩ target, adding/removing cleared, and a new leader from the target (preferred order)
  when the leader was being removed. The removed replicas see that they are no longer replicas, stop
  fetching and delete their logs (KRaft's StopReplica with deletion).
- A new reassignment of a partition already being reassigned starts from its current replicas, as KRaft's
  changePartitionReassignment does.
- Cancelling (`cancel`, a null target in AlterPartitionReassignments) reverts: the adding replicas leave
  (KRaft's PartitionReassignmentRevert).
"""

from __future__ import annotations

from collections.abc import Collection, Sequence

from moldau.cluster.state import NO_LEADER, PartitionState
from moldau.errors import ApiError
from moldau.protocol.errors import ErrorCode


def in_progress(state: PartitionState) -> bool:
    return bool(state.adding or state.removing)


def original_replicas(state: PartitionState) -> tuple[int, ...]:
    """The replicas before the ongoing reassignment (KRaft's PartitionReassignmentRevert)."""
    return tuple(r for r in state.replicas if r not in state.adding)


def target_replicas(state: PartitionState) -> tuple[int, ...]:
    """The replicas the ongoing reassignment moves to (KRaft's `replicas - removing`)."""
    return tuple(r for r in state.replicas if r not in state.removing)


def validate_target(target: Sequence[int], current: Sequence[int], live: Collection[int],
                    allow_replication_factor_change: bool = True) -> None:
    """KRaft's validateManualPartitionAssignment plus KIP-860's AllowReplicationFactorChange."""
    if not target:
        raise ApiError(ErrorCode.INVALID_REPLICA_ASSIGNMENT,
                       "The manual partition assignment includes an empty replica list.")
    seen: set[int] = set()
    for broker in target:
        if broker in seen:
            raise ApiError(ErrorCode.INVALID_REPLICA_ASSIGNMENT,
                           f"The manual partition assignment includes the broker {broker} more than once.")
        seen.add(broker)
        if broker not in live:
            raise ApiError(ErrorCode.INVALID_REPLICA_ASSIGNMENT,
                           f"The manual partition assignment includes broker {broker}, but no such broker "
                           f"is registered.")
    if not allow_replication_factor_change and len(target) != len(current):
        raise ApiError(ErrorCode.INVALID_REPLICATION_FACTOR,
                       f"The replication factor is changed from {len(current)} to {len(target)} but "
                       f"AllowReplicationFactorChange is false.")


def revert(state: PartitionState, live: Collection[int]) -> tuple[PartitionState, bool]:
    """KRaft's PartitionReassignmentRevert: the state without the ongoing reassignment (the adding replicas
    leave the replicas and the ISR; the leader is elected again if it was one of them), and whether that
    is an *unclean* revert (every in-sync replica was an adding one: the first remaining replica is put in
    the ISR). Not yet a successor (epochs unchanged)."""
    replicas = original_replicas(state)
    isr = tuple(r for r in state.isr if r not in state.adding)
    unclean = not isr
    if unclean:
        isr = replicas[:1]
    leader = state.leader
    if leader not in replicas or leader not in isr:
        leader = next((r for r in replicas if r in isr and r in live), NO_LEADER)
    return PartitionState(replicas=replicas, isr=isr, leader=leader, leader_epoch=state.leader_epoch,
                          partition_epoch=state.partition_epoch), unclean


def start(state: PartitionState, target: Sequence[int], live: Collection[int]) -> PartitionState:
    """The successor state that starts (or changes) a reassignment to `target` (KRaft's
    changePartitionReassignment), completed at once when the target is already in sync (a reorder, a
    shrink to in-sync replicas).

    As in KRaft, a reassignment of a partition already being reassigned starts from its current replicas
    (no revert): replicas no longer wanted become `removing`, and a target replica still catching up stays
    `adding`."""
    target = tuple(target)
    # KRaft keeps both as sorted sets: the removing replicas go after the target in ascending id order.
    removing = tuple(sorted(r for r in state.replicas if r not in target))
    adding = tuple(sorted(r for r in target if r not in state.replicas or r in state.adding))
    moving = PartitionState(replicas=target + removing, isr=state.isr, leader=state.leader,
                            leader_epoch=state.leader_epoch, partition_epoch=state.partition_epoch,
                            adding=adding, removing=removing)
    done = _completed(moving, live)
    new = done if done is not None else moving
    return state.with_changes(replicas=new.replicas, isr=new.isr, leader=new.leader, adding=new.adding,
                              removing=new.removing)


def cancel(state: PartitionState, live: Collection[int], *, unclean_enabled: bool = False,
           name: str = "") -> PartitionState:
    """The successor state of cancelling the ongoing reassignment (KRaft's cancelPartitionReassignment):
    NO_REASSIGNMENT_IN_PROGRESS if none; INVALID_REPLICA_ASSIGNMENT when reverting would need an unclean
    election that the topic does not allow."""
    if not in_progress(state):
        raise ApiError(ErrorCode.NO_REASSIGNMENT_IN_PROGRESS, "No partition reassignment is in progress.")
    base, unclean = revert(state, live)
    if unclean and not unclean_enabled:
        raise ApiError(ErrorCode.INVALID_REPLICA_ASSIGNMENT, f"Unable to revert partition assignment for {name} "
                                                             f"because it would require an unclean leader election.")
    return state.with_changes(replicas=base.replicas, isr=base.isr, leader=base.leader, adding=(), removing=())


def _completed(state: PartitionState, live: Collection[int]) -> PartitionState | None:
    """KRaft's `maybeCompleteReassignment`: when every target replica is in the ISR, the partition keeps just
    the target; None while some replica is still catching up (or no live leader would be left)."""
    if not in_progress(state):
        return None
    target = target_replicas(state)
    if not all(r in state.isr for r in target):
        return None
    isr = tuple(r for r in state.isr if r in target)
    leader = state.leader
    if leader not in target:
        leader = next((r for r in target if r in isr and r in live), NO_LEADER)
        if leader == NO_LEADER:
            return None
    return PartitionState(replicas=target, isr=isr, leader=leader, leader_epoch=state.leader_epoch,
                          partition_epoch=state.partition_epoch)


def maybe_complete(state: PartitionState, live: Collection[int]) -> PartitionState | None:
    """The successor that completes the ongoing reassignment, or None when it can't complete yet."""
    done = _completed(state, live)
    if done is None:
        return None
    return state.with_changes(replicas=done.replicas, isr=done.isr, leader=done.leader, adding=(), removing=())
