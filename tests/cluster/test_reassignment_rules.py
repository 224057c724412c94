"""KIP-455 reassignment and the preferred-leader rebalance as pure rules (cluster/reassignment.py,
election.imbalanced_partitions), as KRaft's PartitionReassignmentReplicas / Revert compute them."""

from __future__ import annotations

import pytest

from moldau.cluster import reassignment
from moldau.cluster.election import imbalanced_partitions
from moldau.cluster.state import PartitionState
from moldau.errors import ApiError
from moldau.protocol.errors import ErrorCode

LIVE = {1, 2, 3, 4}
STATE = PartitionState(replicas=(1, 2), isr=(1, 2), leader=1, leader_epoch=3, partition_epoch=7)


def test_start_keeps_leader_and_isr_and_lists_adding_and_removing():
    moving = reassignment.start(STATE, [2, 3], LIVE)
    assert moving.replicas == (2, 3, 1)  # target first, removing last
    assert (moving.adding, moving.removing) == ((3,), (1,))
    assert (moving.leader, moving.isr, moving.leader_epoch, moving.partition_epoch) == (1, (1, 2), 3, 8)
    assert reassignment.maybe_complete(moving, LIVE) is None  # 3 is not in sync yet


def test_completes_once_target_in_sync_and_moves_leader_off_a_removed_replica():
    moving = reassignment.start(STATE, [2, 3], LIVE)
    caught_up = moving.with_changes(isr=(1, 2, 3))
    done = reassignment.maybe_complete(caught_up, LIVE)
    assert done is not None
    assert (done.replicas, done.isr, done.leader, done.adding, done.removing) == ((2, 3), (2, 3), 2, (), ())
    assert done.leader_epoch == caught_up.leader_epoch + 1


def test_target_already_in_sync_completes_at_once():
    shrunk = reassignment.start(STATE, [2], LIVE)
    assert (shrunk.replicas, shrunk.isr, shrunk.leader, shrunk.adding, shrunk.removing) == ((2,), (2,), 2, (), ())
    reordered = reassignment.start(STATE, [2, 1], LIVE)
    assert (reordered.replicas, reordered.leader, reordered.adding) == ((2, 1), 1, ())


def test_cancel_reverts_and_a_new_target_starts_from_the_current_replicas():
    moving = reassignment.start(STATE, [3, 4], LIVE)
    assert (moving.replicas, moving.adding, moving.removing) == ((3, 4, 1, 2), (3, 4), (1, 2))
    moving = moving.with_changes(isr=(1, 2, 3))
    cancelled = reassignment.cancel(moving, LIVE)
    assert (cancelled.replicas, cancelled.isr, cancelled.leader, cancelled.adding) == ((1, 2), (1, 2), 1, ())
    replaced = reassignment.start(moving, [2, 4], LIVE)  # KRaft: from the current replicas, no revert
    assert (replaced.replicas, replaced.adding, replaced.removing, replaced.isr) == \
        ((2, 4, 1, 3), (4,), (1, 3), (1, 2, 3))
    with pytest.raises(ApiError) as info:
        reassignment.cancel(STATE, LIVE)
    assert info.value.error_code == ErrorCode.NO_REASSIGNMENT_IN_PROGRESS


def test_a_revert_that_needs_an_unclean_election_is_refused_unless_enabled():
    # Every in-sync replica is an adding one (the original replicas died after it caught up).
    moving = reassignment.start(STATE, [3], LIVE).with_changes(isr=(3,), leader=3)
    assert moving.adding == (3,) and moving.removing == (1, 2)
    with pytest.raises(ApiError) as info:
        reassignment.cancel(moving, LIVE)
    assert info.value.error_code == ErrorCode.INVALID_REPLICA_ASSIGNMENT
    reverted = reassignment.cancel(moving, LIVE, unclean_enabled=True)
    assert (reverted.replicas, reverted.isr, reverted.leader) == ((1, 2), (1,), 1)


@pytest.mark.parametrize(("target", "code"), [
    ([], ErrorCode.INVALID_REPLICA_ASSIGNMENT),
    ([2, 2], ErrorCode.INVALID_REPLICA_ASSIGNMENT),
    ([2, 9], ErrorCode.INVALID_REPLICA_ASSIGNMENT),
])
def test_invalid_targets(target, code):
    with pytest.raises(ApiError) as info:
        reassignment.validate_target(target, (1, 2), LIVE)
    assert info.value.error_code == code


def test_replication_factor_change_refused_when_not_allowed():
    with pytest.raises(ApiError) as info:
        reassignment.validate_target([1, 2, 3], (1, 2), LIVE, allow_replication_factor_change=False)
    assert info.value.error_code == ErrorCode.INVALID_REPLICATION_FACTOR


def test_imbalance_over_the_percentage_elects_preferred_where_possible():
    partitions = {
        ("t", 0): PartitionState(replicas=(1, 2), isr=(1, 2), leader=2),  # 1 prefers, 2 leads
        ("t", 1): PartitionState(replicas=(1, 2), isr=(1, 2), leader=1),
        ("t", 2): PartitionState(replicas=(2, 1), isr=(2, 1), leader=2),
        ("t", 3): PartitionState(replicas=(1, 3), isr=(3,), leader=3),  # 1 not in sync: not a candidate
    }
    assert imbalanced_partitions(partitions, {1, 2, 3}, 10) == [("t", 0)]
    assert imbalanced_partitions(partitions, {1, 2, 3}, 70) == []  # 2 of 3 (67%) not led by 1: under 70%


def test_throttled_replica_lists_and_the_quota_rate():
    from moldau.broker.replication_quota import FOLLOWER_REPLICAS, ReplicationQuota, is_throttled

    configs = {FOLLOWER_REPLICAS: "0:3, 1:2"}
    assert is_throttled(configs, FOLLOWER_REPLICAS, 0, 3) and is_throttled(configs, FOLLOWER_REPLICAS, 1, 2)
    assert not is_throttled(configs, FOLLOWER_REPLICAS, 0, 2) and not is_throttled({}, FOLLOWER_REPLICAS, 0, 3)
    assert is_throttled({FOLLOWER_REPLICAS: "*"}, FOLLOWER_REPLICAS, 7, 1)
    now = [100.0]
    quota = ReplicationQuota(lambda: 1000, window_num=3, window_size_s=1.0, clock=lambda: now[0])
    quota.record(1500)  # over at least (3 - 1) windows: 750 B/s
    assert not quota.exceeded()
    quota.record(1000)  # 1250 B/s
    assert quota.exceeded()
    now[0] += 1.5  # 1 full window kept: padded by one more, 2.5 s: 1000 B/s, not over
    assert quota.rate() == 1000 and not quota.exceeded()
    now[0] += 4.0  # the samples age out of the 3 windows
    assert quota.rate() == 0 and not quota.exceeded()
