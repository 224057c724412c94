"""Topic administration: create, delete and grow topics (the controller's part of Kafka's
`ReplicationControlManager`), for CreateTopics, DeleteTopics, CreatePartitions and auto-creation.

This is the seam where a cluster controller (etcd, DESIGN §8) plugs in later; `ReplicaManager` keeps
serving the partitions this broker hosts.

- **Limits.** KIP-578's `max.partitions` (cluster) and `max.broker.partitions` (this broker), and KRaft's
  cap on partitions per request (`MAX_PARTITIONS_PER_BATCH`, made configurable as
  `moldau.max.partitions.per.request`), refuse oversized requests with POLICY_VIOLATION before any work.
- **Off the loop.** Partition directories are created and removed in a worker thread (DESIGN §2.5), so
  the broker keeps serving while a big topic is created or deleted.
- **All or nothing.** A topic is stored marked `creating` before its partitions exist and unmarked after
  (cluster/metadata_store.py); `load` removes a marked topic and any partition directory metadata does
  not name, so after a crash a topic is fully there or absent, and start never re-creates partitions.
"""

from __future__ import annotations

import asyncio
import logging
import uuid
from collections import Counter
from collections.abc import AsyncIterator, Coroutine, Iterable
from contextlib import asynccontextmanager
from dataclasses import replace
from typing import Any, TypeVar

from moldau.broker.config import BrokerConfig, ConfigError
from moldau.broker.errors import ApiError
from moldau.broker.replica_manager import INTERNAL_TOPICS, ReplicaManager, Topic
from moldau.broker.topic_config import validate_topic_configs, validate_topic_name
from moldau.cluster.metadata_store import MetadataStore, TopicMetadata, UnknownTopicError
from moldau.protocol.errors import ErrorCode
from moldau.storage.errors import StorageError

log = logging.getLogger(__name__)


T = TypeVar("T")


def _forget_result(task: asyncio.Future[Any]) -> None:
    """Its caller may be gone: fetch the outcome, so an error is not reported as never retrieved."""
    if not task.cancelled():
        task.exception()


def collision_key(name: str) -> str:
    """Kafka's `Topic.hasCollision`: '.' and '_' map to the same metric name, so `a.b` and `a_b` collide."""
    return name.replace(".", "_")


class Controller:
    def __init__(self, config: BrokerConfig, store: MetadataStore, replica_manager: ReplicaManager) -> None:
        self.config = config
        self.store = store
        self.replica_manager = replica_manager
        self._busy: dict[str, asyncio.Future[None]] = {}  # topic name -> its create/delete/grow in progress
        self._creating: dict[str, str] = {}  # collision key -> name, of topics being created
        self._reserved = 0  # partitions being created, counted against the limits
        self._running: set[asyncio.Future[Any]] = set()

    # -- start -----------------------------------------------------------------------------------

    def load(self) -> None:
        """Open every committed topic, after rolling back what a crash left half done.

        Blocking file work: the broker calls this in a worker thread before it listens.
        """
        manager = self.replica_manager
        topics = self.store.topics()
        present = Counter(lg.topic for lg in manager.log_manager.all_logs()
                          if lg.topic in topics and lg.partition < topics[lg.topic].num_partitions)
        total = sum(m.num_partitions for m in topics.values())
        for metadata in list(topics.values()):
            missing = metadata.num_partitions - present[metadata.name] if total > self._broker_limit() else 0
            if metadata.creating:
                log.warning("removing topic %s: its creation did not finish before the broker stopped",
                            metadata.name)
            elif missing:
                # Written by an older broker that stored the topic before creating its partitions.
                log.error("removing topic %s: %d of its %d partitions were never created, and creating them "
                          "would exceed max.broker.partitions=%d", metadata.name, missing,
                          metadata.num_partitions, self._broker_limit())
            else:
                continue
            self.store.delete_topic(metadata.name)
            del topics[metadata.name]
            total -= metadata.num_partitions
        self._delete_strays(topics)
        for metadata in topics.values():
            manager.add_topic(Topic(metadata, manager.open_partitions(metadata, range(metadata.num_partitions))))

    def _delete_strays(self, topics: dict[str, TopicMetadata]) -> None:
        """Delete partition logs that committed metadata does not name (KIP-858's stray logs): left by a
        crash during a create, a grow or a delete, they must not reappear in a new topic of the same name."""
        log_manager = self.replica_manager.log_manager
        for partition_log in log_manager.all_logs():
            metadata = topics.get(partition_log.topic)
            if metadata is None or partition_log.partition >= metadata.num_partitions:
                log.warning("deleting stray partition directory %s: no topic in metadata owns it",
                            partition_log.dir)
                log_manager.delete_log(partition_log.topic, partition_log.partition)

    # -- limits ----------------------------------------------------------------------------------

    def _broker_limit(self) -> int:
        # One broker hosts every partition, so the cluster limit bounds it too.
        return min(int(self.config["max.broker.partitions"]), int(self.config["max.partitions"]))

    def check_request_partitions(self, requested: int) -> None:
        """KRaft's cap on partitions one request may create (KAFKA-14996), checked before any topic."""
        limit = int(self.config["moldau.max.partitions.per.request"])
        if requested > limit:
            raise ApiError(ErrorCode.POLICY_VIOLATION,
                           f"Excessively large number of partitions per request: {requested} requested, "
                           f"limit moldau.max.partitions.per.request={limit}.")

    def _check_broker_partitions(self, added: int) -> None:
        """KIP-578: refuse to go past `max.broker.partitions` / `max.partitions`."""
        current = sum(len(t.partitions) for t in self.replica_manager.topics.values()) + self._reserved
        for name in ("max.broker.partitions", "max.partitions"):
            limit = int(self.config[name])
            if current + added > limit:
                raise ApiError(ErrorCode.POLICY_VIOLATION,
                               f"Adding {added} partition(s) would bring this broker to {current + added} "
                               f"partitions, more than {name}={limit}.")

    # -- serialising work on one topic ----------------------------------------------------------

    async def _detached(self, work: Coroutine[Any, Any, T]) -> T:
        """Run `work` as a task that its caller's cancellation does not stop: a client that hangs up in the
        middle of a CreateTopics must not leave the topic committed on disk but not served. `shutdown`
        waits for these tasks."""
        task = asyncio.ensure_future(work)
        self._running.add(task)
        task.add_done_callback(_forget_result)
        task.add_done_callback(self._running.discard)
        return await asyncio.shield(task)

    async def shutdown(self) -> None:
        """Let topic changes in progress finish, so no thread writes to a log dir the broker has closed."""
        while self._running:
            await asyncio.gather(*self._running, return_exceptions=True)

    @asynccontextmanager
    async def _exclusive(self, name: str) -> AsyncIterator[None]:
        """One create, delete or grow of a topic at a time; others on the same name wait their turn."""
        while (busy := self._busy.get(name)) is not None:
            await asyncio.shield(busy)
        done: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self._busy[name] = done
        try:
            yield
        finally:
            del self._busy[name]
            done.set_result(None)

    # -- create ----------------------------------------------------------------------------------

    def _new_topic_metadata(self, name: str, num_partitions: int, replication_factor: int,
                            configs: dict[str, str | None] | None, *, limited: bool = True) -> TopicMetadata:
        problem = validate_topic_name(name)
        if problem:
            raise ApiError(ErrorCode.INVALID_TOPIC_EXCEPTION, problem)
        if name in self.replica_manager.topics or self._creating.get(collision_key(name)) == name:
            raise ApiError(ErrorCode.TOPIC_ALREADY_EXISTS, f"Topic '{name}' already exists.")
        colliding = self._colliding_topic(name)
        if colliding is not None:
            raise ApiError(ErrorCode.INVALID_TOPIC_EXCEPTION, f"Topic '{name}' collides with existing topic: "
                                                              f"{colliding}")
        if num_partitions == -1:
            num_partitions = self.config["num.partitions"]
        if replication_factor == -1:
            replication_factor = self.config["default.replication.factor"]
        if num_partitions <= 0:
            raise ApiError(ErrorCode.INVALID_PARTITIONS, "Number of partitions must be larger than 0.")
        if replication_factor <= 0:
            raise ApiError(ErrorCode.INVALID_REPLICATION_FACTOR, "Replication factor must be larger than 0.")
        self._check_replication_factor(replication_factor)
        try:
            checked = validate_topic_configs(configs or {})
        except ConfigError as exc:
            raise ApiError(ErrorCode.INVALID_CONFIG, str(exc)) from None
        if limited:
            self._check_broker_partitions(num_partitions)
        return TopicMetadata(name=name, topic_id=uuid.uuid4(), num_partitions=num_partitions,
                             replication_factor=replication_factor, configs=checked,
                             is_internal=name in INTERNAL_TOPICS)

    def _check_replication_factor(self, replication_factor: int) -> None:
        if replication_factor > 1:
            raise ApiError(
                ErrorCode.INVALID_REPLICATION_FACTOR,
                f"Unable to replicate the partition {replication_factor} time(s): The target replication "
                f"factor of {replication_factor} cannot be reached because only 1 broker(s) are registered.",
            )

    def _colliding_topic(self, name: str) -> str | None:
        key = collision_key(name)
        if key in self._creating and self._creating[key] != name:
            return self._creating[key]
        colliding = [t for t in self.replica_manager.topics if t != name and collision_key(t) == key]
        return min(colliding) if colliding else None

    async def create_topic(self, name: str, num_partitions: int = -1, replication_factor: int = -1,
                           configs: dict[str, str | None] | None = None, *,
                           validate_only: bool = False) -> TopicMetadata:
        """CreateTopics for one topic; the partitions are created in a worker thread."""
        if validate_only:
            return self._new_topic_metadata(name, num_partitions, replication_factor, configs)
        return await self._detached(self._create_exclusive(name, num_partitions, replication_factor, configs))

    async def _create_exclusive(self, name: str, num_partitions: int, replication_factor: int,
                                configs: dict[str, str | None] | None, *, limited: bool = True,
                                exist_ok: bool = False) -> TopicMetadata:
        async with self._exclusive(name):
            if exist_ok and name in self.replica_manager.topics:
                return self.replica_manager.topics[name].metadata
            # Validated and reserved with no await in between, so concurrent creates can't both fit a limit.
            return await self._create(self._new_topic_metadata(name, num_partitions, replication_factor, configs,
                                                               limited=limited))

    async def _create(self, metadata: TopicMetadata) -> TopicMetadata:
        key = collision_key(metadata.name)
        self._creating[key] = metadata.name
        self._reserved += metadata.num_partitions
        try:
            topic = await asyncio.to_thread(self._materialize, metadata)
        except (OSError, StorageError) as exc:
            log.error("creating topic %s failed: %s", metadata.name, exc)
            raise ApiError(ErrorCode.KAFKA_STORAGE_ERROR, f"Creating topic {metadata.name} failed: {exc}") from None
        finally:
            del self._creating[key]
            self._reserved -= metadata.num_partitions
        self.replica_manager.add_topic(topic)
        log.info("created topic %s with %d partition(s), id %s", metadata.name, metadata.num_partitions,
                 metadata.topic_id)
        return topic.metadata

    def _materialize(self, metadata: TopicMetadata) -> Topic:
        """Store the topic marked `creating`, create its partitions, then clear the mark (the commit)."""
        self.store.create_topic(replace(metadata, creating=True))
        try:
            partitions = self.replica_manager.open_partitions(metadata, range(metadata.num_partitions))
            self.store.update_topic(metadata)
        except BaseException:
            self._undo_create(metadata)
            raise
        return Topic(metadata, partitions)

    def _undo_create(self, metadata: TopicMetadata) -> None:
        """Best effort: what is left (a full disk) is rolled back by `load` on the next start."""
        try:
            self.store.delete_topic(metadata.name)
            self._delete_logs(metadata.name, range(metadata.num_partitions))
        except (OSError, StorageError, UnknownTopicError) as exc:
            log.warning("could not roll back topic %s now (%s); the next start will", metadata.name, exc)

    async def create_internal_topic(self, name: str, num_partitions: int, replication_factor: int,
                                    configs: dict[str, str | None]) -> None:
        """`__consumer_offsets` / `__transaction_state` on first use; concurrent callers wait for one creation.

        The operator's `*.num.partitions` sizes them, so the partition limits meant for clients don't apply."""
        await self._detached(self._create_exclusive(name, num_partitions, replication_factor, configs,
                                                    limited=False, exist_ok=True))

    async def auto_create(self, name: str) -> Topic | None:
        """Kafka's `auto.create.topics.enable`: Metadata for an unknown topic creates it, within the limits."""
        if not self.config["auto.create.topics.enable"] or validate_topic_name(name) or name in INTERNAL_TOPICS:
            return None
        await self._detached(self._auto_create_exclusive(name))
        return self.replica_manager.topics.get(name)

    async def _auto_create_exclusive(self, name: str) -> None:
        async with self._exclusive(name):
            if name not in self.replica_manager.topics:  # else a concurrent request created it
                await self._create(self._new_topic_metadata(name, -1, -1, None))

    # -- grow ------------------------------------------------------------------------------------

    async def create_partitions(self, name: str, count: int, *, validate_only: bool = False) -> Topic:
        """CreatePartitions: grow a topic to `count` partitions (never shrink)."""
        topic = self._check_growth(name, count)
        if validate_only:
            return topic
        return await self._detached(self._grow_exclusive(name, count))

    async def _grow_exclusive(self, name: str, count: int) -> Topic:
        async with self._exclusive(name):
            topic = self._check_growth(name, count)
            current = len(topic.partitions)
            metadata = replace(topic.metadata, num_partitions=count)
            self._reserved += count - current
            try:
                added = await asyncio.to_thread(self._grow, metadata, current)
            except (OSError, StorageError) as exc:
                log.error("adding partitions to %s failed: %s", name, exc)
                raise ApiError(ErrorCode.KAFKA_STORAGE_ERROR, f"Adding partitions to {name} failed: {exc}") from None
            finally:
                self._reserved -= count - current
            self.replica_manager.add_partitions(metadata, added)
        log.info("added partitions to topic %s: %d -> %d", name, current, count)
        return topic

    def _check_growth(self, name: str, count: int) -> Topic:
        topic = self.replica_manager.topics.get(name)
        if topic is None:
            raise ApiError(ErrorCode.UNKNOWN_TOPIC_OR_PARTITION, f"The topic '{name}' does not exist.")
        current = len(topic.partitions)
        if count < current:
            raise ApiError(ErrorCode.INVALID_PARTITIONS, f"Topic currently has {current} partitions, which is "
                                                         f"higher than the requested {count}.")
        if count == current:
            raise ApiError(ErrorCode.INVALID_PARTITIONS, f"Topic already has {current} partitions.")
        self._check_broker_partitions(count - current)
        return topic

    def _grow(self, metadata: TopicMetadata, current: int) -> list:
        """Create the new partitions, then store the new count (the commit); `load` deletes partitions
        past the stored count, so a crash in between leaves the topic as it was."""
        partitions = self.replica_manager.open_partitions(metadata, range(current, metadata.num_partitions))
        self.store.update_topic(metadata)
        return partitions

    # -- delete ----------------------------------------------------------------------------------

    async def delete_topic(self, name: str) -> TopicMetadata:
        """DeleteTopics: the metadata change commits it; the files go in a worker thread."""
        return await self._detached(self._delete_exclusive(name))

    async def _delete_exclusive(self, name: str) -> TopicMetadata:
        async with self._exclusive(name):
            topic = self.replica_manager.topics.get(name)
            if topic is None:
                raise ApiError(ErrorCode.UNKNOWN_TOPIC_OR_PARTITION, "This server does not host this topic.")
            if not self.config["delete.topic.enable"]:
                raise ApiError(ErrorCode.TOPIC_DELETION_DISABLED, "Topic deletion is disabled.")
            try:
                await asyncio.to_thread(self.store.delete_topic, name)
            except OSError as exc:
                raise ApiError(ErrorCode.KAFKA_STORAGE_ERROR, f"Deleting topic {name} failed: {exc}") from None
            self.replica_manager.remove_topic(name)
            try:
                await asyncio.to_thread(self._delete_logs, name, [p.index for p in topic.partitions])
            except (OSError, StorageError) as exc:  # deleted all the same: the next start removes the rest
                log.error("removing the files of deleted topic %s failed: %s", name, exc)
        log.info("deleted topic %s (id %s)", name, topic.topic_id)
        return topic.metadata

    def _delete_logs(self, name: str, indexes: Iterable[int]) -> None:
        for index in indexes:
            self.replica_manager.log_manager.delete_log(name, index)
