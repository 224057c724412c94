"""Leader election and ISR changes made by the controller: pure functions on PartitionState.

The rules are KRaft's (PartitionChangeBuilder, ReplicationControlManager), which Kafka applies when a
broker is fenced (its session ended) or unfenced (registered again):

- a broker that is not alive leaves the ISR, except that the ISR never becomes empty: its last member
  stays, so that we know who had the data (a partition with no live ISR member has leader -1, offline);
- a leader is elected from the ISR members that are alive, the first in `replicas` order (the preferred
  replica first);
- when none is alive and `unclean.leader.election.enable` is true, the first live replica becomes leader
  with an ISR of just itself (data may be lost: KIP-106 turned it off by default);
- a broker that comes back and is the last ISR member of an offline partition becomes its leader.

`reconcile` is a fixed point: applied to its own result with the same live brokers, it changes nothing.
"""

from __future__ import annotations

import enum
from collections.abc import Collection, Mapping, Sequence

from moldau.cluster.state import NO_LEADER, PartitionState
from moldau.protocol.errors import ErrorCode


class ElectionType(enum.IntEnum):
    """ElectLeadersRequest's ElectionType (KIP-460)."""

    PREFERRED = 0
    UNCLEAN = 1


def initial_state(replicas: Sequence[int], live: Collection[int]) -> PartitionState:
    """A new partition: every replica in the ISR, led by the first live one (Kafka's new-topic rule)."""
    leader = next((r for r in replicas if r in live), NO_LEADER)
    return PartitionState(replicas=tuple(replicas), isr=tuple(replicas), leader=leader)


def leader_from_isr(replicas: Sequence[int], isr: Collection[int], live: Collection[int]) -> int:
    """The first replica in `replicas` order that is in the ISR and alive, else NO_LEADER."""
    return next((r for r in replicas if r in isr and r in live), NO_LEADER)


def unclean_leader(replicas: Sequence[int], live: Collection[int]) -> int:
    """The first live replica, in the ISR or not, else NO_LEADER."""
    return next((r for r in replicas if r in live), NO_LEADER)


def _surviving_isr(state: PartitionState, live: Collection[int]) -> tuple[int, ...]:
    isr = tuple(r for r in state.isr if r in live)
    if isr or not state.isr:
        return isr
    # Nobody in the ISR is alive: keep the last one that was (the leader if it was in the ISR).
    return (state.leader,) if state.leader in state.isr else (state.isr[0],)


def reconcile(state: PartitionState, live: Collection[int], *, unclean: bool = False) -> PartitionState | None:
    """The successor of `state` given the live brokers, or None when nothing changes.

    Covers a broker's death (leaves the ISR; a new leader when it led) and its return (leads an offline
    partition whose last ISR member it is)."""
    isr = _surviving_isr(state, live)
    leader = state.leader
    if leader not in live or leader not in isr:
        leader = leader_from_isr(state.replicas, isr, live)
        if leader == NO_LEADER and unclean:
            leader = unclean_leader(state.replicas, live)
            if leader != NO_LEADER:
                isr = (leader,)
    if leader == state.leader and isr == state.isr:
        return None
    return state.with_changes(leader=leader, isr=isr)


def on_broker_loss(state: PartitionState, broker_id: int, live: Collection[int], *,
                   unclean: bool = False) -> PartitionState | None:
    """What happens to a partition when `broker_id` dies (`live` may still list it)."""
    return reconcile(state, [b for b in live if b != broker_id], unclean=unclean)


def on_broker_return(state: PartitionState, broker_id: int, live: Collection[int], *,
                     unclean: bool = False) -> PartitionState | None:
    """What happens to a partition when `broker_id` registers again (it rejoins the ISR only through its
    leader's AlterPartition, once caught up; it leads at once only an offline partition it was last in)."""
    return reconcile(state, {*live, broker_id}, unclean=unclean)


def elect(state: PartitionState, live: Collection[int],
          election_type: ElectionType) -> tuple[ErrorCode, PartitionState | None]:
    """ElectLeaders for one partition: (error code, new state or None), with Kafka's error codes.

    PREFERRED: the first replica becomes leader if it is alive and in the ISR (ELECTION_NOT_NEEDED when it
    already leads, PREFERRED_LEADER_NOT_AVAILABLE otherwise). UNCLEAN: only for a partition without a live
    leader; from the live ISR first, then any live replica (ELIGIBLE_LEADERS_NOT_AVAILABLE when none)."""
    if election_type == ElectionType.PREFERRED:
        preferred = state.replicas[0] if state.replicas else NO_LEADER
        if state.leader == preferred:
            return ErrorCode.ELECTION_NOT_NEEDED, None
        if preferred not in live or preferred not in state.isr:
            return ErrorCode.PREFERRED_LEADER_NOT_AVAILABLE, None
        return ErrorCode.NONE, state.with_changes(leader=preferred)
    if state.leader in live:
        return ErrorCode.ELECTION_NOT_NEEDED, None
    new = reconcile(state, live, unclean=True)
    if new is None or new.leader == NO_LEADER:
        return ErrorCode.ELIGIBLE_LEADERS_NOT_AVAILABLE, None
    return ErrorCode.NONE, new


def unclean_enabled(topic_configs: dict[str, str], default: bool) -> bool:
    """The topic's `unclean.leader.election.enable`, else the broker/cluster default."""
    value = topic_configs.get("unclean.leader.election.enable")
    return default if value is None else value.strip().lower() == "true"


def imbalanced_partitions(partitions: Mapping[tuple[str, int], PartitionState], live: Collection[int],
                          percentage: int) -> list[tuple[str, int]]:
    """Kafka's checkAndTriggerAutoLeaderRebalance (ZooKeeper-mode KafkaController): group partitions by their
    preferred replica; for each broker whose ratio of preferred partitions led by someone else exceeds
    `percentage` / 100, the partitions it could lead now (alive and in the ISR)."""
    by_preferred: dict[int, list[tuple[tuple[str, int], PartitionState]]] = {}
    for tp, state in partitions.items():
        if state.replicas:
            by_preferred.setdefault(state.replicas[0], []).append((tp, state))
    result: list[tuple[str, int]] = []
    for broker, owned in sorted(by_preferred.items()):
        not_led = [(tp, s) for tp, s in owned if s.leader != broker]
        if not owned or len(not_led) / len(owned) <= percentage / 100:
            continue
        result.extend(tp for tp, s in not_led if broker in live and broker in s.isr)
    return sorted(result)
