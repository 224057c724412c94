"""TEST WIRING ONLY — not the cluster controller (that is cluster/, with etcd).

`ControllerForTests` runs brokers in this process (node.id 1, 2, 3, each with its own data dir) and plays
the metadata store and controller for them: it keeps each partition's `PartitionState`, pushes it to every
running broker with `ReplicaManager.apply_partition_state`, and implements the `alter_partition`
compare-and-set by applying the proposed state to every broker. Brokers it stops disappear from the broker
registrations it hands out, as a broker whose lease expired does.
"""

from __future__ import annotations

import asyncio
import threading
import uuid
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from moldau.broker.config import BrokerConfig
from moldau.cluster.metadata_store import TopicMetadata
from moldau.cluster.state import BrokerRegistration, Endpoint, PartitionState
from moldau.testing import EmbeddedBroker
from tests.fixtures import clients

TopicPartition = tuple[str, int]


async def _running_loop() -> asyncio.AbstractEventLoop:
    return asyncio.get_running_loop()


@contextmanager
def running_controller(root: Path, **overrides: Any) -> Iterator[ControllerForTests]:
    """Brokers 1, 2 and 3 started, with followers that fetch every 100 ms; all stopped afterwards."""
    controller = ControllerForTests(root, **{"replica_fetch_wait_max_ms": 100, "replica_fetch_backoff_ms": 100,
                                             **overrides}).start_all()
    try:
        yield controller
    finally:
        controller.stop_all()


class ControllerForTests:
    """Three (or more) in-process brokers and a stand-in for the metadata store that drives them."""

    def __init__(self, root: Path, node_ids: Iterable[int] = (1, 2, 3), **overrides: Any) -> None:
        self.root = root
        self.node_ids = tuple(node_ids)
        self.overrides = {key.replace("_", "."): value for key, value in overrides.items()}
        self.brokers: dict[int, EmbeddedBroker] = {}
        self.loops: dict[int, asyncio.AbstractEventLoop] = {}
        self.topics: dict[str, TopicMetadata] = {}
        self.states: dict[TopicPartition, PartitionState] = {}
        self.alter_calls = 0
        self.cluster_id = "moldau-replication-test"
        self.ports: dict[int, int] = {}
        self._lock = threading.Lock()

    # -- brokers -----------------------------------------------------------------------------------

    def start(self, node_id: int) -> EmbeddedBroker:
        # One cluster id for all (the etcd store will hold it): librdkafka warns of brokers of different clusters.
        # A restarted broker listens on its old port again, as a real one does (clients keep their bootstrap list).
        port = self.ports.get(node_id, 0)
        settings = {"node.id": node_id, "listeners": f"PLAINTEXT://127.0.0.1:{port}", "cluster.id": self.cluster_id,
                    "log.dirs": str(self.root / f"broker-{node_id}"), **self.overrides}
        embedded = EmbeddedBroker(BrokerConfig(settings))
        embedded.start()
        self.brokers[node_id] = embedded
        self.ports[node_id] = embedded.port
        self.loops[node_id] = embedded.call(_running_loop())
        embedded.broker.replica_manager.alter_partition = self._alter_partition
        registrations = self.registrations()
        for other in self.brokers.values():
            other.call(_update_brokers(other, registrations))
        for (topic, index), state in list(self.states.items()):  # what the store's watch would deliver
            embedded.call(embedded.broker.replica_manager.apply_partition_state(
                self.topics[topic], index, state, registrations))
        return embedded

    def start_all(self) -> ControllerForTests:
        for node_id in self.node_ids:
            self.start(node_id)
        return self

    def stop(self, node_id: int) -> None:
        """A broker going down (its clients stay open: they must move to the other brokers)."""
        embedded = self.brokers.pop(node_id)
        del self.loops[node_id]
        embedded.stop()
        registrations = self.registrations()
        for other in self.brokers.values():
            other.call(_update_brokers(other, registrations))

    def stop_all(self) -> None:
        clients.close_all()
        for node_id in list(self.brokers):
            self.brokers.pop(node_id).stop()

    def registrations(self) -> dict[int, BrokerRegistration]:
        return {node_id: BrokerRegistration(node_id, (Endpoint("PLAINTEXT", *b.broker.bound["PLAINTEXT"]),))
                for node_id, b in self.brokers.items()}

    def bootstrap(self, *node_ids: int) -> str:
        return ",".join(self.brokers[n].bootstrap_servers for n in (node_ids or self.brokers))

    # -- topics and partition states ------------------------------------------------------------------

    def create_topic(self, name: str, partitions: int = 1, replicas: tuple[int, ...] = (1, 2, 3),
                     configs: dict[str, str] | None = None) -> TopicMetadata:
        metadata = TopicMetadata(name, uuid.uuid4(), partitions, len(replicas), dict(configs or {}))
        self.topics[name] = metadata
        for embedded in self.brokers.values():
            embedded.broker.store.create_topic(metadata)  # so a restarted broker keeps its logs
        for index in range(partitions):
            rotated = replicas[index % len(replicas):] + replicas[: index % len(replicas)]
            self.apply(name, index, PartitionState(replicas=rotated, isr=rotated, leader=rotated[0]))
        return metadata

    def state(self, topic: str, index: int = 0) -> PartitionState:
        with self._lock:
            return self.states[(topic, index)]

    def apply(self, topic: str, index: int, state: PartitionState) -> None:
        """A new state from the controller (a leader election, a reassignment): every broker applies it."""
        with self._lock:
            self.states[(topic, index)] = state
        registrations = self.registrations()
        for embedded in list(self.brokers.values()):
            embedded.call(embedded.broker.replica_manager.apply_partition_state(
                self.topics[topic], index, state, registrations))

    def elect(self, topic: str, index: int, leader: int, isr: tuple[int, ...] | None = None) -> PartitionState:
        current = self.state(topic, index)
        new = current.with_changes(leader=leader, isr=current.isr if isr is None else isr)
        self.apply(topic, index, new)
        return new

    async def _alter_partition(self, topic: str, index: int, proposed: PartitionState) -> PartitionState | None:
        """The store's compare-and-set (runs on the proposing broker's loop)."""
        with self._lock:
            current = self.states[(topic, index)]
            if proposed.leader_epoch != current.leader_epoch or \
                    proposed.partition_epoch != current.partition_epoch + 1:
                return None  # fenced: a newer state was written first
            self.states[(topic, index)] = proposed
            self.alter_calls += 1
            targets = list(self.brokers.values())
            loops = dict(self.loops)
        registrations = self.registrations()
        for embedded in targets:
            loop = loops.get(embedded.config.node_id)
            if loop is None:
                continue
            coro = embedded.broker.replica_manager.apply_partition_state(self.topics[topic], index, proposed,
                                                                         registrations)
            await asyncio.wrap_future(asyncio.run_coroutine_threadsafe(coro, loop))
        return proposed

    # -- looking inside ----------------------------------------------------------------------------

    def replica(self, node_id: int, topic: str, index: int = 0) -> Any:
        return self.brokers[node_id].broker.replica_manager.hosted_partition(topic, index)

    def offsets(self, node_id: int, topic: str, index: int = 0) -> tuple[int, int]:
        """(high watermark, log end offset) of a broker's replica, read on its loop."""
        partition = self.replica(node_id, topic, index)
        return self.brokers[node_id].call(_offsets(partition))

    def log_bytes(self, node_id: int, topic: str, index: int = 0) -> bytes:
        directory = self.root / f"broker-{node_id}" / f"{topic}-{index}"
        return b"".join(p.read_bytes() for p in sorted(directory.glob("*.log")))


async def _update_brokers(embedded: EmbeddedBroker, registrations: dict[int, BrokerRegistration]) -> None:
    embedded.broker.replica_manager.update_brokers(registrations)


async def _offsets(partition: Any) -> tuple[int, int]:
    return partition.log.high_watermark, partition.log.log_end_offset
