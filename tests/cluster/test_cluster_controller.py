"""The cluster controller against a real etcd: election, failover, leader election when brokers die and
come back, unclean election off and on, ElectLeaders."""

from __future__ import annotations

import asyncio
import os
import signal
import sys
import time
import uuid
from collections.abc import AsyncIterator

import pytest

from moldau.cluster.cluster_controller import ClusterController
from moldau.cluster.election import ElectionType
from moldau.cluster.etcd_store import EtcdClusterStore
from moldau.cluster.image import ControllerChanged
from moldau.cluster.metadata_store import TopicMetadata
from moldau.cluster.state import NO_LEADER, PartitionState
from moldau.protocol.errors import ErrorCode
from tests.cluster.events import crash, kill_controller, next_event, start_broker, until

TIMING_SLACK_S = 4.0  # failover is ~1-2 s with 1 s sessions; the bound leaves room for a loaded machine


@pytest.fixture
async def cluster(etcd_url: str) -> AsyncIterator[dict[int, EtcdClusterStore]]:
    """Brokers 1, 2, 3 registered with 1 s sessions; no controller yet."""
    brokers = {i: await start_broker(etcd_url, i) for i in (1, 2, 3)}
    await until(brokers[1], lambda: len(brokers[1].image.brokers) == 3)
    yield brokers
    for store in brokers.values():
        await store.close()


async def create(store: EtcdClusterStore, name: str, states: dict[int, PartitionState], **configs: str) -> None:
    await store.create_topic(TopicMetadata(name, uuid.uuid4(), len(states), len(states[0].replicas),
                                           configs=dict(configs)), states)


def led_by(store: EtcdClusterStore, broker_id: int) -> list[tuple[str, int]]:
    return sorted(tp for tp, s in store.image.partitions.items() if s.leader == broker_id)


def rf3(count: int) -> dict[int, PartitionState]:
    """Partition p led by broker p % 3 + 1, replicas of all three."""
    replicas = [(1, 2, 3), (2, 3, 1), (3, 1, 2)]
    return {p: PartitionState(replicas[p % 3], replicas[p % 3], replicas[p % 3][0]) for p in range(count)}


async def test_one_controller_and_failover_to_another(etcd_url: str) -> None:
    a, b = await EtcdClusterStore.connect(etcd_url), await EtcdClusterStore.connect(etcd_url)
    first, second = ClusterController(a, 1), ClusterController(b, 2)
    try:
        first.start()
        await asyncio.wait_for(first.became_controller.wait(), 10)
        second.start()
        await until(b, lambda: b.image.controller_id == 1)
        assert not second.is_active
        epoch = b.image.controller_epoch
        events = b.subscribe()
        started = time.monotonic()
        kill_controller(first)  # the controller's process died: its lease runs out
        await asyncio.wait_for(second.became_controller.wait(), 10)
        took = time.monotonic() - started
        changed = await next_event(events, lambda e: isinstance(e, ControllerChanged) and e.controller_id == 2)
        assert isinstance(changed, ControllerChanged) and changed.epoch == epoch + 1
        assert took < TIMING_SLACK_S, took
        assert not first.is_active
    finally:
        await first.stop()
        await second.stop()
        await a.close()
        await b.close()


async def test_leaders_move_off_a_dead_broker(cluster: dict[int, EtcdClusterStore]) -> None:
    controller = ClusterController(cluster[1], 1)
    controller.start()
    try:
        await create(cluster[1], "moving", rf3(6))
        before = dict(cluster[1].image.partitions)
        started = time.monotonic()
        crash(cluster[2])
        await until(cluster[1], lambda: not led_by(cluster[1], 2) and all(
            2 not in s.isr for s in cluster[1].image.partitions.values()), what="leaders off broker 2")
        took = time.monotonic() - started
        print(f"\nbroker loss (1 s session) to new leaders written: {took * 1000:.0f} ms")
        assert took < TIMING_SLACK_S
        for tp, old in before.items():
            new = cluster[1].image.partitions[tp]
            if old.leader == 2:
                assert new.leader == old.replicas[1] and new.leader_epoch == old.leader_epoch + 1
            else:
                assert new.leader == old.leader and new.leader_epoch == old.leader_epoch
            assert new.isr == tuple(r for r in old.isr if r != 2) and new.partition_epoch > old.partition_epoch
    finally:
        await controller.stop()


async def test_unclean_election_off_then_on(cluster: dict[int, EtcdClusterStore]) -> None:
    controller = ClusterController(cluster[1], 1)
    controller.start()
    store = cluster[1]
    try:
        await create(store, "lagging", {0: PartitionState(replicas=(2, 3), isr=(2,), leader=2)})
        crash(cluster[2])
        offline = await until(store, lambda: (s := store.image.partitions[("lagging", 0)]).leader == NO_LEADER
                              and s, what="partition offline")
        assert offline.isr == (2,)  # the last ISR member stays: it has the data
        metadata = store.image.topics["lagging"]
        metadata.configs["unclean.leader.election.enable"] = "true"
        await store.update_topic(metadata)
        unclean = await until(store, lambda: (s := store.image.partitions[("lagging", 0)]).leader == 3 and s,
                              what="unclean leader 3")
        assert unclean.isr == (3,) and unclean.leader_epoch == offline.leader_epoch + 1
    finally:
        await controller.stop()


async def test_the_last_isr_member_leads_again_when_it_returns(cluster: dict[int, EtcdClusterStore],
                                                               etcd_url: str) -> None:
    controller = ClusterController(cluster[1], 1)
    controller.start()
    store = cluster[1]
    try:
        await create(store, "waiting", {0: PartitionState(replicas=(2, 3), isr=(2,), leader=2)})
        crash(cluster[2])
        await until(store, lambda: store.image.partitions[("waiting", 0)].leader == NO_LEADER)
        restarted = await start_broker(etcd_url, 2)
        try:
            back = await until(store, lambda: (s := store.image.partitions[("waiting", 0)]).leader == 2 and s)
            assert back.isr == (2,)
        finally:
            await restarted.close()
    finally:
        await controller.stop()


async def test_a_new_controller_reconciles_what_happened_without_one(cluster: dict[int, EtcdClusterStore]) -> None:
    store = cluster[1]
    await create(store, "orphans", rf3(3))
    crash(cluster[3])
    await until(store, lambda: 3 not in store.image.brokers)
    assert led_by(store, 3) == [("orphans", 2)]  # nobody moved it: there is no controller
    controller = ClusterController(store, 1)
    controller.start()
    try:
        await until(store, lambda: not led_by(store, 3), what="orphans reconciled")
        assert store.image.partitions[("orphans", 2)].leader == 1
    finally:
        await controller.stop()


async def test_a_stale_controller_cannot_write(cluster: dict[int, EtcdClusterStore]) -> None:
    store = cluster[1]
    await create(store, "fenced", rf3(1))
    stale = await store.campaign_controller(1, 1, lambda: None)
    assert stale is not None
    await stale.lease.revoke()
    current = store.image.partitions[("fenced", 0)]
    assert not await store.compare_and_set_partition("fenced", 0, current.with_changes(isr=(1,)),
                                                     current.partition_epoch, controller=stale)
    assert store.image.partitions[("fenced", 0)] == current


async def test_preferred_leader_election(cluster: dict[int, EtcdClusterStore]) -> None:
    store = cluster[1]
    controller = ClusterController(store, 1)
    await create(store, "preferred", {0: PartitionState((1, 2, 3), (1, 2, 3), 2),
                                      1: PartitionState((1, 2, 3), (1, 2, 3), 1),
                                      2: PartitionState((3, 1, 2), (1, 2), 1)})
    results = await controller.elect_leaders([("preferred", 0), ("preferred", 1), ("preferred", 2),
                                              ("missing", 0)], ElectionType.PREFERRED)
    assert results == {("preferred", 0): ErrorCode.NONE, ("preferred", 1): ErrorCode.ELECTION_NOT_NEEDED,
                       ("preferred", 2): ErrorCode.PREFERRED_LEADER_NOT_AVAILABLE,
                       ("missing", 0): ErrorCode.UNKNOWN_TOPIC_OR_PARTITION}
    assert store.image.partitions[("preferred", 0)].leader == 1


async def test_controller_broker_dies_and_another_moves_its_leaders(cluster: dict[int, EtcdClusterStore],
                                                                   etcd_url: str) -> None:
    """The controller's own broker dies, three times over: the standby controller takes over and moves the
    dead broker's leaders; a new broker with its own controller joins as the next standby."""
    observer = cluster[3]
    await create(observer, "failover", rf3(6))
    controllers = [ClusterController(cluster[1], 1), ClusterController(cluster[2], 2)]
    controllers[0].start()
    await asyncio.wait_for(controllers[0].became_controller.wait(), 10)
    controllers[1].start()
    timings, extra = [], []
    try:
        for round_ in range(3):
            active = next(c for c in controllers if c.is_active)
            dead = active.broker_id
            for tp, state in list(observer.image.partitions.items()):  # the victim leads every partition
                replicas = state.replicas if dead in state.replicas else (dead, *state.replicas)
                isr = tuple(dict.fromkeys((dead, *state.isr)))
                assert await observer.compare_and_set_partition(
                    tp[0], tp[1], state.with_changes(replicas=replicas, isr=isr, leader=dead), state.partition_epoch)
            await until(observer, lambda dead=dead: len(led_by(observer, dead)) == 6)
            started = time.monotonic()
            kill_controller(active)
            crash(active.store)
            controllers.remove(active)
            await until(observer, lambda dead=dead: not led_by(observer, dead) and any(c.is_active for c in controllers),
                        what="the standby controller moving the leaders")
            timings.append(time.monotonic() - started)
            newcomer = await start_broker(etcd_url, 10 + round_)
            extra.append(newcomer)
            controllers.append(ClusterController(newcomer, 10 + round_))
            controllers[-1].start()
        print(f"\ncontroller's broker killed -> new leaders written: {', '.join(f'{t * 1000:.0f}' for t in timings)} ms")
        assert max(timings) < TIMING_SLACK_S
    finally:
        for controller in controllers:
            await controller.stop()
        for store in extra:
            await store.close()


BROKER_SCRIPT = """
import asyncio, sys
from moldau.cluster.etcd_store import EtcdClusterStore
from moldau.cluster.state import BrokerRegistration, Endpoint
async def main():
    store = await EtcdClusterStore.connect(sys.argv[1])
    await store.register_broker(BrokerRegistration(9, (Endpoint("PLAINTEXT", "127.0.0.1", 9009),)), 1000)
    print("registered", flush=True)
    await asyncio.Event().wait()
asyncio.run(main())
"""


async def test_sigkilled_broker_loses_leadership(etcd_url: str) -> None:
    """A real process registered as broker 9 is SIGKILLed; the controller moves its partitions."""
    survivor = await start_broker(etcd_url, 1)
    process = await asyncio.create_subprocess_exec(sys.executable, "-c", BROKER_SCRIPT, etcd_url,
                                                   stdout=asyncio.subprocess.PIPE, env={**os.environ})
    controller = ClusterController(survivor, 1)
    try:
        assert process.stdout is not None
        line = await asyncio.wait_for(process.stdout.readline(), 30)
        assert line == b"registered\n"
        await until(survivor, lambda: 9 in survivor.image.brokers)
        await create(survivor, "killed", {p: PartitionState((9, 1), (9, 1), 9) for p in range(4)})
        controller.start()
        await asyncio.wait_for(controller.became_controller.wait(), 10)
        started = time.monotonic()
        process.send_signal(signal.SIGKILL)
        await until(survivor, lambda: not led_by(survivor, 9), what="leaders off the killed broker")
        took = time.monotonic() - started
        print(f"\nSIGKILL (1 s session) to new leaders written: {took * 1000:.0f} ms")
        assert took < TIMING_SLACK_S
        assert led_by(survivor, 1) == [("killed", p) for p in range(4)]
    finally:
        if process.returncode is None:
            process.kill()
        await asyncio.wait_for(process.wait(), 10)
        await controller.stop()
        await survivor.close()
