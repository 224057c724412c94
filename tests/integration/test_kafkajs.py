"""Given a broker, when kafkajs (Node.js) creates a topic, produces and reads, then it sees Kafka's behaviour.

The client side is tests/js/scenario.js, run by `node` with a JSON job; it prints what kafkajs saw as
JSON lines. kafkajs's Consumer always joins a group, so records are read two ways: through kafkajs's
own Fetch path without a group (its version negotiation, record batch decoder and codecs), and through
a real group Consumer, which needs FindCoordinator/JoinGroup/SyncGroup/OffsetCommit on the broker.
"""

from __future__ import annotations

import json
import shutil
import subprocess
from pathlib import Path
from typing import Any

import pytest

from tests.fixtures import unique_topic
from tests.integration.scenario import (
    BASE_TIMESTAMP_MS,
    COMPRESSIONS,
    NUM_PARTITIONS,
    Received,
    Sent,
    check_received,
    records_to_send,
)

JS_DIR = Path(__file__).resolve().parents[1] / "js"
PROCESS_TIMEOUT_S = 30
JOB_DEADLINE_MS = 25_000  # the script gives up (and says where it was) before the process is killed
RECORDS_PER_SEND = 40  # several sends, so each partition holds several batches

pytestmark = pytest.mark.skipif(
    shutil.which("node") is None or not (JS_DIR / "node_modules").is_dir(),
    reason="needs node and tests/js/node_modules: scripts/test.sh runs `npm ci` there",
)


def run_kafkajs(bootstrap: str, topic: str, *steps: dict[str, Any]) -> list[list[dict[str, Any]]]:
    """Run the steps in one kafkajs process; return the JSON lines each step printed."""
    job = {"brokers": [bootstrap], "topic": topic, "deadlineMs": JOB_DEADLINE_MS, "steps": list(steps)}
    done = subprocess.run(["node", "scenario.js"], check=False, cwd=JS_DIR, input=json.dumps(job),
                          capture_output=True, text=True, timeout=PROCESS_TIMEOUT_S)
    lines = [json.loads(line) for line in done.stdout.splitlines() if line.startswith("{")]
    failures = [line for line in lines if "error" in line]
    assert done.returncode == 0 and not failures, (
        f"kafkajs exited {done.returncode}; failed: {failures}\nstderr:\n{done.stderr[-3000:]}")
    per_step = [[line for line in lines if line.get("step") == i] for i in range(len(steps))]
    unfinished = [steps[i]["op"] for i, out in enumerate(per_step)
                  if not any(line.get("done") for line in out)]
    assert not unfinished, f"steps that never finished: {unfinished}\nstderr:\n{done.stderr[-3000:]}"
    return per_step


def create_topic_step(partitions: int = NUM_PARTITIONS) -> dict[str, Any]:
    return {"op": "createTopic", "partitions": partitions}


def produce_step(records: list[Sent], compression: str = "none") -> dict[str, Any]:
    return {"op": "produce", "compression": compression, "chunk": RECORDS_PER_SEND,
            "records": [{"key": r.key, "value": r.value, "timestamp": r.timestamp, "header": r.header}
                        for r in records]}


def read_step(start: str | dict[str, Any] = "beginning") -> dict[str, Any]:
    return {"op": "read", "from": start}


def records_of(out: list[dict[str, Any]]) -> list[Received]:
    return [Received(**line["record"]) for line in out if "record" in line]


def results_of(out: list[dict[str, Any]]) -> list[dict[str, Any]]:
    return [line["result"] for line in out if "result" in line]


def check_produce_results(out: list[dict[str, Any]]) -> None:
    """Each send got errorCode 0 and a base offset; per partition the first is 0, then they increase."""
    results = results_of(out)
    assert results and all(r["errorCode"] == 0 for r in results), results
    for p in {r["partition"] for r in results}:
        bases = [int(r["baseOffset"]) for r in results if r["partition"] == p]
        assert bases[0] == 0 and bases == sorted(set(bases)), (p, bases)


def by_partition(received: list[Received]) -> dict[int, list[Received]]:
    return {p: sorted((r for r in received if r.partition == p), key=lambda r: r.offset)
            for p in range(NUM_PARTITIONS)}


@pytest.mark.parametrize("compression", COMPRESSIONS)
def test_keyed_records_with_headers_round_trip(broker, compression):
    topic = unique_topic(f"kafkajs-{compression}")
    created, produced, offsets, read = run_kafkajs(
        broker.bootstrap_servers, topic,
        create_topic_step(), produce_step(records_to_send(), compression), {"op": "offsets"}, read_step())

    assert created[0]["created"] is True, created
    check_produce_results(produced)
    received = records_of(read)
    check_received(records_to_send(), received)
    # ListOffsets: log start 0, high watermark = last offset + 1, in every partition.
    counts = {p: len(rs) for p, rs in by_partition(received).items()}
    watermarks = {r["partition"]: (int(r["low"]), int(r["high"])) for r in results_of(offsets)[0]}
    assert watermarks == {p: (0, n) for p, n in counts.items()}


def test_replay_from_offset_and_timestamp(broker):
    topic = unique_topic("kafkajs-replay")
    _, _, read = run_kafkajs(broker.bootstrap_servers, topic,
                             create_topic_step(), produce_step(records_to_send()), read_step())
    per_partition = by_partition(records_of(read))
    partition = max(per_partition, key=lambda p: len(per_partition[p]))
    # Most likely mid-way through a batch: the broker returns the whole batch, the client drops the head.
    start = len(per_partition[partition]) // 2 + 1
    cutoff = BASE_TIMESTAMP_MS + 60_000

    from_offset, by_time, from_time = run_kafkajs(
        broker.bootstrap_servers, topic,
        read_step({"offsets": {str(partition): start}}),
        {"op": "offsetsByTimestamp", "timestamp": cutoff},
        read_step({"timestamp": cutoff}))

    assert [r.offset for r in records_of(from_offset)] == [r.offset for r in per_partition[partition][start:]]
    # The first record at or after the timestamp; where there is none, kafkajs falls back to the end.
    expected = {p: next((r.offset for r in rs if r.timestamp >= cutoff), len(rs))
                for p, rs in per_partition.items()}
    assert {r["partition"]: int(r["offset"]) for r in results_of(by_time)[0]} == expected
    assert sorted((r.partition, r.offset) for r in records_of(from_time)) == sorted(
        (r.partition, r.offset) for rs in per_partition.values() for r in rs if r.timestamp >= cutoff)


def test_group_consumer_reads_everything_from_beginning(broker):
    topic = unique_topic("kafkajs-group")
    sent = records_to_send()
    *_, consumed = run_kafkajs(
        broker.bootstrap_servers, topic, create_topic_step(), produce_step(sent, "lz4"),
        {"op": "consumeGroup", "groupId": f"group-{topic}", "expected": len(sent)})
    check_received(sent, records_of(consumed))
