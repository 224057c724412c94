"""One topic partition as this broker sees it (Kafka's `kafka.cluster.Partition`): its replicas, leader,
epochs and ISR (a :class:`PartitionState` from the cluster), the local log if this broker hosts a replica,
and, on the leader, what each follower has fetched (Kafka's `Replica`).

Leadership is the organising concept: every handler asks the partition whether this broker leads it.
A partition with no state applied (`state is None`) is the single-broker case: led here at epoch 0, the
ISR is this broker alone, and the high watermark follows the log end offset.

The ISR a leader uses for the high watermark is Kafka's *maximal ISR* (KIP-497, `Partition.maximalIsr`):
while an AlterPartition is in flight it is the union of the committed ISR and the proposed one, so an
expansion counts at once (waiting for one more replica is only more conservative) and a shrink counts
only once the store committed it. `min.insync.replicas` is checked against the committed ISR.
"""

from __future__ import annotations

import asyncio
import enum
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field

from moldau.broker.errors import ApiError
from moldau.cluster.state import NO_LEADER, PartitionState
from moldau.protocol.errors import ErrorCode
from moldau.storage.log import Log


class Transition(enum.Enum):
    """What `ReplicaManager.apply_partition_state` did to this broker's replica."""

    BECAME_LEADER = "became_leader"
    BECAME_FOLLOWER = "became_follower"
    UNCHANGED = "unchanged"
    REMOVED = "removed"


@dataclass(slots=True)
class FollowerState:
    """The leader's view of one follower (Kafka's `Replica` / `ReplicaState`)."""

    broker_id: int
    log_end_offset: int = -1  # unknown until its first fetch under this leader epoch
    last_caught_up_time_ms: int = 0
    last_fetch_leader_log_end_offset: int = -1
    last_fetch_time_ms: int = 0

    def update_fetch_state(self, fetch_offset: int, now_ms: int, leader_end_offset: int) -> None:
        """Kafka's `Replica.updateFetchStateOrThrow`: a follower is caught up at the time of a fetch that
        reached the leader's end, or at the time of its previous fetch if it has now reached the leader end
        offset of that previous fetch."""
        if fetch_offset >= leader_end_offset:
            self.last_caught_up_time_ms = max(self.last_caught_up_time_ms, now_ms)
        elif fetch_offset >= self.last_fetch_leader_log_end_offset:
            self.last_caught_up_time_ms = max(self.last_caught_up_time_ms, self.last_fetch_time_ms)
        self.log_end_offset = fetch_offset
        self.last_fetch_leader_log_end_offset = leader_end_offset
        self.last_fetch_time_ms = now_ms

    def is_caught_up(self, leader_end_offset: int, now_ms: int, max_lag_ms: int) -> bool:
        """Kafka's `ReplicaState.isCaughtUp`: at the leader's end, or caught up within `replica.lag.time.max.ms`."""
        return leader_end_offset == self.log_end_offset or now_ms - self.last_caught_up_time_ms <= max_lag_ms


@dataclass(slots=True, eq=False)
class Partition:
    topic: str
    index: int
    topic_id: uuid.UUID
    log: Log | None  # None: no replica of this partition lives on this broker
    node_id: int = -1
    state: PartitionState | None = None  # None: single-broker mode
    # Offsets up to which fetches wait (consumers, followers): woken by appends and high watermark moves.
    waiters: set[asyncio.Future[None]] = field(default_factory=set)
    # acks=all produces waiting for the high watermark (Kafka's DelayedProduce), woken by HW and role changes.
    hw_waiters: set[asyncio.Future[None]] = field(default_factory=set)
    flush_lock: asyncio.Lock = field(default_factory=asyncio.Lock)  # one fsync at a time (group commit)
    state_lock: asyncio.Lock = field(default_factory=asyncio.Lock)  # one leadership transition at a time
    followers: dict[int, FollowerState] = field(default_factory=dict)
    # The AlterPartition in flight (Kafka's PendingExpandIsr / PendingShrinkIsr), or None.
    inflight: PartitionState | None = None
    leader_epoch_start_offset: int = 0
    replica_lag_time_max_ms: int = 30000
    # Kafka's `isReplicaIsrEligible`: only a live (registered) broker may join the ISR or hold back the high
    # watermark while it catches up; a dead follower's last fetch must not bring it back.
    is_eligible: Callable[[int], bool] = lambda replica_id: True
    # The high watermark of replication-offset-checkpoint, kept when single-broker mode moved it to the log
    # end offset at start: the first partition state applied goes back to it (Kafka restores it on start).
    checkpointed_high_watermark: int | None = None

    # -- role ------------------------------------------------------------------------------------

    @property
    def leader_epoch(self) -> int:
        return 0 if self.state is None else self.state.leader_epoch

    @property
    def is_leader(self) -> bool:
        return self.log is not None and (self.state is None or self.state.leader == self.node_id)

    @property
    def is_follower(self) -> bool:
        return (self.log is not None and self.state is not None and self.state.leader != self.node_id
                and self.node_id in self.state.replicas)

    @property
    def leader_id(self) -> int:
        return self.node_id if self.state is None else self.state.leader

    @property
    def isr(self) -> tuple[int, ...]:
        """The committed ISR (Kafka's `partitionState.isr`): what `min.insync.replicas` counts."""
        return (self.node_id,) if self.state is None else self.state.isr

    @property
    def replicas(self) -> tuple[int, ...]:
        return (self.node_id,) if self.state is None else self.state.replicas

    @property
    def maximal_isr(self) -> frozenset[int]:
        """KIP-497's maximal ISR: the committed ISR plus a proposed expansion; a proposed shrink not yet."""
        committed = frozenset(self.isr)
        return committed if self.inflight is None else committed | frozenset(self.inflight.isr)

    def leader_log(self) -> Log:
        """The log, if this broker leads the partition (Kafka's `localLogWithEpochOrThrow`)."""
        if not self.is_leader:
            raise ApiError(ErrorCode.NOT_LEADER_OR_FOLLOWER,
                           f"Broker {self.node_id} is not the leader of {self.topic}-{self.index}.")
        assert self.log is not None
        return self.log

    def readable_log(self, followers_too: bool) -> Log:
        """The log a consumer's Fetch reads: the leader's, or, `followers_too` (KIP-392: a Fetch v11+, which
        may have been sent here as the preferred read replica), a follower's up to its high watermark."""
        if followers_too and self.is_follower:
            assert self.log is not None
            return self.log
        return self.leader_log()

    def check_leader_epoch(self, requested: int) -> None:
        """KIP-320: a client that knows a newer epoch than ours is ahead of us; an older one is fenced."""
        if requested == -1 or requested == self.leader_epoch:
            return
        if requested > self.leader_epoch:
            raise ApiError(ErrorCode.UNKNOWN_LEADER_EPOCH)
        raise ApiError(ErrorCode.FENCED_LEADER_EPOCH)

    # -- transitions (Kafka's Partition.makeLeader / makeFollower) ---------------------------------

    def make_leader(self, state: PartitionState, now_ms: int) -> None:
        """Lead from here: the new epoch starts at our log end offset, and every follower's fetch state
        starts unknown (an ISR member counts as caught up now, so it is not shrunk before its first fetch)."""
        assert self.log is not None
        self.state = state
        self.inflight = None
        end = self.log.log_end_offset
        self.leader_epoch_start_offset = end
        # Kafka's maybeAssignEpochStartOffset: OffsetsForLeaderEpoch for the previous epoch now ends here,
        # which is where a follower with a divergent tail truncates to (KIP-101/279).
        self.log.leader_epoch_cache.assign(state.leader_epoch, end)
        self.followers = {
            replica: FollowerState(replica, last_caught_up_time_ms=now_ms if replica in state.isr else 0,
                                   last_fetch_leader_log_end_offset=end, last_fetch_time_ms=now_ms)
            for replica in state.replicas if replica != self.node_id
        }
        self.maybe_increment_high_watermark(now_ms)

    def make_follower(self, state: PartitionState) -> None:
        """Stop serving clients; the replica fetcher truncates and then fetches from the leader."""
        self.state = state
        self.inflight = None
        self.followers = {}

    def update_committed_state(self, state: PartitionState) -> None:
        """Same leader and epoch, new ISR or replicas (an AlterPartition or reassignment committed)."""
        self.state = state
        self.inflight = None
        for replica in state.replicas:
            if replica != self.node_id and replica not in self.followers:
                self.followers[replica] = FollowerState(replica)
        for replica in list(self.followers):
            if replica not in state.replicas:
                del self.followers[replica]

    def stop_hosting(self, state: PartitionState) -> None:
        self.state = state
        self.inflight = None
        self.followers = {}

    # -- leader: followers, ISR and high watermark ----------------------------------------------

    def record_follower_fetch(self, replica_id: int, fetch_offset: int, now_ms: int) -> None:
        follower = self.followers.get(replica_id)
        if follower is None or self.state is None:
            raise ApiError(ErrorCode.NOT_LEADER_OR_FOLLOWER,
                           f"Broker {replica_id} is not a replica of {self.topic}-{self.index}.")
        assert self.log is not None
        follower.update_fetch_state(fetch_offset, now_ms, self.log.log_end_offset)

    def isr_expansion(self) -> tuple[int, ...] | None:
        """Kafka's `maybeExpandIsr`: replicas to add, each at or past the high watermark and past the start
        of this leader epoch (`isFollowerInSync`); None when none or an ISR change is in flight."""
        if self.inflight is not None or self.state is None or self.log is None:
            return None
        high_watermark = self.log.high_watermark
        joining = [r for r, f in self.followers.items() if r not in self.state.isr and self.is_eligible(r) and
                   f.log_end_offset >= high_watermark and f.log_end_offset >= self.leader_epoch_start_offset]
        return tuple(self.state.isr) + tuple(sorted(joining)) if joining else None

    def out_of_sync_replicas(self, now_ms: int) -> set[int]:
        """Kafka's `getOutOfSyncReplicas`: ISR followers not caught up within `replica.lag.time.max.ms`."""
        if self.state is None or self.log is None or self.inflight is not None:
            return set()
        end = self.log.log_end_offset
        return {r for r in self.state.isr if r != self.node_id and r in self.followers
                and not self.followers[r].is_caught_up(end, now_ms, self.replica_lag_time_max_ms)}

    def maybe_increment_high_watermark(self, now_ms: int) -> bool:
        """Kafka's `maybeIncrementLeaderHW`: the minimum log end offset over the maximal ISR, and over
        caught-up replicas about to join it. Never moves backwards; returns whether it moved."""
        log = self.log
        assert log is not None
        new_high_watermark = log.log_end_offset
        if self.state is not None:
            maximal = self.maximal_isr
            for replica, follower in self.followers.items():
                joining = replica not in maximal and follower.log_end_offset >= 0 and self.is_eligible(replica) \
                    and follower.is_caught_up(log.log_end_offset, now_ms, self.replica_lag_time_max_ms)
                if follower.log_end_offset < new_high_watermark and (replica in maximal or joining):
                    new_high_watermark = max(follower.log_end_offset, 0)
        if new_high_watermark <= log.high_watermark:
            return False
        log.update_high_watermark(new_high_watermark)
        self.notify_hw_waiters()
        self.notify_waiters()  # consumers read below the high watermark: there is more for them now
        return True

    # -- waiting ---------------------------------------------------------------------------------

    def notify_waiters(self) -> None:
        for waiter in self.waiters:
            if not waiter.done():
                waiter.set_result(None)
        self.waiters.clear()

    def notify_hw_waiters(self) -> None:
        for waiter in self.hw_waiters:
            if not waiter.done():
                waiter.set_result(None)
        self.hw_waiters.clear()

    def offline_replicas(self, live_brokers: frozenset[int] | set[int]) -> list[int]:
        if self.state is None or not live_brokers:
            return []
        return [r for r in self.state.replicas if r not in live_brokers]

    @property
    def online(self) -> bool:
        return self.state is None or self.state.leader != NO_LEADER
