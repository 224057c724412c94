"""The cluster controller: one broker at a time keeps partition leadership in line with broker liveness.

Kafka's ZooKeeper-mode KafkaController with etcd in ZooKeeper's place: every broker runs a
`ClusterController`; they campaign for the lease-held `controller` key, and the winner (controller epoch
bumped) reacts to brokers dying and coming back by writing new partition states (election.reconcile)
with compare-and-set, fenced by its term. When its lease is lost it stops acting and campaigns again. A
new controller reconciles every partition first, so partitions led by brokers that died while there was
no controller (or with the old controller) get leaders too.

Conflicts need no retry loop: a failed compare-and-set means the partition changed, and that change
arrives as a PartitionChanged event, which reconciles the partition again from the newer state.

    controller = ClusterController(store, broker_id=1, session_timeout_ms=1000)
    controller.start()
    ...
    await controller.stop()   # resigns: another broker takes over at once
"""

from __future__ import annotations

import asyncio
import logging
import math
from collections.abc import Iterable

from moldau.cluster import reassignment
from moldau.cluster.election import ElectionType, elect, imbalanced_partitions, reconcile, unclean_enabled
from moldau.cluster.etcd_store import ControllerSession, EtcdClusterStore
from moldau.cluster.image import (
    BrokerChanged,
    ClusterEvent,
    ConfigChanged,
    ControllerChanged,
    PartitionChanged,
    Resynced,
    TopicChanged,
)
from moldau.errors import ApiError
from moldau.protocol.errors import ErrorCode

log = logging.getLogger(__name__)

TopicPartition = tuple[str, int]
MAX_CONCURRENT_WRITES = 32


class ClusterController:
    def __init__(self, store: EtcdClusterStore, broker_id: int, *, session_timeout_ms: int = 1000,
                 unclean_leader_election_enable: bool = False, auto_leader_rebalance_enable: bool = True,
                 leader_imbalance_check_interval_s: float = 300.0,
                 leader_imbalance_per_broker_percentage: int = 10) -> None:
        self.store = store
        self.broker_id = broker_id
        self.ttl = max(1, math.ceil(session_timeout_ms / 1000))
        self.unclean_default = unclean_leader_election_enable  # the broker's static config
        self.session: ControllerSession | None = None
        self.became_controller = asyncio.Event()  # set while this instance is the controller
        self._task: asyncio.Task[None] | None = None
        self._events: asyncio.Queue[ClusterEvent] | None = None
        self._writes = asyncio.Semaphore(MAX_CONCURRENT_WRITES)
        # Kafka's auto.leader.rebalance.enable / leader.imbalance.* (ZooKeeper-mode KafkaController).
        self.auto_leader_rebalance_enable = auto_leader_rebalance_enable
        self.leader_imbalance_check_interval_s = leader_imbalance_check_interval_s
        self.leader_imbalance_per_broker_percentage = leader_imbalance_per_broker_percentage

    @property
    def is_active(self) -> bool:
        return self.session is not None and not self.session.lease.lost.is_set()

    def start(self) -> None:
        self._events = self.store.subscribe()
        self._task = asyncio.get_running_loop().create_task(self._run(), name=f"controller-{self.broker_id}")

    async def stop(self) -> None:
        """Stops campaigning; resigns if controller (revokes the lease: the next one takes over at once)."""
        if self._task is not None:
            self._task.cancel()
            try:
                await self._task
            except asyncio.CancelledError:
                pass
            self._task = None
        if self._events is not None:
            self.store.unsubscribe(self._events)
        session, self.session = self.session, None
        self.became_controller.clear()
        if session is not None:
            await session.lease.revoke()

    async def _run(self) -> None:
        assert self._events is not None
        backoff = 0.05
        while True:
            try:  # the session's lease.lost tells _act when the term ends
                session = await self.store.campaign_controller(self.broker_id, self.ttl, lambda: None)
            except Exception as exc:  # noqa: BLE001 - etcd unreachable: campaign again when it is back
                log.warning("broker %d: controller campaign failed (%s)", self.broker_id, exc)
                await asyncio.sleep(backoff)
                backoff = min(backoff * 2, 1.0)
                continue
            backoff = 0.05
            if session is None:
                await self._until_no_controller()
                continue
            self.session = session
            self.became_controller.set()
            log.info("broker %d is the controller (epoch %d)", self.broker_id, session.epoch)
            try:
                await self._act(session)
            finally:
                self.became_controller.clear()
                self.session = None
            log.warning("broker %d stopped being the controller (epoch %d): its lease was lost",
                        self.broker_id, session.epoch)

    async def _until_no_controller(self) -> None:
        assert self._events is not None
        while self.store.image.controller_id is not None:
            await self._events.get()

    async def _act(self, session: ControllerSession) -> None:
        assert self._events is not None
        await self._reconcile(session, list(self.store.image.partitions))
        lost = asyncio.ensure_future(session.lease.lost.wait())
        rebalance = asyncio.ensure_future(self._rebalance_loop(session)) \
            if self.auto_leader_rebalance_enable else None
        try:
            while not session.lease.lost.is_set():
                next_event = asyncio.ensure_future(self._events.get())
                done, _ = await asyncio.wait({next_event, lost}, return_when=asyncio.FIRST_COMPLETED)
                if next_event not in done:
                    next_event.cancel()
                    return
                await self._reconcile(session, self._affected(next_event.result()))
        finally:
            lost.cancel()
            if rebalance is not None:
                rebalance.cancel()

    def _affected(self, event: ClusterEvent) -> list[TopicPartition]:
        image = self.store.image
        if isinstance(event, PartitionChanged):
            return [(event.topic, event.index)] if event.state is not None else []
        if isinstance(event, TopicChanged):
            return [tp for tp in image.partitions if tp[0] == event.name] if event.metadata is not None else []
        if isinstance(event, BrokerChanged):
            return [tp for tp, s in image.partitions.items() if event.broker_id in s.replicas]
        if isinstance(event, (Resynced, ConfigChanged)):
            return list(image.partitions)
        if isinstance(event, ControllerChanged):
            return []
        return []

    def _unclean(self, topic: str) -> bool:
        image = self.store.image
        default = unclean_enabled(image.broker_configs.get("", {}), self.unclean_default)
        metadata = image.topics.get(topic)
        return unclean_enabled(metadata.configs if metadata else {}, default)

    async def _reconcile(self, session: ControllerSession, partitions: Iterable[TopicPartition]) -> None:
        await asyncio.gather(*(self._reconcile_one(session, tp) for tp in partitions))

    async def _reconcile_one(self, session: ControllerSession, tp: TopicPartition) -> None:
        image = self.store.image
        state = image.partitions.get(tp)
        if state is None or session.lease.lost.is_set():
            return
        live = image.brokers.keys()
        new = reconcile(state, live, unclean=self._unclean(tp[0]))
        # KIP-455: a reassignment whose target replicas are all in the ISR completes (KRaft completes it
        # on the AlterPartition that made it so; here the controller sees that change and writes this).
        completed = reassignment.maybe_complete(new or state, live)
        if completed is not None:  # one successor of `state`, whatever the steps that led to it
            new = state.with_changes(replicas=completed.replicas, isr=completed.isr, leader=completed.leader,
                                     adding=(), removing=())
        if new is None:
            return
        async with self._writes:
            try:
                written = await self.store.compare_and_set_partition(tp[0], tp[1], new, state.partition_epoch,
                                                                     controller=session)
            except Exception as exc:  # noqa: BLE001 - etcd unreachable: the resync reconciles again
                log.warning("controller: writing %s-%d failed: %s", tp[0], tp[1], exc)
                return
        if written:
            log.info("controller epoch %d: %s-%d leader %d -> %d (leader epoch %d), isr %s", session.epoch,
                     tp[0], tp[1], state.leader, new.leader, new.leader_epoch, list(new.isr))

    async def elect_leaders(self, partitions: Iterable[TopicPartition] | None,
                            election_type: ElectionType) -> dict[TopicPartition, ErrorCode]:
        """ElectLeaders (KIP-183 preferred, KIP-460 unclean) for `partitions` (None: every partition).

        Any broker may run it, controller or not: its writes are compare-and-set on the partition epoch,
        and the result (a live leader from the ISR, or an unclean one with an ISR of itself) is one the
        controller keeps. Returns Kafka's error code per partition."""
        image = self.store.image
        targets = list(image.partitions) if partitions is None else list(partitions)
        results: dict[TopicPartition, ErrorCode] = {}
        for tp in targets:
            for _ in range(5):  # a concurrent change: elect again from the newer state
                state = self.store.image.partitions.get(tp)
                if state is None:
                    results[tp] = ErrorCode.UNKNOWN_TOPIC_OR_PARTITION
                    break
                code, new = elect(state, self.store.image.brokers.keys(), election_type)
                if new is None:
                    results[tp] = code
                    break
                if await self.store.compare_and_set_partition(tp[0], tp[1], new, state.partition_epoch):
                    results[tp] = ErrorCode.NONE
                    break
                await asyncio.sleep(0.01)
            else:
                results[tp] = ErrorCode.UNKNOWN_SERVER_ERROR
        return results

    # -- preferred-leader rebalance (auto.leader.rebalance.enable) ---------------------------------------

    async def _rebalance_loop(self, session: ControllerSession) -> None:
        """Kafka's auto-leader-rebalance task: every leader.imbalance.check.interval.seconds, the brokers
        whose share of preferred partitions they don't lead exceeds leader.imbalance.per.broker.percentage
        get those leaderships back (a preferred election, where the preferred replica is alive and in sync)."""
        while not session.lease.lost.is_set():
            await asyncio.sleep(self.leader_imbalance_check_interval_s)
            try:
                await self.rebalance_leaders(session)
            except Exception:  # etcd unreachable: the next check tries again
                log.exception("controller: leader rebalance failed")

    async def rebalance_leaders(self, session: ControllerSession | None = None) -> list[TopicPartition]:
        image = self.store.image
        if any(reassignment.in_progress(s) for s in image.partitions.values()):
            return []  # as Kafka's controller: no automatic elections while partitions are being reassigned
        partitions = imbalanced_partitions(image.partitions, image.brokers.keys(),
                                           self.leader_imbalance_per_broker_percentage)
        moved = []
        for tp in partitions:
            state = self.store.image.partitions.get(tp)
            if state is None:
                continue
            _, new = elect(state, self.store.image.brokers.keys(), ElectionType.PREFERRED)
            if new is not None and await self.store.compare_and_set_partition(
                    tp[0], tp[1], new, state.partition_epoch, controller=session):
                moved.append(tp)
        if moved:
            log.info("controller: preferred leaders restored for %s", moved)
        return moved

    # -- reassignments (KIP-455) ---------------------------------------------------------------------

    async def alter_reassignment(self, tp: TopicPartition, target: list[int] | None, *,
                                 allow_replication_factor_change: bool = True) -> None:
        """Starts, replaces (target) or cancels (None) the reassignment of one partition; raises ApiError
        with Kafka's codes. Any broker may run it: the write is compare-and-set on the partition epoch, and
        the controller completes the reassignment once the target is in sync (cluster/reassignment.py)."""
        for _ in range(10):  # a concurrent change (an ISR change by the leader): start from the newer state
            state = self.store.image.partitions.get(tp)
            if state is None:  # KRaft's messages (ReplicationControlManager.alterPartitionReassignment)
                if tp[0] not in self.store.image.topics:
                    raise ApiError(ErrorCode.UNKNOWN_TOPIC_OR_PARTITION, f"Unable to find a topic named {tp[0]}.")
                raise ApiError(ErrorCode.UNKNOWN_TOPIC_OR_PARTITION, f"Unable to find partition {tp[0]}:{tp[1]}.")
            live = self.store.image.brokers.keys()
            if target is None:
                new = reassignment.cancel(state, live, unclean_enabled=self._unclean(tp[0]),
                                          name=f"{tp[0]}:{tp[1]}")
            else:
                reassignment.validate_target(target, reassignment.target_replicas(state), live,
                                             allow_replication_factor_change)
                new = reassignment.start(state, target, live)
            if await self.store.compare_and_set_partition(tp[0], tp[1], new, state.partition_epoch):
                log.info("reassignment of %s-%d %s: replicas %s adding %s removing %s", tp[0], tp[1],
                         "cancelled" if target is None else f"to {target}", list(new.replicas), list(new.adding),
                         list(new.removing))
                return
            await asyncio.sleep(0.01)
        raise ApiError(ErrorCode.REQUEST_TIMED_OUT, f"{tp[0]}-{tp[1]} kept changing; try again.")
