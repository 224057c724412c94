"""Given a broker, when librdkafka consumers use the KIP-848 protocol (`group.protocol=consumer`), then the
broker's assignor splits the partitions, members leave, join and get fenced without losing or repeating a
message, classic groups keep working beside consumer groups, and a restart keeps the group."""

from __future__ import annotations

import subprocess
import sys
import threading
import time

import pytest
from confluent_kafka import Consumer, KafkaError
from confluent_kafka.admin import AdminClient

from tests.fixtures import (
    DEADLINE_S,
    GROUP_PARTITIONS,
    Worker,
    clients,
    create_topic,
    embedded_broker,
    produce_values,
    run_until,
    unique_topic,
)

PARTITIONS = GROUP_PARTITIONS

KIP848_OVERRIDES = {
    "group_initial_rebalance_delay_ms": 100,
    "group_min_session_timeout_ms": 500,
    "offsets_topic_num_partitions": 5,
    "group_consumer_heartbeat_interval_ms": 200,
    "group_consumer_session_timeout_ms": 1500,
}


@pytest.fixture
def kip848_broker():
    with embedded_broker(num_partitions=PARTITIONS, **KIP848_OVERRIDES) as b:
        yield b


def consumer(bootstrap: str, group: str, **extra: object) -> Consumer:
    # KIP-848: session and heartbeat timing are the broker's (group.consumer.*), not the client's.
    config = {"bootstrap.servers": bootstrap, "group.id": group, "group.protocol": "consumer",
              "auto.offset.reset": "earliest", "enable.auto.commit": False,
              "topic.metadata.refresh.interval.ms": 1000}
    config.update(extra)
    return clients.track(Consumer(config))


def shares_settle(workers: list[Worker], members: int) -> None:
    def settled() -> bool:
        parts = [w.assigned() for w in workers]
        sizes = [len(p) for p in parts if p]
        return (sum(sizes) == PARTITIONS and set().union(*parts) == set(range(PARTITIONS))
                and len(sizes) == members and max(sizes) - min(sizes) <= 1)  # balanced: reconciliation done
    run_until(workers, settled)


@pytest.mark.parametrize("assignor", [None, "range"])
def test_members_share_leave_and_join_exactly_once(kip848_broker, assignor):
    bootstrap = kip848_broker.bootstrap_servers
    topic, group = unique_topic("kip848"), unique_topic("g")
    create_topic(bootstrap, topic, PARTITIONS)
    produce_values(bootstrap, topic, range(300))
    extra = {"group.remote.assignor": assignor} if assignor else {}
    a, b, c = (Worker(consumer(bootstrap, group, **extra), topic) for _ in range(3))
    # Given three members, each gets a disjoint share of two partitions.
    shares_settle([a, b, c], 3)
    assert [len(w.assigned()) for w in (a, b, c)] == [2, 2, 2]
    if assignor == "range":
        assert all(max(w.assigned()) - min(w.assigned()) == 1 for w in (a, b, c))
    described = kip848_broker.broker.group_coordinator.consumer_groups[group]
    assert described.state.value == "Stable"
    run_until([a, b, c], lambda: len(a.seen) + len(b.seen) + len(c.seen) >= 100)
    # When one leaves and another joins, the partitions move only after their owner gave them up.
    b.c.close()
    d = Worker(consumer(bootstrap, group, **extra), topic)
    produce_values(bootstrap, topic, range(300, 450))
    shares_settle([a, c, d], 3)
    everything = set(range(450))
    run_until([a, c, d], lambda: everything <= set(a.seen) | set(b.seen) | set(c.seen) | set(d.seen))
    all_seen = a.seen + b.seen + c.seen + d.seen
    assert sorted(all_seen) == sorted(everything)  # exactly once
    for w in (a, c, d):
        w.c.close()


KILLED_CONSUMER = """
import sys
from confluent_kafka import Consumer, KafkaError
c = Consumer({"bootstrap.servers": sys.argv[1], "group.id": sys.argv[2], "group.protocol": "consumer",
              "auto.offset.reset": "earliest", "enable.auto.commit": False})
c.subscribe([sys.argv[3]])
while True:
    c.poll(0.1)
    if c.assignment():
        print("assigned", flush=True)
"""


def test_killed_member_is_fenced_after_session_timeout(kip848_broker):
    bootstrap = kip848_broker.bootstrap_servers
    topic, group = unique_topic("fence"), unique_topic("g")
    create_topic(bootstrap, topic, PARTITIONS)
    a = Worker(consumer(bootstrap, group), topic)
    killed = subprocess.Popen([sys.executable, "-c", KILLED_CONSUMER, bootstrap, group, topic],
                              stdout=subprocess.PIPE, text=True)
    assigned = threading.Event()

    def read_child() -> None:
        for line in killed.stdout:  # type: ignore[union-attr]
            if line.startswith("assigned"):
                assigned.set()

    threading.Thread(target=read_child, daemon=True).start()
    try:
        run_until([a], lambda: assigned.is_set() and len(a.assigned()) == PARTITIONS // 2)
        killed.kill()
        killed.wait(10)
        started = time.monotonic()
        run_until([a], lambda: len(a.assigned()) == PARTITIONS)
        fenced_after = time.monotonic() - started
        assert fenced_after >= 1.0  # the session timeout (1.5 s) had to pass first
        assert len(kip848_broker.broker.group_coordinator.consumer_groups[group].members) == 1
        a.c.close()
    finally:
        killed.kill()
        killed.wait(10)


def test_classic_and_consumer_groups_side_by_side(kip848_broker):
    bootstrap = kip848_broker.bootstrap_servers
    topic = unique_topic("both")
    classic_group, consumer_group = unique_topic("classic"), unique_topic("consumer")
    create_topic(bootstrap, topic, PARTITIONS)
    produce_values(bootstrap, topic, range(60))
    classic = Worker(Consumer({"bootstrap.servers": bootstrap, "group.id": classic_group,
                               "auto.offset.reset": "earliest", "enable.auto.commit": False,
                               "session.timeout.ms": 2000, "heartbeat.interval.ms": 200}), topic)
    modern = Worker(consumer(bootstrap, consumer_group), topic)
    run_until([classic, modern], lambda: len(classic.seen) == 60 and len(modern.seen) == 60)
    admin = AdminClient({"bootstrap.servers": bootstrap})
    listed = admin.list_consumer_groups().result(DEADLINE_S)
    types = {g.group_id: g.type.name for g in listed.valid}
    assert types[classic_group] == "CLASSIC" and types[consumer_group] == "CONSUMER"
    described = admin.describe_consumer_groups([consumer_group])[consumer_group].result(DEADLINE_S)
    assert len(described.members) == 1
    assert {tp.partition for tp in described.members[0].assignment.topic_partitions} == set(range(PARTITIONS))
    # A classic member cannot join the consumer group: librdkafka reports INCONSISTENT_GROUP_PROTOCOL.
    intruder = clients.track(Consumer({"bootstrap.servers": bootstrap, "group.id": consumer_group,
                                       "session.timeout.ms": 2000}))
    intruder.subscribe([topic])
    errors = []
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline and not errors:
        msg = intruder.poll(0.1)
        if msg is not None and msg.error():
            errors.append(msg.error())
        modern.step()
    assert errors and errors[0].code() == KafkaError.INCONSISTENT_GROUP_PROTOCOL
    assert not intruder.assignment()
    intruder.close()
    classic.c.close()
    modern.c.close()


def test_restart_keeps_group_and_offsets(broker_process, tmp_path):
    overrides = {k.replace("_", "."): v for k, v in KIP848_OVERRIDES.items()}  # BrokerProcess takes either
    process = broker_process(tmp_path / "data", num_partitions=PARTITIONS, **overrides)
    bootstrap = process.bootstrap_servers
    topic, group = unique_topic("restart"), unique_topic("g")
    create_topic(bootstrap, topic, PARTITIONS)
    produce_values(bootstrap, topic, range(60))
    a = Worker(consumer(bootstrap, group), topic)
    run_until([a], lambda: len(a.seen) == 60)
    a.c.close()
    process.stop()
    process = broker_process(tmp_path / "data", port=process.port, num_partitions=PARTITIONS, **overrides)
    produce_values(bootstrap, topic, range(60, 90))
    b = Worker(consumer(bootstrap, group), topic)
    run_until([b], lambda: len(b.seen) == 30)
    assert sorted(b.seen) == list(range(60, 90))  # resumed from the committed offsets
    admin = AdminClient({"bootstrap.servers": bootstrap})
    described = admin.describe_consumer_groups([group])[group].result(DEADLINE_S)
    assert described.type.name == "CONSUMER"
    b.c.close()


def test_ten_consumers_rebalance_time(kip848_broker):
    bootstrap = kip848_broker.bootstrap_servers
    topic, group = unique_topic("ten"), unique_topic("g")
    create_topic(bootstrap, topic, 10)
    started = time.monotonic()
    consumers = [consumer(bootstrap, group) for _ in range(10)]
    for c in consumers:
        c.subscribe([topic])
    deadline = started + DEADLINE_S
    while not (sum(1 for c in consumers if c.assignment()) == 10
               and sorted(tp.partition for c in consumers for tp in c.assignment()) == list(range(10))):
        assert time.monotonic() < deadline
        for c in consumers:
            c.poll(0.01)
    elapsed_ms = (time.monotonic() - started) * 1000
    print(f"10-consumer KIP-848 rebalance took {elapsed_ms:.0f} ms (heartbeat interval 200 ms)")
    assert elapsed_ms < 10_000
    for c in consumers:
        c.close()
