"""Incremental cooperative rebalancing (KIP-415) between real Connect workers on a real broker.

- A second worker joins: it takes over part of the work, and what stays on the first worker is never stopped
  (with `connect.protocol=eager`, everything stops and starts again: the same scenario measures both).
- A worker is killed: its work is held for `scheduled.rebalance.max.delay.ms`, then moves; nothing is lost.

Each task's history comes from the status topic: a task writes RUNNING when it starts and UNASSIGNED when it
stops, so a task that was never stopped has exactly one record there.
"""

from __future__ import annotations

import json
import time
from collections import defaultdict

import confluent_kafka
import pytest

from tests.connect.connect_fixtures import (
    WorkerProcess,
    create_topic,
    distributed_props,
    lines_of,
    rest,
)
from tests.fixtures import unique_topic, wait_until


def status_history(bootstrap: str, topic: str, raw: bool = False) -> dict[str, list]:
    """Every status record so far, by key: [(state, worker_id, timestamp ms)] in the order written (with
    `raw`, the parsed JSON values of any topic)."""
    consumer = confluent_kafka.Consumer({"bootstrap.servers": bootstrap, "group.id": unique_topic("status-reader"),
                                         "enable.auto.commit": False, "enable.partition.eof": True})
    history: dict[str, list[tuple[str, str, int]]] = defaultdict(list)
    try:
        partitions = consumer.list_topics(topic, timeout=10).topics[topic].partitions
        consumer.assign([confluent_kafka.TopicPartition(topic, p, confluent_kafka.OFFSET_BEGINNING)
                         for p in partitions])
        at_end: set[int] = set()
        deadline = time.monotonic() + 30
        while len(at_end) < len(partitions) and time.monotonic() < deadline:
            message = consumer.poll(0.5)
            if message is None:
                continue
            if message.error():
                if message.error().code() == confluent_kafka.KafkaError._PARTITION_EOF:
                    at_end.add(message.partition())
                continue
            if message.value() is not None:
                body = json.loads(message.value())
                history[message.key().decode()].append(
                    body if raw else (body["state"], body["worker_id"], message.timestamp()[1]))
        assert len(at_end) == len(partitions), "status topic not read to its end"
    finally:
        consumer.close()
    return history


def task_owners(url: str, name: str, tasks: int) -> dict[int, str] | None:
    """{task: worker_id} once the connector and all its tasks are RUNNING."""
    status, body = rest(url, "GET", f"/connectors/{name}/status")
    if status != 200 or body["connector"]["state"] != "RUNNING" or len(body["tasks"]) != tasks:
        return None
    if any(t["state"] != "RUNNING" for t in body["tasks"]):
        return None
    return {t["id"]: t["worker_id"] for t in body["tasks"]}


def stopped_ms(history: list[tuple[str, str, int]], since_ms: int) -> int:
    """Milliseconds a task spent stopped (UNASSIGNED until its next RUNNING) after `since_ms`."""
    total, stopped_at = 0, None
    for state, _, ts in history:
        if ts < since_ms:
            continue
        if state == "UNASSIGNED" and stopped_at is None:
            stopped_at = ts
        elif state == "RUNNING" and stopped_at is not None:
            total, stopped_at = total + ts - stopped_at, None
    return total


@pytest.mark.parametrize("protocol", ["sessioned", "eager"])
def test_joining_worker_takes_work_without_stopping_what_stays(protocol, group_broker, tmp_path):
    bootstrap = group_broker.bootstrap_servers
    group = unique_topic(f"coop-{protocol}")
    props = {**distributed_props(bootstrap, group), "connect.protocol": protocol}
    first = WorkerProcess(tmp_path, "w1", props).start()
    second = WorkerProcess(tmp_path, "w2", props)
    try:
        topic = create_topic(bootstrap, unique_topic("coop"), partitions=4)
        source_file, sink_file = tmp_path / "in.txt", tmp_path / "out.txt"
        source_file.write_text("".join(f"a{i}\n" for i in range(100)))
        assert rest(first.url, "POST", "/connectors", {"name": "snk", "config": {
            "connector.class": "FileStreamSink", "file": str(sink_file), "topics": topic, "tasks.max": "4"}})[0] == 201
        assert rest(first.url, "POST", "/connectors", {"name": "src", "config": {
            "connector.class": "FileStreamSource", "file": str(source_file), "topic": topic}})[0] == 201
        wait_until(lambda: task_owners(first.url, "snk", 4) == {i: first.worker_id for i in range(4)}, 60,
                   "the sink's 4 tasks running on the only worker")
        wait_until(lambda: task_owners(first.url, "src", 1), 60, "the source running")
        wait_until(lambda: len(set(lines_of(sink_file))) == 100, 60, "the first 100 lines copied")

        joined_ms = int(time.time() * 1000)
        second.start()

        def spread():
            sink, source = task_owners(first.url, "snk", 4), task_owners(first.url, "src", 1)
            owners = list((sink or {}).values()) + list((source or {}).values())
            return sink and source and second.worker_id in owners and first.worker_id in owners and (sink, source)

        sink_owners, source_owners = wait_until(spread, 90, "work spread over both workers")
        with source_file.open("a") as out:  # the pipeline still flows end to end after the rebalance
            out.write("".join(f"b{i}\n" for i in range(50)))
        expected = {f"a{i}" for i in range(100)} | {f"b{i}" for i in range(50)}
        wait_until(lambda: set(lines_of(sink_file)) >= expected, 60, "the appended lines copied")

        history = status_history(bootstrap, f"{group}-status")
        tasks = {f"status-task-snk-{i}": owner for i, owner in sink_owners.items()}
        tasks["status-task-src-0"] = source_owners[0]
        stayed = [key for key, owner in tasks.items() if owner == first.worker_id]
        moved = [key for key, owner in tasks.items() if owner == second.worker_id]
        assert stayed and moved, tasks
        downtime = {key: stopped_ms(history[key], joined_ms) for key in tasks}
        print(f"\n{protocol}: task-ms stopped while a worker joined: stayed {[downtime[k] for k in stayed]}, "
              f"moved {[downtime[k] for k in moved]}")
        for key in moved:  # stopped on the first worker before it started on the second
            states = [(state, worker) for state, worker, _ in history[key]]
            assert states[-2:] == [("UNASSIGNED", first.worker_id), ("RUNNING", second.worker_id)], states
        if protocol == "sessioned":
            for key in stayed:  # started once, never stopped
                assert [(s, w) for s, w, _ in history[key]] == [("RUNNING", first.worker_id)], history[key]
        else:
            for key in stayed:  # eager: every task stops before the rebalance and starts again
                states = [s for s, _, _ in history[key]]
                assert states.count("UNASSIGNED") >= 1 and states[-1] == "RUNNING", history[key]
    finally:
        second.stop()
        first.stop()


def test_killed_workers_tasks_move_after_the_scheduled_delay(group_broker, tmp_path):
    bootstrap = group_broker.bootstrap_servers
    delay_s = 6
    props = {**distributed_props(bootstrap, unique_topic("coop-kill")),
             "scheduled.rebalance.max.delay.ms": str(delay_s * 1000)}
    leader = WorkerProcess(tmp_path, "k0", props).start()
    victim = WorkerProcess(tmp_path, "k1", props)
    workers = [leader, victim]
    try:
        topic = create_topic(bootstrap, unique_topic("coop-kill"), partitions=2)
        source_file, sink_file = tmp_path / "in.txt", tmp_path / "out.txt"
        source_file.write_text("".join(f"r{i}\n" for i in range(100)))
        rest(leader.url, "POST", "/connectors", {"name": "src", "config": {
            "connector.class": "FileStreamSource", "file": str(source_file), "topic": topic}})
        rest(leader.url, "POST", "/connectors", {"name": "snk", "config": {
            "connector.class": "FileStreamSink", "file": str(sink_file), "topics": topic, "tasks.max": "2"}})
        wait_until(lambda: task_owners(leader.url, "src", 1) and task_owners(leader.url, "snk", 2), 60,
                   "the first worker (the group's leader) running everything")
        # The second worker joins and takes a share. It is the one killed: the leader keeps the view of the
        # previous assignment that lets it hold lost work (a new leader has none, and reassigns at once).
        victim.start()

        def victim_owns():
            owners = list((task_owners(leader.url, "src", 1) or {}).values()) + \
                list((task_owners(leader.url, "snk", 2) or {}).values())
            return len(owners) == 3 and victim.worker_id in owners
        wait_until(victim_owns, 60, "the second worker running some tasks")
        wait_until(lambda: len(set(lines_of(sink_file))) == 100, 60, "the first 100 lines copied")

        survivor = leader
        victim.kill()
        killed = time.monotonic()
        with source_file.open("a") as out:
            out.write("".join(f"s{i}\n" for i in range(50)))

        def all_on_survivor():
            owners = list((task_owners(survivor.url, "src", 1) or {0: None}).values()) + \
                list((task_owners(survivor.url, "snk", 2) or {0: None}).values())
            return all(o == survivor.worker_id for o in owners)

        wait_until(all_on_survivor, 60, "every task on the surviving worker")
        moved_after = time.monotonic() - killed
        print(f"\nthe killed worker's tasks moved {moved_after:.1f}s after the kill "
              f"(session.timeout.ms=3000, scheduled.rebalance.max.delay.ms={delay_s * 1000})")
        # Held for the delay after the group noticed the loss: never before the delay has passed.
        assert moved_after >= delay_s
        expected = {f"r{i}" for i in range(100)} | {f"s{i}" for i in range(50)}
        wait_until(lambda: set(lines_of(sink_file)) >= expected, 60, "every line copied")
        assert set(lines_of(sink_file)) == expected
    finally:
        for worker in workers:
            worker.stop()


def _member(bootstrap: str, group: str, name: str, mode: str):
    """A bare WorkerGroupMember (no worker behind it) offering `mode`'s protocols."""
    from moldau.connect.runtime.connect_protocol import ConnectAssignment, ConnectProtocolCompatibility
    from moldau.connect.runtime.group_member import WorkerGroupMember

    member: WorkerGroupMember

    def assign(protocol, states):
        return {m: ConnectAssignment(member.member_id, name, -1, version=protocol.version) for m in states}

    member = WorkerGroupMember(bootstrap, group, name, session_timeout_ms=3000, rebalance_timeout_ms=10000,
                               heartbeat_interval_ms=200, config_offset=lambda: -1, assignor=assign,
                               on_revoke=lambda connectors, tasks: None, on_assign=lambda assignment, gen: None,
                               protocol=ConnectProtocolCompatibility.from_config(mode))
    return member


@pytest.mark.parametrize(("modes", "elected"), [(("sessioned", "sessioned"), "sessioned"),
                                                (("sessioned", "compatible"), "compatible"),
                                                (("sessioned", "eager"), "default")])
def test_the_group_elects_the_protocol_every_worker_supports(group_broker, modes, elected):
    """The coordinator elects the most preferred protocol all members offer (ConnectProtocolCompatibility)."""
    from kafka import KafkaAdminClient

    bootstrap = group_broker.bootstrap_servers
    group = unique_topic("coop-elect")
    members = [_member(bootstrap, group, f"http://w{i}", mode) for i, mode in enumerate(modes)]
    for member in members:
        member.start()
    try:
        wait_until(lambda: len({m.last_completed_generation for m in members}) == 1
                   and members[0].last_completed_generation > 0
                   and all(m.current_protocol.protocol == elected for m in members), 30,
                   f"both members in one generation with protocol {elected}")
        # JoinGroup told each member the broker's choice; another client sees the group's protocol type.
        # (kafka-python's and librdkafka's DescribeGroups decode member metadata as the consumer protocol's.)
        admin = KafkaAdminClient(bootstrap_servers=bootstrap)
        try:
            listed = {g["group_id"]: g for g in admin.list_groups()}
            assert (listed[group]["protocol_type"], listed[group]["group_state"]) == ("connect", "Stable")
        finally:
            admin.close()
    finally:
        for member in members:
            member.stop()
