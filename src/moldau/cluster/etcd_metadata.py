"""The synchronous `MetadataStore` protocol served by an `EtcdClusterStore`, for the broker's existing code.

Reads come from the store's image (a dict copy, cheap, any thread). Writes are the store's async
transactions submitted to the store's event loop with `run_coroutine_threadsafe` and waited for, so they
must be called from a worker thread (as the broker already calls LocalMetadataStore's writes); called on
the loop itself they would deadlock, so they raise instead.

`create_topic` places the replicas itself (placement.assign_replicas over the registered brokers) and
writes every partition's initial state with the topic, in one transaction: Kafka's ZooKeeper-mode
AdminZkClient did the same on the broker that received CreateTopics, and the controller took it from there.
"""

from __future__ import annotations

import asyncio
from collections.abc import Coroutine
from typing import Any, TypeVar

from moldau.cluster.election import initial_state
from moldau.cluster.etcd_store import EtcdClusterStore
from moldau.cluster.metadata_store import TopicMetadata, UnknownTopicError
from moldau.cluster.placement import assign_added_partitions, assign_replicas
from moldau.errors import MoldauError

T = TypeVar("T")
WRITE_TIMEOUT_S = 15.0


class EtcdMetadataStore:
    def __init__(self, store: EtcdClusterStore) -> None:
        self.store = store

    def _run(self, coroutine: Coroutine[Any, Any, T]) -> T:
        try:
            running = asyncio.get_running_loop()
        except RuntimeError:
            running = None
        if running is self.store.loop:
            coroutine.close()
            raise MoldauError("EtcdMetadataStore writes block: call them from a worker thread "
                              "(asyncio.to_thread), or await the EtcdClusterStore method on the loop")
        return asyncio.run_coroutine_threadsafe(coroutine, self.store.loop).result(WRITE_TIMEOUT_S)

    @property
    def cluster_id(self) -> str:
        return self.store.image.cluster_id

    def set_cluster_id(self, cluster_id: str) -> None:
        """Stores `cluster_id` unless the cluster already has one (then the image keeps the stored one)."""
        self._run(self.store.get_or_create_cluster_id(cluster_id))

    def topics(self) -> dict[str, TopicMetadata]:
        return dict(self.store.image.topics)

    def create_topic(self, topic: TopicMetadata) -> None:
        brokers = list(self.store.image.brokers.values())
        assignment = assign_replicas(brokers, topic.num_partitions, topic.replication_factor)
        live = {b.broker_id for b in brokers}
        states = {index: initial_state(replicas, live) for index, replicas in assignment.items()}
        self._run(self.store.create_topic(topic, states))

    def create_partitions(self, topic: TopicMetadata, new_total: int) -> None:
        """CreatePartitions: grows `topic` to `new_total` partitions, placed as Kafka continues a topic."""
        image = self.store.image
        existing = {index: state.replicas for index, state in image.partitions_of(topic.name).items()}
        brokers = list(image.brokers.values())
        assignment = assign_added_partitions(brokers, existing, new_total - len(existing), topic.replication_factor)
        live = {b.broker_id for b in brokers}
        states = {index: initial_state(replicas, live) for index, replicas in assignment.items()}
        topic.num_partitions = new_total
        self._run(self.store.add_partitions(topic, states))

    def delete_topic(self, name: str) -> TopicMetadata:
        if name not in self.store.image.topics:
            raise UnknownTopicError(f"Topic '{name}' does not exist.")
        return self._run(self.store.delete_topic(name))

    def update_topic(self, topic: TopicMetadata) -> None:
        self._run(self.store.update_topic(topic))

    def broker_configs(self) -> dict[str, dict[str, str]]:
        return dict(self.store.image.broker_configs)

    def set_broker_configs(self, resource: str, configs: dict[str, str]) -> None:
        self._run(self.store.set_broker_configs(resource, configs))

    def security(self, section: str) -> Any:
        return self.store.image.security.get(section)

    def set_security(self, section: str, value: Any) -> None:
        self._run(self.store.set_security(section, value))
