"""Topic administration in a cluster: CreateTopics, CreatePartitions and DeleteTopics write etcd.

The single-broker `Controller` (broker/controller.py) creates partition files itself. In a cluster the
broker that receives the request does what Kafka's ZooKeeper-mode `AdminZkClient` did: it validates,
places the replicas on the live brokers (cluster/placement.py, rack-aware), and writes the topic and
every partition's first state in one etcd transaction. Each replica's broker then sees the new states
through its watch and opens its log (ReplicaManager.apply_partition_state); this broker answers once
its own watch has applied the topic, so the client's next Metadata here already names the leaders.
Deletion removes the keys in one transaction; every broker deletes its local logs when it sees that.
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable
from dataclasses import replace
from typing import TYPE_CHECKING, Any

from moldau.broker.controller import Controller, collision_key
from moldau.broker.errors import ApiError
from moldau.broker.replica_manager import Topic
from moldau.cluster.election import initial_state
from moldau.cluster.metadata_store import TopicExistsError, TopicMetadata, UnknownTopicError
from moldau.cluster.placement import assign_added_partitions, assign_replicas
from moldau.protocol.errors import ErrorCode

if TYPE_CHECKING:
    from moldau.cluster.etcd_store import EtcdClusterStore

log = logging.getLogger(__name__)

APPLIED_TIMEOUT_S = 10.0


class ClusterTopicController(Controller):
    """`Controller` whose topics live in etcd; `cluster_store` is set once the broker has connected."""

    cluster_store: EtcdClusterStore
    wait_for: Callable[[Callable[[], Any], float], Awaitable[Any]]  # ClusterMember.wait_for

    def load(self) -> None:
        """Nothing to open here: the topics come from the cluster image once connected (cluster_member)."""

    def _live_brokers(self) -> list:
        return sorted(self.cluster_store.image.brokers.values(), key=lambda b: b.broker_id)

    async def create_internal_topic(self, name: str, num_partitions: int, replication_factor: int,
                                    configs: dict[str, str | None]) -> None:
        """`__consumer_offsets` / `__transaction_state`: Kafka's default replication factor is 3; the
        single-broker default of 1 is raised to min(3, live brokers) unless the operator set it."""
        key = "offsets.topic.replication.factor" if name == "__consumer_offsets" else \
            "transaction.state.log.replication.factor"
        if not self.config.is_set(key):
            replication_factor = max(1, min(3, len(self.cluster_store.image.brokers)))
        await super().create_internal_topic(name, num_partitions, replication_factor, configs)

    def _check_replication_factor(self, replication_factor: int) -> None:
        live = len(self.cluster_store.image.brokers)
        if replication_factor > live:
            raise ApiError(
                ErrorCode.INVALID_REPLICATION_FACTOR,
                f"Unable to replicate the partition {replication_factor} time(s): The target replication "
                f"factor of {replication_factor} cannot be reached because only {live} broker(s) are registered.",
            )

    def _check_broker_partitions(self, added: int) -> None:
        """KIP-578's `max.partitions` over the whole cluster (per-broker limits need placement first)."""
        current = sum(t.metadata.num_partitions for t in self.replica_manager.topics.values()) + self._reserved
        limit = int(self.config["max.partitions"])
        if current + added > limit:
            raise ApiError(ErrorCode.POLICY_VIOLATION,
                           f"Adding {added} partition(s) would bring the cluster to {current + added} "
                           f"partitions, more than max.partitions={limit}.")

    async def _applied(self, name: str, partitions: int) -> Topic:
        """Until this broker's watch has applied `partitions` partitions of the topic."""
        def applied() -> Topic | None:
            topic = self.replica_manager.topics.get(name)
            if topic is not None and len(topic.partitions) >= partitions and all(
                    p.state is not None for p in topic.partitions[:partitions]):
                return topic
            return None

        try:
            topic: Topic = await self.wait_for(applied, APPLIED_TIMEOUT_S)
        except TimeoutError:
            raise ApiError(ErrorCode.REQUEST_TIMED_OUT, f"Topic {name} was stored but not yet applied here.") \
                from None
        return topic

    async def _create(self, metadata: TopicMetadata) -> TopicMetadata:
        key = collision_key(metadata.name)
        self._creating[key] = metadata.name
        self._reserved += metadata.num_partitions
        try:
            live = self._live_brokers()
            assignment = assign_replicas(live, metadata.num_partitions, metadata.replication_factor)
            ids = {b.broker_id for b in live}
            states = {p: initial_state(replicas, ids) for p, replicas in assignment.items()}
            try:
                await self.cluster_store.create_topic(metadata, states)
            except TopicExistsError:
                raise ApiError(ErrorCode.TOPIC_ALREADY_EXISTS, f"Topic '{metadata.name}' already exists.") from None
            await self._applied(metadata.name, metadata.num_partitions)
        finally:
            del self._creating[key]
            self._reserved -= metadata.num_partitions
        log.info("created topic %s with %d partition(s) x %d replica(s), id %s", metadata.name,
                 metadata.num_partitions, metadata.replication_factor, metadata.topic_id)
        return metadata

    async def _grow_exclusive(self, name: str, count: int) -> Topic:
        async with self._exclusive(name):
            topic = self._check_growth(name, count)
            current = len(topic.partitions)
            existing = {p.index: p.state.replicas for p in topic.partitions if p.state is not None}
            assignment = assign_added_partitions(self._live_brokers(), existing, count - current,
                                                 topic.metadata.replication_factor)
            ids = set(self.cluster_store.image.brokers)
            states = {p: initial_state(replicas, ids) for p, replicas in assignment.items()}
            await self.cluster_store.add_partitions(replace(topic.metadata, num_partitions=count), states)
            topic = await self._applied(name, count)
        log.info("added partitions to topic %s: %d -> %d", name, current, count)
        return topic

    async def _delete_exclusive(self, name: str) -> TopicMetadata:
        async with self._exclusive(name):
            if name not in self.replica_manager.topics:
                raise ApiError(ErrorCode.UNKNOWN_TOPIC_OR_PARTITION, "This server does not host this topic.")
            if not self.config["delete.topic.enable"]:
                raise ApiError(ErrorCode.TOPIC_DELETION_DISABLED, "Topic deletion is disabled.")
            try:
                metadata = await self.cluster_store.delete_topic(name)
            except UnknownTopicError:
                raise ApiError(ErrorCode.UNKNOWN_TOPIC_OR_PARTITION, "This server does not host this topic.") \
                    from None
            try:  # the watch removes it here (cluster_member)
                await self.wait_for(lambda: name not in self.replica_manager.topics, APPLIED_TIMEOUT_S)
            except TimeoutError:
                log.warning("topic %s deleted in the cluster but not yet here", name)
        log.info("deleted topic %s (id %s)", name, metadata.topic_id)
        return metadata
