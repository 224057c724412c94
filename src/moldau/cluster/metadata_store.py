"""Cluster metadata: which topics exist, their ids, partitions and configs.

`MetadataStore` is the interface (DESIGN §8); `LocalMetadataStore` is the embedded, file-backed
implementation a single broker uses by default: one JSON document written atomically
(temp file, fsync, rename) in the first log dir.

A topic is created in two steps so that a crash never leaves half of one: it is first stored with
`creating=True`, its partitions are created, and then it is stored again without the mark. A broker
that finds a marked topic on start removes it (KRaft gets the same all-or-nothing from writing a
topic's records as one atomic batch). The store is thread-safe, so the broker writes it off the
event loop.
"""

from __future__ import annotations

import json
import os
import threading
import uuid
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol

from moldau.errors import MoldauError


class TopicExistsError(MoldauError):
    pass


class UnknownTopicError(MoldauError):
    pass


@dataclass(slots=True)
class TopicMetadata:
    name: str
    topic_id: uuid.UUID
    num_partitions: int
    replication_factor: int = 1
    configs: dict[str, str] = field(default_factory=dict)
    is_internal: bool = False
    creating: bool = False  # stored before its partitions exist; removed on start if still set


class MetadataStore(Protocol):
    cluster_id: str

    def set_cluster_id(self, cluster_id: str) -> None: ...

    def topics(self) -> dict[str, TopicMetadata]: ...

    def create_topic(self, topic: TopicMetadata) -> None: ...

    def delete_topic(self, name: str) -> TopicMetadata: ...

    def update_topic(self, topic: TopicMetadata) -> None: ...

    def broker_configs(self) -> dict[str, dict[str, str]]: ...

    def set_broker_configs(self, resource: str, configs: dict[str, str]) -> None: ...

    def security(self, section: str) -> Any: ...

    def set_security(self, section: str, value: Any) -> None: ...


class LocalMetadataStore:
    """File-backed metadata for a one-broker cluster."""

    FILE_NAME = "__moldau_metadata.json"

    def __init__(self, directory: Path) -> None:
        self._path = directory / self.FILE_NAME
        self._topics: dict[str, TopicMetadata] = {}
        # Dynamic broker configs: "" is the cluster-wide default, "<node id>" one broker (Kafka's layout).
        self._broker_configs: dict[str, dict[str, str]] = {}
        # Security metadata as JSON values: "scram" credentials, "acls", "client_quotas" (security/ owns the shapes).
        self._security: dict[str, Any] = {}
        self.cluster_id = ""
        self._lock = threading.RLock()  # callers write from worker threads; one writer of the file at a time
        directory.mkdir(parents=True, exist_ok=True)
        if self._path.exists():
            self._load()

    def _load(self) -> None:
        document = json.loads(self._path.read_text())
        self.cluster_id = document.get("cluster_id", "")
        self._broker_configs = {k: dict(v) for k, v in document.get("broker_configs", {}).items()}
        self._security = dict(document.get("security", {}))
        for entry in document.get("topics", []):
            topic = TopicMetadata(
                name=entry["name"],
                topic_id=uuid.UUID(entry["topic_id"]),
                num_partitions=entry["num_partitions"],
                replication_factor=entry.get("replication_factor", 1),
                configs=dict(entry.get("configs", {})),
                is_internal=entry.get("is_internal", False),
                creating=entry.get("creating", False),
            )
            self._topics[topic.name] = topic

    def _write(self) -> None:
        document = {
            "cluster_id": self.cluster_id,
            "broker_configs": self._broker_configs,
            "security": self._security,
            "topics": [
                {
                    "name": t.name,
                    "topic_id": str(t.topic_id),
                    "num_partitions": t.num_partitions,
                    "replication_factor": t.replication_factor,
                    "configs": t.configs,
                    "is_internal": t.is_internal,
                    **({"creating": True} if t.creating else {}),
                }
                for t in self._topics.values()
            ],
        }
        tmp = self._path.with_suffix(".tmp")
        with open(tmp, "w") as f:
            json.dump(document, f, indent=1, sort_keys=True)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, self._path)
        dir_fd = os.open(self._path.parent, os.O_RDONLY)
        try:
            os.fsync(dir_fd)
        finally:
            os.close(dir_fd)

    def set_cluster_id(self, cluster_id: str) -> None:
        with self._lock:
            self.cluster_id = cluster_id
            self._write()

    def topics(self) -> dict[str, TopicMetadata]:
        with self._lock:
            return dict(self._topics)

    def create_topic(self, topic: TopicMetadata) -> None:
        with self._lock:
            if topic.name in self._topics:
                raise TopicExistsError(f"Topic '{topic.name}' already exists.")
            self._topics[topic.name] = topic
            self._write()

    def delete_topic(self, name: str) -> TopicMetadata:
        with self._lock:
            topic = self._topics.pop(name, None)
            if topic is None:
                raise UnknownTopicError(f"Topic '{name}' does not exist.")
            self._write()
            return topic

    def update_topic(self, topic: TopicMetadata) -> None:
        with self._lock:
            if topic.name not in self._topics:
                raise UnknownTopicError(f"Topic '{topic.name}' does not exist.")
            self._topics[topic.name] = topic
            self._write()

    def broker_configs(self) -> dict[str, dict[str, str]]:
        return self._broker_configs

    def set_broker_configs(self, resource: str, configs: dict[str, str]) -> None:
        with self._lock:
            if configs:
                self._broker_configs[resource] = dict(configs)
            else:
                self._broker_configs.pop(resource, None)
            self._write()

    def security(self, section: str) -> Any:
        return self._security.get(section)

    def set_security(self, section: str, value: Any) -> None:
        with self._lock:
            self._security[section] = value
            self._write()
