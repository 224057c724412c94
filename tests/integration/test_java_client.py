"""Given a broker, when the Apache Kafka Java client (kafka-clients 3.9.1, the reference client) administers,
produces and consumes, then it sees Kafka's behaviour.

The client runs as `tests/java/MoldauScenario.java`, compiled once per module with javac against the jars
that `scripts/java-client-setup.sh` fetches; it prints one JSON object per line, which these tests read.
The Java producer turns idempotence on by default, so the main tests set `enable.idempotence=false`; one test
keeps the defaults.
"""

from __future__ import annotations

import json
import shutil
import subprocess
from pathlib import Path
from typing import Any

import pytest

from moldau.protocol.records import iter_batches
from tests.fixtures import unique_topic
from tests.integration.scenario import (
    BASE_TIMESTAMP_MS,
    COMPRESSIONS,
    NUM_PARTITIONS,
    NUM_RECORDS,
    Received,
    Sent,
    check_received,
    records_to_send,
)

REPO = Path(__file__).resolve().parents[2]
SETUP_SCRIPT = REPO / "scripts" / "java-client-setup.sh"
SCENARIO_SOURCE = REPO / "tests" / "java" / "MoldauScenario.java"
SETUP_TIMEOUT_S = 300  # the first run downloads a 92 MB wheel
COMPILE_TIMEOUT_S = 120
DEADLINE_MS = 20_000  # each Java client call's bound; the process gets a little more
PROCESS_TIMEOUT_S = 60
NOT_IDEMPOTENT = {"producer.enable.idempotence": "false"}
CODECS = {name: number for number, name in enumerate(COMPRESSIONS)}  # a v2 batch's attributes bits 0-2

JAVA, JAVAC = shutil.which("java"), shutil.which("javac")
pytestmark = pytest.mark.skipif(JAVA is None or JAVAC is None,
                                reason="java/javac (JDK 17+) not installed: the Java client tests need a JDK")


@pytest.fixture(scope="module")
def classpath(tmp_path_factory: pytest.TempPathFactory) -> str:
    """kafka-clients and its run-time jars, plus the compiled scenario."""
    setup = subprocess.run(["bash", str(SETUP_SCRIPT)], capture_output=True, text=True, timeout=SETUP_TIMEOUT_S,
                           check=False)
    assert setup.returncode == 0, f"{SETUP_SCRIPT} failed:\n{setup.stderr[-3000:]}"
    jars = setup.stdout.strip().splitlines()[-1]
    classes = tmp_path_factory.mktemp("java-classes")
    compiled = subprocess.run([JAVAC, "-d", str(classes), "-cp", jars, str(SCENARIO_SOURCE)], capture_output=True,
                              text=True, timeout=COMPILE_TIMEOUT_S, check=False)
    assert compiled.returncode == 0, f"javac failed:\n{compiled.stderr[-3000:]}"
    return f"{jars}:{classes}"


def java(classpath: str, command: str, bootstrap: str, stdin: str | None = None,
         **args: object) -> list[dict[str, Any]]:
    """Run one scenario command; fail with the client's exception if it exits non-zero; return its events."""
    argv = [JAVA, "-cp", classpath, "MoldauScenario", command, f"bootstrap={bootstrap}",
            f"deadline.ms={DEADLINE_MS}", *(f"{k}={v}" for k, v in args.items())]
    done = subprocess.run(argv, input=stdin, capture_output=True, text=True, timeout=PROCESS_TIMEOUT_S,
                          check=False)
    # slf4j-api without a binding says so on stderr; that is not an error.
    stderr = "\n".join(line for line in done.stderr.splitlines() if not line.startswith("SLF4J:"))
    assert done.returncode == 0, f"MoldauScenario {command} {args} exited {done.returncode}:\n{stderr[-4000:]}"
    return [json.loads(line) for line in done.stdout.splitlines() if line.startswith("{")]


def events(output: list[dict[str, Any]], kind: str) -> list[dict[str, Any]]:
    return [e for e in output if e["event"] == kind]


def create_topic(classpath: str, bootstrap: str, topic: str) -> list[dict[str, Any]]:
    return java(classpath, "admin", bootstrap, topic=topic, partitions=NUM_PARTITIONS)


def produce(classpath: str, bootstrap: str, topic: str, records: list[Sent], **configs: str) -> list[dict]:
    lines = "".join(f"{r.key}\t{r.value}\t{r.timestamp}\t{r.header}\n" for r in records)
    sent = events(java(classpath, "produce", bootstrap, stdin=lines, topic=topic, **configs), "sent")
    assert [s["value"] for s in sent] == [r.value for r in records]
    return sent


def consume(classpath: str, bootstrap: str, topic: str, expected: int, **args: object) -> tuple[list, list]:
    """assign() + seek, then poll `expected` records: (all events, the records as `Received`)."""
    output = java(classpath, "consume", bootstrap, topic=topic, expected=expected, **args)
    received = [Received(e["partition"], e["offset"], e["key"], e["value"], e["timestamp"], e["header"])
                for e in events(output, "record")]
    assert all(e["timestamp_type"] == "CreateTime" for e in events(output, "record"))
    return output, received


def stored_codecs(broker, topic: str) -> set[int]:
    """The compression of every batch in the topic's segment files (the broker stores batches as sent)."""
    log_dir = Path(broker.config.log_dirs[0])
    return {header.compression
            for segment in log_dir.glob(f"{topic}-*/*.log")
            for _, header in iter_batches(segment.read_bytes())}


def test_admin_creates_describes_and_lists_topics(broker, classpath):
    topic = unique_topic("java-admin")
    output = create_topic(classpath, broker.bootstrap_servers, topic)

    assert events(output, "created") == [{"event": "created", "topic": topic, "partitions": NUM_PARTITIONS}]
    [cluster] = events(output, "cluster")
    node_id = broker.broker.node_id
    assert cluster["cluster_id"] == broker.broker.cluster_id
    assert cluster["controller"] == node_id
    assert cluster["nodes"] == [{"id": node_id, "host": "127.0.0.1", "port": broker.port}]
    [topics] = events(output, "topics")
    assert topic in topics["names"]
    [described] = events(output, "described")
    assert described["leaders"] == [node_id] * NUM_PARTITIONS


@pytest.mark.parametrize("compression", COMPRESSIONS)
def test_keyed_records_with_headers_round_trip(broker, classpath, compression):
    bootstrap, topic = broker.bootstrap_servers, unique_topic(f"java-{compression}")
    create_topic(classpath, bootstrap, topic)
    sent = produce(classpath, bootstrap, topic, records_to_send(),
                   **NOT_IDEMPOTENT, **{"producer.compression.type": compression})
    output, received = consume(classpath, bootstrap, topic, NUM_RECORDS)

    check_received(records_to_send(), received)
    # Unlike librdkafka, the Java producer never falls back to sending uncompressed.
    assert stored_codecs(broker, topic) == {CODECS[compression]}
    # The offsets the producer was acknowledged with are the ones the consumer reads them at.
    assert {(s["partition"], s["offset"], s["value"]) for s in sent} == \
        {(r.partition, r.offset, r.value) for r in received}
    [offsets] = events(output, "offsets")
    assert offsets["beginning"] == {str(p): 0 for p in range(NUM_PARTITIONS)}
    assert offsets["end"] == {str(p): sum(1 for r in received if r.partition == p) for p in range(NUM_PARTITIONS)}


def test_replay_from_offset_and_timestamp(broker, classpath):
    bootstrap, topic = broker.bootstrap_servers, unique_topic("java-replay")
    create_topic(classpath, bootstrap, topic)
    produce(classpath, bootstrap, topic, records_to_send(), **NOT_IDEMPOTENT)
    cutoff = BASE_TIMESTAMP_MS + 60_000
    output, everything = consume(classpath, bootstrap, topic, NUM_RECORDS, timestamp=cutoff)
    per_partition = {p: sorted((r for r in everything if r.partition == p), key=lambda r: r.offset)
                     for p in range(NUM_PARTITIONS)}

    # offsetsForTimes: the first record at or after the cutoff, in every partition.
    [found] = events(output, "offsets_for_times")
    for p, records in per_partition.items():
        first = next(r for r in records if r.timestamp >= cutoff)
        assert found["found"][str(p)] == {"offset": first.offset, "timestamp": first.timestamp}, p

    # From an offset: exactly the records at and after it.
    partition = max(per_partition, key=lambda p: len(per_partition[p]))
    start = len(per_partition[partition]) // 2
    _, replayed = consume(classpath, bootstrap, topic, len(per_partition[partition]) - start,
                          **{"from": f"offset:{partition}:{start}"})
    assert replayed == per_partition[partition][start:]

    # From a timestamp: seek every partition to its offsetsForTimes answer.
    later = [r for r in everything if r.timestamp >= cutoff]
    _, replayed = consume(classpath, bootstrap, topic, len(later), **{"from": f"timestamp:{cutoff}"})
    assert sorted(replayed, key=lambda r: r.value) == sorted(later, key=lambda r: r.value)


def test_default_idempotent_producer(broker, classpath):
    bootstrap, topic = broker.bootstrap_servers, unique_topic("java-idempotent")
    create_topic(classpath, bootstrap, topic)
    sent = produce(classpath, bootstrap, topic, records_to_send())
    _, received = consume(classpath, bootstrap, topic, NUM_RECORDS)
    check_received(records_to_send(), received)
    assert {(s["partition"], s["offset"]) for s in sent} == {(r.partition, r.offset) for r in received}


def test_group_subscriber_gets_every_partition_and_commits(broker, classpath):
    bootstrap, topic = broker.bootstrap_servers, unique_topic("java-group")
    create_topic(classpath, bootstrap, topic)
    produce(classpath, bootstrap, topic, records_to_send(), **NOT_IDEMPOTENT)
    group = unique_topic("java-group")
    output = java(classpath, "subscribe", bootstrap, topic=topic, group=group, expected=NUM_RECORDS)
    received = [Received(e["partition"], e["offset"], e["key"], e["value"], e["timestamp"], e["header"])
                for e in events(output, "record")]
    check_received(records_to_send(), received)
    assert events(output, "committed") == [{"event": "committed", "group": group}]
