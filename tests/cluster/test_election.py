"""Leader election and ISR changes (KRaft's rules), as pure functions."""

from __future__ import annotations

from moldau.cluster.election import (
    ElectionType,
    elect,
    initial_state,
    on_broker_loss,
    on_broker_return,
    reconcile,
)
from moldau.cluster.state import NO_LEADER, PartitionState
from moldau.protocol.errors import ErrorCode

STATE = PartitionState(replicas=(1, 2, 3), isr=(1, 2, 3), leader=1, leader_epoch=4, partition_epoch=7)


def test_follower_loss_shrinks_the_isr_and_keeps_the_leader_epoch() -> None:
    new = on_broker_loss(STATE, 2, {1, 2, 3})
    assert new is not None and (new.leader, new.isr) == (1, (1, 3))
    assert (new.leader_epoch, new.partition_epoch) == (4, 8)


def test_leader_loss_elects_the_next_isr_member_in_replica_order() -> None:
    new = on_broker_loss(STATE, 1, {1, 2, 3})
    assert new is not None and (new.leader, new.isr, new.leader_epoch) == (2, (2, 3), 5)
    assert reconcile(new, {2, 3}) is None  # a fixed point


def test_the_isr_never_becomes_empty_and_the_partition_goes_offline() -> None:
    state = PartitionState(replicas=(1, 2), isr=(1,), leader=1)
    new = on_broker_loss(state, 1, {1, 2})
    assert new is not None and (new.leader, new.isr) == (NO_LEADER, (1,))
    assert reconcile(new, {2}) is None


def test_unclean_election_picks_a_live_out_of_sync_replica() -> None:
    offline = PartitionState(replicas=(1, 2), isr=(1,), leader=NO_LEADER, leader_epoch=3, partition_epoch=3)
    new = reconcile(offline, {2}, unclean=True)
    assert new is not None and (new.leader, new.isr, new.leader_epoch) == (2, (2,), 4)


def test_the_last_isr_member_leads_again_when_it_returns() -> None:
    offline = PartitionState(replicas=(1, 2), isr=(1,), leader=NO_LEADER)
    new = on_broker_return(offline, 1, {2})
    assert new is not None and (new.leader, new.isr) == (1, (1,))


def test_a_returning_follower_does_not_rejoin_the_isr_by_itself() -> None:
    shrunk = PartitionState(replicas=(1, 2, 3), isr=(1, 3), leader=1)
    assert on_broker_return(shrunk, 2, {1, 3}) is None


def test_preferred_election() -> None:
    moved = PartitionState(replicas=(1, 2, 3), isr=(1, 2, 3), leader=2)
    code, new = elect(moved, {1, 2, 3}, ElectionType.PREFERRED)
    assert code == ErrorCode.NONE and new is not None and new.leader == 1
    assert elect(STATE, {1, 2, 3}, ElectionType.PREFERRED) == (ErrorCode.ELECTION_NOT_NEEDED, None)
    assert elect(moved, {2, 3}, ElectionType.PREFERRED) == (ErrorCode.PREFERRED_LEADER_NOT_AVAILABLE, None)
    out_of_isr = PartitionState(replicas=(1, 2), isr=(2,), leader=2)
    assert elect(out_of_isr, {1, 2}, ElectionType.PREFERRED)[0] == ErrorCode.PREFERRED_LEADER_NOT_AVAILABLE


def test_unclean_elect_leaders() -> None:
    offline = PartitionState(replicas=(1, 2), isr=(1,), leader=NO_LEADER)
    code, new = elect(offline, {2}, ElectionType.UNCLEAN)
    assert code == ErrorCode.NONE and new is not None and new.leader == 2
    assert elect(offline, set(), ElectionType.UNCLEAN)[0] == ErrorCode.ELIGIBLE_LEADERS_NOT_AVAILABLE
    assert elect(STATE, {1}, ElectionType.UNCLEAN)[0] == ErrorCode.ELECTION_NOT_NEEDED


def test_initial_state_leads_on_the_first_live_replica() -> None:
    assert initial_state((3, 1, 2), {1, 2}) == PartitionState(replicas=(3, 1, 2), isr=(3, 1, 2), leader=1)
