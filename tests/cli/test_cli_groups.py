"""Given a broker, when a person manages consumer groups with `moldau` (consume as a member, describe, reset
offsets), then it works for groups that do not exist yet, for classic groups and for KIP-848 consumer groups,
next to other clients in the same group."""

from __future__ import annotations

import json
import signal
import subprocess
import threading
import time

import pytest
from confluent_kafka import Consumer

from tests.cli.runner import MOLDAU, TIMEOUT_S, moldau
from tests.fixtures import GROUP_PARTITIONS as PARTITIONS
from tests.fixtures import Worker, run_until, unique_topic
from tests.fixtures import produce_values as produce
from tests.integration.test_groups_kip848 import KIP848_OVERRIDES
from tests.integration.test_groups_kip848 import consumer as kip848_consumer

DEADLINE_S = 30


@pytest.fixture
def kip848_broker():
    from moldau.testing import running_broker

    with running_broker(num_partitions=PARTITIONS, **KIP848_OVERRIDES) as b:
        yield b


def describe(bootstrap: str, group: str) -> dict:
    return json.loads(moldau("group", "describe", group, "--json", "-b", bootstrap).stdout)


def test_describe_and_reset_offsets_of_a_group_that_does_not_exist_yet(broker):
    bootstrap = ("-b", broker.bootstrap_servers)
    topic, group = unique_topic("cli-g"), unique_topic("app")
    moldau("topic", "create", topic, "--partitions", "3", *bootstrap)
    moldau("produce", topic, *bootstrap, stdin="".join(f"v{i}\n" for i in range(9)))
    # Describing (or deleting) a group nobody created says so, in Kafka's words.
    for command in ("describe", "delete"):
        result = moldau("group", command, group, *bootstrap, check=False)
        assert result.returncode == 1 and result.stderr == f"error: Consumer group '{group}' does not exist.\n"
    # Resetting its offsets works, as with kafka-consumer-groups: the commit creates the group.
    moldau("group", "reset-offsets", group, "--topic", topic, "--to-offset", "1", "--execute", *bootstrap)
    assert [p["current_offset"] for p in describe(broker.bootstrap_servers, group)["partitions"]] == [1, 1, 1]
    # Then a member of the group starts there (not at the end, where a group without offsets starts)...
    out = moldau("consume", topic, "--group", group, "-e", *bootstrap, timeout=DEADLINE_S).stdout
    assert len(out.split()) == 6
    # ...and commits what it read, so the next member has nothing left to read.
    described = describe(broker.bootstrap_servers, group)
    assert described["type"] == "consumer" and described["state"] == "Empty"
    assert [(p["current_offset"], p["lag"]) for p in described["partitions"]] == [(3, 0)] * 3
    assert moldau("consume", topic, "--group", group, "-e", *bootstrap, timeout=DEADLINE_S).stdout == ""


class Lines:
    """Lines a running `moldau consume` printed, collected by a thread."""

    def __init__(self, process: subprocess.Popen) -> None:
        self.lines: list[str] = []
        self._thread = threading.Thread(target=self._read, args=(process,), daemon=True)
        self._thread.start()

    def _read(self, process: subprocess.Popen) -> None:
        assert process.stdout is not None
        for line in process.stdout:
            self.lines.append(line.strip())


def wait_for(condition, what: str, timeout: float = DEADLINE_S) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        time.sleep(0.05)  # polling another process's output: there is no event to await


def test_moldau_and_librdkafka_members_share_a_kip848_group_and_describe_shows_it(kip848_broker):
    bootstrap = kip848_broker.bootstrap_servers
    topic, group = unique_topic("cli-848"), unique_topic("g848")
    moldau("topic", "create", topic, "--partitions", str(PARTITIONS), "-b", bootstrap)
    produce(bootstrap, topic, range(60))
    # Given `moldau consume --group` alone in a KIP-848 group: it reads everything.
    member = subprocess.Popen([*MOLDAU, "consume", topic, "--group", group, "--from-beginning", "-b", bootstrap],
                              stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    other: Worker | None = None
    try:
        printed = Lines(member)
        wait_for(lambda: len(printed.lines) >= 60, "the moldau member to read the first 60")
        listed = json.loads(moldau("group", "list", "--json", "-b", bootstrap).stdout)
        assert {"group": group, "type": "consumer", "state": "Stable", "protocol_type": "consumer"} in listed
        described = describe(bootstrap, group)
        assert described["type"] == "consumer" and len(described["members"]) == 1
        assert described["members"][0]["client_id"] == "moldau-cli"
        assert len(described["members"][0]["assignment"]) == PARTITIONS
        # When a librdkafka member joins, the partitions are split: moldau gives some up after committing.
        other = Worker(kip848_consumer(bootstrap, group), topic)
        run_until([other], lambda: len(other.assigned()) == PARTITIONS // 2)
        produce(bootstrap, topic, range(60, 120))
        run_until([other], lambda: len(other.seen) + len(printed.lines) >= 120)
        # Each record once: what moldau committed before handing a partition over is where librdkafka began.
        assert sorted(other.seen + [int(v) for v in printed.lines]) == list(range(120))
        described = describe(bootstrap, group)
        assert described["state"] == "Stable" and len(described["members"]) == 2
        owners = {p["partition"]: p["client_id"] for p in described["partitions"]}
        assert sorted(owners) == list(range(PARTITIONS)) and set(owners.values()) == {"moldau-cli", "rdkafka"}
        # Ctrl-C (most likely during a long-poll fetch): moldau commits, leaves, and exits without "Aborted!".
        member.send_signal(signal.SIGINT)
        assert member.wait(TIMEOUT_S) == 130
        assert member.stderr is not None and member.stderr.read() == ""
        # librdkafka takes over moldau's partitions where moldau's final commit left them: nothing read twice.
        run_until([other], lambda: len(other.assigned()) == PARTITIONS)
        produce(bootstrap, topic, range(120, 126))  # one more record in each partition
        run_until([other], lambda: len(other.seen) + len(printed.lines) >= 126)
        assert sorted(other.seen + [int(v) for v in printed.lines]) == list(range(126))
        assert all(p["lag"] == 0 for p in describe(bootstrap, group)["partitions"])
    finally:
        if other is not None:
            other.c.close()
        if member.poll() is None:
            member.kill()
            member.wait(10)


def test_describe_still_shows_classic_groups(group_broker):
    bootstrap = group_broker.bootstrap_servers
    topic, group = unique_topic("cli-classic"), unique_topic("gc")
    moldau("topic", "create", topic, "--partitions", str(PARTITIONS), "-b", bootstrap)
    produce(bootstrap, topic, range(12))
    worker = Worker(Consumer({"bootstrap.servers": bootstrap, "group.id": group, "auto.offset.reset": "earliest",
                              "enable.auto.commit": False, "session.timeout.ms": 2000,
                              "heartbeat.interval.ms": 200}), topic)
    try:
        run_until([worker], lambda: len(worker.seen) == 12)
        described = describe(bootstrap, group)
        assert described["type"] == "classic" and described["state"] == "Stable"
        assert described["protocol_type"] == "consumer" and len(described["members"]) == 1
        assert sorted(p["partition"] for p in described["partitions"]) == list(range(PARTITIONS))
        assert sum(p["current_offset"] for p in described["partitions"]) == 12
    finally:
        worker.c.close()


def test_a_member_fenced_during_a_pause_rejoins_and_goes_on(kip848_broker):
    bootstrap = kip848_broker.bootstrap_servers
    topic, group = unique_topic("cli-fenced"), unique_topic("gf")
    moldau("topic", "create", topic, "--partitions", str(PARTITIONS), "-b", bootstrap)
    produce(bootstrap, topic, range(12))
    member = subprocess.Popen([*MOLDAU, "consume", topic, "--group", group, "--from-beginning", "-b", bootstrap],
                              stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        printed = Lines(member)
        wait_for(lambda: len(printed.lines) >= 12, "the first records")
        # Given a member that stops heartbeating (a paused process, or stdout blocked) past the session timeout,
        member.send_signal(signal.SIGSTOP)
        wait_for(lambda: not describe(bootstrap, group)["members"], "the coordinator to remove the member")
        member.send_signal(signal.SIGCONT)
        # then it is fenced, rejoins and goes on reading (at least once: what it had not committed comes again).
        produce(bootstrap, topic, range(12, 24))
        wait_for(lambda: set(range(24)) <= {int(v) for v in printed.lines}, "the records after the pause")
        wait_for(lambda: len(describe(bootstrap, group)["members"]) == 1, "the member to be back")
        member.send_signal(signal.SIGINT)
        assert member.wait(TIMEOUT_S) == 130
        assert member.stderr is not None and "Traceback" not in member.stderr.read()
    finally:
        if member.poll() is None:
            member.send_signal(signal.SIGCONT)
            member.kill()
            member.wait(10)
