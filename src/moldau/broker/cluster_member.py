"""This broker's membership of a cluster whose metadata lives in etcd (`metadata.store=etcd://...`).

The broker side of Kafka's ZooKeeper mode, with etcd's watch in place of the controller's
LeaderAndIsr/UpdateMetadata requests:

1. `connect` (before the listeners open): reach etcd, agree on the cluster id (a log dir of another
   cluster is refused, as Kafka's InconsistentClusterIdException), and apply the image: every partition
   this broker hosts becomes leader or follower before any client can reach it.
2. `register` (once the listeners are bound): register under a lease (its loss is this broker's death
   to the others), start campaigning for controller, and follow the watch: every change of the image is
   applied in etcd's order (`_apply`): brokers come and go (Metadata, fetcher addresses), partitions
   change leader (ReplicaManager.apply_partition_state; the coordinators load or unload the shards of
   `__consumer_offsets` / `__transaction_state` partitions as their leadership moves), topics go
   (local logs deleted).
3. `stop`: controlled shutdown: resign as controller, revoke the lease (the controller moves this
   broker's leaderships at once instead of after the session timeout), close.

ISR changes proposed by partition leaders are compare-and-set writes on the partition's state
(`alter_partition`), fenced by the partition epoch as Kafka's AlterPartition (KIP-497).
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from moldau.broker.partition import Transition
from moldau.broker.replica_manager import Topic
from moldau.broker.topic_config import topic_log_config
from moldau.broker.txn_marker_channel import ClusterMarkerChannel
from moldau.cluster.cluster_controller import ClusterController
from moldau.cluster.config_store import EtcdConfigStore
from moldau.cluster.etcd_store import EtcdClusterStore
from moldau.cluster.image import (
    BrokerChanged,
    ClusterEvent,
    ConfigChanged,
    ControllerChanged,
    PartitionChanged,
    Resynced,
    TopicChanged,
)
from moldau.cluster.metadata_store import TopicMetadata
from moldau.cluster.state import BrokerRegistration, Endpoint, PartitionState
from moldau.errors import MoldauError

if TYPE_CHECKING:
    from moldau.broker.server import Broker

log = logging.getLogger(__name__)

OFFSETS_TOPIC, TRANSACTION_TOPIC = "__consumer_offsets", "__transaction_state"


class InconsistentClusterIdError(MoldauError):
    pass


class ClusterMember:
    def __init__(self, broker: Broker) -> None:
        self.broker = broker
        self.config = broker.config
        self.node_id = broker.node_id
        self.store: EtcdClusterStore = None  # type: ignore[assignment]  # set by connect()
        self.controller: ClusterController | None = None
        self._events: asyncio.Queue[ClusterEvent] | None = None
        self._task: asyncio.Task[None] | None = None
        self._changed = asyncio.Condition()
        self.marker_channel: ClusterMarkerChannel = None  # type: ignore[assignment]  # set by connect()

    @property
    def controller_id(self) -> int:
        return self.store.image.controller_id if self.store.image.controller_id is not None else -1

    # -- start -----------------------------------------------------------------------------------

    async def connect(self) -> None:
        self.store = await EtcdClusterStore.connect(self.config["metadata.store"])
        config_store = self.broker.config_store
        if isinstance(config_store, EtcdConfigStore):
            # Dynamic broker configs, ACLs, SCRAM users and quotas from the image: before any partition
            # opens (its log takes the cluster's dynamic defaults) and before any client is served.
            config_store.attach(self.store)
            self.broker._load_dynamic_keystores()  # this node's dynamic listener keystores, kept in etcd
        local = self.broker.store.cluster_id
        from moldau.broker.server import new_cluster_id

        candidate = local or self.config["cluster.id"] or new_cluster_id()
        cluster_id = await self.store.get_or_create_cluster_id(candidate)
        if local and local != cluster_id:
            await self.store.close()
            raise InconsistentClusterIdError(
                f"The cluster id {cluster_id} in {self.config['metadata.store']} doesn't match the stored "
                f"cluster id {local} in the log dirs: they belong to another cluster.")
        if not local:
            await asyncio.to_thread(self.broker.store.set_cluster_id, cluster_id)
        self.broker.replica_manager.alter_partition = self.alter_partition
        # A coordinator shard serves only once this broker leads its partition (and loaded it).
        self.broker.group_coordinator.log.unloaded_is_active = False
        self.broker.transaction_coordinator.state.runtime.unloaded_is_active = False
        self.broker.producer_id_manager.cluster_allocator = self.store.allocate_producer_ids
        self.marker_channel = ClusterMarkerChannel(self.broker)
        self.broker.transaction_coordinator.markers.remote = self.marker_channel
        self.broker.controller.cluster_store = self.store  # type: ignore[attr-defined]
        self.broker.controller.wait_for = self.wait_for  # type: ignore[attr-defined]
        self._events = self.store.subscribe()  # from the image's revision on: nothing is missed
        await self._apply_image()

    async def register(self) -> None:
        registration = BrokerRegistration(self.node_id, self._endpoints(), self.config["broker.rack"])
        timeout_ms = int(self.config["broker.session.timeout.ms"])
        registered = await self.store.register_broker(registration, timeout_ms,
                                                      on_session_change=self._session_changed)
        log.info("broker %d registered in %s with broker epoch %d", self.node_id, self.config["metadata.store"],
                 registered.epoch)
        self.controller = ClusterController(
            self.store, self.node_id, session_timeout_ms=timeout_ms,
            unclean_leader_election_enable=bool(self.config["unclean.leader.election.enable"]),
            auto_leader_rebalance_enable=bool(self.config["auto.leader.rebalance.enable"]),
            leader_imbalance_check_interval_s=float(self.config["leader.imbalance.check.interval.seconds"]),
            leader_imbalance_per_broker_percentage=int(self.config["leader.imbalance.per.broker.percentage"]))
        self.controller.start()
        self._task = asyncio.get_running_loop().create_task(self._follow(), name="cluster-member")

    def _endpoints(self) -> tuple[Endpoint, ...]:
        endpoints = []
        for name in self.broker.bound:
            for endpoint in self.broker.endpoints(name, local=True):
                endpoints.append(Endpoint(name, endpoint.host, endpoint.port))
        return tuple(endpoints)

    def _session_changed(self, registration: BrokerRegistration | None) -> None:
        if registration is None:
            log.error("broker %d lost its registration in etcd (session expired): the controller may move its "
                      "leaderships; registering again", self.node_id)

    # -- following the image ---------------------------------------------------------------------

    async def wait_for(self, predicate: Callable[[], Any], timeout: float) -> Any:
        """Until `predicate()` is truthy after some applied change (or now), within `timeout` seconds."""
        async with self._changed:
            async with asyncio.timeout(timeout):
                return await self._changed.wait_for(predicate)

    async def _notify(self) -> None:
        async with self._changed:
            self._changed.notify_all()

    async def _follow(self) -> None:
        assert self._events is not None
        while True:
            event = await self._events.get()
            try:
                await self._apply(event)
            except Exception:
                log.exception("applying cluster change %s failed", event)
            await self._notify()

    async def _apply_image(self) -> None:
        image = self.store.image
        manager = self.broker.replica_manager
        manager.update_brokers(image.brokers)
        for name in [t for t in manager.topics if t not in image.topics]:
            await self._topic_deleted(name)
        for (topic, index), state in sorted(image.partitions.items()):
            await self._partition_changed(topic, index, state)
        await self._delete_stray_logs()
        await self._notify()

    async def _apply(self, event: ClusterEvent) -> None:
        manager = self.broker.replica_manager
        if isinstance(event, BrokerChanged):
            manager.update_brokers(self.store.image.brokers)
        elif isinstance(event, PartitionChanged):
            if event.state is not None:
                await self._partition_changed(event.topic, event.index, event.state)
        elif isinstance(event, TopicChanged):
            if event.metadata is None:
                await self._topic_deleted(event.name)
            elif event.name in manager.topics:
                self._topic_configs_changed(manager.topics[event.name], event.metadata)
        elif isinstance(event, ConfigChanged):
            # A dynamic config, ACLs, SCRAM credentials or quotas changed through some broker: the readers
            # of the config store reload it (the Resynced diff brings these events too).
            self.broker.config_store.changed(event.kind, event.name)  # type: ignore[attr-defined]
        elif isinstance(event, Resynced):
            await self._apply_image()
        elif isinstance(event, ControllerChanged):
            pass  # read from the image when needed

    async def _partition_changed(self, topic: str, index: int, state: PartitionState) -> None:
        metadata = self.store.image.topics.get(topic)
        if metadata is None:
            return  # deleted since
        transition = await self.broker.replica_manager.apply_partition_state(metadata, index, state,
                                                                             self.store.image.brokers)
        if topic in (OFFSETS_TOPIC, TRANSACTION_TOPIC):
            self._move_coordinator(topic, index, transition)
        if transition is Transition.REMOVED:
            await self._delete_replica(topic, index)

    async def _delete_replica(self, topic: str, index: int) -> None:
        """A reassignment moved this replica away: delete its log, in a worker thread (Kafka's StopReplica
        with deletePartition=true; in KRaft the broker's applyDelta for a replica it no longer hosts)."""
        try:
            await asyncio.to_thread(self.broker.replica_manager.log_manager.delete_log, topic, index)
        except Exception as exc:  # noqa: BLE001 - a leftover directory: the next start removes it (stray)
            log.error("deleting the removed replica %s-%d failed: %s", topic, index, exc)
            return
        log.info("partition.deleted topic_partition=%s-%d: moved away by a reassignment", topic, index)

    async def _delete_stray_logs(self) -> None:
        """Logs of partitions this broker is not a replica of (it was down when a reassignment moved them
        away): deleted, as the moved-away replica would have been had the broker been up (Kafka calls
        these stray replicas)."""
        image = self.store.image
        stray = [(lg.topic, lg.partition) for lg in self.broker.replica_manager.log_manager.all_logs()
                 if (lg.topic, lg.partition) in image.partitions
                 and self.node_id not in image.partitions[(lg.topic, lg.partition)].replicas]
        for topic, index in stray:
            partition = self.broker.replica_manager.topics[topic].partitions[index] \
                if topic in self.broker.replica_manager.topics else None
            if partition is not None and partition.log is not None:
                continue  # hosted after all (a newer state)
            log.info("partition.stray topic_partition=%s-%d: not a replica here any more", topic, index)
            await self._delete_replica(topic, index)

    def _move_coordinator(self, topic: str, index: int, transition: Transition) -> None:
        """The coordinators follow the leadership of their internal topic's partitions (Kafka's
        onElection / onResignation of the group and transaction coordinators)."""
        if topic == OFFSETS_TOPIC:
            load, unload = (self.broker.group_coordinator.load_partition,
                            self.broker.group_coordinator.unload_partition)
        else:
            state = self.broker.transaction_coordinator.state
            load, unload = state.load_partition, state.unload_partition
        if transition is Transition.BECAME_LEADER:
            count = load(index)
            log.info("coordinator for %s-%d loaded (%d records)", topic, index, count)
            if topic == TRANSACTION_TOPIC:
                asyncio.get_running_loop().create_task(self.broker.transaction_coordinator.complete_in_flight())
        elif transition in (Transition.BECAME_FOLLOWER, Transition.REMOVED):
            unload(index)
            log.info("coordinator for %s-%d unloaded", topic, index)

    def _topic_configs_changed(self, topic: Topic, metadata: TopicMetadata) -> None:
        """AlterConfigs on any broker: the hosted logs take the topic's new configs."""
        old, topic.metadata = topic.metadata, metadata
        if old.configs != metadata.configs:
            log_config = topic_log_config(self.broker.replica_manager.default_log_config, metadata.configs)
            for partition in topic.partitions:
                if partition.log is not None:
                    partition.log.update_config(log_config)

    async def _topic_deleted(self, name: str) -> None:
        manager = self.broker.replica_manager
        if name not in manager.topics:
            return
        topic = manager.remove_topic(name)
        hosted = [p.index for p in topic.partitions if p.log is not None]
        try:
            await asyncio.to_thread(self.broker.controller._delete_logs, name, hosted)
        except OSError as exc:
            log.error("removing the files of deleted topic %s failed: %s", name, exc)
        log.info("topic %s deleted: removed %d local replica(s)", name, len(hosted))

    # -- AlterPartition --------------------------------------------------------------------------

    async def alter_partition(self, topic: str, index: int, proposed: PartitionState) -> PartitionState | None:
        """A leader's ISR change, accepted only if the partition did not change since it read it."""
        if await self.store.compare_and_set_partition(topic, index, proposed, proposed.partition_epoch - 1):
            return proposed
        return None

    # -- stop ------------------------------------------------------------------------------------

    async def stop(self) -> None:
        """Controlled shutdown: resign, give up the lease so that leaderships move now, then close."""
        if self.store is None:
            return
        if self._task is not None:
            self._task.cancel()
        if self.controller is not None:
            await self.controller.stop()
        try:
            async with asyncio.timeout(5):
                await self.store.unregister_broker()
        except Exception as exc:  # noqa: BLE001 - etcd gone: the lease expires on its own
            log.warning("could not unregister broker %d from etcd: %s", self.node_id, exc)
        if self.marker_channel is not None:
            self.marker_channel.close()
        await self.store.close()
