"""Server-side partition assignors of the consumer group protocol (KIP-848): `uniform` and `range`.

An assignor maps the group's members (their subscribed topics and current target assignment) and the
subscribed topics' partition counts to a new target assignment. Both are pure functions, as Kafka's
`ConsumerGroupPartitionAssignor`s are.

>>> topics = {"t": 4}
>>> members = {"a": MemberSpec({"t"}), "b": MemberSpec({"t"})}
>>> RangeAssignor().assign(members, topics)
{'a': {'t': {0, 1}}, 'b': {'t': {2, 3}}}
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Protocol

# member id -> topic name -> partitions
Assignment = dict[str, dict[str, set[int]]]


@dataclass(slots=True)
class MemberSpec:
    subscribed_topics: set[str]
    assignment: dict[str, set[int]] = field(default_factory=dict)  # the current target assignment


class PartitionAssignor(Protocol):
    name: str

    def assign(self, members: dict[str, MemberSpec], topics: dict[str, int]) -> Assignment: ...


class UniformAssignor:
    """Kafka's `UniformAssignor`: balance partition counts across members, keeping current owners where it can.

    Members keep their previous partitions up to their quota (stickiness), the rest go to the least loaded
    subscribed member, then partitions move from the most to the least loaded eligible member until counts
    differ by at most one wherever subscriptions allow it.
    """

    name = "uniform"

    def assign(self, members: dict[str, MemberSpec], topics: dict[str, int]) -> Assignment:
        result: Assignment = {m: {} for m in members}
        if not members:
            return result
        eligible = _eligible(members, topics)
        partitions = [(t, p) for t in sorted(eligible) for p in range(topics[t])]
        load = {m: 0 for m in members}
        owner: dict[tuple[str, int], str] = {}
        quota = _quotas(members, len(partitions))
        for member_id in sorted(members):
            spec = members[member_id]
            for topic in sorted(spec.assignment):
                if topic not in spec.subscribed_topics or topic not in eligible:
                    continue
                for p in sorted(spec.assignment[topic]):
                    if p < topics[topic] and (topic, p) not in owner and load[member_id] < quota[member_id]:
                        owner[topic, p] = member_id
                        load[member_id] += 1
        for tp in partitions:
            if tp not in owner:
                target = min(eligible[tp[0]], key=lambda m: (load[m], m))
                owner[tp] = target
                load[target] += 1
        _balance(owner, load, eligible)
        for (topic, p), member_id in owner.items():
            result[member_id].setdefault(topic, set()).add(p)
        return result


class RangeAssignor:
    """Kafka's server-side `RangeAssignor`: per topic, contiguous ranges to the subscribed members in id order,
    the first `partitions % members` members getting one more (co-partitioned topics line up)."""

    name = "range"

    def assign(self, members: dict[str, MemberSpec], topics: dict[str, int]) -> Assignment:
        result: Assignment = {m: {} for m in members}
        for topic, subscribers in sorted(_eligible(members, topics).items()):
            ordered = sorted(subscribers)
            count = topics[topic]
            base, extra = divmod(count, len(ordered))
            start = 0
            for i, member_id in enumerate(ordered):
                size = base + (1 if i < extra else 0)
                if size:
                    result[member_id][topic] = set(range(start, start + size))
                start += size
        return result


ASSIGNORS: dict[str, PartitionAssignor] = {a.name: a for a in (UniformAssignor(), RangeAssignor())}


def _eligible(members: dict[str, MemberSpec], topics: dict[str, int]) -> dict[str, list[str]]:
    """topic -> members subscribed to it (only topics that exist)."""
    result: dict[str, list[str]] = {}
    for member_id, spec in members.items():
        for topic in spec.subscribed_topics:
            if topics.get(topic, 0) > 0:
                result.setdefault(topic, []).append(member_id)
    return result


def _quotas(members: dict[str, MemberSpec], total: int) -> dict[str, int]:
    """Upper bound of partitions a member keeps from its previous assignment: ceil(total / members)."""
    ceil = -(-total // len(members))
    return {m: ceil for m in members}


def _balance(owner: dict[tuple[str, int], str], load: dict[str, int], eligible: dict[str, list[str]]) -> None:
    moved = True
    while moved:
        moved = False
        for tp in sorted(owner, key=lambda tp: (-load[owner[tp]], tp)):
            current = owner[tp]
            target = min(eligible[tp[0]], key=lambda m: (load[m], m))
            if load[target] < load[current] - 1:
                owner[tp] = target
                load[current] -= 1
                load[target] += 1
                moved = True
                break
