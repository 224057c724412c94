"""Given a broker, when a person uses the `moldau` command line, then topics and records behave as shown."""

from __future__ import annotations

import json
import time

from tests.cli.runner import moldau
from tests.fixtures import unique_topic


def test_topic_lifecycle_and_keyed_produce_consume(broker):
    bootstrap = ("-b", broker.bootstrap_servers)
    topic = unique_topic("cli")
    assert "Created topic" in moldau("topic", "create", topic, "--partitions", "2", *bootstrap).stdout
    assert topic in json.loads(moldau("topic", "list", "--json", *bootstrap).stdout)

    lines = "".join(f"key-{i % 3}:value-{i}\n" for i in range(30))
    moldau("produce", topic, "--key-separator", ":", "--header", "source=cli", "--compression", "zstd",
           *bootstrap, stdin=lines)
    out = moldau("consume", topic, "--from-beginning", "--json", "--timeout-ms", "1500", *bootstrap).stdout
    records = [json.loads(line) for line in out.splitlines()]
    assert sorted(r["value"] for r in records) == sorted(f"value-{i}" for i in range(30))
    assert all(r["headers"] == {"source": "cli"} for r in records)
    partitions_of_key = {}
    for r in records:
        partitions_of_key.setdefault(r["key"], set()).add(r["partition"])
    assert all(len(p) == 1 for p in partitions_of_key.values())

    described = json.loads(moldau("topic", "describe", topic, "--json", *bootstrap).stdout)
    assert sum(p["high_watermark"] for p in described["partitions"]) == 30

    assert "Deleted topic" in moldau("topic", "delete", topic, *bootstrap).stdout
    assert topic not in json.loads(moldau("topic", "list", "--json", *bootstrap).stdout)


def test_consume_from_timestamp_and_offset(broker):
    bootstrap = ("-b", broker.bootstrap_servers)
    topic = unique_topic("cli-ts")
    moldau("topic", "create", topic, "--partitions", "1", *bootstrap)
    moldau("produce", topic, *bootstrap, stdin="early-1\nearly-2\n")
    time.sleep(0.05)  # the records' CreateTime must differ from the cut-off below; wall clock is the input
    cutoff = int(time.time() * 1000)
    time.sleep(0.05)
    moldau("produce", topic, *bootstrap, stdin="late-1\nlate-2\n")
    late = moldau("consume", topic, "--timestamp", str(cutoff), "--timeout-ms", "1000", *bootstrap).stdout
    assert late.split() == ["late-1", "late-2"]
    from_two = moldau("consume", topic, "--partition", "0", "--offset", "1", "--max-messages", "2",
                      *bootstrap).stdout
    assert from_two.split() == ["early-2", "late-1"]


def test_errors_are_one_readable_line(broker):
    result = moldau("topic", "create", "bad name!", "-b", broker.bootstrap_servers, check=False)
    assert result.returncode == 1
    assert "INVALID_TOPIC_EXCEPTION" in result.stderr and "Traceback" not in result.stderr
    result = moldau("topic", "list", "-b", "127.0.0.1:1", check=False)
    assert result.returncode == 1 and "error:" in result.stderr and "Traceback" not in result.stderr
