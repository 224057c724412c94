"""Cluster metadata in etcd, as Kafka's ZooKeeper mode kept it in ZooKeeper (docs/cluster.md has the keys).

`EtcdClusterStore` runs on the broker's event loop. It keeps a `ClusterImage` loaded at connect and then
current through ONE watch on the prefix, started at the load revision + 1 so that no change falls in the
gap; subscribers receive the typed events in etcd's order (`subscribe()`). When the watch breaks (etcd
restarted, history compacted) the store reloads everything and emits `Resynced` and the differences.
Every write is a transaction, and returns once the watch has applied it, so a writer reads its own write
from the image.

    store = await EtcdClusterStore.connect("etcd://127.0.0.1:2379/moldau")
    registration = await store.register_broker(BrokerRegistration(1, endpoints), session_timeout_ms=1000)
    events = store.subscribe()
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import math
from collections.abc import Callable
from dataclasses import dataclass, replace
from typing import Any

import aetcd  # type: ignore[import-untyped]
from aetcd.utils import prefix_range_end  # type: ignore[import-untyped]

from moldau.cluster import image as keys
from moldau.cluster.etcd_errors import (
    DuplicateBrokerRegistrationError,
    answers_timeout,
)
from moldau.cluster.etcd_url import grpc_targets, parse_url
from moldau.cluster.image import (
    BrokerChanged,
    ClusterEvent,
    ClusterImage,
    Resynced,
    diff,
    partition_key,
    topic_to_json,
)
from moldau.cluster.leases import KeptLease
from moldau.cluster.metadata_store import TopicExistsError, TopicMetadata, UnknownTopicError
from moldau.cluster.state import BrokerRegistration, PartitionState
from moldau.errors import ApiError, MoldauError
from moldau.protocol.errors import ErrorCode

log = logging.getLogger(__name__)

PRODUCER_ID_BLOCK = "producer_ids/next_block"

RPC_TIMEOUT_S = 5  # every etcd call is bounded: a dead etcd is an error, not a hang
WRITE_VISIBLE_TIMEOUT_S = 5.0


@dataclass(frozen=True, slots=True)
class ControllerSession:
    """This process's term as controller: the controller key exists while `lease` lives."""

    broker_id: int
    epoch: int
    create_revision: int  # fences writes: they compare the controller key's create revision with it
    lease: KeptLease


class EtcdClusterStore:
    def __init__(self, client: aetcd.Client, prefix: str) -> None:
        self.client = client
        self.prefix = prefix.rstrip("/") + "/"
        self._prefix_bytes = self.prefix.encode()
        self.image = ClusterImage()
        self._subscribers: list[asyncio.Queue[ClusterEvent]] = []
        self._waiters: list[tuple[int, asyncio.Future[None]]] = []
        self._watch_task: asyncio.Task[None] | None = None
        self._watch: Any = None
        self._watching = asyncio.Event()  # the watch stream is established
        self._closed = False
        self._registration_lease: KeptLease | None = None
        self.registration: BrokerRegistration | None = None
        self._on_session_change: Callable[[BrokerRegistration | None], None] | None = None
        self.loop = asyncio.get_running_loop()

    # -- connection, image and watch -------------------------------------------------------------------
    @classmethod
    async def connect(cls, url: str) -> EtcdClusterStore:
        endpoints, prefix = parse_url(url)
        error: Exception | None = None
        for host, port in grpc_targets(endpoints):
            client = aetcd.Client(host=host, port=port, timeout=RPC_TIMEOUT_S)
            store = cls(client, prefix)
            try:
                await store._load()
                store._watch_task = store.loop.create_task(store._watch_loop(), name="etcd-watch")
                async with asyncio.timeout(RPC_TIMEOUT_S):
                    await store._watching.wait()
                return store
            except (aetcd.ClientError, TimeoutError) as exc:
                error = exc
                if store._watch_task is not None:
                    store._watch_task.cancel()
                await client.close()
        raise MoldauError(f"cannot reach etcd at {url}: {error}")

    @staticmethod
    async def active_controller(url: str) -> int | None:
        """The broker id of the active controller (None: none elected), read once from etcd: for operators'
        tools, since Metadata and DescribeCluster name a live broker instead, as KRaft brokers do."""
        endpoints, prefix = parse_url(url)
        host, port = grpc_targets(endpoints)[0]
        client = aetcd.Client(host=host, port=port, timeout=RPC_TIMEOUT_S)
        try:
            found = await client.get((prefix.rstrip("/") + "/" + keys.CONTROLLER).encode())
        finally:
            await client.close()
        return None if found is None else int(json.loads(found.value)["broker_id"])

    async def close(self) -> None:
        """Stops watching and closes the connection; a registered broker's lease is left to expire."""
        self._closed = True
        if self._registration_lease is not None:
            self._registration_lease.stop()
        if self._watch_task is not None:
            self._watch_task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._watch_task
        await self.client.close()

    def _key(self, relative: str) -> bytes:
        return (self.prefix + relative).encode()

    async def _load(self) -> None:
        result = await self.client.get_prefix(self._prefix_bytes)
        new = ClusterImage(revision=result.header.revision)
        for kv in result:
            new.apply(kv.key.decode()[len(self.prefix):], kv.value, kv.mod_revision)
        old, self.image = self.image, new
        if old.revision:
            self._publish(Resynced(new.revision))
            for event in diff(old, new):
                self._publish(event)
        self._wake_waiters()

    async def _watch_loop(self) -> None:
        backoff = 0.05
        while not self._closed:
            try:
                self._watch = await self.client.watch_prefix(self._prefix_bytes,
                                                             start_revision=self.image.revision + 1)
                self._watching.set()
                async for event in self._watch:
                    value = event.kv.value if event.kind == aetcd.EventKind.PUT else None
                    applied = self.image.apply(event.kv.key.decode()[len(self.prefix):], value,
                                               event.kv.mod_revision)
                    self.image.revision = max(self.image.revision, event.kv.mod_revision)
                    if applied is not None:
                        self._publish(applied)
                        if isinstance(applied, BrokerChanged) and applied.registration is None \
                                and self.registration is not None \
                                and applied.broker_id == self.registration.broker_id:
                            self.loop.create_task(self._restore_registration(self._registration_lease))
                    # Runs once this task waits for the next response, i.e. after every event of this
                    # revision was applied (aetcd queues a whole response before this task resumes).
                    self.loop.call_soon(self._wake_waiters)
                    backoff = 0.05
                if self._closed:
                    return
            except asyncio.CancelledError:
                raise
            except Exception as exc:  # noqa: BLE001 - the stream broke: reload and watch again, never hang on a dead watch
                log.warning("etcd watch on %s broke (%s); resyncing", self.prefix, exc)
            while not self._closed:
                try:
                    await self._load()
                    break
                except aetcd.ClientError as exc:
                    log.info("etcd unreachable, resync retry in %.2f s: %s", backoff, exc)
                    await asyncio.sleep(backoff)
                    backoff = min(backoff * 2, 1.0)

    def _wake_waiters(self) -> None:
        remaining = []
        for revision, future in self._waiters:
            if revision <= self.image.revision:
                if not future.done():
                    future.set_result(None)
            else:
                remaining.append((revision, future))
        self._waiters = remaining

    async def _visible(self, revision: int) -> None:
        """Waits until the image includes `revision` (read-your-writes), bounded."""
        if revision <= self.image.revision:
            return
        future: asyncio.Future[None] = self.loop.create_future()
        self._waiters.append((revision, future))
        try:
            async with asyncio.timeout(WRITE_VISIBLE_TIMEOUT_S):
                await future
        except TimeoutError:
            log.warning("etcd write at revision %d not seen by the watch within %.0f s", revision,
                        WRITE_VISIBLE_TIMEOUT_S)

    def subscribe(self) -> asyncio.Queue[ClusterEvent]:
        """A queue of every later change, in etcd's order (a Resynced first when the watch was rebuilt)."""
        queue: asyncio.Queue[ClusterEvent] = asyncio.Queue()
        self._subscribers.append(queue)
        return queue

    def unsubscribe(self, queue: asyncio.Queue[ClusterEvent]) -> None:
        if queue in self._subscribers:
            self._subscribers.remove(queue)

    def _publish(self, event: ClusterEvent) -> None:
        for queue in self._subscribers:
            queue.put_nowait(event)

    async def _txn(self, compare: list[Any], success: list[Any], failure: list[Any] | None = None,
                   ) -> tuple[bool, list[Any]]:
        ok, responses = await self.client.transaction(compare=compare, success=success, failure=failure or [])
        return bool(ok), responses

    async def _write(self, compare: list[Any], success: list[Any], read_back: str,
                     failure: list[Any] | None = None) -> tuple[bool, list[Any]]:
        """A transaction that also reads `read_back` (a key it writes) to learn its revision, then waits for
        the watch to apply it."""
        t = self.client.transactions
        ok, responses = await self._txn(compare, [*success, t.get(self._key(read_back))], failure)
        # Also on failure: what the failure branch read is then in the image too (e.g. the existing topic).
        revisions = [kv.mod_revision for r in responses if isinstance(r, list) for _, kv in r]
        if revisions:
            await self._visible(max(revisions))
        return ok, responses

    # -- cluster id ------------------------------------------------------------------------------------
    async def get_or_create_cluster_id(self, candidate: str) -> str:
        """The cluster's id: `candidate` if this is the first broker ever, else the one stored."""
        t, key = self.client.transactions, self._key(keys.CLUSTER_ID)
        ok, responses = await self._write([t.version(key) == 0], [t.put(key, candidate.encode())],
                                          keys.CLUSTER_ID, failure=[t.get(key)])
        return candidate if ok else responses[0][0][0].decode()

    # -- broker registration ---------------------------------------------------------------------------
    async def register_broker(self, registration: BrokerRegistration, session_timeout_ms: int, *,
                              wait_for_previous_ms: int | None = None,
                              on_session_change: Callable[[BrokerRegistration | None], None] | None = None,
                              ) -> BrokerRegistration:
        """Registers this broker under a lease of ceil(session_timeout_ms / 1000) s; returns the registration
        with its new broker epoch.

        A previous registration of the same id that is still alive (a restart faster than its session
        timeout) is waited for up to `wait_for_previous_ms` (default: two session timeouts), as Kafka's
        broker retries its registration; then DuplicateBrokerRegistrationError. If the lease is later lost,
        `on_session_change(None)` runs and the broker registers again, then `on_session_change(new)`.
        """
        if self._registration_lease is not None and not self._registration_lease.lost.is_set():
            raise MoldauError(f"this store already registered broker {self.registration}")
        ttl = max(1, math.ceil(session_timeout_ms / 1000))
        wait_ms = 2 * session_timeout_ms + 1000 if wait_for_previous_ms is None else wait_for_previous_ms
        lease = await self._grant_registration_lease(ttl, registration, session_timeout_ms, on_session_change)
        try:
            registered = await self._put_registration(registration, lease.id, wait_ms / 1000)
        except BaseException:
            await lease.revoke()
            raise
        self._registration_lease, self.registration = lease, registered
        self._on_session_change = on_session_change
        return registered

    async def _grant_registration_lease(self, ttl: int, registration: BrokerRegistration,
                                        session_timeout_ms: int,
                                        on_session_change: Callable[[BrokerRegistration | None], None] | None,
                                        ) -> KeptLease:
        def lost() -> None:
            if self._closed:
                return
            self.registration = None
            if on_session_change is not None:
                on_session_change(None)
            self.loop.create_task(self._reregister(registration, session_timeout_ms, on_session_change))
        return await KeptLease.grant(self.client, ttl, lost)

    async def _reregister(self, registration: BrokerRegistration, session_timeout_ms: int,
                          on_session_change: Callable[[BrokerRegistration | None], None] | None) -> None:
        backoff = 0.1
        while not self._closed:
            try:
                new = await self.register_broker(registration, session_timeout_ms,
                                                 on_session_change=on_session_change)
            except (aetcd.ClientError, DuplicateBrokerRegistrationError) as exc:
                log.warning("broker %d: registering again failed (%s); retrying", registration.broker_id, exc)
                await asyncio.sleep(backoff)
                backoff = min(backoff * 2, 2.0)
                continue
            log.info("broker %d registered again with broker epoch %d", new.broker_id, new.epoch)
            if on_session_change is not None:
                on_session_change(new)
            return

    async def _put_registration(self, registration: BrokerRegistration, lease_id: int,
                                wait_s: float) -> BrokerRegistration:
        t = self.client.transactions
        key, counter = self._key(f"{keys.BROKERS}{registration.broker_id}"), self._key(keys.BROKER_EPOCH)
        deadline = self.loop.time() + wait_s
        while True:
            current = await self.client.get(counter)
            epoch = int(current.value) + 1 if current is not None else 1
            new = replace(registration, epoch=epoch)
            # Kafka's broker epoch: one counter for the cluster, bumped by every registration, so that a
            # restarted broker's epoch is always higher than anything its previous life wrote.
            ok, responses = await self._write(
                [t.version(key) == 0, t.mod(counter) == (current.mod_revision if current else 0)],
                [t.put(counter, str(epoch).encode()), t.put(key, new.to_json(), lease=lease_id)],
                f"{keys.BROKERS}{registration.broker_id}", failure=[t.get(key)])
            if ok:
                return new
            if responses[0]:  # the id is taken by a live lease
                if self.loop.time() >= deadline:
                    raise DuplicateBrokerRegistrationError(registration.broker_id)
                await asyncio.sleep(0.1)

    async def _restore_registration(self, lease: KeptLease | None) -> None:
        """Our registration key vanished: the lease expired (etcd knew before our keep-alive did) or someone
        deleted the key. Put it back under the same lease; if the lease is gone, the lease-lost path
        registers again under a new one."""
        registration = self.registration
        if lease is None or lease is not self._registration_lease or registration is None \
                or lease.lost.is_set() or self._closed:
            return  # the lease that held the deleted key is already known lost and replaced
        try:
            new = await self._put_registration(registration, lease.id, 0)
        except (aetcd.ClientError, DuplicateBrokerRegistrationError) as exc:
            log.warning("broker %d: registration gone and not restorable (%s)", registration.broker_id, exc)
            lease.declare_lost()
            return
        if self._registration_lease is lease:
            self.registration = new
            log.warning("broker %d: registration was deleted; restored with broker epoch %d",
                        new.broker_id, new.epoch)
            if self._on_session_change is not None:
                self._on_session_change(new)

    async def unregister_broker(self) -> None:
        """Controlled shutdown: revokes the lease so that leadership moves now, not after the session timeout."""
        lease, self._registration_lease, self.registration = self._registration_lease, None, None
        if lease is not None:
            await lease.revoke()

    # -- controller election (used by ClusterController) -----------------------------------------------
    async def campaign_controller(self, broker_id: int, ttl: int,
                                  on_lost: Callable[[], None]) -> ControllerSession | None:
        """Tries once to become controller; None when another holds the key (wait for ControllerChanged)."""
        t = self.client.transactions
        key, counter = self._key(keys.CONTROLLER), self._key(keys.CONTROLLER_EPOCH)
        lease = await KeptLease.grant(self.client, ttl, on_lost)
        try:
            while True:
                current = await self.client.get(counter)
                epoch = int(current.value) + 1 if current is not None else 1
                record = json.dumps({"broker_id": broker_id, "epoch": epoch}).encode()
                ok, responses = await self._write(
                    [t.version(key) == 0, t.mod(counter) == (current.mod_revision if current else 0)],
                    [t.put(counter, str(epoch).encode()), t.put(key, record, lease=lease.id)],
                    keys.CONTROLLER, failure=[t.get(key)])
                if ok:
                    return ControllerSession(broker_id, epoch, responses[-1][0][1].create_revision, lease)
                if responses[0]:  # another holds it (and the image shows it: _write waited)
                    await lease.revoke()
                    return None
        except BaseException:
            await lease.revoke()
            raise

    # -- topics and partitions -------------------------------------------------------------------------
    @answers_timeout
    async def create_topic(self, metadata: TopicMetadata, states: dict[int, PartitionState]) -> None:
        """Writes the topic and all its partition states in one transaction; TopicExistsError if present."""
        t, topic_key = self.client.transactions, self._key(f"{keys.TOPICS}{metadata.name}")
        ok, _ = await self._write(
            [t.version(topic_key) == 0],
            [t.put(topic_key, topic_to_json(metadata)),
             *(t.put(self._key(partition_key(metadata.name, i)), s.to_json()) for i, s in sorted(states.items()))],
            f"{keys.TOPICS}{metadata.name}", failure=[t.get(topic_key)])
        if not ok:
            raise TopicExistsError(f"Topic '{metadata.name}' already exists.")

    @answers_timeout
    async def add_partitions(self, metadata: TopicMetadata, new_states: dict[int, PartitionState]) -> None:
        """Stores `metadata` (its new num_partitions) and the new partitions' states, in one transaction."""
        t, topic_key = self.client.transactions, self._key(f"{keys.TOPICS}{metadata.name}")
        new_keys = [self._key(partition_key(metadata.name, i)) for i in sorted(new_states)]
        ok, responses = await self._write(
            [t.version(topic_key) > 0, *(t.version(k) == 0 for k in new_keys)],
            [t.put(topic_key, topic_to_json(metadata)),
             *(t.put(k, new_states[i].to_json()) for k, i in zip(new_keys, sorted(new_states)))],
            f"{keys.TOPICS}{metadata.name}", failure=[t.get(topic_key)])
        if not ok:
            if not responses[0]:
                raise UnknownTopicError(f"Topic '{metadata.name}' does not exist.")
            raise ApiError(ErrorCode.INVALID_PARTITIONS,
                           f"Topic '{metadata.name}' already has partitions {sorted(new_states)}")

    @answers_timeout
    async def update_topic(self, metadata: TopicMetadata) -> None:
        """Stores a changed TopicMetadata (configs); the partitions are untouched."""
        t, topic_key = self.client.transactions, self._key(f"{keys.TOPICS}{metadata.name}")
        ok, _ = await self._write([t.version(topic_key) > 0], [t.put(topic_key, topic_to_json(metadata))],
                                  f"{keys.TOPICS}{metadata.name}")
        if not ok:
            raise UnknownTopicError(f"Topic '{metadata.name}' does not exist.")

    @answers_timeout
    async def delete_topic(self, name: str) -> TopicMetadata:
        """Deletes the topic and every partition state in one transaction; returns what was deleted."""
        t, topic_key = self.client.transactions, self._key(f"{keys.TOPICS}{name}")
        partitions = self._key(f"{keys.PARTITIONS}{name}/")
        existing = self.image.topics.get(name)
        ok, responses = await self._txn(
            [t.version(topic_key) > 0],
            [t.get(topic_key), t.delete(topic_key), t.delete(partitions, range_end=prefix_range_end(partitions))])
        if not ok or not responses[0]:
            raise UnknownTopicError(f"Topic '{name}' does not exist.")
        deleted = responses[1].response_delete_range.header.revision
        await self._visible(deleted)
        return keys.topic_from_json(responses[0][0][0]) if existing is None else existing

    @answers_timeout
    async def compare_and_set_partition(self, topic: str, index: int, new_state: PartitionState,
                                        expected_partition_epoch: int, *,
                                        controller: ControllerSession | None = None) -> bool:
        """Stores `new_state` if the stored state still has `expected_partition_epoch` (KIP-497's
        AlterPartition fencing); False when another change came first. With `controller`, also only while
        that controller term lasts (ZooKeeper mode fenced the controller's writes by its epoch znode)."""
        t, key = self.client.transactions, self._key(partition_key(topic, index))
        known = self.image.partitions.get((topic, index))
        revision = self.image.partition_revisions.get((topic, index)) \
            if known is not None and known.partition_epoch == expected_partition_epoch else None
        fence = [t.create(self._key(keys.CONTROLLER)) == controller.create_revision] if controller else []
        for _ in range(2):
            if revision is None:  # the image may be behind etcd: read the key itself
                current = await self.client.get(key)
                if current is None or PartitionState.from_json(current.value).partition_epoch \
                        != expected_partition_epoch:
                    return False
                revision = current.mod_revision
            ok, _ = await self._write([t.mod(key) == revision, *fence], [t.put(key, new_state.to_json())],
                                      partition_key(topic, index))
            if ok:
                return True
            revision = None
        return False

    # -- producer ids (KIP-730's AllocateProducerIds, answered by etcd) --------------------------------
    @answers_timeout
    async def allocate_producer_ids(self, block_size: int) -> tuple[int, int]:
        """Reserves the next block of producer ids for this broker: (first, end exclusive), never given twice."""
        t, key = self.client.transactions, self._key(PRODUCER_ID_BLOCK)
        while True:
            current = await self.client.get(key)
            start = int(current.value) if current is not None else 0
            end = start + block_size
            ok, _ = await self._txn([t.mod(key) == (current.mod_revision if current is not None else 0)],
                                    [t.put(key, str(end).encode())])
            if ok:
                log.info("allocated producer ids %d..%d", start, end - 1)
                return start, end

    # -- dynamic configs and security metadata (MetadataStore's sections) ------------------------------
    @answers_timeout
    async def set_broker_configs(self, resource: str, configs: dict[str, str]) -> None:
        relative = f"{keys.BROKER_CONFIGS}{resource or keys.DEFAULT_RESOURCE}"
        await self._set_or_delete(relative, json.dumps(configs, sort_keys=True).encode() if configs else None)

    @answers_timeout
    async def set_security(self, section: str, value: Any) -> None:
        await self._set_or_delete(f"{keys.SECURITY}{section}", json.dumps(value, sort_keys=True).encode())

    async def _set_or_delete(self, relative: str, value: bytes | None) -> None:
        key = self._key(relative)
        if value is None:
            result = await self.client.delete(key)
            if result is not None:
                await self._visible(result.header.revision)
        else:
            put = await self.client.put(key, value)
            await self._visible(put.header.revision)

    @answers_timeout
    async def update_json(self, relative: str, change: Callable[[Any], Any]) -> Any:
        """Read-modify-write of one JSON key: `change(current)` (None when absent) gives the new value (None
        deletes the key), stored by compare-and-set on the key's mod revision and retried on a conflict, so
        two brokers altering the same ACL list or topic at once both land (ZooKeeper mode's versioned
        setData). Returns the stored value once the watch has applied it (read-your-writes)."""
        t, key = self.client.transactions, self._key(relative)
        while True:
            current = await self.client.get(key)
            new = change(json.loads(current.value) if current is not None else None)
            compare = [t.mod(key) == current.mod_revision] if current is not None else [t.version(key) == 0]
            if new is None:
                ok, responses = await self._txn(compare, [t.delete(key)])
                revision = responses[0].response_delete_range.header.revision if ok else 0
            else:
                ok, responses = await self._txn(compare, [t.put(key, json.dumps(new, sort_keys=True).encode())])
                revision = responses[0].response_put.header.revision if ok else 0
            if ok:
                await self._visible(revision)
                return new
