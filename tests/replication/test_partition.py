"""Kafka's Partition rules on one leader replica, without sockets: follower fetch state, ISR expansion,
and the high watermark over the maximal ISR (KIP-497)."""

from __future__ import annotations

import uuid

import pytest

from moldau.broker.errors import ApiError
from moldau.broker.partition import FollowerState, Partition
from moldau.cluster.state import PartitionState
from moldau.protocol.errors import ErrorCode
from moldau.protocol.records import Record, build_batch
from moldau.storage.config import LogConfig
from moldau.storage.log import Log

LAG_MS = 1000


@pytest.fixture
def leader(tmp_path):
    log = Log.open(tmp_path / "t-0", LogConfig())
    partition = Partition("t", 0, uuid.uuid4(), log, node_id=1, replica_lag_time_max_ms=LAG_MS)
    partition.make_leader(PartitionState(replicas=(1, 2, 3), isr=(1, 2), leader=1, leader_epoch=4), now_ms=0)
    yield partition
    log.close()


def _append(partition: Partition, count: int) -> None:
    assert partition.log is not None
    for _ in range(count):
        partition.log.append_as_leader(build_batch([Record(0, 0, None, b"v")]), leader_epoch=4, now_ms=0)


def test_the_high_watermark_waits_for_every_isr_member_and_never_goes_back(leader):
    _append(leader, 5)
    assert leader.log.high_watermark == 0  # follower 2 (ISR) has not fetched under this epoch
    leader.record_follower_fetch(2, 3, now_ms=10)
    assert leader.maybe_increment_high_watermark(10) and leader.log.high_watermark == 3
    leader.record_follower_fetch(2, 2, now_ms=20)  # an older position never lowers it
    assert not leader.maybe_increment_high_watermark(20) and leader.log.high_watermark == 3


def test_an_expansion_counts_at_once_a_shrink_only_when_committed(leader):
    _append(leader, 5)
    leader.record_follower_fetch(2, 5, now_ms=10)
    leader.record_follower_fetch(3, 5, now_ms=10)
    assert leader.isr_expansion() == (1, 2, 3)  # 3 reached the high watermark and this epoch's start
    leader.inflight = leader.state.with_changes(isr=(1, 2, 3))
    assert leader.maximal_isr == {1, 2, 3} and leader.isr == (1, 2)
    leader.update_committed_state(leader.inflight)
    # A pending shrink of 3 keeps 3 in the maximal ISR: the high watermark still waits for it.
    leader.inflight = leader.state.with_changes(isr=(1, 2))
    assert leader.maximal_isr == {1, 2, 3}
    _append(leader, 2)
    leader.record_follower_fetch(2, 7, now_ms=20)
    leader.maybe_increment_high_watermark(20)
    assert leader.log.high_watermark == 5
    leader.update_committed_state(leader.inflight)  # committed: 3 no longer counts
    leader.maybe_increment_high_watermark(20 + 2 * LAG_MS)
    assert leader.log.high_watermark == 7


def test_a_follower_that_stops_catching_up_is_out_of_sync_after_the_lag(leader):
    _append(leader, 3)
    leader.record_follower_fetch(2, 3, now_ms=100)  # caught up at 100
    _append(leader, 1)
    assert leader.out_of_sync_replicas(100 + LAG_MS) == set()
    assert leader.out_of_sync_replicas(101 + LAG_MS) == {2}


def test_caught_up_time_follows_kafkas_replica_update_fetch_state():
    follower = FollowerState(2)
    follower.update_fetch_state(10, now_ms=100, leader_end_offset=10)
    assert follower.last_caught_up_time_ms == 100
    follower.update_fetch_state(10, now_ms=200, leader_end_offset=15)  # behind, but reached the last end
    assert follower.last_caught_up_time_ms == 100
    follower.update_fetch_state(15, now_ms=300, leader_end_offset=20)  # reached the end seen at 200
    assert follower.last_caught_up_time_ms == 200


def test_only_the_leader_serves_and_epochs_fence(leader):
    leader.check_leader_epoch(4)
    with pytest.raises(ApiError) as fenced:
        leader.check_leader_epoch(3)
    assert fenced.value.error_code == ErrorCode.FENCED_LEADER_EPOCH
    leader.make_follower(leader.state.with_changes(leader=2))
    with pytest.raises(ApiError) as refused:
        leader.leader_log()
    assert refused.value.error_code == ErrorCode.NOT_LEADER_OR_FOLLOWER
