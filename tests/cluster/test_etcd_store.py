"""EtcdClusterStore against a real etcd: transactions, compare-and-set fencing, the watched image,
broker registration under leases."""

from __future__ import annotations

import asyncio
import threading
import time
import uuid

import aetcd
import pytest

from moldau.cluster.etcd_metadata import EtcdMetadataStore
from moldau.cluster.etcd_server import EtcdServer, find_etcd
from moldau.cluster.etcd_store import DuplicateBrokerRegistrationError, EtcdClusterStore
from moldau.cluster.etcd_url import parse_url
from moldau.cluster.image import BrokerChanged, Resynced, TopicChanged
from moldau.cluster.metadata_store import TopicExistsError, TopicMetadata, UnknownTopicError
from moldau.cluster.state import PartitionState
from moldau.errors import MoldauError
from tests.cluster.events import crash, next_event, registration, start_broker, until


def topic(name: str, partitions: int = 3, **configs: str) -> TopicMetadata:
    return TopicMetadata(name, uuid.uuid4(), partitions, replication_factor=1, configs=dict(configs))


def states(count: int) -> dict[int, PartitionState]:
    return {i: PartitionState(replicas=(1,), isr=(1,), leader=1) for i in range(count)}


def test_parse_url() -> None:
    assert parse_url("etcd://h1:2379,h2:2380/x/y") == ([("h1", 2379), ("h2", 2380)], "/x/y")
    assert parse_url("etcd://127.0.0.1:2379") == ([("127.0.0.1", 2379)], "/moldau")
    with pytest.raises(MoldauError, match="not an etcd URL"):
        parse_url("http://127.0.0.1:2379")


async def test_topic_lifecycle_is_seen_in_order_by_another_store(etcd_url: str) -> None:
    writer, reader = await EtcdClusterStore.connect(etcd_url), await EtcdClusterStore.connect(etcd_url)
    try:
        events = reader.subscribe()
        await writer.create_topic(topic("orders"), states(3))
        assert set(writer.image.partitions_of("orders")) == {0, 1, 2}  # read-your-writes
        with pytest.raises(TopicExistsError):
            await writer.create_topic(topic("orders"), states(1))
        grown = topic("orders", 5)
        await writer.add_partitions(grown, {3: states(4)[3], 4: states(5)[4]})
        await writer.update_topic(topic("orders", 5, **{"retention.ms": "1000"}))
        assert writer.image.topics["orders"].configs == {"retention.ms": "1000"}
        assert len(writer.image.partitions_of("orders")) == 5
        deleted = await writer.delete_topic("orders")
        assert deleted.configs == {"retention.ms": "1000"}
        assert "orders" not in writer.image.topics and not writer.image.partitions_of("orders")
        with pytest.raises(UnknownTopicError):
            await writer.delete_topic("orders")

        seen = [await next_event(events, lambda e: True) for _ in range(14)]
        described = [(type(e).__name__, getattr(e, "index", None), getattr(e, "state", 1) is None
                      or getattr(e, "metadata", 1) is None) for e in seen]
        assert described == [("TopicChanged", None, False), *[("PartitionChanged", i, False) for i in range(3)],
                             ("TopicChanged", None, False), ("PartitionChanged", 3, False),
                             ("PartitionChanged", 4, False), ("TopicChanged", None, False),
                             ("TopicChanged", None, True), *[("PartitionChanged", i, True) for i in range(5)]]
        assert reader.image.topics == {} and reader.image.partitions == {}
    finally:
        await writer.close()
        await reader.close()


async def test_compare_and_set_is_fenced_by_the_partition_epoch(etcd_url: str) -> None:
    a, b = await EtcdClusterStore.connect(etcd_url), await EtcdClusterStore.connect(etcd_url)
    try:
        await a.create_topic(topic("t", 1), states(1))
        await until(b, lambda: ("t", 0) in b.image.partitions)
        seen_by_both = b.image.partitions[("t", 0)]
        shrink = seen_by_both.with_changes(isr=())
        assert await a.compare_and_set_partition("t", 0, shrink, expected_partition_epoch=0)
        # b proposes from the same epoch, maybe before its watch saw a's write: refused either way.
        assert not await b.compare_and_set_partition("t", 0, seen_by_both.with_changes(leader=-1), 0)
        stored = await until(b, lambda: b.image.partitions[("t", 0)].partition_epoch == 1 and b.image.partitions[("t", 0)])
        assert stored == shrink
        assert await b.compare_and_set_partition("t", 0, stored.with_changes(isr=(1,)), 1)
        assert not await a.compare_and_set_partition("missing", 0, stored, 0)
    finally:
        await a.close()
        await b.close()


async def test_cluster_id_is_created_once(etcd_url: str) -> None:
    a, b = await EtcdClusterStore.connect(etcd_url), await EtcdClusterStore.connect(etcd_url)
    try:
        assert await a.get_or_create_cluster_id("first") == "first"
        assert await b.get_or_create_cluster_id("second") == "first"
        assert b.image.cluster_id == "first"
    finally:
        await a.close()
        await b.close()


async def test_registration_epochs_duplicates_and_lease_expiry(etcd_url: str) -> None:
    one = await start_broker(etcd_url, 1)
    other = await EtcdClusterStore.connect(etcd_url)
    try:
        first = one.registration
        assert first is not None and other.image.brokers[1] == first
        with pytest.raises(DuplicateBrokerRegistrationError, match="broker.id 1"):
            await other.register_broker(registration(1), 1000, wait_for_previous_ms=0)
        events = other.subscribe()
        started = time.monotonic()
        crash(one)
        await next_event(events, lambda e: isinstance(e, BrokerChanged) and e.registration is None)
        assert time.monotonic() - started < 3.0  # a 1 s lease, refreshed every 1/3 s, checked every 0.5 s
        second = await other.register_broker(registration(1), 1000)
        assert second.epoch > first.epoch
        started = time.monotonic()
        await other.unregister_broker()  # controlled shutdown: gone at once, not after the session
        await next_event(events, lambda e: isinstance(e, BrokerChanged) and e.registration is None
                         and e.broker_id == 1)
        assert time.monotonic() - started < 0.9
    finally:
        await one.close()
        await other.close()


async def test_a_restarted_broker_waits_for_its_previous_session(etcd_url: str) -> None:
    old = await start_broker(etcd_url, 7)
    new = await EtcdClusterStore.connect(etcd_url)
    try:
        crash(old)  # SIGKILL, then an immediate restart under the same broker.id
        registered = await new.register_broker(registration(7), 1000)
        assert old.registration is not None and registered.epoch > old.registration.epoch
    finally:
        await old.close()
        await new.close()


async def test_a_lost_lease_registers_again_and_says_so(etcd_url: str) -> None:
    changes: asyncio.Queue[object] = asyncio.Queue()
    store = await EtcdClusterStore.connect(etcd_url)
    try:
        first = await store.register_broker(registration(3), 1000, on_session_change=changes.put_nowait)
        assert store._registration_lease is not None
        await store.client.revoke_lease(store._registration_lease.id)  # e.g. a partition from etcd too long
        assert await asyncio.wait_for(changes.get(), 10) is None
        again = await asyncio.wait_for(changes.get(), 10)
        assert isinstance(again, type(first)) and again.epoch > first.epoch
        assert store.image.brokers.get(3) == again and changes.empty()
    finally:
        await store.close()


async def test_watch_resyncs_after_etcd_restarts(own_etcd: EtcdServer) -> None:
    watcher = await EtcdClusterStore.connect(own_etcd.url)
    try:
        events = watcher.subscribe()
        await asyncio.to_thread(own_etcd.stop)
        await asyncio.to_thread(own_etcd.start)
        await next_event(events, lambda e: isinstance(e, Resynced))
        writer = await EtcdClusterStore.connect(own_etcd.url)
        try:
            await writer.create_topic(topic("after-restart", 1), states(1))
        finally:
            await writer.close()
        await next_event(events, lambda e: isinstance(e, TopicChanged) and e.name == "after-restart")
        assert "after-restart" in watcher.image.topics
    finally:
        await watcher.close()


async def test_sync_metadata_store_from_a_worker_thread(etcd_url: str) -> None:
    brokers = [await start_broker(etcd_url, i) for i in (1, 2, 3)]
    store = brokers[0]
    sync = EtcdMetadataStore(store)
    try:
        await until(store, lambda: len(store.image.brokers) == 3)
        await asyncio.to_thread(sync.create_topic, TopicMetadata("rf3", uuid.uuid4(), 6, replication_factor=3))
        partitions = store.image.partitions_of("rf3")
        assert len(partitions) == 6 and all(len(set(s.replicas)) == 3 and s.leader == s.replicas[0]
                                            for s in partitions.values())
        await asyncio.to_thread(sync.set_broker_configs, "", {"unclean.leader.election.enable": "true"})
        await asyncio.to_thread(sync.set_security, "acls", [{"principal": "User:a"}])
        assert sync.broker_configs() == {"": {"unclean.leader.election.enable": "true"}}
        assert sync.security("acls") == [{"principal": "User:a"}]
        await asyncio.to_thread(sync.create_partitions, sync.topics()["rf3"], 8)
        assert len(store.image.partitions_of("rf3")) == 8 and sync.topics()["rf3"].num_partitions == 8
        with pytest.raises(MoldauError, match="worker thread"):
            sync.update_topic(sync.topics()["rf3"])  # on the loop: refused, not a deadlock
        assert threading.current_thread() is threading.main_thread()
    finally:
        for broker in brokers:
            await broker.close()


async def test_an_unreachable_etcd_is_an_error_not_a_hang() -> None:
    with pytest.raises(MoldauError, match="cannot reach etcd"):
        await asyncio.wait_for(EtcdClusterStore.connect("etcd://127.0.0.1:9/moldau"), 20)


def test_keys_are_visible_to_plain_etcd_clients(etcd_url: str) -> None:
    """The layout of docs/cluster.md: operators can read it with etcdctl."""
    async def scenario() -> list[bytes]:
        store = await EtcdClusterStore.connect(etcd_url)
        try:
            await store.create_topic(topic("layout", 1), states(1))
            client = aetcd.Client(port=store.client._port)
            keys = [kv.key for kv in await client.get_prefix(store.prefix.encode())]
            await client.close()
            return keys
        finally:
            await store.close()
    keys = asyncio.run(scenario())
    prefix = etcd_url.split("/", 3)[3]
    assert keys == [f"/{prefix}/partitions/layout/0".encode(), f"/{prefix}/topics/layout".encode()]


async def test_a_broker_registers_again_after_etcd_was_down_longer_than_its_session(own_etcd: EtcdServer) -> None:
    changes: asyncio.Queue[object] = asyncio.Queue()
    store = await EtcdClusterStore.connect(own_etcd.url)
    try:
        first = await store.register_broker(registration(5), 1000, on_session_change=changes.put_nowait)
        await asyncio.to_thread(own_etcd.stop)
        assert await asyncio.wait_for(changes.get(), 10) is None  # no keep-alive for a whole TTL: lost
        await asyncio.to_thread(own_etcd.start)
        again = await asyncio.wait_for(changes.get(), 20)
        assert isinstance(again, type(first)) and again.epoch > first.epoch
        assert await until(store, lambda: store.image.brokers.get(5)) == again
    finally:
        await store.close()


def test_find_etcd_honours_moldau_etcd(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("MOLDAU_ETCD", "/nonexistent/etcd")
    assert find_etcd() is None
    with pytest.raises(MoldauError, match="etcd is not installed"):
        EtcdServer()


async def test_a_deleted_registration_is_put_back(etcd_url: str) -> None:
    changes: asyncio.Queue[object] = asyncio.Queue()
    store = await EtcdClusterStore.connect(etcd_url)
    try:
        first = await store.register_broker(registration(6), 1000, on_session_change=changes.put_nowait)
        await store.client.delete(f"{store.prefix}brokers/ids/6".encode())  # e.g. an operator's etcdctl del
        restored = await asyncio.wait_for(changes.get(), 10)
        assert isinstance(restored, type(first)) and restored.epoch > first.epoch
        assert await until(store, lambda: store.image.brokers.get(6)) == restored
    finally:
        await store.close()
