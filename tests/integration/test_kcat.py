"""Given a broker, when kcat (the librdkafka command-line client) produces, consumes and lists, then it
sees Kafka's behaviour.

kcat 1.7 takes headers per run (`-H`), not per record, and has no option for a record's timestamp in
produce mode, so here every record of a run carries that run's header and librdkafka stamps each
record when it is produced (CreateTime); the tests check those stamps fall within the run.
"""

from __future__ import annotations

import json
import re
import shutil
import subprocess
import time
from dataclasses import replace

import pytest

from tests.fixtures import create_topic, unique_topic
from tests.integration.scenario import (
    COMPRESSIONS,
    NUM_PARTITIONS,
    Received,
    Sent,
    check_received,
    records_to_send,
)

KCAT = shutil.which("kcat")
PROCESS_TIMEOUT_S = 20
METADATA_TIMEOUT_S = 10  # kcat -m: how long it waits for the first metadata
# One record per line: fields split by tabs (no key, value or header of the scenario has one).
CONSUME_FORMAT = r"%p\t%o\t%k\t%s\t%T\t%h\n"
# librdkafka's `msg` debug line for each batch sent names the codec it was sent with, last:
# "Produce MessageSet with 40 message(s) (1064 bytes, ApiVersion 7, ..., PID{Invalid}, gzip)"
SENT_BATCH_CODEC = re.compile(r"Produce MessageSet with \d+ message\(s\) \(.*, (\w+)\)$", re.MULTILINE)
FALLBACK_REASON = re.compile(r"Broker does not support compression type .*")

pytestmark = pytest.mark.skipif(KCAT is None, reason="kcat is not installed: scripts/test.sh apt-installs it")


def kcat(bootstrap: str, *args: str, stdin: str | None = None) -> subprocess.CompletedProcess[str]:
    """Run kcat against `bootstrap`; fail with its stderr if it exits non-zero."""
    command = [KCAT, "-b", bootstrap, "-m", str(METADATA_TIMEOUT_S), *args]
    done = subprocess.run(command, check=False, input=stdin, capture_output=True, text=True,
                          timeout=PROCESS_TIMEOUT_S)
    assert done.returncode == 0, f"{' '.join(command)} exited {done.returncode}:\n{done.stderr[-3000:]}"
    return done


def produce(bootstrap: str, topic: str, records: list[Sent], header: str, compression: str = "none") -> range:
    """Produce `records` as `key<TAB>value` lines in one kcat run; return the run's wall-clock span in ms.

    librdkafka quietly sends a batch uncompressed when it judges that the broker lacks the codec, so
    this reads its `msg` debug log to check that batches went out with `compression` and none fell back for
    that reason. (It also sends a batch uncompressed when compressing would make it bigger, as for a batch of
    one record that a loaded machine's kcat read slowly: that is allowed.)
    """
    lines = "".join(f"{r.key}\t{r.value}\n" for r in records)
    started_ms = int(time.time() * 1000)
    done = kcat(bootstrap, "-P", "-t", topic, "-K", r"\t", "-H", f"h={header}", "-z", compression,
                "-X", "acks=all", "-X", "linger.ms=5", "-d", "msg", stdin=lines)
    span = range(started_ms, int(time.time() * 1000) + 1)
    sent_with = set(SENT_BATCH_CODEC.findall(done.stderr))
    expected = "uncompressed" if compression == "none" else compression
    why = FALLBACK_REASON.findall(done.stderr)[:1]
    assert expected in sent_with and sent_with <= {expected, "uncompressed"} and not why, (
        f"batches went out as {sorted(sent_with)}, not {expected}: {why}")
    return span


def consume(bootstrap: str, topic: str, *position: str) -> list[Received]:
    """Consume until every partition read is at its end (-e), from `position` (kcat's -o/-p options)."""
    out = kcat(bootstrap, "-C", "-t", topic, "-e", "-q", "-f", CONSUME_FORMAT, *position).stdout
    received = []
    for line in out.splitlines():
        partition, offset, key, value, timestamp, headers = line.split("\t")
        header = dict(h.split("=", 1) for h in headers.split(","))["h"]
        received.append(Received(int(partition), int(offset), key, value, int(timestamp), header))
    return received


def sent_by_kcat(header: str, received: list[Received]) -> list[Sent]:
    """The scenario as kcat sends it: the run's header, and the timestamps librdkafka gave each record."""
    stamped = {r.value: r.timestamp for r in received}
    return [replace(s, header=header, timestamp=stamped.get(s.value, -1)) for s in records_to_send()]


def by_partition(received: list[Received]) -> dict[int, list[Received]]:
    return {p: sorted((r for r in received if r.partition == p), key=lambda r: r.offset)
            for p in range(NUM_PARTITIONS)}


# librdkafka 2.0.2 compresses with LZ4 only for a broker that lists FindCoordinator v0 in ApiVersions
# (its stand-in for "Kafka >= 0.8.2"), which comes with consumer groups.
KCAT_COMPRESSIONS = list(COMPRESSIONS)


@pytest.mark.parametrize("compression", KCAT_COMPRESSIONS)
def test_keyed_records_with_headers_round_trip(broker, compression):
    topic = unique_topic(f"kcat-{compression}")
    create_topic(broker.bootstrap_servers, topic)
    header = f"kcat-{compression}"

    span = produce(broker.bootstrap_servers, topic, records_to_send(), header, compression)
    received = consume(broker.bootstrap_servers, topic, "-o", "beginning")

    outside = [r for r in received if r.timestamp not in span]
    assert not outside, f"CreateTime outside the producing run {span}: {outside[:3]}"
    check_received(sent_by_kcat(header, received), received)


def test_replay_from_offset_and_timestamp(broker):
    topic = unique_topic("kcat-replay")
    create_topic(broker.bootstrap_servers, topic)
    records = records_to_send()
    half = len(records) // 2
    # Two runs, one after the other: every record of the second is stamped later than any of the first.
    produce(broker.bootstrap_servers, topic, records[:half], "first")
    produce(broker.bootstrap_servers, topic, records[half:], "second")
    everything = consume(broker.bootstrap_servers, topic, "-o", "beginning")
    assert len(everything) == len(records)
    per_partition = by_partition(everything)

    # From an offset: exactly the records at and after it.
    partition = max(per_partition, key=lambda p: len(per_partition[p]))
    start = len(per_partition[partition]) // 2
    replayed = consume(broker.bootstrap_servers, topic, "-p", str(partition), "-o", str(start))
    assert [(r.partition, r.offset) for r in replayed] == [
        (r.partition, r.offset) for r in per_partition[partition][start:]]

    # From a timestamp: ListOffsets finds the first record at or after it, in every partition.
    cutoff = min(r.timestamp for r in everything if r.header == "second")
    assert max(r.timestamp for r in everything if r.header == "first") < cutoff
    expected = {p: next((r.offset for r in rs if r.timestamp >= cutoff), len(rs))
                for p, rs in per_partition.items()}
    query = kcat(broker.bootstrap_servers, "-Q", *[arg for p in range(NUM_PARTITIONS)
                                                   for arg in ("-t", f"{topic}:{p}:{cutoff}")]).stdout
    found = {int(p): int(o) for p, o in re.findall(r"\[(\d+)\]\s+offset\s+(-?\d+)", query)}
    # Kafka answers -1 (no such record) where every record is older; librdkafka reads that as "the end".
    assert {p: (o if o >= 0 else len(per_partition[p])) for p, o in found.items()} == expected, query

    from_time = consume(broker.bootstrap_servers, topic, "-o", f"s@{cutoff}")
    assert sorted((r.partition, r.offset) for r in from_time) == sorted(
        (r.partition, r.offset) for r in everything if r.timestamp >= cutoff)
    assert {r.header for r in from_time} == {"second"}


def test_metadata_listing_shows_broker_and_partitions(broker):
    topic = unique_topic("kcat-meta")
    create_topic(broker.bootstrap_servers, topic)

    listing = json.loads(kcat(broker.bootstrap_servers, "-L", "-J", "-t", topic).stdout)
    text = kcat(broker.bootstrap_servers, "-L", "-t", topic).stdout

    assert [b["name"] for b in listing["brokers"]] == [broker.bootstrap_servers], listing
    broker_id = listing["brokers"][0]["id"]
    [described] = listing["topics"]
    assert described["topic"] == topic and "error" not in described, described
    assert sorted(p["partition"] for p in described["partitions"]) == list(range(NUM_PARTITIONS))
    for p in described["partitions"]:
        assert p["leader"] == broker_id, p
        assert [r["id"] for r in p["replicas"]] == [broker_id], p
        assert [r["id"] for r in p["isrs"]] == [broker_id], p
    assert f'topic "{topic}" with {NUM_PARTITIONS} partitions' in text, text
    assert f"at {broker.bootstrap_servers}" in text, text
