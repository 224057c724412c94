"""The one seam through which dynamic configs and security metadata are read, written and followed.

Dynamic broker configs ("" = cluster default, "<node id>" = one broker: Kafka's layout), topic config
overrides, and the security sections ("acls", "scram", "client_quotas", whose shapes security/ owns) are
written by AlterConfigs / IncrementalAlterConfigs, CreateAcls / DeleteAcls, AlterUserScramCredentials and
AlterClientQuotas. Every write is a coroutine and a read-modify-write (`change(current) -> new`), so the
event loop never blocks and two concurrent requests never lose each other's change:

- `LocalConfigStore`: a single broker's `LocalMetadataStore` (the fsync'ing JSON file), written in a
  worker thread, one writer per section at a time;
- `EtcdConfigStore`: the cluster's etcd (`EtcdClusterStore.update_json`, compare-and-set), so a change
  made through any broker holds on every broker, as Kafka keeps them in ZooKeeper (/config/*, /kafka-acl)
  or the KRaft metadata log.

Readers subscribe (`subscribe(listener)`) and reload what changed: the store calls `listener(kind, name)`
("brokers", resource) or ("security", section) after a write here, and, for etcd, after every change the
watch brings from another broker (`changed`, called by the broker's cluster member), and once for
everything when the store is attached (a broker starting later takes the cluster's state from the image).
Reloads are idempotent, so the writer's own change arriving again through the watch is harmless.
"""

from __future__ import annotations

import asyncio
import copy
import json
import logging
from collections.abc import Callable
from dataclasses import replace
from typing import TYPE_CHECKING, Any, Protocol

from moldau.cluster import image as keys
from moldau.cluster.metadata_store import LocalMetadataStore, TopicMetadata, UnknownTopicError

if TYPE_CHECKING:
    from moldau.cluster.etcd_store import EtcdClusterStore

log = logging.getLogger(__name__)

BROKERS, SECURITY = "brokers", "security"  # the kinds of ConfigChanged (cluster/image.py)
SECURITY_SECTIONS = ("acls", "scram", "client_quotas")

ConfigListener = Callable[[str, str], None]  # (kind, name)


class ConfigStore(Protocol):
    def broker_configs(self) -> dict[str, dict[str, str]]: ...

    def security(self, section: str) -> Any: ...

    async def update_security(self, section: str, change: Callable[[Any], Any]) -> Any: ...

    async def update_broker_configs(self, resource: str,
                                    change: Callable[[dict[str, str]], dict[str, str]]) -> dict[str, str]: ...

    async def update_topic_configs(self, metadata: TopicMetadata,
                                   change: Callable[[dict[str, str]], dict[str, str]]) -> TopicMetadata: ...

    def subscribe(self, listener: ConfigListener) -> None: ...


class _Listeners:
    def __init__(self) -> None:
        self._listeners: list[ConfigListener] = []
        self._locks: dict[str, asyncio.Lock] = {}

    def subscribe(self, listener: ConfigListener) -> None:
        self._listeners.append(listener)

    def changed(self, kind: str, name: str) -> None:
        """Tell every reader that `name` of `kind` changed (they reload it from this store)."""
        for listener in self._listeners:
            try:
                listener(kind, name)
            except Exception:  # one reader's bug must not keep the others on stale state
                log.exception("applying the change of %s %r failed", kind, name)

    def changed_all(self) -> None:
        for resource in set(self.broker_configs()) | {""}:
            self.changed(BROKERS, resource)
        for section in SECURITY_SECTIONS:
            self.changed(SECURITY, section)

    def broker_configs(self) -> dict[str, dict[str, str]]:
        raise NotImplementedError

    def _lock(self, key: str) -> asyncio.Lock:
        """Writers of one key take turns here (one event loop per broker)."""
        return self._locks.setdefault(key, asyncio.Lock())


class LocalConfigStore(_Listeners):
    """A single broker's configs in its `LocalMetadataStore`: today's layout, written off the event loop."""

    def __init__(self, local: LocalMetadataStore) -> None:
        super().__init__()
        self.local = local

    def broker_configs(self) -> dict[str, dict[str, str]]:
        return self.local.broker_configs()

    def security(self, section: str) -> Any:
        return self.local.security(section)

    async def update_security(self, section: str, change: Callable[[Any], Any]) -> Any:
        async with self._lock(f"{SECURITY}/{section}"):
            new = change(copy.deepcopy(self.local.security(section)))
            await asyncio.to_thread(self.local.set_security, section, new)
        self.changed(SECURITY, section)
        return new

    async def update_broker_configs(self, resource: str,
                                    change: Callable[[dict[str, str]], dict[str, str]]) -> dict[str, str]:
        async with self._lock(f"{BROKERS}/{resource}"):
            new = change(dict(self.local.broker_configs().get(resource, {})))
            await asyncio.to_thread(self.local.set_broker_configs, resource, new)
        self.changed(BROKERS, resource)
        return new

    async def update_topic_configs(self, metadata: TopicMetadata,
                                   change: Callable[[dict[str, str]], dict[str, str]]) -> TopicMetadata:
        async with self._lock(f"topics/{metadata.name}"):
            stored = self.local.topics().get(metadata.name)
            if stored is None:
                raise UnknownTopicError(f"Topic '{metadata.name}' does not exist.")
            new = replace(stored, configs=change(dict(stored.configs)))
            await asyncio.to_thread(self.local.update_topic, new)
        return new


class EtcdConfigStore(_Listeners):
    """The cluster's configs in etcd; empty until `attach` (the broker connects to etcd in `start`)."""

    def __init__(self) -> None:
        super().__init__()
        self.store: EtcdClusterStore | None = None

    def attach(self, store: EtcdClusterStore) -> None:
        """Read from `store`'s image from now on; every reader reloads everything."""
        self.store = store
        self.changed_all()

    def _attached(self) -> EtcdClusterStore:
        if self.store is None:
            raise RuntimeError("the broker is not connected to the cluster's metadata store yet")
        return self.store

    def broker_configs(self) -> dict[str, dict[str, str]]:
        return dict(self.store.image.broker_configs) if self.store is not None else {}

    def security(self, section: str) -> Any:
        return self.store.image.security.get(section) if self.store is not None else None

    async def update_security(self, section: str, change: Callable[[Any], Any]) -> Any:
        new = await self._attached().update_json(f"{keys.SECURITY}{section}", change)
        self.changed(SECURITY, section)
        return new

    async def update_broker_configs(self, resource: str,
                                    change: Callable[[dict[str, str]], dict[str, str]]) -> dict[str, str]:
        def changed(current: Any) -> Any:
            return change(dict(current or {})) or None  # no configs left: the key goes (ZooKeeper kept {})

        new = await self._attached().update_json(
            f"{keys.BROKER_CONFIGS}{resource or keys.DEFAULT_RESOURCE}", changed)
        self.changed(BROKERS, resource)
        return dict(new or {})

    async def update_topic_configs(self, metadata: TopicMetadata,
                                   change: Callable[[dict[str, str]], dict[str, str]]) -> TopicMetadata:
        """Only the topic's configs change: a CreatePartitions racing on another broker keeps its count."""
        def changed(current: Any) -> Any:
            if current is None:
                raise UnknownTopicError(f"Topic '{metadata.name}' does not exist.")
            return {**current, "configs": change(dict(current.get("configs", {})))}

        stored = await self._attached().update_json(f"{keys.TOPICS}{metadata.name}", changed)
        return keys.topic_from_json(json.dumps(stored).encode())


class MemoryConfigStore(_Listeners):
    """In memory, for tests of the readers without a broker."""

    def __init__(self) -> None:
        super().__init__()
        self.sections: dict[str, Any] = {}
        self.brokers: dict[str, dict[str, str]] = {}

    def broker_configs(self) -> dict[str, dict[str, str]]:
        return self.brokers

    def security(self, section: str) -> Any:
        return self.sections.get(section)

    async def update_security(self, section: str, change: Callable[[Any], Any]) -> Any:
        self.sections[section] = change(copy.deepcopy(self.sections.get(section)))
        self.changed(SECURITY, section)
        return self.sections[section]

    async def update_broker_configs(self, resource: str,
                                    change: Callable[[dict[str, str]], dict[str, str]]) -> dict[str, str]:
        self.brokers[resource] = change(dict(self.brokers.get(resource, {})))
        self.changed(BROKERS, resource)
        return self.brokers[resource]

    async def update_topic_configs(self, metadata: TopicMetadata,
                                   change: Callable[[dict[str, str]], dict[str, str]]) -> TopicMetadata:
        return replace(metadata, configs=change(dict(metadata.configs)))
