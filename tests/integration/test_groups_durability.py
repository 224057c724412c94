"""Given a real broker process, when offsets are committed and the broker is SIGKILLed and restarted, then
OffsetFetch returns them and the group is still known; `moldau group describe` shows members and lag."""

from __future__ import annotations

import json
import subprocess
import sys
import time

import pytest
from confluent_kafka import Consumer, Producer, TopicPartition

from tests.fixtures import (
    DEADLINE_S,
    GROUP_TEST_OVERRIDES,
    create_topic,
    embedded_broker,
    kafka_overrides,
    unique_topic,
)


def test_offsets_survive_sigkill(broker_process):
    server = broker_process(**GROUP_TEST_OVERRIDES)
    bootstrap = server.bootstrap_servers
    topic, group = unique_topic("durable"), unique_topic("g")
    create_topic(bootstrap, topic, 3)
    c = Consumer({"bootstrap.servers": bootstrap, "group.id": group, "enable.auto.commit": False})
    committed = [TopicPartition(topic, p, 10 * p + 1, metadata=f"m{p}") for p in range(3)]
    c.commit(offsets=committed, asynchronous=False)
    c.close()
    server.kill()
    server = broker_process(server.data_dir, port=server.port, **GROUP_TEST_OVERRIDES)
    c = Consumer({"bootstrap.servers": bootstrap, "group.id": group, "enable.auto.commit": False})
    got = c.committed([TopicPartition(topic, p) for p in range(3)], timeout=DEADLINE_S)
    assert [(tp.partition, tp.offset, tp.metadata) for tp in got] == [(p, 10 * p + 1, f"m{p}") for p in range(3)]
    c.close()
    listed = subprocess.run([sys.executable, "-m", "moldau.cli.main", "group", "list", "--json", "-b", bootstrap],
                            capture_output=True, text=True, timeout=DEADLINE_S, check=True)
    assert group in [g["group"] for g in json.loads(listed.stdout)]


def test_cli_describe_shows_members_assignments_and_lag(group_broker_cli):
    bootstrap, topic, group, consumer = group_broker_cli
    out = subprocess.run([sys.executable, "-m", "moldau.cli.main", "group", "describe", group, "--json",
                          "-b", bootstrap], capture_output=True, text=True, timeout=DEADLINE_S, check=True)
    described = json.loads(out.stdout)
    assert described["state"] == "Stable" and len(described["members"]) == 1
    assert sorted(described["members"][0]["assignment"]) == [f"{topic}-{p}" for p in range(3)]
    lag = {p["partition"]: (p["current_offset"], p["log_end_offset"], p["lag"]) for p in described["partitions"]}
    assert lag == {0: (4, 10, 6), 1: (None, 10, None), 2: (None, 10, None)}
    table = subprocess.run([sys.executable, "-m", "moldau.cli.main", "group", "describe", group, "-b", bootstrap],
                           capture_output=True, text=True, timeout=DEADLINE_S, check=True).stdout
    assert "Stable" in table and "lag" in table
    consumer.close()
    reset = subprocess.run([sys.executable, "-m", "moldau.cli.main", "group", "reset-offsets", group, "--topic", topic,
                            "--shift-by", "-2", "--execute", "--json", "-b", bootstrap],
                           capture_output=True, text=True, timeout=DEADLINE_S, check=True)
    rows = {r["partition"]: r["new_offset"] for r in json.loads(reset.stdout)["partitions"]}
    assert rows == {0: 2, 1: 8, 2: 8}
    deleted = subprocess.run([sys.executable, "-m", "moldau.cli.main", "group", "delete", group, "-b", bootstrap],
                             check=False, capture_output=True, text=True, timeout=DEADLINE_S)
    assert deleted.returncode == 0, deleted.stderr




@pytest.fixture
def group_broker_cli():
    with embedded_broker(**kafka_overrides(GROUP_TEST_OVERRIDES)) as b:
        bootstrap = b.bootstrap_servers
        topic, group = unique_topic("cli"), unique_topic("g")
        create_topic(bootstrap, topic, 3)
        producer = Producer({"bootstrap.servers": bootstrap})
        for i in range(30):
            producer.produce(topic, value=b"v", partition=i % 3)
        assert producer.flush(DEADLINE_S) == 0
        consumer = Consumer({"bootstrap.servers": bootstrap, "group.id": group, "enable.auto.commit": False,
                             "auto.offset.reset": "earliest"})
        consumer.subscribe([topic])
        deadline = time.monotonic() + DEADLINE_S
        while len(consumer.assignment()) < 3:
            assert time.monotonic() < deadline
            consumer.poll(0.05)
        consumer.commit(offsets=[TopicPartition(topic, 0, 4)], asynchronous=False)
        yield bootstrap, topic, group, consumer
