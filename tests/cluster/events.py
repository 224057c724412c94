"""Helpers for the cluster tests: brokers as registered stores, and bounded waits on the store's events."""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from typing import TypeVar

from moldau.cluster.cluster_controller import ClusterController
from moldau.cluster.etcd_store import EtcdClusterStore
from moldau.cluster.image import ClusterEvent
from moldau.cluster.state import BrokerRegistration, Endpoint

T = TypeVar("T")
WAIT_S = 15.0  # generous: a loaded 2-core machine; the happy path takes a second or two


async def next_event(queue: asyncio.Queue[ClusterEvent], predicate: Callable[[ClusterEvent], bool],
                     timeout: float = WAIT_S) -> ClusterEvent:
    """The first event on `queue` for which `predicate` holds (earlier ones are consumed)."""
    async def find() -> ClusterEvent:
        while True:
            event = await queue.get()
            if predicate(event):
                return event
    return await asyncio.wait_for(find(), timeout)


async def until(store: EtcdClusterStore, condition: Callable[[], T], timeout: float = WAIT_S,
                what: str = "the condition") -> T:
    """Waits, event by event, until `condition()` (read from the store's image) is truthy; returns it."""
    queue = store.subscribe()
    try:
        async def wait() -> T:
            while not (value := condition()):
                await queue.get()
            return value
        try:
            return await asyncio.wait_for(wait(), timeout)
        except TimeoutError:
            raise TimeoutError(f"timed out after {timeout} s waiting for {what} (last: {condition()!r})") from None
    finally:
        store.unsubscribe(queue)


def registration(broker_id: int, rack: str | None = None) -> BrokerRegistration:
    return BrokerRegistration(broker_id, (Endpoint("PLAINTEXT", "127.0.0.1", 9000 + broker_id),), rack=rack)


async def start_broker(url: str, broker_id: int, rack: str | None = None,
                       session_timeout_ms: int = 1000) -> EtcdClusterStore:
    """A broker as the cluster sees it: a store with a live registration."""
    store = await EtcdClusterStore.connect(url)
    await store.register_broker(registration(broker_id, rack), session_timeout_ms)
    return store


def crash(store: EtcdClusterStore) -> None:
    """What SIGKILL does to a broker's registration: nobody refreshes its lease any more."""
    assert store._registration_lease is not None
    store._registration_lease.stop()


def kill_controller(controller: ClusterController) -> None:
    """What SIGKILL does to a controller: it stops acting, and its lease is left to run out."""
    assert controller._task is not None
    controller._task.cancel()
    controller._task = None
    if controller.session is not None:
        controller.session.lease.stop()
