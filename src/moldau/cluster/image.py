"""The cluster metadata as one broker sees it: a replay of the etcd keys under the store's prefix.

`ClusterImage` is Kafka's MetadataImage for our key layout (docs/cluster.md): it is built from a range read
and then kept current by applying watch events, in etcd's revision order, one key at a time. `apply`
returns the typed event a broker acts on (become leader, become follower, forget a topic...). This module
does no I/O, so the replay is tested without etcd.
"""

from __future__ import annotations

import json
import uuid
from dataclasses import dataclass, field
from typing import Any

from moldau.cluster.metadata_store import TopicMetadata
from moldau.cluster.state import BrokerRegistration, PartitionState

# Key names under the prefix; "<default>" is Kafka's name (ZooKeeper mode: /config/brokers/<default>) for
# the cluster-wide dynamic broker configs, which the MetadataStore protocol calls resource "".
CLUSTER_ID = "cluster_id"
BROKERS = "brokers/ids/"
BROKER_EPOCH = "brokers/epoch"
CONTROLLER = "controller"
CONTROLLER_EPOCH = "controller_epoch"
TOPICS = "topics/"
PARTITIONS = "partitions/"
BROKER_CONFIGS = "configs/brokers/"
SECURITY = "security/"
DEFAULT_RESOURCE = "<default>"


@dataclass(frozen=True, slots=True)
class BrokerChanged:
    broker_id: int
    registration: BrokerRegistration | None  # None: the broker's lease ended (died, or shut down)


@dataclass(frozen=True, slots=True)
class TopicChanged:
    name: str
    metadata: TopicMetadata | None  # None: deleted (its PartitionChanged(..., None) events come with it)


@dataclass(frozen=True, slots=True)
class PartitionChanged:
    topic: str
    index: int
    state: PartitionState | None


@dataclass(frozen=True, slots=True)
class ControllerChanged:
    controller_id: int | None  # None: no controller until the next one wins the election
    epoch: int


@dataclass(frozen=True, slots=True)
class ConfigChanged:
    kind: str  # "brokers" (resource in `name`, "" for the cluster default) or "security" (section)
    name: str


@dataclass(frozen=True, slots=True)
class Resynced:
    """The watch broke (etcd restarted, compaction) and the image was reloaded: anything may have changed.

    Followed by the events for every difference between the old and the new image."""

    revision: int


ClusterEvent = BrokerChanged | TopicChanged | PartitionChanged | ControllerChanged | ConfigChanged | Resynced


def topic_to_json(topic: TopicMetadata) -> bytes:
    return json.dumps({"name": topic.name, "topic_id": str(topic.topic_id), "num_partitions": topic.num_partitions,
                       "replication_factor": topic.replication_factor, "configs": topic.configs,
                       "is_internal": topic.is_internal}, sort_keys=True).encode()


def topic_from_json(raw: bytes) -> TopicMetadata:
    data = json.loads(raw)
    return TopicMetadata(name=data["name"], topic_id=uuid.UUID(data["topic_id"]),
                         num_partitions=int(data["num_partitions"]),
                         replication_factor=int(data.get("replication_factor", 1)),
                         configs=dict(data.get("configs", {})), is_internal=bool(data.get("is_internal", False)))


def partition_key(topic: str, index: int) -> str:
    return f"{PARTITIONS}{topic}/{index}"


@dataclass
class ClusterImage:
    cluster_id: str = ""
    brokers: dict[int, BrokerRegistration] = field(default_factory=dict)
    topics: dict[str, TopicMetadata] = field(default_factory=dict)
    partitions: dict[tuple[str, int], PartitionState] = field(default_factory=dict)
    # etcd mod revision of each partition key: the value compare-and-set compares (fencing).
    partition_revisions: dict[tuple[str, int], int] = field(default_factory=dict)
    controller_id: int | None = None
    controller_epoch: int = 0
    broker_configs: dict[str, dict[str, str]] = field(default_factory=dict)
    security: dict[str, Any] = field(default_factory=dict)
    revision: int = 0  # the etcd revision this image reflects

    def partitions_of(self, topic: str) -> dict[int, PartitionState]:
        # list(): a worker thread may call this while the loop applies a change (one C-level copy under the GIL)
        return {index: state for (name, index), state in list(self.partitions.items()) if name == topic}

    def apply(self, key: str, value: bytes | None, mod_revision: int) -> ClusterEvent | None:
        """Applies one put (value) or delete (None) of `key` (relative to the prefix); returns its event."""
        if key.startswith(BROKERS):
            broker_id = int(key[len(BROKERS):])
            if value is None:
                self.brokers.pop(broker_id, None)
                return BrokerChanged(broker_id, None)
            registration = BrokerRegistration.from_json(value)
            self.brokers[broker_id] = registration
            return BrokerChanged(broker_id, registration)
        if key.startswith(PARTITIONS):
            topic_name, _, index_text = key[len(PARTITIONS):].rpartition("/")
            tp = (topic_name, int(index_text))
            if value is None:
                self.partitions.pop(tp, None)
                self.partition_revisions.pop(tp, None)
                return PartitionChanged(tp[0], tp[1], None)
            state = PartitionState.from_json(value)
            self.partitions[tp] = state
            self.partition_revisions[tp] = mod_revision
            return PartitionChanged(tp[0], tp[1], state)
        if key.startswith(TOPICS):
            name = key[len(TOPICS):]
            if value is None:
                self.topics.pop(name, None)
                return TopicChanged(name, None)
            topic = topic_from_json(value)
            self.topics[name] = topic
            return TopicChanged(name, topic)
        if key == CONTROLLER:
            if value is None:
                self.controller_id = None
            else:
                data = json.loads(value)
                self.controller_id, self.controller_epoch = int(data["broker_id"]), int(data["epoch"])
            return ControllerChanged(self.controller_id, self.controller_epoch)
        if key == CLUSTER_ID:
            self.cluster_id = value.decode() if value is not None else ""
            return None
        if key.startswith(BROKER_CONFIGS):
            resource = key[len(BROKER_CONFIGS):]
            resource = "" if resource == DEFAULT_RESOURCE else resource
            if value is None:
                self.broker_configs.pop(resource, None)
            else:
                self.broker_configs[resource] = dict(json.loads(value))
            return ConfigChanged("brokers", resource)
        if key.startswith(SECURITY):
            section = key[len(SECURITY):]
            if value is None:
                self.security.pop(section, None)
            else:
                self.security[section] = json.loads(value)
            return ConfigChanged("security", section)
        return None  # counters (broker epoch, controller epoch) and keys of later versions


def diff(old: ClusterImage, new: ClusterImage) -> list[ClusterEvent]:
    """The events that turn `old` into `new`: what a subscriber missed while the watch was broken."""
    events: list[ClusterEvent] = []
    for broker_id in old.brokers.keys() | new.brokers.keys():
        if old.brokers.get(broker_id) != new.brokers.get(broker_id):
            events.append(BrokerChanged(broker_id, new.brokers.get(broker_id)))
    for name in old.topics.keys() | new.topics.keys():
        if old.topics.get(name) != new.topics.get(name):
            events.append(TopicChanged(name, new.topics.get(name)))
    for key in old.partitions.keys() | new.partitions.keys():
        if old.partitions.get(key) != new.partitions.get(key):
            events.append(PartitionChanged(key[0], key[1], new.partitions.get(key)))
    if (old.controller_id, old.controller_epoch) != (new.controller_id, new.controller_epoch):
        events.append(ControllerChanged(new.controller_id, new.controller_epoch))
    for resource in old.broker_configs.keys() | new.broker_configs.keys():
        if old.broker_configs.get(resource) != new.broker_configs.get(resource):
            events.append(ConfigChanged("brokers", resource))
    for section in old.security.keys() | new.security.keys():
        if old.security.get(section) != new.security.get(section):
            events.append(ConfigChanged("security", section))
    return events
