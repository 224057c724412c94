"""Given a broker, when librdkafka consumers share a topic in a group, then partitions are split, rebalanced
on leave/kill/join, and committed offsets carry the work across rebalances without losing a message."""

from __future__ import annotations

import subprocess
import sys
import threading
import time

from confluent_kafka import Consumer, TopicPartition

from tests.fixtures import (
    DEADLINE_S,
    GROUP_PARTITIONS,
    Worker,
    clients,
    create_topic,
    produce_values,
    run_until,
    unique_topic,
)

PARTITIONS = GROUP_PARTITIONS


def consumer(bootstrap: str, group: str, **extra: object) -> Consumer:
    config = {"bootstrap.servers": bootstrap, "group.id": group, "auto.offset.reset": "earliest",
              "enable.auto.commit": False, "session.timeout.ms": 2000, "heartbeat.interval.ms": 200,
              "topic.metadata.refresh.interval.ms": 1000}
    config.update(extra)
    return clients.track(Consumer(config))


def assignments_settle(workers: list[Worker], expected_members: int) -> None:
    def settled() -> bool:
        parts = [w.assigned() for w in workers]
        union = set().union(*parts)
        return (sum(len(p) for p in parts) == PARTITIONS and union == set(range(PARTITIONS))
                and sum(1 for p in parts if p) == expected_members)
    run_until(workers, settled)


KILLED_CONSUMER = """
import sys
from confluent_kafka import Consumer
c = Consumer({"bootstrap.servers": sys.argv[1], "group.id": sys.argv[2], "auto.offset.reset": "earliest",
              "enable.auto.commit": False, "session.timeout.ms": 1500, "heartbeat.interval.ms": 200})
c.subscribe([sys.argv[3]])
while True:
    msg = c.poll(0.1)
    if c.assignment():
        print("assigned", flush=True)
    if msg is not None and not msg.error():
        # Report before committing: a SIGKILL between the two must not hide a committed record from the test.
        print(msg.value().decode(), flush=True)
        c.commit(message=msg, asynchronous=False)
"""


def test_group_splits_rebalances_and_loses_nothing(group_broker):
    bootstrap = group_broker.bootstrap_servers
    topic, group = unique_topic("grp"), unique_topic("g")
    create_topic(bootstrap, topic, PARTITIONS)
    produce_values(bootstrap, topic, range(300))
    a, b = Worker(consumer(bootstrap, group), topic), Worker(consumer(bootstrap, group), topic)
    killed = subprocess.Popen([sys.executable, "-c", KILLED_CONSUMER, bootstrap, group, topic],
                              stdout=subprocess.PIPE, text=True)
    killed_seen: list[int] = []
    assigned = threading.Event()

    def read_child() -> None:
        for line in killed.stdout:  # type: ignore[union-attr]
            if line.startswith("assigned"):
                assigned.set()
            else:
                killed_seen.append(int(line))

    reader = threading.Thread(target=read_child, daemon=True)
    reader.start()
    try:
        # Given three members, each gets a disjoint share of the six partitions.
        run_until([a, b], lambda: assigned.is_set() and len(a.assigned()) == 2 and len(b.assigned()) == 2)
        assert not a.assigned() & b.assigned()
        run_until([a, b], lambda: len(a.seen) + len(b.seen) >= 100)
        # When one member is SIGKILLed, its partitions move to the others after its session times out.
        killed.kill()
        killed.wait(10)
        assignments_settle([a, b], 2)
        # When one leaves cleanly and another joins, the group rebalances again.
        produce_values(bootstrap, topic, range(300, 450))
        b.c.close()
        c = Worker(consumer(bootstrap, group), topic)
        assignments_settle([a, c], 2)
        produce_values(bootstrap, topic, range(450, 600))
        everything = set(range(600))
        run_until([a, c], lambda: everything <= set(a.seen) | set(b.seen) | set(c.seen) | set(killed_seen))
        # Commits after processing: nothing lost; only work in flight at a rebalance may repeat.
        all_seen = a.seen + b.seen + c.seen + killed_seen
        assert len(all_seen) - len(everything) <= PARTITIONS
        a.c.close()
        c.c.close()
    finally:
        killed.kill()
        killed.wait(10)


def test_static_member_restart_does_not_rebalance(group_broker):
    bootstrap = group_broker.bootstrap_servers
    topic, group = unique_topic("static"), unique_topic("g")
    create_topic(bootstrap, topic, PARTITIONS)
    a = Worker(consumer(bootstrap, group, **{"group.instance.id": "a", "session.timeout.ms": 6000}), topic)
    b = Worker(consumer(bootstrap, group, **{"group.instance.id": "b", "session.timeout.ms": 6000}), topic)
    assignments_settle([a, b], 2)
    coordinator = group_broker.broker.group_coordinator
    generation = coordinator.groups[group].generation_id
    before = b.assigned()
    b.c.close()  # a static member does not send LeaveGroup on close (KIP-345)
    b = Worker(consumer(bootstrap, group, **{"group.instance.id": "b", "session.timeout.ms": 6000}), topic)
    run_until([a, b], lambda: b.assigned() == before)
    assert coordinator.groups[group].generation_id == generation
    assert coordinator.groups[group].state.value == "Stable"
    a.c.close()
    b.c.close()


def test_cooperative_sticky_revokes_only_moved_partitions(group_broker):
    bootstrap = group_broker.bootstrap_servers
    topic, group = unique_topic("coop"), unique_topic("g")
    create_topic(bootstrap, topic, PARTITIONS)
    revoked: dict[str, list[int]] = {"a": [], "b": []}

    def on_revoke(name: str):
        return lambda c, parts: revoked[name].extend(p.partition for p in parts)

    settings = {"partition.assignment.strategy": "cooperative-sticky"}
    ca = consumer(bootstrap, group, **settings)
    a = Worker(ca, topic)
    ca.subscribe([topic], on_revoke=on_revoke("a"))
    run_until([a], lambda: len(a.assigned()) == PARTITIONS)
    cb = consumer(bootstrap, group, **settings)
    b = Worker(cb, topic)
    cb.subscribe([topic], on_revoke=on_revoke("b"))
    assignments_settle([a, b], 2)
    # Only the three partitions that moved to b were revoked from a; a kept the rest throughout.
    assert sorted(revoked["a"]) == sorted(b.assigned()) and len(revoked["a"]) == 3
    assert revoked["b"] == []
    a.c.close()
    b.c.close()


def test_ten_consumers_rebalance_within_initial_delay_plus_a_heartbeat(group_broker):
    bootstrap = group_broker.bootstrap_servers
    topic, group = unique_topic("ten"), unique_topic("g")
    create_topic(bootstrap, topic, 10)
    heartbeat_ms = 500
    started = time.monotonic()
    consumers = [consumer(bootstrap, group, **{"heartbeat.interval.ms": heartbeat_ms}) for _ in range(10)]
    for c in consumers:
        c.subscribe([topic])
    deadline = started + DEADLINE_S
    while sum(1 for c in consumers if c.assignment()) < 10:
        assert time.monotonic() < deadline
        for c in consumers:
            c.poll(0.01)
    elapsed_ms = (time.monotonic() - started) * 1000
    delay_ms = group_broker.broker.group_coordinator.config.group_initial_rebalance_delay_ms
    print(f"10-consumer rebalance took {elapsed_ms:.0f} ms (initial delay {delay_ms} ms, heartbeat {heartbeat_ms} ms)")
    assert elapsed_ms < delay_ms + heartbeat_ms + 1500  # + client start-up and metadata round trips
    assert sorted(tp.partition for c in consumers for tp in c.assignment()) == list(range(10))
    for c in consumers:
        c.close()


def test_committed_offsets_and_metadata_round_trip(group_broker):
    bootstrap = group_broker.bootstrap_servers
    topic, group = unique_topic("commit"), unique_topic("g")
    create_topic(bootstrap, topic, PARTITIONS)
    c = consumer(bootstrap, group)
    metadata = "k=v \u00e9 " + "x" * 100
    c.commit(offsets=[TopicPartition(topic, 1, 17, metadata=metadata)], asynchronous=False)
    got = c.committed([TopicPartition(topic, 1), TopicPartition(topic, 2)], timeout=10)
    assert (got[0].offset, got[0].metadata, got[1].offset) == (17, metadata, -1001)
    c.close()
