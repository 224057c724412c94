"""Replica placement: Kafka's AdminUtils assignment, balanced and rack-aware."""

from __future__ import annotations

import random
from collections import Counter

import pytest

from moldau.cluster.placement import assign_added_partitions, assign_replicas
from moldau.cluster.state import BrokerRegistration
from moldau.errors import ApiError
from moldau.protocol.errors import ErrorCode


def brokers(*racks: str | None) -> list[BrokerRegistration]:
    return [BrokerRegistration(i, (), rack=rack) for i, rack in enumerate(racks)]


def test_fixed_start_matches_kafkas_rack_unaware_assignment() -> None:
    # AdminUtilsTest.testReplicaAssignment: brokers 0..4, 10 partitions, rf 3, fixed start index 0.
    assert assign_replicas(brokers(*[None] * 5), 10, 3, start_index=0) == {
        0: (0, 1, 2), 1: (1, 2, 3), 2: (2, 3, 4), 3: (3, 4, 0), 4: (4, 0, 1),
        5: (0, 2, 3), 6: (1, 3, 4), 7: (2, 4, 0), 8: (3, 0, 1), 9: (4, 1, 2)}


@pytest.mark.parametrize("seed", range(5))
def test_leaders_and_replicas_are_balanced(seed: int) -> None:
    assignment = assign_replicas(brokers(*[None] * 6), 12, 3, rng=random.Random(seed))
    assert all(len(set(replicas)) == 3 for replicas in assignment.values())
    assert set(Counter(replicas[0] for replicas in assignment.values()).values()) == {2}
    assert set(Counter(b for replicas in assignment.values() for b in replicas).values()) == {6}


@pytest.mark.parametrize("seed", range(5))
def test_rack_aware_spreads_each_partition_over_racks(seed: int) -> None:
    cluster = brokers("a", "a", "b", "b", "c", "c")
    racks = {b.broker_id: b.rack for b in cluster}
    assignment = assign_replicas(cluster, 12, 3, rng=random.Random(seed))
    for replicas in assignment.values():
        assert len({racks[b] for b in replicas}) == 3, replicas
    assert set(Counter(replicas[0] for replicas in assignment.values()).values()) == {2}
    assert set(Counter(b for replicas in assignment.values() for b in replicas).values()) == {6}


def test_rack_aware_with_more_replicas_than_racks_uses_every_rack() -> None:
    cluster = brokers("a", "a", "b", "b")
    racks = {b.broker_id: b.rack for b in cluster}
    for replicas in assign_replicas(cluster, 8, 3, start_index=1).values():
        assert len(set(replicas)) == 3 and {racks[b] for b in replicas} == {"a", "b"}


def test_replication_factor_above_broker_count_is_refused_with_kafkas_message() -> None:
    with pytest.raises(ApiError) as error:
        assign_replicas(brokers(None, None), 3, 3)
    assert error.value.error_code == ErrorCode.INVALID_REPLICATION_FACTOR
    assert str(error.value) == ("Unable to replicate the partition 3 time(s): The target replication factor of 3 "
                                "cannot be reached because only 2 broker(s) are registered.")


def test_mixed_rack_information_is_refused() -> None:
    with pytest.raises(ApiError, match="Not all brokers have rack information"):
        assign_replicas(brokers("a", None, "b"), 3, 2)


def test_added_partitions_continue_the_topic() -> None:
    cluster = brokers(*[None] * 5)
    existing = assign_replicas(cluster, 10, 3, start_index=0)
    added = assign_added_partitions(cluster, existing, 5)
    assert sorted(added) == [10, 11, 12, 13, 14]
    assert all(len(set(replicas)) == 3 for replicas in added.values())
    assert sorted(replicas[0] for replicas in added.values()) == [0, 1, 2, 3, 4]
