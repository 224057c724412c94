"""Given the KIP-848 server assignors, when members and topics change, then `uniform` balances partition
counts and keeps partitions where they were, and `range` hands out contiguous ranges per topic."""

from __future__ import annotations

import itertools

import pytest

from moldau.coordinator.assignors import MemberSpec, RangeAssignor, UniformAssignor


def counts(assignment) -> list[int]:
    return sorted(sum(len(ps) for ps in parts.values()) for parts in assignment.values())


def covered(assignment) -> list[tuple[str, int]]:
    return sorted((t, p) for parts in assignment.values() for t, ps in parts.items() for p in ps)


@pytest.mark.parametrize("members,partitions", list(itertools.product([1, 2, 3, 4, 7], [1, 6, 10])))
def test_uniform_balances_and_covers_every_partition_once(members, partitions):
    specs = {f"m{i}": MemberSpec({"a", "b"}) for i in range(members)}
    result = UniformAssignor().assign(specs, {"a": partitions, "b": 3})
    assert covered(result) == sorted([("a", p) for p in range(partitions)] + [("b", p) for p in range(3)])
    assert counts(result)[-1] - counts(result)[0] <= 1


def test_uniform_with_different_subscriptions_gives_topics_only_to_subscribers():
    specs = {"x": MemberSpec({"a"}), "y": MemberSpec({"a", "b"}), "z": MemberSpec({"b"})}
    result = UniformAssignor().assign(specs, {"a": 4, "b": 2})
    assert "b" not in result["x"] and "a" not in result["z"]
    assert covered(result) == [("a", p) for p in range(4)] + [("b", 0), ("b", 1)]
    assert counts(result) == [2, 2, 2]


def test_uniform_is_sticky_when_a_member_joins_and_leaves():
    topics = {"t": 6}
    first = UniformAssignor().assign({"a": MemberSpec({"t"}), "b": MemberSpec({"t"})}, topics)
    joined = UniformAssignor().assign({m: MemberSpec({"t"}, first.get(m, {})) for m in ("a", "b", "c")}, topics)
    # Each old member only gives up one partition to the newcomer; nothing else moves.
    for m in ("a", "b"):
        assert joined[m]["t"] <= first[m]["t"] and len(joined[m]["t"]) == 2
    left = UniformAssignor().assign({m: MemberSpec({"t"}, joined[m]) for m in ("a", "c")}, topics)
    for m in ("a", "c"):
        assert joined[m]["t"] <= left[m]["t"] and len(left[m]["t"]) == 3


def test_uniform_drops_partitions_of_unsubscribed_or_shrunk_topics():
    specs = {"a": MemberSpec({"t"}, {"t": {0, 1, 7}, "gone": {0}})}
    assert UniformAssignor().assign(specs, {"t": 3}) == {"a": {"t": {0, 1, 2}}}


def test_range_gives_contiguous_ranges_per_topic_in_member_order():
    specs = {m: MemberSpec({"a", "b"}) for m in ("m2", "m1", "m3")}
    result = RangeAssignor().assign(specs, {"a": 7, "b": 3})
    assert result == {"m1": {"a": {0, 1, 2}, "b": {0}}, "m2": {"a": {3, 4}, "b": {1}}, "m3": {"a": {5, 6}, "b": {2}}}


def test_range_with_more_members_than_partitions_leaves_some_empty():
    specs = {m: MemberSpec({"t"}) for m in ("a", "b", "c")}
    assert RangeAssignor().assign(specs, {"t": 2}) == {"a": {"t": {0}}, "b": {"t": {1}}, "c": {}}
